"""Inventory plugin: caching, request budget, restricted tokens, several clusters, AWX-style credentials."""
import importlib.util
import os
import stat
from pathlib import Path

import pytest

from tests.unit.plugins.inventory.objects import service, vm, vmi

from .inventory_support import EMULATOR as INVENTORY_EMULATOR
from .inventory_support import load, namespace, run_inventory, start_emulator

PLUGIN = "virtfleet.kubevirt.kubevirt"
REPO = Path(__file__).resolve().parents[2]


def bench_module():
    spec = importlib.util.spec_from_file_location("inventory_bench", REPO / "bench" / "inventory_bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def dataset():
    objs = [namespace("acc-a"), namespace("acc-b")]
    node_ports = iter(range(30401, 30500))   # a NodePort is unique in the cluster
    for ns in ("acc-a", "acc-b"):
        for name in ("one", "two"):
            labels = {"kubevirt.io/domain": name}
            ports = [{"name": "ssh", "port": 22, "targetPort": 22, "nodePort": next(node_ports), "protocol": "TCP"}]
            objs += [vm(name, ns), vmi(name, ns, labels=labels),
                     service(name + "-ssh", ns, selector=labels, ports=ports)]
    return objs


EMULATOR = dict(INVENTORY_EMULATOR, objects=dataset)   # the emu fixture (tests/conftest.py)


def token_env(emu, token):
    """Only K8S_AUTH_* variables, as AWX/AAP inject them from a Kubernetes credential; no kubeconfig anywhere."""
    env = dict(os.environ)
    for key in list(env):
        if key.startswith("K8S_AUTH_") or key == "KUBECONFIG":
            del env[key]
    env.update({"K8S_AUTH_HOST": emu.url, "K8S_AUTH_API_KEY": token, "K8S_AUTH_SSL_CA_CERT": str(emu.ca_file),
                "K8S_AUTH_VERIFY_SSL": "true", "HOME": str(Path(emu.workdir) / "empty-home"),
                "ANSIBLE_COLLECTIONS_PATH": str(REPO / ".build" / "collections")})
    return env


def test_cache_hit_makes_zero_requests_and_keeps_no_secrets(emu, tmp_path):
    cache_dir = tmp_path / "cache"
    config = {"plugin": PLUGIN, "cache": True, "cache_plugin": "ansible.builtin.jsonfile",
              "cache_connection": str(cache_dir), "cache_timeout": 3600}
    env = token_env(emu, emu.admin_token)
    first = run_inventory(emu, tmp_path, config, env=env)
    assert first.rc == 0, first
    assert len(first.requests) == 3
    second = run_inventory(emu, tmp_path, config, env=env, source=first.source)
    assert second.rc == 0, second
    assert second.requests == []  # cache hit: not a single HTTP request
    assert second.hostvars == first.hostvars
    files = list(cache_dir.iterdir())
    assert len(files) == 1
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    content = files[0].read_text()
    kubeconfig = emu.kubeconfig.read_text()
    ca_data = kubeconfig.split("certificate-authority-data:")[1].split()[0]
    for secret in (emu.admin_token, ca_data[:40]):
        assert secret not in content
        assert secret not in first.stdout
    assert "acc-a" in content  # it is the inventory data, just without credentials
    # a changed selection is not answered from the stale cache
    third = run_inventory(emu, tmp_path, dict(config, namespaces=["acc-b"]), env=env)
    assert third.rc == 0 and len(third.requests) > 0
    assert third.hosts("acc-") == ["acc-b-one", "acc-b-two"]
    # --flush-cache refreshes (ansible-inventory has it since ansible-core 2.17)
    from ansible.release import __version__ as core_version
    if tuple(int(x) for x in core_version.split(".")[:2]) < (2, 17):
        return
    flushed = run_inventory(emu, tmp_path, config, env=env, source=first.source, args=("--list", "--flush-cache"))
    assert flushed.rc == 0 and len(flushed.requests) == 3


def allocated_node_ports(objects):
    """The bench's objects with the Services' nodePorts left for the server to allocate: loaded twice, its fixed
    ports would collide (a NodePort is unique in the cluster)."""
    for obj in objects:
        if obj["kind"] == "Service":
            for port in obj["spec"]["ports"]:
                port.pop("nodePort", None)
    return objects


def test_request_budget_is_independent_of_vms_and_namespaces(emu, tmp_path):
    bench = bench_module()
    before = run_inventory(emu, tmp_path, {"plugin": PLUGIN})
    assert before.rc == 0, before
    load(emu, allocated_node_ports(bench.dataset(50, 10)))  # smoke version of the bench: 50 VMIs + VMs + Services, 10 namespaces
    smoke = run_inventory(emu, tmp_path, {"plugin": PLUGIN})
    assert smoke.rc == 0, smoke
    assert len(smoke.hosts("bench-")) == 50
    load(emu, allocated_node_ports(bench.dataset(400, 150, prefix="more")))
    after = run_inventory(emu, tmp_path, {"plugin": PLUGIN})
    assert after.rc == 0, after
    assert len(after.hosts("more-")) == 400
    shape = sorted((r["method"], r["path"]) for r in before.requests)  # kinds are listed concurrently: order varies
    assert shape == sorted((r["method"], r["path"]) for r in smoke.requests) == sorted((r["method"], r["path"]) for r in after.requests)
    assert len(shape) == 3
    # pagination is the only thing that grows: ceil(objects / page_size) list calls per kind
    paged = run_inventory(emu, tmp_path, {"plugin": PLUGIN, "page_size": 100})
    assert paged.rc == 0, paged
    vmis = len(after.hostvars)
    pages = -(-vmis // 100)
    assert [r["path"] for r in paged.requests].count("/apis/kubevirt.io/v1/virtualmachineinstances") == pages
    assert sum(1 for r in paged.requests if "continue" in r["query"]) == len(paged.requests) - 3
    assert paged.hostvars.keys() == after.hostvars.keys()


def test_restricted_token_skips_forbidden_namespaces_with_one_warning_each(emu, tmp_path):
    emu.add_token("inv-reader-a", namespaces=["acc-a"], verbs=["get", "list", "watch"])
    env = token_env(emu, "inv-reader-a")
    run = run_inventory(emu, tmp_path, {"plugin": PLUGIN, "namespaces": ["acc-a", "acc-b"]}, env=env)
    assert run.rc == 0, run
    assert run.hosts("acc-") == ["acc-a-one", "acc-a-two"]
    assert run.err.count("Skipping namespace acc-b") == 1
    assert "acc-a" not in run.err.replace("acc-a-", "")
    assert {r["status"] for r in run.requests if "/namespaces/acc-b/" in r["path"]} == {403}
    fatal = run_inventory(emu, tmp_path, {"plugin": PLUGIN, "namespaces": ["acc-a", "acc-b"], "fail_on_forbidden": True},
                          env=env)
    assert fatal.rc != 0
    assert "may not list" in fatal.err and "acc-b" in fatal.err and "fail_on_forbidden" in fatal.err
    assert "Traceback" not in fatal.err


def test_restricted_token_without_namespaces_option_is_told_what_to_set(emu, tmp_path):
    emu.add_token("inv-reader-a2", namespaces=["acc-a"], verbs=["get", "list"])
    run = run_inventory(emu, tmp_path, {"plugin": PLUGIN}, env=token_env(emu, "inv-reader-a2"))
    assert run.rc != 0
    assert "set the namespaces option" in run.err


def test_cluster_wide_403_falls_back_to_per_namespace_lists(emu, tmp_path):
    emu._hook("PUT", "tokens", {"token": "inv-ns-lister", "user": "inv-ns-lister", "namespaces": ["acc-b"],  # noqa
                                "verbs": ["get", "list"], "cluster_read_resources": ["namespaces"]})
    run = run_inventory(emu, tmp_path, {"plugin": PLUGIN, "use_service": False}, env=token_env(emu, "inv-ns-lister"))
    assert run.rc == 0, run
    assert run.hosts("acc-") == ["acc-b-one", "acc-b-two"]
    paths = [(r["path"], r["status"]) for r in run.requests]
    # VMIs and VMs are listed concurrently (in either order): both are refused cluster-wide, the namespaces are
    # listed once, after the first refusal, and each kind is then listed per namespace
    listed = paths.index(("/api/v1/namespaces", 200))
    assert paths.count(("/api/v1/namespaces", 200)) == 1
    refused = [paths.index(("/apis/kubevirt.io/v1/%s" % kind, 403)) for kind in ("virtualmachineinstances", "virtualmachines")]
    assert min(refused) < listed
    for kind in ("virtualmachineinstances", "virtualmachines"):
        assert paths.index(("/apis/kubevirt.io/v1/namespaces/acc-b/%s" % kind, 200)) > listed
    # every other namespace is skipped with exactly one warning
    assert run.err.count("Skipping namespace acc-a:") == 1
    assert run.err.count("Skipping namespace default:") == 1


def test_awx_style_source_with_k8s_auth_environment_only(emu, tmp_path):
    run = run_inventory(emu, tmp_path, {"plugin": PLUGIN}, env=token_env(emu, emu.admin_token), filename="kubevirt.yml")
    assert run.rc == 0, run
    assert "acc-a-one" in run.hosts("acc-")
    assert emu.admin_token not in run.stdout
    assert not any(k.startswith(("api_key", "k8s_auth")) for v in run.hostvars.values() for k in v)


def test_several_clusters_in_one_source_get_a_group_each(emu, tmp_path, tmp_path_factory):
    other = start_emulator(tmp_path_factory)
    try:
        load(other, [namespace("far"), vmi("remote", "far", labels={"kubevirt.io/domain": "remote"})])
        config = {"plugin": PLUGIN, "use_service": False,
                  "connections": [{"name": "near", "kubeconfig": str(emu.kubeconfig), "namespaces": ["acc-a"]},
                                  {"name": "remote-site", "kubeconfig": str(other.kubeconfig)}]}
        mark = other.mark()
        run = run_inventory(emu, tmp_path, config)
        assert run.rc == 0, run
        # Connection names and namespaces become group names through the inventory plugins' sanitizer
        # (to_safe_group_name), which turns '-' into '_' whatever TRANSFORM_INVALID_GROUP_CHARS says.
        assert run.children("near") == ["namespace_acc_a"]
        assert run.children("remote_site") == ["namespace_far"] and "remote-site" not in run.data
        assert run.hosts("acc-") == ["acc-a-one", "acc-a-two"] and "far-remote" in run.hostvars
        assert len(other.requests(since=mark)) == 2
        bad = run_inventory(emu, tmp_path, dict(config, connections=[{"name": "x", "nmespaces": ["a"]}]))
        assert bad.rc != 0 and "connections[0] has the unknown option 'nmespaces'" in bad.err
    finally:
        other.stop()


@pytest.mark.parametrize("config, env_token, message", [
    ({"kubeconfig": "/nonexistent/kubeconfig"}, None, "does not exist"),
    ({}, "not-a-valid-token", "rejected the credentials (401 Unauthorized)"),
])
def test_connection_errors_are_one_sentence(emu, tmp_path, config, env_token, message):
    env = token_env(emu, env_token) if env_token else None
    run = run_inventory(emu, tmp_path, dict({"plugin": PLUGIN}, **config), env=env)
    assert run.rc != 0
    assert message in " ".join(run.stderr.split())  # ansible-core 2.16 wraps long warnings
    assert "Traceback" not in run.err
