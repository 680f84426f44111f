"""kubevirt_vm_snapshot and kubevirt_vm_snapshot_info through ansible-playbook against the emulator's simulated
KubeVirt v1.9.0 snapshot controller: 50 VMs in one task with wait and the request budget, an idempotent re-run with
zero writes, retention that spares a snapshot made by hand, exact check mode, removal; a missing VM and a failed
snapshot next to a good one; bad options refused before any request."""
import time

from tests.integration.conftest import unique_namespace, vm_manifest
from tests.summary import record

SNAPS = "/apis/snapshot.kubevirt.io/v1beta1/namespaces/%s/virtualmachinesnapshots"
CONTENTS = "/apis/snapshot.kubevirt.io/v1beta1/namespaces/%s/virtualmachinesnapshotcontents"
VMS = "/apis/kubevirt.io/v1/namespaces/%s/virtualmachines"
VMIS = "/apis/kubevirt.io/v1/namespaces/%s/virtualmachineinstances"
WRITES = ("POST", "PUT", "PATCH", "DELETE")
MANAGED = "app.kubernetes.io/managed-by"
N = 50


def snap_task(register, ignore_errors=False, check_mode=None, diff=None, **args):
    task = {"name": register, "virtfleet.kubevirt.kubevirt_vm_snapshot": args, "register": register}
    if ignore_errors:
        task["ignore_errors"] = True
    if check_mode is not None:
        task["check_mode"] = check_mode
    if diff is not None:
        task["diff"] = diff
    return task


def info_task(register, **args):
    return {"name": register, "virtfleet.kubevirt.kubevirt_vm_snapshot_info": args, "register": register}


def marker(ns, n):
    """A request of its own in the log between two tasks (a GET of a VM that does not exist), to split it per task."""
    return {"name": "marker %d" % n, "virtfleet.kubevirt.kubevirt_vm_info": {"namespace": ns, "name": "marker-%d" % n}}


def per_task(entries, ns):
    """The request log split at the markers: [requests of task 0, of task 1, ...]."""
    parts, current = [], []
    for e in entries:
        if e["method"] == "GET" and e["path"].startswith(VMS % ns + "/marker-"):
            parts.append(current)
            current = []
        else:
            current.append(e)
    parts.append(current)
    return parts


def budget(entries):
    """{'LIST virtualmachines': n, 'POST virtualmachinesnapshots': n, ...} of one task's requests."""
    out = {}
    for e in entries:
        plural = e["path"].split("/")[-1] if e["method"] in ("GET", "POST") else e["path"].split("/")[-2]
        verb = e["method"]
        if verb == "GET":
            verb = "WATCH" if e["query"].get("watch") in ("true", "1") else "LIST"
        key = "%s %s" % (verb, plural)
        out[key] = out.get(key, 0) + 1
    return out


def seed(kubeapi, ns, names, run_strategy="Halted", pvc=False, labels=None):
    for name in names:
        vm = vm_manifest(name, ns, run_strategy=run_strategy, labels=labels)
        tspec = vm["spec"]["template"]["spec"]
        tspec["volumes"] = [{"name": "root", "containerDisk": {"image": "quay.io/containerdisks/fedora:41"}}]
        if pvc:
            kubeapi.apply_object({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                  "metadata": {"name": name + "-data", "namespace": ns},
                                  "spec": {"accessModes": ["ReadWriteOnce"],
                                           "resources": {"requests": {"storage": "1Gi"}}}})
            tspec["volumes"].append({"name": "data", "persistentVolumeClaim": {"claimName": name + "-data"}})
        kubeapi.apply_object(vm)


