"""The modules on a real kube-apiserver (realk8s) with KubeVirt's CRDs and no KubeVirt component.

What is asserted here is what the real server decides, so the emulator cannot have agreed with a wrong reading:
- kubevirt.core's update semantics (#13): a task that names fewer fields leaves the rest; the JSON merge patch's
  ``null`` removes `running`/`runStrategy`; convenience lists merge into the VM's lists by name;
- the issue #15 findings: an absent wait held by a finalizer fails and says so; a server-side apply with an unknown
  field is the user's error (500 from kube-apiserver, not retried); a full-ownership lifecycle task keeps the
  template (kube-apiserver refuses a VM without devices); start/stop without virt-api's subresource API say that
  API is missing; kubevirt_install's re-run on the operator manifests is unchanged (zero values the server drops);
  an inventory whose credentials may not read Services still lists the VMs (real RBAC).
"""
import json
import uuid

import pytest

from tests.integration.test_kubevirt_vm import play, vm_task

VM_PATH = "/apis/kubevirt.io/v1/namespaces/%s/virtualmachines/%s"
INSTALL = "tests/fixtures/install/kubevirt-v1.9.0/kubevirt-operator.yaml"


@pytest.fixture
def ns(realk8s):
    name = "real-" + uuid.uuid4().hex[:8]
    realk8s.kubectl("create", "namespace", name)
    return name


