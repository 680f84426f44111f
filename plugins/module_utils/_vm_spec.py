# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet.kubevirt contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure functions: kubevirt_vm options -> VirtualMachine manifest.

No I/O here. The options of one VM (their argument spec, used at the top level of the module and as the
suboptions of each item of ``vms``) are one table in ``_vm_options``; its names are importable from here too.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import hashlib
import json
import re

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _args
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._args import InvalidOption
# The per-VM option table and what is derived from it (names kept importable from here).
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._vm_options import (  # noqa: F401 pylint: disable=unused-import
    CONVENIENCE_OPTIONS, DEFINITION_EXCLUSIVE, EVICTION_STRATEGIES, MERGED_DICT_OPTIONS, PER_VM_OPTIONS, RUN_STRATEGIES,
    STATES, VM_OPTIONS, declares_body, defines, uses_convenience, vm_option_rules, vm_option_spec,
)

VM_KIND = "VirtualMachine"
DEFAULT_API_VERSION = "kubevirt.io/v1"
ROOT_DISK = "rootdisk"
CLOUD_INIT_DISK = "cloudinit"
DEFAULT_NETWORK = "default"


class VMSpecError(ValueError):
    """An option value that cannot be turned into a VirtualMachine; the message names the option."""


def merge_item(defaults, item):
    """One `vms` item over the shared defaults: the item wins; labels/annotations/node_selector merge by key."""
    out = {}
    for opt in PER_VM_OPTIONS:
        base = defaults.get(opt)
        over = item.get(opt)
        if opt in MERGED_DICT_OPTIONS and isinstance(base, dict) and isinstance(over, dict):
            merged = dict(base)
            merged.update(over)
            out[opt] = merged
        else:
            out[opt] = copy.deepcopy(over if over is not None else base)
    return out


