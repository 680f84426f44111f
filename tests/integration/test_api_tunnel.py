"""The API tunnel end to end against the emulator's virt-api portforward (issue #19), without ssh: ansible-inventory
gives a host the api_tunnel variables, and its ProxyCommand, split as ansible-core splits it, %-expanded as ssh does
and run by /bin/sh, carries bytes to an echo "guest" registered in the emulator and back. Each failure virt-api or
kube-apiserver can give is one sentence on stderr with exit 255, and no credential is in argv, the inventory output
or the environment the bridge needs when the source holds them inline."""
import json
import os
import re
import socket
import stat
import subprocess
import sys
import threading
import time

import pytest

from ansible.plugins.connection import ConnectionBase

from tests.kubeapi.tcpguest import TcpGuest
from tests.integration.conftest import clean_env, unique_namespace, vm_manifest
from tests.integration.inventory_support import run_inventory, unwrap
from tests.kubeapi.tls import CertificateAuthority

TOKEN = "tunnel-inventory-token-6f1c2a"
BRIDGE = os.path.join(os.path.dirname(__file__), "..", "..", ".build", "collections", "ansible_collections", "virtfleet",
                      "kubevirt", "plugins", "plugin_utils", "_api_tunnel.py")
VMIS = "/apis/kubevirt.io/v1/namespaces/%s/virtualmachineinstances"
PF = "/apis/subresources.kubevirt.io/v1/namespaces/%s/virtualmachineinstances/%s/portforward/%d"


@pytest.fixture(scope="module")
def cluster(kubeapi):
    """A namespace with a running VM `web` whose port 22 reaches an echo guest, and a token for the inventory."""
    ns = unique_namespace(kubeapi, "tun")
    kubeapi.apply_object(vm_manifest("web", ns))
    kubeapi.wait_for(VMIS % ns + "/web", lambda o: o and (o.get("status") or {}).get("phase") == "Running", timeout=30)
    guest = TcpGuest()
    kubeapi._hook("PUT", "guest-ports", {"namespace": ns, "name": "web", "port": 22, "target_port": guest.port})
    kubeapi.add_token(TOKEN, namespaces=[ns], verbs=["get", "list", "watch"], user="inventory-sa",
                      resources=["virtualmachines", "virtualmachineinstances", "services",
                                 "virtualmachineinstances/portforward"])
    try:
        yield ns, guest
    finally:
        guest.close()


def source(kubeapi, ns, **extra):
    config = {"plugin": "virtfleet.kubevirt.kubevirt", "namespaces": [ns],
              "address_strategies": ["load_balancer", "node_port", "api_tunnel"]}
    config.update(extra)
    return config


def inline_source(kubeapi, ns):
    """Credentials inline, as an AWX-less user may write them: host, api_key and the CA file."""
    return source(kubeapi, ns, host=kubeapi.url, api_key=TOKEN, ca_cert=str(kubeapi.ca_file))


def proxy_command(ssh_args, port):
    """The command ssh would run: ansible-core's split of ansible_ssh_common_args, then ssh's %-expansion."""
    words = ConnectionBase._split_ssh_args(ssh_args)
    assert words[0] == "-o" and words[1].startswith("ProxyCommand=")
    return re.sub(r"%(.)", lambda m: {"%": "%", "p": str(port)}[m.group(1)], words[1][len("ProxyCommand="):])


def start(command, env):
    return subprocess.Popen(["/bin/sh", "-c", "exec " + command], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)


def echo_through(proc, payload):
    writer = threading.Thread(target=lambda: (proc.stdin.write(payload), proc.stdin.flush()), daemon=True)
    writer.start()
    got = b""
    deadline = time.monotonic() + 60
    while len(got) < len(payload) and time.monotonic() < deadline:
        chunk = proc.stdout.read1(65536)
        if not chunk:
            break
        got += chunk
    proc.stdin.close()
    rc = proc.wait(30)
    return got, rc, proc.stderr.read().decode()


def bridge(kubeapi, env, *args, stdin=b""):
    proc = subprocess.run([sys.executable, BRIDGE] + list(args), input=stdin,
                          capture_output=True, env=env, timeout=90)
    return proc.returncode, proc.stdout, proc.stderr.decode()


