"""Process-level behaviour (CLI, SIGTERM, plain HTTP), CRDs registered at run time and server-side apply."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from kubernetes import client
from kubernetes.dynamic.exceptions import DynamicApiError

from .harness import REPO, Emulator
from .test_client import vm_body


def test_help_documents_every_option():
    out = subprocess.run([sys.executable, "-m", "tests.kubeapi", "--help"], cwd=str(REPO), capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0
    for opt in ("--port", "--kubeconfig", "--host", "--no-tls", "--api-dir", "--rbac", "--faults", "--controllers",
                "--timing", "--nodes", "--admin-token"):
        assert opt in out.stdout


def test_plain_http_nodes_rbac_file_and_sigterm(tmp_path):
    faults = json.dumps({"rate": 1.0, "statuses": [500], "path_regex": "/namespaces/kube-public/", "count": 1})
    emu = Emulator(tmp_path, tls=False, controllers=(), nodes=4, timing="0.01", extra_args=["--faults", faults],
                   rbac=[{"token": "file-token", "user": "filer", "namespaces": ["default"]}])
    emu.start()
    try:
        assert emu.url.startswith("http://127.0.0.1:")
        status, nodes, _ = emu.http("GET", "/api/v1/nodes")
        assert status == 200 and [n["metadata"]["name"] for n in nodes["items"]] == [
            "node01", "node02", "node03", "node04"]
        assert emu.http("GET", "/api/v1/namespaces/default/configmaps", token="file-token")[0] == 200
        assert emu.http("GET", "/api/v1/namespaces/kubevirt/configmaps", token="file-token")[0] == 403
        # --faults from the command line: exactly one 500 on kube-public.
        assert [emu.http("GET", "/api/v1/namespaces/kube-public/configmaps")[0] for _ in range(2)] == [500, 200]
        # No controllers: a VM with runStrategy Always gets no VMI.
        vm = vm_body("idle", run_strategy="Always")
        assert emu.http("POST", "/apis/kubevirt.io/v1/namespaces/default/virtualmachines", vm)[0] == 201
        time.sleep(0.5)
        assert emu.http("GET", "/apis/kubevirt.io/v1/namespaces/default/virtualmachineinstances/idle")[0] == 404
        # A watch is open while SIGTERM arrives: the server still exits promptly and cleanly.
        watcher = subprocess.Popen(["curl", "-sN", "-H", "Authorization: Bearer " + emu.admin_token,
                                    emu.url + "/api/v1/namespaces/default/configmaps?watch=1"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) if _has_curl() else None
        time.sleep(0.2)
        t0 = time.monotonic()
        os.kill(emu.proc.pid, signal.SIGTERM)
        assert emu.proc.wait(10) == 0
        assert time.monotonic() - t0 < 5
        if watcher is not None:
            watcher.wait(5)
    finally:
        emu.stop()


def _has_curl():
    from shutil import which
    return which("curl") is not None


def test_startup_fails_clearly_without_api_dir(tmp_path):
    out = subprocess.run([sys.executable, "-m", "tests.kubeapi", "--kubeconfig", str(tmp_path / "kc"), "--api-dir",
                          str(tmp_path / "missing")], cwd=str(REPO), capture_output=True, text=True, timeout=30)
    assert out.returncode != 0 and "kubevirt-crds.yaml not found" in out.stderr


def test_crd_created_at_runtime_is_served(dyn, api_client, ns):
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "widgets.example.com"},
           "spec": {"group": "example.com", "scope": "Namespaced",
                    "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
                    "versions": [{"name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
                                  "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                                      "spec": {"type": "object", "required": ["size"], "properties": {
                                          "size": {"type": "integer", "minimum": 1},
                                          "color": {"type": "string", "default": "blue"}}},
                                      "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}}}]}}
    ext = client.ApiextensionsV1Api(api_client)
    try:
        ext.delete_custom_resource_definition("widgets.example.com")
    except client.ApiException:
        pass
    created = ext.create_custom_resource_definition(crd)
    assert {c.type: c.status for c in created.status.conditions}["Established"] == "True"
    co = client.CustomObjectsApi(api_client)
    w = co.create_namespaced_custom_object("example.com", "v1", ns, "widgets", {
        "apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 2}})
    assert w["spec"] == {"size": 2, "color": "blue"}   # schema default applied
    with pytest.raises(client.ApiException) as exc:
        co.create_namespaced_custom_object("example.com", "v1", ns, "widgets", {
            "apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w0"}, "spec": {"size": 0}})
    assert json.loads(exc.value.body)["details"]["causes"] == [{
        "reason": "FieldValueInvalid", "field": "spec.size",
        "message": "Invalid value: 0: spec.size in body should be greater than or equal to 1"}]
    ext.delete_custom_resource_definition("widgets.example.com")
    with pytest.raises(client.ApiException) as exc:
        co.list_namespaced_custom_object("example.com", "v1", ns, "widgets")
    assert exc.value.status == 404


def test_server_side_apply_with_client(dyn, ns):
    res = dyn.resources.get(api_version="kubevirt.io/v1", kind="VirtualMachine")
    body = vm_body("sa", labels={"owner": "one"})
    body["metadata"]["namespace"] = ns
    out = res.server_side_apply(body=body, name="sa", namespace=ns, field_manager="one")
    assert out.metadata.labels.owner == "one" and out.metadata.generation == 1
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": ns}, "data": {"a": "1"}}
    first = cms.server_side_apply(body=cm, name="c", namespace=ns, field_manager="one")
    again = cms.server_side_apply(body=cm, name="c", namespace=ns, field_manager="one")
    assert again.metadata.resourceVersion == first.metadata.resourceVersion   # no-op apply writes nothing
    two = vm_body("sa", labels={"owner": "two"}, run_strategy="Halted")
    two["metadata"]["namespace"] = ns
    with pytest.raises(DynamicApiError) as exc:
        res.server_side_apply(body=two, name="sa", namespace=ns, field_manager="two")
    status = json.loads(exc.value.body)
    assert exc.value.status == 409 and status["reason"] == "Conflict"
    assert status["message"].startswith("Apply failed with 1 conflict: conflict with \"one\"")
    assert status["details"]["causes"] == [{"reason": "FieldManagerConflict", "message": 'conflict with "one" '
                                            'using kubevirt.io/v1', "field": ".metadata.labels.owner"}]
    forced = res.server_side_apply(body=two, name="sa", namespace=ns, field_manager="two", force_conflicts=True)
    assert forced.metadata.labels.owner == "two"
    owners = {m.manager: m for m in forced.metadata.managedFields}
    assert "f:owner" not in json.dumps(owners["one"].fieldsV1.to_dict() if hasattr(owners["one"].fieldsV1, "to_dict")
                                       else owners["one"].fieldsV1)
    with pytest.raises(DynamicApiError) as exc:
        res.server_side_apply(body={"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
                                    "metadata": {"name": "sa2", "namespace": ns}, "spec": {"runStrategy": "Always"}},
                              name="sa2", namespace=ns, field_manager="one")
    assert exc.value.status == 422 and "spec.template: Required value" in json.loads(exc.value.body)["message"]
