"""tests/kubeapi/remote.py against a real control plane (realk8s): the emulator's KubeVirt simulation as a client.

Skipped unless realk8s is there ($VIRTFLEET_REALK8S, default ../shared/realk8s beside the repository). One realk8s
and one remote host (``python -m tests.kubeapi.remote``) for the module; objects are created with kubectl, the
virt-api subresources are called through kube-apiserver's aggregator with the kubeconfig's credentials.
"""
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.kubeapi import remote
from tests.kubeapi.remote import json_patch_ops

REPO = Path(__file__).resolve().parents[2]
REALK8S = Path(os.environ.get("VIRTFLEET_REALK8S") or REPO.parent / "shared" / "realk8s")
API_DIR = REPO / "tests" / "fixtures" / "kubevirt-api"
NEEDS_REALK8S = pytest.mark.skipif(
    not (REALK8S / "realk8s.sh").is_file() or not (REALK8S / "bin" / "kube-apiserver.xz").is_file()
    and not (REALK8S / "bin" / "kube-apiserver").is_file(),
    reason="realk8s not found at %s (set VIRTFLEET_REALK8S)" % REALK8S)


# --- units (no server) ----------------------------------------------------------------------------------------
def test_json_patch_ops_turn_old_into_new():
    from tests.kubeapi.patch import json_patch
    old = {"metadata": {"name": "a", "annotations": {"x/y": "1"}}, "spec": {"list": [1, 2], "gone": True}}
    new = {"metadata": {"name": "a", "annotations": {"x/y": "2", "k~": "v"}}, "spec": {"list": [1, 2, 3]},
           "status": {}}
    ops = json_patch_ops(old, new)
    assert json_patch(old, ops) == new
    assert {"op": "replace", "path": "/metadata/annotations/x~1y", "value": "2"} in ops
    assert json_patch_ops(new, new) == []


def test_webhook_denial_names():
    assert remote._webhook_of('admission webhook "a.b" denied the request: no') == ("a.b", "no")
    assert remote._webhook_of("waiting for DataVolumes x") == (None, "waiting for DataVolumes x")


# --- against realk8s --------------------------------------------------------------------------------------------
class Cluster:
    def __init__(self, workdir):
        self.dir = Path(workdir)
        self.kubeconfig = self.dir / "kubeconfig"
        self.host = None
        self.info = None

    def realk8s(self, *args):
        subprocess.run(["bash", str(REALK8S / "realk8s.sh")] + list(args), check=True, capture_output=True,
                       timeout=180)

    def start(self, controllers="virt"):
        self.realk8s("up", str(self.dir))
        self.realk8s("crds", str(self.dir), str(API_DIR))
        self.log = open(self.dir / "remote.log", "w")
        self.host = subprocess.Popen([sys.executable, "-m", "tests.kubeapi.remote", "--kubeconfig",
                                      str(self.kubeconfig), "--controllers", controllers, "--timing", "fast"],
                                     cwd=str(REPO), stdout=subprocess.PIPE, stderr=self.log, text=True,
                                     start_new_session=True)
        line = self.host.stdout.readline()
        assert line, "remote host exited: %s" % (self.dir / "remote.log").read_text()[-2000:]
        self.info = json.loads(line)
        assert self.info["ready"] is True
        self.client = remote.Client(str(self.kubeconfig))

    def stop(self):
        if self.host is not None and self.host.poll() is None:
            self.host.send_signal(signal.SIGTERM)
            try:
                self.host.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.host.pid, signal.SIGKILL)
            self.log.close()
        subprocess.run(["bash", str(REALK8S / "realk8s.sh"), "down", str(self.dir)], capture_output=True, timeout=60)

    def kubectl(self, *args, stdin=None, check=True):
        proc = subprocess.run(["kubectl", "--kubeconfig", str(self.kubeconfig)] + list(args), input=stdin,
                              capture_output=True, text=True, timeout=60)
        if check and proc.returncode != 0:
            raise AssertionError("kubectl %s: %s" % (" ".join(args), proc.stderr))
        return proc

    def get(self, kind, ns, name):
        proc = self.kubectl("get", kind, "-n", ns, name, "-o", "json", "--ignore-not-found")
        return json.loads(proc.stdout) if proc.stdout.strip() else None

    def wait(self, what, fn, timeout=30):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = fn()
            if last:
                return last
            time.sleep(0.3)
        raise AssertionError("timed out waiting for %s (last: %r); host log: %s" % (
            what, last, (self.dir / "remote.log").read_text()[-2000:]))

    def subresource(self, ns, plural, name, action, body=None, method="PUT"):
        resp = self.client.request(method, "/apis/subresources.kubevirt.io/v1/namespaces/%s/%s/%s/%s" % (
            ns, plural, name, action), body if body is not None else {})
        return resp.status, (json.loads(resp.data) if resp.data.strip() else None)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("rk-remote"))
    try:
        c.start("virt,cdi,operators")
        yield c
    finally:
        c.stop()


