"""kubevirt_vm_info / kubevirt_vmi_info through ansible-playbook against the API emulator.

Request costs are read from the emulator's request log, filtered by a token made for each test, so the
harness' own setup requests never count.
"""
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import yaml

from tests.conftest import kubeapi_env

from .conftest import clean_env, unique_namespace, vm_manifest

VM_INFO = "virtfleet.kubevirt.kubevirt_vm_info"
VMI_INFO = "virtfleet.kubevirt.kubevirt_vmi_info"


def reader(kubeapi, namespaces, cluster_wide_read=False):
    """A token (and kubeconfig) whose requests are told apart in the emulator log by its user name."""
    token = "reader-%s" % uuid.uuid4().hex[:10]
    kubeapi.add_token(token, namespaces=list(namespaces), cluster_wide_read=cluster_wide_read)
    return token, kubeapi.kubeconfig_for(token)


def requests_of(kubeapi, user, since, settle=0.3):
    # A watch stream is logged when it ends; let the server notice the closed connection first.
    time.sleep(settle)
    return [r for r in kubeapi.requests(since=since) if r.get("user") == user]


def watch_logged(kubeapi, user, since, poke):
    """The emulator logs a watch when its stream ends, which it notices only when writing the next event to
    the closed connection: touch a watched object until the entry shows up."""
    deadline = time.monotonic() + 10
    while True:
        log = requests_of(kubeapi, user, since, settle=0.2)
        if any(r["verb"] == "watch" for r in log) or time.monotonic() > deadline:
            return log
        poke = dict(poke, metadata=dict(poke["metadata"], annotations={"poke": str(time.monotonic())}))
        kubeapi.apply_object(poke)


def running_ns(kubeapi, n=1, prefix="run"):
    ns = unique_namespace(kubeapi, prefix)
    for i in range(n):
        kubeapi.apply_object(vm_manifest("vm%d" % i, ns, "Always", labels={"app": "web"}))
    for i in range(n):
        kubeapi.wait_for("/apis/kubevirt.io/v1/namespaces/%s/virtualmachines/vm%d" % (ns, i),
                         lambda o: o and (o.get("status") or {}).get("ready") is True)
    return ns


# --------------------------------------------------------------------------------------- reading

def test_read_one_vm_costs_exactly_one_request(kubeapi, playbook):
    ns = running_ns(kubeapi)
    token, kubeconfig = reader(kubeapi, [ns])
    mark = kubeapi.mark()
    res = playbook([{"name": "read", VM_INFO: {"name": "vm0", "namespace": ns, "kubeconfig": str(kubeconfig)},
                     "register": "r"}], register=["r"])
    assert res.rc == 0, res
    vm = res.vars["r"]["resources"][0]
    assert vm["metadata"]["name"] == "vm0" and vm["kind"] == "VirtualMachine"
    assert vm["status"]["printableStatus"] == "Running"
    assert res.vars["r"]["api_found"] is True and res.vars["r"]["changed"] is False
    assert "managedFields" not in vm["metadata"]
    log = requests_of(kubeapi, token, mark)
    assert [(r["verb"], r["path"]) for r in log] == [
        ("get", "/apis/kubevirt.io/v1/namespaces/%s/virtualmachines/vm0" % ns)]


def test_vmi_info_lists_running_instances_with_ip(kubeapi, playbook):
    ns = running_ns(kubeapi, 2)
    res = playbook([{VMI_INFO: {"namespace": ns, "label_selectors": ["app=web"], "wait": True}, "register": "r"}],
                   register=["r"])
    assert res.rc == 0, res
    vmis = res.vars["r"]["resources"]
    assert sorted(v["metadata"]["name"] for v in vmis) == ["vm0", "vm1"]
    assert all(v["status"]["phase"] == "Running" and v["status"]["interfaces"][0]["ipAddress"] for v in vmis)


def test_module_defaults_group_sets_connection_for_both_modules(kubeapi, playbook, tmp_path):
    ns = running_ns(kubeapi)
    env = clean_env(kubeapi, tmp_path / "home")
    tasks = [
        {"name": "vm", VM_INFO: {"name": "vm0", "namespace": ns}, "register": "vm"},
        {"name": "vmi", VMI_INFO: {"name": "vm0", "namespace": ns}, "register": "vmi"},
    ]
    context = yaml.safe_load(kubeapi.kubeconfig.read_text())["current-context"]
    defaults = {"group/virtfleet.kubevirt.kubevirt": {"kubeconfig": str(kubeapi.kubeconfig), "context": context}}
    res = playbook(tasks, register=["vm", "vmi"], env=env, module_defaults=defaults)
    assert res.rc == 0, res
    assert res.vars["vm"]["resources"][0]["kind"] == "VirtualMachine"
    assert res.vars["vmi"]["resources"][0]["kind"] == "VirtualMachineInstance"
    # Control: the same tasks without the group defaults have no connection at all.
    bare = playbook([dict(tasks[0], ignore_errors=True)], register=["vm"], env=env)
    assert bare.vars["vm"]["failed"] is True
    assert "No Kubernetes connection is configured" in bare.vars["vm"]["msg"]


