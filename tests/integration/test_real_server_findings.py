"""Behaviour a real kube-apiserver showed (issue #15's findings), asserted through the modules on the emulator.

Each test here is a defect that the emulator once hid: the product is fixed and the emulator now behaves like
kube-apiserver v1.32 for it (see tests/kubeapi/README.md, "Fidelity with kube-apiserver").
"""

import pytest

from .conftest import unique_namespace
from .test_kubevirt_vm import VMS, play, vm_task


@pytest.fixture
def ns(kubeapi):
    return unique_namespace(kubeapi, "real")


def test_absent_wait_that_times_out_on_a_finalizer_fails_and_says_so(kubeapi, ansible_env, tmp_path, ns):
    """A VM held by a finalizer is not gone when wait_timeout passes: the task fails naming the finalizer."""
    vm = dict(name="held", namespace=ns, memory="64Mi", boot_disk={"container_image": "img"}, run_strategy="Halted")
    r = play(ansible_env, tmp_path, [vm_task("up", **vm)], name="up")
    assert not r["up"].get("failed"), r["up"]
    path = VMS % ns + "/held"
    kubeapi._shortcut("PATCH", path, {"metadata": {"finalizers": ["example.com/hold"]}},  # pylint: disable=protected-access
                      content_type="application/merge-patch+json")
    try:
        r = play(ansible_env, tmp_path, [vm_task("gone", state="absent", wait=True, wait_timeout=3, name="held",
                                                 namespace=ns, ignore_errors=True)], name="gone")
        gone = r["gone"]
        assert gone.get("failed") is True and gone["changed"] is True
        assert "Timed out after 3s" in gone["msg"] and "still exists (finalizers: example.com/hold)" in gone["msg"]
        assert kubeapi.get_object(path)["metadata"]["deletionTimestamp"]
    finally:
        kubeapi._shortcut("PATCH", path, {"metadata": {"finalizers": None}},  # pylint: disable=protected-access
                          content_type="application/merge-patch+json")


def test_a_server_side_apply_with_an_unknown_field_is_the_users_error_not_retried(kubeapi, ansible_env, tmp_path, ns):
    """kube-apiserver answers such an apply with 500 "failed to create typed patch object": no retry, one sentence."""
    mark = kubeapi.mark()
    r = play(ansible_env, tmp_path, [vm_task("bad", name="typo", namespace=ns, full_ownership=True, run_strategy="Halted",
                                             spec={"domain": {"devices": {}, "cpuu": {"cores": 1}}},
                                             ignore_errors=True)], name="bad")
    bad = r["bad"]
    assert bad.get("failed") is True and bad["api_retries"] == 0
    assert bad["msg"] == (
        "The API server rejected the server-side apply of VirtualMachine %s/typo: "
        ".spec.template.spec.domain.cpuu: field not declared in schema. Fix or remove that field in the declaration "
        "(kube-apiserver reports this as a 500)." % ns)
    applies = [e for e in kubeapi.requests(since=mark) if e["method"] == "PATCH"]
    assert [e["status"] for e in applies] == [500]
    assert kubeapi.get_object(VMS % ns + "/typo") is None


def test_start_without_kubevirts_subresource_api_names_the_missing_api(tmp_path_factory, tmp_path):
    """The VM exists; what answers 404 is the missing subresources.kubevirt.io API (virt-api not running)."""
    from tests.conftest import kubeapi_env, start_emulator

    emu = start_emulator(tmp_path_factory, "no-virt-api", controllers=())
    try:
        env = kubeapi_env(emu)
        vm = dict(name="idle", namespace="default", memory="64Mi", boot_disk={"container_image": "img"},
                  run_strategy="Halted")
        r = play(env, tmp_path, [vm_task("up", **vm), vm_task("start", name="idle", namespace="default",
                                                              state="started", ignore_errors=True)], name="start")
        assert not r["up"].get("failed"), r["up"]
        start = r["start"]
        assert start.get("failed") is True
        assert start["msg"] == (
            "Cannot start VM default/idle: the API server does not serve KubeVirt's subresource API "
            "(subresources.kubevirt.io/v1, answered 404): virt-api is not running or its APIService is not Available; "
            "check `kubectl get apiservice v1.subresources.kubevirt.io` and the virt-api pods.")
    finally:
        emu.stop()


