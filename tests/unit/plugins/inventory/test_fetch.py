"""Fetch step on the real Client and Api over a fake urllib3 pool: request plan, 403 fallback, forbidden namespaces,
trimming."""
import gc
import json
import threading
import time

import pytest

from ansible.errors import AnsibleError

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _kinds
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._api import Api
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._errors import ApiError
from ansible_collections.virtfleet.kubevirt.plugins.plugin_utils._inventory_fetch import (
    ClusterFetcher, gc_paused, guest_hostname_getter, trim_service, trim_vm, trim_vmi,
)
from ansible_collections.virtfleet.kubevirt.plugins.plugin_utils._inventory_options import build_connections

from ..kube_fakes import FakePool, make_client, status_body
from ..pool_routes import calls, failure, listing, serve_lists
from .objects import node, service, vm, vmi


VMI, VM, SERVICE, NAMESPACE, NODE = _kinds.VMI, _kinds.VM, _kinds.SERVICE, _kinds.NAMESPACE, _kinds.NODE
VMIS, VMS, SERVICES, NAMESPACES, NODES = (k.path() for k in (VMI, VM, SERVICE, NAMESPACE, NODE))
DNS_CLUSTER = "/apis/config.openshift.io/v1/dnses/cluster"

OBJECTS = {
    VMI: [vmi("a", "ns1"), vmi("b", "ns2"), vmi("c", "ns3")],
    VM: [vm("a", "ns1"), vm("b", "ns2"), vm("c", "ns3")],
    SERVICE: [service("s", "ns1", selector={"app": "a"})],
    NAMESPACE: [{"metadata": {"name": n}} for n in ("ns1", "ns2", "ns3")],
    NODE: [node("node01", [("InternalIP", "192.0.2.11")])],
}


def cluster(denied=(), objects=None):
    """A server holding ``objects`` (default OBJECTS); ``denied`` holds (kind, namespace) lists answering 403
    (namespace None = the cluster-wide list). Anything else (the OpenShift DNS object too) answers 404."""
    pool = FakePool()
    for kind, items in (OBJECTS if objects is None else objects).items():
        serve_lists(pool, kind, items, denied=set(ns for k, ns in denied if k == kind), namespaces=("ns1", "ns2", "ns3"))
    return pool


def fetch(options=None, denied=(), connections=None, pool=None):
    warnings = []
    (conn,) = build_connections(options or {}, connections)
    pool = pool or cluster(denied)
    data = ClusterFetcher(conn, Api(make_client(pool)), warnings.append).fetch()
    return data, pool, warnings


def paths(pool):
    return [r.path for r in pool.requests]


def test_default_plan_is_one_cluster_wide_list_per_needed_kind():
    data, pool, warnings = fetch({"label_selector": "app=a", "page_size": 1000})
    assert sorted(calls(pool, "labelSelector", "fieldSelector", "limit")) == [
        ("GET", SERVICES, None, None, "1000"),  # selectors are about VMs, never Services
        ("GET", VMIS, "app=a", None, "1000"),
        ("GET", VMS, "app=a", None, "1000"),
    ]
    assert len(data["vmis"]) == 3 and warnings == []


def test_no_service_list_without_service_strategy_and_nodes_only_when_needed():
    _data, pool, _warnings = fetch({"use_service": False})
    assert sorted(paths(pool)) == [VMIS, VMS]
    _data, pool, _warnings = fetch({"address_strategies": ["node_port"], "node_address_types": ["InternalIP"]})
    assert sorted(paths(pool)[:3]) == [SERVICES, VMIS, VMS]
    assert paths(pool)[3:] == [NODES]


def test_base_domain_lookup_only_when_a_name_would_use_it():
    _data, pool, _warnings = fetch({"network_name": "br", "kube_secondary_dns": True, "field_selector": "metadata.name!=x"})
    assert calls(pool)[-1] == ("GET", DNS_CLUSTER)
    assert [r.query.get("fieldSelector") for r in pool.requests[:-1]] == ["metadata.name!=x"] * 2
    data, _pool, _warnings = fetch({"network_name": "br", "kube_secondary_dns": True})
    assert data["cluster_domain"] is None   # not OpenShift: the DNS object's path answers 404
    openshift = cluster().on("GET", DNS_CLUSTER, {"apiVersion": "config.openshift.io/v1", "kind": "DNS",
                                                  "metadata": {"name": "cluster"}, "spec": {"baseDomain": "ocp.example"}})
    data, _pool, _warnings = fetch({"network_name": "br", "kube_secondary_dns": True}, pool=openshift)
    assert data["cluster_domain"] == "ocp.example"


