"""kubevirt_vm create_namespace: a missing namespace is created on demand, at no request cost when it exists.

The request log of the emulator is the measure: a new namespace costs one POST of the namespace plus one
repeated write; a re-run costs no write and no namespace request at all."""
import uuid

from .test_kubevirt_vm import play, vm_task, web, writes

NAMESPACES = "/api/v1/namespaces"


def new_ns():
    return "cn-" + uuid.uuid4().hex[:8]


def ns_requests(entries):
    return [e for e in entries if e["path"].startswith(NAMESPACES) and "/" not in e["path"][len(NAMESPACES) + 1:]]


def test_creates_the_missing_namespace_then_reruns_without_writes(kubeapi, ansible_env, tmp_path):
    ns = new_ns()
    mark = kubeapi.mark()
    r = play(ansible_env, tmp_path, [vm_task("first", create_namespace=True, **web(ns))])
    first = r["first"]
    assert first["changed"] is True and first["outcome"] == "created", first
    assert first["namespaces_created"] == [ns]
    log = kubeapi.requests(since=mark)
    assert kubeapi.get_object("%s/%s" % (NAMESPACES, ns)) is not None
    assert kubeapi.get_object("/apis/kubevirt.io/v1/namespaces/%s/virtualmachines/web" % ns) is not None
    # GET of the VM (404), its create (404: namespace not found), POST of the namespace, the create again.
    assert [(e["method"], e["status"]) for e in log] == [("GET", 404), ("POST", 404), ("POST", 201), ("POST", 201)], log
    assert [e["path"] for e in ns_requests(log)] == [NAMESPACES]

    mark = kubeapi.mark()
    r = play(ansible_env, tmp_path, [vm_task("again", create_namespace=True, **web(ns))])
    assert r["again"]["changed"] is False and r["again"]["namespaces_created"] == [], r["again"]
    log = kubeapi.requests(since=mark)
    assert writes(log) == [] and ns_requests(log) == [], log
    assert len(log) == 1, log


def test_check_mode_predicts_the_vm_in_a_missing_namespace(kubeapi, ansible_env, tmp_path):
    ns = new_ns()
    mark = kubeapi.mark()
    r = play(ansible_env, tmp_path, [vm_task("planned", create_namespace=True, state="started", **web(ns))],
             check=True, diff=True)
    planned = r["planned"]
    assert planned["changed"] is True and planned["namespaces_created"] == [ns], planned
    assert planned["method"] == "create" and planned["outcome"] == "created"
    assert planned["result"]["metadata"]["namespace"] == ns
    assert planned["result"]["spec"]["template"]["spec"]["domain"]["memory"]["guest"] == "512Mi"
    assert planned["diff"]["before"] == {} and planned["diff"]["after"]["metadata"]["name"] == "web"
    assert ns in planned["diff"]["after_header"]
    log = kubeapi.requests(since=mark)
    # Every write was a dry run: the namespace POST and the VM create that found it missing.
    assert [(e["method"], e["status"]) for e in writes(log)] == [("POST", 404), ("POST", 201)], log
    assert all(e["query"].get("dryRun") in ("All", ["All"]) for e in writes(log)), log
    assert kubeapi.get_object("%s/%s" % (NAMESPACES, ns)) is None


def test_vms_spanning_two_new_namespaces(kubeapi, ansible_env, tmp_path):
    a, b = new_ns(), new_ns()
    items = [{"name": "a1", "namespace": a}, {"name": "a2", "namespace": a}, {"name": "b1", "namespace": b}]
    common = dict((k, v) for k, v in web(a).items() if k not in ("name", "namespace"))
    mark = kubeapi.mark()
    r = play(ansible_env, tmp_path, [vm_task("fleet", create_namespace=True, vms=items, **common)], diff=True)
    fleet = r["fleet"]
    assert fleet["changed"] is True and sorted(fleet["namespaces_created"]) == sorted([a, b]), fleet
    assert [x["outcome"] for x in fleet["results"]] == ["created"] * 3
    assert fleet["diff"]["after"]["Namespace " + a]["metadata"]["name"] == a
    log = kubeapi.requests(since=mark)
    assert len([e for e in ns_requests(log) if e["method"] == "POST"]) == 2, log
    # Per namespace one VM create found it missing and was sent again; a2 went straight through.
    creates = [e for e in log if e["method"] == "POST" and e["path"].endswith("/virtualmachines")]
    assert [e["status"] for e in creates].count(404) == 2 and len(creates) == 5, creates

    mark = kubeapi.mark()
    r = play(ansible_env, tmp_path, [vm_task("fleet2", create_namespace=True, vms=items, **common)])
    assert r["fleet2"]["changed"] is False and r["fleet2"]["namespaces_created"] == []
    log = kubeapi.requests(since=mark)
    assert writes(log) == [] and ns_requests(log) == [], log


def test_missing_namespace_without_the_option_fails_with_the_fix(kubeapi, ansible_env, tmp_path):
    ns = new_ns()
    r = play(ansible_env, tmp_path, [vm_task("nope", ignore_errors=True, **web(ns))])
    assert r["nope"]["failed"] is True
    msg = r["nope"]["msg"]
    assert 'Namespace "%s" does not exist' % ns in msg and "create_namespace=true" in msg, msg
    assert kubeapi.get_object("%s/%s" % (NAMESPACES, ns)) is None


def test_forbidden_namespace_create_names_the_option_and_writes_no_vm(kubeapi, ansible_env, tmp_path):
    ns = new_ns()
    token = "ns-restricted-" + uuid.uuid4().hex[:8]
    # VMs in every namespace (a ClusterRoleBinding), no right on namespaces: no RoleBinding can exist in a namespace
    # that does not exist yet, so this is how a real cluster lets a user create VMs but not their namespace.
    kubeapi.add_token(token, resources=["virtualmachines"], cluster_wide=True)
    env = dict(ansible_env, K8S_AUTH_KUBECONFIG=str(kubeapi.kubeconfig_for(token=token)))
    items = [{"name": "x1", "namespace": ns}, {"name": "x2", "namespace": ns}]
    common = dict((k, v) for k, v in web(ns).items() if k not in ("name", "namespace"))
    mark = kubeapi.mark()
    r = play(env, tmp_path, [vm_task("denied", ignore_errors=True, create_namespace=True, vms=items, **common)])
    denied = r["denied"]
    assert denied["failed"] is True and denied["namespaces_created"] == [], denied
    msg = denied["results"][0]["msg"]
    assert msg.startswith('Cannot create namespace "%s" (create_namespace=true)' % ns), msg
    assert "403" in msg and "create the namespace beforehand or grant" in msg, msg
    log = kubeapi.requests(since=mark)
    assert not [e for e in writes(log) if e["status"] < 300], log
    # One VM create finds the namespace missing, one POST is refused; x2 fails with the same reason, no request.
    assert [(e["method"], e["status"]) for e in writes(log)] == [("POST", 404), ("POST", 403)], log
    assert kubeapi.get_object("%s/%s" % (NAMESPACES, ns)) is None


def test_absent_never_touches_namespaces(kubeapi, ansible_env, tmp_path):
    ns = new_ns()
    mark = kubeapi.mark()
    r = play(ansible_env, tmp_path, [vm_task("gone", create_namespace=True, state="absent", name="web", namespace=ns)])
    assert r["gone"]["changed"] is False and r["gone"]["outcome"] == "absent" and r["gone"]["namespaces_created"] == []
    assert ns_requests(kubeapi.requests(since=mark)) == []