def test_inventory_lists_vms_where_only_services_are_forbidden(tmp_path_factory, tmp_path):
    """Credentials that may read VMs and VMIs but not Services: the namespace's VMs are hosts, without Service
    addresses, and one warning says why (it used to be skipped whole: zero hosts)."""
    from tests.conftest import start_emulator
    from tests.unit.plugins.inventory.objects import service, vm, vmi

    from .inventory_support import namespace, run_inventory
    from .test_inventory_access import token_env

    ns = "nosvc"
    labels = {"kubevirt.io/domain": "web"}
    # As the inventory tests' emulator (no controllers): the loaded VMI stays as loaded.
    objects = [namespace(ns), vm("web", ns), vmi("web", ns, labels=labels), service("web-ssh", ns, selector=labels)]
    emu = start_emulator(tmp_path_factory, "nosvc", objects=objects, tls=True, controllers=(), needs_hooks=True)
    try:
        emu.add_token("vm-reader", namespaces=[ns], verbs=["get", "list", "watch"],
                      resources=["virtualmachines", "virtualmachineinstances"])
        run = run_inventory(emu, tmp_path, {"plugin": "virtfleet.kubevirt.kubevirt", "namespaces": [ns]},
                            env=token_env(emu, "vm-reader"))
        assert run.rc == 0, run.stderr
        assert run.hosts() == ["nosvc-web"], run.stderr
        host = run.hostvars["nosvc-web"]
        assert host["vm_address_source"] == "first_interface" and host["ansible_host"] == "10.0.0.1"
        assert run.err.count("may not list services in namespace(s) nosvc (403 Forbidden)") == 1
        assert "Skipping namespace" not in run.err
        assert [r["status"] for r in run.requests if r["path"].endswith("/services")] == [403]
    finally:
        emu.stop()


def test_full_ownership_lifecycle_task_naming_only_the_run_strategy_keeps_the_template(
        kubeapi, ansible_env, tmp_path, ns):
    """kube-apiserver refused the apply that emptied spec.template.spec.domain.devices (422: must be of type object)."""
    vm = dict(name="owned", namespace=ns, memory="64Mi", boot_disk={"container_image": "img"}, full_ownership=True)
    r = play(ansible_env, tmp_path, [
        vm_task("up", run_strategy="Halted", **vm),
        vm_task("stop", name="owned", namespace=ns, state="stopped", run_strategy="Halted", full_ownership=True),
        vm_task("start", name="owned", namespace=ns, state="started", run_strategy="Always", full_ownership=True,
                ignore_errors=True),
    ], name="owned")
    assert [r[t].get("failed", False) for t in ("up", "stop", "start")] == [False, False, False], r["start"].get("msg")
    assert (r["stop"]["changed"], r["start"]["changed"]) == (False, True)
    spec = kubeapi.get_object(VMS % ns + "/owned")["spec"]
    assert spec["runStrategy"] == "Always"
    assert [d["name"] for d in spec["template"]["spec"]["domain"]["devices"]["disks"]] == ["rootdisk"]


def test_a_node_port_is_unique_in_the_cluster_and_allocated_when_omitted(kubeapi, ns):
    """kube-apiserver's service registry: a second Service asking for a used NodePort is refused with 422, and a
    NodePort Service that names no port gets one from 30000-32767 (the emulator once stored both as given)."""
    def svc(name, node_port=None):
        port = {"name": "ssh", "port": 22, "targetPort": 22, "protocol": "TCP"}
        if node_port:
            port["nodePort"] = node_port
        return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
                "spec": {"type": "NodePort", "selector": {"app": name}, "ports": [port]}}

    path = "/api/v1/namespaces/%s/services" % ns
    first = kubeapi.apply_object(svc("first"))
    taken = first["spec"]["ports"][0]["nodePort"]
    assert 30000 <= taken <= 32767
    code, doc, _headers = kubeapi.http("POST", path, svc("second", taken))
    assert code == 422, doc
    assert doc["message"] == ('Service "second" is invalid: spec.ports[0].nodePort: Invalid value: %d: provided port '
                              'is already allocated' % taken)
    assert doc["details"]["causes"] == [{"reason": "FieldValueInvalid", "field": "spec.ports[0].nodePort",
                                         "message": "Invalid value: %d: provided port is already allocated" % taken}]
    # re-applying the first one with its own port is no conflict
    assert kubeapi.apply_object(svc("first", taken))["spec"]["ports"][0]["nodePort"] == taken
    # a deleted Service's node port is free again
    code, doc, _headers = kubeapi.http("DELETE", path + "/first")
    assert code == 200, doc
    code, doc, _headers = kubeapi.http("POST", path, svc("second", taken))
    assert code == 201 and doc["spec"]["ports"][0]["nodePort"] == taken, doc


def test_a_pods_qos_class_is_set_by_the_server_and_immutable(kubeapi, ns):
    """kube-apiserver computes status.qosClass on create and refuses to change it (the fake kubelet of our
    simulation once wrote "BestEffort" over a Burstable pod and stalled every operator rollout on the real server)."""
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": ns},
           "spec": {"containers": [{"name": "c", "image": "registry.example/app:1",
                                    "resources": {"requests": {"memory": "64Mi"}}}]}}
    code, created, _headers = kubeapi.http("POST", "/api/v1/namespaces/%s/pods" % ns, pod)
    assert code == 201, created
    assert created["status"]["qosClass"] == "Burstable"
    body = dict(created, status=dict(created["status"], qosClass="BestEffort"))
    code, doc, _headers = kubeapi.http("PUT", "/api/v1/namespaces/%s/pods/p/status" % ns, body)
    assert code == 422, doc
    assert doc["message"] == 'Pod "p" is invalid: status.qosClass: Invalid value: "BestEffort": field is immutable'
