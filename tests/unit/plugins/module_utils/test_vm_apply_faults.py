"""_vm_apply under API faults: per-VM outcomes and the failure report, the generate_name create token, the
re-read of the guarded spec.running swap, and errors after the writes that must not hide what was done."""
import pytest

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _vm_apply as va
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._api import CREATE_TOKEN_LABEL
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._errors import ApiError, KubeVirtError, TransportError

from .test_vm_apply import COMMON, FakeApi, run


def test_every_vm_is_named_in_the_failure_report():
    api = FakeApi()
    run(api, vms=[{"name": "same"}, {"name": "gone"}], **COMMON)
    api.reject["bad"] = "The API server rejected VirtualMachine ns/bad as invalid (422): spec.x: Invalid value"
    failed, res = run(api, vms=[{"name": "new"}, {"name": "bad"}, {"name": "same"}, {"name": "gone", "state": "absent"},
                                {"name": "never", "state": "absent"}], **COMMON)
    assert failed
    assert [x["outcome"] for x in res["results"]] == ["created", "failed", "unchanged", "deleted", "absent"]
    msg = res["msg"]
    assert msg.startswith("1 of 5 VMs failed: ns/bad: The API server rejected")
    assert ("Done for the others: created 1: ns/new; unchanged 1: ns/same; deleted 1: ns/gone; absent 1: ns/never."
            in msg), msg


def test_no_report_when_all_succeed():
    failed, res = run(FakeApi(), vms=[{"name": "a"}], **COMMON)
    assert not failed and "msg" not in res and res["results"][0]["outcome"] == "created"
    assert res["api_retries"] == 0


def test_a_vm_that_was_written_then_failed_says_both():
    api = FakeApi()

    def boom(*args, **kwargs):
        raise TransportError("The connection to the API server at h was dropped; retries did not help.", retryable=True)
    api.subresource = boom
    failed, res = run(api, vms=[{"name": "a", "state": "started", "run_strategy": "Manual"}], **COMMON)
    assert failed
    assert "ns/a (created, then failed): Cannot start VM ns/a: The connection" in res["msg"]


def test_read_failure_says_nothing_was_changed():
    api = FakeApi()

    def down(*args, **kwargs):
        raise ApiError("The API server failed on GET /x (503); retries did not help. (gave up after 6 attempts)", 503)
    api.list = down
    with pytest.raises(KubeVirtError) as err:
        run(api, vms=[{"name": "a"}, {"name": "b"}], **COMMON)
    assert err.value.msg.endswith("No VM was created, changed or deleted.")
    assert api.writes() == []


def test_error_after_the_writes_keeps_their_outcomes():
    api = FakeApi()
    real_list = api.list

    def flaky(kind, *args, **kwargs):
        if api.writes():
            raise TransportError("The API server at h did not answer in time.", retryable=True)
        return real_list(kind, *args, **kwargs)
    api.list = flaky
    failed, res = run(api, vms=[{"name": "a"}, {"name": "b"}], wait=True, **COMMON)
    assert failed and [x["outcome"] for x in res["results"]] == ["created", "created"]
    assert "Done: created 2: ns/a, ns/b." in res["msg"]
    assert "After the writes, reading the VMs back failed: The API server at h did not answer in time." in res["msg"]


def test_generate_name_create_carries_a_fresh_token():
    api = FakeApi()
    run(api, vms=[{"generate_name": "g-"}, {"generate_name": "h-"}], **COMMON)
    tokens = [o["metadata"]["labels"][CREATE_TOKEN_LABEL] for o in api.objs["virtualmachines"].values()]
    assert len(tokens) == 2 and len(set(tokens)) == 2 and all(len(t) == 32 for t in tokens)


def test_check_mode_create_sends_no_token():
    api = FakeApi()
    run(api, check_mode=True, vms=[{"generate_name": "g-"}], **COMMON)
    assert api.objs["virtualmachines"] == {}


def _vm_with_running(api, value=True):
    run(api, name="a", running=value, **COMMON)
    vm = api.vm("ns", "a")
    vm["spec"].pop("runStrategy", None)
    vm["spec"]["running"] = value


def test_running_swap_rereads_when_the_vm_changed_under_it():
    api = FakeApi()
    _vm_with_running(api, True)
    real_patch = api.patch
    sent = []

    def racing_patch(kind, name, patch, namespace=None, **kwargs):
        sent.append(patch[0]["value"])
        if len(sent) == 1:
            api.vm("ns", "a")["spec"]["running"] = False     # another tool flipped it after our read
            raise ApiError("The API server rejected VirtualMachine ns/a as invalid (422): test failed", 422)
        return real_patch(kind, name, patch, namespace, **kwargs)
    api.patch = racing_patch
    failed, res = run(api, name="a", run_strategy="Manual", full_ownership=True, **COMMON)
    assert not failed and sent == [True, False]
    spec = api.vm("ns", "a")["spec"]
    assert spec["runStrategy"] == "Manual" and "running" not in spec


