"""Unit tests for _vm_apply: request sequences, idempotency, lifecycle decisions, per-VM failures, waits.

They run through the real ``_api.Api`` and ``_client.Client`` over ``FakeCluster`` (the urllib3 pool): a cluster
with KubeVirt, kubemacpool and a controller that reconciles the VMs as soon as somebody watches.
"""
import copy
import itertools

import pytest

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _vm_apply as va
from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _vm_spec as vs
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._api import Api
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._compare import FIELD_MANAGER
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._errors import KubeVirtError

from ..fake_cluster import FakeCluster
from ..kube_fakes import make_client

VMS = "/apis/kubevirt.io/v1/namespaces/ns/virtualmachines"
VMIS = "/apis/kubevirt.io/v1/namespaces/ns/virtualmachineinstances"


def vm_path(name, ns="ns"):
    return "/apis/kubevirt.io/v1/namespaces/%s/virtualmachines/%s" % (ns, name)


def action_path(name, action, ns="ns"):
    return "/apis/subresources.kubevirt.io/v1/namespaces/%s/virtualmachines/%s/%s" % (ns, name, action)


def params(**kw):
    p = {k: None for k in vs.PER_VM_OPTIONS}
    p.update(api_version="kubevirt.io/v1", state="present", vms=None, wait=False, wait_timeout=5, hidden_fields=None,
             delete_options=None, restart_if_required=False, grace_period_seconds=None)
    p.update(kw)
    return p


FLEET = [{"name": "vm-%d" % i} for i in range(5)]
COMMON = dict(namespace="ns", memory="1Gi", boot_disk={"container_image": "img"}, labels={"app": "fleet"})


def common(**kw):
    out = dict(COMMON)
    out.update(kw)
    return out


def run(cluster, check_mode=False, diff_mode=False, api=None, **kw):
    """One kubevirt_vm task on a new Api and Client over ``cluster``; ``cluster.requests`` then holds its requests."""
    del cluster.requests[:]
    return va.run_task(api or Api(make_client(cluster)), params(**kw), check_mode=check_mode, diff_mode=diff_mode)


@pytest.mark.parametrize("full_ownership", [False, True])
def test_many_vms_one_list_one_write_each_then_zero_writes(full_ownership):
    cluster = FakeCluster()
    failed, res = run(cluster, vms=FLEET, full_ownership=full_ownership, **COMMON)
    assert not failed and res["changed"]
    if full_ownership:
        writes = [("PATCH apply", vm_path(vm["name"]), {"fieldManager": FIELD_MANAGER, "force": "true"}) for vm in FLEET]
    else:
        writes = [("POST", VMS, {"fieldManager": FIELD_MANAGER})] * 5
    sent = cluster.sent("fieldManager", "force", "dryRun")
    # The writes are sent concurrently (test_vm_apply_concurrency.py): not necessarily in the VMs' order.
    assert sent[0] == ("GET", VMS, {}) and sorted(sent[1:], key=repr) == sorted(writes, key=repr)
    assert [r["method"] for r in res["results"]] == ["create"] * 5
    stored = cluster.vm("vm-0")
    assert stored["spec"]["runStrategy"] == "Always" and "running" not in stored["spec"]
    assert ("virtfleet.kubevirt/applied-digest" in stored["metadata"].get("annotations", {})) is full_ownership

    failed, res = run(cluster, vms=FLEET, full_ownership=full_ownership, **COMMON)
    assert not failed and res["changed"] is False
    assert cluster.sent() == [("GET", VMS, {})]
    assert [r["method"] for r in res["results"]] == ["update"] * 5


def test_full_ownership_removes_a_dropped_option_and_leaves_unchanged_vms_alone():
    cluster = FakeCluster()
    run(cluster, vms=FLEET, full_ownership=True, **COMMON)
    fleet = copy.deepcopy(FLEET)
    fleet[2]["labels"] = {"extra": "x"}
    run(cluster, vms=fleet, full_ownership=True, **COMMON)
    assert cluster.writes() == [("PATCH apply", vm_path("vm-2"), {})]
    assert cluster.vm("vm-2")["metadata"]["labels"]["extra"] == "x"
    failed, res = run(cluster, vms=FLEET, full_ownership=True, **COMMON)     # the item label is dropped again
    assert cluster.writes() == [("PATCH apply", vm_path("vm-2"), {})]
    assert "extra" not in cluster.vm("vm-2")["metadata"]["labels"]
    assert res["results"][2]["changed"] and not res["results"][1]["changed"]


