"""The api_tunnel address strategy (issue #19): which hosts get it, their ansible_host/ansible_port, the ssh
ProxyCommand they carry (run through real /bin/sh and real ssh with paths that need quoting), and where the
source's credentials go (a 0600 auth file, never argv or host variables)."""
import json
import os
import re
import shlex
import stat
import subprocess
import sys

import pytest

from ansible.plugins.connection import ConnectionBase

from ansible_collections.virtfleet.kubevirt.plugins.plugin_utils import _api_tunnel as tunnel
from ansible_collections.virtfleet.kubevirt.plugins.plugin_utils._inventory_address import (
    Address, AddressChooser, AddressSettings, SSH_PORT_ANNOTATION, default_strategies,
)
from ansible_collections.virtfleet.kubevirt.plugins.plugin_utils._inventory_options import build_connections
from ansible_collections.virtfleet.kubevirt.plugins.plugin_utils._inventory_populate import PopulateSettings, build_hosts

from .objects import node, service, vm, vmi

TOKEN = "sekrit-token-0123456789"
WINDOWS = {"vm.kubevirt.io/os": "windows2k22"}
NP = service("web-np", selector={"app": "web"})
FALLBACK = ("load_balancer", "node_port", "api_tunnel")


def choose(strategies, obj, services=(), winrm=False, vm_obj=None, warn=None, **settings):
    chooser = AddressChooser(AddressSettings(strategies, **settings), services, [node("node01", [])], warn=warn)
    return chooser.choose(obj, winrm=winrm, vm=vm_obj)


# --- address choice ------------------------------------------------------------------------------------------
def test_alone_any_running_vmi_gets_the_tunnel_even_without_interfaces():
    assert choose(("api_tunnel",), vmi("web", "prod")) == Address("web.prod.api-tunnel", 22, "api_tunnel")
    assert choose(("api_tunnel",), vmi("web", "prod", interfaces=[])) == Address("web.prod.api-tunnel", 22, "api_tunnel")
    assert choose(("api_tunnel",), vmi("web", "prod"), ssh_port=2222).port == 2222


@pytest.mark.parametrize("phase", ["Scheduling", "Pending", "Scheduled", "Succeeded", "Failed"])
def test_a_vmi_that_is_not_running_gets_no_tunnel(phase):
    assert choose(("api_tunnel",), vmi("web", "prod", phase=phase)) is None


def test_last_fallback_after_node_port_only_when_no_service_exists():
    exposed = vmi("web", labels={"app": "web"})
    hidden = vmi("db", labels={"app": "db"})
    assert choose(FALLBACK, exposed, services=[NP]) == Address("node01", 30022, "node_port")
    assert choose(FALLBACK, hidden, services=[NP]) == Address("db.default.api-tunnel", 22, "api_tunnel")
    # a Service that maps another port is no Service for SSH: the tunnel is used
    other_port = service("web-np", selector={"app": "web"}, ports=[{"port": 80, "targetPort": 80, "nodePort": 30080}])
    assert choose(FALLBACK, exposed, services=[other_port]).source == "api_tunnel"


def test_never_in_the_default_strategies():
    for network, dns, use_service in [(None, False, True), (None, False, False), ("n", True, True), ("n", False, True)]:
        assert "api_tunnel" not in default_strategies(network, dns, use_service)
    conn = build_connections({})[0]
    assert "api_tunnel" not in conn.address.strategies


def test_winrm_hosts_never_get_the_tunnel():
    win = vmi("win", annotations=WINDOWS)
    assert choose(("api_tunnel",), win, winrm=True) is None
    assert choose(("node_port", "api_tunnel"), win, winrm=True) is None
    # Windows reached over ssh (default_win_ansible_connection=ssh) is an SSH host like any other
    assert choose(("api_tunnel",), win, winrm=False).source == "api_tunnel"


def test_populate_winrm_and_ssh_windows_hosts():
    data = {"name": "c", "vmis": [vmi("win", annotations=WINDOWS), vmi("lin")]}
    hosts = {h.name: h.variables for h in build_hosts(data, PopulateSettings(AddressSettings(("api_tunnel",))))}
    assert "ansible_host" not in hosts["default-win"] and "ansible_connection" not in hosts["default-win"]
    assert hosts["default-lin"]["ansible_host"] == "lin.default.api-tunnel"
    ssh = PopulateSettings(AddressSettings(("api_tunnel",)), win_connection="ssh")
    win = {h.name: h.variables for h in build_hosts(data, ssh)}["default-win"]
    assert win["ansible_connection"] == "ssh" and win["vm_address_source"] == "api_tunnel"


