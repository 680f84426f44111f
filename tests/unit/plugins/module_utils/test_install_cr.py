"""Unit tests for _install_cr: the KubeVirt/CDI CRs from options, and the emulation: auto rule."""
import pytest

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _install_cr as cr
from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _install_preflight as pre
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._errors import KubeVirtError


def node(name, kvm=None, ready=True, unschedulable=False, labels=None):
    obj = {"metadata": {"name": name, "labels": labels or {}}, "spec": {},
           "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}], "allocatable": {}}}
    if kvm is not None:
        obj["status"]["allocatable"]["devices.kubevirt.io/kvm"] = kvm
    if unschedulable:
        obj["spec"]["unschedulable"] = True
    return obj


@pytest.mark.parametrize("value, expected", [("auto", "auto"), (None, "auto"), (True, True), ("true", True),
                                             ("False", False), ("no", False), (False, False)])
def test_normalize_emulation(value, expected):
    assert cr.normalize_emulation(value) == expected


def test_normalize_emulation_rejects():
    with pytest.raises(KubeVirtError, match="emulation must be auto, true or false"):
        cr.normalize_emulation("sometimes")


@pytest.mark.parametrize("nodes, kvm_nodes, selector, live, enabled, reason", [
    ([node("a", "1k"), node("b", "1k")], None, None, None, False, "all 2 node(s)"),
    ([node("a", "1k"), node("b", "0")], None, None, None, True, "b (allocatable devices.kubevirt.io/kvm)"),
    ([node("a"), node("b")], {"a": True, "b": False}, None, None, True, "b (kvm_nodes)"),
    # kvm_nodes (the kvm_host facts) win over allocatable.
    ([node("a", "0")], {"a": True}, None, None, False, "all 1 node(s)"),
    # Unknown nodes and none known bad: the live value stays.
    ([node("a", "1k"), node("b")], None, None, True, True, "unknown for b; kept True"),
    ([node("a"), node("b")], None, None, None, False, "unknown for a, b; kept False"),
    # Only nodes that may run VMs count: not ready, unschedulable or outside the selector do not.
    ([node("a", "1k"), node("b", "0", ready=False), node("c", "0", unschedulable=True)], None, None, None, False,
     "all 1 node(s)"),
    ([node("a", "0", labels={"vm": "no"}), node("b", "1k", labels={"vm": "yes"})], None, {"vm": "yes"}, None, False,
     "all 1 node(s)"),
    ([node("a", "1k")], None, {"vm": "yes"}, None, False, "no Ready schedulable node"),
])
def test_emulation_auto_rule(nodes, kvm_nodes, selector, live, enabled, reason):
    decision = cr.decide_emulation("auto", nodes, kvm_nodes, selector, live)
    assert decision["enabled"] is enabled and reason in decision["reason"], decision
    assert (decision["warning"] is not None) == ("kept" in decision["reason"])


@pytest.mark.parametrize("mode", [True, False])
def test_explicit_emulation_ignores_nodes(mode):
    decision = cr.decide_emulation(mode, [node("a", "0")], {"a": False})
    assert decision["enabled"] is mode and decision["nodes"] == {}


def params(**kw):
    return dict({"name": "kubevirt"}, **kw)


def test_minimal_kubevirt_cr():
    assert cr.kubevirt_cr(params(), "kubevirt", False) == {
        "apiVersion": "kubevirt.io/v1", "kind": "KubeVirt", "metadata": {"name": "kubevirt", "namespace": "kubevirt"},
        "spec": {"configuration": {"developerConfiguration": {"useEmulation": False}}}}


def test_typed_options_win_over_passthroughs():
    obj = cr.kubevirt_cr(params(
        feature_gates=["Snapshot"], disabled_feature_gates=["PasstBinding"], image_registry="m/kv/",
        image_pull_secrets=["p"], infra_node_placement={"node_selector": {"role": "infra"}}, infra_replicas=3,
        workloads_node_placement={"node_selector": {"vm": "yes"}, "tolerations": [{"key": "k", "operator": "Exists"}]},
        workload_update_methods=["LiveMigrate", "Evict"], uninstall_strategy="BlockUninstallIfWorkloadsExist",
        configuration={"developerConfiguration": {"useEmulation": True, "cpuAllocationRatio": 4},
                       "vmRolloutStrategy": "LiveUpdate"},
        spec={"imageRegistry": "ignored", "certificateRotateStrategy": {"selfSigned": {}}}), "kv", False)
    spec = obj["spec"]
    assert spec["configuration"] == {"developerConfiguration": {"useEmulation": False, "cpuAllocationRatio": 4,
                                                                "featureGates": ["Snapshot"],
                                                                "disabledFeatureGates": ["PasstBinding"]},
                                     "vmRolloutStrategy": "LiveUpdate"}
    assert spec["imageRegistry"] == "m/kv" and spec["imagePullSecrets"] == [{"name": "p"}]
    assert spec["infra"] == {"nodePlacement": {"nodeSelector": {"role": "infra"}}, "replicas": 3}
    assert spec["workloads"]["nodePlacement"]["tolerations"] == [{"key": "k", "operator": "Exists"}]
    assert spec["workloadUpdateStrategy"] == {"workloadUpdateMethods": ["LiveMigrate", "Evict"]}
    assert spec["uninstallStrategy"] == "BlockUninstallIfWorkloadsExist"
    assert spec["certificateRotateStrategy"] == {"selfSigned": {}}


def test_gate_in_both_lists():
    with pytest.raises(KubeVirtError, match="feature_gates and disabled_feature_gates both list Snapshot"):
        cr.kubevirt_cr(params(feature_gates=["Snapshot", "A"], disabled_feature_gates=["Snapshot"]), "kv", False)


def test_cdi_cr():
    obj = cr.cdi_cr({"feature_gates": ["HonorWaitForFirstConsumer"], "scratch_storage_class": "fast",
                     "upload_proxy_url": "https://up.example", "upload_proxy_replicas": 2,
                     "infra_node_placement": {"node_selector": {"a": "b"}}, "uninstall_strategy": "RemoveWorkloads",
                     "config": {"scratchSpaceStorageClass": "slow", "dataVolumeTTLSeconds": -1}}, ["pull"])
    assert obj["metadata"] == {"name": "cdi"}
    assert obj["spec"]["config"] == {"featureGates": ["HonorWaitForFirstConsumer"], "scratchSpaceStorageClass": "fast",
                                     "uploadProxyURLOverride": "https://up.example", "dataVolumeTTLSeconds": -1,
                                     "imagePullSecrets": [{"name": "pull"}]}
    assert obj["spec"]["infra"] == {"nodeSelector": {"a": "b"}, "uploadProxyReplicas": 2}
    assert obj["spec"]["uninstallStrategy"] == "RemoveWorkloads"


@pytest.mark.parametrize("k8s, kubevirt, override, warns", [
    ("v1.34.0", "v1.9.0", None, False), ("v1.36.2+k3s1", "v1.9.0", None, False), ("v1.33.5", "v1.9.0", None, True),
    ("v1.37.0", "v1.9.0", None, True), ("v1.33.1", "v1.8.4", None, False),
    ("v1.37.0", "v1.9.0", {"min": "1.35", "max": "1.37"}, False), ("v1.30.0", "v2.0.0", None, False),
])
def test_kubernetes_version_check(k8s, kubevirt, override, warns):
    warning = pre.check_kubernetes(k8s, kubevirt, override)
    assert (warning is not None) == warns
    if warns:
        assert "outside what KubeVirt %s supports" % kubevirt in warning
