"""Secrets never show: planted tokens, client keys, proxy passwords, cloud-init data and registry credentials are
grepped for in everything a user or a log collector sees — stdout and stderr of `ansible-playbook -vvv --diff`
(check mode and normal, successes and failures), the registered results, `ansible-inventory --list -vvv` output and
the inventory cache files (which must be mode 0600). TLS: verification is on by default and turning it off warns.
The API tunnel (issue #19): sources with inline credentials and address_strategies [api_tunnel], their host variables,
ssh runs through the tunnel and the bridge's errors, while the command line of every process is sampled; the
credentials are only in the bridge's 0600 auth files.
"""
import base64
import json
import os
import socket
import stat
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
import yaml

from tests import summary
from tests.kubeapi.tcpguest import TcpGuest

from .conftest import clean_env, unique_namespace
from .inventory_support import unwrap

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]
KUBEVIRT_MANIFEST = str(REPO / "tests" / "fixtures" / "install" / "kubevirt-v1.9.0" / "kubevirt-operator.yaml")
VM = "virtfleet.kubevirt.kubevirt_vm"
VM_INFO = "virtfleet.kubevirt.kubevirt_vm_info"
VMI_INFO = "virtfleet.kubevirt.kubevirt_vmi_info"
INSTALL = "virtfleet.kubevirt.kubevirt_install"


def planted(name):
    return "vfsecret-%s-%s" % (name, uuid.uuid4().hex[:12])


def grep(secrets, texts):
    """[(secret name, where)] for every planted value found in any of the texts."""
    found = []
    for where, text in texts.items():
        for name, value in secrets.items():
            if value in text:
                found.append((name, where))
    return found


def run(cmd, env, cwd, timeout=600):
    return subprocess.run([str(c) for c in cmd], env=env, cwd=str(cwd), capture_output=True, text=True, timeout=timeout,
                          check=False)


def ansible_env(kubeapi, tmp_path):
    env = clean_env(kubeapi, tmp_path / "home")
    env.update({"ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "0", "ANSIBLE_LOCALHOST_WARNING": "0",
                "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"), "ANSIBLE_REMOTE_TEMP": str(tmp_path / "tmp"),
                "ANSIBLE_HOME": str(tmp_path / "ansible-home"), "ANSIBLE_DEPRECATION_WARNINGS": "0",
                "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0", "ANSIBLE_PIPELINING": "1"})
    return env


def playbook(tmp_path, env, tasks, register, args=("-vvv", "--diff")):
    """Run tasks on localhost; returns (proc, registered results as JSON text)."""
    out = tmp_path / ("vars-%s.json" % uuid.uuid4().hex[:6])
    content = "{{ {%s} | to_json }}" % ", ".join("%r: (%s | default(None))" % (n, n) for n in register)
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [{"block": tasks, "always": [
        {"name": "Save registered results", "check_mode": False, "ansible.builtin.copy": {"content": content, "dest": str(out)}}]}]}]
    path = tmp_path / ("play-%s.yml" % uuid.uuid4().hex[:6])
    path.write_text(yaml.safe_dump(play, sort_keys=False))
    proc = run([BIN / "ansible-playbook", "-i", "localhost,", "-c", "local", "-e",
                "ansible_python_interpreter=%s" % sys.executable, path] + list(args), env, tmp_path)
    return proc, (out.read_text() if out.exists() else "")


