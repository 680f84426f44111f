# -*- coding: utf-8 -*-
# Copyright: virtfleet.kubevirt contributors
# Apache License 2.0 (see LICENSE or http://www.apache.org/licenses/LICENSE-2.0)
"""Inventory options -> one validated settings object per cluster connection.

Top-level options are defaults; each entry of ``connections`` (kubevirt.core's list, one cluster
each) overrides them. Ansible's config system types the top-level options; it does not look
inside ``connections`` entries, so their values are checked here, with one clear sentence per
mistake.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import difflib
import re

from ansible.errors import AnsibleError
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.module_utils.six import string_types

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _args
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._args import InvalidOption
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._client import AUTH_OPTIONS
from ansible_collections.virtfleet.kubevirt.plugins.plugin_utils._inventory_address import (
    IP_FAMILIES, NEEDS_NETWORK_NAME, NODE_ADDRESS_TYPES, STRATEGIES, AddressSettings, default_strategies,
)
from ansible_collections.virtfleet.kubevirt.plugins.plugin_utils._inventory_populate import (
    WIN_CONNECTIONS, PopulateSettings, check_host_format,
)

# Connection options come from the client layer (documented by the _auth fragment); these are the
# aliases kubevirt.core accepted inside connections entries. They must equal the aliases in the plugin's
# DOCUMENTATION (and its doc fragment): tests/unit/plugins/inventory/test_options.py compares the two.
ALIASES = {"interface_name": "network_name", "cert_file": "client_cert", "key_file": "client_key",
           "ssl_ca_cert": "ca_cert", "verify_ssl": "validate_certs"}

# Options that may differ per cluster, with their types and defaults (defaults also in DOCUMENTATION).
CLUSTER_OPTIONS = {
    "name": ("str", None),
    "namespaces": ("list", None),
    "label_selector": ("str", None),
    "field_selector": ("str", None),
    "network_name": ("str", None),
    "kube_secondary_dns": ("bool", False),
    "use_service": ("bool", True),
    "unset_ansible_port": ("bool", True),
    "create_groups": ("bool", False),
    "base_domain": ("str", None),
    "append_base_domain": ("bool", False),
    "api_version": ("str", "kubevirt.io/v1"),
    "host_format": ("str", "{namespace}-{name}"),
    "default_win_ansible_connection": ("str", "winrm"),
    "states": ("list", ["Running"]),
    "address_strategies": ("list", None),
    "prefer_ip_family": ("str", "any"),
    "ssh_port": ("int", 22),
    "winrm_ports": ("intlist", [5986, 5985]),
    "node_address_types": ("list", ["NodeName"]),
    "fail_on_forbidden": ("bool", False),
    "page_size": ("int", 5000),
}

_API_VERSION = re.compile(r"^kubevirt\.io/v[0-9]+((alpha|beta)[0-9]+)?$")


class Connection(object):
    """Everything needed to fetch and populate one cluster."""

    def __init__(self, index, auth, values):
        self.index = index
        self.auth = auth
        self.name = values["name"]
        self.namespaces = values["namespaces"]
        self.label_selector = values["label_selector"]
        self.field_selector = values["field_selector"]
        self.api_version = values["api_version"]
        self.page_size = values["page_size"]
        self.fail_on_forbidden = values["fail_on_forbidden"]
        self.base_domain = values["base_domain"]
        strategies = values["address_strategies"] or default_strategies(
            values["network_name"], values["kube_secondary_dns"], values["use_service"])
        self.address = AddressSettings(
            strategies, network_name=values["network_name"], base_domain=values["base_domain"],
            append_base_domain=values["append_base_domain"], ip_family=values["prefer_ip_family"],
            ssh_port=values["ssh_port"], winrm_ports=values["winrm_ports"],
            node_address_types=values["node_address_types"])
        self.populate = PopulateSettings(
            self.address, host_format=values["host_format"], create_groups=values["create_groups"],
            states=values["states"], unset_ansible_port=values["unset_ansible_port"],
            win_connection=values["default_win_ansible_connection"])

    @property
    def needs_base_domain_lookup(self):
        """kubevirt.core reads the OpenShift cluster DNS base domain when a host name would use it."""
        if self.base_domain:
            return False
        strategies = self.address.strategies
        return "secondary_dns" in strategies or (
            "node_port" in strategies and self.address.append_base_domain and "NodeName" in self.address.node_address_types)

    def fetch_fingerprint(self):
        """What the fetched data depends on (never credentials): a cached result is reused only if this matches."""
        auth = self.auth
        return [auth.get("host"), auth.get("kubeconfig") if isinstance(auth.get("kubeconfig"), string_types) else None,
                auth.get("context"), self.namespaces, self.label_selector, self.field_selector, self.api_version,
                self.address.needs_services, self.address.needs_nodes, self.needs_base_domain_lookup,
                "guest_agent_hostname" in self.address.strategies]


def _where(index, key):
    return "connections[%d].%s" % (index, key) if index is not None else key


def _coerce(index, key, kind, value):
    if value is None:
        return None
    where = _where(index, key)
    if kind == "bool":
        try:
            return boolean(value, strict=True)
        except TypeError:
            raise AnsibleError("%s must be a boolean (true or false), got %r." % (where, value))
    if kind == "int":
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, string_types) and value.isdigit())):
            raise AnsibleError("%s must be an integer, got %r." % (where, value))
        return int(value)
    if kind in ("list", "intlist"):
        if isinstance(value, string_types):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise AnsibleError("%s must be a list, got %r." % (where, value))
        if kind == "intlist":
            return [_coerce(index, key, "int", v) for v in value]
        bad = [v for v in value if not isinstance(v, string_types)]
        if bad:
            raise AnsibleError("%s must be a list of strings; %r is not a string." % (where, bad[0]))
        return list(value)
    if not isinstance(value, string_types):
        raise AnsibleError("%s must be a string, got %r." % (where, value))
    return value


def _check(index, values):
    def where(key):
        return _where(index, key)

    if not _API_VERSION.match(values["api_version"]):
        raise AnsibleError("%s must look like kubevirt.io/v1, got %r." % (where("api_version"), values["api_version"]))
    error = check_host_format(values["host_format"])
    if error:
        raise AnsibleError(error)
    if values["prefer_ip_family"] not in IP_FAMILIES:
        raise AnsibleError("%s must be one of %s, got %r." % (where("prefer_ip_family"), ", ".join(IP_FAMILIES), values["prefer_ip_family"]))
    if values["default_win_ansible_connection"] not in WIN_CONNECTIONS:
        raise AnsibleError("%s must be one of %s, got %r." % (
            where("default_win_ansible_connection"), ", ".join(WIN_CONNECTIONS), values["default_win_ansible_connection"]))
    if values["page_size"] < 1:
        raise AnsibleError("%s must be a positive number of objects per list request." % where("page_size"))
    for port in [values["ssh_port"]] + values["winrm_ports"]:
        if not 0 < port < 65536:
            raise AnsibleError("%s/%s must be TCP ports between 1 and 65535, got %d." % (where("ssh_port"), where("winrm_ports"), port))
    strategies = values["address_strategies"]
    if strategies is not None:
        unknown = [s for s in strategies if s not in STRATEGIES]
        if unknown or not strategies:
            raise AnsibleError("%s must list some of %s; %r is not one." % (where("address_strategies"), ", ".join(STRATEGIES),
                                                                            (unknown or [None])[0]))
        needy = [s for s in strategies if s in NEEDS_NETWORK_NAME]
        if needy and not values["network_name"]:
            raise AnsibleError("%s uses %s, which needs %s: set it to the network or interface name." % (
                where("address_strategies"), needy[0], where("network_name")))
    unknown = [t for t in values["node_address_types"] if t not in NODE_ADDRESS_TYPES]
    if unknown or not values["node_address_types"]:
        raise AnsibleError("%s must list some of %s; %r is not one." % (where("node_address_types"), ", ".join(NODE_ADDRESS_TYPES),
                                                                        (unknown or [None])[0]))
    if not values["states"]:
        raise AnsibleError("%s must list at least one state (e.g. Running) or 'all'." % where("states"))
    if values["namespaces"] is not None and not all(values["namespaces"]):
        raise AnsibleError("%s must not contain empty names." % where("namespaces"))
    try:
        for namespace in values["namespaces"] or []:
            _args.check_dns_label(namespace, where("namespaces") + " entry", "namespace name")
        if values["label_selector"]:
            _args.check_label_selector(values["label_selector"], where("label_selector"))
        if values["field_selector"]:
            _args.check_field_selector(values["field_selector"], where("field_selector"))
    except InvalidOption as exc:
        raise AnsibleError(str(exc))


def _unknown(key, known, where):
    close = difflib.get_close_matches(key, list(known), n=1)
    fix = "did you mean %s?" % close[0] if close else "valid options are %s." % ", ".join(sorted(known))
    return "%s has the unknown option %r: %s" % (where, key, fix)


def check_unknown_options(config, known, source):
    """Ansible's config system ignores keys a plugin does not declare; a typo (namespace for namespaces) would
    silently widen the inventory, so the source file's keys are checked against the declared options."""
    for key in sorted(config or {}):
        if key not in known:
            raise AnsibleError(_unknown(key, known, "The inventory source %s" % source))