def test_default_mode_never_removes_what_the_task_does_not_name():
    cluster = FakeCluster()
    run(cluster, name="a", cloud_init={"user": "u"}, instancetype={"name": "u1.small"}, **common(memory=None))
    full = cluster.vm("a")["spec"]
    # kubevirt.core's relabel-and-stop task: fewer fields, nothing else may go.
    failed, res = run(cluster, name="a", namespace="ns", labels={"tier": "web"}, state="stopped")
    assert not failed and res["changed"]
    stored = cluster.vm("a")
    assert stored["metadata"]["labels"] == {"app": "fleet", "tier": "web"}
    template = stored["spec"]["template"]["spec"]
    assert template == full["template"]["spec"] and stored["spec"]["instancetype"] == {"name": "u1.small"}
    assert "virtfleet.kubevirt/applied-digest" not in stored["metadata"].get("annotations", {})
    # A convenience option names one element: the others stay (a merge patch alone would replace the list).
    failed, res = run(cluster, name="a", namespace="ns", boot_disk={"container_image": "img2"})
    volumes = cluster.vm("a")["spec"]["template"]["spec"]["volumes"]
    assert [v["name"] for v in volumes] == ["rootdisk", "cloudinit"]
    assert volumes[0]["containerDisk"]["image"] == "img2"
    assert cluster.vm("a")["spec"]["template"]["spec"]["networks"] == full["template"]["spec"]["networks"]
    # The same subset again: no write at all.
    failed, res = run(cluster, name="a", namespace="ns", labels={"tier": "web"}, boot_disk={"container_image": "img2"})
    assert res["changed"] is False and cluster.writes() == []


def test_default_mode_no_change_and_no_annotation_for_a_vm_made_elsewhere():
    cluster = FakeCluster()
    made = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
            "metadata": {"name": "k", "namespace": "ns", "labels": {"app": "x"}, "generation": 1, "uid": "u",
                         "resourceVersion": "1"},
            "spec": {"runStrategy": "Halted", "template": {"metadata": {"labels": {"app": "x"}},
                                                           "spec": {"domain": {"devices": {}}}}}}
    cluster.add(made)
    failed, res = run(cluster, name="k", namespace="ns", labels={"app": "x"}, spec={"domain": {"devices": {}}})
    assert not failed and res["changed"] is False
    assert cluster.sent() == [("GET", vm_path("k"), {})]
    assert cluster.vm("k") == made


@pytest.mark.parametrize("check_mode", [False, True])
def test_force_replaces_the_object(check_mode):
    cluster = FakeCluster()
    run(cluster, name="a", **COMMON)
    cluster.edit("a", lambda vm: vm["metadata"]["labels"].update(other="tool"))
    version = cluster.vm("a")["metadata"]["resourceVersion"]
    failed, res = run(cluster, check_mode=check_mode, diff_mode=True, name="a", force=True, **COMMON)
    assert not failed and res["changed"]
    assert cluster.writes("dryRun") == [("PUT", vm_path("a"), {"dryRun": "All"} if check_mode else {})]
    # The PUT is guarded by the resourceVersion read.
    assert cluster.bodies("PUT", vm_path("a"))[0]["metadata"]["resourceVersion"] == version
    assert "other" not in res["diff"]["after"]["metadata"]["labels"]
    assert ("other" in cluster.vm("a")["metadata"]["labels"]) is check_mode
    assert cluster.vm("a")["spec"]["runStrategy"] == "Always"
    if not check_mode:
        failed, res = run(cluster, name="a", force=True, **COMMON)
        assert not failed and res["changed"] is False


def test_update_never_touches_run_strategy_unless_given():
    cluster = FakeCluster()
    run(cluster, name="a", **COMMON)
    cluster.edit("a", lambda vm: vm["spec"].update(runStrategy="Manual"))      # changed by someone else
    failed, res = run(cluster, name="a", **common(memory="2Gi"))
    assert res["changed"]
    assert cluster.vm("a")["spec"]["runStrategy"] == "Manual"
    assert cluster.writes() == [("PATCH merge", vm_path("a"), {})]
    assert "runStrategy" not in cluster.bodies("PATCH", vm_path("a"))[0].get("spec", {})


def test_single_vm_uses_get_not_list():
    cluster = FakeCluster()
    run(cluster, name="a", **COMMON)
    assert cluster.sent() == [("GET", vm_path("a"), {}), ("POST", VMS, {})]


