"""Fetch step against a fake _api.Api: request plan, 403 fallback, forbidden namespaces, trimming."""
import gc
import threading
import time

import pytest

from ansible.errors import AnsibleError

from ansible_collections.virtfleet.kubevirt.plugins.module_utils._errors import ApiError
from ansible_collections.virtfleet.kubevirt.plugins.plugin_utils._inventory_fetch import (
    ClusterFetcher, gc_paused, guest_hostname_getter, trim_vmi,
)
from ansible_collections.virtfleet.kubevirt.plugins.plugin_utils._inventory_options import build_connections

from .objects import node, service, vm, vmi


class FakeApi(object):
    """Objects by kind plural; ``denied`` holds (plural, namespace) pairs answering 403 (namespace None = cluster-wide)."""

    def __init__(self, objects, denied=(), pages=1):
        self.objects = objects
        self.denied = set(denied)
        self.calls = []

    def list(self, kind, namespace=None, label_selectors=None, field_selectors=None, limit=None):
        self.calls.append(("list", kind.plural, namespace, label_selectors, field_selectors, limit))
        if (kind.plural, namespace) in self.denied or (kind.plural, "*") in self.denied:
            raise ApiError("forbidden", 403)
        items = [o for o in self.objects.get(kind.plural, []) if namespace is None or o["metadata"].get("namespace") == namespace]
        return items, "1"

    def get(self, kind, name, namespace=None):
        self.calls.append(("get", kind.plural, namespace, name))
        raise ApiError("not found", 404)

    def subresource(self, kind, name, sub, namespace=None, method="PUT", body=None, idempotent=False):
        self.calls.append(("sub", kind.plural, namespace, name, sub, method))
        if name == "noagent":
            raise ApiError("agent not connected", 409)
        return {"hostname": name + ".guest"}


OBJECTS = {
    "virtualmachineinstances": [vmi("a", "ns1"), vmi("b", "ns2"), vmi("c", "ns3")],
    "virtualmachines": [vm("a", "ns1"), vm("b", "ns2"), vm("c", "ns3")],
    "services": [service("s", "ns1", selector={"app": "a"})],
    "namespaces": [{"metadata": {"name": n}} for n in ("ns1", "ns2", "ns3")],
    "nodes": [node("node01", [("InternalIP", "192.0.2.11")])],
}


def fetch(options=None, denied=(), connections=None):
    warnings = []
    (conn,) = build_connections(options or {}, connections)
    api = FakeApi(OBJECTS, denied)
    data = ClusterFetcher(conn, api, warnings.append).fetch()
    return data, api.calls, warnings


def test_default_plan_is_one_cluster_wide_list_per_needed_kind():
    data, calls, warnings = fetch({"label_selector": "app=a", "page_size": 1000})
    assert sorted(calls) == [
        ("list", "services", None, None, None, 1000),  # selectors are about VMs, never Services
        ("list", "virtualmachineinstances", None, "app=a", None, 1000),
        ("list", "virtualmachines", None, "app=a", None, 1000),
    ]
    assert len(data["vmis"]) == 3 and warnings == []


def test_no_service_list_without_service_strategy_and_nodes_only_when_needed():
    _data, calls, _warnings = fetch({"use_service": False})
    assert sorted(c[1] for c in calls) == ["virtualmachineinstances", "virtualmachines"]
    _data, calls, _warnings = fetch({"address_strategies": ["node_port"], "node_address_types": ["InternalIP"]})
    assert sorted(c[1] for c in calls[:3]) == ["services", "virtualmachineinstances", "virtualmachines"]
    assert calls[3][1] == "nodes"


def test_base_domain_lookup_only_when_a_name_would_use_it():
    _data, calls, _warnings = fetch({"network_name": "br", "kube_secondary_dns": True, "field_selector": "metadata.name!=x"})
    assert calls[-1] == ("get", "dnses", None, "cluster")
    assert [c[4] for c in calls if c[0] == "list"] == ["metadata.name!=x"] * 2
    data, _calls, _warnings = fetch({"network_name": "br", "kube_secondary_dns": True})
    assert data["cluster_domain"] is None


def test_explicit_namespaces_list_each_and_skip_forbidden_with_one_warning_each():
    data, calls, warnings = fetch({"namespaces": ["ns1", "ns2", "ns3"], "use_service": False},
                                  denied=[("virtualmachineinstances", "ns2"), ("virtualmachines", "ns2"),
                                          ("virtualmachines", "ns3")])
    assert ("list", "virtualmachineinstances", None, None, None, 500) not in calls
    assert [o["metadata"]["namespace"] for o in data["vmis"]] == ["ns1"]
    assert [o["metadata"]["namespace"] for o in data["vms"]] == ["ns1"]
    assert data["skipped_namespaces"] == ["ns2", "ns3"]
    assert len(warnings) == 2
    assert "ns2" in warnings[0] and "virtualmachineinstances and virtualmachines" in warnings[0]
    assert "ns3" in warnings[1] and "virtualmachines" in warnings[1]


def test_fail_on_forbidden_makes_it_fatal():
    with pytest.raises(AnsibleError, match=r"may not list virtualmachineinstances in namespace\(s\) ns2.*fail_on_forbidden"):
        fetch({"namespaces": ["ns1", "ns2"], "fail_on_forbidden": True, "use_service": False},
              denied=[("virtualmachineinstances", "ns2")])


