"""kubevirt_vm through ansible-playbook against the API emulator: every state, check mode, diff, idempotent
re-runs with zero write requests, 100 VMs in one task, a VM the API rejects, and removal of a dropped field."""
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")
VMS = "/apis/kubevirt.io/v1/namespaces/%s/virtualmachines"
VMIS = "/apis/kubevirt.io/v1/namespaces/%s/virtualmachineinstances"
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def play(env, tmp_path, tasks, check=False, diff=False, name="play"):
    """Run `tasks` (each with a `register`) in one ansible-playbook run; return {register name: result}."""
    names = [t["register"] for t in tasks if "register" in t]
    out = tmp_path / ("%s-%s.json" % (name, uuid.uuid4().hex[:6]))
    dump = {"name": "collect", "ansible.builtin.copy": {
        "content": "{{ {%s} | to_json }}" % ", ".join("'%s': %s" % (n, n) for n in names), "dest": str(out)},
        "check_mode": False, "diff": False}
    playbook = [{"hosts": "localhost", "gather_facts": False, "tasks": list(tasks) + [dump]}]
    path = tmp_path / ("%s.yml" % name)
    path.write_text(yaml.safe_dump(playbook, sort_keys=False))
    cmd = [ANSIBLE_PLAYBOOK, "-i", "localhost,", "-c", "local", "-e", "ansible_python_interpreter=%s" % sys.executable,
           str(path)]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    if not out.exists():
        raise AssertionError("ansible-playbook failed (%s):\n%s\n%s" % (proc.returncode, proc.stdout[-6000:], proc.stderr[-3000:]))
    return json.loads(out.read_text())


def vm_task(register, ignore_errors=False, **args):
    task = {"name": register, "virtfleet.kubevirt.kubevirt_vm": args, "register": register}
    if ignore_errors:
        task["ignore_errors"] = True
    return task


def vmi_info(register, namespace, name):
    return {"name": register, "virtfleet.kubevirt.kubevirt_vmi_info": {"namespace": namespace, "name": name},
            "register": register}


def writes(entries):
    return [e for e in entries if e["method"] in WRITE_METHODS]


