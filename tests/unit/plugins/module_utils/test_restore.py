# -*- coding: utf-8 -*-
"""_restore: the planner of kubevirt_vm_restore (snapshot choice, the "already restored" rule, running VMs, names)
against a fake API that records every request."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

import pytest

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _kinds
from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _restore as rs
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._args import InvalidOption

NS = "lab"


def vm(name, uid=None, memory="64Mi", volumes=None, strategy="Halted", annotations=None):
    tspec = {"domain": {"devices": {}, "resources": {"requests": {"memory": memory}}}}
    if volumes is not None:
        tspec["volumes"] = volumes
    return {"metadata": {"name": name, "namespace": NS, "uid": uid or "uid-" + name, "annotations": annotations or {}},
            "spec": {"runStrategy": strategy, "template": {"spec": tspec}}}


def snap(name, vm_name, created="2026-01-01T00:00:00Z", ready=True, source_uid=None):
    return {"metadata": {"name": name, "namespace": NS, "creationTimestamp": created},
            "spec": {"source": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": vm_name}},
            "status": {"readyToUse": ready, "phase": "Succeeded" if ready else "InProgress",
                       "sourceUID": source_uid or "uid-" + vm_name, "virtualMachineSnapshotContentName": "content-" + name}}


def content(snap_name, snap_vm):
    return {"metadata": {"name": "content-" + snap_name, "namespace": NS},
            "spec": {"virtualMachineSnapshotName": snap_name, "source": {"virtualMachine": snap_vm}}}


def restore(name, vm_name, snap_name, uid="r-uid", complete=True, failed=False, restores=None):
    conds = [{"type": "Failure", "status": "True", "reason": "boom"}] if failed else []
    return {"metadata": {"name": name, "namespace": NS, "uid": uid},
            "spec": {"target": {"name": vm_name}, "virtualMachineSnapshotName": snap_name},
            "status": {"complete": complete, "conditions": conds, "restores": restores or []}}


class FakeApi(object):
    def __init__(self, vms=(), vmis=(), snaps=(), restores=(), contents=()):
        self.objects = {_kinds.VM: list(vms), _kinds.VMI: list(vmis), _kinds.VMSNAPSHOT: list(snaps),
                        _kinds.VMRESTORE: list(restores), _kinds.VMSNAPSHOTCONTENT: list(contents)}
        self.calls = []

    def list(self, kind, namespace=None, label_selectors=None, field_selectors=None):
        self.calls.append(("list", kind.plural))
        items = self.objects[kind]
        if field_selectors:
            name = field_selectors[0].split("=", 1)[1]
            items = [o for o in items if o["metadata"]["name"] == name]
        return copy.deepcopy(items), "1"

    def create(self, kind, obj, namespace=None, dry_run=False, field_manager=None):
        self.calls.append(("create", kind.plural, obj["metadata"]["name"], dry_run))
        out = copy.deepcopy(obj)
        out["metadata"]["uid"] = "new-uid"
        return out

    def subresource(self, kind, name, sub, namespace=None, method="PUT", body=None, idempotent=False):
        self.calls.append((sub, name))

    def writes(self):
        return [c for c in self.calls if c[0] != "list"]


def params(**kw):
    out = {"names": None, "namespace": NS, "label_selectors": [], "snapshot": None, "snapshot_name": None,
           "when_running": "fail", "restart": True, "force": False, "wait": False, "wait_timeout": 120}
    out.update(kw)
    return out


def plan(api, **kw):
    task = rs.RestoreTask(api, params(**kw))
    task.read()
    for t in task.targets:
        task.plan(t)
    return task, dict((t.name, t) for t in task.targets)


# --- options -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw, words", [
    ({"names": ["a"], "snapshot": "x", "snapshot_name": "a-x"}, "mutually exclusive"),
    ({"names": ["a", "b"], "snapshot_name": "a-x"}, "exactly one name in names"),
    ({"names": ["a"], "label_selectors": ["app=x"], "snapshot_name": "a-x"}, "exactly one name in names"),
    ({"names": ["a"], "snapshot": ""}, "snapshot is empty"),
    ({"names": ["a"], "snapshot": "Bad_Suffix"}, "snapshot"),
    ({"names": ["a"], "namespace": None}, "names needs a namespace"),
    ({"names": ["a"], "wait_timeout": 0}, "wait_timeout"),
])
def test_bad_options_are_refused_before_any_request(kw, words):
    with pytest.raises(InvalidOption) as err:
        rs.check_params(params(**kw))
    assert words in str(err.value)


# --- which snapshot ------------------------------------------------------------------------------------------
def test_snapshot_suffix_newest_ready_and_clear_errors():
    api = FakeApi(vms=[vm("a"), vm("b"), vm("c")], snaps=[
        snap("a-old", "a", "2026-01-01T00:00:00Z"), snap("a-new", "a", "2026-01-02T00:00:00Z"),
        snap("a-newest", "a", "2026-01-03T00:00:00Z", ready=False), snap("b-old", "b")])
    _task, t = plan(api, label_selectors=["x=y"], snapshot="old")
    assert t["a"].snapshot["metadata"]["name"] == "a-old" and t["b"].snapshot["metadata"]["name"] == "b-old"
    assert t["c"].outcome == "failed" and "has no VirtualMachineSnapshot c-old (its snapshots: none)" in t["c"].error

    _task, t = plan(api, label_selectors=["x=y"])       # the newest that is ready to use, per VM
    assert t["a"].snapshot["metadata"]["name"] == "a-new"
    assert "c has no snapshot ready to use (it has none)" in t["c"].error

    _task, t = plan(api, names=["a"], snapshot="newest")
    assert "is not ready to use (phase InProgress)" in t["a"].error
    _task, t = plan(api, names=["a"], snapshot_name="b-old")
    assert "is a snapshot of b, not of VM a" in t["a"].error
    _task, t = plan(api, names=["a"], snapshot="missing")
    assert "(its snapshots: a-newest, a-new, a-old)" in t["a"].error


def test_a_snapshot_of_an_earlier_vm_of_the_same_name_is_refused():
    api = FakeApi(vms=[vm("a", uid="second")], snaps=[snap("a-s", "a", source_uid="first")])
    _task, t = plan(api, names=["a"], snapshot="s")
    assert "taken of an earlier VM named a (uid first)" in t["a"].error


# --- the "already restored" rule -----------------------------------------------------------------------------
PVC_VOLS = [{"name": "root", "persistentVolumeClaim": {"claimName": "a-root"}},
            {"name": "ci", "cloudInitNoCloud": {"userData": "#cloud-config\n"}}]
RESTORED = [{"volumeName": "root", "persistentVolumeClaim": "restore-r-uid-root"}]


def restored_vm(memory="64Mi", stamp="a-s-restore-1-r-uid", strategy="Halted"):
    live = vm("a", memory=memory, strategy=strategy, annotations={rs.LAST_RESTORE: stamp},
              volumes=[{"name": "root", "persistentVolumeClaim": {"claimName": "restore-r-uid-root"}}, PVC_VOLS[1]])
    live["spec"]["template"]["spec"]["domain"]["firmware"] = {"uuid": "legacy-uuid"}
    return live


def rule_api(live, rest=None, **kw):
    snap_vm = vm("a", volumes=PVC_VOLS, strategy="Always")
    return FakeApi(vms=[live], snaps=[snap("a-s", "a")], contents=[content("a-s", snap_vm)],
                   restores=[rest or restore("a-s-restore-1", "a", "a-s", restores=RESTORED)], **kw)


def test_restored_spec_is_what_restore_go_writes():
    snap_vm = vm("a", volumes=PVC_VOLS, strategy="Always")
    spec = rs.restored_spec(snap_vm, restored_vm(), RESTORED)
    assert spec["runStrategy"] == "Halted"           # the target's run strategy is kept
    assert spec["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "restore-r-uid-root"
    assert spec["template"]["spec"]["domain"]["firmware"] == {"uuid": "legacy-uuid"}
    running = vm("a", volumes=PVC_VOLS)
    running["spec"] = dict(running["spec"], running=True)
    del running["spec"]["runStrategy"]
    assert rs.restored_spec(snap_vm, running, RESTORED)["running"] is False
    assert "volumes" not in rs.restored_spec(vm("a"), vm("a"), [])["template"]["spec"]   # omitempty


@pytest.mark.parametrize("live, rest, force, unchanged", [
    (restored_vm(), None, False, True),
    (restored_vm(strategy="Always"), None, False, True),                      # started since: still the snapshot
    (restored_vm(memory="1Gi"), None, False, False),                          # changed after the restore
    (restored_vm(), None, True, False),                                       # force
    (restored_vm(stamp="a-s-restore-1-other"), None, False, False),           # another restore's stamp
    (restored_vm(), restore("a-s-restore-1", "a", "a-s", complete=False, restores=RESTORED), False, False),
    (restored_vm(), restore("a-s-restore-1", "a", "a-other", restores=RESTORED), False, False),   # another snapshot
    (vm("a", volumes=PVC_VOLS), None, False, False),                          # never restored
])
def test_unchanged_only_when_the_vm_still_holds_its_last_restore_of_this_snapshot(live, rest, force, unchanged):
    api = rule_api(live, rest)
    _task, t = plan(api, names=["a"], snapshot="s", force=force)
    assert (t["a"].outcome == "unchanged") is unchanged, t["a"].outcome
    if not unchanged and rest is None and not force and t["a"].outcome != "failed":
        assert t["a"].restore_name == "a-s-restore-2"      # the name of the earlier restore is taken


def test_an_unchanged_rerun_costs_five_lists_and_no_write():
    api = rule_api(restored_vm())
    task = rs.RestoreTask(api, params(names=["a"], snapshot="s", wait=True))
    task.run()
    failed, result = task.report(0.1, 0)
    assert not failed and result["changed"] is False and result["results"][0]["outcome"] == "unchanged"
    assert api.writes() == []
    assert sorted(c[1] for c in api.calls) == sorted(["virtualmachines", "virtualmachineinstances",
                                                      "virtualmachinesnapshots", "virtualmachinerestores",
                                                      "virtualmachinesnapshotcontents"])


# --- running VMs ----------------------------------------------------------------------------------------------
def running_api():
    vmi = {"metadata": {"name": "web", "namespace": NS}, "status": {"phase": "Running"}}
    return FakeApi(vms=[vm("web", strategy="Always"), vm("db")], vmis=[vmi],
                   snaps=[snap("web-s", "web"), snap("db-s", "db")])


def test_when_running_fail_reports_every_running_vm_and_writes_nothing():
    api = running_api()
    task = rs.RestoreTask(api, params(label_selectors=["app=x"], snapshot="s"))
    task.run()
    failed, result = task.report(0.1, 0)
    out = dict((r["name"], r) for r in result["results"])
    assert failed and api.writes() == []
    assert out["web"]["outcome"] == "failed" and "is running (VMI phase Running)" in out["web"]["msg"]
    assert out["db"]["outcome"] == "skipped" and out["db"]["failed"] is False
    assert "Nothing was written" in result["msg"]


@pytest.mark.parametrize("when, policy, stop, restart", [
    ("stop", "StopTarget", True, True),
    ("wait", "WaitEventually", False, False),
])
def test_when_running_stop_or_wait_sets_the_readiness_policy(when, policy, stop, restart):
    api = running_api()
    task, t = plan(api, label_selectors=["app=x"], snapshot="s", when_running=when)
    assert t["web"].stop is stop and t["web"].restart is restart
    assert t["db"].stop is False and t["db"].restart is False          # stopped VMs stay stopped
    assert task.desired(t["web"])["spec"]["targetReadinessPolicy"] == policy
    assert task.desired(t["web"])["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "virtfleet.kubevirt"}


def test_check_mode_dry_runs_the_creates_and_predicts_stop_and_restart():
    api = running_api()
    task = rs.RestoreTask(api, params(label_selectors=["app=x"], snapshot="s", when_running="stop"), check_mode=True)
    task.run()
    failed, result = task.report(0.1, 0)
    assert not failed and result["changed"]
    assert [c for c in api.writes()] == [("create", "virtualmachinerestores", "web-s-restore-1", True),
                                         ("create", "virtualmachinerestores", "db-s-restore-1", True)]
    out = dict((r["name"], r) for r in result["results"])
    assert out["web"]["stopped"] and out["web"]["restarted"] and not out["db"]["restarted"]


def test_restart_false_leaves_a_stopped_vm_stopped():
    api = running_api()
    _task, t = plan(api, names=["web"], snapshot="s", when_running="stop", restart=False)
    assert t["web"].stop is True and t["web"].restart is False


# --- restores in progress and names ---------------------------------------------------------------------------
def test_a_restore_in_progress_is_taken_over_or_blocks_another_snapshot():
    busy = restore("web-s-restore-1", "web", "web-s", complete=False)
    api = FakeApi(vms=[vm("web")], snaps=[snap("web-s", "web"), snap("web-t", "web")], restores=[busy])
    _task, t = plan(api, names=["web"], snapshot="s")
    assert t["web"].adopted and t["web"].outcome == "pending" and t["web"].restore_name == "web-s-restore-1"
    _task, t = plan(api, names=["web"], snapshot="t")
    assert "restore web-s-restore-1 of snapshot web-s is still in progress" in t["web"].error
    failed_one = restore("web-s-restore-1", "web", "web-s", complete=False, failed=True)
    api = FakeApi(vms=[vm("web")], snaps=[snap("web-s", "web")], restores=[failed_one])
    _task, t = plan(api, names=["web"], snapshot="s")      # KubeVirt's webhook refuses a new one while it exists
    assert t["web"].outcome == "failed" and "web-s-restore-1 of VM web failed (boom)" in t["web"].error
    assert "delete it (kubectl delete vmrestore -n lab web-s-restore-1)" in t["web"].error
    done = restore("web-s-restore-1", "web", "web-s")
    api = FakeApi(vms=[vm("web")], snaps=[snap("web-s", "web")], restores=[done])
    _task, t = plan(api, names=["web"], snapshot="s")
    assert t["web"].outcome == "planned" and t["web"].restore_name == "web-s-restore-2"


def test_restore_names_are_the_lowest_free_and_fit_the_limit():
    assert rs.restore_name("a-s", set()) == "a-s-restore-1"
    assert rs.restore_name("a-s", {"a-s-restore-1", "a-s-restore-2"}) == "a-s-restore-3"
    long_name = rs.restore_name("x" * 253, set())
    assert len(long_name) <= 253 and long_name.endswith("-restore-1")
    assert rs.restore_name("x" * 253, set()) == long_name


def test_predicted_restores_follow_restore_go_names():
    snap_vm = vm("a", volumes=[{"name": "root", "dataVolume": {"name": "a-root"}}])
    snap_vm["spec"]["dataVolumeTemplates"] = [{"metadata": {"name": "a-root"}}]
    cont = {"spec": {"volumeBackups": [{"volumeName": "root"}]}}
    recs = rs.predicted_restores(snap_vm, cont, "u1")
    assert recs == [{"volumeName": "root", "persistentVolumeClaim": "restore-u1-root", "dataVolumeName": "restore-u1-root"}]
    spec = rs.restored_spec(snap_vm, vm("a"), recs)
    assert spec["dataVolumeTemplates"][0]["metadata"]["name"] == "restore-u1-root"
    assert spec["template"]["spec"]["volumes"][0]["dataVolume"]["name"] == "restore-u1-root"


# --- the module's argument spec against its documentation ------------------------------------------------------
def test_module_spec_equals_its_documentation():
    import yaml

    from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _args
    from ansible_collections.virtfleet.kubevirt.plugins.modules import kubevirt_vm_restore as module
    from tests.unit.plugins.test_option_parity import spec_doc_problems

    doc = yaml.safe_load(module.DOCUMENTATION)["options"]
    spec = module.argument_spec()
    # The connection options and wait_sleep/wait_timeout come from doc fragments (checked in test_args.py).
    fragment_only = (set(_args.AUTH_ARG_SPEC) | set(_args.WAIT_ARG_SPEC)) - set(doc)
    assert spec_doc_problems(dict((k, v) for k, v in spec.items() if k not in fragment_only), doc) == []
    for key in ("RETURN", "EXAMPLES"):
        assert yaml.safe_load(getattr(module, key))