def test_annotation_overrides_the_port_vmi_first_then_vm():
    on_vmi = vmi("web", annotations={SSH_PORT_ANNOTATION: "2022"})
    assert choose(("api_tunnel",), on_vmi).port == 2022
    on_vm = vm("web", annotations={SSH_PORT_ANNOTATION: "2200"})
    assert choose(("api_tunnel",), vmi("web"), vm_obj=on_vm).port == 2200
    assert choose(("api_tunnel",), on_vmi, vm_obj=on_vm).port == 2022
    assert choose(("api_tunnel",), vmi("web"), vm_obj=vm("web")).port == 22


def test_annotation_port_is_what_services_must_target_too():
    svc = service("np", selector={"app": "web"}, ports=[{"port": 2022, "targetPort": 2022, "nodePort": 32022}])
    annotated = vmi("web", labels={"app": "web"}, annotations={SSH_PORT_ANNOTATION: "2022"})
    assert choose(FALLBACK, annotated, services=[svc]) == Address("node01", 32022, "node_port")
    assert choose(FALLBACK, vmi("web", labels={"app": "web"}), services=[svc]).source == "api_tunnel"


@pytest.mark.parametrize("bad", ["ssh", "0", "65536", "-1", "22.5", ""])
def test_bad_annotation_warns_once_per_vm_and_uses_the_option(bad):
    warnings = []
    found = choose(("api_tunnel",), vmi("web", "prod", annotations={SSH_PORT_ANNOTATION: bad}), warn=warnings.append,
                   ssh_port=2222)
    assert found.port == 2222
    assert warnings == ["VirtualMachineInstance prod/web has the annotation virtfleet.kubevirt/ssh-port=%r, which is not "
                        "a TCP port (1-65535): using port 2222; fix the annotation." % bad]


def test_tunnel_names_carry_the_cluster_in_connections_entries():
    per_cluster = AddressSettings(("api_tunnel",), tunnel_per_cluster=True)
    chooser = AddressChooser(per_cluster, cluster="East_Cluster.example:6443")
    assert chooser.choose(vmi("web", "prod")).host == "web.prod.east-cluster-example-6443.api-tunnel"
    conns = build_connections({"address_strategies": ["api_tunnel"]}, [{"name": "east"}, {"name": "west"}])
    data = {"vmis": [vmi("web", "prod")]}
    names = [build_hosts(dict(data, name=c.name), c.populate)[0].variables["ansible_host"] for c in conns]
    assert names == ["web.prod.east.api-tunnel", "web.prod.west.api-tunnel"]
    assert build_connections({"address_strategies": ["api_tunnel"]})[0].address.tunnel_per_cluster is False


# --- host variables ------------------------------------------------------------------------------------------
def tunnel_hosts(auth, tmp_path, vmis=None, vms=(), strategies=("api_tunnel",), environ=None, **kwargs):
    proxy = tunnel.ProxyCommand(auth, python="/usr/bin/python3", bridge="/c/ansible_collections/b.py",
                                auth_dir=str(tmp_path / "auth"), environ=environ if environ is not None else {})
    settings = PopulateSettings(AddressSettings(strategies, **kwargs), tunnel=proxy)
    data = {"name": "c", "vmis": vmis if vmis is not None else [vmi("web", "prod")], "vms": list(vms)}
    return {h.name: h.variables for h in build_hosts(data, settings)}


def test_host_variables_of_a_tunnelled_host(tmp_path):
    hosts = tunnel_hosts({"kubeconfig": "/etc/kube/config", "context": "ops"}, tmp_path,
                         vms=[vm("web", "prod", annotations={SSH_PORT_ANNOTATION: "2022"})])
    host = hosts["prod-web"]
    assert host["ansible_host"] == "web.prod.api-tunnel"
    assert host["ansible_port"] == 2022
    assert host["vm_address_source"] == "api_tunnel"
    assert "ansible_connection" not in host
    assert host["ansible_ssh_common_args"] == (
        "-o 'ProxyCommand=/usr/bin/python3 /c/ansible_collections/b.py --namespace prod --name web --port %p "
        "--kubeconfig /etc/kube/config --context ops' -o CheckHostIP=no")
    assert not (tmp_path / "auth").exists(), "no credentials inline: no auth file"


def test_other_hosts_get_no_ssh_args_and_no_auth_file(tmp_path):
    hosts = tunnel_hosts({"api_key": TOKEN, "host": "https://k8s:6443"}, tmp_path, strategies=("first_interface",))
    assert "ansible_ssh_common_args" not in hosts["prod-web"]
    assert not (tmp_path / "auth").exists()


