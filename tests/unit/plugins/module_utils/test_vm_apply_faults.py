"""_vm_apply under API faults: per-VM outcomes and the failure report, the generate_name create token, the
re-read of the guarded spec.running swap, and errors after the writes that must not hide what was done.

Faults are injected at the HTTP seam (``FakeCluster.intercept``), so the real Client's retries take part."""
import pytest
import urllib3

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _vm_apply as va
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._api import CREATE_TOKEN_LABEL, Api
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._errors import KubeVirtError

from ..fake_cluster import FakeCluster, dropped, unavailable
from ..kube_fakes import make_client, response, status_body
from .test_vm_apply import COMMON, VMIS, VMS, action_path, run, vm_path

ATTEMPTS = 6    # the client's retry budget (RetryPolicy.attempts)


def test_every_vm_is_named_in_the_failure_report():
    cluster = FakeCluster()
    run(cluster, vms=[{"name": "same"}, {"name": "gone"}], **COMMON)
    cluster.reject["bad"] = "spec.x: Invalid value"
    failed, res = run(cluster, vms=[{"name": "new"}, {"name": "bad"}, {"name": "same"}, {"name": "gone", "state": "absent"},
                                    {"name": "never", "state": "absent"}], **COMMON)
    assert failed
    assert [x["outcome"] for x in res["results"]] == ["created", "failed", "unchanged", "deleted", "absent"]
    msg = res["msg"]
    assert msg.startswith("1 of 5 VMs failed: ns/bad: The API server rejected")
    assert ("Done for the others: created 1: ns/new; unchanged 1: ns/same; deleted 1: ns/gone; absent 1: ns/never."
            in msg), msg


def test_no_report_when_all_succeed():
    failed, res = run(FakeCluster(), vms=[{"name": "a"}], **COMMON)
    assert not failed and "msg" not in res and res["results"][0]["outcome"] == "created"
    assert res["api_retries"] == 0


def test_a_vm_that_was_written_then_failed_says_both():
    cluster = FakeCluster()

    def refuse(req):
        raise dropped()
    cluster.intercept("PUT", action_path("a", "start"), refuse)
    failed, res = run(cluster, vms=[{"name": "a", "state": "started", "run_strategy": "Manual"}], **COMMON)
    assert failed
    assert "ns/a (created, then failed): Cannot start VM ns/a: The connection to the API server" in res["msg"]
    # A start sent twice ends the same, so the client retried it until its budget was spent.
    assert cluster.writes() == [("POST", VMS, {})] + [("PUT", action_path("a", "start"), {})] * ATTEMPTS


def test_read_failure_says_nothing_was_changed():
    cluster = FakeCluster()
    cluster.intercept("GET", VMS, lambda req: unavailable())
    with pytest.raises(KubeVirtError) as err:
        run(cluster, vms=[{"name": "a"}, {"name": "b"}], **COMMON)
    assert err.value.msg.endswith("No VM was created, changed or deleted.")
    assert "(gave up after %d attempts)" % ATTEMPTS in err.value.msg
    assert cluster.sent() == [("GET", VMS, {})] * ATTEMPTS


def test_error_after_the_writes_keeps_their_outcomes():
    cluster = FakeCluster()

    def flaky(req):
        if cluster.writes():
            raise urllib3.exceptions.ReadTimeoutError(None, req.url, "Read timed out. (read timeout=60.0)")
        return None
    cluster.intercept("GET", VMS, flaky)
    failed, res = run(cluster, vms=[{"name": "a"}, {"name": "b"}], wait=True, **COMMON)
    assert failed and [x["outcome"] for x in res["results"]] == ["created", "created"]
    assert "Done: created 2: ns/a, ns/b." in res["msg"]
    assert ("After the writes, reading the VMs back failed: The API server at https://api.test:6443 did not answer in "
            "time" in res["msg"])
    assert cluster.vm("a") is not None and cluster.vm("b") is not None