def test_explicit_namespaces_list_each_and_skip_forbidden_with_one_warning_each():
    data, pool, warnings = fetch({"namespaces": ["ns1", "ns2", "ns3"], "use_service": False},
                                 denied=[(VMI, "ns2"), (VM, "ns2"), (VM, "ns3")])
    assert sorted(paths(pool)) == sorted(k.path(ns) for k in (VMI, VM) for ns in ("ns1", "ns2", "ns3"))
    assert [o["metadata"]["namespace"] for o in data["vmis"]] == ["ns1"]
    assert [o["metadata"]["namespace"] for o in data["vms"]] == ["ns1"]
    assert data["skipped_namespaces"] == ["ns2", "ns3"]
    assert len(warnings) == 2
    assert "ns2" in warnings[0] and "virtualmachineinstances and virtualmachines" in warnings[0]
    assert "ns3" in warnings[1] and "virtualmachines" in warnings[1]


def test_fail_on_forbidden_makes_it_fatal():
    with pytest.raises(AnsibleError, match=r"may not list virtualmachineinstances in namespace\(s\) ns2.*fail_on_forbidden"):
        fetch({"namespaces": ["ns1", "ns2"], "fail_on_forbidden": True, "use_service": False}, denied=[(VMI, "ns2")])


def test_cluster_wide_403_falls_back_to_namespace_lists():
    data, pool, warnings = fetch({"use_service": False}, denied=[(VMI, None), (VMI, "ns3")])
    # VMIs and VMs are listed concurrently, so only the order within each kind is fixed.
    assert [p for p in paths(pool) if p != VMS] == [VMIS, NAMESPACES, VMI.path("ns1"), VMI.path("ns2"), VMI.path("ns3")]
    assert [p for p in paths(pool) if p == VMS] == [VMS]
    assert sorted(o["metadata"]["name"] for o in data["vmis"]) == ["a", "b"]
    assert [o["metadata"]["name"] for o in data["vms"]] == ["a", "b"]  # VMs of the skipped namespace dropped too
    assert len(warnings) == 1 and "ns3" in warnings[0]


def test_cluster_wide_403_and_no_namespace_list_asks_for_namespaces_option():
    with pytest.raises(AnsibleError, match="set the namespaces option"):
        fetch(denied=[(VMI, None), (NAMESPACE, None)])


def test_other_api_errors_propagate():
    pool = FakePool()
    for path in (VMIS, VMS, SERVICES):
        pool.on("GET", path, failure(500))
    with pytest.raises(ApiError) as err:
        fetch(pool=pool)
    assert err.value.status == 500


def test_kubevirt_not_served_is_one_sentence():
    pool = FakePool()   # every path answers 404 page-not-found
    with pytest.raises(AnsibleError, match=r"does not serve kubevirt.io/v1alpha3 \(404\): install KubeVirt"):
        fetch({"api_version": "kubevirt.io/v1alpha3"}, pool=pool)
    assert "/apis/kubevirt.io/v1alpha3/virtualmachineinstances" in paths(pool)


def test_kinds_are_listed_concurrently():
    # Each cluster-wide list waits until all three have started: a sequential fetch breaks the barrier.
    barrier = threading.Barrier(3, timeout=5)

    def meeting(answer):
        def handler(req):
            barrier.wait()
            return answer
        return handler

    pool = FakePool()
    for kind in (VMI, VM, SERVICE):
        pool.on("GET", kind.path(), meeting(listing(OBJECTS[kind])))
    data, _pool, _warnings = fetch(pool=pool)
    assert len(data["vmis"]) == 3 and len(data["vms"]) == 3 and len(data["services"]) == 1


def test_namespaces_are_listed_once_when_kinds_fall_back_together():
    def slow_namespaces(req):
        time.sleep(0.05)  # both kinds are waiting for the namespace list by now
        return listing(OBJECTS[NAMESPACE])

    pool = cluster(denied=[(VMI, None), (VM, None)], objects=dict((k, v) for k, v in OBJECTS.items() if k != NAMESPACE))
    pool.on("GET", NAMESPACES, slow_namespaces)
    data, pool, _warnings = fetch({"use_service": False}, pool=pool)
    assert paths(pool).count(NAMESPACES) == 1
    assert len(data["vmis"]) == 3 and len(data["vms"]) == 3


def test_errors_are_reported_in_kind_order():
    pool = FakePool().on("GET", VMS, failure(500))   # VMs fail with 500, VMIs (listed first) are not served (404)
    with pytest.raises(AnsibleError, match="does not serve kubevirt.io/v1"):
        fetch({"use_service": False}, pool=pool)


