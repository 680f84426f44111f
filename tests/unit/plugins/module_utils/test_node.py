# -*- coding: utf-8 -*-
"""_node (kubevirt_node): cordon / uncordon only when needed, dry runs in check mode, waits on one watch, clear failures.

Runs through the real Api and Client against tests/unit/plugins/fake_cluster.py (HTTP seam)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _node
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._api import Api
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._args import InvalidOption
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._errors import KubeVirtError

from ..fake_cluster import FakeCluster
from ..kube_fakes import make_client

NODES = "nodes"
PATH = "/api/v1/nodes/node01"
COLLECTION = "/api/v1/nodes"


def node(name="node01", cordoned=None, ready="True", kubevirt="true", heartbeat="2026-12-05T01:00:00Z"):
    obj = {"apiVersion": "v1", "kind": "Node",
           "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}, "spec": {},
           "status": {"conditions": [{"type": "Ready", "status": ready,
                                      "reason": "KubeletReady" if ready == "True" else "NodeStatusUnknown",
                                      "message": "kubelet is posting ready status" if ready == "True"
                                      else "Kubelet stopped posting node status.",
                                      "lastHeartbeatTime": heartbeat}]}}
    if kubevirt is not None:
        obj["metadata"]["labels"]["kubevirt.io/schedulable"] = kubevirt
    if cordoned is not None:
        obj["spec"]["unschedulable"] = cordoned
    return obj


def params(**kw):
    out = {"name": "node01", "schedulable": None, "wait": False, "wait_timeout": 30,
           "require_kubevirt_schedulable": False}
    out.update(kw)
    return out


def setup(*objs):
    cluster = FakeCluster(converge=False)
    for obj in objs:
        cluster.add(obj, plural=NODES)
    return cluster, Api(make_client(pool=cluster))


@pytest.mark.parametrize("start, schedulable, outcome, body", [
    (None, False, "cordoned", {"metadata": {"name": "node01"}, "spec": {"unschedulable": True}}),
    (True, True, "uncordoned", {"metadata": {"name": "node01"}, "spec": {"unschedulable": None}}),
])
def test_cordon_and_uncordon_send_one_merge_patch_then_nothing(start, schedulable, outcome, body):
    cluster, api = setup(node(cordoned=start))
    result = _node.run_task(api, params(schedulable=schedulable), diff_mode=True)
    assert result["outcome"] == outcome and result["changed"] is True
    assert result["schedulable"] is schedulable and result["ready"] is True
    assert cluster.writes() == [("PATCH merge", PATH, {})]
    assert cluster.bodies("PATCH", PATH) == [body]
    stored = cluster.get(NODES, "node01", None)
    assert ("unschedulable" in stored["spec"]) is (not schedulable)
    assert result["diff"] == {"before": {"metadata": {"name": "node01"}, "spec": {"unschedulable": schedulable}},
                              "after": {"metadata": {"name": "node01"}, "spec": {"unschedulable": not schedulable}}}
    # Again: the node is already so, no write at all.
    mark = len(cluster.requests)
    again = _node.run_task(api, params(schedulable=schedulable))
    assert again["outcome"] == "unchanged" and again["changed"] is False
    assert [(r.method, r.path) for r in cluster.requests[mark:]] == [("GET", PATH)]


@pytest.mark.parametrize("start", [None, False])
def test_uncordon_of_a_schedulable_node_never_writes(start):
    """A built-in kind stores false as absent; an explicit false (another tool's) is schedulable too."""
    cluster, api = setup(node(cordoned=start))
    result = _node.run_task(api, params(schedulable=True))
    assert result["outcome"] == "unchanged" and not result["changed"] and result["schedulable"]
    assert cluster.writes() == []


def test_check_mode_is_a_dry_run_that_stores_nothing():
    cluster, api = setup(node())
    before = cluster.get(NODES, "node01", None)
    result = _node.run_task(api, params(schedulable=False, wait=True), check_mode=True)
    assert result["outcome"] == "cordoned" and result["changed"]
    assert result["node"]["spec"]["unschedulable"] is True
    assert cluster.writes("dryRun") == [("PATCH merge", PATH, {"dryRun": "All"})]
    assert cluster.get(NODES, "node01", None) == before
    # Check mode does not wait: no watch was opened.
    assert not [r for r in cluster.requests if r.query.get("watch")]


def test_wait_follows_one_watch_from_the_version_read_without_a_list():
    cluster, api = setup(node(ready="False"))
    version = cluster.get(NODES, "node01", None)["metadata"]["resourceVersion"]

    def comes_back(_req):
        cluster.edit("node01", lambda o: o["status"]["conditions"][0].update(status="True", reason="KubeletReady"),
                     plural=NODES, namespace=None)
    cluster.intercept("GET", COLLECTION, comes_back)
    result = _node.run_task(api, params(wait=True))
    assert result["ready"] is True and result["outcome"] == "unchanged"
    sent = cluster.sent("fieldSelector", "resourceVersion")
    assert sent == [("GET", PATH, {}),
                    ("GET", COLLECTION, {"watch": "true", "fieldSelector": "metadata.name=node01",
                                         "resourceVersion": version})]


def test_a_ready_node_costs_no_watch():
    cluster, api = setup(node(cordoned=True))
    result = _node.run_task(api, params(schedulable=True, wait=True, require_kubevirt_schedulable=True))
    assert result["ready"] and result["kubevirt_schedulable"] and result["outcome"] == "uncordoned"
    assert [r.method for r in cluster.requests] == ["GET", "PATCH"]


def test_a_node_that_stays_not_ready_fails_with_its_condition_and_heartbeat():
    cluster, api = setup(node(ready="Unknown", heartbeat="2026-12-05T00:10:00Z"))
    with pytest.raises(KubeVirtError) as err:
        _node.run_task(api, params(schedulable=False, wait=True, wait_timeout=0), diff_mode=True)
    msg = err.value.msg
    assert "Node node01 is not ready after 0 seconds" in msg
    assert "Ready is Unknown (NodeStatusUnknown): Kubelet stopped posting node status." in msg
    assert "last heartbeat 2026-12-05T00:10:00Z" in msg
    result = err.value.result
    # The cordon happened before the wait and is reported with the failure.
    assert result["outcome"] == "failed" and result["cordon_outcome"] == "cordoned" and result["changed"] is True
    assert result["ready"] is False and result["diff"]["after"]["spec"]["unschedulable"] is True
    assert cluster.get(NODES, "node01", None)["spec"]["unschedulable"] is True


def test_require_kubevirt_schedulable_waits_for_the_label():
    cluster, api = setup(node(kubevirt="false"))
    with pytest.raises(KubeVirtError) as err:
        _node.run_task(api, params(wait=True, wait_timeout=0, require_kubevirt_schedulable=True))
    assert 'label kubevirt.io/schedulable is "false", not "true"' in err.value.msg
    assert "Ready is" not in err.value.msg
    # Without the requirement the same node is fine.
    assert _node.run_task(api, params(wait=True))["ready"] is True


def test_missing_node_is_a_clear_error_without_writes():
    cluster, api = setup(node(name="node02"))
    with pytest.raises(KubeVirtError) as err:
        _node.run_task(api, params(schedulable=False))
    assert "Node node01 does not exist" in err.value.msg and "kubectl get nodes" in err.value.msg
    assert err.value.result["changed"] is False and cluster.writes() == []


@pytest.mark.parametrize("given, words", [
    ({"name": "Node_01"}, 'name "Node_01" is not a valid Kubernetes node name'),
    ({"wait_timeout": -1}, "wait_timeout must be 0 or more"),
    ({"require_kubevirt_schedulable": True}, "require_kubevirt_schedulable only applies while waiting"),
])
def test_bad_options_are_refused_before_any_request(given, words):
    with pytest.raises(InvalidOption) as err:
        _node.check_params(params(**given))
    assert words in str(err.value)


@pytest.mark.parametrize("obj, ready", [
    (node(), True),
    (node(ready="False"), False),
    ({"metadata": {"name": "x"}}, False),
    (None, False),
])
def test_readiness(obj, ready):
    assert _node.is_ready(obj) is ready
    assert _node.settled(obj) is ready


def test_why_not_ready_names_a_node_without_conditions():
    assert "no Ready condition" in _node.why_not_ready({"metadata": {"name": "x"}})
    assert _node.why_not_ready(None) == "the Node was deleted"


def test_uncordon_with_wait_waits_first_and_leaves_a_node_that_never_gets_ready_cordoned():
    cluster, api = setup(node(cordoned=True, ready="False"))
    with pytest.raises(KubeVirtError) as err:
        _node.run_task(api, params(schedulable=True, wait=True, wait_timeout=0), diff_mode=True)
    assert err.value.result["cordon_outcome"] == "unchanged" and err.value.result["changed"] is False
    assert err.value.result["diff"]["after"]["spec"]["unschedulable"] is True
    assert cluster.writes() == [] and cluster.get(NODES, "node01", None)["spec"]["unschedulable"] is True


def test_uncordon_with_wait_patches_once_the_watch_saw_the_node_ready():
    cluster, api = setup(node(cordoned=True, ready="False"))

    def comes_back(_req):
        cluster.edit("node01", lambda o: o["status"]["conditions"][0].update(status="True"), plural=NODES, namespace=None)
    cluster.intercept("GET", COLLECTION, comes_back)
    result = _node.run_task(api, params(schedulable=True, wait=True))
    assert result["outcome"] == "uncordoned" and result["ready"] and result["schedulable"]
    assert [(r.method, r.path, r.query.get("watch")) for r in cluster.requests] == [
        ("GET", PATH, None), ("GET", COLLECTION, "true"), ("PATCH", PATH, None)]
