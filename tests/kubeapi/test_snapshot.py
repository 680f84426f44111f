"""The simulated KubeVirt v1.9.0 snapshot and restore controllers (controllers/snapshot.py), through the client."""
import json
import time

import pytest
from kubernetes import client

from .test_client import vm_body
from .test_virt import get_vm, get_vmi, vm_ready, wait

G, V = "snapshot.kubevirt.io", "v1beta1"


def custom(api_client):
    return client.CustomObjectsApi(api_client)


def get(api_client, ns, plural, name):
    try:
        return custom(api_client).get_namespaced_custom_object(G, V, ns, plural, name)
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise


def snapshot_body(name, vm, **spec):
    body = {"apiVersion": "%s/%s" % (G, V), "kind": "VirtualMachineSnapshot", "metadata": {"name": name},
            "spec": {"source": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": vm}}}
    body["spec"].update(spec)
    return body


def restore_body(name, vm, snapshot, **spec):
    body = {"apiVersion": "%s/%s" % (G, V), "kind": "VirtualMachineRestore", "metadata": {"name": name},
            "spec": {"target": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": vm},
                     "virtualMachineSnapshotName": snapshot}}
    body["spec"].update(spec)
    return body


def create(api_client, ns, plural, body):
    return custom(api_client).create_namespaced_custom_object(G, V, ns, plural, body)


def conds(obj):
    return {c["type"]: (c["status"], c.get("reason")) for c in (obj.get("status") or {}).get("conditions") or []}


def snapshot_ready(api_client, ns, name):
    snap = get(api_client, ns, "virtualmachinesnapshots", name)
    st = (snap or {}).get("status") or {}
    return snap if st.get("phase") == "Succeeded" and st.get("readyToUse") is True else None


def create_vm(api_client, ns, body):
    custom(api_client).create_namespaced_custom_object("kubevirt.io", "v1", ns, "virtualmachines", body)


def pvc_vm(name):
    body = vm_body(name)
    body["spec"]["template"]["spec"]["volumes"] = [
        {"name": "root", "dataVolume": {"name": name + "-root"}},
        {"name": "data", "persistentVolumeClaim": {"claimName": name + "-data"}},
        {"name": "cloudinit", "cloudInitNoCloud": {"userData": "#cloud-config\n"}}]
    return body


def test_snapshot_of_a_stopped_vm_with_a_container_disk(api_client, ns):
    create_vm(api_client, ns, vm_body("vm1"))
    vm = get_vm(api_client, ns, "vm1")
    create(api_client, ns, "virtualmachinesnapshots", snapshot_body("snap1", "vm1"))
    # While in progress the VM is locked: snapshotInProgress and the source finalizer.
    locked = wait(lambda: (get_vm(api_client, ns, "vm1").get("status") or {}).get("snapshotInProgress") == "snap1"
                  and get_vm(api_client, ns, "vm1"), what="VM locked")
    assert "snapshot.kubevirt.io/snapshot-source-protection" in locked["metadata"]["finalizers"]
    snap = wait(lambda: snapshot_ready(api_client, ns, "snap1"), what="snapshot ready")
    st = snap["status"]
    assert snap["metadata"]["finalizers"] == ["snapshot.kubevirt.io/vmsnapshot-protection"]
    assert st["sourceUID"] == vm["metadata"]["uid"]
    assert st["virtualMachineSnapshotContentName"] == "vmsnapshot-content-%s" % snap["metadata"]["uid"]
    assert st["creationTime"]
    assert st["snapshotVolumes"] == {"excludedVolumes": ["root"]}
    assert "indications" not in st   # offline
    c = conds(snap)
    assert c["Ready"] == ("True", "Ready") and c["Progressing"] == ("False", "Operation complete")
    assert "Failure" not in c
    content = get(api_client, ns, "virtualmachinesnapshotcontents", st["virtualMachineSnapshotContentName"])
    assert content["metadata"]["finalizers"] == ["snapshot.kubevirt.io/vmsnapshotcontent-protection"]
    assert content["spec"]["virtualMachineSnapshotName"] == "snap1"
    copy = content["spec"]["source"]["virtualMachine"]
    assert copy["metadata"]["name"] == "vm1" and "managedFields" not in copy["metadata"]
    assert copy["spec"]["template"]["spec"]["volumes"] == vm["spec"]["template"]["spec"]["volumes"]
    assert "volumeBackups" not in content["spec"]
    assert content["status"]["readyToUse"] is True and content["status"]["creationTime"] == st["creationTime"]
    # Unlocked once done.
    unlocked = wait(lambda: "snapshotInProgress" not in (get_vm(api_client, ns, "vm1").get("status") or {}) and
                    get_vm(api_client, ns, "vm1"), what="VM unlocked")
    assert "snapshot.kubevirt.io/snapshot-source-protection" not in (unlocked["metadata"].get("finalizers") or [])


def test_snapshot_of_pvc_and_datavolume_volumes_has_volume_backups(api_client, ns):
    create_vm(api_client, ns, pvc_vm("vm2"))
    create(api_client, ns, "virtualmachinesnapshots", snapshot_body("snap2", "vm2"))
    snap = wait(lambda: snapshot_ready(api_client, ns, "snap2"), what="snapshot ready")
    uid = snap["metadata"]["uid"]
    assert snap["status"]["snapshotVolumes"] == {"includedVolumes": ["root", "data"], "excludedVolumes": ["cloudinit"]}
    content = get(api_client, ns, "virtualmachinesnapshotcontents", "vmsnapshot-content-" + uid)
    backups = {b["volumeName"]: b for b in content["spec"]["volumeBackups"]}
    assert sorted(backups) == ["data", "root"]
    assert backups["root"]["volumeSnapshotName"] == "vmsnapshot-%s-volume-root" % uid
    assert backups["data"]["persistentVolumeClaim"]["metadata"]["name"] == "vm2-data"
    assert [s["volumeSnapshotName"] for s in content["status"]["volumeSnapshotStatus"]] == [
        b["volumeSnapshotName"] for b in content["spec"]["volumeBackups"]]
    assert all(s["readyToUse"] is True for s in content["status"]["volumeSnapshotStatus"])


def test_online_snapshot_indications(api_client, ns):
    create_vm(api_client, ns, vm_body("vm3", run_strategy="Always"))
    wait(lambda: vm_ready(api_client, ns, "vm3"), what="VM running")
    create(api_client, ns, "virtualmachinesnapshots", snapshot_body("snap3", "vm3"))
    snap = wait(lambda: snapshot_ready(api_client, ns, "snap3"), what="snapshot ready")
    assert snap["status"]["indications"] == ["GuestAgent", "Online"]
    assert {i["indication"] for i in snap["status"]["sourceIndications"]} == {"GuestAgent", "Online"}
    assert all(i["message"] for i in snap["status"]["sourceIndications"])
    # Without the guest agent's condition: NoGuestAgent.
    vmi = get_vmi(api_client, ns, "vm3")
    vmi["status"]["conditions"] = [c for c in vmi["status"]["conditions"] if c["type"] != "AgentConnected"]
    # The VMI CRD has no status subresource: the whole object is replaced.
    custom(api_client).replace_namespaced_custom_object("kubevirt.io", "v1", ns, "virtualmachineinstances", "vm3", vmi)
    create(api_client, ns, "virtualmachinesnapshots", snapshot_body("snap3b", "vm3"))
    snap = wait(lambda: snapshot_ready(api_client, ns, "snap3b"), what="snapshot ready")
    assert snap["status"]["indications"] == ["NoGuestAgent", "Online"]


def test_delete_snapshot_cascades_to_content_unless_retained(api_client, ns):
    create_vm(api_client, ns, vm_body("vm4"))
    create(api_client, ns, "virtualmachinesnapshots", snapshot_body("del", "vm4"))
    create(api_client, ns, "virtualmachinesnapshots", snapshot_body("keep", "vm4", deletionPolicy="Retain"))
    deleted = wait(lambda: snapshot_ready(api_client, ns, "del"), what="snapshot ready")
    kept = wait(lambda: snapshot_ready(api_client, ns, "keep"), what="snapshot ready")
    for snap in (deleted, kept):
        custom(api_client).delete_namespaced_custom_object(G, V, ns, "virtualmachinesnapshots",
                                                           snap["metadata"]["name"])
    for snap in (deleted, kept):
        wait(lambda: get(api_client, ns, "virtualmachinesnapshots", snap["metadata"]["name"]) is None,
             what="snapshot gone")
    wait(lambda: get(api_client, ns, "virtualmachinesnapshotcontents",
                     deleted["status"]["virtualMachineSnapshotContentName"]) is None, what="content gone")
    retained = get(api_client, ns, "virtualmachinesnapshotcontents", kept["status"]["virtualMachineSnapshotContentName"])
    assert retained is not None and not retained["metadata"].get("finalizers")
    assert "snapshotInProgress" not in (get_vm(api_client, ns, "vm4").get("status") or {})


def test_snapshot_of_a_missing_vm_stays_in_progress_then_fails_at_its_deadline(api_client, ns):
    create(api_client, ns, "virtualmachinesnapshots", snapshot_body("lost", "nope", failureDeadline="2s"))
    snap = wait(lambda: (get(api_client, ns, "virtualmachinesnapshots", "lost").get("status") or {}).get("phase")
                and get(api_client, ns, "virtualmachinesnapshots", "lost"), what="status")
    assert snap["status"]["phase"] == "InProgress" and snap["status"]["readyToUse"] is False
    assert conds(snap)["Progressing"] == ("False", "Source does not exist")
    assert conds(snap)["Ready"] == ("False", "Not ready")
    assert "sourceUID" not in snap["status"]
    snap = wait(lambda: (get(api_client, ns, "virtualmachinesnapshots", "lost")["status"].get("phase") == "Failed")
                and get(api_client, ns, "virtualmachinesnapshots", "lost"), timeout=8, what="Failed")
    c = conds(snap)
    assert c["Failure"] == ("True", "snapshot deadline exceeded")
    assert c["Progressing"] == ("False", "Operation failed")
    assert get(api_client, ns, "virtualmachinesnapshotcontents", "vmsnapshot-content-" + snap["metadata"]["uid"]) is None


def test_deadline_fails_a_snapshot_blocked_by_another_one(api_client, ns):
    """A VM locked by another snapshot (status.snapshotInProgress) keeps the second one unlocked until its deadline."""
    create_vm(api_client, ns, vm_body("vm5"))
    vm = wait(lambda: get_vm(api_client, ns, "vm5").get("status") and get_vm(api_client, ns, "vm5"), what="status")
    vm["status"]["snapshotInProgress"] = "other"
    custom(api_client).replace_namespaced_custom_object_status("kubevirt.io", "v1", ns, "virtualmachines", "vm5", vm)
    create(api_client, ns, "virtualmachinesnapshots", snapshot_body("late", "vm5", failureDeadline="1500ms"))
    snap = wait(lambda: conds(get(api_client, ns, "virtualmachinesnapshots", "late")).get("Progressing", ("", ""))[1]
                .startswith("Source not locked") and get(api_client, ns, "virtualmachinesnapshots", "late"),
                what="not locked")
    assert conds(snap)["Progressing"] == ("False", 'Source not locked snapshot "other" in progress')
    snap = wait(lambda: (get(api_client, ns, "virtualmachinesnapshots", "late")["status"].get("phase") == "Failed")
                and get(api_client, ns, "virtualmachinesnapshots", "late"), timeout=8, what="Failed")
    assert conds(snap)["Failure"] == ("True", "snapshot deadline exceeded")
    assert get_vm(api_client, ns, "vm5")["status"]["snapshotInProgress"] == "other"


def restore_done(api_client, ns, name):
    r = get(api_client, ns, "virtualmachinerestores", name)
    return r if ((r or {}).get("status") or {}).get("complete") is True else None


def test_restore_of_a_stopped_vm_restores_its_spec(api_client, ns):
    create_vm(api_client, ns, pvc_vm("vm6"))
    create(api_client, ns, "virtualmachinesnapshots", snapshot_body("s6", "vm6"))
    wait(lambda: snapshot_ready(api_client, ns, "s6"), what="snapshot ready")
    wait(lambda: "snapshotInProgress" not in (get_vm(api_client, ns, "vm6").get("status") or {}), what="unlocked")
    custom(api_client).patch_namespaced_custom_object("kubevirt.io", "v1", ns, "virtualmachines", "vm6", {
        "spec": {"template": {"spec": {"domain": {"memory": {"guest": "512Mi"}}}}}})
    assert get_vm(api_client, ns, "vm6")["spec"]["template"]["spec"]["domain"]["memory"]["guest"] == "512Mi"
    restore = create(api_client, ns, "virtualmachinerestores", restore_body("r6", "vm6", "s6"))
    seen = set()

    def progress():
        vm = get_vm(api_client, ns, "vm6")
        if (vm.get("status") or {}).get("restoreInProgress") == "r6":
            seen.add("restoreInProgress")
        return restore_done(api_client, ns, "r6")
    done = wait(progress, what="restore complete")
    assert "restoreInProgress" in seen
    st = done["status"]
    assert st["restoreTime"]
    c = conds(done)
    assert c["Ready"] == ("True", "Operation complete") and c["Progressing"] == ("False", "Operation complete")
    assert done["metadata"]["finalizers"] == ["snapshot.kubevirt.io/vmrestore-protection"]
    vm = get_vm(api_client, ns, "vm6")
    assert done["metadata"]["ownerReferences"][0]["uid"] == vm["metadata"]["uid"]
    restores = {r["volumeName"]: r for r in st["restores"]}
    assert restores["data"]["persistentVolumeClaim"] == "restore-%s-data" % restore["metadata"]["uid"]
    tspec = vm["spec"]["template"]["spec"]
    assert tspec["domain"]["memory"]["guest"] == "128Mi"
    claims = {v["name"]: v.get("persistentVolumeClaim", {}).get("claimName") for v in tspec["volumes"]}
    assert claims["data"] == "restore-%s-data" % restore["metadata"]["uid"]
    assert vm["spec"]["runStrategy"] == "Halted"
    assert vm["metadata"]["annotations"]["restore.kubevirt.io/lastRestoreUID"] == "r6-" + restore["metadata"]["uid"]
    assert "restoreInProgress" not in (vm.get("status") or {})
    # A target that does not exist is created from the snapshot's copy, stopped; the next sync makes it the owner.
    r2 = create(api_client, ns, "virtualmachinerestores", restore_body("r6b", "vm6-copy", "s6"))
    done = wait(lambda: restore_done(api_client, ns, "r6b"), what="restore to a new VM complete")
    copy = get_vm(api_client, ns, "vm6-copy")
    assert done["metadata"]["ownerReferences"][0]["uid"] == copy["metadata"]["uid"]
    assert copy["spec"]["runStrategy"] == "Halted"
    assert copy["metadata"]["annotations"]["restore.kubevirt.io/lastRestoreUID"] == "r6b-" + r2["metadata"]["uid"]
    assert copy["spec"]["template"]["spec"]["domain"]["memory"]["guest"] == "128Mi"
    claims = {v["name"]: v.get("persistentVolumeClaim", {}).get("claimName") for v in copy["spec"]["template"]["spec"]["volumes"]}
    assert claims["data"] == "restore-%s-data" % r2["metadata"]["uid"]


@pytest.mark.parametrize("policy", ["FailImmediate", "WaitEventually", "StopTarget"])
def test_restore_of_a_running_vm_per_target_readiness_policy(api_client, ns, policy):
    create_vm(api_client, ns, vm_body("vm7", run_strategy="Always"))
    wait(lambda: vm_ready(api_client, ns, "vm7"), what="VM running")
    create(api_client, ns, "virtualmachinesnapshots", snapshot_body("s7", "vm7"))
    wait(lambda: snapshot_ready(api_client, ns, "s7"), what="snapshot ready")
    create(api_client, ns, "virtualmachinerestores", restore_body("r7", "vm7", "s7", targetReadinessPolicy=policy))
    if policy == "StopTarget":
        done = wait(lambda: restore_done(api_client, ns, "r7"), what="restore complete")
        assert conds(done)["Ready"] == ("True", "Operation complete")
        vm = get_vm(api_client, ns, "vm7")
        assert vm["spec"]["runStrategy"] == "Halted" and get_vmi(api_client, ns, "vm7") is None
        return
    reason = {"FailImmediate": "Restore target VMI must be powered off before restore operation",
              "WaitEventually": "Waiting for target VM to be powered off. Please stop the restore target to proceed "
                                "with restore"}[policy]
    r = wait(lambda: conds(get(api_client, ns, "virtualmachinerestores", "r7")).get("Ready") == ("False", reason)
             and get(api_client, ns, "virtualmachinerestores", "r7"), what=reason)
    assert r["status"]["complete"] is False
    assert ("Failure" in conds(r)) == (policy == "FailImmediate")
    time.sleep(0.5)
    assert get_vmi(api_client, ns, "vm7") is not None   # nobody stopped it
    assert "restoreInProgress" not in (get_vm(api_client, ns, "vm7").get("status") or {})
    if policy == "WaitEventually":   # stopping the VM lets it go on
        custom(api_client).patch_namespaced_custom_object("kubevirt.io", "v1", ns, "virtualmachines", "vm7",
                                                          {"spec": {"runStrategy": "Halted"}})
        wait(lambda: restore_done(api_client, ns, "r7"), what="restore complete")


def test_restore_of_a_missing_snapshot_reports_the_error(api_client, ns):
    create_vm(api_client, ns, vm_body("vm8"))
    create(api_client, ns, "virtualmachinerestores", restore_body("r8", "vm8", "ghost"))
    message = "VMSnapshot %s/ghost does not exist" % ns
    r = wait(lambda: conds(get(api_client, ns, "virtualmachinerestores", "r8")).get("Ready") == ("False", message)
             and get(api_client, ns, "virtualmachinerestores", "r8"), what=message)
    assert conds(r)["Progressing"] == ("False", message) and "Failure" not in conds(r)
    assert r["status"]["complete"] is False
    # Deleting it removes the finalizer.
    custom(api_client).delete_namespaced_custom_object(G, V, ns, "virtualmachinerestores", "r8")
    wait(lambda: get(api_client, ns, "virtualmachinerestores", "r8") is None, what="restore gone")


def test_restore_webhook_refuses_a_second_restore_of_a_target_until_the_first_is_complete(api_client, ns):
    """pkg/storage/admitters/vmrestore.go:Admit: a restore of the same target that is not complete (failed too)."""
    create_vm(api_client, ns, vm_body("vm9", run_strategy="Always"))
    wait(lambda: vm_ready(api_client, ns, "vm9"), what="VM running")
    create(api_client, ns, "virtualmachinesnapshots", snapshot_body("s9", "vm9"))
    wait(lambda: snapshot_ready(api_client, ns, "s9"), what="snapshot ready")
    create(api_client, ns, "virtualmachinerestores", restore_body("r9", "vm9", "s9", targetReadinessPolicy="FailImmediate"))
    wait(lambda: "Failure" in conds(get(api_client, ns, "virtualmachinerestores", "r9")), what="r9 failed")
    with pytest.raises(client.ApiException) as err:
        create(api_client, ns, "virtualmachinerestores", restore_body("r9b", "vm9", "s9"))
    assert err.value.status == 422
    assert json.loads(err.value.body)["message"] == (
        'admission webhook "virtualmachinerestore-validator.snapshot.kubevirt.io" denied the request: '
        'VirtualMachineRestore "r9" in progress')
    body = restore_body("r9c", "vm9", "s9")
    del body["spec"]["target"]["apiGroup"]
    with pytest.raises(client.ApiException) as err:
        create(api_client, ns, "virtualmachinerestores", body)
    assert "missing apiGroup" in err.value.body
    custom(api_client).delete_namespaced_custom_object(G, V, ns, "virtualmachinerestores", "r9")
    wait(lambda: get(api_client, ns, "virtualmachinerestores", "r9") is None, what="r9 gone")
    custom(api_client).patch_namespaced_custom_object("kubevirt.io", "v1", ns, "virtualmachines", "vm9",
                                                      {"spec": {"runStrategy": "Halted"}})
    wait(lambda: get_vmi(api_client, ns, "vm9") is None, what="VM stopped")
    create(api_client, ns, "virtualmachinerestores", restore_body("r9b", "vm9", "s9"))
    wait(lambda: restore_done(api_client, ns, "r9b"), what="r9b complete")