def test_inline_credentials_go_to_a_0600_auth_file_only(tmp_path):
    auth = {"host": "https://k8s.example:6443", "api_key": TOKEN, "validate_certs": False,
            "impersonate_groups": ["ops", "dev team"]}
    hosts = tunnel_hosts(auth, tmp_path, vmis=[vmi("a", "prod"), vmi("b", "prod")])
    dumped = json.dumps(hosts)
    assert TOKEN not in dumped
    words = shlex.split(hosts["prod-a"]["ansible_ssh_common_args"])
    command = shlex.split(words[1][len("ProxyCommand="):].replace("%%", "%"))
    assert command[command.index("--host") + 1] == "https://k8s.example:6443"
    assert "--no-validate-certs" in command
    assert [command[i + 1] for i, w in enumerate(command) if w == "--impersonate-group"] == ["ops", "dev team"]
    path = command[command.index("--auth-file") + 1]
    assert path.startswith(str(tmp_path / "auth") + os.sep)
    assert json.loads(open(path).read()) == {"api_key": TOKEN}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "auth").st_mode) == 0o700
    # one file for the connection, the same path on every host and every refresh
    assert hosts["prod-b"]["ansible_ssh_common_args"].count(path) == 1
    again = tunnel_hosts(auth, tmp_path)
    assert path in again["prod-web"]["ansible_ssh_common_args"]
    assert sorted(p for p in os.listdir(tmp_path / "auth") if p.startswith("auth-")) == [os.path.basename(path)]


@pytest.mark.parametrize("auth, secret_keys", [
    ({"host": "https://k", "username": "admin", "password": "pa55word-xyz"}, ["password", "username"]),
    ({"kubeconfig": {"users": [{"name": "u", "user": {"token": TOKEN}}]}}, ["kubeconfig"]),
    ({"host": "https://k", "proxy": "http://bob:pr0xy-pass@proxy:3128"}, ["proxy"]),
    ({"host": "https://k", "proxy_headers": {"proxy_basic_auth": "bob:pr0xy-pass"}}, ["proxy_headers"]),
])
def test_every_kind_of_inline_secret_is_in_the_file_not_in_argv(tmp_path, auth, secret_keys):
    args = tunnel_hosts(auth, tmp_path)["prod-web"]["ansible_ssh_common_args"]
    for secret in (TOKEN, "pa55word-xyz", "pr0xy-pass"):
        assert secret not in args
    path = re.search(r"--auth-file (\S+?)'", args).group(1)
    assert sorted(json.loads(open(path).read())) == secret_keys


def test_a_proxy_without_credentials_stays_in_argv(tmp_path):
    args = tunnel_hosts({"host": "https://k", "proxy": "http://proxy:3128", "no_proxy": "10.0.0.0/8"},
                        tmp_path)["prod-web"]["ansible_ssh_common_args"]
    assert "--proxy http://proxy:3128 --no-proxy 10.0.0.0/8'" in args and "--auth-file" not in args


def test_credentials_from_the_environment_are_inherited_never_copied(tmp_path):
    """get_option already merged K8S_AUTH_*: those values stay in the environment ssh passes on."""
    environ = {"K8S_AUTH_API_KEY": TOKEN, "K8S_AUTH_HOST": "https://k8s:6443", "K8S_AUTH_VERIFY_SSL": "no",
               "K8S_AUTH_KUBECONFIG": "/etc/kube/config"}
    auth = {"api_key": TOKEN, "host": "https://k8s:6443", "validate_certs": False, "kubeconfig": "/etc/kube/config"}
    args = tunnel_hosts(auth, tmp_path, environ=environ)["prod-web"]["ansible_ssh_common_args"]
    assert args.endswith("--name web --port %p' -o CheckHostIP=no")
    assert not (tmp_path / "auth").exists()
    # a value of the source that differs from the environment's is the source's: given explicitly
    args = tunnel_hosts(dict(auth, api_key="other-token", validate_certs=True), tmp_path,
                        environ=environ)["prod-web"]["ansible_ssh_common_args"]
    assert "--validate-certs" in args and "--auth-file" in args and "other-token" not in args


def test_relative_paths_become_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = tunnel_hosts({"kubeconfig": "kc.yml:other.yml", "ca_cert": "ca.pem"}, tmp_path)["prod-web"][
        "ansible_ssh_common_args"]
    assert "--kubeconfig %s:%s" % (tmp_path / "kc.yml", tmp_path / "other.yml") in args
    assert "--ca-cert %s" % (tmp_path / "ca.pem") in args