def deep_merge(base, over):
    """`over` wins; dicts merge recursively, lists and scalars are replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            out[key] = deep_merge(base.get(key), value) if key in base else copy.deepcopy(value)
        return out
    return copy.deepcopy(over)


def _str_map(value, option):
    if value is None:
        return None
    out = {}
    for key, val in value.items():
        if isinstance(val, (dict, list)):
            raise VMSpecError("Option %s: the value of key %r must be a string, not a %s." % (option, key, type(val).__name__))
        if isinstance(val, bool):
            val = "true" if val else "false"
        out[str(key)] = "" if val is None else str(val)
    return out


def _boot_disk(p, name):
    """(volume, disk, data volume template or None) for the `boot_disk` option."""
    bd = p["boot_disk"]
    disk = {"name": ROOT_DISK, "disk": {"bus": bd.get("bus") or "virtio"}}
    if bd.get("container_image"):
        return {"name": ROOT_DISK, "containerDisk": {"image": bd["container_image"]}}, disk, None
    if bd.get("pvc"):
        return {"name": ROOT_DISK, "persistentVolumeClaim": {"claimName": bd["pvc"]}}, disk, None
    if not name:
        raise VMSpecError("Option boot_disk: a DataVolume boot disk (url, registry or clone_from) needs the VM's name; "
                          "use name instead of generate_name.")
    dv_name = "%s-%s" % (name, ROOT_DISK)
    if bd.get("url"):
        source = {"http": {"url": bd["url"]}}
    elif bd.get("registry"):
        url = bd["registry"]
        source = {"registry": {"url": url if "://" in url else "docker://" + url}}
    else:
        clone = {"name": bd["clone_from"]["name"]}
        if bd["clone_from"].get("namespace") or p.get("namespace"):
            clone["namespace"] = bd["clone_from"].get("namespace") or p["namespace"]
        source = {"pvc": clone}
    storage = {}
    if bd.get("size"):
        storage["resources"] = {"requests": {"storage": str(bd["size"])}}
    if bd.get("storage_class"):
        storage["storageClassName"] = bd["storage_class"]
    if bd.get("access_modes"):
        storage["accessModes"] = list(bd["access_modes"])
    dvt = {"metadata": {"name": dv_name}, "spec": {"source": source, "storage": storage}}
    return {"name": ROOT_DISK, "dataVolume": {"name": dv_name}}, disk, dvt


def _yaml_quote(value):
    # cloud-config is YAML; JSON strings are valid YAML scalars and need no YAML library here.
    return json.dumps(value)


def _cloud_init(ci):
    """The cloudInitNoCloud volume source for the `cloud_init` option."""
    source = {}
    if ci.get("user_data"):
        source["userData"] = ci["user_data"]
    elif ci.get("ssh_authorized_keys") or ci.get("password") or ci.get("user"):
        lines = ["#cloud-config"]
        if ci.get("user"):
            lines.append("user: %s" % _yaml_quote(ci["user"]))
        if ci.get("password"):
            lines.append("password: %s" % _yaml_quote(ci["password"]))
            lines.append("chpasswd:")
            lines.append("  expire: false")
        if ci.get("ssh_authorized_keys"):
            lines.append("ssh_authorized_keys:")
            lines.extend("  - %s" % _yaml_quote(key) for key in ci["ssh_authorized_keys"])
        source["userData"] = "\n".join(lines) + "\n"
    if ci.get("network_data"):
        source["networkData"] = ci["network_data"]
    if not source:
        raise VMSpecError("Option cloud_init: give at least one of user_data, network_data, user, password "
                          "or ssh_authorized_keys.")
    return source


def _networks(nets):
    networks, interfaces = [], []
    for net in nets:
        name = net["name"]
        if net.get("multus"):
            networks.append({"name": name, "multus": {"networkName": net["multus"]}})
            binding = net.get("binding") or "bridge"
        else:
            networks.append({"name": name, "pod": {}})
            binding = net.get("binding") or "masquerade"
        iface = {"name": name, binding: {}}
        if net.get("mac_address"):
            iface["macAddress"] = net["mac_address"]
        if net.get("model"):
            iface["model"] = net["model"]
        interfaces.append(iface)
    pods = [n["name"] for n in nets if not n.get("multus")]
    if len(pods) > 1:
        raise VMSpecError("Option networks: only one pod network is allowed, got %s; give multus for the others."
                          % ", ".join(pods))
    return networks, interfaces


def _template_spec(p, name, implied=True):
    """The VMI template spec from the convenience options (before `spec` is merged over it).

    ``implied=False`` leaves out what no option names (the default pod network): an update that only writes the
    fields a task gives must not add it to a VM that exists.
    """
    tspec = {"domain": {"devices": {}}}
    domain = tspec["domain"]
    cpu = {k: v for k, v in (p.get("cpu") or {}).items() if v is not None}
    if cpu:
        domain["cpu"] = cpu
    if p.get("memory"):
        domain["memory"] = {"guest": str(p["memory"])}
    volumes, disks, dvts = [], [], []
    if p.get("boot_disk"):
        volume, disk, dvt = _boot_disk(p, name)
        volumes.append(volume)
        disks.append(disk)
        if dvt:
            dvts.append(dvt)
    if p.get("cloud_init"):
        volumes.append({"name": CLOUD_INIT_DISK, "cloudInitNoCloud": _cloud_init(p["cloud_init"])})
        disks.append({"name": CLOUD_INIT_DISK, "disk": {"bus": "virtio"}})
    if disks:
        domain["devices"]["disks"] = disks
        tspec["volumes"] = volumes
    user_spec = p.get("spec") or {}
    user_nets = "networks" in user_spec or "interfaces" in (user_spec.get("domain") or {}).get("devices", {})
    nets = p.get("networks")
    if nets is None and uses_convenience(p) and not user_nets and implied:
        nets = [{"name": DEFAULT_NETWORK}]
    if nets:
        networks, interfaces = _networks(nets)
        tspec["networks"] = networks
        domain["devices"]["interfaces"] = interfaces
    if p.get("node_selector"):
        tspec["nodeSelector"] = _str_map(p["node_selector"], "node_selector")
    if p.get("tolerations"):
        tspec["tolerations"] = copy.deepcopy(p["tolerations"])
    if p.get("eviction_strategy"):
        tspec["evictionStrategy"] = p["eviction_strategy"]
    return tspec, dvts


def check_state(p, state):
    """Raise VMSpecError when the requested state contradicts the given run strategy."""
    strategy = p.get("run_strategy")
    if p.get("running") is not None:
        strategy = "Always" if p["running"] else "Halted"
        given = "running=%s" % ("true" if p["running"] else "false")
    else:
        given = "run_strategy=%s" % strategy
    if state == "stopped" and strategy == "Always":
        raise VMSpecError("state=stopped contradicts %s: the VM would be started again; drop %s or use run_strategy=Halted."
                          % (given, given.split("=")[0]))
    if state in ("started", "restarted", "restart", "paused") and strategy == "Halted":
        raise VMSpecError("state=%s contradicts %s: the VM would be stopped again; drop %s or use run_strategy=Always."
                          % (state, given, given.split("=")[0]))


def run_strategy_of(spec):
    """The effective run strategy of a VM spec (`running` is the deprecated spelling), or None."""
    if not spec:
        return None
    if spec.get("runStrategy"):
        return spec["runStrategy"]
    if spec.get("running") is True:
        return "Always"
    if spec.get("running") is False:
        return "Halted"
    return None


def _apply_run_strategy(vm, p, state, live):
    """Run strategy rule: on create default Always (Halted for state=stopped) unless given; on update, only if given.

    `spec.running` is deprecated: it is only sent when the user set `running` (or their definition has it).
    """
    spec = vm["spec"]
    if p.get("running") is not None:
        spec["running"] = bool(p["running"])
        spec.pop("runStrategy", None)
    elif p.get("run_strategy"):
        spec["runStrategy"] = p["run_strategy"]
        spec.pop("running", None)
    if "running" in spec or "runStrategy" in spec:
        return
    if live is None:
        spec["runStrategy"] = "Halted" if state == "stopped" else "Always"


# Lists of named elements that the convenience options build element by element (path in the VM, key of an
# element's name). An update in the default mode merges them into the live lists by name; a list the user gives
# whole (through `spec` or `data_volume_templates`) replaces the live one, as a JSON merge patch does.
NAMED_LISTS = (
    (("spec", "template", "spec", "domain", "devices", "disks"), ("name",)),
    (("spec", "template", "spec", "domain", "devices", "interfaces"), ("name",)),
    (("spec", "template", "spec", "volumes"), ("name",)),
    (("spec", "template", "spec", "networks"), ("name",)),
    (("spec", "dataVolumeTemplates"), ("metadata", "name")),
)


def _has_path(obj, path):
    for key in path:
        if not isinstance(obj, dict) or key not in obj:
            return False
        obj = obj[key]
    return True


def convenience_lists(p):
    """The NAMED_LISTS entries that this VM's convenience options build and the user does not give whole."""
    if p.get("definition") or not uses_convenience(p):
        return []
    out = []
    for path, name_key in NAMED_LISTS:
        if path[:3] == ("spec", "template", "spec"):
            given = _has_path(p.get("spec") or {}, path[3:])
        else:
            given = p.get("data_volume_templates") is not None
        if not given:
            out.append((path, name_key))
    return out


