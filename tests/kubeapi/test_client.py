"""Conformance of the emulator as seen through the real `kubernetes` Python client."""
import json
import threading
import time

import pytest
from kubernetes import client, watch
from kubernetes.dynamic.exceptions import NotFoundError

VM_GVK = dict(api_version="kubevirt.io/v1", kind="VirtualMachine")


def vm_body(name, run_strategy="Halted", labels=None, **spec):
    body = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
            "metadata": {"name": name, "labels": labels or {}},
            "spec": {"runStrategy": run_strategy, "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"domain": {"devices": {}, "memory": {"guest": "128Mi"}},
                         "volumes": [{"name": "root", "containerDisk": {"image": "quay.io/kubevirt/cirros"}}]}}}}
    body["spec"].update(spec)
    return body


def custom(api_client):
    return client.CustomObjectsApi(api_client)


def status_of(exc):
    return json.loads(exc.body)


def test_discovery_lists_kubevirt_and_core(dyn):
    vm = dyn.resources.get(**VM_GVK)
    assert vm.name == "virtualmachines" and vm.namespaced
    assert "vm" in vm.short_names
    assert dyn.resources.get(api_version="cdi.kubevirt.io/v1beta1", kind="DataVolume").name == "datavolumes"
    assert dyn.resources.get(api_version="v1", kind="ConfigMap").name == "configmaps"
    assert "status" in vm.subresources
    assert "status" not in dyn.resources.get(api_version="kubevirt.io/v1", kind="VirtualMachineInstance").subresources
    version = client.VersionApi(dyn.client).get_code()
    assert version.major == "1"


def test_seeded_objects(api_client):
    core = client.CoreV1Api(api_client)
    names = {n.metadata.name for n in core.list_node().items}
    assert {"node01", "node02"} <= names
    node = core.read_node("node01")
    assert {"type": "InternalIP", "address": "192.0.2.11"} in [a.to_dict() for a in node.status.addresses]
    assert [c.status for c in node.status.conditions if c.type == "Ready"] == ["True"]
    assert {"default", "kube-system", "kubevirt"} <= {n.metadata.name for n in core.list_namespace().items}
    crds = client.ApiextensionsV1Api(api_client).list_custom_resource_definition().items
    assert "virtualmachines.kubevirt.io" in {c.metadata.name for c in crds}


def test_create_get_list_vm_metadata(api_client, ns):
    api = custom(api_client)
    created = api.create_namespaced_custom_object("kubevirt.io", "v1", ns, "virtualmachines", vm_body("vm1"))
    meta = created["metadata"]
    assert meta["uid"] and meta["creationTimestamp"].endswith("Z")
    assert meta["generation"] == 1 and int(meta["resourceVersion"]) > 0
    assert meta["namespace"] == ns
    got = api.get_namespaced_custom_object("kubevirt.io", "v1", ns, "virtualmachines", "vm1")
    assert got["metadata"]["uid"] == meta["uid"]
    # CRD defaulting from the schema applies (printableStatus defaults to Stopped).
    lst = api.list_namespaced_custom_object("kubevirt.io", "v1", ns, "virtualmachines")
    assert [i["metadata"]["name"] for i in lst["items"]] == ["vm1"]
    assert lst["kind"] == "VirtualMachineList" and int(lst["metadata"]["resourceVersion"]) >= int(
        meta["resourceVersion"])
    # v1alpha3 serves the same object, with a deprecation warning header.
    old = api.get_namespaced_custom_object("kubevirt.io", "v1alpha3", ns, "virtualmachines", "vm1")
    assert old["apiVersion"] == "kubevirt.io/v1alpha3" and old["metadata"]["uid"] == meta["uid"]


