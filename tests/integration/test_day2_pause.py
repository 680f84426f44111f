"""kubevirt_vm state=paused through ansible-playbook against the API emulator: five VMs paused in one task (one PUT
of the VMI pause subresource each), a re-run and an exact check mode that send nothing, started unpausing, stopped and
restarted on paused VMs, a stopped VM refused without a request, and kubevirt_vm_info showing the pause.

Two playbook runs; the request log is read between them, so each run's writes are counted exactly."""
from tests.integration.conftest import unique_namespace, vm_manifest

VMS = "/apis/kubevirt.io/v1/namespaces/%s/virtualmachines"
VMIS = "/apis/kubevirt.io/v1/namespaces/%s/virtualmachineinstances"
VMI_SUB = "/apis/subresources.kubevirt.io/v1/namespaces/%s/virtualmachineinstances/%s/%s"
VM_SUB = "/apis/subresources.kubevirt.io/v1/namespaces/%s/virtualmachines/%s/%s"
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
NAMES = ["p%d" % i for i in range(5)]


def vm_task(register, ignore_errors=False, check_mode=None, **args):
    task = {"name": register, "virtfleet.kubevirt.kubevirt_vm": args, "register": register}
    if ignore_errors:
        task["ignore_errors"] = True
    if check_mode is not None:
        task["check_mode"] = check_mode
    return task


def writes(kubeapi, mark):
    """The writes since `mark` as (method, path) (the test itself only reads in between)."""
    return sorted((e["method"], e["path"]) for e in kubeapi.requests(since=mark) if e["method"] in WRITE_METHODS)


def paused(vmi):
    return any(c.get("type") == "Paused" and c.get("status") == "True"
               for c in ((vmi or {}).get("status") or {}).get("conditions") or [])


def running(vmi):
    return (vmi or {}).get("status", {}).get("phase") == "Running" and not paused(vmi)


def test_pause_a_batch_rerun_check_mode_unpause_and_a_stopped_vm(kubeapi, playbook):
    ns = unique_namespace(kubeapi, "pause")
    for name in NAMES:
        kubeapi.apply_object(vm_manifest(name, ns))
    kubeapi.apply_object(vm_manifest("off", ns, run_strategy="Halted"))
    for name in NAMES:
        kubeapi.wait_for(VMIS % ns + "/" + name, lambda o: bool(o) and o.get("status", {}).get("phase") == "Running")
    items = [{"name": n} for n in NAMES]

    mark = kubeapi.mark()
    run = playbook([
        vm_task("pause", namespace=ns, vms=items, state="paused", wait=True, wait_timeout=30),
        vm_task("pause_again", namespace=ns, vms=items, state="paused", wait=True, wait_timeout=30),
        # present leaves the pause alone; its wait accepts a paused VM (which is never Ready).
        vm_task("present_wait", name="p2", namespace=ns, wait=True, wait_timeout=10),
        # Check mode on a mix: p0 would be unpaused, p1 stays paused, p2 would be stopped, p3 is left as it is.
        vm_task("predict", check_mode=True, namespace=ns, vms=[
            {"name": "p0", "state": "started"}, {"name": "p1", "state": "paused"},
            {"name": "p2", "state": "stopped"}, {"name": "p3"}]),
        {"name": "info", "virtfleet.kubevirt.kubevirt_vm_info": {"namespace": ns}, "register": "info"},
    ], register=["pause", "pause_again", "present_wait", "predict", "info"])
    assert run.rc == 0, run
    v = run.vars
    res = v["pause"]
    assert res["changed"] is True
    assert [(r["name"], r["action"], r["changed"]) for r in res["results"]] == [(n, "pause", True) for n in NAMES]
    assert all(r["result"]["status"]["printableStatus"] == "Paused" for r in res["results"])
    again = v["pause_again"]
    assert again["changed"] is False and all("action" not in r for r in again["results"])
    assert v["present_wait"]["changed"] is False and v["present_wait"]["result"]["status"]["printableStatus"] == "Paused"
    predict = v["predict"]
    assert predict["changed"] is True
    assert [(r["name"], r.get("action"), r["changed"]) for r in predict["results"]] == [
        ("p0", "unpause", True), ("p1", None, False), ("p2", "stop", True), ("p3", None, False)]
    status = dict((o["metadata"]["name"], o["status"].get("printableStatus")) for o in v["info"]["resources"])
    assert status == dict([(n, "Paused") for n in NAMES] + [("off", "Stopped")])
    # Request budget: one PUT of the pause subresource per VM; the re-run and check mode wrote nothing.
    assert writes(kubeapi, mark) == sorted(("PUT", VMI_SUB % (ns, n, "pause")) for n in NAMES)
    vmis = dict((n, kubeapi.get_object(VMIS % ns + "/" + n)) for n in NAMES)
    assert all(paused(vmi) for vmi in vmis.values())
    cond = [c for c in vmis["p0"]["status"]["conditions"] if c["type"] == "Paused"][0]
    assert cond["reason"] == "PausedByUser"
    # A paused VMI is not Ready (its pod's readiness gate kubevirt.io/virtual-machine-unpaused is False): state=paused
    # waits for Paused, never for Ready, and present with wait on a paused VM would otherwise hang.
    ready = [c for c in vmis["p0"]["status"]["conditions"] if c["type"] == "Ready"][0]
    assert (ready["status"], ready["reason"]) == ("False", "ReadinessGatesNotReady")

    mark = kubeapi.mark()
    uid3 = vmis["p3"]["metadata"]["uid"]
    run = playbook([
        vm_task("resume", namespace=ns, wait=True, wait_timeout=30, vms=[
            {"name": "p0", "state": "started"}, {"name": "p1", "state": "started"},
            {"name": "p3", "state": "restarted"}, {"name": "p4", "state": "stopped"}]),
        vm_task("off", ignore_errors=True, name="off", namespace=ns, state="paused"),
    ], register=["resume", "off"])
    v = run.vars
    res = v["resume"]
    assert res["changed"] is True and not res.get("failed"), res
    assert [(r["name"], r["action"]) for r in res["results"]] == [
        ("p0", "unpause"), ("p1", "unpause"), ("p3", "restart"), ("p4", "stop")]
    assert [r["result"]["status"]["printableStatus"] for r in res["results"]] == ["Running", "Running", "Running",
                                                                                  "Stopped"]
    off = v["off"]
    assert off["failed"] is True and off["changed"] is False
    assert off["msg"] == ("VM %s/off is not running (Stopped), so it cannot be paused; start it first "
                          "(state=started with wait=true), then pause it." % ns)
    assert writes(kubeapi, mark) == sorted([("PUT", VMI_SUB % (ns, "p0", "unpause")), ("PUT", VMI_SUB % (ns, "p1", "unpause")),
                                            ("PUT", VM_SUB % (ns, "p3", "restart")), ("PUT", VM_SUB % (ns, "p4", "stop"))])
    assert running(kubeapi.get_object(VMIS % ns + "/p0")) and running(kubeapi.get_object(VMIS % ns + "/p1"))
    new3 = kubeapi.get_object(VMIS % ns + "/p3")
    assert new3["metadata"]["uid"] != uid3 and running(new3)      # a restart of a paused VM runs unpaused
    assert kubeapi.get_object(VMIS % ns + "/p4") is None
    assert paused(kubeapi.get_object(VMIS % ns + "/p2"))
