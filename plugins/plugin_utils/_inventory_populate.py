# -*- coding: utf-8 -*-
# Copyright: virtfleet.kubevirt contributors
# Apache License 2.0 (see LICENSE or http://www.apache.org/licenses/LICENSE-2.0)
"""Pure populate step of the inventory plugin: fetched API objects -> host entries.

No Ansible inventory object and no templating here: the plugin applies the entries
(adding hosts/groups, wrapping values so they are never templated, running compose).
Host names, groups and vm_*/vmi_* variables follow kubevirt.core 2.x.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import string

from ansible_collections.virtfleet.kubevirt.plugins.plugin_utils._api_tunnel import ProxyCommand
from ansible_collections.virtfleet.kubevirt.plugins.plugin_utils._inventory_address import API_TUNNEL, AddressChooser

# CamelCase -> snake_case as kubevirt.core names status variables: split before an upper-case letter
# that follows a lower-case one, and before the last capital of an acronym run ("guestOSInfo" -> guest_os_info).
_SNAKE = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")

WINDOWS_ANNOTATIONS = ("kubevirt.io/cluster-preference-name", "kubevirt.io/preference-name", "vm.kubevirt.io/os")
HOST_FORMAT_FIELDS = ("name", "namespace", "uid", "cluster")
ALL_STATES = "all"
# kubevirt.core 2.3.0's default_win_ansible_connection values; the ssh ones make a Windows guest's
# Service lookup use the SSH port instead of the WinRM ports.
WIN_CONNECTIONS = ("winrm", "ansible.builtin.winrm", "psrp", "ansible.builtin.psrp", "ssh", "ansible.builtin.ssh")
SSH_CONNECTIONS = ("ssh", "ansible.builtin.ssh")


class HostEntry(object):
    """One inventory host: its name, the groups it belongs to and its variables."""

    __slots__ = ("name", "cluster_group", "namespace_group", "label_groups", "variables")

    def __init__(self, name, cluster_group, namespace_group, label_groups, variables):
        self.name = name
        self.cluster_group = cluster_group
        self.namespace_group = namespace_group
        self.label_groups = label_groups
        self.variables = variables


class PopulateSettings(object):
    """Per-connection settings of the populate step (already validated)."""

    def __init__(self, address, host_format="{namespace}-{name}", create_groups=False, states=("Running",),
                 unset_ansible_port=True, win_connection="winrm", tunnel=None):
        self.address = address
        # The ssh options of api_tunnel hosts (_api_tunnel.ProxyCommand of the connection's options).
        self.tunnel = tunnel if tunnel is not None else ProxyCommand({})
        self.win_connection = win_connection
        self.host_format = host_format
        self.create_groups = create_groups
        self.states = tuple(s.lower() for s in states)
        self.unset_ansible_port = unset_ansible_port


_SNAKE_NAMES = {}


def snake_case(name):
    # The same dozen status keys repeat on every object: convert each once per process.
    try:
        return _SNAKE_NAMES[name]
    except KeyError:
        converted = _SNAKE_NAMES[name] = _SNAKE.sub("_", name).lower()
        return converted


def default_cluster_name(host):
    """kubevirt.core's cluster group name: the API URL without scheme, '.' -> '-', ':' -> '_'."""
    for scheme in ("https://", "http://"):
        if host.startswith(scheme):
            host = host[len(scheme):]
    return host.replace(".", "-").replace(":", "_")


def check_host_format(host_format):
    """Return an error sentence for an unusable host_format, else None."""
    try:
        fields = [parsed[1] for parsed in string.Formatter().parse(host_format) if parsed[1] is not None]
    except ValueError as exc:
        return "host_format %r is not a valid format string (%s)." % (host_format, exc)
    unknown = [f for f in fields if f not in HOST_FORMAT_FIELDS]
    if unknown or not fields:
        return "host_format %r may only use the specifiers {%s}, and at least one of them." % (
            host_format, "}, {".join(HOST_FORMAT_FIELDS))
    return None


_VAR_NAMES = {}


def var_name(prefix, key):
    """``prefix + '_' + snake_case(key)``, the same str object for every host (10,000 hosts share ~40 names)."""
    try:
        return _VAR_NAMES[(prefix, key)]
    except KeyError:
        name = _VAR_NAMES[(prefix, key)] = "%s_%s" % (prefix, snake_case(key))
        return name


def object_vars(prefix, obj):
    """vm_*/vmi_* variables of one object: labels/annotations as dict values, status keys snake_cased."""
    meta = obj.get("metadata") or {}
    out = {}
    if meta.get("annotations"):
        out[var_name(prefix, "annotations")] = meta["annotations"]
    if meta.get("labels"):
        out[var_name(prefix, "labels")] = meta["labels"]
    if meta.get("resourceVersion"):
        out[var_name(prefix, "resourceVersion")] = meta["resourceVersion"]
    if meta.get("uid"):
        out[var_name(prefix, "uid")] = meta["uid"]
    for key, value in (obj.get("status") or {}).items():
        out[var_name(prefix, key)] = value
    return out