def test_generation_bumps_on_spec_only(api_client, ns):
    api = custom(api_client)
    api.create_namespaced_custom_object("kubevirt.io", "v1", ns, "virtualmachines", vm_body("gen"))
    p1 = api.patch_namespaced_custom_object("kubevirt.io", "v1", ns, "virtualmachines", "gen",
                                            {"metadata": {"labels": {"a": "b"}}})
    assert p1["metadata"]["generation"] == 1
    p2 = api.patch_namespaced_custom_object("kubevirt.io", "v1", ns, "virtualmachines", "gen",
                                            {"spec": {"runStrategy": "Manual"}})
    assert p2["metadata"]["generation"] == 2
    assert int(p2["metadata"]["resourceVersion"]) > int(p1["metadata"]["resourceVersion"])
    # Status written through the main resource is ignored (VM has a /status subresource).
    p3 = api.patch_namespaced_custom_object("kubevirt.io", "v1", ns, "virtualmachines", "gen",
                                            {"status": {"printableStatus": "Bogus"}})
    assert (p3.get("status") or {}).get("printableStatus") != "Bogus"
    s = api.patch_namespaced_custom_object_status("kubevirt.io", "v1", ns, "virtualmachines", "gen",
                                                  {"status": {"printableStatus": "Migrating"}})
    assert s["status"]["printableStatus"] == "Migrating" and s["metadata"]["generation"] == 2


def test_update_conflict_and_not_found_status_bodies(api_client, ns):
    api = custom(api_client)
    vm = api.create_namespaced_custom_object("kubevirt.io", "v1", ns, "virtualmachines", vm_body("c1"))
    with pytest.raises(client.ApiException) as exc:
        api.create_namespaced_custom_object("kubevirt.io", "v1", ns, "virtualmachines", vm_body("c1"))
    body = status_of(exc.value)
    assert exc.value.status == 409 and body["reason"] == "AlreadyExists"
    assert body["message"] == 'virtualmachines.kubevirt.io "c1" already exists'
    assert body["details"] == {"name": "c1", "group": "kubevirt.io", "kind": "virtualmachines"}
    api.patch_namespaced_custom_object("kubevirt.io", "v1", ns, "virtualmachines", "c1",
                                       {"metadata": {"labels": {"x": "1"}}})
    stale = vm
    stale["metadata"]["labels"] = {"y": "2"}
    with pytest.raises(client.ApiException) as exc:
        api.replace_namespaced_custom_object("kubevirt.io", "v1", ns, "virtualmachines", "c1", stale)
    body = status_of(exc.value)
    assert exc.value.status == 409 and body["reason"] == "Conflict"
    assert body["message"] == ('Operation cannot be fulfilled on virtualmachines.kubevirt.io "c1": the object has '
                               'been modified; please apply your changes to the latest version and try again')
    with pytest.raises(client.ApiException) as exc:
        api.get_namespaced_custom_object("kubevirt.io", "v1", ns, "virtualmachines", "nope")
    body = status_of(exc.value)
    assert exc.value.status == 404 and body["kind"] == "Status" and body["status"] == "Failure"
    assert body["message"] == 'virtualmachines.kubevirt.io "nope" not found' and body["reason"] == "NotFound"
    with pytest.raises(client.ApiException) as exc:
        client.CoreV1Api(api_client).read_namespaced_config_map("nope", ns)
    assert status_of(exc.value)["message"] == 'configmaps "nope" not found'
    assert status_of(exc.value)["details"] == {"name": "nope", "kind": "configmaps"}