def build_vm(p, state="present", live=None, api_version=DEFAULT_API_VERSION, implied=True):
    """The desired VirtualMachine for one VM's options.

    ``live`` is the VM as it exists (None when it does not): it only decides the create-time run strategy default.
    ``implied=False``: leave out defaults no option names (see ``_template_spec``).
    """
    name = p.get("name")
    if p.get("definition"):
        vm = copy.deepcopy(p["definition"])
        if not isinstance(vm.get("spec"), dict):
            raise VMSpecError("Option definition: a VirtualMachine manifest needs a spec (with spec.template).")
        if vm.get("kind") not in (None, VM_KIND):
            raise VMSpecError("Option definition: kind must be VirtualMachine, got %r." % vm.get("kind"))
        vm.setdefault("apiVersion", api_version)
        vm["kind"] = VM_KIND
        meta = vm.setdefault("metadata", {})
        for key in ("name", "namespace"):
            if p.get(key) and meta.get(key) and meta[key] != p[key]:
                raise VMSpecError("Options %s and definition disagree: %r versus metadata.%s %r." % (key, p[key], key, meta[key]))
            if p.get(key):
                meta[key] = p[key]
        if not meta.get("name") and not meta.get("generateName"):
            raise VMSpecError("Option definition: give name (or metadata.name in the definition).")
        for drop in ("resourceVersion", "uid", "creationTimestamp", "managedFields", "generation", "selfLink"):
            meta.pop(drop, None)
        vm.pop("status", None)
        _apply_run_strategy(vm, {}, state, live)
        return vm

    meta = {}
    if name:
        meta["name"] = name
    if p.get("generate_name"):
        meta["generateName"] = p["generate_name"]
    if p.get("namespace"):
        meta["namespace"] = p["namespace"]
    labels = _str_map(p.get("labels"), "labels")
    annotations = _str_map(p.get("annotations"), "annotations")
    template = {}
    # kubevirt.core copies labels and annotations onto the VMI template; kept for compatibility.
    if labels is not None:
        meta["labels"] = labels
        template.setdefault("metadata", {})["labels"] = dict(labels)
    if annotations is not None:
        meta["annotations"] = annotations
        template.setdefault("metadata", {})["annotations"] = dict(annotations)

    tspec, dvts = _template_spec(p, name, implied)
    if p.get("spec"):
        tspec = deep_merge(tspec, p["spec"])
    template["spec"] = tspec

    spec = {}
    if p.get("instancetype"):
        spec["instancetype"] = copy.deepcopy(p["instancetype"])
    if p.get("preference"):
        spec["preference"] = copy.deepcopy(p["preference"])
    user_dvts = copy.deepcopy(p.get("data_volume_templates") or [])
    taken = set((d.get("metadata") or {}).get("name") for d in user_dvts)
    all_dvts = user_dvts + [d for d in dvts if d["metadata"]["name"] not in taken]
    if all_dvts:
        spec["dataVolumeTemplates"] = all_dvts
    spec["template"] = template
    vm = {"apiVersion": api_version, "kind": VM_KIND, "metadata": meta, "spec": spec}
    _apply_run_strategy(vm, p, state, live)
    return vm


