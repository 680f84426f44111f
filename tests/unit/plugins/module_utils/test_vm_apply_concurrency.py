"""kubevirt_vm sends the writes of a task's VMs concurrently (``_vm_apply.WRITE_WORKERS`` at a time).

Proof without timing: a gate at the HTTP seam holds every VM write until ``WRITE_WORKERS`` of them are in flight
together. Writes sent one after the other never open it (each would wait for the gate's timeout, then the test
fails on the count). Around it, what must not change: one write per VM, per-VM outcomes and errors, the failure
report, the results in the task's order, check mode's dry runs.
"""
import threading

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _vm_apply as va

from ..fake_cluster import FakeCluster
from .test_vm_apply import COMMON, VMS, run

FLEET = [{"name": "vm-%02d" % i} for i in range(20)]


class Gate(object):
    """An intercept handler: holds each request until ``parties`` are held together, then serves them."""

    def __init__(self, cluster, parties, timeout=30.0):
        self.cluster = cluster
        self.parties = parties
        self.timeout = timeout
        self.lock = threading.Lock()
        self.opened = threading.Event()
        self.in_flight = 0
        self.most = 0

    def __call__(self, req):
        with self.lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
            if self.in_flight >= self.parties:
                self.opened.set()
        self.opened.wait(self.timeout)
        try:
            return self.cluster.serve(req)
        finally:
            with self.lock:
                self.in_flight -= 1


def gated(cluster, method=None, path=VMS):
    gate = Gate(cluster, va.WRITE_WORKERS)
    cluster.intercept(method or "POST", path, gate)
    return gate


def test_the_writes_of_many_vms_are_in_flight_together_one_per_vm():
    cluster = FakeCluster()
    gate = gated(cluster)
    failed, res = run(cluster, vms=FLEET, **COMMON)
    assert not failed and res["changed"]
    assert gate.most == va.WRITE_WORKERS
    assert cluster.sent() == [("GET", VMS, {})] + [("POST", VMS, {})] * len(FLEET)
    assert sorted(b["metadata"]["name"] for b in cluster.bodies("POST", VMS)) == [vm["name"] for vm in FLEET]
    assert [(r["name"], r["outcome"]) for r in res["results"]] == [(vm["name"], "created") for vm in FLEET]
    assert len(cluster.items()) == len(FLEET)


def test_a_rejected_vm_among_concurrent_writes_is_reported_as_before():
    cluster = FakeCluster()
    cluster.reject["vm-07"] = 'spec.template.spec.domain.cpu.cores: Invalid value: "string"'
    gate = gated(cluster)
    failed, res = run(cluster, vms=FLEET, **COMMON)
    assert failed and gate.most == va.WRITE_WORKERS
    assert res["msg"].startswith("1 of 20 VMs failed: ns/vm-07: The API server rejected VirtualMachines as invalid "
                                 '(422): VirtualMachine.kubevirt.io "vm-07" is invalid: spec.template.spec.domain.cpu.cores')
    assert "Done for the others: created 19: ns/vm-00, ns/vm-01" in res["msg"]
    outcomes = [(r["name"], r["outcome"]) for r in res["results"]]
    assert outcomes == [(vm["name"], "failed" if vm["name"] == "vm-07" else "created") for vm in FLEET]
    assert res["results"][7]["failed"] and not any(r.get("failed") for i, r in enumerate(res["results"]) if i != 7)
    # Each VM was sent once, the rejected one too; nothing of it was stored.
    assert len(cluster.writes()) == len(FLEET)
    assert cluster.vm("vm-07") is None and len(cluster.items()) == len(FLEET) - 1


def test_check_mode_dry_runs_concurrently_and_diffs_in_order():
    cluster = FakeCluster()
    gate = gated(cluster)
    failed, res = run(cluster, check_mode=True, diff_mode=True, vms=FLEET, **COMMON)
    assert not failed and res["changed"] and gate.most == va.WRITE_WORKERS
    assert cluster.writes("dryRun") == [("POST", VMS, {"dryRun": "All"})] * len(FLEET)
    assert cluster.items() == []
    assert [r["name"] for r in res["results"]] == [vm["name"] for vm in FLEET]
    assert [r["diff"]["after"]["metadata"]["name"] for r in res["results"]] == [vm["name"] for vm in FLEET]


def test_full_ownership_applies_each_vm_once_concurrently_and_the_rerun_writes_nothing():
    cluster = FakeCluster()
    gate = Gate(cluster, va.WRITE_WORKERS)
    for vm in FLEET:
        cluster.intercept("PATCH", "%s/%s" % (VMS, vm["name"]), gate)
    failed, res = run(cluster, vms=FLEET, full_ownership=True, **COMMON)
    assert not failed and gate.most == va.WRITE_WORKERS
    assert sorted(cluster.writes()) == sorted(("PATCH apply", "%s/%s" % (VMS, vm["name"]), {}) for vm in FLEET)
    failed, res = run(cluster, vms=FLEET, full_ownership=True, **COMMON)
    assert not failed and not res["changed"] and cluster.writes() == []