def _condition_true(obj, kind):
    return any(c.get("type") == kind and c.get("status") == "True" for c in (obj.get("status") or {}).get("conditions") or [])


def vm_state(vm, vmi):
    """One word for the VM's state: Running, Paused, or the VM's printableStatus / the VMI's phase."""
    if vmi is not None:
        phase = (vmi.get("status") or {}).get("phase")
        if phase == "Running":
            return "Paused" if _condition_true(vmi, "Paused") else "Running"
        if vm is None:
            return phase or "Unknown"
    status = (vm.get("status") or {}) if vm is not None else {}
    return status.get("printableStatus") or "Stopped"


def is_windows(vmi, vm=None):
    """guestOSInfo.id decides when the agent reports it; otherwise the preference/OS annotations.

    kubevirt.core only read the VMI's annotations; we fall back to the VM's too, because tools
    such as the OpenShift console put vm.kubevirt.io/os on the VM object.
    """
    guest = ((vmi or {}).get("status") or {}).get("guestOSInfo") or {}
    if guest.get("id"):
        return guest["id"] == "mswindows"
    for obj in (vmi, vm):
        annotations = ((obj or {}).get("metadata") or {}).get("annotations") or {}
        for key in WINDOWS_ANNOTATIONS:
            if key in annotations:
                return str(annotations[key]).startswith("windows")
    return False


def _valid(obj):
    meta = obj.get("metadata") or {}
    return bool(meta.get("name") and meta.get("namespace"))


def build_hosts(data, settings, sanitize=lambda name: name, guest_hostname=None, warn=None):
    """Turn one cluster's fetched objects into a list of HostEntry.

    data: {"name": cluster group name, "vms": [...], "vmis": [...], "services": [...], "nodes": [...]}
    sanitize: the plugin's group name sanitizer (kept injectable so this stays pure).
    warn: receives one sentence per VM whose settings are ignored (a bad ssh port annotation).
    The only side effect: the first api_tunnel host of a source with inline credentials writes its auth file
    (settings.tunnel, see _api_tunnel.ProxyCommand).
    """
    chooser = AddressChooser(settings.address, data.get("services") or (), data.get("nodes") or (), guest_hostname,
                             warn=warn, cluster=data.get("name"))
    vms = {}
    for vm in data.get("vms") or ():
        if _valid(vm):
            vms[(vm["metadata"]["namespace"], vm["metadata"]["name"])] = vm
    vmis = {}
    for vmi in data.get("vmis") or ():
        if _valid(vmi):
            vmis[(vmi["metadata"]["namespace"], vmi["metadata"]["name"])] = vmi

    want_all = ALL_STATES in settings.states
    cluster = data["name"]
    cluster_group = sanitize(cluster)
    hosts = []
    # VMs first, then VMIs without a VM, in API order: the order kubevirt.core adds them.
    keys = list(vms) + [k for k in vmis if k not in vms]
    for key in keys:
        vm, vmi = vms.get(key), vmis.get(key)
        state = vm_state(vm, vmi)
        if not want_all and state.lower() not in settings.states:
            continue
        owner = vm if vm is not None else vmi
        meta = owner["metadata"]
        name = settings.host_format.format(namespace=meta["namespace"], name=meta["name"], uid=meta.get("uid", ""), cluster=cluster)
        variables = {}
        label_groups = []
        for prefix, obj in (("vm", vm), ("vmi", vmi)):
            if obj is None:
                continue
            variables.update(object_vars(prefix, obj))
            if settings.create_groups:
                for label, value in ((obj.get("metadata") or {}).get("labels") or {}).items():
                    group = sanitize("label_%s_%s" % (label, value))
                    if group not in label_groups:
                        label_groups.append(group)
        variables["vm_state"] = state
        if vmi is not None:
            windows = is_windows(vmi, vm)
            address = chooser.choose(vmi, winrm=windows and settings.win_connection not in SSH_CONNECTIONS, vm=vm)
            if address is not None:
                # As kubevirt.core: a host without an address gets no ansible_connection either.
                if windows:
                    variables["ansible_connection"] = settings.win_connection
                variables["ansible_host"] = address.host
                if address.port is not None or settings.unset_ansible_port:
                    variables["ansible_port"] = address.port
                variables["vm_address_source"] = address.source
                if address.source == API_TUNNEL:
                    vmi_meta = vmi["metadata"]
                    variables["ansible_ssh_common_args"] = settings.tunnel.ssh_args(vmi_meta["namespace"], vmi_meta["name"])
        hosts.append(HostEntry(name, cluster_group, sanitize("namespace_%s" % key[0]), label_groups, variables))
    return hosts