def test_gc_paused_restores_the_previous_state():
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # a caller that disabled it keeps it disabled
    finally:
        gc.enable()
    with pytest.raises(ValueError):
        with gc_paused():
            raise ValueError("x")
    assert gc.isenabled()


def test_forbidden_nodes_warn_and_continue():
    data, _pool, warnings = fetch({"address_strategies": ["node_port"], "node_address_types": ["InternalIP"]},
                                  denied=[(NODE, None)])
    assert data["nodes"] == [] and "may not list nodes" in warnings[0]


def test_trim_drops_spec_and_managed_fields_keeps_port_names():
    obj = vmi("a", ports=[{"name": "ssh", "port": 22}])
    obj["spec"]["volumes"] = [{"name": "cloudinit", "cloudInitNoCloud": {"userData": "password: hunter2"}}]
    obj["metadata"]["managedFields"] = [{"manager": "x"}]
    trimmed = trim_vmi(obj)
    assert "hunter2" not in repr(trimmed) and "managedFields" not in repr(trimmed)
    assert trimmed["spec"]["domain"]["devices"]["interfaces"] == [{"name": "default", "ports": [{"name": "ssh", "port": 22}]}]
    assert trimmed["status"] == obj["status"]


def test_trimmed_objects_share_equal_strings_and_keep_equal_values():
    strings = {}
    # decoded separately, as two list items are: every key and value is a str object of its own
    first, second = (json.loads(json.dumps(vmi(n, "ns1", guest_os={"id": "fedora", "prettyName": "Fedora Linux 42"})))
                     for n in ("a", "b"))
    assert [k for k in first["status"] if k == "phase"][0] is not [k for k in second["status"] if k == "phase"][0]
    one, two = trim_vmi(first, strings), trim_vmi(second, strings)
    assert one["status"] == first["status"] and two["status"] == second["status"]
    assert one["status"]["guestOSInfo"]["prettyName"] is two["status"]["guestOSInfo"]["prettyName"]
    assert [k for k in one["status"] if k == "phase"][0] is [k for k in two["status"] if k == "phase"][0]
    # containers are never shared between hosts, only the immutable strings
    assert one["status"]["guestOSInfo"] is not two["status"]["guestOSInfo"]
    assert trim_vm(vm("a", "ns1"), strings)["metadata"]["namespace"] is one["metadata"]["namespace"]


def test_services_no_strategy_can_use_are_dropped_and_the_rest_trimmed():
    lb = service("lb", "ns1", selector={"app": "a"}, type_="LoadBalancer")
    lb["metadata"]["annotations"] = {"big": "x" * 1000}
    lb["status"] = {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}
    trimmed = trim_service(lb)
    assert trimmed["status"] == lb["status"] and trimmed["spec"]["selector"] == {"app": "a"}
    assert "annotations" not in trimmed["metadata"] and trimmed["metadata"]["name"] == "lb"
    assert trim_service(service("cluster-ip", "ns1", selector={"app": "a"}, type_="ClusterIP")) is None
    assert trim_service(service("no-selector", "ns1", selector={}, type_="NodePort")) is None
    objects = dict(OBJECTS)
    objects[SERVICE] = [service("np", "ns1", selector={"app": "a"}),
                        service("internal", "ns1", selector={"app": "a"}, type_="ClusterIP")]
    data, _pool, _warnings = fetch(pool=cluster(objects=objects))
    assert [s["metadata"]["name"] for s in data["services"]] == ["np"]


def test_guest_hostname_getter_memoises_and_tolerates_errors():
    web, noagent = (_kinds.VMI_SUBRESOURCE.path("default", n, "guestosinfo") for n in ("web", "noagent"))
    pool = FakePool().on("GET", web, {"hostname": "web.guest", "os": {"name": "Fedora Linux"}})
    pool.on("GET", noagent, (409, status_body(409, "Conflict", "VMI does not have guest agent connected")))
    api = Api(make_client(pool))
    opened = []

    def get_api():
        opened.append(1)
        return api

    known = {}
    get = guest_hostname_getter(get_api, known)
    assert get(vmi("web")) == "web.guest"
    assert get(vmi("web")) == "web.guest"
    assert get(vmi("noagent")) is None
    assert known == {"default/web": "web.guest", "default/noagent": None}
    assert calls(pool) == [("GET", web), ("GET", noagent)]
    # a cache hit (known already filled) opens no connection
    opened.clear()
    assert guest_hostname_getter(get_api, dict(known))(vmi("web")) == "web.guest" and opened == []
    assert len(pool.requests) == 2