# --- validation before any request ---------------------------------------------------------------------------

_MAC = re.compile(r'^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$')
TOLERATION_OPERATORS = ("Exists", "Equal")
TOLERATION_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def _check_ref(value, option, kinds):
    if not isinstance(value, dict) or not value.get("name"):
        raise InvalidOption("%s must be a dictionary with a name (and optionally kind: %s), such as {name: u1.medium}."
                            % (option, " or ".join(kinds)))
    _args.check_dns_subdomain(value["name"], option + ".name")
    # KubeVirt matches the kind case-insensitively and also takes the plural resource name.
    accepted = set(k.lower() for k in kinds) | set(k.lower() + "s" for k in kinds)
    if value.get("kind") is not None and str(value["kind"]).lower() not in accepted:
        raise InvalidOption("%s.kind must be %s, got %r." % (option, " or ".join(kinds), value["kind"]))


def _check_tolerations(tolerations):
    for i, tol in enumerate(tolerations or []):
        where = "tolerations[%d]" % i
        if tol.get("operator") not in (None,) + TOLERATION_OPERATORS:
            raise InvalidOption("%s.operator must be Exists or Equal, got %r." % (where, tol["operator"]))
        if tol.get("effect") not in (None, "") + TOLERATION_EFFECTS:
            raise InvalidOption("%s.effect must be one of %s (or empty for all), got %r."
                                % (where, ", ".join(TOLERATION_EFFECTS), tol["effect"]))
        if tol.get("key"):
            _args.check_label_key(tol["key"], where + ".key")
        if tol.get("operator") == "Exists" and tol.get("value"):
            raise InvalidOption("%s has operator Exists and a value: drop value, or use operator Equal." % where)


def _check_boot_disk(bd):
    if bd.get("container_image"):
        _args.check_image(bd["container_image"], "boot_disk.container_image")
    if bd.get("registry"):
        _args.check_image(bd["registry"], "boot_disk.registry", allow_scheme=True)
    if bd.get("url") and not re.match(r"^(https?|s3|gcs)://\S+$", bd["url"]):
        raise InvalidOption('boot_disk.url "%s" is not a URL CDI can import from: use http(s)://host/path/disk.qcow2.' % bd["url"])
    if bd.get("size") is not None:
        _args.check_quantity(bd["size"], "boot_disk.size", example="20Gi")
    if bd.get("pvc"):
        _args.check_dns_subdomain(bd["pvc"], "boot_disk.pvc", "PersistentVolumeClaim name")
    if bd.get("storage_class"):
        _args.check_dns_subdomain(bd["storage_class"], "boot_disk.storage_class", "StorageClass name")
    clone = bd.get("clone_from") or {}
    if clone.get("name"):
        _args.check_dns_subdomain(clone["name"], "boot_disk.clone_from.name", "PersistentVolumeClaim name")
    if clone.get("namespace"):
        _args.check_dns_label(clone["namespace"], "boot_disk.clone_from.namespace", "namespace name")


