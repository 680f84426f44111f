# -*- coding: utf-8 -*-
# Copyright: virtfleet.kubevirt contributors
# Apache License 2.0 (see LICENSE or http://www.apache.org/licenses/LICENSE-2.0)
"""Pure address choice for the inventory plugin: which ansible_host/ansible_port reaches a VMI.

Every strategy is a function of already-fetched API objects, so choosing addresses for
10,000 VMIs costs no HTTP request (except the opt-in guest agent strategy, which asks
the caller through a callback). The ``api_tunnel`` strategy needs no address at all: it names
the VMI, and the caller gives the host the ssh ProxyCommand of the API tunnel (``_api_tunnel``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import re
from collections import namedtuple

SECONDARY_DNS = "secondary_dns"
LOAD_BALANCER = "load_balancer"
NODE_PORT = "node_port"
NETWORK = "network"
FIRST_INTERFACE = "first_interface"
GUEST_AGENT_HOSTNAME = "guest_agent_hostname"
API_TUNNEL = "api_tunnel"

# Per-VM override of O(ssh_port): the port SSH listens on inside this guest, read from the VMI's annotations, then
# the VM's (tools and users annotate the VM; its template's annotations reach the VMI).
SSH_PORT_ANNOTATION = "virtfleet.kubevirt/ssh-port"
# ansible_host of a tunnelled host: a stable name ssh never resolves (the ProxyCommand connects), unique per VMI, so
# known_hosts entries and ControlPersist sockets (keyed by host, port and user) never mix two VMs.
TUNNEL_DOMAIN = "api-tunnel"

Strategy = namedtuple("Strategy", [
    "name",                # value of address_strategies and of the host variable vm_address_source
    "needs_network_name",  # only works with network_name set (checked before any request)
    "uses_services",       # reads the Services that map the SSH/WinRM port (fetched only when one is used)
])

# The address strategies, in the order they are documented (O(address_strategies) choices, checked by
# tests/unit/plugins/test_option_parity.py). A strategy that does not use Services is AddressChooser._<name>.
STRATEGY_TABLE = (
    Strategy(SECONDARY_DNS, needs_network_name=True, uses_services=False),
    Strategy(LOAD_BALANCER, needs_network_name=False, uses_services=True),
    Strategy(NODE_PORT, needs_network_name=False, uses_services=True),
    Strategy(NETWORK, needs_network_name=True, uses_services=False),
    Strategy(FIRST_INTERFACE, needs_network_name=False, uses_services=False),
    Strategy(GUEST_AGENT_HOSTNAME, needs_network_name=False, uses_services=False),
    Strategy(API_TUNNEL, needs_network_name=False, uses_services=False),
)
STRATEGIES = tuple(s.name for s in STRATEGY_TABLE)
SERVICE_STRATEGIES = tuple(s.name for s in STRATEGY_TABLE if s.uses_services)
NEEDS_NETWORK_NAME = tuple(s.name for s in STRATEGY_TABLE if s.needs_network_name)

NODE_NAME = "NodeName"
NODE_ADDRESS_TYPES = (NODE_NAME, "ExternalIP", "InternalIP", "ExternalDNS", "InternalDNS", "Hostname")

IP_FAMILIES = ("any", "ipv4", "ipv6")

Address = namedtuple("Address", ["host", "port", "source"])


class AddressSettings(object):
    """What the user configured for address choice (already validated)."""

    def __init__(self, strategies, network_name=None, base_domain=None, append_base_domain=False,
                 ip_family="any", ssh_port=22, winrm_ports=(5986, 5985), node_address_types=(NODE_NAME,),
                 tunnel_per_cluster=False):
        self.strategies = tuple(strategies)
        self.network_name = network_name
        self.base_domain = base_domain
        self.append_base_domain = append_base_domain
        self.ip_family = ip_family
        self.ssh_port = ssh_port
        self.winrm_ports = tuple(winrm_ports)
        self.node_address_types = tuple(node_address_types)
        # True for the entries of `connections`: tunnel host names then carry the cluster name, because two
        # clusters may both have a VMI ns/name.
        self.tunnel_per_cluster = tunnel_per_cluster

    @property
    def needs_services(self):
        return any(s in SERVICE_STRATEGIES for s in self.strategies)

    @property
    def needs_nodes(self):
        return NODE_PORT in self.strategies and any(t != NODE_NAME for t in self.node_address_types)


def default_strategies(network_name, kube_secondary_dns, use_service):
    """The order kubevirt.core 2.x effectively applies, derived from its three switches."""
    if network_name:
        return (SECONDARY_DNS, NETWORK) if kube_secondary_dns else (NETWORK,)
    if use_service:
        return (LOAD_BALANCER, NODE_PORT, FIRST_INTERFACE)
    return (FIRST_INTERFACE,)


def ip_family(value):
    """'ipv4', 'ipv6', or None when value is a DNS name (or garbage)."""
    try:
        return "ipv%d" % ipaddress.ip_address(value).version
    except ValueError:
        return None


def pick(candidates, family):
    """First candidate of the preferred family; a preference, so fall back to the first one."""
    candidates = [c for c in candidates if c]
    if not candidates:
        return None
    if family != "any":
        for candidate in candidates:
            if ip_family(candidate) == family:
                return candidate
    return candidates[0]


def interface_ips(interface):
    ips = list(interface.get("ipAddresses") or [])
    first = interface.get("ipAddress")
    if first and first not in ips:
        ips.insert(0, first)
    return ips


class ServiceIndex(object):
    """Services of type LoadBalancer/NodePort, found by the VMI labels their selector matches.

    The virt-launcher pod carries the VMI's labels, so a Service reaches a VMI when its
    selector is a non-empty subset of the VMI's labels (kubevirt.core only looked at
    kubevirt.io/domain; that case is included). Indexed by one selector pair so matching
    is O(labels) per VMI, not O(services).
    """

    def __init__(self, services):
        self._by_pair = {}
        for svc in sorted(services, key=lambda s: (s.get("metadata", {}).get("namespace", ""), s.get("metadata", {}).get("name", ""))):
            spec = svc.get("spec") or {}
            selector = spec.get("selector") or {}
            if spec.get("type") not in ("LoadBalancer", "NodePort") or not selector or not spec.get("ports"):
                continue
            namespace = svc.get("metadata", {}).get("namespace")
            key, value = sorted(selector.items())[0]
            self._by_pair.setdefault((namespace, key, value), []).append(svc)

    def matching(self, namespace, labels):
        found = []
        for key, value in (labels or {}).items():
            for svc in self._by_pair.get((namespace, key, value), ()):
                selector = svc["spec"]["selector"]
                if svc not in found and all(labels.get(k) == v for k, v in selector.items()):
                    found.append(svc)
        found.sort(key=lambda s: s.get("metadata", {}).get("name", ""))
        return found


def vmi_named_ports(vmi):
    """Port names declared on the VMI's interfaces, which named Service targetPorts refer to."""
    named = {}
    interfaces = (((vmi.get("spec") or {}).get("domain") or {}).get("devices") or {}).get("interfaces") or []
    for interface in interfaces:
        for port in interface.get("ports") or []:
            if port.get("name") and port.get("port") is not None:
                named.setdefault(port["name"], int(port["port"]))
    return named