def test_auth_files_are_content_addressed_and_stale_ones_removed(tmp_path):
    folder = str(tmp_path / "auth")
    first = tunnel.write_auth_file({"api_key": "a"}, folder, now=1000.0)
    assert tunnel.write_auth_file({"api_key": "a"}, folder, now=2000.0) == first
    second = tunnel.write_auth_file({"api_key": "b"}, folder, now=2000.0)
    assert second != first
    # named by an HMAC with a per-user secret key: a name says nothing about the content
    assert re.fullmatch(r"auth-[0-9a-f]{40}\.json", os.path.basename(first))
    os.chmod(first, 0o644)  # loosened by someone: rewritten 0600
    tunnel.write_auth_file({"api_key": "a"}, folder, now=3000.0)
    assert stat.S_IMODE(os.stat(first).st_mode) == 0o600
    tunnel.write_auth_file({"api_key": "c"}, folder, now=3000.0 + tunnel.AUTH_FILE_MAX_AGE + 1)
    assert not os.path.exists(first) and not os.path.exists(second)
    assert stat.S_IMODE(os.stat(os.path.join(folder, ".key")).st_mode) == 0o600


def test_auth_file_that_cannot_be_written_is_one_sentence(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(tunnel.TunnelError) as exc:
        tunnel.write_auth_file({"api_key": "a"}, str(blocker / "auth"))
    assert exc.value.msg.startswith("Cannot write the API tunnel auth file in %s (" % (blocker / "auth"))
    assert "\n" not in exc.value.msg


# --- the ProxyCommand as ansible-core, /bin/sh and ssh read it -----------------------------------------------
FAKE_BRIDGE = "import json, os, sys\nopen(os.environ['ARGV_OUT'], 'w').write(json.dumps(sys.argv[1:]))\n"


@pytest.fixture
def odd_paths(tmp_path):
    """A python and a bridge in folders whose names need quoting: spaces, quotes, '%', '$' and a backslash."""
    folder = tmp_path / "it's a 100% $HOME \\ dir"
    folder.mkdir()
    bridge = folder / "the bridge.py"
    bridge.write_text(FAKE_BRIDGE)
    python = folder / "py thon"
    os.symlink(os.path.realpath(sys.executable), python)
    return str(python), str(bridge)


def proxy_command_value(ssh_args):
    words = ConnectionBase._split_ssh_args(ssh_args)  # what ansible-core's ssh connection does with the variable
    assert words[0] == "-o" and words[1].startswith("ProxyCommand=") and words[2:] == ["-o", "CheckHostIP=no"]
    return words[1][len("ProxyCommand="):]


def test_proxy_command_survives_ansible_split_ssh_expansion_and_the_shell(tmp_path, odd_paths):
    python, bridge = odd_paths
    proxy = tunnel.ProxyCommand({"kubeconfig": "/k 100%/c fg", "context": "%p"}, python=python, bridge=bridge,
                                auth_dir=str(tmp_path / "auth"), environ={})
    command = proxy_command_value(proxy.ssh_args("prod", "web-1"))

    def ssh_expand(match):  # OpenSSH's percent_expand: %% -> %, %p -> the port, any other token is an error
        return {"%": "%", "p": "2022"}[match.group(1)]

    out = tmp_path / "argv.json"
    subprocess.run(["/bin/sh", "-c", "exec " + re.sub(r"%(.)", ssh_expand, command)], check=True,
                   env=dict(os.environ, ARGV_OUT=str(out)))
    assert json.loads(out.read_text()) == ["--namespace", "prod", "--name", "web-1", "--port", "2022",
                                           "--kubeconfig", "/k 100%/c fg", "--context", "%p"]


def test_real_ssh_runs_the_proxy_command_with_the_port(tmp_path, odd_paths):
    ssh = subprocess.run(["sh", "-c", "command -v ssh"], capture_output=True, text=True).stdout.strip()
    if not ssh:
        pytest.skip("no ssh client")
    python, bridge = odd_paths
    proxy = tunnel.ProxyCommand({"context": "c 1"}, python=python, bridge=bridge, auth_dir=str(tmp_path / "a"),
                                environ={})
    out = tmp_path / "argv.json"
    args = ConnectionBase._split_ssh_args(proxy.ssh_args("ns", "vm"))
    # the fake bridge exits at once, so ssh fails after running it; what matters is the argv it got
    subprocess.run([ssh, "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-p", "2200"] + args
                   + ["vm.ns.api-tunnel", "true"], capture_output=True, timeout=30, env=dict(os.environ, ARGV_OUT=str(out)))
    assert json.loads(out.read_text()) == ["--namespace", "ns", "--name", "vm", "--port", "2200", "--context", "c 1"]


def test_default_python_and_bridge_are_this_interpreter_and_the_installed_file():
    proxy = tunnel.ProxyCommand({})
    assert proxy.python == sys.executable
    assert proxy.bridge == os.path.abspath(tunnel.__file__)
    assert proxy.bridge.endswith(os.path.join("ansible_collections", "virtfleet", "kubevirt", "plugins", "plugin_utils",
                                              "_api_tunnel.py"))