def test_invalid_422_and_strict_400(api_client, ns):
    api = custom(api_client)
    bad = vm_body("bad")
    bad["spec"]["template"]["spec"]["domain"]["rebootPolicy"] = "Sometimes"
    with pytest.raises(client.ApiException) as exc:
        api.create_namespaced_custom_object("kubevirt.io", "v1", ns, "virtualmachines", bad)
    body = status_of(exc.value)
    assert exc.value.status == 422 and body["reason"] == "Invalid"
    assert body["message"] == ('VirtualMachine.kubevirt.io "bad" is invalid: spec.template.spec.domain.rebootPolicy: '
                               'Unsupported value: "Sometimes": supported values: "Reboot", "Terminate"')
    assert body["details"]["causes"] == [{
        "reason": "FieldValueNotSupported", "field": "spec.template.spec.domain.rebootPolicy",
        "message": 'Unsupported value: "Sometimes": supported values: "Reboot", "Terminate"'}]
    assert body["details"]["kind"] == "VirtualMachine" and body["details"]["group"] == "kubevirt.io"
    bad = vm_body("bad2")
    del bad["spec"]["template"]
    bad["spec"]["runStrategy"] = 5
    with pytest.raises(client.ApiException) as exc:
        api.create_namespaced_custom_object("kubevirt.io", "v1", ns, "virtualmachines", bad)
    causes = {c["field"]: c for c in status_of(exc.value)["details"]["causes"]}
    assert causes["spec.template"]["reason"] == "FieldValueRequired"
    assert causes["spec.runStrategy"]["message"] == ('Invalid value: "integer": spec.runStrategy in body must be of '
                                                     'type string: "integer"')
    unknown = vm_body("strict")
    unknown["spec"]["foo"] = 1
    with pytest.raises(client.ApiException) as exc:
        api.create_namespaced_custom_object("kubevirt.io", "v1", ns, "virtualmachines", unknown,
                                            field_validation="Strict")
    body = status_of(exc.value)
    assert exc.value.status == 400 and body["reason"] == "BadRequest"
    assert body["message"] == ('VirtualMachine in version "v1" cannot be handled as a VirtualMachine: strict '
                               'decoding error: unknown field "spec.foo"')
    # Default (Warn) prunes the field and answers with a Warning header.
    resp = api.create_namespaced_custom_object_with_http_info("kubevirt.io", "v1", ns, "virtualmachines", unknown)
    obj, code, headers = resp
    assert code == 201 and "foo" not in obj["spec"]
    assert 'unknown field \\"spec.foo\\"' in headers.get("Warning", "")


def test_dry_run_does_not_persist(api_client, ns):
    api = custom(api_client)
    out = api.create_namespaced_custom_object("kubevirt.io", "v1", ns, "virtualmachines", vm_body("dry"),
                                              dry_run="All")
    assert out["metadata"]["name"] == "dry" and out["metadata"]["uid"]
    with pytest.raises(client.ApiException) as exc:
        api.get_namespaced_custom_object("kubevirt.io", "v1", ns, "virtualmachines", "dry")
    assert exc.value.status == 404
    api.create_namespaced_custom_object("kubevirt.io", "v1", ns, "virtualmachines", vm_body("dry"))
    patched = api.patch_namespaced_custom_object("kubevirt.io", "v1", ns, "virtualmachines", "dry",
                                                 {"spec": {"runStrategy": "Always"}}, dry_run="All")
    assert patched["spec"]["runStrategy"] == "Always"
    assert api.get_namespaced_custom_object("kubevirt.io", "v1", ns, "virtualmachines",
                                            "dry")["spec"]["runStrategy"] == "Halted"
    api.delete_namespaced_custom_object("kubevirt.io", "v1", ns, "virtualmachines", "dry", dry_run="All")
    assert api.get_namespaced_custom_object("kubevirt.io", "v1", ns, "virtualmachines", "dry")


def test_json_patch_and_merge_patch(dyn, ns):
    res = dyn.resources.get(**VM_GVK)
    res.create(body=vm_body("p1", labels={"keep": "1", "drop": "1"}), namespace=ns)
    out = res.patch(name="p1", namespace=ns, body={"metadata": {"labels": {"drop": None, "new": "2"}}},
                    content_type="application/merge-patch+json")
    assert out.metadata.labels.to_dict() == {"keep": "1", "new": "2"}
    out = res.patch(name="p1", namespace=ns, content_type="application/json-patch+json", body=[
        {"op": "replace", "path": "/spec/runStrategy", "value": "Manual"},
        {"op": "add", "path": "/spec/template/metadata/labels/extra", "value": "x"}])
    assert out.spec.runStrategy == "Manual" and out.spec.template.metadata.labels["extra"] == "x"
    from kubernetes.dynamic.exceptions import DynamicApiError
    with pytest.raises(DynamicApiError) as exc:
        res.patch(name="p1", namespace=ns, content_type="application/json-patch+json",
                  body=[{"op": "test", "path": "/spec/runStrategy", "value": "Always"},
                        {"op": "replace", "path": "/spec/runStrategy", "value": "Halted"}])
    assert exc.value.status == 422
    with pytest.raises(DynamicApiError) as exc:
        res.patch(name="p1", namespace=ns, body={"spec": {}}, content_type="application/strategic-merge-patch+json")
    assert exc.value.status == 415