def _check_definition(definition):
    kind = definition.get("kind")
    if kind not in (None, VM_KIND):
        raise InvalidOption("definition has kind %s: give a VirtualMachine manifest (kind: VirtualMachine, apiVersion: "
                            "kubevirt.io/v1), or use a module for %s." % (kind, kind))
    if definition.get("apiVersion") is not None:
        _args.check_api_version(definition["apiVersion"], "definition apiVersion")
    meta = definition.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        raise InvalidOption("definition metadata must be a dictionary (name, namespace, labels...).")
    meta = meta or {}
    if meta.get("name"):
        _args.check_dns_subdomain(meta["name"], "definition metadata.name")
    if meta.get("generateName"):
        _args.check_generate_name(meta["generateName"], "definition metadata.generateName")
    if meta.get("namespace"):
        _args.check_dns_label(meta["namespace"], "definition metadata.namespace", "namespace name")
    if meta.get("labels") is not None:
        _args.check_labels(meta["labels"], "definition metadata.labels")
    spec = definition.get("spec")
    if not isinstance(spec, dict) or not isinstance(spec.get("template"), dict):
        raise InvalidOption("definition needs a spec with a template (spec.template.spec.domain...): "
                            "see the VirtualMachine examples, or use the spec option instead.")


def _check_spec_option(spec):
    if not spec:
        return
    whole = [key for key in ("apiVersion", "kind", "metadata") if key in spec]
    if whole:
        raise InvalidOption("spec has %s, so it looks like a whole manifest: spec is the VM template's spec (domain, "
                            "volumes, networks...); give a whole VirtualMachine as definition instead." % ", ".join(whole))
    if "template" in spec or "runStrategy" in spec or "running" in spec:
        raise InvalidOption("spec has %s, which belongs to the VirtualMachine's spec: spec is the VM template's spec "
                            "(spec.template.spec); move its template.spec up, and use run_strategy for the run strategy."
                            % ", ".join(k for k in ("template", "runStrategy", "running") if k in spec))


def check_vm_options(p, state, api_version=DEFAULT_API_VERSION):
    """Raise InvalidOption for one VM's options (after the ``vms`` merge) that the API server would reject."""
    if p.get("name"):
        _args.check_dns_subdomain(p["name"], "name", "VirtualMachine name")
    if p.get("generate_name"):
        _args.check_generate_name(p["generate_name"])
    if p.get("namespace"):
        _args.check_dns_label(p["namespace"], "namespace", "namespace name")
    if p.get("definition") is not None:
        _check_definition(p["definition"])
    _args.check_labels(p.get("labels"), "labels")
    _check_spec_option(p.get("spec"))
    for key, value in (p.get("annotations") or {}).items():
        _args.check_label_key(key, "annotations")
        if isinstance(value, (dict, list)):
            raise InvalidOption("annotations value of %s must be a string: quote it, for example with to_json." % key)
    for key, value in (p.get("node_selector") or {}).items():
        _args.check_label_key(key, "node_selector")
        if isinstance(value, (dict, list)):
            raise InvalidOption("node_selector value of %s must be a string, such as node-role.kubernetes.io/worker: ''." % key)
        _args.check_label_value(key, "true" if value is True else "false" if value is False else value, "node_selector")
    if p.get("memory") is not None:
        _args.check_quantity(p["memory"], "memory")
    for key, value in (p.get("cpu") or {}).items():
        if key != "model" and value is not None and value < 1:
            raise InvalidOption("cpu.%s must be 1 or more, got %s." % (key, value))
    if p.get("boot_disk"):
        _check_boot_disk(p["boot_disk"])
    for net in p.get("networks") or []:
        if net.get("mac_address") and not _MAC.match(net["mac_address"]):
            raise InvalidOption('networks %s mac_address "%s" is not a MAC address: write six hex pairs such as '
                                '02:00:00:00:00:01.' % (net["name"], net["mac_address"]))
    _check_tolerations(p.get("tolerations"))
    if p.get("instancetype"):
        _check_ref(p["instancetype"], "instancetype", ("VirtualMachineInstancetype", "VirtualMachineClusterInstancetype"))
    if p.get("preference"):
        _check_ref(p["preference"], "preference", ("VirtualMachinePreference", "VirtualMachineClusterPreference"))
    for i, dvt in enumerate(p.get("data_volume_templates") or []):
        name = ((dvt or {}).get("metadata") or {}).get("name")
        if not name:
            raise InvalidOption("data_volume_templates[%d] needs metadata.name: name the DataVolume (and refer to it from "
                                "a dataVolume volume)." % i)
        _args.check_dns_subdomain(name, "data_volume_templates[%d] metadata.name" % i, "DataVolume name")
    if state != "absent":
        # A trial build: what build_vm rejects later (pod networks, empty cloud_init...) is rejected now.
        try:
            build_vm(p, state, live=None, api_version=api_version)
        except VMSpecError as exc:
            raise InvalidOption(str(exc))