def test_generate_name_create_carries_a_fresh_token():
    cluster = FakeCluster()
    run(cluster, vms=[{"generate_name": "g-"}, {"generate_name": "h-"}], **COMMON)
    tokens = [o["metadata"]["labels"][CREATE_TOKEN_LABEL] for o in cluster.items()]
    assert len(tokens) == 2 and len(set(tokens)) == 2 and all(len(t) == 32 for t in tokens)


def test_generate_name_create_whose_answer_was_lost_is_found_by_its_token():
    cluster = FakeCluster()

    def lossy(req):
        cluster.serve(req)
        raise dropped()
    cluster.intercept("POST", VMS, lossy)
    failed, res = run(cluster, generate_name="g-", **COMMON)
    assert not failed and res["changed"] and res["result"]["metadata"]["name"] == "g-abcde"
    token = cluster.vm("g-abcde")["metadata"]["labels"][CREATE_TOKEN_LABEL]
    assert cluster.sent("labelSelector") == [("POST", VMS, {}),
                                             ("GET", VMS, {"labelSelector": "%s=%s" % (CREATE_TOKEN_LABEL, token)})]
    assert len(cluster.items()) == 1


def test_check_mode_create_sends_no_token():
    cluster = FakeCluster()
    run(cluster, check_mode=True, vms=[{"generate_name": "g-"}], **COMMON)
    assert cluster.items() == []
    assert cluster.writes("dryRun") == [("POST", VMS, {"dryRun": "All"})]
    assert CREATE_TOKEN_LABEL not in cluster.bodies("POST", VMS)[0]["metadata"]["labels"]


def _vm_with_running(cluster, value=True):
    run(cluster, name="a", running=value, **COMMON)

    def use_running(vm):
        vm["spec"].pop("runStrategy", None)
        vm["spec"]["running"] = value
    cluster.edit("a", use_running)


def _flip_running(vm):
    vm["spec"]["running"] = not vm["spec"]["running"]


def _swap_tests(cluster):
    """The ``test`` value of each guarded swap sent."""
    return [body[0]["value"] for body in cluster.bodies("PATCH", vm_path("a"))
            if isinstance(body, list) and body[0]["op"] == "test"]


def test_running_swap_rereads_when_the_vm_changed_under_it():
    cluster = FakeCluster()
    _vm_with_running(cluster, True)

    def racing(req):
        if len(_swap_tests(cluster)) == 1:
            cluster.edit("a", _flip_running)     # another tool flips it after our read: the test op fails (422)
    cluster.intercept("PATCH", vm_path("a"), racing)
    failed, res = run(cluster, name="a", run_strategy="Manual", full_ownership=True, **COMMON)
    assert not failed and _swap_tests(cluster) == [True, False]
    assert cluster.sent() == [("GET", vm_path("a"), {}), ("PATCH json", vm_path("a"), {}), ("GET", vm_path("a"), {}),
                              ("PATCH json", vm_path("a"), {}), ("PATCH apply", vm_path("a"), {})]
    spec = cluster.vm("a")["spec"]
    assert spec["runStrategy"] == "Manual" and "running" not in spec


def test_running_swap_whose_answer_was_lost_is_not_sent_again():
    cluster = FakeCluster()
    _vm_with_running(cluster, True)

    def lossy(req):
        if req.headers.get("Content-Type") == "application/json-patch+json":
            cluster.serve(req)
            raise dropped()
    cluster.intercept("PATCH", vm_path("a"), lossy)
    failed, res = run(cluster, name="a", run_strategy="Manual", full_ownership=True, **COMMON)
    assert not failed and _swap_tests(cluster) == [True]
    assert cluster.sent() == [("GET", vm_path("a"), {}), ("PATCH json", vm_path("a"), {}), ("GET", vm_path("a"), {}),
                              ("PATCH apply", vm_path("a"), {})]
    assert cluster.vm("a")["spec"]["runStrategy"] == "Manual"