@pytest.fixture
def ns(cluster):
    name = "t-" + uuid.uuid4().hex[:8]
    cluster.kubectl("create", "namespace", name)
    return name


def vm_manifest(ns, name, strategy="Always", interfaces=True):
    tspec = {"domain": {"devices": {}, "resources": {"requests": {"memory": "64Mi"}}},
             "volumes": [{"name": "root", "containerDisk": {"image": "quay.io/containerdisks/fedora:41"}}]}
    if interfaces:
        tspec["domain"]["devices"]["interfaces"] = [{"name": "default", "masquerade": {}}]
        tspec["networks"] = [{"name": "default", "pod": {}}]
    return json.dumps({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
                       "metadata": {"name": name, "namespace": ns},
                       "spec": {"runStrategy": strategy, "template": {"spec": tspec}}})


def _ready(obj):
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or [])


@NEEDS_REALK8S
def test_ready_line_names_what_was_registered(cluster):
    assert cluster.info["apiservices"] == ["v1.subresources.kubevirt.io", "v1alpha3.subresources.kubevirt.io"]
    assert "virtualmachine-validator.kubevirt.io" in cluster.info["webhooks"]
    assert cluster.info["controllers"] == ["virt-controller", "kubevirt-webhooks", "snapshot-controller", "cdi-controller",
                                           "operators", "kubelet"]
    svc = json.loads(cluster.kubectl("get", "apiservice", "v1.subresources.kubevirt.io", "-o", "json").stdout)
    assert any(c["type"] == "Available" and c["status"] == "True" for c in svc["status"]["conditions"])
    nodes = json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    assert len(nodes) == 2 and all(_ready(n) for n in nodes)


@NEEDS_REALK8S
def test_vm_always_runs_then_stop_subresource_stops_it(cluster, ns):
    cluster.kubectl("create", "-f", "-", stdin=vm_manifest(ns, "vm1"))
    vmi = cluster.wait("VMI Running and Ready", lambda: (lambda o: o if o and (o.get("status") or {}).get(
        "phase") == "Running" and _ready(o) else None)(cluster.get("vmi", ns, "vm1")))
    assert vmi["status"]["nodeName"] in ("node01", "node02")
    assert vmi["status"]["interfaces"][0]["ipAddress"].startswith("10.244.")
    # The VMI mutating webhook ran on virt-controller's create: a disk per volume, `disk: {}`.
    assert vmi["spec"]["domain"]["devices"]["disks"] == [{"name": "root", "disk": {}}]
    assert vmi["metadata"]["ownerReferences"][0]["kind"] == "VirtualMachine"
    vm = cluster.wait("VM Running", lambda: (lambda o: o if (o.get("status") or {}).get(
        "printableStatus") == "Running" and o["status"].get("ready") else None)(cluster.get("vm", ns, "vm1")))
    assert vm["metadata"]["annotations"]["kubevirt.io/latest-observed-api-version"] == "v1"

    code, body = cluster.subresource(ns, "virtualmachines", "vm1", "start")
    assert code == 409 and "Always does not support manual start requests" in body["message"]
    code, body = cluster.subresource(ns, "virtualmachines", "vm1", "stop")
    assert code == 202, body
    cluster.wait("VMI gone", lambda: cluster.get("vmi", ns, "vm1") is None)
    vm = cluster.wait("VM Stopped", lambda: (lambda o: o if (o.get("status") or {}).get(
        "printableStatus") == "Stopped" else None)(cluster.get("vm", ns, "vm1")))
    assert vm["spec"]["runStrategy"] == "Halted"
    code, body = cluster.subresource(ns, "virtualmachines", "vm1", "start")
    assert code == 202, body
    cluster.wait("VMI Running again", lambda: (lambda o: o if o and (o.get("status") or {}).get(
        "phase") == "Running" else None)(cluster.get("vmi", ns, "vm1")))


@NEEDS_REALK8S
def test_pause_unpause_and_missing_vm(cluster, ns):
    cluster.kubectl("create", "-f", "-", stdin=vm_manifest(ns, "vm2"))
    cluster.wait("VMI Running", lambda: (lambda o: o and (o.get("status") or {}).get("phase") == "Running")(
        cluster.get("vmi", ns, "vm2")))
    assert cluster.subresource(ns, "virtualmachineinstances", "vm2", "pause")[0] == 200
    code, body = cluster.subresource(ns, "virtualmachineinstances", "vm2", "pause")
    assert code == 409 and "VMI is already paused" in body["message"]
    cluster.wait("VM Paused", lambda: (cluster.get("vm", ns, "vm2").get("status") or {}).get(
        "printableStatus") == "Paused")
    assert cluster.subresource(ns, "virtualmachineinstances", "vm2", "unpause")[0] == 200
    code, body = cluster.subresource(ns, "virtualmachines", "nope", "stop")
    assert code == 404 and body["message"] == 'virtualmachine.kubevirt.io "nope" not found'