def check_task(params):
    """Validate a whole kubevirt_vm task (top level and every ``vms`` item) before any request.

    Raises InvalidOption; for an item the message starts with ``vms[i]``.
    """
    _args.check_api_version(params.get("api_version"))
    _args.check_seconds(params.get("wait_timeout"), "wait_timeout")
    _args.check_seconds(params.get("wait_sleep"), "wait_sleep")
    _args.check_seconds(params.get("grace_period_seconds"), "grace_period_seconds")
    api_version = params.get("api_version") or DEFAULT_API_VERSION
    top_state = params.get("state") or "present"
    defaults = dict((k, params.get(k)) for k in PER_VM_OPTIONS)
    if params.get("vms") is None:
        check_vm_options(defaults, top_state, api_version)
        return
    for i, item in enumerate(params["vms"]):
        try:
            check_vm_options(merge_item(defaults, item), item.get("state") or top_state, api_version)
        except (InvalidOption, VMSpecError) as exc:
            raise InvalidOption("vms[%d]%s: %s" % (i, " (%s)" % item["name"] if item.get("name") else "", exc))


# --- cloud-init user data is sensitive ------------------------------------------------------------------------
# It routinely carries passwords, keys and tokens. The module sends it to the API server but never shows it:
# the values given are masked (no_log), and every userData read back from a VM is replaced by a marker.

CLOUD_INIT_SOURCES = ("cloudInitNoCloud", "cloudInitConfigDrive")
USER_DATA_KEYS = ("userData", "userDataBase64")


def _user_data_values(node, out):
    if isinstance(node, dict):
        for key, value in node.items():
            if key in CLOUD_INIT_SOURCES and isinstance(value, dict):
                out.update(v for k, v in value.items() if k in USER_DATA_KEYS and isinstance(v, str) and v)
            else:
                _user_data_values(value, out)
    elif isinstance(node, list):
        for value in node:
            _user_data_values(value, out)


def sensitive_values(params):
    """The cloud-init user data inside spec, definition and vms items (cloud_init.user_data is no_log already)."""
    out = set()
    items = [params] + list(params.get("vms") or [])
    for item in items:
        if isinstance(item, dict):
            _user_data_values(item.get("spec"), out)
            _user_data_values(item.get("definition"), out)
    return out


def user_data_marker(value):
    return "<hidden: cloud-init user data, sha256:%s>" % hashlib.sha256(value.encode("utf-8")).hexdigest()[:12]


def redact_user_data(node):
    """A copy of a result with every cloud-init userData/userDataBase64 replaced by a marker (a short digest,
    so a diff still shows that it changed)."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in CLOUD_INIT_SOURCES and isinstance(value, dict):
                out[key] = dict((k, user_data_marker(v) if k in USER_DATA_KEYS and isinstance(v, str) else redact_user_data(v))
                                for k, v in value.items())
            else:
                out[key] = redact_user_data(value)
        return out
    if isinstance(node, list):
        return [redact_user_data(v) for v in node]
    return node