def test_running_swap_whose_answer_was_lost_is_not_sent_again():
    api = FakeApi()
    _vm_with_running(api, True)
    real_patch = api.patch
    sent = []

    def lossy_patch(kind, name, patch, namespace=None, **kwargs):
        sent.append(patch)
        real_patch(kind, name, patch, namespace, **kwargs)
        raise TransportError("dropped", retryable=True)
    api.patch = lossy_patch
    failed, res = run(api, name="a", run_strategy="Manual", full_ownership=True, **COMMON)
    assert not failed and len(sent) == 1
    assert api.vm("ns", "a")["spec"]["runStrategy"] == "Manual"


def test_running_swap_gives_up_after_its_attempts():
    api = FakeApi()
    _vm_with_running(api, True)
    sent = []

    def flapping(*args, **kwargs):
        sent.append(args)
        vm = api.vm("ns", "a")
        vm["spec"]["running"] = not vm["spec"]["running"]     # another tool keeps flipping it
        raise ApiError("The API server rejected VirtualMachine ns/a as invalid (422): test failed", 422)
    api.patch = flapping
    failed, res = run(api, name="a", run_strategy="Manual", full_ownership=True, **COMMON)
    assert failed and "test failed" in res["msg"]
    assert len(sent) == va.SWAP_ATTEMPTS
    # One read of the VM, then one re-read before each new attempt.
    assert len([c for c in api.calls if c[0] == "get"]) == 1 + va.SWAP_ATTEMPTS - 1


def test_running_swap_rejected_for_another_reason_is_not_repeated():
    api = FakeApi()
    _vm_with_running(api, True)
    sent = []

    def invalid(*args, **kwargs):
        sent.append(args)
        raise ApiError("The API server rejected VirtualMachine ns/a as invalid (422): spec.runStrategy: bad", 422)
    api.patch = invalid
    failed, res = run(api, name="a", run_strategy="Manual", full_ownership=True, **COMMON)
    assert failed and "spec.runStrategy: bad" in res["msg"] and len(sent) == 1


class CountingClient:
    """The retry surface of _client.Client that _vm_apply reads: a counter and backoff()."""

    def __init__(self):
        self.retries = 0
        self.reasons = []

    def backoff(self, attempt, reason, retry_after=None):
        if attempt >= 6:
            return False
        self.retries += 1
        self.reasons.append(reason)
        return True


def _running_vm(api):
    failed, res = run(api, name="a", wait=True, **COMMON)
    assert not failed and api.vmi("ns", "a") is not None
    return api.vmi("ns", "a")["metadata"]["uid"]


def test_restart_whose_answer_was_lost_is_not_sent_again():
    api = FakeApi()
    _running_vm(api)
    api.client = CountingClient()
    real = api.subresource
    sent = []

    def lossy(kind, name, sub, namespace=None, **kwargs):
        sent.append((sub, kwargs.get("idempotent")))
        real(kind, name, sub, namespace, **kwargs)
        del api.objs["virtualmachineinstances"][("ns", name)]    # the old VMI is on its way out
        raise TransportError("dropped", retryable=True)
    api.subresource = lossy
    failed, res = run(api, name="a", namespace="ns", state="restarted")
    assert not failed and res["changed"] and res["action"] == "restart"
    assert sent == [("restart", False)] and api.client.reasons == []


def test_restart_that_did_not_happen_is_sent_again():
    api = FakeApi()
    _running_vm(api)
    api.client = CountingClient()
    real = api.subresource
    sent = []

    def flaky(kind, name, sub, namespace=None, **kwargs):
        sent.append(sub)
        if len(sent) == 1:
            raise ApiError("The API server failed on PUT /restart (503)", 503)
        return real(kind, name, sub, namespace, **kwargs)
    api.subresource = flaky
    failed, res = run(api, name="a", namespace="ns", state="restarted")
    assert not failed and res["changed"] and sent == ["restart", "restart"]
    assert api.client.reasons == ["lost-restart"]


def test_start_repeated_after_a_lost_answer_counts_as_done():
    api = FakeApi()
    run(api, name="a", run_strategy="Manual", full_ownership=True, **COMMON)
    api.client = CountingClient()
    calls = []

    def already(kind, name, sub, namespace=None, **kwargs):
        calls.append(kwargs.get("idempotent"))
        api.client.retries += 1          # the client retried after losing the first answer
        raise ApiError("Conflict (409): VM is already running", 409)
    api.subresource = already
    failed, res = run(api, name="a", namespace="ns", state="started")
    assert not failed and res["changed"] and calls == [True]
