"""Address choice strategies (pure): which ansible_host / ansible_port a VMI gets."""
import pytest

from ansible_collections.virtfleet.kubevirt.plugins.plugin_utils._inventory_address import (
    Address, AddressChooser, AddressSettings, default_strategies, pick, service_port, ServiceIndex,
)

from .objects import node, service, vmi

DUAL = [{"name": "default", "interfaceName": "eth0", "ipAddress": "10.0.0.5",
         "ipAddresses": ["10.0.0.5", "fd00::5"]},
        {"name": "storage", "interfaceName": "eth1", "ipAddress": "192.168.10.5", "ipAddresses": ["192.168.10.5"]}]
LABELS = {"kubevirt.io/domain": "web", "app": "web"}
NODES = [node("node01", [("InternalIP", "192.0.2.11"), ("InternalIP", "2001:db8::11"), ("ExternalIP", "198.51.100.11"),
                         ("Hostname", "node01")])]


def choose(settings, obj, services=(), nodes=None, winrm=False, guest=None):
    return AddressChooser(settings, services, NODES if nodes is None else nodes, guest).choose(obj, winrm=winrm)


@pytest.mark.parametrize("network_name, secondary_dns, use_service, expected", [
    (None, False, True, ("load_balancer", "node_port", "first_interface")),
    (None, False, False, ("first_interface",)),
    (None, True, True, ("load_balancer", "node_port", "first_interface")),
    ("storage", False, True, ("network",)),
    ("storage", True, True, ("secondary_dns", "network")),
])
def test_default_strategies_follow_kubevirt_core_switches(network_name, secondary_dns, use_service, expected):
    assert default_strategies(network_name, secondary_dns, use_service) == expected


@pytest.mark.parametrize("candidates, family, expected", [
    (["10.0.0.5", "fd00::5"], "any", "10.0.0.5"),
    (["10.0.0.5", "fd00::5"], "ipv6", "fd00::5"),
    (["fd00::5", "10.0.0.5"], "ipv4", "10.0.0.5"),
    (["fd00::5"], "ipv4", "fd00::5"),  # a preference, not a filter
    (["lb.example.com", "fd00::5"], "ipv6", "fd00::5"),
    ([None, ""], "any", None),
    ([], "ipv4", None),
])
def test_pick_prefers_family(candidates, family, expected):
    assert pick(candidates, family) == expected


@pytest.mark.parametrize("strategies, network, family, expected", [
    (("first_interface",), None, "any", Address("10.0.0.5", None, "first_interface")),
    (("first_interface",), None, "ipv6", Address("fd00::5", None, "first_interface")),
    (("network",), "storage", "any", Address("192.168.10.5", None, "network")),
    (("network",), "eth1", "any", Address("192.168.10.5", None, "network")),  # in-guest interface name
    (("network",), "missing", "any", None),
    (("network", "first_interface"), "missing", "any", Address("10.0.0.5", None, "first_interface")),
    (("secondary_dns",), "storage", "any", Address("storage.vm1.ns1.vm", None, "secondary_dns")),
    (("secondary_dns", "network"), "missing", "any", None),
])
def test_interface_strategies(strategies, network, family, expected):
    settings = AddressSettings(strategies, network_name=network, ip_family=family)
    assert choose(settings, vmi("vm1", "ns1", interfaces=DUAL)) == expected


def test_secondary_dns_appends_base_domain():
    settings = AddressSettings(("secondary_dns",), network_name="storage", base_domain="apps.example.com")
    assert choose(settings, vmi("vm1", "ns1", interfaces=DUAL)).host == "storage.vm1.ns1.vm.apps.example.com"


def test_first_interface_skips_interfaces_without_ip():
    ifaces = [{"name": "default", "interfaceName": "eth0"}, {"name": "b", "ipAddress": "10.1.1.1"}]
    assert choose(AddressSettings(("first_interface",)), vmi("v", interfaces=ifaces)).host == "10.1.1.1"


def test_no_interfaces_no_address():
    assert choose(AddressSettings(("first_interface",)), vmi("v", phase="Scheduling")) is None


LB = service("web-lb", type_="LoadBalancer", selector={"kubevirt.io/domain": "web"},
             ports=[{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080},
                    {"name": "ssh", "port": 2222, "targetPort": 22, "nodePort": 30222}],
             ingress=[{"ip": "203.0.113.7"}, {"ip": "2001:db8::7"}])
NP = service("web-np", selector={"app": "web"},
             ports=[{"name": "ssh", "port": 22, "targetPort": "ssh", "nodePort": 31022},
                    {"name": "winrm", "port": 5986, "targetPort": 5986, "nodePort": 31986}])
OTHER = service("other-np", selector={"app": "other"})
OTHER_NS = service("web-np", namespace="elsewhere", selector={"app": "web"})