def test_check_mode_returns_the_same(kubeapi, playbook):
    ns = running_ns(kubeapi)
    res = playbook([{VM_INFO: {"name": "vm0", "namespace": ns}, "register": "r"}], register=["r"], check=True)
    assert res.rc == 0, res
    assert res.vars["r"]["resources"][0]["metadata"]["name"] == "vm0"


# ------------------------------------------------------------------------------------------ waits

def _start_when_watched(kubeapi, user, since, ns, names, stop):
    """Start the VMs only once the module's watch is open, so the wait really has to watch."""
    deadline = time.monotonic() + 60
    while not stop.is_set() and time.monotonic() < deadline:
        # A watch is logged when it ends, so look for the list that precedes it instead, then give the
        # module a moment to open the stream.
        if any(r["verb"] == "list" for r in kubeapi.requests(since=since) if r.get("user") == user):
            time.sleep(0.5)
            for name in names:
                kubeapi.apply_object(vm_manifest(name, ns, "Always", labels={"fleet": "a"}))
            return
        time.sleep(0.05)


def test_waiting_for_fifty_vms_uses_one_watch(kubeapi, playbook):
    ns = unique_namespace(kubeapi, "fleet")
    names = ["vm%02d" % i for i in range(50)]
    for name in names:
        kubeapi.apply_object(vm_manifest(name, ns, "Halted", labels={"fleet": "a"}))
    token, kubeconfig = reader(kubeapi, [ns])
    mark = kubeapi.mark()
    stop = threading.Event()
    starter = threading.Thread(target=_start_when_watched, args=(kubeapi, token, mark, ns, names, stop), daemon=True)
    starter.start()
    try:
        res = playbook([{VM_INFO: {"namespace": ns, "label_selectors": ["fleet=a"], "wait": True, "wait_timeout": 90,
                                   "kubeconfig": str(kubeconfig)}, "register": "r"}], register=["r"])
    finally:
        stop.set()
        starter.join(10)
    assert res.rc == 0, res
    vms = res.vars["r"]["resources"]
    assert sorted(v["metadata"]["name"] for v in vms) == names
    assert all(v["status"]["printableStatus"] == "Running" for v in vms)
    log = watch_logged(kubeapi, token, mark, vm_manifest("vm00", ns, "Always", labels={"fleet": "a"}))
    verbs = [r["verb"] for r in log]
    assert verbs == ["list", "watch"], log
    assert log[1]["query"].get("labelSelector") == "fleet=a"


def test_wait_for_stopped_with_running_false(kubeapi, playbook):
    ns = running_ns(kubeapi)
    kubeapi.apply_object(vm_manifest("vm0", ns, "Halted", labels={"app": "web"}))
    res = playbook([{VM_INFO: {"name": "vm0", "namespace": ns, "wait": True, "running": False, "wait_timeout": 30},
                     "register": "r"}], register=["r"])
    assert res.rc == 0, res
    assert res.vars["r"]["resources"][0]["status"]["printableStatus"] == "Stopped"


# ----------------------------------------------------------------------------------------- errors

def _free_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def _kubeconfig_variant(kubeapi, path, **changes):
    kc = yaml.safe_load(kubeapi.kubeconfig.read_text())
    cluster = kc["clusters"][0]["cluster"]
    if "server" in changes:
        cluster["server"] = changes["server"]
    if changes.get("drop_ca"):
        cluster.pop("certificate-authority-data", None)
        cluster.pop("certificate-authority", None)
    if "token" in changes:
        kc["users"][0]["user"] = {"token": changes["token"]}
    path.write_text(yaml.safe_dump(kc))
    return str(path)