def test_label_and_field_selectors(api_client, ns):
    api = custom(api_client)
    for i in range(6):
        api.create_namespaced_custom_object("kubevirt.io", "v1", ns, "virtualmachines",
                                            vm_body("s%d" % i, labels={"tier": "web" if i % 2 else "db",
                                                                       "idx": str(i)}))

    def names(**kw):
        return [i["metadata"]["name"] for i in api.list_namespaced_custom_object(
            "kubevirt.io", "v1", ns, "virtualmachines", **kw)["items"]]
    assert names(label_selector="tier=web") == ["s1", "s3", "s5"]
    assert names(label_selector="tier!=web,idx in (0,2,5)") == ["s0", "s2"]
    assert names(label_selector="idx notin (0,1,2,3),tier") == ["s4", "s5"]
    assert names(label_selector="!missing,tier==db") == ["s0", "s2", "s4"]
    assert names(field_selector="metadata.name=s3") == ["s3"]
    assert names(field_selector="metadata.name!=s3", label_selector="tier=web") == ["s1", "s5"]
    with pytest.raises(client.ApiException) as exc:
        names(field_selector="status.phase=Running")
    assert exc.value.status == 400
    assert status_of(exc.value)["message"] == ('"status.phase" is not a known field selector: only '
                                               '"metadata.name", "metadata.namespace"')
    core = client.CoreV1Api(api_client)
    nodes = core.list_node(field_selector="metadata.name=node02").items
    assert [n.metadata.name for n in nodes] == ["node02"]


def test_limit_and_continue(api_client, ns):
    core = client.CoreV1Api(api_client)
    for i in range(7):
        core.create_namespaced_config_map(ns, {"metadata": {"name": "cm-%02d" % i}, "data": {"i": str(i)}})
    seen, token, pages = [], None, 0
    while True:
        page = core.list_namespaced_config_map(ns, limit=3, _continue=token)
        pages += 1
        seen += [c.metadata.name for c in page.items]
        token = page.metadata._continue
        if not token:
            break
        assert page.metadata.remaining_item_count == 7 - len(seen)
    assert pages == 3 and seen == ["cm-%02d" % i for i in range(7)]
    with pytest.raises(client.ApiException) as exc:
        core.list_namespaced_config_map(ns, limit=3, _continue="garbage!")
    assert exc.value.status == 400


def test_watch_from_resource_version(api_client, ns):
    core = client.CoreV1Api(api_client)
    first = core.create_namespaced_config_map(ns, {"metadata": {"name": "w1"}})
    rv = first.metadata.resource_version
    core.create_namespaced_config_map(ns, {"metadata": {"name": "w2"}})
    core.patch_namespaced_config_map("w1", ns, {"metadata": {"labels": {"changed": "yes"}}})
    core.delete_namespaced_config_map("w2", ns)
    w = watch.Watch()
    events = []
    for ev in w.stream(core.list_namespaced_config_map, ns, resource_version=rv, timeout_seconds=2):
        events.append((ev["type"], ev["object"].metadata.name))
        if len(events) == 3:
            w.stop()
    assert events == [("ADDED", "w2"), ("MODIFIED", "w1"), ("DELETED", "w2")]