@pytest.mark.parametrize("strategies, node_types, family, winrm, expected", [
    (("load_balancer", "node_port", "first_interface"), ("NodeName",), "any", False, Address("203.0.113.7", 2222, "load_balancer")),
    (("load_balancer",), ("NodeName",), "ipv6", False, Address("2001:db8::7", 2222, "load_balancer")),
    (("node_port",), ("NodeName",), "any", False, Address("node01", 30222, "node_port")),  # LB Services have node ports too
    (("node_port",), ("ExternalIP", "InternalIP"), "any", False, Address("198.51.100.11", 30222, "node_port")),
    (("node_port",), ("InternalIP",), "ipv6", False, Address("2001:db8::11", 30222, "node_port")),
    (("node_port",), ("InternalDNS", "Hostname"), "any", False, Address("node01", 30222, "node_port")),
    (("load_balancer", "node_port"), ("NodeName",), "any", True, Address("node01", 31986, "node_port")),  # WinRM only on NP
])
def test_service_strategies(strategies, node_types, family, winrm, expected):
    settings = AddressSettings(strategies, ip_family=family, node_address_types=node_types)
    obj = vmi("web", labels=LABELS, ports=[{"name": "ssh", "port": 22}], interfaces=DUAL)
    assert choose(settings, obj, services=[OTHER, NP, LB, OTHER_NS], winrm=winrm) == expected


def test_node_port_uses_named_target_port_resolved_through_vmi_ports():
    settings = AddressSettings(("node_port",))
    named = vmi("web", labels={"app": "web"}, ports=[{"name": "ssh", "port": 22}])
    unnamed = vmi("web", labels={"app": "web"})
    assert choose(settings, named, services=[NP]) == Address("node01", 31022, "node_port")
    assert choose(settings, unnamed, services=[NP]) is None


def test_node_port_appends_base_domain_only_when_asked():
    obj = vmi("web", labels={"app": "web"}, ports=[{"name": "ssh", "port": 22}])
    on = AddressSettings(("node_port",), base_domain="example.com", append_base_domain=True)
    off = AddressSettings(("node_port",), base_domain="example.com", append_base_domain=False)
    assert choose(on, obj, services=[NP]).host == "node01.example.com"
    assert choose(off, obj, services=[NP]).host == "node01"


def test_load_balancer_without_ingress_falls_through():
    pending = service("lb", type_="LoadBalancer", selector={"app": "web"},
                      ports=[{"port": 22, "targetPort": 22, "nodePort": 30001}])
    obj = vmi("web", labels={"app": "web"})
    settings = AddressSettings(("load_balancer", "first_interface"))
    assert choose(settings, obj, services=[pending]) == Address("10.0.0.1", None, "first_interface")


def test_ssh_port_option_changes_the_wanted_target():
    svc = service("np", selector={"app": "web"}, ports=[{"port": 2022, "targetPort": 2022, "nodePort": 32022}])
    obj = vmi("web", labels={"app": "web"})
    assert choose(AddressSettings(("node_port",)), obj, services=[svc]) is None
    assert choose(AddressSettings(("node_port",), ssh_port=2022), obj, services=[svc]).port == 32022


def test_service_selector_must_be_subset_of_vmi_labels():
    svc = service("np", selector={"app": "web", "tier": "front"})
    assert choose(AddressSettings(("node_port",)), vmi("a", labels={"app": "web"}), services=[svc]) is None
    obj = vmi("a", labels={"app": "web", "tier": "front", "x": "y"})
    assert choose(AddressSettings(("node_port",)), obj, services=[svc]).port == 30022


def test_cluster_ip_and_selectorless_services_are_ignored():
    cluster_ip = service("c", type_="ClusterIP", selector={"app": "web"})
    no_selector = service("n", selector={})
    index = ServiceIndex([cluster_ip, no_selector])
    assert index.matching("default", {"app": "web"}) == []


@pytest.mark.parametrize("ports, wanted, expected_port", [
    ([{"port": 22}], (22,), 22),  # targetPort defaults to port
    ([{"port": 80, "targetPort": "80"}, {"port": 2222, "targetPort": "22"}], (22,), 2222),
    ([{"port": 22, "targetPort": 22, "protocol": "UDP"}], (22,), None),
    ([{"port": 5985, "targetPort": 5985}, {"port": 5986, "targetPort": 5986}], (5986, 5985), 5986),
    ([{"port": 1, "targetPort": "winrm-https"}], (5986, 5985), 1),
])
def test_service_port(ports, wanted, expected_port):
    entry = service_port({"spec": {"ports": ports}}, wanted, {"winrm-https": 5986})
    assert (entry or {}).get("port") == expected_port


def test_guest_agent_hostname_is_asked_only_when_reached():
    asked = []

    def guest(obj):
        asked.append(obj["metadata"]["name"])
        return "web.guest.example"

    settings = AddressSettings(("first_interface", "guest_agent_hostname"))
    assert choose(settings, vmi("a"), guest=guest).source == "first_interface"
    assert asked == []
    assert choose(settings, vmi("b", interfaces=[]), guest=guest) == Address("web.guest.example", None, "guest_agent_hostname")
    assert asked == ["b"]


def test_needs_flags():
    assert AddressSettings(("first_interface",)).needs_services is False
    assert AddressSettings(("node_port",)).needs_services is True
    assert AddressSettings(("node_port",)).needs_nodes is False
    assert AddressSettings(("node_port",), node_address_types=("InternalIP",)).needs_nodes is True
    assert AddressSettings(("load_balancer",), node_address_types=("InternalIP",)).needs_nodes is False