def service_port(service, wanted_ports, named_ports):
    """The Service port entry whose target is the first of wanted_ports it maps, or None."""
    ports = [p for p in (service.get("spec") or {}).get("ports") or [] if (p.get("protocol") or "TCP") == "TCP"]
    for wanted in wanted_ports:
        for entry in ports:
            target = entry.get("targetPort", entry.get("port"))
            if isinstance(target, str) and not target.isdigit():
                target = named_ports.get(target)
            if target is not None and int(target) == wanted:
                return entry
    return None


def tunnel_label(cluster):
    """A cluster name as one DNS-like label of a tunnel host name (kubevirt.core's names hold '_' and '.')."""
    label = re.sub(r"[^a-z0-9-]+", "-", (cluster or "").lower()).strip("-")
    return label or "cluster"


class AddressChooser(object):
    """Applies the ordered strategies to one VMI at a time.

    warn: called with one sentence for a VM whose SSH_PORT_ANNOTATION is not a port number (the option applies).
    cluster: the cluster's name, part of tunnel host names when settings.tunnel_per_cluster.
    """

    def __init__(self, settings, services=(), nodes=(), guest_hostname=None, warn=None, cluster=None):
        self.settings = settings
        self.warn = warn
        self.tunnel_suffix = ("%s.%s" % (tunnel_label(cluster), TUNNEL_DOMAIN)) if settings.tunnel_per_cluster else TUNNEL_DOMAIN
        self.services = ServiceIndex(services) if settings.needs_services else None
        self.node_addresses = {}
        for node in nodes:
            name = node.get("metadata", {}).get("name")
            self.node_addresses[name] = (node.get("status") or {}).get("addresses") or []
        self.guest_hostname = guest_hostname

    def choose(self, vmi, winrm=False, vm=None):
        """Return an Address, or None when no strategy found one.

        winrm: the host is reached over WinRM/PSRP, so Services must map a WinRM port, not the SSH port, and the
        API tunnel (SSH only) does not apply.
        vm: the VMI's VirtualMachine, whose SSH_PORT_ANNOTATION applies when the VMI has none.
        """
        wanted = self.settings.winrm_ports if winrm else (self.ssh_port(vmi, vm),)
        services = None
        for strategy in self.settings.strategies:
            if strategy in SERVICE_STRATEGIES:
                if services is None:
                    meta = vmi.get("metadata") or {}
                    services = self.services.matching(meta.get("namespace"), meta.get("labels") or {}) if self.services else []
                found = self._from_services(strategy, vmi, services, wanted)
            elif strategy == API_TUNNEL:
                found = None if winrm else self._api_tunnel(vmi, wanted[0])
            else:
                found = getattr(self, "_" + strategy)(vmi)
            if found:
                return found
        return None

    def ssh_port(self, vmi, vm=None):
        """The guest's SSH port: SSH_PORT_ANNOTATION of the VMI, else of the VM, else the ssh_port option."""
        for kind, obj in (("VirtualMachineInstance", vmi), ("VirtualMachine", vm)):
            annotations = ((obj or {}).get("metadata") or {}).get("annotations")
            value = annotations.get(SSH_PORT_ANNOTATION) if annotations else None
            if value is None:
                continue
            text = str(value).strip()
            if text.isdigit() and 0 < int(text) < 65536:
                return int(text)
            if self.warn is not None:
                meta = obj.get("metadata") or {}
                self.warn("%s %s/%s has the annotation %s=%r, which is not a TCP port (1-65535): using port %d; fix the "
                          "annotation." % (kind, meta.get("namespace"), meta.get("name"), SSH_PORT_ANNOTATION, value,
                                           self.settings.ssh_port))
            return self.settings.ssh_port
        return self.settings.ssh_port

    def _host_with_domain(self, name):
        if self.settings.append_base_domain and self.settings.base_domain:
            return "%s.%s" % (name, self.settings.base_domain)
        return name

    def _named_interface(self, vmi):
        network = self.settings.network_name
        for interface in (vmi.get("status") or {}).get("interfaces") or []:
            if network in (interface.get("name"), interface.get("interfaceName")):
                return interface
        return None

    def _secondary_dns(self, vmi):
        # Names served by kubesecondarydns: <network>.<vm>.<namespace>.vm[.<base domain>]; it only
        # serves interfaces that report an IP, so require one as kubevirt.core does.
        interface = self._named_interface(vmi)
        if not interface or not interface_ips(interface):
            return None
        meta = vmi["metadata"]
        host = "%s.%s.%s.vm" % (self.settings.network_name, meta["name"], meta["namespace"])
        if self.settings.base_domain:
            host += "." + self.settings.base_domain
        return Address(host, None, SECONDARY_DNS)

    def _network(self, vmi):
        interface = self._named_interface(vmi)
        host = pick(interface_ips(interface), self.settings.ip_family) if interface else None
        return Address(host, None, NETWORK) if host else None

    def _first_interface(self, vmi):
        for interface in (vmi.get("status") or {}).get("interfaces") or []:
            host = pick(interface_ips(interface), self.settings.ip_family)
            if host:
                return Address(host, None, FIRST_INTERFACE)
        return None

    def _guest_agent_hostname(self, vmi):
        host = self.guest_hostname(vmi) if self.guest_hostname else None
        return Address(host, None, GUEST_AGENT_HOSTNAME) if host else None

    def _api_tunnel(self, vmi, port=None):
        # Any running VMI: virt-api dials the guest's port from inside the cluster, so nothing has to be exposed.
        # ansible_port is the guest port; the ProxyCommand passes it (%p) to the bridge.
        if (vmi.get("status") or {}).get("phase") != "Running":
            return None
        meta = vmi["metadata"]
        host = "%s.%s.%s" % (meta["name"], meta["namespace"], self.tunnel_suffix)
        return Address(host, self.settings.ssh_port if port is None else port, API_TUNNEL)

    def _from_services(self, strategy, vmi, services, wanted):
        named = None
        for svc in services:
            spec = svc["spec"]
            if strategy == LOAD_BALANCER and spec.get("type") != "LoadBalancer":
                continue
            if named is None:
                named = vmi_named_ports(vmi)
            entry = service_port(svc, wanted, named)
            if entry is None:
                continue
            if strategy == LOAD_BALANCER:
                ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
                host = pick([i.get("hostname") or i.get("ip") for i in ingress], self.settings.ip_family)
                if host and entry.get("port") is not None:
                    return Address(host, int(entry["port"]), LOAD_BALANCER)
            elif entry.get("nodePort"):
                # LoadBalancer Services allocate node ports too, so one without ingress yet still works here.
                host = self._node_host((vmi.get("status") or {}).get("nodeName"))
                if host:
                    return Address(host, int(entry["nodePort"]), NODE_PORT)
        return None

    def _node_host(self, node_name):
        if not node_name:
            return None
        addresses = self.node_addresses.get(node_name, ())
        for kind in self.settings.node_address_types:
            if kind == NODE_NAME:
                return self._host_with_domain(node_name)
            host = pick([a.get("address") for a in addresses if a.get("type") == kind], self.settings.ip_family)
            if host:
                return host
        return None