def test_watch_live_with_label_selector(api_client, ns):
    core = client.CoreV1Api(api_client)
    rv = core.list_namespaced_config_map(ns).metadata.resource_version
    got = []
    w = watch.Watch()

    def consume():
        for ev in w.stream(core.list_namespaced_config_map, ns, label_selector="pick=me", resource_version=rv,
                           timeout_seconds=5):
            got.append((ev["type"], ev["object"].metadata.name))
            if len(got) == 3:
                w.stop()
    t = threading.Thread(target=consume)
    t.start()
    core.create_namespaced_config_map(ns, {"metadata": {"name": "other"}})
    core.create_namespaced_config_map(ns, {"metadata": {"name": "live", "labels": {"pick": "me"}}})
    # Dropping out of the selector is seen as DELETED, coming back as ADDED (watch-cache semantics).
    core.patch_namespaced_config_map("live", ns, {"metadata": {"labels": {"pick": "no"}}})
    core.patch_namespaced_config_map("live", ns, {"metadata": {"labels": {"pick": "me"}}})
    t.join(10)
    assert got == [("ADDED", "live"), ("DELETED", "live"), ("ADDED", "live")]


def test_watch_vm_sees_create(api_client, ns):
    api = custom(api_client)
    rv = api.list_namespaced_custom_object("kubevirt.io", "v1", ns, "virtualmachines")["metadata"]["resourceVersion"]
    api.create_namespaced_custom_object("kubevirt.io", "v1", ns, "virtualmachines", vm_body("wv"))
    w = watch.Watch()
    for ev in w.stream(api.list_namespaced_custom_object, "kubevirt.io", "v1", ns, "virtualmachines",
                       resource_version=rv, timeout_seconds=3):
        assert (ev["type"], ev["object"]["metadata"]["name"]) == ("ADDED", "wv")
        assert ev["object"]["apiVersion"] == "kubevirt.io/v1" and ev["object"]["kind"] == "VirtualMachine"
        w.stop()


def test_watch_too_old_resource_version_is_gone(kubeapi, api_client, ns):
    api = custom(api_client)
    vm = api.create_namespaced_custom_object("kubevirt.io", "v1", ns, "virtualmachines", vm_body("old"))
    api.patch_namespaced_custom_object("kubevirt.io", "v1", ns, "virtualmachines", "old",
                                       {"metadata": {"labels": {"a": "b"}}})
    kubeapi.compact()
    status, body, _ = kubeapi.http("GET", "/apis/kubevirt.io/v1/namespaces/%s/virtualmachines?watch=true&"
                                   "resourceVersion=%s&timeoutSeconds=1" % (ns, vm["metadata"]["resourceVersion"]))
    assert status == 200
    assert body["type"] == "ERROR" and body["object"]["code"] == 410 and body["object"]["reason"] == "Expired"


def test_delete_and_namespace_cascade(dyn, api_client, ns):
    res = dyn.resources.get(**VM_GVK)
    res.create(body=vm_body("d1"), namespace=ns)
    out = res.delete(name="d1", namespace=ns)
    assert out.metadata.name == "d1"
    with pytest.raises(NotFoundError):
        res.get(name="d1", namespace=ns)
    core = client.CoreV1Api(api_client)
    core.create_namespaced_config_map(ns, {"metadata": {"name": "cm"}})
    core.delete_namespace(ns)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            core.read_namespace(ns)
        except client.ApiException as exc:
            assert exc.status == 404
            break
        time.sleep(0.05)
    else:
        pytest.fail("namespace was not removed")
    with pytest.raises(client.ApiException) as exc:
        core.read_namespaced_config_map("cm", ns)
    assert exc.value.status == 404


def test_create_in_missing_namespace(api_client):
    with pytest.raises(client.ApiException) as exc:
        client.CoreV1Api(api_client).create_namespaced_config_map("does-not-exist", {"metadata": {"name": "x"}})
    assert exc.value.status == 404
    assert status_of(exc.value)["message"] == 'namespaces "does-not-exist" not found'


def test_secret_string_data_and_request_log(kubeapi, api_client, ns):
    mark = kubeapi.mark()
    core = client.CoreV1Api(api_client)
    core.create_namespaced_secret(ns, {"metadata": {"name": "s"}, "stringData": {"k": "v"}})
    sec = core.read_namespaced_secret("s", ns)
    assert sec.data == {"k": "dg=="} and sec.type == "Opaque"
    core.list_namespaced_secret(ns, label_selector="a=b")
    log = kubeapi.requests(since=mark)
    assert [(e["method"], e["verb"], e["status"]) for e in log] == [
        ("POST", "create", 201), ("GET", "get", 200), ("GET", "list", 200)]
    assert log[2]["path"] == "/api/v1/namespaces/%s/secrets" % ns and log[2]["query"]["labelSelector"] == "a=b"
    assert log[0]["user"] == "admin" and log[0]["fault"] is None