@pytest.fixture(scope="module")
def error_results(kubeapi, tmp_path_factory):
    """All bad-input cases in one playbook run (each task ignore_errors), one test per case below."""
    from .conftest import run_playbook
    work = tmp_path_factory.mktemp("errors")
    ns = unique_namespace(kubeapi, "err")
    kubeapi.apply_object(vm_manifest("halted", ns, "Halted"))
    other = unique_namespace(kubeapi, "other")
    token = "limited-%s" % uuid.uuid4().hex[:8]
    kubeapi.add_token(token, namespaces=[other])
    cases = {
        "unreachable": {"kubeconfig": _kubeconfig_variant(kubeapi, work / "kc-closed",
                                                          server="https://127.0.0.1:%d" % _free_port())},
        "bad_token": {"kubeconfig": _kubeconfig_variant(kubeapi, work / "kc-bad", token="not-a-real-token")},
        "forbidden": {"kubeconfig": _kubeconfig_variant(kubeapi, work / "kc-limited", token=token)},
        "tls": {"kubeconfig": _kubeconfig_variant(kubeapi, work / "kc-noca", drop_ca=True)},
        "missing_kubeconfig": {"kubeconfig": str(work / "does-not-exist.yaml")},
        "missing_context": {"kubeconfig": str(kubeapi.kubeconfig), "context": "no-such-context"},
        "wait_timeout": {"kubeconfig": str(kubeapi.kubeconfig), "wait": True, "wait_timeout": 2},
    }
    tasks = []
    for case, opts in cases.items():
        args = dict(opts, name="halted", namespace=ns)
        tasks.append({"name": case, VM_INFO: args, "register": case, "ignore_errors": True})
    # Listing all namespaces with a token that may only read one.
    cases["forbidden_cluster"] = {}
    tasks.append({"name": "forbidden_cluster", VM_INFO: {"kubeconfig": str(work / "kc-limited")},
                  "register": "forbidden_cluster", "ignore_errors": True})
    env = kubeapi_env(kubeapi)
    env.pop("K8S_AUTH_KUBECONFIG")
    started = time.monotonic()
    res = run_playbook(work, env, tasks, register=list(cases))
    res.elapsed = time.monotonic() - started
    res.ns = ns
    return res


@pytest.mark.parametrize("case, fragments", [
    ("unreachable", ["Cannot connect to the API server at https://127.0.0.1:", "connection refused", "host"]),
    ("bad_token", ["rejected the credentials (401 Unauthorized)", "api_key"]),
    ("forbidden", ["403 Forbidden", "may not get VirtualMachine", "namespace \"err-"]),
    ("forbidden_cluster", ["403 Forbidden", "may not list VirtualMachines in all namespaces", "set namespace"]),
    ("tls", ["TLS verification of the API server", "ca_cert", "validate_certs=false"]),
    ("missing_kubeconfig", ["does-not-exist.yaml does not exist", "set kubeconfig"]),
    ("missing_context", ['"no-such-context" is not in', "set context"]),
    ("wait_timeout", ["Timed out after 2s waiting for 1 of 1 VirtualMachine to be ready",
                      "/halted (printableStatus Stopped", "wait_timeout"]),
])
def test_bad_input_is_one_clear_sentence(error_results, case, fragments):
    result = error_results.vars[case]
    assert result["failed"] is True, result
    msg = result["msg"]
    for fragment in fragments:
        assert fragment in msg, msg
    assert "\n" not in msg
    assert "Traceback" not in str(result) and "module_stderr" not in result
    # ansible-core 2.19 adds this placeholder to every failed result unless tracebacks are enabled.
    assert result.get("exception", "(traceback unavailable)") == "(traceback unavailable)"


def test_wait_timeout_reports_pending_objects(error_results):
    pending = error_results.vars["wait_timeout"]["pending"]
    assert pending == [{"namespace": error_results.ns, "name": "halted", "state": pending[0]["state"]}]
    assert "Stopped" in pending[0]["state"]


# ------------------------------------------------------------------------------ connection options

@pytest.fixture(scope="module")
def auth_results(kubeapi, tmp_path_factory):
    """One playbook, one task per way of connecting; each variant must read the same VM."""
    from .conftest import run_playbook
    work = tmp_path_factory.mktemp("auth")
    ns = running_ns(kubeapi, prefix="auth")
    user = "cert-%s" % uuid.uuid4().hex[:8]
    token = "tok-%s" % uuid.uuid4().hex[:8]
    kubeapi.add_token(token, namespaces=[ns], user=user)
    cert, key = kubeapi.client_cert(user)
    one_vm = {"name": "vm0", "namespace": ns}
    variants = {
        "host_token_ca": {"host": kubeapi.url, "api_key": token, "ca_cert": str(kubeapi.ca_file)},
        "host_token_insecure": {"host": kubeapi.url, "api_key": token, "validate_certs": False},
        "client_cert": {"host": kubeapi.url, "client_cert": str(cert), "client_key": str(key),
                        "ca_cert": str(kubeapi.ca_file)},
        "kubeconfig_dict": {"kubeconfig": yaml.safe_load(kubeapi.kubeconfig.read_text())},
        "aliases": {"host": kubeapi.url, "api_key": token, "ssl_ca_cert": str(kubeapi.ca_file), "verify_ssl": True},
    }
    tasks = [{"name": name, VM_INFO: dict(opts, **one_vm), "register": name, "ignore_errors": True}
             for name, opts in variants.items()]
    env = clean_env(kubeapi, work / "home")
    res = run_playbook(work, env, tasks, register=list(variants))
    # AWX-style: nothing in the task, everything from K8S_AUTH_* (kubernetes.core's names).
    env_only = dict(env, K8S_AUTH_HOST=kubeapi.url, K8S_AUTH_API_KEY=token, K8S_AUTH_SSL_CA_CERT=str(kubeapi.ca_file),
                    K8S_AUTH_VERIFY_SSL="yes")
    res_env = run_playbook(work, env_only, [{"name": "env", VM_INFO: one_vm, "register": "env", "ignore_errors": True}],
                           register=["env"])
    res.vars.update(res_env.vars)
    return res


