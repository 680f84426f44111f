"""Unit tests for state=paused and the other states on a paused VM: the planner's decisions, requests and waits.

They run through the real ``_api.Api`` and ``_client.Client`` over ``FakeCluster``, whose VMI ``pause``/``unpause``
subresources are added here (``PauseCluster``) the way KubeVirt's virt-api answers them
(pkg/virt-api/rest/lifecycle.go: PauseVMIRequestHandler, UnpauseVMIRequestHandler).
"""
import pytest

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _vm_apply as va
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._api import Api
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._errors import KubeVirtError

from ..fake_cluster import VMIS as VMI_PLURAL, FakeCluster, Refused, dropped
from ..kube_fakes import make_client, response
from .test_vm_apply import COMMON, VMIS, VMS, action_path, params, run, vm_path

PAUSED = {"type": "Paused", "status": "True", "reason": "PausedByUser", "message": "VMI was paused by user"}


def vmi_action_path(name, action, ns="ns"):
    return "/apis/subresources.kubevirt.io/v1/namespaces/%s/virtualmachineinstances/%s/%s" % (ns, name, action)


class PauseCluster(FakeCluster):
    """FakeCluster with virt-api's pause/unpause and virt-handler's Paused condition (VM printableStatus follows)."""

    def add_pause(self, name, ns="ns"):
        for action in ("pause", "unpause"):
            self.intercept("PUT", vmi_action_path(name, action, ns),
                           lambda req, action=action: self.serve_action(name, ns, action))

    def serve_action(self, name, ns, action):
        try:
            vmi = self.vmi(name, ns)
            if vmi is None:
                raise Refused(404, "NotFound", 'virtualmachineinstance.kubevirt.io "%s" not found' % name)
            if vmi["status"].get("phase") != "Running":
                raise Refused(409, "Conflict", "VM is not running" if action == "pause" else "VMI is not running")
            if (action == "pause") is is_paused(vmi):
                raise Refused(409, "Conflict", "VMI is already paused" if action == "pause" else "VMI is not paused")
        except Refused as refused:
            return refused.answer
        self.set_paused(name, action == "pause", ns)
        return response(200, raw=b"")

    def set_paused(self, name, paused, ns="ns"):
        def vmi(o):
            conds = [c for c in o["status"].get("conditions") or [] if c["type"] not in ("Paused", "Ready")]
            o["status"]["conditions"] = conds + ([PAUSED, {"type": "Ready", "status": "False"}] if paused
                                                 else [{"type": "Ready", "status": "True"}])

        def vm(o):
            o.setdefault("status", {})["printableStatus"] = "Paused" if paused else "Running"
        self.edit(name, vmi, plural=VMI_PLURAL, namespace=ns)
        self.edit(name, vm, namespace=ns)


def is_paused(vmi):
    return any(c.get("type") == "Paused" and c.get("status") == "True" for c in vmi["status"].get("conditions") or [])


def cluster_with(kind, name="a", strategy="Always"):
    """A VM that is `kind`: running, paused, stopped or starting (its VMI scheduled, not running yet)."""
    cluster = PauseCluster()
    run(cluster, name=name, run_strategy=strategy if kind != "stopped" else "Halted", **COMMON)
    cluster.reconcile()
    cluster.add_pause(name)
    if kind == "paused":
        cluster.set_paused(name, True)
    elif kind == "starting":
        cluster.edit(name, lambda o: o["status"].update(phase="Scheduling"), plural=VMI_PLURAL)
    return cluster


@pytest.mark.parametrize("kind,state,action,changed,path", [
    ("running", "paused", "pause", True, vmi_action_path("a", "pause")),
    ("paused", "paused", None, False, None),
    ("paused", "started", "unpause", True, vmi_action_path("a", "unpause")),
    ("running", "started", None, False, None),
    ("paused", "stopped", "stop", True, action_path("a", "stop")),
    ("paused", "restarted", "restart", True, action_path("a", "restart")),
    ("paused", "present", None, False, None),
])
@pytest.mark.parametrize("check_mode", [False, True])
def test_paused_decisions(kind, state, action, changed, path, check_mode):
    cluster = cluster_with(kind)
    failed, res = run(cluster, check_mode=check_mode, name="a", namespace="ns", state=state)
    assert not failed, res
    assert res["changed"] is changed and res.get("action") == action
    # One PUT to act, none when already so or in check mode (predicted from the VMI read: no dry-run request).
    assert cluster.writes() == ([] if check_mode or not path else [("PUT", path, {})])
    # The VMI is read for every lifecycle state (present without wait does not need it).
    reads = [("GET", vm_path("a"), {})] + ([("GET", VMIS + "/a", {})] if state != "present" else [])
    assert cluster.sent()[:len(reads) + 1] == reads + cluster.writes()
    if not check_mode and action in ("pause", "unpause"):
        assert is_paused(cluster.vmi("a")) is (action == "pause")