def test_watch_bookmarks(kubeapi, ns):
    rv = kubeapi.http("GET", "/api/v1/namespaces/%s/configmaps" % ns)[1]["metadata"]["resourceVersion"]
    status, body, _ = kubeapi.http("GET", "/api/v1/namespaces/%s/configmaps?watch=true&allowWatchBookmarks=true&"
                                   "timeoutSeconds=1&resourceVersion=%s" % (ns, rv))
    assert status == 200
    events = [json.loads(line) for line in body.splitlines()] if isinstance(body, str) else [body]
    assert events and all(e["type"] == "BOOKMARK" and e["object"]["kind"] == "ConfigMap" for e in events)
    assert int(events[-1]["object"]["metadata"]["resourceVersion"]) >= int(rv)


def test_request_log_orders_by_arrival(kubeapi, api_client, ns):
    """A watch is logged when it starts (status 200 once its headers are out), not when it ends."""
    mark = kubeapi.mark()
    t = threading.Thread(target=kubeapi.http, args=("GET", "/api/v1/namespaces/%s/configmaps?watch=1&"
                                                           "timeoutSeconds=2" % ns))
    t.start()
    time.sleep(0.3)
    client.CoreV1Api(api_client).list_namespaced_config_map(ns)
    log = kubeapi.requests(since=mark)
    t.join(5)
    assert [(e["verb"], e["status"]) for e in log] == [("watch", 200), ("list", 200)]


def test_custom_resource_needs_kind_builtin_does_not(kubeapi, api_client, ns):
    body = vm_body("nokind")
    del body["kind"]
    status, out, _ = kubeapi.http("POST", "/apis/kubevirt.io/v1/namespaces/%s/virtualmachines" % ns, body)
    assert status == 400 and out["message"].startswith("Object 'Kind' is missing in '{")
    status, out, _ = kubeapi.http("POST", "/api/v1/namespaces/%s/configmaps" % ns, {"metadata": {"name": "k"}})
    assert status == 201 and out["kind"] == "ConfigMap"


def test_bad_label_value_is_422(api_client, ns):
    with pytest.raises(client.ApiException) as exc:
        client.CoreV1Api(api_client).create_namespaced_config_map(ns, {"metadata": {"name": "l", "labels": {
            "tier": "front end"}}})
    body = status_of(exc.value)
    assert exc.value.status == 422 and body["message"].startswith(
        'ConfigMap "l" is invalid: metadata.labels: Invalid value: "front end": a valid label must be an empty '
        'string or consist of alphanumeric characters')


def test_service_status_load_balancer_defaults_empty_and_is_kept(kubeapi, ns):
    path = "/api/v1/namespaces/%s/services" % ns
    status, out, _ = kubeapi.http("POST", path, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "lb"}, "spec": {
        "type": "LoadBalancer", "selector": {"app": "x"}, "ports": [{"port": 22}]}, "status": {"loadBalancer": {
            "ingress": [{"ip": "203.0.113.9"}]}}})
    assert status == 201 and out["status"] == {"loadBalancer": {}}  # client-sent status is dropped on create
    out["status"] = {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}]}}
    status, out, _ = kubeapi.http("PUT", path + "/lb/status", out)
    assert status == 200 and out["status"]["loadBalancer"]["ingress"] == [{"ip": "203.0.113.9"}]
    out["metadata"]["labels"] = {"touched": "yes"}
    status, out, _ = kubeapi.http("PUT", path + "/lb", dict(out, status={}))
    assert status == 200 and out["status"]["loadBalancer"]["ingress"] == [{"ip": "203.0.113.9"}]
