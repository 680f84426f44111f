# -*- coding: utf-8 -*-
"""_snapshot: names, options refused before any request, retention, the per-snapshot report, and the task's
write decisions against a fake API (what is created, left, deleted; check mode as dry runs)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _kinds
from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _snapshot as sn
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._args import InvalidOption


def snap(name, vm, created="2026-12-05T01:00:00Z", managed=True, ns="prod", ready=None, **status):
    labels = {sn.MANAGED_BY_LABEL: sn.MANAGER, sn.VM_LABEL: vm} if managed else {}
    obj = {"apiVersion": "snapshot.kubevirt.io/v1beta1", "kind": "VirtualMachineSnapshot",
           "metadata": {"name": name, "namespace": ns, "creationTimestamp": created, "labels": labels},
           "spec": {"source": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": vm}}}
    if ready is not None:
        status["readyToUse"] = ready
    if status:
        obj["status"] = status
    return obj


def params(**kw):
    out = dict(names=["vm1"], namespace="prod", label_selectors=[], snapshot="nightly", state="present", labels=None,
               failure_deadline=None, deletion_policy=None, keep=None, wait=False, wait_timeout=120, wait_sleep=5)
    out.update(kw)
    return out


# --- names and options -----------------------------------------------------------------------------------------
def test_name_is_vm_dash_snapshot_and_its_limits():
    assert sn.snapshot_name("db-1", "before-upgrade") == "db-1-before-upgrade"
    assert sn.name_problem("db-1", "s") is None
    assert "253" in sn.name_problem("a" * 60, "s" * 200)
    assert "63 characters of a label value" in sn.name_problem("a" * 64, "s")


@pytest.mark.parametrize("kw, needle", [
    (dict(snapshot="Nightly"), 'snapshot "Nightly" is not a valid name part'),
    (dict(snapshot="-x"), 'snapshot "-x" is not a valid name part'),
    (dict(snapshot=""), 'snapshot "" is not a valid name part'),
    (dict(names=["a" * 64]), "63 characters of a label value"),
    (dict(snapshot="s" * 250), "more than the 253"),
    (dict(failure_deadline="5"), 'failure_deadline "5" is not a duration'),
    (dict(failure_deadline="-5m"), 'failure_deadline "-5m" is not a duration'),
    (dict(keep=0), "keep must be 1 or more"),
    (dict(labels={sn.VM_LABEL: "x"}), "labels must not set virtfleet.kubevirt/vm"),
    (dict(labels={"bad key!": "x"}), 'labels key "bad key!" is not a valid label key'),
    (dict(names=None), "nothing selects the VMs"),
    (dict(namespace=None), "names needs a namespace"),
    (dict(wait_timeout=-1), "wait_timeout must be 0 or more"),
])
def test_bad_options_are_refused(kw, needle):
    with pytest.raises(InvalidOption) as exc:
        sn.check_params(params(**kw))
    assert needle in str(exc.value)


@pytest.mark.parametrize("kw", [
    dict(), dict(failure_deadline="1h30m"), dict(failure_deadline="0s"), dict(failure_deadline="1.5m"),
    dict(keep=1), dict(labels={"purpose": "test", "flag": True}), dict(names=None, namespace=None, label_selectors=["a=b"]),
    # state=absent names no label: only the name's length counts.
    dict(state="absent", names=["a" * 64]),
])
def test_good_options_pass(kw):
    sn.check_params(params(**kw))


def test_desired_snapshot_labels_and_spec():
    obj = sn.desired_snapshot("vm1", "prod", "nightly", {"purpose": "x", "flag": True}, "10m", "Retain")
    assert obj["metadata"] == {"name": "vm1-nightly", "namespace": "prod", "labels": {
        "purpose": "x", "flag": "true", sn.MANAGED_BY_LABEL: sn.MANAGER, sn.VM_LABEL: "vm1"}}
    assert obj["spec"] == {"source": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": "vm1"},
                           "failureDeadline": "10m", "deletionPolicy": "Retain"}
    assert "failureDeadline" not in sn.desired_snapshot("vm1", "prod", "n")["spec"]


# --- ordering and retention ------------------------------------------------------------------------------------
def test_snapshots_by_vm_newest_first_and_newest_ready():
    items = [snap("a-1", "a", "2026-12-01T00:00:00Z", ready=True), snap("a-3", "a", "2026-12-03T00:00:00Z", ready=False),
             snap("a-2", "a", "2026-12-02T00:00:00Z", ready=True), snap("b-1", "b", ns="other"),
             {"metadata": {"name": "x", "namespace": "prod"},
              "spec": {"source": {"kind": "VirtualMachineInstance", "name": "a"}}}]
    grouped = sn.snapshots_by_vm(items)
    assert sorted(grouped) == [("other", "b"), ("prod", "a")]
    assert [s["metadata"]["name"] for s in grouped[("prod", "a")]] == ["a-3", "a-2", "a-1"]
    assert sn.newest_ready(grouped[("prod", "a")])["metadata"]["name"] == "a-2"
    assert sn.newest_ready([]) is None


def test_same_second_ties_are_broken_by_name():
    items = [snap("vm-a", "vm"), snap("vm-b", "vm")]
    assert [s["metadata"]["name"] for s in sn.newest_first(items)] == ["vm-b", "vm-a"]


@pytest.mark.parametrize("keep, deleted", [(1, ["vm1-d3", "vm1-d2", "vm1-d1"]), (2, ["vm1-d2", "vm1-d1"]),
                                           (3, ["vm1-d1"]), (4, []), (10, [])])
def test_retention_counts_the_target_as_newest(keep, deleted):
    managed = [snap("vm1-d1", "vm1", "2026-12-01T00:00:00Z"), snap("vm1-d3", "vm1", "2026-12-03T00:00:00Z"),
               snap("vm1-d2", "vm1", "2026-12-02T00:00:00Z")]
    assert [s["metadata"]["name"] for s in sn.retention("vm1-new", managed, keep)] == deleted


def test_retention_keeps_an_older_target_and_skips_terminating_ones():
    old_target = snap("vm1-d1", "vm1", "2026-12-01T00:00:00Z")
    going = snap("vm1-d0", "vm1", "2026-11-30T00:00:00Z")
    going["metadata"]["deletionTimestamp"] = "2026-12-05T00:00:00Z"
    managed = [old_target, snap("vm1-d2", "vm1", "2026-12-02T00:00:00Z"), going]
    # The snapshot the task names stays even though it is not the newest; the terminating one is not counted.
    assert [s["metadata"]["name"] for s in sn.retention("vm1-d1", managed, 1)] == ["vm1-d2"]


def test_managed_by_us_needs_both_labels_and_the_source():
    assert sn.managed_by_us(snap("vm1-x", "vm1"), "vm1")
    assert not sn.managed_by_us(snap("vm1-x", "vm1", managed=False), "vm1")
    other = snap("vm1-x", "vm1")
    other["metadata"]["labels"][sn.VM_LABEL] = "vm2"
    assert not sn.managed_by_us(other, "vm1")


# --- the report ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, size", [("1Gi", 1024 ** 3), ("500M", 5 * 10 ** 8), ("1e3", 1000), ("1.5Ki", 1536),
                                        ("10", 10), ("", None), ("lots", None), (None, None)])
def test_quantity_bytes(text, size):
    assert sn.quantity_bytes(text) == size


def _content(*sizes):
    backups = []
    for i, size in enumerate(sizes):
        pvc = {"metadata": {"name": "c%d" % i}, "spec": {}}
        if size is not None:
            pvc["spec"] = {"resources": {"requests": {"storage": size}}}
        backups.append({"volumeName": "v%d" % i, "persistentVolumeClaim": pvc})
    return {"spec": {"volumeBackups": backups}}


def test_content_size():
    assert sn.content_size(_content("1Gi", "512Mi")) == 1024 ** 3 + 512 * 1024 ** 2
    assert sn.content_size(_content()) == 0
    assert sn.content_size(_content("1Gi", None)) is None
    assert sn.content_size(None) is None


def test_fields_of_a_ready_online_snapshot():
    obj = snap("vm1-n", "vm1", ready=True, phase="Succeeded", indications=["GuestAgent", "Online"],
               creationTime="2026-12-05T01:00:02Z", virtualMachineSnapshotContentName="vmsnapshot-content-1",
               snapshotVolumes={"includedVolumes": ["data"], "excludedVolumes": ["root", "cloudinit"]})
    fields = sn.snapshot_fields(obj, _content("2Gi"))
    assert fields == {"phase": "Succeeded", "ready_to_use": True, "indications": ["GuestAgent", "Online"],
                      "online": True, "guest_agent_freeze": True, "size": 2 * 1024 ** 3, "included_volumes": ["data"],
                      "excluded_volumes": ["root", "cloudinit"], "error": None, "creation_time": "2026-12-05T01:00:02Z"}
    assert sn.failure(obj) is None


def test_fields_from_source_indications_and_failure():
    obj = snap("vm1-n", "vm1", ready=False, phase="Failed", error={"message": "boom"},
               sourceIndications=[{"indication": "Online"}, {"indication": "NoGuestAgent"}],
               conditions=[{"type": "Failure", "status": "True", "reason": "snapshot deadline exceeded"}])
    fields = sn.snapshot_fields(obj)
    assert fields["online"] is True and fields["guest_agent_freeze"] is False and fields["error"] == "boom"
    assert fields["size"] is None
    assert sn.failure(obj) == "snapshot deadline exceeded"
    assert sn.failure(snap("x", "vm1", phase="Failed", error={"message": "no class"})) == "no class"
    assert sn.failure(snap("x", "vm1", phase="Failed")) == "phase Failed"
    assert sn.failure(snap("x", "vm1", phase="InProgress")) is None


def test_fields_of_nothing():
    fields = sn.snapshot_fields(None)
    assert fields["phase"] is None and fields["ready_to_use"] is False and fields["indications"] == []


# --- the task against a fake API -------------------------------------------------------------------------------
class FakeApi(object):
    def __init__(self, vms, snaps):
        self.vms = vms
        self.snaps = snaps
        self.calls = []
        self.client = None

    def list(self, kind, namespace=None, label_selectors=None, field_selectors=None):
        self.calls.append(("list", kind.plural))
        if kind == _kinds.VM:
            return [v for v in self.vms if not field_selectors or "metadata.name=%s" % v["metadata"]["name"]
                    in field_selectors], "1"
        if kind == _kinds.VMSNAPSHOT:
            return list(self.snaps), "2"
        return [], "3"

    def create(self, kind, obj, namespace=None, dry_run=False, field_manager=None):
        self.calls.append(("create", obj["metadata"]["name"], dry_run))
        return dict(obj, metadata=dict(obj["metadata"], creationTimestamp="2026-12-05T02:00:00Z"))

    def delete(self, kind, name, namespace=None, propagation=None, dry_run=False, grace_period=None, preconditions=None):
        self.calls.append(("delete", name, dry_run))
        return {"kind": "VirtualMachineSnapshot", "metadata": {"name": name, "namespace": namespace}}


def _vm(name):
    return {"metadata": {"name": name, "namespace": "prod"}}


def writes(api):
    return [c for c in api.calls if c[0] != "list"]


def test_task_creates_leaves_existing_and_prunes_only_its_own():
    api = FakeApi([_vm("vm1"), _vm("vm2")], [
        snap("vm1-old", "vm1", "2026-12-01T00:00:00Z"), snap("vm1-older", "vm1", "2026-11-01T00:00:00Z"),
        snap("vm1-by-hand", "vm1", "2026-11-15T00:00:00Z", managed=False),
        snap("vm2-nightly", "vm2", ready=True, phase="Succeeded"),
    ])
    failed, out = sn.run_task(api, params(names=["vm1", "vm2", "ghost"], keep=2), diff_mode=True)
    assert failed is True and "1 of 3 VMs failed: prod/ghost: VM prod/ghost does not exist." in out["msg"]
    res = dict((r["name"], r) for r in out["results"])
    assert res["vm1"]["outcome"] == "created" and res["vm1"]["deleted"] == ["vm1-older"]
    assert res["vm2"]["outcome"] == "unchanged" and res["vm2"]["changed"] is False and res["vm2"]["ready_to_use"]
    assert res["ghost"]["outcome"] == "failed" and res["ghost"]["failed"]
    assert sorted(writes(api)) == [("create", "vm1-nightly", False), ("delete", "vm1-older", False)]
    assert set(out["diff"]["after"]) == {"prod/vm1-nightly", "prod/vm1-older"}
    assert out["diff"]["after"]["prod/vm1-older"] == {} and out["diff"]["before"]["prod/vm1-nightly"] == {}


def test_check_mode_sends_dry_runs_and_never_waits():
    api = FakeApi([_vm("vm1")], [snap("vm1-old", "vm1", "2026-12-01T00:00:00Z")])
    failed, out = sn.run_task(api, params(keep=1, wait=True), check_mode=True)
    assert failed is False and out["changed"] is True
    assert writes(api) == [("create", "vm1-nightly", True), ("delete", "vm1-old", True)]
    assert ("list", "virtualmachinesnapshots") in api.calls and len(api.calls) == 4   # no watch


def test_existing_name_of_another_vm_or_failed_is_reported_not_written():
    foreign = snap("vm1-nightly", "vm9")
    api = FakeApi([_vm("vm1")], [foreign])
    failed, out = sn.run_task(api, params())
    assert failed and "is a snapshot of VirtualMachine vm9, not of VM vm1" in out["results"][0]["msg"]
    assert writes(api) == []
    failed_cond = {"type": "Failure", "status": "True", "reason": "snapshot deadline exceeded"}
    broken = snap("vm1-nightly", "vm1", phase="Failed", conditions=[failed_cond])
    api = FakeApi([_vm("vm1")], [broken])
    failed, out = sn.run_task(api, params(keep=1))
    assert failed and "exists and failed (snapshot deadline exceeded)" in out["results"][0]["msg"]
    assert writes(api) == []


def test_absent_deletes_snapshots_of_missing_vms_too():
    api = FakeApi([_vm("vm1")], [snap("vm1-nightly", "vm1"), snap("ghost-nightly", "ghost")])
    failed, out = sn.run_task(api, params(names=["vm1", "ghost", "none"], state="absent"))
    assert failed is False
    assert [(r["name"], r["outcome"]) for r in out["results"]] == [("vm1", "deleted"), ("ghost", "deleted"),
                                                                   ("none", "absent")]
    assert writes(api) == [("delete", "vm1-nightly", False), ("delete", "ghost-nightly", False)] or \
        sorted(writes(api)) == sorted([("delete", "vm1-nightly", False), ("delete", "ghost-nightly", False)])


def test_info_groups_by_vm_newest_first_and_filters_by_suffix():
    api = FakeApi([], [snap("vm1-a", "vm1", "2026-12-01T00:00:00Z"), snap("vm1-b", "vm1", "2026-12-02T00:00:00Z"),
                       snap("vm2-a", "vm2", "2026-12-03T00:00:00Z"),
                       snap("manual", "vm1", "2026-12-04T00:00:00Z", managed=False)])
    out = sn.run_info(api, dict(names=["vm2", "vm1"], namespace="prod", label_selectors=[], snapshot=None,
                                snapshot_label_selectors=[]))
    assert [(s["name"], s["snapshot"], s["managed"]) for s in out["snapshots"]] == [
        ("vm2", "vm2-a", True), ("vm1", "manual", False), ("vm1", "vm1-b", True), ("vm1", "vm1-a", True)]
    assert api.calls == [("list", "virtualmachinesnapshots")]
    out = sn.run_info(api, dict(names=None, namespace="prod", label_selectors=[], snapshot="a",
                                snapshot_label_selectors=[]))
    assert [s["snapshot"] for s in out["snapshots"]] == ["vm1-a", "vm2-a"]


def test_wait_past_the_deadline_names_the_snapshot_and_keeps_the_older_ones():
    api = FakeApi([_vm("vm1")], [snap("vm1-old", "vm1", "2026-12-01T00:00:00Z")])
    failed, out = sn.run_task(api, params(keep=1, wait=True, wait_timeout=0))
    res = out["results"][0]
    assert failed and res["failed"] and res["outcome"] == "created"
    assert res["msg"] == "not ready to use within wait_timeout: phase not set yet"
    assert "Timed out after 0s waiting for 1 snapshots to be ready to use: prod/vm1-nightly: phase not set yet" in out["msg"]
    # Retention waits for the new snapshot to be ready: nothing was deleted.
    assert res["deleted"] == [] and writes(api) == [("create", "vm1-nightly", False)]


# --- the modules' argument specs against their documentation ---------------------------------------------------
@pytest.mark.parametrize("module_name", ["kubevirt_vm_snapshot", "kubevirt_vm_snapshot_info"])
def test_module_spec_equals_its_documentation(module_name):
    import importlib

    import yaml

    from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _args
    from tests.unit.plugins.test_option_parity import spec_doc_problems

    module = importlib.import_module("ansible_collections.virtfleet.kubevirt.plugins.modules." + module_name)
    doc = yaml.safe_load(module.DOCUMENTATION)["options"]
    spec = module.argument_spec()
    # The connection and wait options come from doc fragments (checked against them in test_args.py).
    fragment_only = (set(_args.AUTH_ARG_SPEC) | set(_args.WAIT_ARG_SPEC)) - set(doc)
    assert spec_doc_problems(dict((k, v) for k, v in spec.items() if k not in fragment_only), doc) == []
    for key in ("RETURN", "EXAMPLES"):
        assert yaml.safe_load(getattr(module, key))
