"""kubevirt_vm_migration through ansible-playbook against the emulator's simulated KubeVirt v1.9 live migration
(controllers/virt.py, webhooks.py): six VMs on one node of four, one of them not migratable (bridge on the pod network).

One playbook run drives the whole story, each task's requests split out of the emulator's log by marker requests:
check mode (dry runs only), non_migratable=fail (fails naming the VM, no write at all), skip (the others migrate,
never to the cordoned node, VMIs still Running), the idempotent re-run by node, target_node_selector, a migration to
the cordoned node that cannot be scheduled (times out, is reused, then cancelled: the VMI stays), a missing name,
stop (the non-migratable VM stopped), and the node empty at last."""
import time

import pytest

from tests.integration.conftest import run_playbook
from tests.summary import record

EMULATOR = {"name": "migration-it", "controllers": ("virt",), "timing": "fast", "nodes": 4, "needs_hooks": True}
NS = "drain"
VMS = "/apis/kubevirt.io/v1/namespaces/%s/virtualmachines" % NS
VMIS = "/apis/kubevirt.io/v1/namespaces/%s/virtualmachineinstances" % NS
VMIMS = "/apis/kubevirt.io/v1/namespaces/%s/virtualmachineinstancemigrations" % NS
MODULE = "virtfleet.kubevirt.kubevirt_vm_migration"
MIGRATABLE = ["app-%d" % i for i in range(1, 6)]
BRIDGE = "legacy"
REASON = ("InterfaceNotLiveMigratable: cannot migrate VMI which does not use masquerade or a migratable plugin to "
          "connect to the pod network")


def vm(name, binding):
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
            "metadata": {"name": name, "namespace": NS, "labels": {"tier": "drain"}},
            "spec": {"runStrategy": "Always", "template": {
                "metadata": {"labels": {"tier": "drain", "kubevirt.io/domain": name}},
                "spec": {"domain": {"devices": {"interfaces": [{"name": "default", binding: {}}]},
                                    "resources": {"requests": {"memory": "64Mi"}}},
                         "networks": [{"name": "default", "pod": {}}]}}}}


def cordon(emu, node, on=True):
    status, doc, _ = emu.http("PATCH", "/api/v1/nodes/" + node, {"spec": {"unschedulable": True if on else None}},
                              content_type="application/merge-patch+json")
    assert status == 200, doc


def vmis(emu):
    return {o["metadata"]["name"]: o for o in emu.get_object(VMIS)["items"]}