def build_connections(options, connections=None):
    """options: top-level values (as get_option returns them) -> list of Connection.

    Raises AnsibleError with one sentence naming the option for every invalid value.
    """
    base = {}
    for key, (kind, default) in CLUSTER_OPTIONS.items():
        value = _coerce(None, key, kind, options.get(key))
        base[key] = default if value is None else value
    base_auth = dict((k, options.get(k)) for k in AUTH_OPTIONS if options.get(k) is not None)

    if connections is None or connections == []:
        _check(None, base)
        return [Connection(None, base_auth, base)]
    if not isinstance(connections, list):
        raise AnsibleError("connections must be a list of dictionaries, one per cluster.")
    result = []
    for index, entry in enumerate(connections):
        if not isinstance(entry, dict):
            raise AnsibleError("connections[%d] must be a dictionary of connection options, got %r." % (index, entry))
        values, auth = dict(base), dict(base_auth)
        for raw_key, value in entry.items():
            key = ALIASES.get(raw_key, raw_key)
            if key in CLUSTER_OPTIONS:
                kind, default = CLUSTER_OPTIONS[key]
                value = _coerce(index, key, kind, value)
                values[key] = default if value is None else value
            elif key in AUTH_OPTIONS:
                if key == "validate_certs" or key == "persist_config":
                    value = _coerce(index, key, "bool", value)
                if value is not None:
                    auth[key] = value
            else:
                raise AnsibleError(_unknown(raw_key, sorted(set(CLUSTER_OPTIONS) | set(AUTH_OPTIONS) | set(ALIASES)),
                                            "connections[%d]" % index))
        _check(index, values)
        result.append(Connection(index, auth, values))
    return result