@pytest.mark.parametrize("kind,msg", [
    ("stopped", "VM ns/a is not running (Stopped), so it cannot be paused; start it first (state=started with "
                "wait=true), then pause it."),
    ("starting", "VM ns/a is not running yet (VMI phase Scheduling), so it cannot be paused; wait until it runs"),
])
@pytest.mark.parametrize("check_mode", [False, True])
def test_paused_on_a_vm_that_does_not_run_fails_without_a_request(kind, msg, check_mode):
    cluster = cluster_with(kind)
    if kind == "stopped":
        cluster.edit("a", lambda o: o.setdefault("status", {}).update(printableStatus="Stopped"))
    failed, res = run(cluster, check_mode=check_mode, name="a", namespace="ns", state="paused")
    assert failed and res["msg"].startswith(msg) and res["changed"] is False
    assert cluster.writes() == []


def test_paused_batch_fails_only_the_stopped_vm_and_pauses_the_others():
    cluster = PauseCluster()
    run(cluster, vms=[{"name": "a"}, {"name": "b"}, {"name": "c", "run_strategy": "Halted"}], **COMMON)
    cluster.reconcile()
    for name in "abc":
        cluster.add_pause(name)
    failed, res = run(cluster, vms=[{"name": n} for n in "abc"], namespace="ns", state="paused")
    assert failed and res["changed"]
    assert [(r["name"], r.get("action"), r["changed"], r.get("failed", False)) for r in res["results"]] == [
        ("a", "pause", True, False), ("b", "pause", True, False), ("c", None, False, True)]
    assert res["msg"].startswith("1 of 3 VMs failed: ns/c: VM ns/c is not running")
    assert "Done for the others: unchanged 2: ns/a (pause), ns/b (pause)." in res["msg"]
    assert sorted(cluster.writes()) == [("PUT", vmi_action_path(n, "pause"), {}) for n in "ab"]


def test_paused_on_a_missing_vm_fails_before_creating_it():
    cluster = PauseCluster()
    failed, res = run(cluster, name="a", state="paused", **COMMON)
    assert failed and res["msg"] == ("VM ns/a does not exist, so it cannot be paused; create and start it first "
                                     "(state=started with wait=true), then pause it.")
    assert cluster.writes() == [] and cluster.vm("a") is None


@pytest.mark.parametrize("kw,msg", [
    (dict(name="a", namespace="ns", run_strategy="Halted", state="paused"),
     "state=paused contradicts run_strategy=Halted"),
    (dict(vms=[{"name": "a", "running": False, "state": "paused"}], namespace="ns"),
     "vms[0] (a): state=paused contradicts running=false"),
])
def test_paused_with_a_halted_run_strategy_is_refused_before_any_request(kw, msg):
    cluster = PauseCluster()
    with pytest.raises(KubeVirtError) as err:
        run(cluster, **kw)
    assert msg in err.value.msg and cluster.requests == []


@pytest.mark.parametrize("answer,failed,changed", [
    ("VMI is already paused", False, False),       # paused by someone else since the read
    ("VM is not running", True, False),            # stopped since the read
])
def test_pause_conflicts(answer, failed, changed):
    cluster = cluster_with("running")
    cluster.intercepts[:] = []
    cluster.intercept("PUT", vmi_action_path("a", "pause"), lambda req: Refused(409, "Conflict", answer).answer)
    got_failed, res = run(cluster, name="a", namespace="ns", state="paused")
    assert got_failed is failed and res["changed"] is changed and res["action"] == "pause"
    if failed:
        assert res["msg"].startswith("Cannot pause VM ns/a: ") and res["msg"].endswith("(409): %s" % answer)