def wait_for(fn, timeout=20, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = fn()
        if got:
            return got
        time.sleep(0.1)
    pytest.fail("timed out waiting for " + what)


def task(register, ignore_errors=False, **args):
    out = {"name": register, MODULE: args, "register": register}
    if ignore_errors:
        out["ignore_errors"] = True
    return out


def marker(n):
    return {"name": "marker %d" % n, "virtfleet.kubevirt.kubevirt_vm_info": {"namespace": NS, "name": "marker-%d" % n}}


def with_markers(tasks):
    out = []
    for i, t in enumerate(tasks):
        out.append(t)
        out.append(marker(i))
    return out


def per_task(entries):
    parts, current = [], []
    for e in entries:
        if e["method"] == "GET" and e["path"].startswith(VMS + "/marker-"):
            parts.append(current)
            current = []
        elif not e["path"].startswith("/_emulator"):
            current.append(e)
    return parts


def budget(entries):
    out = {}
    for e in entries:
        parts = e["path"].rstrip("/").split("/")
        verb = e["method"]
        if verb == "GET":
            verb = "WATCH" if e["query"].get("watch") in ("true", "1") else "LIST" if parts[-1].endswith("s") else "GET"
        plural = parts[-1] if verb in ("LIST", "WATCH", "POST") else parts[-2] if verb in ("GET", "DELETE") else parts[-1]
        if e["method"] == "PUT":
            plural = "%s/%s" % (parts[-3], parts[-1])
        key = "%s %s%s" % (verb, plural, " dryRun" if e["query"].get("dryRun") else "")
        out[key] = out.get(key, 0) + 1
    return out


def by_name(result):
    return {r["name"]: r for r in result["results"]}


def test_drain_one_node(emu, tmp_path):
    emu.apply_object({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    # Every VM starts on node01: the other nodes are cordoned while they are scheduled.
    for node in ("node02", "node03", "node04"):
        cordon(emu, node)
    for name in MIGRATABLE:
        emu.apply_object(vm(name, "masquerade"))
    emu.apply_object(vm(BRIDGE, "bridge"))
    wait_for(lambda: len([v for v in vmis(emu).values() if (v.get("status") or {}).get("phase") == "Running" and any(
        c["type"] == "LiveMigratable" for c in v["status"].get("conditions") or [])]) == 6, what="6 VMIs running")
    assert {v["status"]["nodeName"] for v in vmis(emu).values()} == {"node01"}
    cordon(emu, "node02", False)
    cordon(emu, "node03", False)          # node04 stays cordoned: never a target

    tasks = [
        dict(task("r_check", node="node01", namespace=NS, non_migratable="skip"), check_mode=True, diff=True),
        task("r_fail", ignore_errors=True, node="node01", wait=True),
        task("r_skip", node="node01", non_migratable="skip", wait=True, wait_timeout=60),
        task("r_again", node="node01", non_migratable="skip", wait=True),
        task("r_selector", namespace=NS, names=["app-2"], wait=True, target_node_selector={
            "kubernetes.io/hostname": "{{ 'node03' if (r_skip.results | selectattr('name', 'equalto', 'app-2') | first)"
                                      ".target_node == 'node02' else 'node02' }}"}),
        task("r_cordoned", ignore_errors=True, namespace=NS, names=["app-1"], wait=True, wait_timeout=2,
             target_node_selector={"kubernetes.io/hostname": "node04"}),
        task("r_reuse", namespace=NS, names=["app-1"]),
        task("r_cancel", namespace=NS, names=["app-1"], state="absent", wait=True),
        task("r_cancel_again", namespace=NS, names=["app-1"], state="absent"),
        # (to the other free node: node01 is not cordoned, and app-3 must not land back there before r_empty)
        task("r_missing", ignore_errors=True, namespace=NS, names=["ghost", "app-3"], wait=True, target_node_selector={
            "kubernetes.io/hostname": "{{ 'node03' if (r_skip.results | selectattr('name', 'equalto', 'app-3') | first)"
                                      ".target_node == 'node02' else 'node02' }}"}),
        dict(task("r_stop", node="node01", non_migratable="stop", wait=True), diff=True),
        task("r_empty", node="node01", wait=True),
    ]
    names = [t["register"] for t in tasks]
    mark = emu.mark()
    started = time.monotonic()
    result = run_playbook(tmp_path, emu.env(), with_markers(tasks), register=names)
    wall = time.monotonic() - started
    assert result.rc == 0, result
    r = result.vars
    reqs = dict(zip(names, per_task(emu.requests(since=mark))))

    # check mode: dry-run creates only, nothing stored, nothing waited for
    check = r["r_check"]
    assert check["changed"] is True and check["non_migratable"] == [{"name": BRIDGE, "namespace": NS, "reason": REASON}]
    assert {n: x["outcome"] for n, x in by_name(check).items()} == dict({n: "pending" for n in MIGRATABLE},
                                                                        **{BRIDGE: "skipped"})
    assert check["diff"]["before"]["%s/app-1" % NS] == {"node": "node01"}
    assert budget(reqs["r_check"]) == {"LIST virtualmachineinstances": 1, "LIST virtualmachineinstancemigrations": 1,
                                       "POST virtualmachineinstancemigrations dryRun": 5}

    # non_migratable=fail: the task fails naming the VM and its reason, with two reads and no write
    fail = r["r_fail"]
    assert fail["failed"] is True and fail["changed"] is False
    assert "%s/%s (%s)" % (NS, BRIDGE, REASON) in fail["msg"] and "non_migratable=fail" in fail["msg"]
    assert fail["non_migratable"] == [{"name": BRIDGE, "namespace": NS, "reason": REASON}]
    assert by_name(fail)[BRIDGE]["outcome"] == "failed" and by_name(fail)["app-1"]["outcome"] == "unchanged"
    assert budget(reqs["r_fail"]) == {"LIST virtualmachineinstances": 1, "LIST virtualmachineinstancemigrations": 1}
    assert [e["query"].get("labelSelector") for e in reqs["r_fail"]][0] == "kubevirt.io/nodeName=node01"

    # skip: every migratable VMI leaves node01 for node02/node03 (node04 is cordoned), the bridge one stays
    skip = r["r_skip"]
    assert skip["changed"] is True and not skip.get("failed")
    got = by_name(skip)
    assert got[BRIDGE]["outcome"] == "skipped" and got[BRIDGE]["reason"] == REASON and not got[BRIDGE]["changed"]
    for name in MIGRATABLE:
        res = got[name]
        assert res["outcome"] == "migrated" and res["changed"] and res["phase"] == "Succeeded", res
        assert res["source_node"] == "node01" and res["target_node"] in ("node02", "node03"), res
        assert res["migration"].startswith(name + "-migration-") and res["duration"] >= 0
    skip_budget = budget(reqs["r_skip"])
    assert skip_budget == {"LIST virtualmachineinstances": 1, "LIST virtualmachineinstancemigrations": 1,
                           "POST virtualmachineinstancemigrations": 5, "WATCH virtualmachineinstancemigrations":
                           skip_budget.get("WATCH virtualmachineinstancemigrations")}
    assert 1 <= skip_budget["WATCH virtualmachineinstancemigrations"] <= 2
    record("kubevirt_vm_migration", "6 VMIs off one node (5 migrated, 1 skipped): %d requests, task %.2f s"
           % (len(reqs["r_skip"]), skip["duration"]))

    # the re-run by node finds only the skipped VMI: nothing written
    again = r["r_again"]
    assert again["changed"] is False and [x["outcome"] for x in again["results"]] == ["skipped"]
    assert budget(reqs["r_again"]) == {"LIST virtualmachineinstances": 1, "LIST virtualmachineinstancemigrations": 1}

    # target_node_selector: exactly the node it names
    sel = by_name(r["r_selector"])["app-2"]
    assert sel["outcome"] == "migrated" and sel["target_node"] != got["app-2"]["target_node"]
    assert sel["target_node"] in ("node02", "node03") and sel["source_node"] == got["app-2"]["target_node"]

    # only the cordoned node04 matches: no target, the migration stays Scheduling until wait_timeout
    cordoned = by_name(r["r_cordoned"])["app-1"]
    assert r["r_cordoned"]["failed"] is True and cordoned["outcome"] == "failed" and cordoned["phase"] == "Scheduling"
    assert "still Scheduling after wait_timeout (2s): no node can take the VMI" in cordoned["msg"]
    # ... a second task reuses it instead of creating another (KubeVirt would refuse a second one anyway)
    reuse = by_name(r["r_reuse"])["app-1"]
    assert reuse["reused"] is True and reuse["changed"] is False and reuse["migration"] == cordoned["migration"]
    assert "POST virtualmachineinstancemigrations" not in budget(reqs["r_reuse"])
    # ... and state=absent cancels it: deleted, the VMI stays where it was
    cancel = by_name(r["r_cancel"])["app-1"]
    assert cancel["outcome"] == "cancelled" and cancel["changed"] and cancel["migration"] == cordoned["migration"]
    assert budget(reqs["r_cancel"]).get("DELETE virtualmachineinstancemigrations") == 1
    assert by_name(r["r_cancel_again"])["app-1"]["outcome"] == "unchanged" and not r["r_cancel_again"]["changed"]
    assert emu.get_object(VMIMS + "/" + cordoned["migration"]) is None

    # a name without a VMI fails the task after the others were handled
    missing = by_name(r["r_missing"])
    assert r["r_missing"]["failed"] and missing["ghost"]["outcome"] == "failed"
    assert "VMI %s/ghost does not exist" % NS in missing["ghost"]["msg"]
    assert missing["app-3"]["outcome"] == "migrated" and missing["app-3"]["changed"]
    assert missing["app-3"]["target_node"] in ("node02", "node03")

    # non_migratable=stop: the bridge VM is stopped through its stop subresource, its VMI gone
    stop = by_name(r["r_stop"])
    assert stop[BRIDGE]["outcome"] == "stopped" and r["r_stop"]["changed"]
    assert r["r_stop"]["diff"]["after"]["%s/%s" % (NS, BRIDGE)] == {"node": None, "running": False}
    assert budget(reqs["r_stop"]).get("PUT virtualmachines/stop") == 1
    assert r["r_empty"]["results"] == [] and r["r_empty"]["changed"] is False

    # the cluster agrees: the VMIs run elsewhere, Ready, never on the cordoned node
    now = vmis(emu)
    assert BRIDGE not in now
    for name in MIGRATABLE:
        vmi = now[name]
        assert vmi["status"]["phase"] == "Running" and vmi["status"]["nodeName"] in ("node02", "node03")
        assert any(c["type"] == "Ready" and c["status"] == "True" for c in vmi["status"]["conditions"])
    migs = emu.get_object(VMIMS)["items"]
    assert all(m["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "virtfleet.kubevirt" for m in migs)
    record("kubevirt_vm_migration", "the whole 12-task playbook took %.1f s" % wall)


def test_drain_fifty_vms_request_budget(emu, tmp_path):
    """The documented budget: 50 VMIs off one node in one task with wait = 2 lists, 50 POSTs and one watch."""
    ns, n = "fleet", 50
    emu.apply_object({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    for node in ("node02", "node03", "node04"):
        cordon(emu, node)
    for i in range(n):
        body = vm("vm-%02d" % i, "masquerade")
        body["metadata"]["namespace"] = ns
        emu.apply_object(body)
    path = "/apis/kubevirt.io/v1/namespaces/%s/virtualmachineinstances" % ns

    def running():
        items = emu.get_object(path)["items"]
        return len([v for v in items if (v.get("status") or {}).get("phase") == "Running"]) == n and items
    assert {v["status"]["nodeName"] for v in wait_for(running, timeout=60, what="%d VMIs running" % n)} == {"node01"}
    for node in ("node02", "node03", "node04"):
        cordon(emu, node, False)
    mark = emu.mark()
    result = run_playbook(tmp_path, emu.env(), [task("r_drain", node="node01", namespace=ns, wait=True,
                                                     wait_timeout=120)], register=["r_drain"])
    assert result.rc == 0, result
    drain = result.vars["r_drain"]
    assert [x["outcome"] for x in drain["results"]] == ["migrated"] * n
    assert {x["target_node"] for x in drain["results"]} <= {"node02", "node03", "node04"}
    entries = [e for e in emu.requests(since=mark) if not e["path"].startswith("/_emulator")]
    got = budget(entries)
    watches = got.pop("WATCH virtualmachineinstancemigrations")
    assert got == {"LIST virtualmachineinstances": 1, "LIST virtualmachineinstancemigrations": 1,
                   "POST virtualmachineinstancemigrations": n}
    assert 1 <= watches <= 2
    assert all(v["status"]["nodeName"] != "node01" for v in emu.get_object(path)["items"])
    record("kubevirt_vm_migration", "%d VMIs off one node: %d requests (%d watch), task %.2f s"
           % (n, len(entries), watches, drain["duration"]))