def test_running_swap_gives_up_after_its_attempts():
    cluster = FakeCluster()
    _vm_with_running(cluster, True)

    def flapping(req):
        cluster.edit("a", _flip_running)         # another tool keeps flipping it
    cluster.intercept("PATCH", vm_path("a"), flapping)
    failed, res = run(cluster, name="a", run_strategy="Manual", full_ownership=True, **COMMON)
    assert failed and "The API server rejected VirtualMachine ns/a as invalid (422)" in res["msg"]
    assert _swap_tests(cluster) == [attempt % 2 == 0 for attempt in range(va.SWAP_ATTEMPTS)]
    # One read of the VM, then one re-read before each new attempt.
    assert [s[0] for s in cluster.sent()] == ["GET"] + ["PATCH json", "GET"] * (va.SWAP_ATTEMPTS - 1) + ["PATCH json"]


def test_running_swap_rejected_for_another_reason_is_not_repeated():
    cluster = FakeCluster()
    _vm_with_running(cluster, True)
    cluster.intercept("PATCH", vm_path("a"), lambda req: response(422, status_body(
        422, "Invalid", 'VirtualMachine.kubevirt.io "a" is invalid: spec.runStrategy: bad', name="a")))
    failed, res = run(cluster, name="a", run_strategy="Manual", full_ownership=True, **COMMON)
    assert failed and "spec.runStrategy: bad" in res["msg"]
    assert cluster.sent() == [("GET", vm_path("a"), {}), ("PATCH json", vm_path("a"), {}), ("GET", vm_path("a"), {})]


def _running_vm(cluster):
    failed, res = run(cluster, name="a", wait=True, **COMMON)
    assert not failed and cluster.vmi("a") is not None
    return cluster.vmi("a")["metadata"]["uid"]


def test_restart_whose_answer_was_lost_is_not_sent_again():
    cluster = FakeCluster()
    _running_vm(cluster)

    def lossy(req):
        cluster.serve(req)
        cluster.reconcile()         # the old VMI is on its way out
        raise dropped()
    cluster.intercept("PUT", action_path("a", "restart"), lossy)
    api = Api(make_client(cluster))
    failed, res = run(cluster, api=api, name="a", namespace="ns", state="restarted")
    assert not failed and res["changed"] and res["action"] == "restart"
    # A restart is not repeatable: no client retry; the VMI is read instead (its uid changed).
    assert cluster.writes() == [("PUT", action_path("a", "restart"), {})]
    assert cluster.sent()[-1] == ("GET", VMIS + "/a", {})
    assert api.client.retry_reasons == {}


def test_restart_that_did_not_happen_is_sent_again():
    cluster = FakeCluster()
    _running_vm(cluster)
    answers = [unavailable()]
    cluster.intercept("PUT", action_path("a", "restart"), lambda req: answers.pop() if answers else None)
    api = Api(make_client(cluster))
    failed, res = run(cluster, api=api, name="a", namespace="ns", state="restarted")
    assert not failed and res["changed"]
    assert cluster.sent() == [("GET", vm_path("a"), {}), ("GET", VMIS + "/a", {}), ("PUT", action_path("a", "restart"), {}),
                              ("GET", VMIS + "/a", {}), ("PUT", action_path("a", "restart"), {})]
    assert api.client.retry_reasons == {"lost-restart": 1}


def test_start_repeated_after_a_lost_answer_counts_as_done():
    cluster = FakeCluster()
    run(cluster, name="a", run_strategy="Manual", full_ownership=True, **COMMON)
    sent = []

    def lossy(req):
        sent.append(req)
        if len(sent) == 1:
            cluster.serve(req)
            cluster.reconcile()     # started before the answer came back
            raise dropped()
    cluster.intercept("PUT", action_path("a", "start"), lossy)
    api = Api(make_client(cluster))
    failed, res = run(cluster, api=api, name="a", namespace="ns", state="started")
    assert not failed and res["changed"]
    # The client sent the start again itself (it is repeatable); its 409 "already running" is the first one's doing.
    assert cluster.writes() == [("PUT", action_path("a", "start"), {})] * 2
    assert api.client.retry_reasons == {"reset": 1}
    assert cluster.vmi("a") is not None
