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
from collections import namedtuple

from ansible.errors import AnsibleError
from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _args
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._args import InvalidOption
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._client import AUTH_OPTIONS
from ansible_collections.virtfleet.kubevirt.plugins.plugin_utils._api_tunnel import ProxyCommand
from ansible_collections.virtfleet.kubevirt.plugins.plugin_utils._inventory_address import (
    IP_FAMILIES, NEEDS_NETWORK_NAME, NODE_ADDRESS_TYPES, STRATEGIES, AddressSettings, default_strategies,
)
from ansible_collections.virtfleet.kubevirt.plugins.plugin_utils._inventory_populate import (
    WIN_CONNECTIONS, PopulateSettings, check_host_format,
)

# Options of the inventory source, each documented in the plugin's DOCUMENTATION with the same type, default,
# choices and aliases: tests/unit/plugins/test_option_parity.py compares this table with the documentation.
# kind: str, bool, int, list (of strings) or intlist (of integers). The top-level values are typed by Ansible's
# config system, which does not look inside `connections` entries: there _coerce() types them by kind.
ClusterOption = namedtuple("ClusterOption", ["name", "kind", "default", "choices", "aliases"])


def _option(name, kind, default=None, choices=None, aliases=()):
    return ClusterOption(name, kind, default, tuple(choices) if choices else None, tuple(aliases))


# Options that may differ per cluster: top-level values are defaults, a `connections` entry overrides them.
CLUSTER_OPTION_TABLE = (
    _option("name", "str"),
    _option("namespaces", "list"),
    _option("label_selector", "str"),
    _option("field_selector", "str"),
    _option("network_name", "str", aliases=["interface_name"]),
    _option("kube_secondary_dns", "bool", False),
    _option("use_service", "bool", True),
    _option("unset_ansible_port", "bool", True),
    _option("create_groups", "bool", False),
    _option("base_domain", "str"),
    _option("append_base_domain", "bool", False),
    _option("api_version", "str", "kubevirt.io/v1"),
    _option("host_format", "str", "{namespace}-{name}"),
    _option("default_win_ansible_connection", "str", "winrm", choices=WIN_CONNECTIONS),
    _option("states", "list", ["Running"]),
    _option("address_strategies", "list", choices=STRATEGIES),
    _option("prefer_ip_family", "str", "any", choices=IP_FAMILIES),
    _option("ssh_port", "int", 22),
    _option("winrm_ports", "intlist", [5986, 5985]),
    _option("node_address_types", "list", ["NodeName"], choices=NODE_ADDRESS_TYPES),
    _option("fail_on_forbidden", "bool", False),
    _option("page_size", "int"),
)
# Options of the whole source (not per cluster), read with get_option by the plugin itself.
SOURCE_OPTIONS = ("plugin", "include_filters", "exclude_filters", "gc_freeze", "connections")

# name -> (kind, default) of the per-cluster options.
CLUSTER_OPTIONS = dict((o.name, (o.kind, o.default)) for o in CLUSTER_OPTION_TABLE)

# The aliases kubevirt.core accepted, also inside connections entries (of the per-cluster options and of the
# connection options, which come from the client layer and its _auth doc fragment) -> canonical name.
ALIASES = dict([(alias, o.name) for o in CLUSTER_OPTION_TABLE for alias in o.aliases]
               + [(alias, name) for name, spec in _args.AUTH_ARG_SPEC.items() for alias in spec.get("aliases", ())])

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
            node_address_types=values["node_address_types"], tunnel_per_cluster=index is not None)
        self.populate = PopulateSettings(
            self.address, host_format=values["host_format"], create_groups=values["create_groups"],
            states=values["states"], unset_ansible_port=values["unset_ansible_port"],
            win_connection=values["default_win_ansible_connection"], tunnel=ProxyCommand(auth))

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
        return [auth.get("host"), auth.get("kubeconfig") if isinstance(auth.get("kubeconfig"), str) else None,
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
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.isdigit())):
            raise AnsibleError("%s must be an integer, got %r." % (where, value))
        return int(value)
    if kind in ("list", "intlist"):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise AnsibleError("%s must be a list, got %r." % (where, value))
        if kind == "intlist":
            return [_coerce(index, key, "int", v) for v in value]
        bad = [v for v in value if not isinstance(v, str)]
        if bad:
            raise AnsibleError("%s must be a list of strings; %r is not a string." % (where, bad[0]))
        return list(value)
    if not isinstance(value, str):
        raise AnsibleError("%s must be a string, got %r." % (where, value))
    return value


def _check_choices(where, option, value):
    """A value (or every item of a list option, which must not be empty) must be one of the option's choices."""
    if value is None:
        return
    if option.kind in ("list", "intlist"):
        unknown = [v for v in value if v not in option.choices]
        if unknown or not value:
            raise AnsibleError("%s must list some of %s; %r is not one." % (where, ", ".join(option.choices), (unknown or [None])[0]))
    elif value not in option.choices:
        raise AnsibleError("%s must be one of %s, got %r." % (where, ", ".join(option.choices), value))


def _check(index, values):
    def where(key):
        return _where(index, key)

    if not _API_VERSION.match(values["api_version"]):
        raise AnsibleError("%s must look like kubevirt.io/v1, got %r." % (where("api_version"), values["api_version"]))
    error = check_host_format(values["host_format"])
    if error:
        raise AnsibleError(error)
    for option in CLUSTER_OPTION_TABLE:
        if option.choices:
            _check_choices(where(option.name), option, values[option.name])
    if values["page_size"] is not None and values["page_size"] < 1:
        raise AnsibleError("%s must be a positive number of objects per list request, or left unset for one request per kind." % where("page_size"))
    for port in [values["ssh_port"]] + values["winrm_ports"]:
        if not 0 < port < 65536:
            raise AnsibleError("%s/%s must be TCP ports between 1 and 65535, got %d." % (where("ssh_port"), where("winrm_ports"), port))
    strategies = values["address_strategies"]
    if strategies is not None:
        needy = [s for s in strategies if s in NEEDS_NETWORK_NAME]
        if needy and not values["network_name"]:
            raise AnsibleError("%s uses %s, which needs %s: set it to the network or interface name." % (
                where("address_strategies"), needy[0], where("network_name")))
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