def get(realk8s, ns, name):
    proc = realk8s.kubectl("get", "--raw", VM_PATH % (ns, name), check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


FULL = dict(memory="64Mi", boot_disk={"container_image": "quay.io/containerdisks/fedora:41"},
            cloud_init={"user": "fedora", "ssh_authorized_keys": ["ssh-ed25519 AAAAC3Nza test@example"]},
            labels={"app": "web"}, annotations={"owner": "team-a"})


def test_a_task_naming_fewer_fields_keeps_the_vm(realk8s, tmp_path, ns):
    """The #13 safety case on the real server: labels + state never strip the template."""
    r = play(realk8s.env(), tmp_path, [
        vm_task("create", name="web", namespace=ns, run_strategy="Always", **FULL),
        vm_task("relabel", name="web", namespace=ns, labels={"tier": "front"}, state="stopped", run_strategy="Halted"),
        vm_task("again", name="web", namespace=ns, labels={"tier": "front"}, state="stopped", run_strategy="Halted"),
    ])
    assert [r[t].get("failed", False) for t in ("create", "relabel", "again")] == [False, False, False]
    assert (r["relabel"]["changed"], r["again"]["changed"]) == (True, False)
    vm = get(realk8s, ns, "web")
    assert vm["metadata"]["labels"] == {"app": "web", "tier": "front"}
    assert vm["metadata"]["annotations"]["owner"] == "team-a"
    assert vm["spec"]["runStrategy"] == "Halted"
    tmpl = vm["spec"]["template"]["spec"]
    assert [d["name"] for d in tmpl["domain"]["devices"]["disks"]] == ["rootdisk", "cloudinit"]
    assert tmpl["domain"]["memory"]["guest"] == "64Mi"


def test_merge_patch_null_and_lists_merged_by_name(realk8s, tmp_path, ns):
    """`running` replaces runStrategy through a null in the merge patch; a convenience list merges by name."""
    r = play(realk8s.env(), tmp_path, [
        vm_task("create", name="db", namespace=ns, run_strategy="Halted", **FULL),
        vm_task("running", name="db", namespace=ns, running=False),
        vm_task("nets", name="db", namespace=ns, networks=[{"name": "default", "binding": "masquerade"},
                                                           {"name": "storage", "multus": "default/storage"}]),
    ])
    assert [r[t].get("failed", False) for t in ("create", "running", "nets")] == [False, False, False]
    vm = get(realk8s, ns, "db")
    assert vm["spec"]["running"] is False and "runStrategy" not in vm["spec"]
    tmpl = vm["spec"]["template"]["spec"]
    assert [n["name"] for n in tmpl["networks"]] == ["default", "storage"]
    assert [i["name"] for i in tmpl["domain"]["devices"]["interfaces"]] == ["default", "storage"]
    assert [d["name"] for d in tmpl["domain"]["devices"]["disks"]] == ["rootdisk", "cloudinit"]


def test_absent_wait_held_by_a_finalizer_fails_naming_it(realk8s, tmp_path, ns):
    r = play(realk8s.env(), tmp_path, [vm_task("create", name="held", namespace=ns, run_strategy="Halted", **FULL)])
    assert not r["create"].get("failed"), r["create"]
    realk8s.kubectl("-n", ns, "patch", "vm", "held", "--type", "merge", "-p",
                    '{"metadata": {"finalizers": ["example.com/hold"]}}')
    try:
        r = play(realk8s.env(), tmp_path, [vm_task("gone", name="held", namespace=ns, state="absent", wait=True,
                                                   wait_timeout=3, ignore_errors=True)], name="gone")
        assert r["gone"].get("failed") is True
        assert "still exists (finalizers: example.com/hold)" in r["gone"]["msg"]
    finally:
        realk8s.kubectl("-n", ns, "patch", "vm", "held", "--type", "merge", "-p", '{"metadata": {"finalizers": null}}')


def test_unknown_field_in_a_server_side_apply_is_not_retried(realk8s, tmp_path, ns):
    r = play(realk8s.env(), tmp_path, [vm_task("typo", name="typo", namespace=ns, full_ownership=True,
                                               run_strategy="Halted", spec={"domain": {"devices": {}, "cpuu": {}}},
                                               ignore_errors=True)])
    assert r["typo"].get("failed") is True and r["typo"]["api_retries"] == 0
    assert r["typo"]["msg"].startswith("The API server rejected the server-side apply of VirtualMachine %s/typo: "
                                       ".spec.template.spec.domain.cpuu: field not declared in schema." % ns)
    assert get(realk8s, ns, "typo") is None


def test_full_ownership_lifecycle_task_keeps_the_template(realk8s, tmp_path, ns):
    r = play(realk8s.env(), tmp_path, [
        vm_task("create", name="owned", namespace=ns, full_ownership=True, run_strategy="Always", **FULL),
        vm_task("stop", name="owned", namespace=ns, full_ownership=True, state="stopped", run_strategy="Halted",
                ignore_errors=True),
    ])
    assert not r["create"].get("failed") and not r["stop"].get("failed"), r["stop"].get("msg")
    vm = get(realk8s, ns, "owned")
    assert vm["spec"]["runStrategy"] == "Halted"
    assert [d["name"] for d in vm["spec"]["template"]["spec"]["domain"]["devices"]["disks"]] == ["rootdisk", "cloudinit"]


def test_start_without_virt_api_names_the_missing_api(realk8s, tmp_path, ns):
    r = play(realk8s.env(), tmp_path, [
        vm_task("create", name="idle", namespace=ns, run_strategy="Halted", **FULL),
        vm_task("start", name="idle", namespace=ns, state="started", ignore_errors=True),
    ])
    assert r["start"].get("failed") is True
    assert r["start"]["msg"].startswith("Cannot start VM %s/idle: the API server does not serve KubeVirt's subresource "
                                        "API (subresources.kubevirt.io/v1, answered 404)" % ns)


def test_kubevirt_install_rerun_on_the_operator_manifest_is_unchanged(realk8s, tmp_path):
    """Every operator object as kube-apiserver stores it (PriorityClass globalDefault: false is dropped) compares
    equal to the manifest: the second run writes nothing. No operator runs here, so nothing is waited for."""
    from tests.conftest import REPO
    task = {"virtfleet.kubevirt.kubevirt_install": {"manifest_path": str(REPO / INSTALL), "wait": False,
                                                    "emulation": True}}
    r = play(realk8s.env(), tmp_path, [dict(task, name="first", register="first"),
                                       dict(task, name="second", register="second")])
    assert not r["first"].get("failed") and r["first"]["changed"] is True, r["first"].get("msg")
    assert r["second"]["changed"] is False, [o for o in r["second"]["objects"] if o["action"] != "unchanged"]
    kinds = set(o["kind"] for o in r["second"]["objects"])
    assert {"PriorityClass", "CustomResourceDefinition", "Deployment", "KubeVirt"} <= kinds


def test_inventory_credentials_without_services_still_list_the_vms(realk8s, tmp_path, ns):
    """Real RBAC: a ServiceAccount that may read VMs and VMIs in one namespace, not Services."""
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    vmi = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
           "metadata": {"name": "web", "namespace": ns, "labels": {"kubevirt.io/domain": "web"}},
           "spec": {"domain": {"devices": {}, "memory": {"guest": "64Mi"}}},
           "status": {"phase": "Running", "interfaces": [{"name": "default", "ipAddress": "10.244.1.7"}],
                      "nodeName": "node01"}}
    vm = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": "web", "namespace": ns},
          "spec": {"runStrategy": "Always", "template": {"spec": {"domain": {"devices": {}}}}}}
    realk8s.kubectl("create", "-f", "-", input_text=json.dumps({"apiVersion": "v1", "kind": "List", "items": [vm, vmi]}))
    realk8s.kubectl("-n", ns, "create", "serviceaccount", "vm-reader")
    realk8s.kubectl("-n", ns, "create", "role", "vm-reader", "--verb=get,list,watch",
                    "--resource=virtualmachines.kubevirt.io,virtualmachineinstances.kubevirt.io")
    realk8s.kubectl("-n", ns, "create", "rolebinding", "vm-reader", "--role=vm-reader",
                    "--serviceaccount=%s:vm-reader" % ns)
    token = realk8s.kubectl("-n", ns, "create", "token", "vm-reader").stdout.strip()
    kc = yaml.safe_load(realk8s.kubeconfig.read_text())
    kc["users"][0]["user"] = {"token": token}
    kubeconfig = tmp_path / "reader.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(kc))
    source = tmp_path / "inv.kubevirt.yml"
    source.write_text(yaml.safe_dump({"plugin": "virtfleet.kubevirt.kubevirt", "namespaces": [ns]}))
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-inventory"), "-i", str(source), "--list"],
                          env=realk8s.env(kubeconfig), capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    from tests.integration.inventory_support import unwrap
    hostvars = unwrap(json.loads(proc.stdout))["_meta"]["hostvars"]
    assert list(hostvars) == ["%s-web" % ns]
    assert hostvars["%s-web" % ns]["ansible_host"] == "10.244.1.7"
    err = " ".join(proc.stderr.split())
    assert "may not list services in namespace(s) %s (403 Forbidden)" % ns in err