def test_check_mode_is_a_server_dry_run_and_predicts_no_change_on_rerun():
    cluster = FakeCluster()
    failed, res = run(cluster, check_mode=True, diff_mode=True, name="a", **COMMON)
    assert res["changed"] and cluster.vm("a") is None
    assert cluster.sent("dryRun") == [("GET", vm_path("a"), {}), ("POST", VMS, {"dryRun": "All"})]
    assert res["diff"]["before"] == {} and res["diff"]["after"]["metadata"]["name"] == "a"
    assert "macAddress" in res["diff"]["after"]["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"][0]
    run(cluster, name="a", **COMMON)
    failed, res = run(cluster, check_mode=True, name="a", **COMMON)
    assert res["changed"] is False and cluster.writes() == []


def test_one_rejected_vm_is_named_and_does_not_hide_the_others():
    cluster = FakeCluster()
    cluster.reject["vm-3"] = 'spec.template.spec.domain.cpu.cores: Invalid value: "string"'
    failed, res = run(cluster, vms=FLEET, **COMMON)
    assert failed
    assert res["msg"].startswith("1 of 5 VMs failed: ns/vm-3: The API server rejected VirtualMachines as invalid (422): "
                                 'VirtualMachine.kubevirt.io "vm-3" is invalid: spec.template.spec.domain.cpu.cores')
    assert res["results"][3]["failed"] and "failed" not in res["results"][4]
    assert cluster.vm("vm-4") is not None and cluster.vm("vm-3") is None


@pytest.mark.parametrize("strategy,state,action,changed", [
    ("Always", "started", None, False),
    ("Halted", "stopped", None, False),
    ("Halted", "started", "start", True),
    ("Manual", "started", "start", True),
    ("Always", "stopped", "stop", True),
    ("Always", "restarted", "restart", True),
    ("Halted", "restarted", "start", True),
])
@pytest.mark.parametrize("check_mode", [False, True])
def test_lifecycle_states(strategy, state, action, changed, check_mode):
    cluster = FakeCluster()
    run(cluster, name="a", run_strategy=strategy, **COMMON)
    cluster.reconcile()         # an Always VM gets its VMI
    assert (cluster.vmi("a") is not None) is (strategy == "Always")
    failed, res = run(cluster, check_mode=check_mode, name="a", namespace="ns", state=state)
    assert not failed
    assert res["changed"] is changed
    assert res.get("action") == action
    # A bare lifecycle request does not rewrite the VM: the subresource call is the only write.
    assert cluster.writes() == ([] if check_mode or not action else [("PUT", action_path("a", action), {})])


def test_started_waits_for_ready_with_one_list_and_one_watch():
    cluster = FakeCluster()
    failed, res = run(cluster, vms=FLEET, wait=True, state="started", **COMMON)
    assert not failed
    assert cluster.sent() == ([("GET", VMS, {}), ("GET", VMIS, {})] + [("POST", VMS, {})] * 5
                              + [("GET", VMS, {}), ("GET", VMS, {"watch": "true"})])
    assert all(r["result"]["status"]["conditions"] == [{"type": "Ready", "status": "True"}] for r in res["results"])


def test_restarted_waits_for_a_new_vmi():
    cluster = FakeCluster()
    run(cluster, name="a", **COMMON)
    cluster.reconcile()
    old = cluster.vmi("a")["metadata"]["uid"]
    failed, res = run(cluster, name="a", namespace="ns", state="restarted", wait=True)
    assert not failed and res["changed"] and res["action"] == "restart"
    assert cluster.vmi("a")["metadata"]["uid"] != old
    assert cluster.sent("fieldSelector") == [
        ("GET", vm_path("a"), {}), ("GET", VMIS + "/a", {}), ("PUT", action_path("a", "restart"), {}),
        ("GET", VMIS, {"fieldSelector": "metadata.name=a"}),
        ("GET", VMIS, {"fieldSelector": "metadata.name=a", "watch": "true"}),
        ("GET", VMS, {"fieldSelector": "metadata.name=a"})]     # the VM was Ready in its list: no watch


def test_stopped_waits_until_the_vmi_is_gone():
    cluster = FakeCluster()
    run(cluster, name="a", **COMMON)
    cluster.reconcile()
    failed, res = run(cluster, name="a", namespace="ns", state="stopped", wait=True)
    assert not failed and res["action"] == "stop"
    assert cluster.vmi("a") is None
    assert cluster.sent() == [("GET", vm_path("a"), {}), ("GET", VMIS + "/a", {}), ("PUT", action_path("a", "stop"), {}),
                              ("GET", VMIS, {}), ("GET", VMIS, {"watch": "true"}), ("GET", VMS, {})]


