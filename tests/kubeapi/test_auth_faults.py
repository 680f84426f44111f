"""Authentication (tokens, client certificates), per-token RBAC and injected faults."""
import http.client
import json
import ssl
import time
import urllib.error
import urllib.request

import pytest
from kubernetes import client, config

from .test_client import vm_body


def client_for(kubeapi, token=None, cert=None):
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(kubeapi.kubeconfig_for(token=token, cert=cert)),
                            client_configuration=cfg)
    return client.ApiClient(cfg)


def test_unknown_token_is_401(kubeapi):
    status, body, _ = kubeapi.http("GET", "/api/v1/namespaces", token="no-such-token")
    assert status == 401
    assert body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": "Unauthorized", "reason": "Unauthorized", "code": 401}


def test_namespace_scoped_token_gets_403_elsewhere(kubeapi, api_client, ns):
    client.CustomObjectsApi(api_client).create_namespaced_custom_object("kubevirt.io", "v1", ns, "virtualmachines",
                                                                        vm_body("mine"))
    kubeapi.add_token("tok-reader", namespaces=[ns], verbs=["get", "list", "watch"], user="reader")
    with client_for(kubeapi, token="tok-reader") as api:
        co = client.CustomObjectsApi(api)
        items = co.list_namespaced_custom_object("kubevirt.io", "v1", ns, "virtualmachines")["items"]
        assert [i["metadata"]["name"] for i in items] == ["mine"]
        with pytest.raises(client.ApiException) as exc:
            co.list_namespaced_custom_object("kubevirt.io", "v1", "default", "virtualmachines")
        body = json.loads(exc.value.body)
        assert exc.value.status == 403 and body["reason"] == "Forbidden"
        assert body["message"] == ('virtualmachines.kubevirt.io is forbidden: User "reader" cannot list resource '
                                   '"virtualmachines" in API group "kubevirt.io" in the namespace "default"')
        assert body["details"] == {"group": "kubevirt.io", "kind": "virtualmachines"}
        with pytest.raises(client.ApiException) as exc:
            co.list_cluster_custom_object("kubevirt.io", "v1", "virtualmachines")
        assert json.loads(exc.value.body)["message"] == (
            'virtualmachines.kubevirt.io is forbidden: User "reader" cannot list resource "virtualmachines" in API '
            'group "kubevirt.io" at the cluster scope')
        with pytest.raises(client.ApiException) as exc:
            co.patch_namespaced_custom_object("kubevirt.io", "v1", ns, "virtualmachines", "mine",
                                              {"metadata": {"labels": {"a": "b"}}})
        assert json.loads(exc.value.body)["message"] == (
            'virtualmachines.kubevirt.io "mine" is forbidden: User "reader" cannot patch resource "virtualmachines" '
            'in API group "kubevirt.io" in the namespace "%s"' % ns)
        with pytest.raises(client.ApiException) as exc:
            client.CoreV1Api(api).list_node()
        assert exc.value.status == 403 and 'cannot list resource "nodes" in API group "" at the cluster scope' in \
            json.loads(exc.value.body)["message"]
        # Discovery stays open to any authenticated user.
        assert client.VersionApi(api).get_code().major == "1"
    status, body, _ = kubeapi.http("PUT", "/apis/subresources.kubevirt.io/v1/namespaces/%s/virtualmachines/mine/"
                                   "start" % ns, {}, token="tok-reader")
    assert status == 403 and body["message"] == (
        'virtualmachines.subresources.kubevirt.io "mine" is forbidden: User "reader" cannot update resource '
        '"virtualmachines/start" in API group "subresources.kubevirt.io" in the namespace "%s"' % ns)


def test_cluster_wide_read_token(kubeapi, ns):
    kubeapi.add_token("tok-cwr", namespaces=[ns], cluster_wide_read=True)
    with client_for(kubeapi, token="tok-cwr") as api:
        core = client.CoreV1Api(api)
        assert core.list_node().items
        core.create_namespaced_config_map(ns, {"metadata": {"name": "ok"}})
        with pytest.raises(client.ApiException) as exc:
            core.create_namespaced_config_map("default", {"metadata": {"name": "nope"}})
        assert exc.value.status == 403


