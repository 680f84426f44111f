"""Unit tests for _vm_apply: request counts, idempotency, lifecycle decisions, per-VM failures, waits.

The fake sits at the `_api.Api` seam and behaves like a cluster with KubeVirt, kubemacpool and a controller
that makes VMs Ready as soon as somebody watches.
"""
import copy
import itertools

import pytest

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _vm_apply as va
from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _vm_spec as vs
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._errors import ApiError, KubeVirtError
from tests.kubeapi.patch import merge_patch

_uids = itertools.count(1)


class FakeApi:
    def __init__(self, converge=True):
        self.objs = {"virtualmachines": {}, "virtualmachineinstances": {}}
        self.calls = []
        self.converge = converge
        self.reject = {}
        self.restart_required = set()
        self.rv = 100

    # helpers
    def _bump(self, obj):
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)

    def vm(self, ns, name):
        return self.objs["virtualmachines"].get((ns, name))

    def vmi(self, ns, name):
        return self.objs["virtualmachineinstances"].get((ns, name))

    def _webhooks(self, obj):
        t = obj["spec"]["template"]["spec"]
        for i, iface in enumerate(t.get("domain", {}).get("devices", {}).get("interfaces", [])):
            iface.setdefault("macAddress", "02:00:00:00:00:%02x" % i)
        t.setdefault("domain", {}).setdefault("machine", {"type": "q35"})
        obj["metadata"].setdefault("annotations", {})["kubemacpool.io/transaction-timestamp"] = "t%d" % self.rv

    def _make_vmi(self, ns, name, ready=True):
        vmi = {"metadata": {"name": name, "namespace": ns, "uid": "vmi-%d" % next(_uids)},
               "status": {"phase": "Running" if ready else "Scheduling",
                          "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}
        self._bump(vmi)
        self.objs["virtualmachineinstances"][(ns, name)] = vmi
        if (ns, name) in self.objs["virtualmachines"]:
            self.objs["virtualmachines"][(ns, name)].setdefault("status", {})["created"] = True
        return vmi

    def _set_ready(self, vm, ready):
        vm.setdefault("status", {})["conditions"] = [{"type": "Ready", "status": "True" if ready else "False"}]
        if vm["metadata"]["name"] in self.restart_required:
            vm["status"]["conditions"].append({"type": "RestartRequired", "status": "True"})
        vm["status"]["observedGeneration"] = vm["metadata"]["generation"]

    # the Api surface
    def get(self, kind, name, namespace=None):
        self.calls.append(("get", kind.plural, namespace, name))
        return copy.deepcopy(self.objs[kind.plural].get((namespace, name)))

    def list(self, kind, namespace=None, label_selectors=None, field_selectors=None, limit=None):
        self.calls.append(("list", kind.plural, namespace))
        names = [f.split("=", 1)[1] for f in field_selectors or [] if f.startswith("metadata.name=")]
        items = [copy.deepcopy(o) for (ns, n), o in self.objs[kind.plural].items() if ns == namespace
                 and (not names or n in names)]
        return items, str(self.rv)

    def apply(self, kind, obj, field_manager, namespace=None, force=False, dry_run=False):
        self.calls.append(("apply", obj["metadata"]["name"], dry_run, force, field_manager))
        name = obj["metadata"]["name"]
        if name in self.reject:
            raise ApiError(self.reject[name], 422)
        old = self.objs["virtualmachines"].get((namespace, name))
        new = copy.deepcopy(obj)
        meta = new["metadata"]
        if old:
            meta.update({k: old["metadata"][k] for k in ("uid", "generation")})
            if old["spec"] != obj["spec"]:
                meta["generation"] += 1
            new["status"] = copy.deepcopy(old.get("status", {}))
            if (namespace, name) in self.objs["virtualmachineinstances"] and not dry_run and \
                    old["spec"]["template"] != obj["spec"]["template"]:
                self.restart_required.add(name)
            oldmacs = {i["name"]: i.get("macAddress") for i in old["spec"]["template"]["spec"].get("domain", {})
                       .get("devices", {}).get("interfaces", [])}
            for iface in new["spec"]["template"]["spec"].get("domain", {}).get("devices", {}).get("interfaces", []):
                if oldmacs.get(iface["name"]):
                    iface.setdefault("macAddress", oldmacs[iface["name"]])
        else:
            meta.update(uid="vm-%d" % next(_uids), generation=1)
        self._webhooks(new)
        if dry_run:
            return new
        self._bump(new)
        self.objs["virtualmachines"][(namespace, name)] = new
        return copy.deepcopy(new)

    def patch(self, kind, name, patch, namespace=None, patch_type="merge", dry_run=False, field_manager=None,
              force=None, subresource=None):
        self.calls.append(("patch", name, patch_type, dry_run))
        vm = copy.deepcopy(self.objs["virtualmachines"][(namespace, name)])
        if patch_type == "merge":
            old = copy.deepcopy(vm)
            vm = merge_patch(vm, patch)
            if old["spec"] != vm["spec"]:
                vm["metadata"]["generation"] += 1
            if (namespace, name) in self.objs["virtualmachineinstances"] and not dry_run and \
                    old["spec"]["template"] != vm["spec"]["template"]:
                self.restart_required.add(name)
            self._webhooks(vm)
            if not dry_run and old != vm:
                self._bump(vm)
                self.objs["virtualmachines"][(namespace, name)] = vm
            return copy.deepcopy(vm)
        for op in patch:
            field = op["path"].rsplit("/", 1)[1]
            if op["op"] == "test":
                assert vm["spec"][field] == op["value"]
            elif op["op"] == "remove":
                del vm["spec"][field]
            elif op["op"] == "add":
                vm["spec"][field] = op["value"]
        if not dry_run:
            self._bump(vm)
            self.objs["virtualmachines"][(namespace, name)] = vm
        return copy.deepcopy(vm)

    def writes(self):
        return [c for c in self.calls if c[0] in ("apply", "create", "delete", "subresource", "patch", "replace")]

    def replace(self, kind, obj, namespace=None, dry_run=False, field_manager=None):
        name = obj["metadata"]["name"]
        self.calls.append(("replace", name, dry_run))
        old = self.objs["virtualmachines"][(namespace, name)]
        if obj["metadata"].get("resourceVersion") != old["metadata"]["resourceVersion"]:
            raise ApiError("Conflict (409): the object has been modified", 409)
        new = copy.deepcopy(obj)
        new["metadata"].update({k: old["metadata"][k] for k in ("uid", "generation")})
        if old["spec"] != new["spec"]:
            new["metadata"]["generation"] += 1
        new["status"] = copy.deepcopy(old.get("status", {}))
        self._webhooks(new)
        if not dry_run and new != old:
            self._bump(new)
            self.objs["virtualmachines"][(namespace, name)] = new
        return copy.deepcopy(new)

    def create(self, kind, obj, namespace=None, dry_run=False, field_manager=None):
        obj = copy.deepcopy(obj)
        if "generateName" in obj["metadata"]:
            obj["metadata"]["name"] = obj["metadata"].pop("generateName") + "abcde"
        self.calls.append(("create", obj["metadata"]["name"], dry_run))
        if obj["metadata"]["name"] in self.reject:
            raise ApiError(self.reject[obj["metadata"]["name"]], 422)
        self._webhooks(obj)
        obj["metadata"].update(uid="vm-%d" % next(_uids), generation=1)
        if not dry_run:
            self._bump(obj)
            self.objs["virtualmachines"][(namespace, obj["metadata"]["name"])] = obj
        return copy.deepcopy(obj)

    def delete(self, kind, name, namespace=None, propagation=None, dry_run=False, grace_period=None,
               preconditions=None):
        self.calls.append(("delete", name, dry_run, propagation) + ((preconditions,) if preconditions else ()))
        obj = self.objs["virtualmachines"].get((namespace, name))
        if obj is None:
            return None
        if not dry_run:
            del self.objs["virtualmachines"][(namespace, name)]
            self.objs["virtualmachineinstances"].pop((namespace, name), None)
        return copy.deepcopy(obj)

    def subresource(self, kind, name, sub, namespace=None, method="PUT", body=None, idempotent=False):
        self.calls.append(("subresource", name, sub, body))
        vm = self.objs["virtualmachines"][(namespace, name)]
        has_vmi = (namespace, name) in self.objs["virtualmachineinstances"]
        if sub == "start":
            if has_vmi:
                raise ApiError("Conflict (409): VM is already running", 409)
            if vm["spec"].get("runStrategy") == "Halted":
                vm["spec"]["runStrategy"] = "Always"
            vm.setdefault("status", {})["stateChangeRequests"] = [{"action": "Start"}]
        elif sub == "stop":
            vm["spec"]["runStrategy"] = "Halted" if vm["spec"].get("runStrategy") == "Always" else vm["spec"]["runStrategy"]
            vm.setdefault("status", {})["stateChangeRequests"] = [{"action": "Stop"}]
        elif sub == "restart":
            self.restart_required.discard(name)
            vm.setdefault("status", {})["stateChangeRequests"] = [{"action": "Stop"}, {"action": "Start"}]
        self._bump(vm)

    def watch(self, kind, namespace=None, label_selectors=None, field_selectors=None, resource_version=None, timeout=60):
        self.calls.append(("watch", kind.plural, namespace))
        if not self.converge:
            return
        # The "controller" reconciles everything once somebody watches.
        for (ns, name), vm in list(self.objs["virtualmachines"].items()):
            if ns != namespace:
                continue
            strategy = vs.run_strategy_of(vm["spec"])
            requests = [r["action"] for r in vm.get("status", {}).pop("stateChangeRequests", [])]
            vmi = self.vmi(ns, name)
            if requests and requests[0] == "Stop" and vmi:
                del self.objs["virtualmachineinstances"][(ns, name)]
                vmi = None
                if kind.plural == "virtualmachineinstances":
                    yield "DELETED", copy.deepcopy({"metadata": {"name": name, "namespace": ns}})
            if strategy in ("Always", "RerunOnFailure") or "Start" in requests:
                if vmi is None:
                    vmi = self._make_vmi(ns, name)
                self._set_ready(vm, True)
            elif strategy == "Halted" and vmi is not None:
                del self.objs["virtualmachineinstances"][(ns, name)]
                self._set_ready(vm, False)
                if kind.plural == "virtualmachineinstances":
                    yield "DELETED", copy.deepcopy(vmi)
                continue
            else:
                vm.setdefault("status", {})["observedGeneration"] = vm["metadata"]["generation"]
            obj = vm if kind.plural == "virtualmachines" else vmi
            if obj is not None:
                yield "MODIFIED", copy.deepcopy(obj)


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


def run(api, check_mode=False, diff_mode=False, **kw):
    api.calls.clear()
    return va.run_task(api, params(**kw), check_mode=check_mode, diff_mode=diff_mode)


@pytest.mark.parametrize("full_ownership", [False, True])
def test_many_vms_one_list_one_write_each_then_zero_writes(full_ownership):
    api = FakeApi()
    failed, res = run(api, vms=FLEET, full_ownership=full_ownership, **COMMON)
    assert not failed and res["changed"]
    if full_ownership:
        assert [c[0] for c in api.calls] == ["list"] + ["apply"] * 5
        assert all(c[3] is True and c[4] == "virtfleet.kubevirt" for c in api.calls[1:])
    else:
        assert [c[0] for c in api.calls] == ["list"] + ["create"] * 5
    assert [r["method"] for r in res["results"]] == ["create"] * 5
    stored = api.vm("ns", "vm-0")
    assert stored["spec"]["runStrategy"] == "Always" and "running" not in stored["spec"]
    assert ("virtfleet.kubevirt/applied-digest" in stored["metadata"].get("annotations", {})) is full_ownership

    failed, res = run(api, vms=FLEET, full_ownership=full_ownership, **COMMON)
    assert not failed and res["changed"] is False
    assert api.calls == [("list", "virtualmachines", "ns")]
    assert [r["method"] for r in res["results"]] == ["update"] * 5


def test_full_ownership_removes_a_dropped_option_and_leaves_unchanged_vms_alone():
    api = FakeApi()
    run(api, vms=FLEET, full_ownership=True, **COMMON)
    fleet = copy.deepcopy(FLEET)
    fleet[2]["labels"] = {"extra": "x"}
    run(api, vms=fleet, full_ownership=True, **COMMON)
    assert [c[1] for c in api.writes()] == ["vm-2"]
    failed, res = run(api, vms=FLEET, full_ownership=True, **COMMON)     # the item label is dropped again
    assert [c[1] for c in api.writes()] == ["vm-2"]
    assert res["results"][2]["changed"] and not res["results"][1]["changed"]


def test_default_mode_never_removes_what_the_task_does_not_name():
    api = FakeApi()
    run(api, name="a", cloud_init={"user": "u"}, instancetype={"name": "u1.small"}, **common(memory=None))
    full = copy.deepcopy(api.vm("ns", "a")["spec"])
    # kubevirt.core's relabel-and-stop task: fewer fields, nothing else may go.
    failed, res = run(api, name="a", namespace="ns", labels={"tier": "web"}, state="stopped")
    assert not failed and res["changed"]
    stored = api.vm("ns", "a")
    assert stored["metadata"]["labels"] == {"app": "fleet", "tier": "web"}
    template = stored["spec"]["template"]["spec"]
    assert template == full["template"]["spec"] and stored["spec"]["instancetype"] == {"name": "u1.small"}
    assert "virtfleet.kubevirt/applied-digest" not in stored["metadata"].get("annotations", {})
    # A convenience option names one element: the others stay (a merge patch alone would replace the list).
    failed, res = run(api, name="a", namespace="ns", boot_disk={"container_image": "img2"})
    volumes = api.vm("ns", "a")["spec"]["template"]["spec"]["volumes"]
    assert [v["name"] for v in volumes] == ["rootdisk", "cloudinit"]
    assert volumes[0]["containerDisk"]["image"] == "img2"
    assert api.vm("ns", "a")["spec"]["template"]["spec"]["networks"] == full["template"]["spec"]["networks"]
    # The same subset again: no write at all.
    failed, res = run(api, name="a", namespace="ns", labels={"tier": "web"}, boot_disk={"container_image": "img2"})
    assert res["changed"] is False and api.writes() == []


def test_default_mode_no_change_and_no_annotation_for_a_vm_made_elsewhere():
    api = FakeApi()
    made = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
            "metadata": {"name": "k", "namespace": "ns", "labels": {"app": "x"}, "generation": 1, "uid": "u",
                         "resourceVersion": "1"},
            "spec": {"runStrategy": "Halted", "template": {"metadata": {"labels": {"app": "x"}},
                                                           "spec": {"domain": {"devices": {}}}}}}
    api.objs["virtualmachines"][("ns", "k")] = copy.deepcopy(made)
    failed, res = run(api, name="k", namespace="ns", labels={"app": "x"}, spec={"domain": {"devices": {}}})
    assert not failed and res["changed"] is False and api.writes() == []
    assert api.vm("ns", "k") == made


@pytest.mark.parametrize("check_mode", [False, True])
def test_force_replaces_the_object(check_mode):
    api = FakeApi()
    run(api, name="a", **COMMON)
    api.vm("ns", "a")["metadata"]["labels"]["other"] = "tool"
    failed, res = run(api, check_mode=check_mode, diff_mode=True, name="a", force=True, **COMMON)
    assert not failed and res["changed"] and [c[0] for c in api.writes()] == ["replace"]
    assert "other" not in res["diff"]["after"]["metadata"]["labels"]
    assert ("other" in api.vm("ns", "a")["metadata"]["labels"]) is check_mode
    assert api.vm("ns", "a")["spec"]["runStrategy"] == "Always"
    if not check_mode:
        failed, res = run(api, name="a", force=True, **COMMON)
        assert not failed and res["changed"] is False


def test_update_never_touches_run_strategy_unless_given():
    api = FakeApi()
    run(api, name="a", **COMMON)
    api.vm("ns", "a")["spec"]["runStrategy"] = "Manual"      # changed by someone else
    failed, res = run(api, name="a", **common(memory="2Gi"))
    assert res["changed"]
    assert api.vm("ns", "a")["spec"]["runStrategy"] == "Manual"
    assert len(api.writes()) == 1


def test_single_vm_uses_get_not_list():
    api = FakeApi()
    run(api, name="a", **COMMON)
    assert api.calls[0] == ("get", "virtualmachines", "ns", "a")


def test_check_mode_is_a_server_dry_run_and_predicts_no_change_on_rerun():
    api = FakeApi()
    failed, res = run(api, check_mode=True, diff_mode=True, name="a", **COMMON)
    assert res["changed"] and api.calls[-1][2] is True and api.vm("ns", "a") is None
    assert res["diff"]["before"] == {} and res["diff"]["after"]["metadata"]["name"] == "a"
    assert "macAddress" in res["diff"]["after"]["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"][0]
    run(api, name="a", **COMMON)
    failed, res = run(api, check_mode=True, name="a", **COMMON)
    assert res["changed"] is False and api.writes() == []


def test_one_rejected_vm_is_named_and_does_not_hide_the_others():
    api = FakeApi()
    api.reject["vm-3"] = ('The API server rejected VirtualMachine ns/vm-3 as invalid (422): spec.template.spec.domain.cpu.cores: '
                          'Invalid value: "string"')
    failed, res = run(api, vms=FLEET, **COMMON)
    assert failed
    assert "1 of 5 VMs failed" in res["msg"] and "ns/vm-3" in res["msg"] and "cpu.cores" in res["msg"]
    assert res["results"][3]["failed"] and not res["results"][4].get("failed")
    assert api.vm("ns", "vm-4") is not None and api.vm("ns", "vm-3") is None


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
    api = FakeApi()
    run(api, name="a", run_strategy=strategy, **COMMON)
    if strategy == "Always":
        api._make_vmi("ns", "a")
    failed, res = run(api, check_mode=check_mode, name="a", namespace="ns", state=state)
    assert not failed
    assert res["changed"] is changed
    assert res.get("action") == action
    subs = [c[2] for c in api.calls if c[0] == "subresource"]
    assert subs == ([] if check_mode or not action else [action])
    assert not [c for c in api.calls if c[0] == "apply"]     # a bare lifecycle request does not rewrite the VM


def test_started_waits_for_ready_with_one_list_and_one_watch():
    api = FakeApi()
    failed, res = run(api, vms=FLEET, wait=True, state="started", **COMMON)
    assert not failed
    kinds = [(c[0], c[1]) for c in api.calls if c[0] in ("list", "watch")]
    assert kinds == [("list", "virtualmachines"), ("list", "virtualmachineinstances"),
                     ("list", "virtualmachines"), ("watch", "virtualmachines")]
    assert all(r["result"]["status"]["conditions"][0]["status"] == "True" for r in res["results"])


def test_restarted_waits_for_a_new_vmi():
    api = FakeApi()
    run(api, name="a", **COMMON)
    old = api._make_vmi("ns", "a")["metadata"]["uid"]
    failed, res = run(api, name="a", namespace="ns", state="restarted", wait=True)
    assert not failed and res["changed"] and res["action"] == "restart"
    assert api.vmi("ns", "a")["metadata"]["uid"] != old


def test_stopped_waits_until_the_vmi_is_gone():
    api = FakeApi()
    run(api, name="a", **COMMON)
    api._make_vmi("ns", "a")
    failed, res = run(api, name="a", namespace="ns", state="stopped", wait=True)
    assert not failed and res["action"] == "stop"
    assert api.vmi("ns", "a") is None
    assert ("watch", "virtualmachineinstances", "ns") in api.calls


def test_timeout_names_each_vm_and_its_state():
    api = FakeApi(converge=False)
    ticks = itertools.count(0, 0.5)
    task_params = params(vms=FLEET[:2], wait=True, wait_timeout=3, **COMMON)
    items = va.resolve_items(task_params)
    task = va.VMTask(api, items, wait=True, wait_timeout=3, clock=lambda: next(ticks), sleep=lambda s: None)
    task.run()
    assert task.timeout_msg.startswith("Timed out after 3s waiting for 2 of 2 VMs")
    assert "ns/vm-0 waiting to be Ready" in task.timeout_msg and "no Ready condition yet" in task.timeout_msg
    assert [vm.stage for vm in task.vms] == [va.WRITTEN, va.WRITTEN]     # written, never settled


def test_each_vm_ends_in_one_stage():
    api = FakeApi()
    run(api, vms=[{"name": "a"}, {"name": "b"}], **COMMON)
    api._make_vmi("ns", "a")
    items = va.resolve_items(params(namespace="ns", wait=True, vms=[{"name": "a", "state": "stopped"},
                                                                  {"name": "b", "state": "absent"},
                                                                  {"name": "c", "state": "started"}]))
    task = va.VMTask(api, items, wait=True, wait_timeout=30)
    task.run()
    assert [vm.stage for vm in task.vms] == [va.SETTLED, va.SETTLED, va.FAILED]
    assert [vm.outcome for vm in task.vms] == ["unchanged", "deleted", "failed"]
    assert task.vms[0].acted and task.vms[0].changed and not task.vms[0].write.changed


def test_restart_required_is_predicted_and_opt_in_restart():
    api = FakeApi()
    run(api, name="a", **COMMON)
    api._make_vmi("ns", "a")
    failed, res = run(api, name="a", **common(memory="2Gi"))
    assert res["restart_required"] is True and "action" not in res
    failed, res = run(api, name="a", restart_if_required=True, **common(memory="3Gi"))
    assert res["action"] == "restart" and res["restart_required"] is False


def test_absent_deletes_once_and_is_idempotent():
    api = FakeApi()
    run(api, name="a", **COMMON)
    failed, res = run(api, name="a", namespace="ns", state="absent", delete_options={"propagationPolicy": "Foreground"})
    assert res["changed"] and res["method"] == "delete" and res["result"]["metadata"]["name"] == "a"
    assert api.writes() == [("delete", "a", False, "Foreground")]
    failed, res = run(api, name="a", namespace="ns", state="absent")
    assert res["changed"] is False and api.writes() == []


def test_generate_name_creates_with_post():
    api = FakeApi()
    failed, res = run(api, generate_name="gen-", **COMMON)
    assert res["changed"] and api.calls[0][0] == "create" and res["result"]["metadata"]["name"] == "gen-abcde"


@pytest.mark.parametrize("kw,msg", [
    (dict(name="a", namespace="ns", state="started"), "does not exist and no spec was given"),
    (dict(name="a", namespace="ns", state="restarted"), "cannot be restarted"),
])
def test_lifecycle_on_missing_vm_without_spec_fails_per_vm(kw, msg):
    failed, res = run(FakeApi(), **kw)
    assert failed and msg in res["msg"]


@pytest.mark.parametrize("kw,msg", [
    (dict(vms=[{"name": "a"}, {"name": "a"}], namespace="ns"), "vms[1] (a): VM ns/a is declared twice"),
    (dict(vms=[{"name": "a"}]), "vms[0] (a): Option namespace is required"),
    (dict(vms=[{"name": "a", "run_strategy": "Always", "state": "stopped"}], namespace="ns"),
     "vms[0] (a): state=stopped contradicts run_strategy=Always"),
    (dict(generate_name="x-", namespace="ns", state="started"), "generate_name only works with state=present"),
])
def test_whole_task_errors_before_any_request(kw, msg):
    api = FakeApi()
    with pytest.raises(KubeVirtError) as err:
        run(api, **kw)
    assert msg in err.value.msg
    assert api.calls == []


def test_running_on_a_vm_that_uses_run_strategy_is_sent_as_run_strategy_with_full_ownership():
    api = FakeApi()
    run(api, name="a", full_ownership=True, **COMMON)
    failed, res = run(api, name="a", running=False, full_ownership=True, **COMMON)
    spec = api.vm("ns", "a")["spec"]
    assert spec["runStrategy"] == "Halted" and "running" not in spec


def test_running_given_replaces_run_strategy_as_kubevirt_core_does():
    api = FakeApi()
    run(api, name="a", **COMMON)
    failed, res = run(api, name="a", running=False, **COMMON)
    spec = api.vm("ns", "a")["spec"]
    assert spec["running"] is False and "runStrategy" not in spec
    assert [c[2] for c in api.writes()] == ["merge"]


@pytest.mark.parametrize("full_ownership", [False, True])
@pytest.mark.parametrize("check_mode", [False, True])
def test_run_strategy_replaces_running_set_by_another_tool(check_mode, full_ownership):
    api = FakeApi()
    run(api, name="a", running=True, **COMMON)           # like a VM kubevirt.core created
    failed, res = run(api, check_mode=check_mode, name="a", run_strategy="Manual", full_ownership=full_ownership, **COMMON)
    assert not failed and res["changed"]
    if full_ownership:
        assert [c[0] for c in api.writes()] == (["patch"] if check_mode else ["patch", "apply"])
    else:
        assert [c[:3] for c in api.writes()] == [("patch", "a", "merge")]
    spec = api.vm("ns", "a")["spec"]
    if check_mode:
        assert spec["running"] is True
    else:
        assert spec["runStrategy"] == "Manual" and "running" not in spec


def test_vms_in_two_namespaces_cost_one_read_each():
    api = FakeApi()
    fleet = [{"name": "a", "namespace": "ns1"}, {"name": "b", "namespace": "ns2"}, {"name": "c", "namespace": "ns1"}]
    failed, res = run(api, vms=fleet, **COMMON)
    assert not failed
    reads = [c for c in api.calls if c[0] in ("list", "get")]
    assert reads == [("list", "virtualmachines", "ns1"), ("get", "virtualmachines", "ns2", "b")]   # one VM: a GET
    assert [(r["namespace"], r["name"]) for r in res["results"]] == [("ns1", "a"), ("ns2", "b"), ("ns1", "c")]