def test_timeout_names_each_vm_and_its_state():
    cluster = FakeCluster(converge=False)
    ticks = itertools.count(0, 0.5)
    task_params = params(vms=FLEET[:2], wait=True, wait_timeout=3, **COMMON)
    items = va.resolve_items(task_params)
    task = va.VMTask(Api(make_client(cluster)), items, wait=True, wait_timeout=3, clock=lambda: next(ticks),
                     sleep=lambda s: None)
    task.run()
    assert task.timeout_msg.startswith("Timed out after 3s waiting for 2 of 2 VMs")
    assert "ns/vm-0 waiting to be Ready" in task.timeout_msg and "no Ready condition yet" in task.timeout_msg
    assert [vm.stage for vm in task.vms] == [va.WRITTEN, va.WRITTEN]     # written, never settled


def test_each_vm_ends_in_one_stage():
    cluster = FakeCluster()
    run(cluster, vms=[{"name": "a"}, {"name": "b"}], **COMMON)
    cluster.reconcile(names=["a"])
    vms = [{"name": "a", "state": "stopped"}, {"name": "b", "state": "absent"}, {"name": "c", "state": "started"}]
    items = va.resolve_items(params(namespace="ns", wait=True, vms=vms))
    task = va.VMTask(Api(make_client(cluster)), items, wait=True, wait_timeout=30)
    task.run()
    assert [vm.stage for vm in task.vms] == [va.SETTLED, va.SETTLED, va.FAILED]
    assert [vm.outcome for vm in task.vms] == ["unchanged", "deleted", "failed"]
    assert task.vms[0].acted and task.vms[0].changed and not task.vms[0].write.changed


def test_restart_required_is_predicted_and_opt_in_restart():
    cluster = FakeCluster()
    run(cluster, name="a", **COMMON)
    cluster.reconcile()
    failed, res = run(cluster, name="a", **common(memory="2Gi"))
    assert res["restart_required"] is True and "action" not in res
    assert cluster.writes() == [("PATCH merge", vm_path("a"), {})]
    failed, res = run(cluster, name="a", restart_if_required=True, **common(memory="3Gi"))
    assert res["action"] == "restart" and res["restart_required"] is False
    assert cluster.writes() == [("PATCH merge", vm_path("a"), {}), ("PUT", action_path("a", "restart"), {})]


def test_absent_deletes_once_and_is_idempotent():
    cluster = FakeCluster()
    run(cluster, name="a", **COMMON)
    failed, res = run(cluster, name="a", namespace="ns", state="absent", delete_options={"propagationPolicy": "Foreground"})
    assert res["changed"] and res["method"] == "delete" and res["result"]["metadata"]["name"] == "a"
    assert cluster.writes() == [("DELETE", vm_path("a"), {})]
    assert cluster.bodies("DELETE", vm_path("a")) == [{"kind": "DeleteOptions", "apiVersion": "v1",
                                                       "propagationPolicy": "Foreground"}]
    assert cluster.vm("a") is None
    failed, res = run(cluster, name="a", namespace="ns", state="absent")
    assert res["changed"] is False and cluster.writes() == []


@pytest.mark.parametrize("check_mode", [False, True])
def test_absent_sends_the_preconditions_and_a_dry_run_in_check_mode(check_mode):
    cluster = FakeCluster()
    run(cluster, name="a", **COMMON)
    uid = cluster.vm("a")["metadata"]["uid"]
    failed, res = run(cluster, check_mode=check_mode, name="a", namespace="ns", state="absent",
                      delete_options={"preconditions": {"uid": uid}})
    assert not failed and res["changed"]
    assert cluster.writes("dryRun") == [("DELETE", vm_path("a"), {"dryRun": "All"} if check_mode else {})]
    body = dict({"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": uid}},
                **({"dryRun": ["All"]} if check_mode else {}))
    assert cluster.bodies("DELETE", vm_path("a")) == [body]
    assert (cluster.vm("a") is not None) is check_mode


def test_absent_with_a_stale_precondition_fails_and_keeps_the_vm():
    cluster = FakeCluster()
    run(cluster, name="a", **COMMON)
    failed, res = run(cluster, name="a", namespace="ns", state="absent", delete_options={"preconditions": {"uid": "other"}})
    assert failed and "Precondition failed: UID in precondition: other" in res["msg"]
    assert cluster.writes() == [("DELETE", vm_path("a"), {})] and cluster.vm("a") is not None


