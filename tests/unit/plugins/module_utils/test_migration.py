# -*- coding: utf-8 -*-
"""_migration: options refused before any request, the non-migratable VMIs found before any write, one VMIM per VMI
(in-flight ones reused), cancel, stop, check mode as dry runs, the wait's outcomes from the final migrations."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

import pytest

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _kinds
from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _migration as mg
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._args import InvalidOption
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._errors import ApiError

BRIDGE = "cannot migrate VMI which does not use masquerade or a migratable plugin to connect to the pod network"


def vmi(name, ns="ns", node="node01", migratable=True, phase="Running", owner=True):
    conds = [{"type": "Ready", "status": "True"}]
    if migratable is not None:
        conds.append({"type": "LiveMigratable", "status": "True"} if migratable else
                     {"type": "LiveMigratable", "status": "False", "reason": "InterfaceNotLiveMigratable",
                      "message": BRIDGE})
    meta = {"name": name, "namespace": ns, "uid": "uid-" + name}
    if owner:
        meta["ownerReferences"] = [{"kind": "VirtualMachine", "name": name}]
    return {"metadata": meta, "status": {"phase": phase, "nodeName": node, "conditions": conds}}


def vmim(name, vmi_name, ns="ns", phase="Running", state=None, **status):
    st = dict(status, phase=phase)
    if state is not None:
        st["migrationState"] = state
    return {"metadata": {"name": name, "namespace": ns, "uid": "uid-" + name,
                         "labels": {"kubevirt.io/vmi-name": vmi_name}},
            "spec": {"vmiName": vmi_name}, "status": st}


class FakeApi(object):
    """The Api calls the task makes; ``events`` are what a watch of VMIMs (or VMIs) yields, in order."""

    def __init__(self, vmis, vmims=(), events=(), vmi_events=()):
        self.vmis = list(vmis)
        self.vmims = list(vmims)
        self.events = list(events)
        self.vmi_events = list(vmi_events)
        self.calls = []
        self.created = []
        self.refuse = {}

    def list(self, kind, namespace=None, label_selectors=None, field_selectors=None):
        self.calls.append(("list", kind.plural, namespace, label_selectors))
        items = self.vmis if kind == _kinds.VMI else self.vmims
        if label_selectors:
            node = [s.split("=", 1)[1] for s in label_selectors if s.startswith("kubevirt.io/nodeName=")]
            if node:
                items = [o for o in items if o["status"]["nodeName"] == node[0]]
        return copy.deepcopy(items), "10"

    def create(self, kind, obj, namespace=None, dry_run=False, field_manager=None):
        self.calls.append(("create", kind.plural, namespace, dry_run))
        vmi_name = obj["spec"]["vmiName"]
        if vmi_name in self.refuse:
            raise ApiError(self.refuse[vmi_name], 400)
        out = copy.deepcopy(obj)
        out["metadata"]["name"] = obj["metadata"]["generateName"] + "abcde"
        out["metadata"]["uid"] = "uid-" + out["metadata"]["name"]
        self.created.append(out)
        return out

    def delete(self, kind, name, namespace=None, propagation=None, dry_run=False, preconditions=None):
        self.calls.append(("delete", kind.plural, name, dry_run))
        return {"kind": "VirtualMachineInstanceMigration", "metadata": {"name": name, "namespace": namespace}}

    def subresource(self, kind, name, sub, namespace=None, method="PUT", body=None, idempotent=False):
        self.calls.append(("subresource", kind.plural, name, sub))

    def get(self, kind, name, namespace=None):
        self.calls.append(("get", kind.plural, name))
        return None

    def watch(self, kind, namespace=None, label_selectors=None, field_selectors=None, resource_version=None, timeout=60):
        self.calls.append(("watch", kind.plural, namespace, resource_version))
        source = self.vmi_events if kind == _kinds.VMI else self.events
        while source:
            yield source.pop(0)

    def writes(self):
        return [c for c in self.calls if c[0] in ("create", "delete", "subresource")]


class Clock(object):
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        self.now += 0.5     # every look at the clock moves it: a watch with no events runs into the deadline
        return self.now


def run(api, check_mode=False, diff_mode=False, **params):
    base = {"namespace": "ns", "names": None, "label_selectors": [], "node": None, "state": "present",
            "target_node_selector": None, "non_migratable": "fail", "wait": False, "wait_timeout": 10, "wait_sleep": 1}
    base.update(params)
    task = mg.MigrationTask(api, base, check_mode=check_mode, diff_mode=diff_mode, clock=Clock(), sleep=lambda s: None,
                            write_workers=1)
    mg_run = task.run()
    return task, mg_run


def results(task):
    return dict((i.name, i.result(False)) for i in task.items + task.missing)


@pytest.mark.parametrize("params, message", [
    ({}, "nothing selects the VMIs: give names, label_selectors or node"),
    ({"names": ["a"]}, "names needs a namespace"),
    ({"node": "n1", "state": "absent", "target_node_selector": {"rack": "r1"}}, "target_node_selector only applies"),
    ({"node": "n1", "target_node_selector": {"bad key!": "x"}}, "target_node_selector"),
    ({"node": "n1", "target_node_selector": {"ssd": True}}, "must be a string"),
    ({"node": "n1", "wait_timeout": 0}, "wait_timeout must be 1 or more"),
])
def test_bad_options_refused_before_any_request(params, message):
    base = {"names": None, "namespace": None, "label_selectors": [], "node": None, "state": "present"}
    base.update(params)
    with pytest.raises(InvalidOption) as err:
        mg.check_params(base)
    assert message in str(err.value)


@pytest.mark.parametrize("stamp, expected", [
    ("2026-12-05T00:43:43Z", (0, 43, 43, 0)),
    ("2026-12-05T00:43:43.25Z", (0, 43, 43, 250000)),
    ("2026-12-05T00:43:43.123456789+00:00", (0, 43, 43, 123456)),
    ("", None),
    ("yesterday", None),
])
def test_parse_time(stamp, expected):
    got = mg.parse_time(stamp)
    assert (None if got is None else (got.hour, got.minute, got.second, got.microsecond)) == expected


def test_state_duration_and_failure_reasons():
    assert mg.state_duration({"startTimestamp": "2026-12-05T00:00:01Z", "endTimestamp": "2026-12-05T00:00:13.5Z"}) == 12.5
    assert mg.state_duration({"startTimestamp": "2026-12-05T00:00:01Z"}) is None
    aborted = vmim("m", "a", phase="Failed", state={"abortStatus": "Succeeded", "failed": True})
    assert mg.failure_reason(aborted) == "the migration was cancelled (aborted: Succeeded)"
    timed_out = vmim("m", "a", phase="Failed", state={"failureReason": "unschedulable pod ns/p timeout period exceeded"})
    assert mg.failure_reason(timed_out) == "unschedulable pod ns/p timeout period exceeded"
    phases = [{"phase": "Pending"}, {"phase": "Scheduling"}, {"phase": "Failed"}]
    bare = vmim("m", "a", phase="Failed", phaseTransitionTimestamps=phases)
    assert mg.failure_reason(bare) == "the migration failed after phase Scheduling"
    assert mg.not_running(vmi("a", phase="Scheduled")) == "the VMI is not running (phase Scheduled)"
    assert mg.migratable_problem(vmi("a", migratable=False)) == "InterfaceNotLiveMigratable: " + BRIDGE
    assert mg.migratable_problem(vmi("a", migratable=None)) is None     # not computed yet: KubeVirt lets it through


def test_fail_writes_nothing_and_names_every_non_migratable_vmi():
    api = FakeApi([vmi("a"), vmi("b", migratable=False), vmi("c", migratable=False)])
    task, _ = run(api, node="node01", namespace=None)
    assert api.writes() == []
    assert api.calls == [("list", "virtualmachineinstances", None, ["kubevirt.io/nodeName=node01"]),
                         ("list", "virtualmachineinstancemigrations", None, None)]
    assert "2 of the 3 selected VMIs cannot be live-migrated" in task.refused
    assert "ns/b (InterfaceNotLiveMigratable: %s); ns/c" % BRIDGE in task.refused
    got = results(task)
    assert got["a"]["outcome"] == "unchanged" and got["b"]["outcome"] == "failed" and got["b"]["failed"]


def test_skip_creates_one_migration_per_migratable_vmi_with_the_selector_and_label():
    api = FakeApi([vmi("a"), vmi("b", migratable=False), vmi("c", phase="Pending")])
    task, _ = run(api, names=["a", "b", "c", "x"], non_migratable="skip", target_node_selector={"rack": "r2"})
    assert [c for c in api.writes()] == [("create", "virtualmachineinstancemigrations", "ns", False)]
    body = api.created[0]
    assert body["metadata"]["generateName"] == "a-migration-"
    assert body["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "virtfleet.kubevirt"
    assert body["spec"] == {"vmiName": "a", "addedNodeSelector": {"rack": "r2"}}
    got = results(task)
    assert (got["a"]["outcome"], got["a"]["changed"], got["a"]["migration"]) == ("pending", True, "a-migration-abcde")
    assert (got["b"]["outcome"], got["b"]["changed"], got["b"]["reason"]) == (
        "skipped", False, "InterfaceNotLiveMigratable: " + BRIDGE)
    assert got["c"]["outcome"] == "failed" and "not running (phase Pending)" in got["c"]["msg"]
    assert got["x"]["outcome"] == "failed" and "VMI ns/x does not exist" in got["x"]["msg"]


def test_in_flight_migration_is_reused_and_a_refused_create_fails_only_its_vmi():
    api = FakeApi([vmi("a"), vmi("b")], vmims=[vmim("old", "a", phase="Succeeded"), vmim("busy", "a", phase="Scheduling")])
    api.refuse["b"] = 'admission webhook "migration-create-validator.kubevirt.io" denied the request: in-flight'
    task, _ = run(api, names=["a", "b"])
    got = results(task)
    assert got["a"]["reused"] and got["a"]["migration"] == "busy" and not got["a"]["changed"]
    assert got["b"]["outcome"] == "failed" and got["b"]["msg"].startswith("Cannot migrate VMI ns/b: admission webhook")
    assert [c[2] for c in api.writes()] == ["ns"]      # only b's create was sent


def test_check_mode_sends_dry_runs_and_predicts_stops():
    api = FakeApi([vmi("a"), vmi("b", migratable=False)])
    task, _ = run(api, check_mode=True, diff_mode=True, node="node01", non_migratable="stop", wait=True)
    assert api.writes() == [("create", "virtualmachineinstancemigrations", "ns", True)]
    got = results(task)
    assert got["b"]["outcome"] == "stopped" and got["b"]["changed"]
    assert task.diff() == {"before": {"ns/a": {"node": "node01"}, "ns/b": {"node": "node01", "running": True}},
                           "after": {"ns/a": {"node": "(another node)"}, "ns/b": {"node": None, "running": False}}}
    assert not any(c[0] == "watch" for c in api.calls)


def test_stop_without_a_vm_fails_that_vmi():
    api = FakeApi([vmi("a", migratable=False, owner=False)])
    task, _ = run(api, names=["a"], non_migratable="stop")
    assert "has no VirtualMachine to stop it through" in results(task)["a"]["msg"] and api.writes() == []


def test_absent_cancels_in_flight_and_leaves_the_rest_unchanged():
    api = FakeApi([vmi("a"), vmi("b")], vmims=[vmim("busy", "a"), vmim("done", "b", phase="Succeeded")],
                  events=[("DELETED", vmim("busy", "a"))])
    task, _ = run(api, names=["a", "b", "gone"], state="absent", wait=True)
    got = results(task)
    assert (got["gone"]["outcome"], got["gone"]["failed"]) == ("unchanged", False)     # nothing to cancel there
    assert (got["a"]["outcome"], got["a"]["changed"], got["a"]["migration"]) == ("cancelled", True, "busy")
    assert (got["b"]["outcome"], got["b"]["changed"]) == ("unchanged", False)
    assert api.writes() == [("delete", "virtualmachineinstancemigrations", "busy", False)]
    assert not any(i.outcome == "failed" for i in task.items)


def test_wait_reads_outcomes_from_the_final_migrations():
    state = {"sourceNode": "node01", "targetNode": "node02", "startTimestamp": "2026-12-05T00:00:01Z",
             "endTimestamp": "2026-12-05T00:00:04Z", "completed": True, "migrationUid": "uid-a-migration-abcde"}
    failed_state = {"failureReason": "unschedulable pod ns/p timeout period exceeded", "failed": True}
    api = FakeApi([vmi("a"), vmi("b"), vmi("c")], events=[
        ("ADDED", vmim("a-migration-abcde", "a", phase="Scheduling")),
        ("MODIFIED", vmim("a-migration-abcde", "a", phase="Succeeded", state=state)),
        ("MODIFIED", vmim("b-migration-abcde", "b", phase="Failed", state=failed_state)),
    ])
    task, _ = run(api, names=["a", "b", "c"], wait=True)
    got = results(task)
    assert (got["a"]["outcome"], got["a"]["target_node"], got["a"]["duration"]) == ("migrated", "node02", 3.0)
    assert got["b"]["outcome"] == "failed" and got["b"]["reason"] == failed_state["failureReason"]
    assert got["c"]["outcome"] == "failed" and "is still not started after wait_timeout (10s)" in got["c"]["msg"]
    # one list of each kind, one create per VMI, watches only of migrations, from the list's resourceVersion
    assert [c for c in api.calls if c[0] == "watch"][0] == ("watch", "virtualmachineinstancemigrations", "ns", "10")
    assert not any(c[0] == "get" for c in api.calls)    # the final migrations carried the migrationState
    failed, result = mg.run_task(FakeApi([vmi("a", migratable=False)]), {
        "namespace": "ns", "names": ["a"], "label_selectors": [], "node": None, "state": "present",
        "non_migratable": "fail", "wait": False, "wait_timeout": 10})
    assert failed and result["non_migratable"] == [{"name": "a", "namespace": "ns",
                                                    "reason": "InterfaceNotLiveMigratable: " + BRIDGE}]
    assert result["changed"] is False and "non_migratable=fail" in result["msg"]


def test_module_documents_its_argument_spec():
    """kubevirt_vm_migration's DOCUMENTATION options match its argument spec (type, default, choices, elements,
    aliases, required); the connection and wait fragments are checked in test_args.py."""
    import yaml
    from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _args
    from ansible_collections.virtfleet.kubevirt.plugins.modules import kubevirt_vm_migration as module
    from tests.unit.plugins.test_option_parity import spec_doc_problems

    doc = yaml.safe_load(module.DOCUMENTATION)["options"]
    spec = module.argument_spec()
    fragment_only = (set(_args.AUTH_ARG_SPEC) | set(_args.WAIT_ARG_SPEC)) - set(doc)
    assert spec_doc_problems(dict((k, v) for k, v in spec.items() if k not in fragment_only), doc) == []
    assert set(doc["non_migratable"]["choices"]) == set(mg.NON_MIGRATABLE_CHOICES)
    for key in ("RETURN", "EXAMPLES"):
        assert yaml.safe_load(getattr(module, key))