def test_client_certificate_authentication(kubeapi, ns):
    cert = kubeapi.client_cert("admin")
    with client_for(kubeapi, cert=cert) as api:
        assert client.CoreV1Api(api).read_namespace(ns).metadata.name == ns
    cert = kubeapi.client_cert("carol")
    with client_for(kubeapi, cert=cert) as api:
        with pytest.raises(client.ApiException) as exc:
            client.CoreV1Api(api).list_namespaced_config_map(ns)
        assert exc.value.status == 403 and 'User "carol" cannot list resource "configmaps"' in \
            json.loads(exc.value.body)["message"]
    kubeapi.add_token("tok-carol-unused", namespaces=[ns], user="carol")
    with client_for(kubeapi, cert=cert) as api:
        assert client.CoreV1Api(api).list_namespaced_config_map(ns).items == []


def test_injected_500_and_429(kubeapi, api_client, ns):
    core = client.CoreV1Api(api_client)
    mark = kubeapi.mark()
    kubeapi.set_faults(rate=1.0, statuses=(500,), path_regex="/namespaces/%s/" % ns, count=1)
    try:
        with pytest.raises(client.ApiException) as exc:
            core.list_namespaced_config_map(ns)
        assert exc.value.status == 500 and json.loads(exc.value.body)["reason"] == "InternalError"
        assert core.list_namespaced_config_map(ns).items == []   # count=1: only the first request fails
        kubeapi.set_faults(rate=1.0, statuses=(429,), path_regex="/namespaces/%s/" % ns, count=1)
        status, body, headers = kubeapi.http("GET", "/api/v1/namespaces/%s/configmaps" % ns)
        assert status == 429 and body["reason"] == "TooManyRequests" and headers["Retry-After"] == "1"
    finally:
        kubeapi.clear_faults()
    log = kubeapi.requests(since=mark)
    assert [(e["status"], e["fault"]) for e in log] == [(500, "500"), (200, None), (429, "429")]


def test_injected_latency_and_rate(kubeapi, ns):
    path = "/api/v1/namespaces/%s/configmaps" % ns
    kubeapi.set_faults(rate=0, latency_ms=300, path_regex="/namespaces/%s/configmaps" % ns)
    try:
        t0 = time.monotonic()
        assert kubeapi.http("GET", path)[0] == 200
        assert time.monotonic() - t0 >= 0.3
        kubeapi.set_faults(rate=0.5, statuses=(500,), path_regex="/namespaces/%s/configmaps" % ns, seed=3)
        codes = [kubeapi.http("GET", path)[0] for _ in range(40)]
    finally:
        kubeapi.clear_faults()
    assert 8 <= codes.count(500) <= 32 and set(codes) == {200, 500}
    t0 = time.monotonic()
    assert kubeapi.http("GET", path)[0] == 200 and time.monotonic() - t0 < 0.3


def test_injected_connection_reset(kubeapi, ns):
    path = "/api/v1/namespaces/%s/configmaps" % ns
    mark = kubeapi.mark()
    kubeapi.set_faults(rate=1.0, statuses=(), reset=True, path_regex="/namespaces/%s/configmaps" % ns, count=1)
    try:
        req = urllib.request.Request(kubeapi.url + path, headers={"Authorization": "Bearer " + kubeapi.admin_token})
        ctx = ssl.create_default_context(cafile=str(kubeapi.ca_file))
        with pytest.raises((urllib.error.URLError, http.client.RemoteDisconnected, ConnectionError, ssl.SSLError)):
            urllib.request.urlopen(req, context=ctx, timeout=10).read()
    finally:
        kubeapi.clear_faults()
    assert [e["fault"] for e in kubeapi.requests(since=mark)] == ["reset"]
    assert kubeapi.http("GET", path)[0] == 200


def test_harness_shortcuts_are_not_faulted(kubeapi, ns):
    kubeapi.set_faults(rate=1.0, statuses=(500,), path_regex="/namespaces/%s/" % ns)
    try:
        cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "safe", "namespace": ns}}
        assert kubeapi.apply_object(cm)["metadata"]["name"] == "safe"
        assert kubeapi.get_object("/api/v1/namespaces/%s/configmaps/safe" % ns)["metadata"]["name"] == "safe"
        assert kubeapi.http("GET", "/api/v1/namespaces/%s/configmaps/safe" % ns)[0] == 500
    finally:
        kubeapi.clear_faults()