@pytest.fixture
def ns(kubeapi):
    name = "vm-" + uuid.uuid4().hex[:8]
    kubeapi.apply_object({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


def web(ns, **kw):
    args = dict(name="web", namespace=ns, cpu={"cores": 1}, memory="512Mi",
                boot_disk={"container_image": "quay.io/containerdisks/fedora:41"},
                cloud_init={"user": "fedora", "ssh_authorized_keys": ["ssh-ed25519 AAAAC3Nza test@example"]})
    args.update(kw)
    return args


def test_every_state_with_exact_waits(kubeapi, ansible_env, tmp_path, ns):
    r = play(ansible_env, tmp_path, [
        vm_task("created", wait=True, **web(ns)),
        vmi_info("vmi1", ns, "web"),
        vm_task("stopped", state="stopped", wait=True, name="web", namespace=ns),
        vmi_info("vmi2", ns, "web"),
        vm_task("stopped_again", state="stopped", name="web", namespace=ns),
        vm_task("started", state="started", wait=True, name="web", namespace=ns),
        vmi_info("vmi3", ns, "web"),
        vm_task("started_again", state="started", name="web", namespace=ns),
        vm_task("restarted", state="restarted", wait=True, name="web", namespace=ns),
        vmi_info("vmi4", ns, "web"),
        vm_task("absent", state="absent", wait=True, name="web", namespace=ns),
        vm_task("absent_again", state="absent", name="web", namespace=ns),
    ])
    c = r["created"]
    assert c["changed"] and c["method"] == "create"
    assert c["result"]["spec"]["runStrategy"] == "Always" and "running" not in c["result"]["spec"]
    assert {"type": "Ready", "status": "True"}.items() <= [x for x in c["result"]["status"]["conditions"]
                                                           if x["type"] == "Ready"][0].items()
    uid1 = r["vmi1"]["resources"][0]["metadata"]["uid"]
    assert r["stopped"]["changed"] and r["stopped"]["action"] == "stop"
    assert r["vmi2"]["resources"] == []                                   # stopped waits until the VMI is gone
    assert r["stopped_again"]["changed"] is False and "action" not in r["stopped_again"]
    assert r["started"]["changed"] and r["started"]["action"] == "start"
    assert r["started"]["result"]["status"]["ready"] is True
    uid3 = r["vmi3"]["resources"][0]["metadata"]["uid"]
    assert uid3 != uid1
    assert r["started_again"]["changed"] is False
    assert r["restarted"]["changed"] and r["restarted"]["action"] == "restart"
    vmi4 = r["vmi4"]["resources"][0]
    assert vmi4["metadata"]["uid"] != uid3                                # restarted waits for a new VMI ...
    assert [x["status"] for x in vmi4["status"]["conditions"] if x["type"] == "Ready"] == ["True"]  # ... Ready
    assert r["absent"]["changed"] and r["absent"]["method"] == "delete"
    assert kubeapi.get_object(VMS % ns + "/web") is None
    assert r["absent_again"]["changed"] is False


def test_check_mode_uses_dry_runs_and_predicts_lifecycle(kubeapi, ansible_env, tmp_path, ns):
    mark = kubeapi.mark()
    r = play(ansible_env, tmp_path, [vm_task("would_create", **web(ns))], check=True, diff=True)
    assert r["would_create"]["changed"] is True
    after = r["would_create"]["diff"]["after"]
    assert after["metadata"]["name"] == "web" and r["would_create"]["diff"]["before"] == {}
    # The dry run went through the admission webhooks: the would-be MAC address is in the diff.
    assert after["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"][0]["macAddress"]
    sent = writes(kubeapi.requests(since=mark))
    assert sent and all(e["query"].get("dryRun") == "All" for e in sent)
    assert kubeapi.get_object(VMS % ns + "/web") is None

    play(ansible_env, tmp_path, [vm_task("create", wait=True, **web(ns))])
    mark = kubeapi.mark()
    r = play(ansible_env, tmp_path, [
        vm_task("start_running", state="started", name="web", namespace=ns),
        vm_task("stop_running", state="stopped", name="web", namespace=ns),
        vm_task("restart_running", state="restarted", name="web", namespace=ns),
        vm_task("rerun", **web(ns)),
        vm_task("change", **web(ns, memory="1Gi")),
        vm_task("delete", state="absent", name="web", namespace=ns),
    ], check=True, diff=True)
    assert r["start_running"]["changed"] is False
    assert r["stop_running"]["changed"] is True and r["stop_running"]["action"] == "stop"
    assert r["restart_running"]["changed"] is True
    assert r["rerun"]["changed"] is False
    ch = r["change"]
    assert ch["changed"] and ch["restart_required"] is True
    assert ch["diff"]["before"]["spec"]["template"]["spec"]["domain"]["memory"] == {"guest": "512Mi"}
    assert ch["diff"]["after"]["spec"]["template"]["spec"]["domain"]["memory"] == {"guest": "1Gi"}
    assert r["delete"]["changed"] is True
    # DeleteOptions carry dryRun in the body; every other write has it in the query.
    assert all(e["query"].get("dryRun") == "All" for e in writes(kubeapi.requests(since=mark)) if e["method"] != "DELETE")
    live = kubeapi.get_object(VMS % ns + "/web")
    assert live["spec"]["runStrategy"] == "Always"
    assert live["spec"]["template"]["spec"]["domain"]["memory"] == {"guest": "512Mi"}


def test_idempotent_rerun_sends_no_write_despite_server_added_fields(kubeapi, ansible_env, tmp_path, ns):
    # `extra` has no disk: KubeVirt adds a default one to the VMI only; interfaces get kubemacpool MACs; the VM gets a
    # firmware UUID, machine type, architecture and the transaction-timestamp annotation.
    args = web(ns, labels={"app": "web"}, spec={"volumes": [{"name": "extra", "emptyDisk": {"capacity": "1Gi"}}]})
    args["spec"]["volumes"].insert(0, {"name": "rootdisk", "containerDisk": {"image": "quay.io/containerdisks/fedora:41"}})
    args["spec"]["volumes"].insert(1, {"name": "cloudinit", "cloudInitNoCloud": {"userData": "#cloud-config\n"}})
    del args["cloud_init"]
    play(ansible_env, tmp_path, [vm_task("first", wait=True, **args)])
    live = kubeapi.get_object(VMS % ns + "/web")
    tspec = live["spec"]["template"]["spec"]
    assert tspec["domain"]["devices"]["interfaces"][0]["macAddress"]
    assert tspec["domain"]["firmware"]["uuid"] and tspec["domain"]["machine"]["type"] == "q35"
    assert "extra" not in [d["name"] for d in tspec["domain"]["devices"]["disks"]]
    assert "kubemacpool.io/transaction-timestamp" in live["metadata"]["annotations"]

    mark = kubeapi.mark()
    r = play(ansible_env, tmp_path, [vm_task("again", wait=True, **args), vm_task("again_started", state="started", **args)])
    assert r["again"]["changed"] is False and r["again_started"]["changed"] is False
    entries = kubeapi.requests(since=mark)
    assert writes(entries) == []
    assert len([e for e in entries if e["path"].startswith("/apis/kubevirt.io")]) <= 6
    assert kubeapi.get_object(VMS % ns + "/web")["metadata"]["resourceVersion"] == live["metadata"]["resourceVersion"]


def test_a_field_the_user_drops_stays_by_default(kubeapi, ansible_env, tmp_path, ns):
    first = web(ns, labels={"app": "web", "tier": "frontend"}, node_selector={"kubernetes.io/os": "linux"},
                tolerations=[{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}])
    r = play(ansible_env, tmp_path, [vm_task("first", **first),
                                     vm_task("subset", name="web", namespace=ns, labels={"app": "web"}),
                                     vm_task("stop", name="web", namespace=ns, labels={"app": "web"}, state="stopped")])
    assert r["first"]["changed"] is True and r["subset"]["changed"] is False and r["stop"]["changed"] is True
    live = kubeapi.get_object(VMS % ns + "/web")
    assert live["metadata"]["labels"] == {"app": "web", "tier": "frontend"}
    tspec = live["spec"]["template"]["spec"]
    assert tspec["nodeSelector"] == {"kubernetes.io/os": "linux"} and tspec["tolerations"][0]["key"] == "dedicated"
    assert [d["name"] for d in tspec["domain"]["devices"]["disks"]] == ["rootdisk", "cloudinit"]
    assert "virtfleet.kubevirt/applied-digest" not in live["metadata"].get("annotations", {})


def test_a_field_the_user_drops_is_removed_with_full_ownership(kubeapi, ansible_env, tmp_path, ns):
    first = web(ns, labels={"app": "web", "tier": "frontend"}, node_selector={"kubernetes.io/os": "linux"},
                tolerations=[{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}], full_ownership=True)
    second = web(ns, labels={"app": "web"}, full_ownership=True)
    r = play(ansible_env, tmp_path, [vm_task("first", **first), vm_task("second", **second),
                                     vm_task("third", **second)], diff=True)
    assert r["second"]["changed"] is True and r["third"]["changed"] is False
    live = kubeapi.get_object(VMS % ns + "/web")
    assert live["metadata"]["labels"] == {"app": "web"}
    tspec = live["spec"]["template"]["spec"]
    # Server-side apply removes what this manager set (an emptied parent map may stay behind).
    assert not tspec.get("nodeSelector") and not tspec.get("tolerations")
    assert live["spec"]["template"]["metadata"]["labels"] == {"app": "web"}
    assert r["second"]["diff"]["before"]["metadata"]["labels"]["tier"] == "frontend"
    # Fields owned by others survive the removal.
    assert tspec["domain"]["devices"]["interfaces"][0]["macAddress"]


def test_a_vm_the_api_rejects_is_named_and_others_are_applied(kubeapi, ansible_env, tmp_path, ns):
    r = play(ansible_env, tmp_path, [vm_task(
        "fleet", ignore_errors=True, namespace=ns, memory="256Mi", boot_disk={"container_image": "img"},
        vms=[{"name": "good-1"}, {"name": "bad", "spec": {"domain": {"cpu": {"cores": "two"}}}}, {"name": "good-2"}])])
    res = r["fleet"]
    assert res["failed"] is True
    assert "1 of 3 VMs failed" in res["msg"] and "%s/bad" % ns in res["msg"]
    assert "spec.template.spec.domain.cpu.cores" in res["msg"] and "422" in res["msg"]
    by_name = {x["name"]: x for x in res["results"]}
    assert by_name["bad"]["failed"] and by_name["good-2"]["changed"] and not by_name["good-2"].get("failed")
    assert kubeapi.get_object(VMS % ns + "/good-2") is not None
    assert kubeapi.get_object(VMS % ns + "/bad") is None


def test_concurrent_writes_one_rejected_vm_and_throttled_writes_are_reported_per_vm(kubeapi, ansible_env, tmp_path, ns):
    """The writes of 30 VMs go out several at a time: a VM the API rejects is named as before, throttled writes
    (429) are retried for their own VM, every VM is sent once (plus its retries) and the others are created."""
    fleet = [{"name": "vm-%02d" % i} for i in range(30)]
    fleet[13]["spec"] = {"domain": {"cpu": {"cores": "two"}}}
    kubeapi.set_faults(rate=1.0, statuses=(429,), count=4, methods=["POST"],
                       path_regex="/namespaces/%s/virtualmachines$" % ns)
    mark = kubeapi.mark()
    try:
        r = play(ansible_env, tmp_path, [vm_task("fleet", ignore_errors=True, namespace=ns, memory="256Mi",
                                                 boot_disk={"container_image": "img"}, vms=fleet)])
    finally:
        kubeapi.clear_faults()
    res = r["fleet"]
    assert res["failed"] is True and res["msg"].startswith("1 of 30 VMs failed: %s/vm-13: " % ns), res["msg"]
    assert "spec.template.spec.domain.cpu.cores" in res["msg"] and "422" in res["msg"]
    assert [(x["name"], x["outcome"]) for x in res["results"]] == [
        (vm["name"], "failed" if vm["name"] == "vm-13" else "created") for vm in fleet]
    assert res["api_retries"] == 4
    posts = [e for e in kubeapi.requests(since=mark) if e["method"] == "POST" and e["path"] == VMS % ns]
    assert len(posts) == 30 + 4 and len([e for e in posts if e.get("fault") == "429"]) == 4, posts
    live = {o["metadata"]["name"] for o in kubeapi.http("GET", VMS % ns)[1]["items"]}
    assert live == {vm["name"] for vm in fleet} - {"vm-13"}


def test_hundred_vms_in_one_task_then_an_idempotent_rerun(kubeapi, ansible_env, tmp_path, ns):
    fleet = [{"name": "vm-%03d" % i} for i in range(100)]
    fleet[7]["memory"] = "1Gi"
    args = dict(namespace=ns, labels={"app": "fleet"}, memory="256Mi", boot_disk={"container_image": "img"},
                vms=fleet, wait=True, wait_timeout=120)
    mark = kubeapi.mark()
    r = play(ansible_env, tmp_path, [vm_task("fleet", **args)])
    res = r["fleet"]
    assert res["changed"] and len(res["results"]) == 100
    assert all(x["result"]["status"]["ready"] for x in res["results"])
    assert res["results"][7]["result"]["spec"]["template"]["spec"]["domain"]["memory"]["guest"] == "1Gi"
    entries = [e for e in kubeapi.requests(since=mark) if e["path"].startswith("/apis/kubevirt.io")]
    assert len(entries) <= 2 * 100 + 10, len(entries)
    assert len(writes(entries)) == 100

    mark = kubeapi.mark()
    r = play(ansible_env, tmp_path, [vm_task("again", **args)])
    assert r["again"]["changed"] is False
    entries = [e for e in kubeapi.requests(since=mark) if e["path"].startswith("/apis/kubevirt.io")]
    assert writes(entries) == [] and len(entries) <= 4


def test_restart_required_is_reported_and_restart_is_opt_in(kubeapi, ansible_env, tmp_path, ns):
    r = play(ansible_env, tmp_path, [
        vm_task("create", wait=True, **web(ns)),
        vmi_info("vmi1", ns, "web"),
        vm_task("bigger", wait=True, **web(ns, memory="1Gi")),
        vmi_info("vmi2", ns, "web"),
        vm_task("restart", wait=True, restart_if_required=True, **web(ns, memory="1Gi")),
        vmi_info("vmi3", ns, "web"),
    ])
    assert r["bigger"]["changed"] and r["bigger"]["restart_required"] is True
    assert r["vmi1"]["resources"][0]["metadata"]["uid"] == r["vmi2"]["resources"][0]["metadata"]["uid"]
    assert r["restart"]["action"] == "restart" and r["restart"]["restart_required"] is False
    vmi3 = r["vmi3"]["resources"][0]
    assert vmi3["metadata"]["uid"] != r["vmi2"]["resources"][0]["metadata"]["uid"]
    assert vmi3["spec"]["domain"]["memory"]["guest"] == "1Gi"


def test_wait_timeout_says_what_state_each_vm_is_in(kubeapi, ansible_env, tmp_path, ns):
    r = play(ansible_env, tmp_path, [vm_task(
        "fleet", ignore_errors=True, namespace=ns, memory="256Mi", boot_disk={"container_image": "img"},
        node_selector={"no-such-node": "true"}, vms=[{"name": "a"}, {"name": "b"}], wait=True, wait_timeout=3)])
    msg = r["fleet"]["msg"]
    assert r["fleet"]["failed"] and msg.startswith("Timed out after 3s waiting for 2 of 2 VMs")
    assert "%s/a waiting to be Ready" % ns in msg and "printableStatus" in msg


def test_invalid_option_combination_fails_at_validation(kubeapi, ansible_env, tmp_path, ns):
    mark = kubeapi.mark()
    r = play(ansible_env, tmp_path, [vm_task("bad", ignore_errors=True, name="x", namespace=ns, running=True,
                                             run_strategy="Halted")])
    assert r["bad"]["failed"] and "mutually exclusive: running|run_strategy" in r["bad"]["msg"]
    assert kubeapi.requests(since=mark) == []


def test_vm_from_another_tool_with_spec_running_moves_to_run_strategy(kubeapi, ansible_env, tmp_path, ns):
    # What kubevirt.core 2.x creates by default: spec.running=true, owned by another field manager.
    kubeapi.apply_object({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
                          "metadata": {"name": "old", "namespace": ns},
                          "spec": {"running": True, "template": {"spec": {"domain": {"devices": {}}}}}},
                         field_manager="OpenAPI-Generator")
    r = play(ansible_env, tmp_path, [
        vm_task("same", name="old", namespace=ns, spec={"domain": {"devices": {}}}),
        vm_task("same_again", name="old", namespace=ns, spec={"domain": {"devices": {}}}),
        vm_task("manual", name="old", namespace=ns, run_strategy="Manual", spec={"domain": {"devices": {}}}),
    ])
    # A VM made elsewhere and re-declared with the options that made it: no change, nothing added.
    assert r["same"]["changed"] is False and r["same_again"]["changed"] is False
    assert r["same"]["result"]["spec"]["running"] is True and "runStrategy" not in r["same"]["result"]["spec"]
    assert "virtfleet.kubevirt/applied-digest" not in (r["same"]["result"]["metadata"].get("annotations") or {})
    assert r["manual"]["changed"] is True
    spec = kubeapi.get_object(VMS % ns + "/old")["spec"]
    assert spec["runStrategy"] == "Manual" and "running" not in spec