def test_paused_waits_for_the_paused_condition_then_the_vm():
    cluster = cluster_with("running")
    failed, res = run(cluster, name="a", namespace="ns", state="paused", wait=True)
    assert not failed and res["action"] == "pause"
    assert res["result"]["status"]["printableStatus"] == "Paused"
    assert cluster.sent("fieldSelector") == [
        ("GET", vm_path("a"), {}), ("GET", VMIS + "/a", {}), ("PUT", vmi_action_path("a", "pause"), {}),
        ("GET", VMIS, {"fieldSelector": "metadata.name=a"}), ("GET", VMS, {"fieldSelector": "metadata.name=a"})]
    # Paused already: the wait is satisfied by the lists, nothing is written.
    failed, res = run(cluster, name="a", namespace="ns", state="paused", wait=True)
    assert not failed and res["changed"] is False and cluster.writes() == []


def test_started_on_a_paused_vm_waits_until_it_is_unpaused_and_ready():
    cluster = cluster_with("paused")
    failed, res = run(cluster, name="a", namespace="ns", state="started", wait=True)
    assert not failed and res["action"] == "unpause"
    assert res["result"]["status"]["printableStatus"] == "Running"
    assert not is_paused(cluster.vmi("a"))


def test_paused_timeout_names_what_is_missing():
    cluster = cluster_with("running")
    cluster.intercepts[:] = []
    # virt-api accepted the pause, but virt-handler never reports it.
    cluster.intercept("PUT", vmi_action_path("a", "pause"), lambda req: response(200, raw=b""))
    failed, res = run(cluster, name="a", namespace="ns", state="paused", wait=True, wait_timeout=1)
    assert failed and "ns/a waiting to be paused (VMI condition Paused)" in res["msg"]


def test_restart_if_required_does_not_unpause_a_paused_vm():
    cluster = cluster_with("paused")
    cluster.restart_required.add(("ns", "a"))
    cluster.edit("a", lambda o: o["status"]["conditions"].append({"type": "RestartRequired", "status": "True"}))
    failed, res = run(cluster, name="a", namespace="ns", state="paused", restart_if_required=True)
    assert not failed and res["changed"] is False and res["restart_required"] is True
    assert cluster.writes() == []


def test_present_with_wait_on_a_paused_vm_does_not_wait_for_ready():
    cluster = cluster_with("paused")
    failed, res = run(cluster, name="a", namespace="ns", labels={"x": "y"}, wait=True, wait_timeout=2)
    assert not failed and res["changed"] and "action" not in res
    assert is_paused(cluster.vmi("a"))
    # (This fake keeps the VM Ready; KubeVirt does not, so the target must be the pause, not Ready.)
    task = va.VMTask(Api(make_client(cluster)), va.resolve_items(params(name="a", namespace="ns")), wait=True,
                     wait_timeout=2)
    task.run()
    assert (task.vms[0].target, task.vms[0].stage) == ("paused", va.SETTLED)


def test_plan_pause_is_pure():
    vm = va.VM(0, {"name": "a", "namespace": "ns"}, "paused")
    vm.vmi = {"metadata": {"uid": "u"}, "status": {"phase": "Running", "conditions": []}}
    va.VMTask._plan_pause(vm, "Always", True, False)
    assert (vm.action, vm.target, vm.error) == ("pause", "paused", None)


def test_pause_repeated_after_a_lost_answer_counts_as_done():
    cluster = cluster_with("running")
    cluster.intercepts[:] = []
    sent = []

    def lossy(req):
        sent.append(req)
        answer = cluster.serve_action("a", "ns", "pause")
        if len(sent) == 1:
            raise dropped()     # paused, but the answer never came back
        return answer
    cluster.intercept("PUT", vmi_action_path("a", "pause"), lossy)
    api = Api(make_client(cluster))
    failed, res = run(cluster, api=api, name="a", namespace="ns", state="paused")
    assert not failed and res["changed"] and res["action"] == "pause"
    # The client sent the pause again itself (it is repeatable); its 409 "already paused" is the first one's doing.
    assert cluster.writes() == [("PUT", vmi_action_path("a", "pause"), {})] * 2
    assert api.client.retry_reasons == {"reset": 1}
    assert is_paused(cluster.vmi("a"))