@pytest.fixture(scope="module")
def world(kubeapi, tmp_path_factory):
    """A namespace, a token that may use it, and kubeconfigs that carry planted credentials."""
    tmp = tmp_path_factory.mktemp("secrets")
    ns = unique_namespace(kubeapi, "sec")
    secrets = dict((n, planted(n)) for n in (
        "token", "dict-token", "bad-token", "proxy-password", "proxy-basic-auth", "cloud-init-password",
        "user-data", "old-user-data", "spec-user-data", "vms-user-data", "registry-password"))
    kubeapi.add_token(secrets["token"], namespaces=[ns, "kubevirt"], cluster_wide_read=True)
    kubeapi.add_token(secrets["dict-token"], namespaces=[ns], cluster_wide_read=True)
    cert, key = kubeapi.client_cert("vfsecret-cert-user")
    key_pem = key.read_text()
    # The key's PEM body (a long base64 run) and its base64 form as client-key-data in a kubeconfig.
    secrets["client-key-pem"] = "".join(key_pem.strip().splitlines()[1:-1])[:64]
    secrets["client-key-data"] = base64.b64encode(key_pem.encode()).decode()[:64]
    kubeconfig = yaml.safe_load(kubeapi.kubeconfig.read_text())
    kubeconfig["users"][0]["user"] = {"token": secrets["dict-token"],
                                      "client-certificate-data": base64.b64encode(cert.read_bytes()).decode(),
                                      "client-key-data": base64.b64encode(key_pem.encode()).decode()}
    token_kubeconfig = kubeapi.kubeconfig_for(secrets["token"], path=tmp / "kubeconfig-token")
    no_ca = yaml.safe_load(token_kubeconfig.read_text())
    for cluster in no_ca["clusters"]:
        cluster["cluster"].pop("certificate-authority-data", None)
        cluster["cluster"].pop("certificate-authority", None)
    no_ca_path = tmp / "kubeconfig-no-ca"
    no_ca_path.write_text(yaml.safe_dump(no_ca))
    # A registry pull secret in the cluster; kubevirt_install only ever names it.
    kubeapi.apply_object({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kubevirt"}})
    docker_config = {"auths": {"registry.example.com": {"username": "mirror", "password": secrets["registry-password"]}}}
    kubeapi.apply_object({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
                          "metadata": {"name": "mirror-pull", "namespace": "kubevirt"},
                          "data": {".dockerconfigjson": base64.b64encode(json.dumps(docker_config).encode()).decode()}})
    # The registry password as stored (base64 inside base64) must not show either.
    secrets["registry-secret-data"] = base64.b64encode(json.dumps(docker_config).encode()).decode()[20:84]
    return {"ns": ns, "secrets": secrets, "kubeconfig_dict": kubeconfig, "token_kubeconfig": str(token_kubeconfig),
            "no_ca_kubeconfig": str(no_ca_path), "admin_kubeconfig": str(kubeapi.kubeconfig), "ca_file": str(kubeapi.ca_file), "url": kubeapi.url}


def user_data(password):
    return "#cloud-config\nchpasswd: {expire: false}\npassword: %s\n" % password


def module_tasks(w):
    s, ns = w["secrets"], w["ns"]
    by_token = {"host": w["url"], "api_key": s["token"], "ca_cert": w["ca_file"]}
    by_dict = {"kubeconfig": w["kubeconfig_dict"]}
    spec_with_user_data = {"domain": {"devices": {"disks": [{"name": "ci", "disk": {"bus": "virtio"}}]},
                                      "resources": {"requests": {"memory": "64Mi"}}},
                           "volumes": [{"name": "ci", "cloudInitNoCloud": {"userData": user_data(s["spec-user-data"])}}]}
    tasks = [
        # Successes, check mode first (dry-run writes and their diffs), then for real.
        {"name": "vm with cloud-init, check mode", VM: dict(by_token, name="ci-a", namespace=ns, memory="64Mi",
                                                            cloud_init={"user_data": user_data(s["old-user-data"])}),
         "check_mode": True, "register": "check_create"},
        {"name": "vm with cloud-init", VM: dict(by_token, name="ci-a", namespace=ns, memory="64Mi", wait=True,
                                                cloud_init={"user_data": user_data(s["old-user-data"])}),
         "register": "create"},
        {"name": "change the user data, check mode", VM: dict(by_token, name="ci-a", namespace=ns, memory="64Mi",
                                                              cloud_init={"user_data": user_data(s["user-data"])}),
         "check_mode": True, "register": "check_update"},
        {"name": "change the user data", VM: dict(by_token, name="ci-a", namespace=ns, memory="64Mi",
                                                  cloud_init={"user_data": user_data(s["user-data"])}),
         "register": "update"},
        {"name": "generated cloud-config with a password, kubeconfig as a dict",
         VM: dict(by_dict, name="ci-b", namespace=ns, memory="64Mi", cloud_init={"user": "fedora", "password": s["cloud-init-password"]}),
         "register": "password_vm"},
        {"name": "user data inside spec", VM: dict(by_token, name="ci-c", namespace=ns, spec=spec_with_user_data),
         "register": "spec_vm"},
        {"name": "user data in a vms item", VM: dict(by_token, namespace=ns, memory="64Mi", vms=[
            {"name": "ci-d", "cloud_init": {"user_data": user_data(s["vms-user-data"])}}, {"name": "ci-e"}]),
         "register": "vms_vm"},
        {"name": "read them back", VM_INFO: dict(by_dict, namespace=ns), "register": "vm_info"},
        {"name": "read the instances", VMI_INFO: dict(by_token, namespace=ns), "register": "vmi_info"},
        {"name": "install with a pull secret, check mode", INSTALL: dict(
            kubeconfig=w["admin_kubeconfig"], manifest_path=KUBEVIRT_MANIFEST, image_registry="registry.example.com/kubevirt",
            image_pull_secrets=["mirror-pull"], wait=False, emulation=True), "check_mode": True, "register": "install"},
        # Failures: a token the server does not know (401), one without access (403), a proxy that is not there.
        {"name": "unknown token", VM_INFO: dict(by_token, api_key=s["bad-token"], namespace=ns),
         "register": "unauthorized", "ignore_errors": True},
        {"name": "forbidden namespace", VM: dict(by_dict, name="x", namespace="kube-system", memory="64Mi",
                                                 cloud_init={"user_data": user_data(s["user-data"])}),
         "register": "forbidden", "ignore_errors": True},
        {"name": "unknown token, check mode", VM: dict(by_token, api_key=s["bad-token"], name="ci-a", namespace=ns,
                                                       cloud_init={"password": s["cloud-init-password"]}),
         "check_mode": True, "register": "unauthorized_check", "ignore_errors": True},
        {"name": "proxy with a password", VM_INFO: dict(
            by_token, namespace=ns, proxy="http://mirror:%s@127.0.0.1:9" % s["proxy-password"],
            proxy_headers={"proxy_basic_auth": "mirror:%s" % s["proxy-basic-auth"]}),
         "register": "proxy", "ignore_errors": True},
        {"name": "ansible-core's own argument error next to secrets", VM: dict(
            by_dict, name="x", namespace=ns, colour="red", spec=spec_with_user_data,
            proxy="http://mirror:%s@127.0.0.1:9" % s["proxy-password"]), "register": "core_error", "ignore_errors": True},
        {"name": "bad input next to secrets", VM: dict(by_dict, name="Bad_Name", namespace=ns,
                                                       cloud_init={"user_data": user_data(s["user-data"])}),
         "register": "bad_input", "ignore_errors": True},
    ]
    return tasks, [t["register"] for t in tasks]


def test_no_secret_in_module_output(kubeapi, world, tmp_path):
    tasks, register = module_tasks(world)
    env = ansible_env(kubeapi, tmp_path)
    # -vvv puts the chained traceback of each reported failure in the output (ansible-core 2.16 at -vvv, 2.19 with
    # tracebacks enabled): the leak check below must cover it on both.
    env["ANSIBLE_DISPLAY_TRACEBACK"] = "error"
    proc, registered = playbook(tmp_path, env, tasks, register)
    results = json.loads(registered) if registered else {}
    assert results, proc.stdout[-3000:] + proc.stderr[-3000:]
    # The runs did what they claim: successes succeeded and each failure failed for the planted reason.
    for name in ("check_create", "create", "check_update", "update", "password_vm", "spec_vm", "vms_vm", "vm_info",
                 "vmi_info", "install"):
        assert not results[name].get("failed"), (name, results[name])
    assert results["create"]["changed"] and results["update"]["changed"] and "diff" in results["check_update"]
    assert any(v["metadata"]["name"] == "ci-a" for v in results["vm_info"]["resources"])
    assert "(401 Unauthorized)" in results["unauthorized"]["msg"]
    assert results["forbidden"]["failed"] and "kube-system" in results["forbidden"]["msg"]
    assert results["unauthorized_check"]["failed"] and results["proxy"]["failed"] and results["bad_input"]["failed"]
    assert results["core_error"]["failed"] and "colour" in results["core_error"]["msg"]
    # The tracebacks are the -vvv report of the failures above (the leak check covers them); a crash would be a
    # module_stderr / MODULE FAILURE result instead.
    out = proc.stdout + proc.stderr
    assert "Traceback" in out and "MODULE FAILURE" not in out and "module_stderr" not in out
    # The user data went to the API server, and the results show the marker (with a digest) instead.
    stored = kubeapi.get_object("/apis/kubevirt.io/v1/namespaces/%s/virtualmachines/ci-a" % world["ns"])
    volumes = stored["spec"]["template"]["spec"]["volumes"]
    assert any(world["secrets"]["user-data"] in json.dumps(v) for v in volumes)
    leaks = grep(world["secrets"], {"stdout": proc.stdout, "stderr": proc.stderr, "registered results": registered})
    summary.record("secrets", "module run (-vvv --diff, check and normal, %d tasks): %d planted values, leaks: %d"
                   % (len(tasks), len(world["secrets"]), len(leaks)))
    assert not leaks, leaks
    assert "<hidden: cloud-init user data, sha256:" in registered


def inventory_source(tmp_path, world, cache_dir, extra=None):
    source = tmp_path / ("inv-%s" % uuid.uuid4().hex[:6]) / "kubevirt.yml"
    source.parent.mkdir()
    config = {"plugin": "virtfleet.kubevirt.kubevirt", "kubeconfig": world["kubeconfig_dict"],
              "namespaces": [world["ns"]], "cache": True, "cache_plugin": "ansible.builtin.jsonfile",
              "cache_connection": str(cache_dir), "cache_timeout": 3600}
    config.update(extra or {})
    source.write_text(yaml.safe_dump(config, sort_keys=False))
    return source


def test_no_secret_in_inventory_output_or_cache(kubeapi, world, tmp_path):
    ns = world["ns"]
    for name in ("inv-a", "inv-b"):
        kubeapi.apply_object({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
                              "metadata": {"name": name, "namespace": ns, "labels": {"app": "inv"}},
                              "spec": {"runStrategy": "Always", "template": {"spec": {
                                  "domain": {"devices": {"disks": [{"name": "ci", "disk": {}}]}},
                                  "volumes": [{"name": "ci", "cloudInitNoCloud": {
                                      "userData": user_data(world["secrets"]["user-data"])}}]}}}})
    for name in ("inv-a", "inv-b"):
        kubeapi.wait_for("/apis/kubevirt.io/v1/namespaces/%s/virtualmachineinstances/%s" % (ns, name),
                         lambda o: o and (o.get("status") or {}).get("phase") == "Running")
    cache_dir = tmp_path / "cache"
    source = inventory_source(tmp_path, world, cache_dir)
    env = ansible_env(kubeapi, tmp_path)
    cmd = [BIN / "ansible-inventory", "-i", source, "--list", "-vvv"]
    first = run(cmd, env, tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    mark = kubeapi.mark()
    second = run(cmd, env, tmp_path)  # from the cache
    assert second.returncode == 0, second.stderr[-3000:]
    assert not [r for r in kubeapi.requests(since=mark) if r.get("user") == world["secrets"]["dict-token"]]
    listing = first.stdout[first.stdout.index("{"):] if first.stdout.startswith("{") else \
        first.stdout[first.stdout.index("\n{") + 1:]  # -vvv prints a version header first
    hosts = json.loads(listing)["_meta"]["hostvars"]
    assert {"%s-inv-a" % ns, "%s-inv-b" % ns} <= set(hosts)
    files = [p for p in cache_dir.rglob("*") if p.is_file()]
    assert files, "no cache file written"
    modes = dict((str(p), stat.S_IMODE(os.stat(p).st_mode)) for p in files)
    assert all(mode == 0o600 for mode in modes.values()), modes
    texts = {"first stdout": first.stdout, "first stderr": first.stderr, "cached stdout": second.stdout,
             "cached stderr": second.stderr}
    texts.update(("cache file %s" % p.name, p.read_text(errors="replace")) for p in files)
    leaks = grep(world["secrets"], texts)
    summary.record("secrets", "inventory --list -vvv with cache (%d cache files, all 0600): leaks: %d"
                   % (len(files), len(leaks)))
    assert not leaks, leaks


def test_tls_is_verified_by_default(kubeapi, world, tmp_path):
    """A kubeconfig without the emulator's CA and no ca_cert: a clear sentence, not a traceback or a silent pass."""
    env = ansible_env(kubeapi, tmp_path)
    proc, registered = playbook(tmp_path, env, [
        {"name": "no CA", VM_INFO: {"kubeconfig": world["no_ca_kubeconfig"], "namespace": world["ns"]},
         "register": "no_ca", "ignore_errors": True}], ["no_ca"], args=())
    result = json.loads(registered)["no_ca"]
    assert result["failed"] and "TLS verification" in result["msg"] and "ca_cert" in result["msg"], result
    assert "\n" not in result["msg"].strip() and "Traceback" not in proc.stdout + proc.stderr
    source = inventory_source(tmp_path, dict(world, kubeconfig_dict=world["no_ca_kubeconfig"]), tmp_path / "c1",
                              {"cache": False})
    inv = run([BIN / "ansible-inventory", "-i", source, "--list"], dict(env, ANSIBLE_INVENTORY_UNPARSED_FAILED="1"), tmp_path)
    assert inv.returncode != 0 and "TLS verification" in inv.stderr and "ca_cert" in inv.stderr, inv.stderr[-2000:]
    assert "Traceback" not in inv.stdout + inv.stderr


def test_turning_tls_verification_off_warns(kubeapi, world, tmp_path):
    env = ansible_env(kubeapi, tmp_path)
    proc, registered = playbook(tmp_path, env, [
        {"name": "insecure", VM_INFO: {"kubeconfig": world["no_ca_kubeconfig"], "namespace": world["ns"],
                                       "validate_certs": False}, "register": "insecure"},
        {"name": "secure", VM_INFO: {"kubeconfig": world["token_kubeconfig"], "namespace": world["ns"]},
         "register": "secure"}], ["insecure", "secure"], args=())
    results = json.loads(registered)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert any("TLS certificate verification is off" in w for w in results["insecure"].get("warnings", [])), results
    assert not any("TLS" in w for w in results["secure"].get("warnings", []))
    assert "TLS certificate verification is off" in " ".join(proc.stdout.split() + proc.stderr.split())
    source = inventory_source(tmp_path, dict(world, kubeconfig_dict=world["no_ca_kubeconfig"]), tmp_path / "c2",
                              {"cache": False, "validate_certs": False})
    inv = run([BIN / "ansible-inventory", "-i", source, "--list"], env, tmp_path)
    assert inv.returncode == 0, inv.stderr[-2000:]
    assert "TLS certificate verification is off" in " ".join(inv.stderr.split()), inv.stderr[-2000:]
    secure = inventory_source(tmp_path, world, tmp_path / "c3", {"cache": False})
    inv = run([BIN / "ansible-inventory", "-i", secure, "--list"], env, tmp_path)
    assert inv.returncode == 0 and "TLS certificate verification is off" not in " ".join(inv.stderr.split())


# --- the API tunnel (issue #19) ------------------------------------------------------------------------------------
BRIDGE_FILE = "_api_tunnel.py"


def banner_guest(hold=1.5):
    """A guest port that greets like sshd, then hangs up after ``hold`` seconds (ansible's ssh gets that far through
    the tunnel and no further: no sshd here)."""
    def serve(conn):
        try:
            conn.sendall(b"SSH-2.0-OpenSSH_9.2p1 virtfleet-test-guest\r\n")
            conn.settimeout(hold)
            while conn.recv(65536):
                pass
        except OSError:
            pass
        conn.close()
    return TcpGuest(serve)


class AuthProxy:
    """An HTTP CONNECT proxy that lets through only the planted Basic credentials (a 407 otherwise) and counts both."""

    def __init__(self, credentials):
        self.expected = "Basic " + base64.b64encode(credentials.encode()).decode()
        self.allowed = self.refused = 0
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(16)
        self.port = self.srv.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(4096)
            if not chunk:
                conn.close()
                return
            head += chunk
        head, rest = head.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        method, target = (lines[0].split() + ["", ""])[:2]
        headers = dict((k.strip().lower(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:]))
        if method != "CONNECT" or headers.get("proxy-authorization") != self.expected:
            self.refused += 1
            conn.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"t\"\r\n"
                         b"Content-Length: 0\r\nConnection: close\r\n\r\n")
            conn.close()
            return
        host, _, port = target.rpartition(":")
        upstream = socket.create_connection((host.strip("[]"), int(port)))
        self.allowed += 1
        conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        if rest:
            upstream.sendall(rest)

        def pipe(src, dst):
            try:
                while True:
                    data = src.recv(65536)
                    if not data:
                        break
                    dst.sendall(data)
            except OSError:
                pass
            for sock in (dst, src):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        threading.Thread(target=pipe, args=(upstream, conn), daemon=True).start()
        pipe(conn, upstream)

    def close(self):
        self.srv.close()


class ProcessSampler:
    """Reads the command line of every process on the machine (/proc/*/cmdline) every few milliseconds while it runs,
    and the environment of every bridge process; keeps each distinct (pid, command line) once."""

    def __init__(self, interval=0.01):
        self.interval = interval
        self.cmdlines = {}
        self.environs = {}
        self.scans = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(10)

    def _run(self):
        while not self._stop.is_set():
            self._scan()
            self.scans += 1
            self._stop.wait(self.interval)

    def _scan(self):
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % entry.name, "rb") as handle:
                    raw = handle.read()
            except OSError:
                continue
            text = raw.replace(b"\0", b" ").decode("utf-8", "replace").strip()
            if not text or (entry.name, text) in self.cmdlines:
                continue
            self.cmdlines[(entry.name, text)] = True
            if BRIDGE_FILE in text:
                try:
                    with open("/proc/%s/environ" % entry.name, "rb") as handle:
                        self.environs[(entry.name, text)] = handle.read().replace(b"\0", b"\n").decode("utf-8", "replace")
                except OSError:
                    pass

    def bridges(self, namespace):
        """Command lines of the bridge processes (python .../_api_tunnel.py ..., not ssh or sh) to VMIs of namespace."""
        return [text for (_pid, text) in self.cmdlines if text.split()[1:2] and text.split()[1].endswith(BRIDGE_FILE)
                and "--namespace %s " % namespace in text]


def test_no_secret_through_the_api_tunnel(kubeapi, world, tmp_path):
    """Inventory sources with inline credentials (api_key with proxy credentials in the URL and proxy_headers through
    a real CONNECT proxy; a kubeconfig dictionary with token and client key; a token without the portforward right)
    and address_strategies [api_tunnel]: ansible-inventory --list/--host -vvv, its cache, `ansible -m ping -vvv` over
    ssh through the tunnel (to a guest port that greets like sshd; 403 from the bridge as one sentence), the
    ProxyCommand run as ssh runs it (1 MB echoed through the proxy and the tunnel), and the bridge's own 401 and
    closed-port errors: no planted value in any output, cache file, command line of any process on the machine (sampled
    during all of it) or bridge environment; the credentials are in 0600 auth files of a 0700 folder."""
    # proxy_command: ansible-core's split of ansible_ssh_common_args and ssh's %-expansion; start: /bin/sh -c "exec ..."
    from tests.integration.test_api_tunnel import BRIDGE, echo_through, proxy_command, start

    ns, s = world["ns"], dict(world["secrets"])
    s.update((n, planted(n)) for n in ("tunnel-proxy-password", "tunnel-proxy-basic-auth", "tunnel-forbidden-token"))
    kubeapi.add_token(s["tunnel-forbidden-token"], namespaces=[ns], verbs=["list", "watch"], user="no-portforward",
                      resources=["virtualmachines", "virtualmachineinstances", "services"])
    kubeapi.apply_object({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
                          "metadata": {"name": "tun", "namespace": ns},
                          "spec": {"runStrategy": "Always", "template": {"spec": {"domain": {"devices": {}}}}}})
    kubeapi.wait_for("/apis/kubevirt.io/v1/namespaces/%s/virtualmachineinstances/tun" % ns,
                     lambda o: o and (o.get("status") or {}).get("phase") == "Running", timeout=30)
    ssh_guest, echo_guest = banner_guest(), TcpGuest()
    proxy = AuthProxy("mirror:" + s["tunnel-proxy-basic-auth"])
    for port, guest in ((22, ssh_guest), (2200, echo_guest)):
        kubeapi._hook("PUT", "guest-ports", {"namespace": ns, "name": "tun", "port": port, "target_port": guest.port})
    env = ansible_env(kubeapi, tmp_path)
    env.update({"ANSIBLE_HOST_KEY_CHECKING": "False", "ANSIBLE_TIMEOUT": "30", "TMPDIR": str(tmp_path / "tmpdir"),
                "ANSIBLE_SSH_CONTROL_PATH_DIR": str(tmp_path / "cp")})
    (tmp_path / "tmpdir").mkdir()
    host = "%s-tun" % ns
    base = {"plugin": "virtfleet.kubevirt.kubevirt", "namespaces": [ns], "address_strategies": ["api_tunnel"]}
    configs = {
        "api_key+proxy": dict(base, host=world["url"], api_key=s["token"], ca_cert=world["ca_file"],
                              proxy="http://mirror:%s@127.0.0.1:%d" % (s["tunnel-proxy-password"], proxy.port),
                              proxy_headers={"proxy_basic_auth": "mirror:" + s["tunnel-proxy-basic-auth"]},
                              cache=True, cache_plugin="ansible.builtin.jsonfile", cache_timeout=3600,
                              cache_connection=str(tmp_path / "cache")),
        "kubeconfig dict": dict(base, kubeconfig=world["kubeconfig_dict"]),
        "forbidden token": dict(base, host=world["url"], api_key=s["tunnel-forbidden-token"], ca_cert=world["ca_file"]),
    }
    sources = {}
    for label, config in configs.items():
        sources[label] = tmp_path / ("tunnel-%d" % len(sources)) / "kubevirt.yml"
        sources[label].parent.mkdir()
        sources[label].write_text(yaml.safe_dump(config, sort_keys=False))
    texts, ssh_args = {}, {}
    try:
        with ProcessSampler() as sampler:
            for label, path in sources.items():
                listing = run([BIN / "ansible-inventory", "-i", path, "--list", "-vvv"], env, tmp_path)
                assert listing.returncode == 0, listing.stderr[-3000:]
                one = run([BIN / "ansible-inventory", "-i", path, "--host", host, "-vvv"], env, tmp_path)
                assert one.returncode == 0, one.stderr[-3000:]
                hostvars = unwrap(json.loads(one.stdout[one.stdout.index("\n{") + 1:] if not one.stdout.startswith("{")
                                             else one.stdout))
                assert hostvars["vm_address_source"] == "api_tunnel" and hostvars["ansible_port"] == 22, hostvars
                ssh_args[label] = hostvars["ansible_ssh_common_args"]
                assert "--auth-file" in ssh_args[label], ssh_args[label]
                before = ssh_guest.connections
                # ansible-core's default ssh_args (ControlPersist on: the bridge writes its sentence to ssh's stderr).
                ping = run([BIN / "ansible", "-i", path, host, "-m", "ansible.builtin.ping", "-u", "tester", "-vvv"],
                           env, tmp_path, timeout=180)
                # No sshd behind the tunnel: ssh gets the guest's banner (or the bridge's sentence), then the host is
                # unreachable; either way the ProxyCommand ran, and -vvv shows ssh's command line and its stderr.
                assert ping.returncode == 4 and "UNREACHABLE" in ping.stdout, ping.stdout[-3000:] + ping.stderr[-3000:]
                assert "ProxyCommand" in ping.stdout and "--auth-file" in ping.stdout, ping.stdout[-3000:]
                if label == "forbidden token":
                    assert ssh_guest.connections == before
                    assert ("forbidden: no-portforward may not get virtualmachineinstances/portforward in %s (grant verb "
                            "get on subresources.kubevirt.io virtualmachineinstances/portforward)." % ns) in ping.stdout, ping.stdout[-4000:]
                else:
                    # (ansible-core 2.16 tries the module after its interpreter discovery failed: two connections)
                    assert ssh_guest.connections in (before + 1, before + 2), ping.stdout[-3000:]
                texts.update({"%s --list -vvv stdout" % label: listing.stdout, "%s --list -vvv stderr" % label: listing.stderr,
                              "%s --host -vvv stdout" % label: one.stdout, "%s --host -vvv stderr" % label: one.stderr,
                              "%s ansible -m ping -vvv stdout" % label: ping.stdout,
                              "%s ansible -m ping -vvv stderr" % label: ping.stderr})
            # The ProxyCommand as ssh runs it (/bin/sh -c "exec ..."), 1 MB through the proxy and the tunnel and back.
            allowed = proxy.allowed
            payload = os.urandom(1024 * 1024)
            got, rc, err = echo_through(start(proxy_command(ssh_args["api_key+proxy"], 2200), env), payload)
            assert (rc, err, got == payload) == (0, "", True), err
            assert proxy.allowed == allowed + 1 and proxy.refused == 0
            texts["ProxyCommand stderr"] = err
            # The bridge's own errors: a closed guest port (500 before the upgrade), and a token the server does not know.
            closed = subprocess.run(["/bin/sh", "-c", "exec " + proxy_command(ssh_args["kubeconfig dict"], 2222)],
                                    input=b"", capture_output=True, env=env, timeout=120)
            assert closed.returncode == 255 and closed.stderr.decode().startswith("nothing listens on port 2222"), closed.stderr
            bad_auth = tmp_path / "bad-auth" / "auth.json"
            bad_auth.parent.mkdir(mode=0o700)
            bad_auth.write_text(json.dumps({"api_key": s["bad-token"]}))
            os.chmod(bad_auth, 0o600)
            unknown = subprocess.run([sys.executable, BRIDGE, "--namespace", ns, "--name", "tun", "--port", "22", "--host", world["url"],
                                      "--ca-cert", world["ca_file"], "--auth-file", bad_auth],
                                     input=b"", capture_output=True, env=env, timeout=120)
            assert unknown.returncode == 255 and "401" in unknown.stderr.decode(), unknown.stderr
            assert unknown.stderr.decode().count("\n") == 1
            texts.update({"closed-port bridge stderr": closed.stderr.decode(), "401 bridge stderr": unknown.stderr.decode()})
    finally:
        ssh_guest.close()
        echo_guest.close()
        proxy.close()
    # The sampler saw every kind of process that carries the tunnel, so a secret in argv could not have escaped it.
    bridges = sampler.bridges(ns)
    assert len(bridges) >= 5 and all("--auth-file" in b for b in bridges), bridges
    assert any(text.split()[0].endswith("ssh") and "ProxyCommand" in text for (_pid, text) in sampler.cmdlines)
    cache_files = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert cache_files and all(stat.S_IMODE(os.stat(p).st_mode) == 0o600 for p in cache_files)
    texts.update(("cache file %s" % p.name, p.read_text(errors="replace")) for p in cache_files)
    outputs = len(texts)
    texts.update(("argv %d (pid %s)" % (i, pid), text) for i, (pid, text) in enumerate(sampler.cmdlines))
    texts.update(("environment %d of bridge pid %s" % (i, pid), text) for i, (pid, text) in enumerate(sampler.environs))
    # No temporary file is left behind (the client writes a kubeconfig dictionary's certificate data to one).
    assert not list((tmp_path / "tmpdir").iterdir())
    # Where the credentials are: the auth files, 0600 in a 0700 folder, one per source, nothing else there.
    auth_dir = tmp_path / "home" / ".ansible" / "virtfleet.kubevirt" / "api-tunnel"
    assert stat.S_IMODE(os.stat(auth_dir).st_mode) == 0o700
    auth_files = sorted(auth_dir.glob("auth-*.json"))
    modes = dict((p.name, stat.S_IMODE(os.stat(p).st_mode)) for p in auth_dir.iterdir())
    assert len(auth_files) == 3 and set(modes.values()) == {0o600} and len(modes) == 4, modes  # + the naming key
    stored = "\n".join(p.read_text() for p in auth_files)
    for name in ("token", "dict-token", "client-key-data", "tunnel-proxy-password", "tunnel-proxy-basic-auth",
                 "tunnel-forbidden-token"):
        assert s[name] in stored, name
    leaks = grep(s, texts)
    summary.record("secrets", "api tunnel (3 sources: api_key + proxy credentials, kubeconfig dict, forbidden token; "
                   "inventory --list/--host -vvv, ansible -m ping -vvv over ssh, ProxyCommand, bridge 401/closed port): "
                   "%d places checked (%d outputs and cache files, %d process command lines and %d bridge environments "
                   "from %d scans of /proc, %d bridge processes), %d auth files 0600 in a 0700 folder, leaks: %d"
                   % (len(texts), outputs, len(sampler.cmdlines),
                      len(sampler.environs), sampler.scans, len(bridges), len(auth_files), len(leaks)))
    assert not leaks, leaks
