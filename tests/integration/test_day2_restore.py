"""kubevirt_vm_restore through ansible-playbook: 50 VMs restored in one task (spec back, request count, a re-run with
zero writes), running VMs (when_running fail before any write, stop with restart), a missing snapshot, check mode.

The VMs' snapshots are created through the API; the emulator's snapshot controller (controllers/snapshot.py) makes
them ready and runs the restores as KubeVirt v1.9.0's restore.go does.
"""
import time

from tests.integration.conftest import unique_namespace, vm_manifest

SNAP_API = "/apis/snapshot.kubevirt.io/v1beta1/namespaces/%s/"
VMS = "/apis/kubevirt.io/v1/namespaces/%s/virtualmachines"
WRITES = ("POST", "PUT", "PATCH", "DELETE")
LAST_RESTORE = "restore.kubevirt.io/lastRestoreUID"


def snapshot(kubeapi, ns, vm, suffix):
    kubeapi.apply_object({"apiVersion": "snapshot.kubevirt.io/v1beta1", "kind": "VirtualMachineSnapshot",
                          "metadata": {"name": "%s-%s" % (vm, suffix), "namespace": ns},
                          "spec": {"source": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": vm}}})


def wait_snapshots(kubeapi, ns, names, timeout=60):
    for name in names:
        kubeapi.wait_for(SNAP_API % ns + "virtualmachinesnapshots/" + name,
                         lambda o: bool(o and (o.get("status") or {}).get("readyToUse")), timeout=timeout)


def restores(kubeapi, ns):
    _status, doc, _h = kubeapi.http("GET", SNAP_API % ns + "virtualmachinerestores")
    return doc.get("items") or []


def restore_task(register, ignore_errors=False, check_mode=False, diff=False, **args):
    task = {"name": register, "virtfleet.kubevirt.kubevirt_vm_restore": args, "register": register}
    for key, value in (("ignore_errors", ignore_errors), ("check_mode", check_mode), ("diff", diff)):
        if value:
            task[key] = True
    return task


def in_ns(entries, ns):
    return [e for e in entries if "/namespaces/%s/" % ns in e["path"]]


def writes(entries):
    return [e for e in entries if e["method"] in WRITES]


def memory(vm):
    return vm["spec"]["template"]["spec"]["domain"].get("memory")


def test_fifty_vms_restored_in_one_task_then_a_rerun_writes_nothing(kubeapi, playbook):
    ns = unique_namespace(kubeapi, "rs50")
    names = ["vm%02d" % i for i in range(50)]
    for name in names:
        kubeapi.apply_object(vm_manifest(name, ns, run_strategy="Halted", labels={"fleet": "r50"}))
    before = dict((n, kubeapi.get_object(VMS % ns + "/" + n)["spec"]) for n in names)
    # Snapshot them (kubevirt_vm_snapshot), then change every VM (memory) through kubevirt_vm, one task each.
    r = playbook([{"virtfleet.kubevirt.kubevirt_vm_snapshot": {"namespace": ns, "label_selectors": ["fleet=r50"],
                                                               "snapshot": "base", "wait": True}, "register": "snap"},
                  {"virtfleet.kubevirt.kubevirt_vm": {"namespace": ns, "vms": [{"name": n, "memory": "1Gi"} for n in names]},
                   "register": "changed"}], register=["snap", "changed"])
    assert r.rc == 0, r
    assert all(memory(kubeapi.get_object(VMS % ns + "/" + n)) == {"guest": "1Gi"} for n in names)

    mark = kubeapi.mark()
    started = time.monotonic()
    r = playbook([restore_task("restored", namespace=ns, label_selectors=["fleet=r50"], snapshot="base", wait=True,
                               wait_timeout=120)], register=["restored"])
    wall = time.monotonic() - started
    assert r.rc == 0, r
    entries = in_ns(kubeapi.requests(since=mark), ns)
    res = r.vars["restored"]
    assert res["changed"] is True
    assert [x["outcome"] for x in res["results"]] == ["restored"] * 50
    assert sorted(x["name"] for x in res["results"]) == names
    assert all(x["restore"] == "%s-base-restore-1" % x["name"] and x["restore_time"] for x in res["results"])
    assert not any(x["stopped"] or x["restarted"] for x in res["results"])
    for n in names:
        live = kubeapi.get_object(VMS % ns + "/" + n)
        assert memory(live) is None and live["spec"]["template"]["spec"]["domain"]["resources"] == \
            before[n]["template"]["spec"]["domain"]["resources"]
        assert live["spec"]["runStrategy"] == "Halted"
        assert live["metadata"]["annotations"][LAST_RESTORE].startswith("%s-base-restore-1-" % n)
    posts = [e for e in entries if e["method"] == "POST"]
    assert len(posts) == 50 and all(e["path"].endswith("/virtualmachinerestores") for e in posts)
    assert len(writes(entries)) == 50
    reads = [e for e in entries if e["method"] == "GET"]
    lists = [e for e in reads if e["verb"] == "list"]
    # selection, VMIs, snapshots, restores; then the wait's list of restores and the read-back list of VMs
    assert len(lists) == 6, [(e["verb"], e["path"]) for e in lists]
    print("\n50 VMs restored with wait: %.1f s wall (ansible-playbook), %d requests (%d lists, %d watches, %d POST), "
          "task duration %.2f s" % (wall, len(entries), len(lists), len(reads) - len(lists), len(posts), res["duration"]))

    # The same task again: every VM holds its snapshot and was not changed since, so nothing is written. Then (same
    # playbook) one VM changed after its restore is restored again with a new restore; the other stays unchanged.
    mark = kubeapi.mark()
    r = playbook([restore_task("again", namespace=ns, label_selectors=["fleet=r50"], snapshot="base", wait=True),
                  {"virtfleet.kubevirt.kubevirt_vm": {"namespace": ns, "name": "vm07", "memory": "2Gi"}, "register": "c"},
                  restore_task("third", namespace=ns, names=["vm07", "vm08"], snapshot="base", wait=True)],
                 register=["again", "third"])
    assert r.rc == 0, r
    assert r.vars["again"]["changed"] is False
    assert [x["outcome"] for x in r.vars["again"]["results"]] == ["unchanged"] * 50
    # The only writes of the playbook are kubevirt_vm's patch of vm07 and vm07's new restore: the re-run wrote nothing.
    sent = [(e["method"], e["path"].rsplit("/", 1)[-1]) for e in writes(in_ns(kubeapi.requests(since=mark), ns))]
    assert sent == [("PATCH", "vm07"), ("POST", "virtualmachinerestores")], sent
    out = dict((x["name"], x) for x in r.vars["third"]["results"])
    assert out["vm07"]["outcome"] == "restored" and out["vm07"]["restore"] == "vm07-base-restore-2"
    assert out["vm08"]["outcome"] == "unchanged" and out["vm08"]["changed"] is False
    assert memory(kubeapi.get_object(VMS % ns + "/vm07")) is None


def test_running_vm_fail_reports_before_any_write_then_stop_and_restart(kubeapi, playbook):
    ns = unique_namespace(kubeapi, "rsrun")
    kubeapi.apply_object(vm_manifest("web", ns, run_strategy="Always"))
    db = vm_manifest("db", ns, run_strategy="Halted")
    db["spec"]["template"]["spec"]["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": "db-data"}}]
    kubeapi.apply_object(db)
    kubeapi.wait_for(VMS % ns + "/web", lambda o: (o.get("status") or {}).get("printableStatus") == "Running", timeout=30)
    for name in ("web", "db"):
        snapshot(kubeapi, ns, name, "s1")
    wait_snapshots(kubeapi, ns, ["web-s1", "db-s1"])
    kubeapi.apply_object({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
                          "metadata": {"name": "web", "namespace": ns},
                          "spec": {"template": {"spec": {"domain": {"memory": {"guest": "1Gi"}}}}}}, field_manager="user")

    mark = kubeapi.mark()
    r = playbook([restore_task("refused", ignore_errors=True, namespace=ns, names=["web", "db"], snapshot="s1", wait=True),
                  restore_task("check", namespace=ns, names=["web", "db"], snapshot="s1", when_running="stop",
                               check_mode=True, diff=True)],
                 register=["refused", "check"])
    refused = r.vars["refused"]
    assert refused["failed"] is True and refused["changed"] is False
    out = dict((x["name"], x) for x in refused["results"])
    assert out["web"]["outcome"] == "failed" and "web is running" in out["web"]["msg"]
    assert "when_running=stop" in out["web"]["msg"]
    assert out["db"]["outcome"] == "skipped" and out["db"]["failed"] is False
    assert "Nothing was written" in refused["msg"]
    # Check mode: the restores as server dry runs, the stop and the restart predicted, the diff of both specs.
    check = r.vars["check"]
    assert check["changed"] is True, check
    out = dict((x["name"], x) for x in check["results"])
    assert out["web"]["stopped"] is True and out["web"]["restarted"] is True
    assert out["db"]["stopped"] is False and out["db"]["restarted"] is False
    diff = dict((d["metadata"]["name"], d) for d in check["diff"]["before"])
    assert diff["web"]["spec"]["template"]["spec"]["domain"]["memory"] == {"guest": "1Gi"}
    after = dict((d["metadata"]["name"], d) for d in check["diff"]["after"])
    assert "memory" not in after["web"]["spec"]["template"]["spec"]["domain"]
    assert after["web"]["spec"]["runStrategy"] == "Always"
    claim = after["db"]["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"]
    assert claim.startswith("restore-") and claim.endswith("-data") and claim != "restore-<uid>-data"   # the dry run's uid
    entries = in_ns(kubeapi.requests(since=mark), ns)
    sent = writes(entries)
    assert len(sent) == 2 and all(e["query"].get("dryRun") == "All" for e in sent)
    assert restores(kubeapi, ns) == []

    # when_running=stop: KubeVirt stops web, restores it, the task starts it again and waits for Ready.
    r = playbook([restore_task("stop", namespace=ns, names=["web", "db"], snapshot="s1", when_running="stop",
                               wait=True, wait_timeout=60)], register=["stop"])
    assert r.rc == 0, r.vars["stop"]["msg"]
    out = dict((x["name"], x) for x in r.vars["stop"]["results"])
    assert out["web"]["outcome"] == "restored" and out["web"]["stopped"] is True and out["web"]["restarted"] is True
    assert out["db"]["outcome"] == "restored" and out["db"]["stopped"] is False and out["db"]["restarted"] is False
    web = kubeapi.get_object(VMS % ns + "/web")
    assert memory(web) is None and web["spec"]["runStrategy"] == "Always"
    # db's claim was restored from its volume snapshot under KubeVirt's new name (restore-<restore uid>-<volume>).
    db_restore = [x for x in restores(kubeapi, ns) if x["metadata"]["name"] == "db-s1-restore-1"][0]
    claim = "restore-%s-data" % db_restore["metadata"]["uid"]
    assert out["db"]["resource"]["spec"]["template"]["spec"]["volumes"] == [
        {"name": "data", "persistentVolumeClaim": {"claimName": claim}}]
    assert [c["status"] for c in web["status"]["conditions"] if c["type"] == "Ready"] == ["True"]
    assert out["web"]["resource"]["metadata"]["annotations"][LAST_RESTORE].startswith("web-s1-restore-1-")
    kinds = dict((x["metadata"]["name"], x["spec"]["targetReadinessPolicy"]) for x in restores(kubeapi, ns))
    assert kinds == {"web-s1-restore-1": "StopTarget", "db-s1-restore-1": "StopTarget"}

    # Running again, unchanged since the restore: nothing to do, even with when_running=fail.
    r = playbook([restore_task("again", namespace=ns, names=["web", "db"], snapshot="s1")], register=["again"])
    assert r.rc == 0, r.vars["again"]["msg"]
    assert [x["outcome"] for x in r.vars["again"]["results"]] == ["unchanged", "unchanged"]


def test_missing_snapshot_and_missing_vm_fail_by_name(kubeapi, playbook):
    ns = unique_namespace(kubeapi, "rsmiss")
    for name in ("a", "b"):
        kubeapi.apply_object(vm_manifest(name, ns, run_strategy="Halted"))
    snapshot(kubeapi, ns, "a", "old")
    wait_snapshots(kubeapi, ns, ["a-old"])
    mark = kubeapi.mark()
    r = playbook([restore_task("named", ignore_errors=True, namespace=ns, names=["a", "b", "ghost"], snapshot="old",
                               wait=True),
                  restore_task("newest", ignore_errors=True, namespace=ns, names=["b"]),
                  restore_task("bad", ignore_errors=True, namespace=ns, names=["a", "b"], snapshot_name="a-old")],
                 register=["named", "newest", "bad"])
    named = r.vars["named"]
    assert named["failed"] is True
    out = dict((x["name"], x) for x in named["results"])
    assert out["a"]["outcome"] == "restored"
    assert out["b"]["outcome"] == "failed" and "has no VirtualMachineSnapshot b-old (its snapshots: none)" in out["b"]["msg"]
    assert out["ghost"]["outcome"] == "failed" and "does not exist" in out["ghost"]["msg"]
    assert "b has no snapshot ready to use" in r.vars["newest"]["msg"]
    assert "kubevirt_vm_snapshot" in r.vars["newest"]["msg"]
    bad = r.vars["bad"]
    assert bad["failed"] is True and "snapshot_name" in bad["msg"] and "exactly one name" in bad["msg"]
    assert [e["method"] for e in writes(in_ns(kubeapi.requests(since=mark), ns))] == ["POST"]   # a's restore only


def test_when_running_wait_times_out_then_a_rerun_creates_no_second_restore(kubeapi, playbook):
    ns = unique_namespace(kubeapi, "rswait")
    kubeapi.apply_object(vm_manifest("app", ns, run_strategy="Always"))
    kubeapi.wait_for(VMS % ns + "/app", lambda o: (o.get("status") or {}).get("printableStatus") == "Running", timeout=30)
    snapshot(kubeapi, ns, "app", "s1")
    wait_snapshots(kubeapi, ns, ["app-s1"])
    r = playbook([restore_task("waiting", ignore_errors=True, namespace=ns, names=["app"], snapshot="s1",
                               when_running="wait", wait=True, wait_timeout=2)], register=["waiting"])
    res = r.vars["waiting"]["results"][0]
    assert r.vars["waiting"]["failed"] is True and res["changed"] is True and res["outcome"] == "failed"
    assert "not complete after 2s: Waiting for target VM to be powered off" in res["msg"]
    assert res["stopped"] is False and res["restarted"] is False
    assert kubeapi.get_object(VMS % ns + "/app")["spec"]["runStrategy"] == "Always"    # nobody stopped it
    # Somebody stops the VM; the same task again takes the restore in progress over (no second restore).
    kubeapi.apply_object({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": "app", "namespace": ns},
                          "spec": {"runStrategy": "Halted"}}, field_manager="someone")
    mark = kubeapi.mark()
    r = playbook([restore_task("again", namespace=ns, names=["app"], snapshot="s1", when_running="wait", wait=True,
                               wait_timeout=30)], register=["again"])
    assert r.rc == 0, r.vars["again"]["msg"]
    res = r.vars["again"]["results"][0]
    # KubeVirt may finish the restore before the task reads it (unchanged: the VM holds the snapshot) or after
    # (restored: the task waited for the restore it took over); never a second restore.
    assert res["changed"] is False and res["outcome"] in ("restored", "unchanged"), res
    if res["outcome"] == "restored":
        assert res["restore"] == "app-s1-restore-1"
    assert writes(in_ns(kubeapi.requests(since=mark), ns)) == []
    assert [x["metadata"]["name"] for x in restores(kubeapi, ns)] == ["app-s1-restore-1"]