def wait_vmis(kubeapi, ns, count, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = (kubeapi.get_object(VMIS % ns) or {}).get("items") or []
        if len([i for i in items if (i.get("status") or {}).get("phase") == "Running"]) >= count:
            return
        time.sleep(0.1)
    raise AssertionError("%d VMIs of %s not Running in time" % (count, ns))


def test_fifty_vms_snapshot_rerun_keep_check_mode_and_absent(kubeapi, playbook):
    ns = unique_namespace(kubeapi, "snap")
    names = ["vm-%03d" % i for i in range(N)]
    running, halted = names[:20], names[20:]
    seed(kubeapi, ns, running, "Always", labels={"fleet": "a"})
    seed(kubeapi, ns, halted[:5], "Halted", pvc=True, labels={"fleet": "a"})
    seed(kubeapi, ns, halted[5:], "Halted", labels={"fleet": "a"})
    wait_vmis(kubeapi, ns, len(running))
    # A snapshot made by hand: retention must neither count nor delete it.
    kubeapi.apply_object({"apiVersion": "snapshot.kubevirt.io/v1beta1", "kind": "VirtualMachineSnapshot",
                          "metadata": {"name": "by-hand", "namespace": ns},
                          "spec": {"source": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": "vm-000"}}})
    kubeapi.wait_for(SNAPS % ns + "/by-hand", lambda o: o and (o.get("status") or {}).get("readyToUse") is True)

    select = {"namespace": ns, "label_selectors": ["fleet=a"]}
    mark = kubeapi.mark()
    started = time.monotonic()
    r = playbook([
        snap_task("first", snapshot="s1", wait=True, wait_timeout=60, labels={"purpose": "test"}, **select),
        marker(ns, 1),
        snap_task("again", snapshot="s1", wait=True, wait_timeout=60, **select),
        marker(ns, 2),
        snap_task("would", snapshot="s2", keep=1, check_mode=True, diff=True, **select),
        marker(ns, 3),
        snap_task("second", snapshot="s2", keep=1, wait=True, wait_timeout=60, **select),
        marker(ns, 4),
        info_task("info_one", namespace=ns, names=["vm-000"]),
        info_task("info_managed", namespace=ns, snapshot="s2", snapshot_label_selectors=[MANAGED + "=virtfleet.kubevirt"]),
        marker(ns, 5),
        snap_task("gone", snapshot="s2", state="absent", wait=True, wait_timeout=60, **select),
    ], register=["first", "again", "would", "second", "info_one", "info_managed", "gone"])
    wall = time.monotonic() - started
    assert r.rc == 0, r
    tasks = per_task(kubeapi.requests(since=mark), ns)
    assert len(tasks) == 6

    # --- 50 snapshots with wait --------------------------------------------------------------------------------
    first = r.vars["first"]
    assert first["changed"] is True and len(first["results"]) == N
    by_name = dict((x["name"], x) for x in first["results"])
    assert [x["name"] for x in first["results"]] == names
    for x in first["results"]:
        assert x["outcome"] == "created" and x["changed"] and not x["failed"], x
        assert x["snapshot"] == x["name"] + "-s1" and x["phase"] == "Succeeded" and x["ready_to_use"] is True
        assert x["resource"]["metadata"]["labels"] == {MANAGED: "virtfleet.kubevirt", "virtfleet.kubevirt/vm": x["name"],
                                                       "purpose": "test"}
        assert x["resource"]["spec"]["source"] == {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": x["name"]}
        assert x["deleted"] == [] and x["error"] is None and x["creation_time"]
    for name in running:
        # The emulator's running VMIs report a connected guest agent (condition AgentConnected).
        assert by_name[name]["online"] is True and by_name[name]["indications"] == ["GuestAgent", "Online"]
        assert by_name[name]["guest_agent_freeze"] is True
    for name in halted:
        assert by_name[name]["online"] is False and by_name[name]["indications"] == []
    for name in halted[:5]:
        assert by_name[name]["size"] == 1024 ** 3
        assert by_name[name]["included_volumes"] == ["data"] and by_name[name]["excluded_volumes"] == ["root"]
    assert by_name["vm-049"]["size"] == 0 and by_name["vm-049"]["included_volumes"] == []
    # Budget: one list of VMs, one of snapshots, 50 POSTs, one watch, one list of contents; nothing else.
    assert budget(tasks[0]) == {"LIST virtualmachines": 1, "LIST virtualmachinesnapshots": 1,
                                "POST virtualmachinesnapshots": N, "WATCH virtualmachinesnapshots": 1,
                                "LIST virtualmachinesnapshotcontents": 1}, budget(tasks[0])

    # --- the re-run: unchanged, zero writes --------------------------------------------------------------------
    again = r.vars["again"]
    assert again["changed"] is False
    assert set(x["outcome"] for x in again["results"]) == {"unchanged"}
    assert all(x["ready_to_use"] for x in again["results"])
    assert [e for e in tasks[1] if e["method"] in WRITES] == []
    assert budget(tasks[1]) == {"LIST virtualmachines": 1, "LIST virtualmachinesnapshots": 1,
                                "WATCH virtualmachinesnapshots": 0, "LIST virtualmachinesnapshotcontents": 1} or \
        budget(tasks[1]) == {"LIST virtualmachines": 1, "LIST virtualmachinesnapshots": 1,
                             "LIST virtualmachinesnapshotcontents": 1}, budget(tasks[1])

    # --- check mode: predicts creates and retention, stores nothing --------------------------------------------
    would = r.vars["would"]
    assert would["changed"] is True
    for x in would["results"]:
        assert x["outcome"] == "created" and x["deleted"] == [x["name"] + "-s1"] and x["phase"] is None
    # The diff: 50 snapshots that would be created (the dry run's answer), 50 that would be deleted.
    assert sorted(k for k, v in would["diff"]["after"].items() if v) == sorted("%s/%s-s2" % (ns, n) for n in names)
    assert would["diff"]["after"]["%s/vm-000-s2" % ns]["metadata"]["labels"]["virtfleet.kubevirt/vm"] == "vm-000"
    assert sorted(k for k, v in would["diff"]["before"].items() if v) == sorted("%s/%s-s1" % (ns, n) for n in names)
    assert would["diff"]["after"]["%s/vm-000-s1" % ns] == {}
    sent = [e for e in tasks[2] if e["method"] in WRITES]
    assert len(sent) == 2 * N and all(e["query"].get("dryRun") == "All" for e in sent if e["method"] == "POST")
    assert [e for e in tasks[2] if e["query"].get("watch")] == []

    # --- keep=1: the s1 snapshots go, the one made by hand stays -----------------------------------------------
    second = r.vars["second"]
    assert all(x["outcome"] == "created" and x["ready_to_use"] for x in second["results"])
    assert all(x["deleted"] == [x["name"] + "-s1"] for x in second["results"])
    assert budget(tasks[3]) == {"LIST virtualmachines": 1, "LIST virtualmachinesnapshots": 1,
                                "POST virtualmachinesnapshots": N, "WATCH virtualmachinesnapshots": 1,
                                "DELETE virtualmachinesnapshots": N, "LIST virtualmachinesnapshotcontents": 1}, budget(tasks[3])
    assert kubeapi.get_object(SNAPS % ns + "/by-hand") is not None

    # --- info --------------------------------------------------------------------------------------------------
    one = r.vars["info_one"]["snapshots"]
    assert [s["snapshot"] for s in one if not s["resource"]["metadata"].get("deletionTimestamp")][0] == "vm-000-s2"
    assert "by-hand" in [s["snapshot"] for s in one]
    hand = [s for s in one if s["snapshot"] == "by-hand"][0]
    assert hand["managed"] is False and hand["ready_to_use"] is True
    managed = r.vars["info_managed"]["snapshots"]
    assert sorted(s["snapshot"] for s in managed) == sorted(n + "-s2" for n in names)
    assert all(s["managed"] and s["ready_to_use"] for s in managed)
    assert budget(tasks[4]) == {"LIST virtualmachinesnapshots": 2, "LIST virtualmachinesnapshotcontents": 2}

    # --- state=absent with wait --------------------------------------------------------------------------------
    gone = r.vars["gone"]
    assert gone["changed"] is True and set(x["outcome"] for x in gone["results"]) == {"deleted"}
    left = [s["metadata"]["name"] for s in kubeapi.get_object(SNAPS % ns)["items"]]
    assert left == ["by-hand"]
    for label, key, part in (("snapshot 50 + wait", "first", 0), ("re-run", "again", 1), ("check mode keep=1", "would", 2),
                             ("snapshot 50 keep=1 + wait", "second", 3), ("absent + wait", "gone", 5)):
        record("kubevirt_vm_snapshot, %d VMs" % N, "%s: %.2f s (module duration), %d requests %s" % (
            label, r.vars[key]["duration"], len(tasks[part]), budget(tasks[part])))
    record("kubevirt_vm_snapshot, %d VMs" % N, "whole playbook (7 tasks + markers): %.1f s" % wall)


def test_missing_vm_and_failed_snapshot_next_to_a_good_one(kubeapi, playbook):
    ns = unique_namespace(kubeapi, "snapf")
    seed(kubeapi, ns, ["good", "locked"], labels={"snap-test": ns})
    # Another snapshot holds the VM (source.go Lock refuses a second one): this one never starts and fails at its
    # failure deadline with "snapshot deadline exceeded".
    status, doc, _ = kubeapi._shortcut("PATCH", VMS % ns + "/locked/status", {"status": {"snapshotInProgress": "other"}},
                                       content_type="application/merge-patch+json")
    assert status == 200, doc
    mark = kubeapi.mark()
    r = playbook([
        snap_task("snap", ignore_errors=True, namespace=ns, names=["good", "ghost", "locked"], snapshot="x",
                  failure_deadline="2s", wait=True, wait_timeout=30),
        info_task("info", namespace=ns, names=["good", "locked"]),
        snap_task("absent", namespace=ns, names=["ghost", "good"], snapshot="x", state="absent"),
        # Without namespace: label selectors select across namespaces (cluster-wide lists and one cluster-wide watch).
        snap_task("everywhere", ignore_errors=True, label_selectors=["snap-test=%s" % ns], snapshot="y", wait=True,
                  failure_deadline="2s", wait_timeout=30),
    ], register=["snap", "info", "absent", "everywhere"])
    snap = r.vars["snap"]
    assert snap["failed"] is True and snap["changed"] is True
    res = dict((x["name"], x) for x in snap["results"])
    assert [x["name"] for x in snap["results"]] == ["good", "locked", "ghost"]
    assert res["good"]["outcome"] == "created" and res["good"]["ready_to_use"] is True and not res["good"]["failed"]
    assert res["ghost"]["outcome"] == "failed" and res["ghost"]["msg"] == "VM %s/ghost does not exist" % ns
    assert res["locked"]["outcome"] == "failed" and res["locked"]["phase"] == "Failed"
    assert "snapshot deadline exceeded" in res["locked"]["msg"]
    assert "2 of 3 VMs failed" in snap["msg"] and "created 1: %s/good" % ns in snap["msg"]
    posts = [e for e in kubeapi.requests(since=mark) if e["method"] == "POST"]
    assert len(posts) == 2 + 2       # "x" of good and locked (ghost: nothing sent), then "y" of both
    info = r.vars["info"]["snapshots"]
    assert [(s["name"], s["ready_to_use"], s["failure"]) for s in info] == [
        ("good", True, None), ("locked", False, "snapshot deadline exceeded")]
    absent = r.vars["absent"]
    assert [(x["name"], x["outcome"]) for x in absent["results"]] == [("good", "deleted"), ("ghost", "absent")]
    assert absent["changed"] is True and not absent.get("failed")
    everywhere = r.vars["everywhere"]
    assert [(x["namespace"], x["name"], x["outcome"], x["ready_to_use"]) for x in everywhere["results"]] == [
        (ns, "good", "created", True), (ns, "locked", "failed", False)]
    cluster_wide = [e for e in kubeapi.requests(since=mark) if e["path"].startswith("/apis/snapshot.kubevirt.io/v1beta1/virtual")]
    plurals = sorted(set(e["path"].rsplit("/", 1)[1] for e in cluster_wide))
    assert plurals == ["virtualmachinesnapshotcontents", "virtualmachinesnapshots"]


BAD = [
    ({"names": ["a"], "snapshot": "Bad_Name"}, 'snapshot "Bad_Name" is not a valid name part'),
    ({"names": ["a" * 63], "snapshot": "s" * 200}, "more than the 253 a Kubernetes name may have"),
    ({"names": ["a"], "snapshot": "s", "failure_deadline": "5 minutes"}, 'failure_deadline "5 minutes" is not a duration'),
    ({"names": ["a"], "snapshot": "s", "keep": 0}, "keep must be 1 or more"),
    ({"names": ["a"], "snapshot": "s", "labels": {MANAGED: "me"}}, "labels must not set app.kubernetes.io/managed-by"),
    ({"namespace": "default", "snapshot": "s"}, "nothing selects the VMs"),
    ({"names": ["a"], "snapshot": "s", "namespace": None}, "names needs a namespace"),
    ({"names": ["a"], "snapshot": "s", "deletion_policy": "Keep"}, "deletion_policy must be one of"),
]


def test_bad_options_fail_before_any_request(kubeapi, playbook):
    tasks = []
    for i, (args, _needle) in enumerate(BAD):
        args = dict({"namespace": "default"}, **args)
        if args["namespace"] is None:
            del args["namespace"]
        tasks.append(snap_task("bad%d" % i, ignore_errors=True, **args))
    mark = kubeapi.mark()
    r = playbook(tasks, register=["bad%d" % i for i in range(len(BAD))])
    for i, (_args, needle) in enumerate(BAD):
        res = r.vars["bad%d" % i]
        assert res["failed"] is True and needle in res["msg"], res
    assert "Traceback" not in r.output
    assert kubeapi.requests(since=mark) == []