def test_generate_name_creates_with_post():
    cluster = FakeCluster()
    failed, res = run(cluster, generate_name="gen-", **COMMON)
    assert res["changed"] and res["result"]["metadata"]["name"] == "gen-abcde"
    assert cluster.sent() == [("POST", VMS, {})]     # no name: nothing to read first
    assert cluster.bodies("POST", VMS)[0]["metadata"]["generateName"] == "gen-"


@pytest.mark.parametrize("kw,msg", [
    (dict(name="a", namespace="ns", state="started"), "does not exist and no spec was given"),
    (dict(name="a", namespace="ns", state="restarted"), "cannot be restarted"),
])
def test_lifecycle_on_missing_vm_without_spec_fails_per_vm(kw, msg):
    cluster = FakeCluster()
    failed, res = run(cluster, **kw)
    assert failed and msg in res["msg"]
    assert cluster.writes() == []


@pytest.mark.parametrize("kw,msg", [
    (dict(vms=[{"name": "a"}, {"name": "a"}], namespace="ns"), "vms[1] (a): VM ns/a is declared twice"),
    (dict(vms=[{"name": "a"}]), "vms[0] (a): Option namespace is required"),
    (dict(vms=[{"name": "a", "run_strategy": "Always", "state": "stopped"}], namespace="ns"),
     "vms[0] (a): state=stopped contradicts run_strategy=Always"),
    (dict(generate_name="x-", namespace="ns", state="started"), "generate_name only works with state=present"),
])
def test_whole_task_errors_before_any_request(kw, msg):
    cluster = FakeCluster()
    with pytest.raises(KubeVirtError) as err:
        run(cluster, **kw)
    assert msg in err.value.msg
    assert cluster.requests == []


def test_running_on_a_vm_that_uses_run_strategy_is_sent_as_run_strategy_with_full_ownership():
    cluster = FakeCluster()
    run(cluster, name="a", full_ownership=True, **COMMON)
    failed, res = run(cluster, name="a", running=False, full_ownership=True, **COMMON)
    spec = cluster.vm("a")["spec"]
    assert spec["runStrategy"] == "Halted" and "running" not in spec
    assert cluster.writes() == [("PATCH apply", vm_path("a"), {})]


def test_running_given_replaces_run_strategy_as_kubevirt_core_does():
    cluster = FakeCluster()
    run(cluster, name="a", **COMMON)
    failed, res = run(cluster, name="a", running=False, **COMMON)
    spec = cluster.vm("a")["spec"]
    assert spec["running"] is False and "runStrategy" not in spec
    assert cluster.writes() == [("PATCH merge", vm_path("a"), {})]


@pytest.mark.parametrize("full_ownership", [False, True])
@pytest.mark.parametrize("check_mode", [False, True])
def test_run_strategy_replaces_running_set_by_another_tool(check_mode, full_ownership):
    cluster = FakeCluster()
    run(cluster, name="a", running=True, **COMMON)           # like a VM kubevirt.core created
    failed, res = run(cluster, check_mode=check_mode, name="a", run_strategy="Manual", full_ownership=full_ownership,
                      **COMMON)
    assert not failed and res["changed"]
    dry = {"dryRun": "All"} if check_mode else {}
    if full_ownership:
        # The guarded swap of spec.running for runStrategy, then the apply (its dry run is the swap's answer).
        assert cluster.writes("dryRun") == [("PATCH json", vm_path("a"), dry)] + (
            [] if check_mode else [("PATCH apply", vm_path("a"), {})])
    else:
        assert cluster.writes("dryRun") == [("PATCH merge", vm_path("a"), dry)]
    spec = cluster.vm("a")["spec"]
    if check_mode:
        assert spec["running"] is True and "runStrategy" not in spec
    else:
        assert spec["runStrategy"] == "Manual" and "running" not in spec


def test_vms_in_two_namespaces_cost_one_read_each():
    cluster = FakeCluster()
    fleet = [{"name": "a", "namespace": "ns1"}, {"name": "b", "namespace": "ns2"}, {"name": "c", "namespace": "ns1"}]
    failed, res = run(cluster, vms=fleet, **COMMON)
    assert not failed
    reads = [s for s in cluster.sent() if s[0] == "GET"]
    ns1_vms = "/apis/kubevirt.io/v1/namespaces/ns1/virtualmachines"
    assert reads == [("GET", ns1_vms, {}), ("GET", vm_path("b", "ns2"), {})]   # one VM: a GET
    assert [(r["namespace"], r["name"]) for r in res["results"]] == [("ns1", "a"), ("ns2", "b"), ("ns1", "c")]