@NEEDS_REALK8S
def test_kubemacpool_sets_a_mac_and_vm_mutator_defaults(cluster, ns):
    cluster.kubectl("create", "-f", "-", stdin=vm_manifest(ns, "mac", strategy="Halted"))
    vm = cluster.get("vm", ns, "mac")
    iface = vm["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"][0]
    assert iface["macAddress"].startswith("02:5a:")
    assert "kubemacpool.io/transaction-timestamp" in vm["metadata"]["annotations"]
    tspec = vm["spec"]["template"]["spec"]
    assert tspec["architecture"] == "amd64" and tspec["domain"]["machine"]["type"] == "q35"
    assert tspec["domain"]["firmware"]["uuid"]
    # The MAC is kept across updates (by interface name).
    cluster.kubectl("-n", ns, "label", "vm", "mac", "a=b")
    cluster.kubectl("-n", ns, "patch", "vm", "mac", "--type", "merge", "-p", '{"spec":{"runStrategy":"Manual"}}')
    again = cluster.get("vm", ns, "mac")["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"][0]
    assert again["macAddress"] == iface["macAddress"]


@NEEDS_REALK8S
def test_validating_webhook_denies_with_causes_and_warns(cluster, ns):
    bad = json.loads(vm_manifest(ns, "bad", strategy="Sometimes"))
    proc = cluster.kubectl("create", "-f", "-", stdin=json.dumps(bad), check=False)
    assert proc.returncode != 0
    assert "Invalid RunStrategy (Sometimes)" in proc.stderr
    resp = cluster.client.request("POST", "/apis/kubevirt.io/v1/namespaces/%s/virtualmachines" % ns, bad)
    status = json.loads(resp.data)
    assert resp.status == 422 and status["reason"] == "Invalid"
    assert status["message"] == ('admission webhook "virtualmachine-validator.kubevirt.io" denied the request: '
                                 'Invalid RunStrategy (Sometimes)')
    assert status["details"]["causes"][0]["field"] == "spec.runStrategy"
    legacy = json.loads(vm_manifest(ns, "legacy"))
    del legacy["spec"]["runStrategy"]
    legacy["spec"]["running"] = False
    proc = cluster.kubectl("create", "-f", "-", stdin=json.dumps(legacy))
    assert "spec.running is deprecated" in proc.stderr


@NEEDS_REALK8S
def test_cdi_datavolume_then_vmi(cluster, ns):
    vm = json.loads(vm_manifest(ns, "dvvm", interfaces=False))
    vm["spec"]["dataVolumeTemplates"] = [{"metadata": {"name": "dvvm-root"}, "spec": {
        "source": {"http": {"url": "http://example.com/fedora.qcow2"}},
        "storage": {"resources": {"requests": {"storage": "1Gi"}}}}}]
    vm["spec"]["template"]["spec"]["volumes"] = [{"name": "root", "dataVolume": {"name": "dvvm-root"}}]
    cluster.kubectl("create", "-f", "-", stdin=json.dumps(vm))
    cluster.wait("DataVolume Succeeded", lambda: (cluster.get("dv", ns, "dvvm-root") or {}).get(
        "status", {}).get("phase") == "Succeeded")
    cluster.wait("VMI Running", lambda: ((cluster.get("vmi", ns, "dvvm") or {}).get("status") or {}).get(
        "phase") == "Running")


@NEEDS_REALK8S
def test_operator_rollout_by_kube_controller_manager_and_uninstall_guard(cluster):
    cluster.kubectl("-n", "kubevirt", "create", "deployment", "virt-operator",
                    "--image=quay.io/kubevirt/virt-operator:v1.9.0")
    cluster.kubectl("create", "-f", "-", stdin=json.dumps({
        "apiVersion": "kubevirt.io/v1", "kind": "KubeVirt", "metadata": {"name": "kubevirt", "namespace": "kubevirt"},
        "spec": {"uninstallStrategy": "BlockUninstallIfWorkloadsExist"}}))
    cluster.wait("KubeVirt Deployed", lambda: (cluster.get("kubevirt", "kubevirt", "kubevirt").get(
        "status") or {}).get("phase") == "Deployed", timeout=60)
    ds = cluster.get("ds", "kubevirt", "virt-handler")
    assert ds["status"]["desiredNumberScheduled"] == 2
    cluster.wait("virt-handler ready", lambda: (cluster.get("ds", "kubevirt", "virt-handler").get(
        "status") or {}).get("numberReady") == 2)
    # the uninstall guard (a validating webhook on DELETE) while VMs exist
    cluster.kubectl("create", "namespace", "guard", check=False)
    cluster.kubectl("create", "-f", "-", stdin=vm_manifest("guard", "keep", strategy="Halted"))
    proc = cluster.kubectl("-n", "kubevirt", "delete", "kubevirt", "kubevirt", "--wait=false", check=False)
    assert proc.returncode != 0
    assert 'admission webhook "kubevirt-validator.kubevirt.io" denied the request: Rejecting the uninstall' \
        in proc.stderr
