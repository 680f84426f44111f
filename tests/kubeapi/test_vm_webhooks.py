"""The emulated VM admission webhooks (controllers/webhooks.py) and RestartRequired, through plain HTTP."""
import time

VMS = "/apis/kubevirt.io/v1/namespaces/%s/virtualmachines"
VMIS = "/apis/kubevirt.io/v1/namespaces/%s/virtualmachineinstances"


def vm(name, **tspec):
    base = {"domain": {"devices": {"disks": [{"name": "root", "disk": {"bus": "virtio"}}],
                                   "interfaces": [{"name": "default", "masquerade": {}}]}},
            "networks": [{"name": "default", "pod": {}}],
            "volumes": [{"name": "root", "containerDisk": {"image": "img"}},
                        {"name": "scratch", "emptyDisk": {"capacity": "1Gi"}}]}
    base.update(tspec)
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": name},
            "spec": {"runStrategy": "Halted", "template": {"spec": base}}}


def apply(kubeapi, ns, obj, dry_run=False):
    q = "?fieldManager=test&force=true" + ("&dryRun=All" if dry_run else "")
    return kubeapi.http("PATCH", VMS % ns + "/" + obj["metadata"]["name"] + q, obj,
                        content_type="application/apply-patch+yaml")


def test_defaults_macs_and_default_disks_are_added_and_kept(kubeapi, ns):
    status, first, _ = apply(kubeapi, ns, vm("a"))
    assert status == 201
    t = first["spec"]["template"]["spec"]
    mac = t["domain"]["devices"]["interfaces"][0]["macAddress"]
    assert mac.startswith("02:") and t["architecture"] == "amd64" and t["domain"]["machine"]["type"] == "q35"
    assert t["domain"]["firmware"]["uuid"]
    assert [d["name"] for d in t["domain"]["devices"]["disks"]] == ["root", "scratch"]
    assert "kubemacpool.io/transaction-timestamp" in first["metadata"]["annotations"]
    before = kubeapi.get_object(VMS % ns + "/a")
    status, again, _ = apply(kubeapi, ns, vm("a"))
    assert status == 200
    # The same apply again is a no-op: no new generation, no new kubemacpool transaction timestamp.
    assert again["metadata"]["generation"] == before["metadata"]["generation"] == 1
    assert again["metadata"]["annotations"] == before["metadata"]["annotations"]
    assert again["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"][0]["macAddress"] == mac


def test_validation_names_the_field(kubeapi, ns):
    bad = vm("b")
    bad["spec"]["template"]["spec"]["domain"]["devices"]["disks"].append({"name": "ghost", "disk": {}})
    status, body, _ = apply(kubeapi, ns, bad, dry_run=True)
    assert status == 422 and "spec.template.spec.domain.devices.disks[1].name 'ghost' not found" in body["message"]
    both = vm("c")
    both["spec"]["running"] = True
    status, body, _ = apply(kubeapi, ns, both)
    assert status == 422 and "mutually exclusive" in body["message"]


def test_restart_required_on_template_change_of_a_running_vm(kubeapi, ns):
    running = vm("r")
    running["spec"]["runStrategy"] = "Always"
    apply(kubeapi, ns, running)
    deadline = time.monotonic() + 10
    while kubeapi.get_object(VMIS % ns + "/r") is None and time.monotonic() < deadline:
        time.sleep(0.05)
    running["spec"]["template"]["spec"]["domain"]["cpu"] = {"cores": 2}
    status, body, _ = apply(kubeapi, ns, running)
    conds = {c["type"]: c["status"] for c in body["status"]["conditions"]}
    assert status == 200 and conds.get("RestartRequired") == "True"