@pytest.mark.parametrize("variant", ["host_token_ca", "host_token_insecure", "client_cert", "kubeconfig_dict",
                                     "aliases", "env"])
def test_connection_variants(auth_results, variant):
    result = auth_results.vars[variant]
    assert not result.get("failed"), result.get("msg")
    assert [r["metadata"]["name"] for r in result["resources"]] == ["vm0"]


# ------------------------------------------------------------------------------------------- docs

@pytest.mark.parametrize("module", [VM_INFO, VMI_INFO])
def test_ansible_doc_renders(module, tmp_path):
    env = os.environ.copy()
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-doc"), "--json", module], capture_output=True,
                          text=True, env=env, cwd=str(tmp_path), check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)[module]["doc"]
    for option in ("kubeconfig", "context", "host", "api_key", "validate_certs", "ca_cert", "wait", "wait_timeout",
                   "label_selectors", "field_selectors", "hidden_fields"):
        assert option in doc["options"], option
    assert doc["attributes"]["check_mode"]["support"] == "full"
    assert doc["attributes"]["action_group"]["membership"] == ["virtfleet.kubevirt.kubevirt"]
    text = subprocess.run([str(Path(sys.executable).parent / "ansible-doc"), module], capture_output=True, text=True,
                          env=env, cwd=str(tmp_path), check=False, timeout=120)
    assert text.returncode == 0 and "K8S_AUTH_KUBECONFIG" in text.stdout


# ------------------------------------------------------------------------------------------ retries

@pytest.mark.parametrize("statuses, reset", [((503,), False), ((429,), False), ((), True)])
def test_transient_faults_are_retried(kubeapi, playbook, statuses, reset):
    ns = running_ns(kubeapi, prefix="flaky")
    token, kubeconfig = reader(kubeapi, [ns])
    mark = kubeapi.mark()
    kubeapi.set_faults(rate=1.0, statuses=statuses, reset=reset, count=2, path_regex="/namespaces/%s/" % ns)
    try:
        res = playbook([{VM_INFO: {"name": "vm0", "namespace": ns, "kubeconfig": str(kubeconfig)}, "register": "r"}],
                       register=["r"])
    finally:
        kubeapi.clear_faults()
    assert res.rc == 0, res
    assert res.vars["r"]["resources"][0]["metadata"]["name"] == "vm0"
    log = requests_of(kubeapi, token, mark, settle=0)
    assert [(r["verb"], r["fault"] is not None) for r in log] == [("get", True), ("get", True), ("get", False)]


def test_persistent_server_errors_give_up_with_a_sentence(kubeapi, playbook):
    ns = running_ns(kubeapi, prefix="broken")
    token, kubeconfig = reader(kubeapi, [ns])
    mark = kubeapi.mark()
    kubeapi.set_faults(rate=1.0, statuses=(500,), path_regex="/namespaces/%s/" % ns)
    try:
        res = playbook([{VM_INFO: {"name": "vm0", "namespace": ns, "kubeconfig": str(kubeconfig)}, "register": "r",
                         "ignore_errors": True}], register=["r"])
    finally:
        kubeapi.clear_faults()
    assert res.vars["r"]["failed"] is True
    assert "(500)" in res.vars["r"]["msg"] and "retries did not help" in res.vars["r"]["msg"]
    assert len(requests_of(kubeapi, token, mark, settle=0)) == 6   # the retry cap (RetryPolicy.attempts)


def test_unserved_api_version_sets_api_found_false(kubeapi, playbook):
    ns = running_ns(kubeapi, prefix="apiv")
    res = playbook([{VM_INFO: {"namespace": ns, "api_version": "kubevirt.io/v9"}, "register": "list"},
                    {VM_INFO: {"namespace": ns, "name": "vm0", "api_version": "kubevirt.io/v9"}, "register": "get"},
                    {VM_INFO: {"namespace": ns, "name": "absent"}, "register": "absent"}],
                   register=["list", "get", "absent"])
    assert res.rc == 0, res
    for key in ("list", "get"):
        assert res.vars[key]["api_found"] is False and res.vars[key]["resources"] == []
    assert res.vars["absent"]["api_found"] is True and res.vars["absent"]["resources"] == []