# --- the inventory and the tunnel together --------------------------------------------------------------------
def test_inventory_host_vars_then_bytes_through_the_proxy_command(kubeapi, cluster, tmp_path):
    ns, guest = cluster
    env = clean_env(kubeapi, tmp_path / "home")   # no K8S_AUTH_*, no KUBECONFIG: only what the source says
    run = run_inventory(kubeapi, tmp_path, inline_source(kubeapi, ns), args=("--host", "%s-web" % ns), env=env)
    assert run.rc == 0, run
    host = unwrap(json.loads(run.stdout))  # ansible-core < 2.19 prints {"__ansible_unsafe": ...}
    print("ansible-inventory --host %s-web:\n%s" % (ns, json.dumps(host, indent=2, sort_keys=True)))
    assert host["ansible_host"] == "web.%s.api-tunnel" % ns
    assert host["ansible_port"] == 22
    assert host["vm_address_source"] == "api_tunnel"
    assert TOKEN not in run.stdout + run.stderr
    args = host["ansible_ssh_common_args"]
    auth_file = re.search(r"--auth-file (\S+?)'", args).group(1)
    assert auth_file.startswith(str(tmp_path / "home" / ".ansible" / "virtfleet.kubevirt" / "api-tunnel") + os.sep)
    assert stat.S_IMODE(os.stat(auth_file).st_mode) == 0o600
    assert json.loads(open(auth_file).read()) == {"api_key": TOKEN}

    mark = kubeapi.mark()
    before = guest.connections
    payload = os.urandom(3 * 1024 * 1024)
    proc = start(proxy_command(args, 22), env)
    got, rc, err = echo_through(proc, payload)
    assert (rc, err) == (0, "")
    assert got == payload
    assert guest.connections == before + 1
    entries = [e for e in kubeapi.requests(since=mark) if e["path"] == PF % (ns, "web", 22)]
    assert [(e["status"], e["user"], e["verb"]) for e in entries] == [(101, "inventory-sa", "get")]


def test_list_output_and_verbose_runs_hold_no_secret(kubeapi, cluster, tmp_path):
    ns, _guest = cluster
    env = clean_env(kubeapi, tmp_path / "home")
    run = run_inventory(kubeapi, tmp_path, inline_source(kubeapi, ns), args=("--list", "-vvv"), env=env)
    assert run.rc == 0, run
    assert TOKEN not in run.stdout and TOKEN not in run.stderr
    assert "--auth-file" in run.stdout


def test_fallback_order_keeps_a_node_port_service_first(kubeapi, cluster, tmp_path):
    ns, _guest = cluster
    kubeapi.apply_object(vm_manifest("exposed", ns))
    kubeapi.wait_for(VMIS % ns + "/exposed", lambda o: o and (o.get("status") or {}).get("phase") == "Running", timeout=30)
    kubeapi.apply_object({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "exposed-ssh", "namespace": ns},
                          "spec": {"type": "NodePort", "selector": {"kubevirt.io/domain": "exposed"},
                                   "ports": [{"port": 22, "targetPort": 22, "protocol": "TCP"}]}})
    run = run_inventory(kubeapi, tmp_path, inline_source(kubeapi, ns), env=clean_env(kubeapi, tmp_path / "home"))
    assert run.rc == 0, run
    sources = dict((name, v["vm_address_source"]) for name, v in run.hostvars.items() if name.startswith(ns))
    assert sources == {"%s-web" % ns: "api_tunnel", "%s-exposed" % ns: "node_port"}
    assert "ansible_ssh_common_args" not in run.hostvars["%s-exposed" % ns]


def test_environment_credentials_are_inherited_not_copied(kubeapi, cluster, tmp_path):
    """K8S_AUTH_* set for the inventory (as AWX does): the ProxyCommand names no auth file, and the bridge, run with
    the same environment, authenticates with it."""
    ns, _guest = cluster
    env = clean_env(kubeapi, tmp_path / "home")
    env.update({"K8S_AUTH_HOST": kubeapi.url, "K8S_AUTH_API_KEY": TOKEN, "K8S_AUTH_SSL_CA_CERT": str(kubeapi.ca_file)})
    run = run_inventory(kubeapi, tmp_path, source(kubeapi, ns), args=("--host", "%s-web" % ns), env=env)
    assert run.rc == 0, run
    args = unwrap(json.loads(run.stdout))["ansible_ssh_common_args"]
    assert "--auth-file" not in args and TOKEN not in args and kubeapi.url not in args
    assert not (tmp_path / "home" / ".ansible" / "virtfleet.kubevirt").exists()
    got, rc, err = echo_through(start(proxy_command(args, 22), env), b"from the environment")
    assert (got, rc, err) == (b"from the environment", 0, "")
    # the same command without those variables has no credentials at all
    got, rc, err = echo_through(start(proxy_command(args, 22), clean_env(kubeapi, tmp_path / "home")), b"x")
    assert rc == 255 and err.startswith("No Kubernetes connection is configured")


# --- each failure, one sentence --------------------------------------------------------------------------------
def kubeconfig_env(kubeapi, tmp_path, token=None):
    env = clean_env(kubeapi, tmp_path / "home")
    env["KUBECONFIG"] = str(kubeapi.kubeconfig_for(token=token) if token else kubeapi.kubeconfig)
    return env