def test_cluster_wide_403_falls_back_to_namespace_lists():
    data, calls, warnings = fetch({"use_service": False}, denied=[("virtualmachineinstances", None),
                                                                  ("virtualmachineinstances", "ns3")])
    plan = [(c[1], c[2]) for c in calls]
    # VMIs and VMs are listed concurrently, so only the order within each kind is fixed.
    assert [p for p in plan if p[0] != "virtualmachines"] == [
        ("virtualmachineinstances", None), ("namespaces", None), ("virtualmachineinstances", "ns1"),
        ("virtualmachineinstances", "ns2"), ("virtualmachineinstances", "ns3")]
    assert [p for p in plan if p[0] == "virtualmachines"] == [("virtualmachines", None)]
    assert sorted(o["metadata"]["name"] for o in data["vmis"]) == ["a", "b"]
    assert [o["metadata"]["name"] for o in data["vms"]] == ["a", "b"]  # VMs of the skipped namespace dropped too
    assert len(warnings) == 1 and "ns3" in warnings[0]


def test_cluster_wide_403_and_no_namespace_list_asks_for_namespaces_option():
    with pytest.raises(AnsibleError, match="set the namespaces option"):
        fetch(denied=[("virtualmachineinstances", None), ("namespaces", None)])


def test_other_api_errors_propagate():
    class BrokenApi(FakeApi):
        def list(self, kind, namespace=None, label_selectors=None, field_selectors=None, limit=None):
            raise ApiError("boom", 500)

    (conn,) = build_connections({})
    with pytest.raises(ApiError):
        ClusterFetcher(conn, BrokenApi(OBJECTS), print).fetch()


def test_kubevirt_not_served_is_one_sentence():
    class NoKubeVirt(FakeApi):
        def list(self, kind, namespace=None, label_selectors=None, field_selectors=None, limit=None):
            raise ApiError("404 page not found", 404)

    (conn,) = build_connections({"api_version": "kubevirt.io/v1alpha3"})
    with pytest.raises(AnsibleError, match=r"does not serve kubevirt.io/v1alpha3 \(404\): install KubeVirt"):
        ClusterFetcher(conn, NoKubeVirt(OBJECTS), print).fetch()


def test_kinds_are_listed_concurrently():
    # Each cluster-wide list waits until all three have started: a sequential fetch breaks the barrier.
    barrier = threading.Barrier(3, timeout=5)

    class MeetingApi(FakeApi):
        def list(self, kind, namespace=None, label_selectors=None, field_selectors=None, limit=None):
            barrier.wait()
            return super(MeetingApi, self).list(kind, namespace, label_selectors, field_selectors, limit)

    (conn,) = build_connections({})
    data = ClusterFetcher(conn, MeetingApi(OBJECTS), print).fetch()
    assert len(data["vmis"]) == 3 and len(data["vms"]) == 3 and len(data["services"]) == 1


def test_namespaces_are_listed_once_when_kinds_fall_back_together():
    class SlowNamespacesApi(FakeApi):
        def list(self, kind, namespace=None, label_selectors=None, field_selectors=None, limit=None):
            if kind.plural == "namespaces":
                time.sleep(0.05)  # both kinds are waiting for the namespace list by now
            return super(SlowNamespacesApi, self).list(kind, namespace, label_selectors, field_selectors, limit)

    (conn,) = build_connections({"use_service": False})
    api = SlowNamespacesApi(OBJECTS, denied=[("virtualmachineinstances", None), ("virtualmachines", None)])
    data = ClusterFetcher(conn, api, print).fetch()
    assert [c[1] for c in api.calls].count("namespaces") == 1
    assert len(data["vmis"]) == 3 and len(data["vms"]) == 3


def test_errors_are_reported_in_kind_order():
    class MixedApi(FakeApi):
        def list(self, kind, namespace=None, label_selectors=None, field_selectors=None, limit=None):
            if kind.plural == "virtualmachines":
                raise ApiError("boom", 500)
            raise ApiError("404 page not found", 404)

    (conn,) = build_connections({"use_service": False})
    with pytest.raises(AnsibleError, match="does not serve kubevirt.io/v1"):
        ClusterFetcher(conn, MixedApi(OBJECTS), print).fetch()


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
    data, _calls, warnings = fetch({"address_strategies": ["node_port"], "node_address_types": ["InternalIP"]},
                                   denied=[("nodes", None)])
    assert data["nodes"] == [] and "may not list nodes" in warnings[0]


def test_trim_drops_spec_and_managed_fields_keeps_port_names():
    obj = vmi("a", ports=[{"name": "ssh", "port": 22}])
    obj["spec"]["volumes"] = [{"name": "cloudinit", "cloudInitNoCloud": {"userData": "password: hunter2"}}]
    obj["metadata"]["managedFields"] = [{"manager": "x"}]
    trimmed = trim_vmi(obj)
    assert "hunter2" not in repr(trimmed) and "managedFields" not in repr(trimmed)
    assert trimmed["spec"]["domain"]["devices"]["interfaces"] == [{"name": "default", "ports": [{"name": "ssh", "port": 22}]}]
    assert trimmed["status"] == obj["status"]


def test_guest_hostname_getter_memoises_and_tolerates_errors():
    api = FakeApi(OBJECTS)
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
    assert [c for c in api.calls if c[0] == "sub"] == [
        ("sub", "virtualmachineinstances", "default", "web", "guestosinfo", "GET"),
        ("sub", "virtualmachineinstances", "default", "noagent", "guestosinfo", "GET")]
    # a cache hit (known already filled) opens no connection
    opened.clear()
    assert guest_hostname_getter(get_api, dict(known))(vmi("web")) == "web.guest" and opened == []