def test_forbidden_names_the_user_and_the_rbac_rule(kubeapi, cluster, tmp_path):
    ns, guest = cluster
    kubeapi.add_token("no-portforward", namespaces=[ns], verbs=["get", "list"], user="reader",
                      resources=["virtualmachines", "virtualmachineinstances/console"])
    before = guest.connections
    rc, out, err = bridge(kubeapi, kubeconfig_env(kubeapi, tmp_path, "no-portforward"), "--namespace", ns, "--name",
                          "web", "--port", "22")
    assert (rc, out) == (255, b"")
    assert err == ("forbidden: reader may not get virtualmachineinstances/portforward in %s (grant verb get on "
                   "subresources.kubevirt.io virtualmachineinstances/portforward).\n" % ns)
    assert guest.connections == before


def test_vmi_missing_closed_port_and_not_running(kubeapi, cluster, tmp_path):
    ns, _guest = cluster
    env = kubeconfig_env(kubeapi, tmp_path)
    rc, _out, err = bridge(kubeapi, env, "--namespace", ns, "--name", "ghost", "--port", "22")
    assert (rc, err) == (255, "VMI %s/ghost not found (404): the VM is not running or has another name (the tunnel "
                              "needs a running VirtualMachineInstance).\n" % ns)
    rc, _out, err = bridge(kubeapi, env, "--namespace", ns, "--name", "web", "--port", "2222")
    assert (rc, err) == (255, "nothing listens on port 2222 in VMI %s/web (start the SSH server in the guest, or set "
                              "ssh_port / the annotation virtfleet.kubevirt/ssh-port to the port it listens on).\n" % ns)
    status, doc, _ = kubeapi.http("POST", VMIS % ns, {
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance", "metadata": {"name": "pending"},
        "spec": {"nodeSelector": {"no-such-label": "x"}, "domain": {"devices": {}, "memory": {"guest": "128Mi"}}}})
    assert status == 201, doc
    kubeapi.wait_for(VMIS % ns + "/pending", lambda o: o and (o.get("status") or {}).get("phase") == "Scheduling",
                     timeout=30)
    rc, _out, err = bridge(kubeapi, env, "--namespace", ns, "--name", "pending", "--port", "22")
    assert (rc, err) == (255, "VMI %s/pending is not running (phase Scheduling): start the VM, or wait until it runs.\n" % ns)


def test_paused_vmi(kubeapi, cluster, tmp_path):
    ns, _guest = cluster
    kubeapi.apply_object(vm_manifest("sleepy", ns))
    kubeapi.wait_for(VMIS % ns + "/sleepy", lambda o: o and (o.get("status") or {}).get("phase") == "Running", timeout=30)
    status, doc, _ = kubeapi.http("PUT", "/apis/subresources.kubevirt.io/v1/namespaces/%s/virtualmachineinstances/"
                                         "sleepy/pause" % ns, {})
    assert status == 200, doc
    kubeapi.wait_for(VMIS % ns + "/sleepy", lambda o: any(c.get("type") == "Paused" for c in (o.get("status") or {}).get(
        "conditions") or []), timeout=30)
    rc, _out, err = bridge(kubeapi, kubeconfig_env(kubeapi, tmp_path), "--namespace", ns, "--name", "sleepy", "--port", "22")
    assert (rc, err) == (255, "VMI %s/sleepy is paused: unpause it (virtctl unpause vmi sleepy -n %s) to connect.\n" % (ns, ns))


def test_api_server_unreachable_and_tls_checked(kubeapi, cluster, tmp_path):
    ns, _guest = cluster
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    dead = "https://127.0.0.1:%d" % sock.getsockname()[1]
    sock.close()
    env = kubeconfig_env(kubeapi, tmp_path)
    rc, _out, err = bridge(kubeapi, env, "--namespace", ns, "--name", "web", "--port", "22", "--host", dead)
    assert (rc, err) == (255, "Cannot connect to the API server at %s (connection refused): check host / the kubeconfig "
                              "server URL and that the API server is running.\n" % dead)
    # a CA that did not sign the emulator's certificate: TLS is verified with the connection's settings
    other_ca = tmp_path / "other-ca.pem"
    other_ca.write_bytes(CertificateAuthority().cert_pem)
    rc, _out, err = bridge(kubeapi, env, "--namespace", ns, "--name", "web", "--port", "22", "--ca-cert", str(other_ca))
    assert rc == 255 and err.startswith("TLS verification of the API server %s failed (" % kubeapi.url), err
    rc, out, err = bridge(kubeapi, env, "--namespace", ns, "--name", "web", "--port", "22", "--ca-cert", str(other_ca),
                          "--no-validate-certs", stdin=b"insecure but asked for")
    assert (rc, out, err) == (0, b"insecure but asked for", "")


def test_fault_injected_upgrade_failure_is_a_sentence(kubeapi, cluster, tmp_path):
    ns, _guest = cluster
    kubeapi.set_faults(rate=1, statuses=(500,), path_regex="portforward", count=1)
    try:
        rc, _out, err = bridge(kubeapi, kubeconfig_env(kubeapi, tmp_path), "--namespace", ns, "--name", "web", "--port", "22")
    finally:
        kubeapi.clear_faults()
    assert rc == 255 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("The API server failed on the tunnel request GET %s (500)" % (PF % (ns, "web", 22))), err
