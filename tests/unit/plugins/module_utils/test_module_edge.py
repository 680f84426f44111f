"""Unit tests for _module.run_with_client: validation before any client, the task deadline handed to retries,
one error translation that keeps the exception chain for -vvv."""
import json

import pytest

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _client
from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _module
from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _kinds
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._api import Api
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._args import INSECURE_WARNING, InvalidOption
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._errors import KubeVirtError

from ..kube_fakes import FakePool, make_client

PODS = "/api/v1/namespaces/ns/pods"


class Done(Exception):
    pass


class FakeModule:
    def __init__(self, params, verbosity=0):
        self.params = params
        self._verbosity = verbosity
        self.warnings = []
        self.failed = None

    def warn(self, text):
        self.warnings.append(text)

    def fail_json(self, **kwargs):
        self.failed = kwargs
        raise Done()


def real_client(pool=None):
    """The real Client over a fake pool, on a clock stopped at 0 so that a deadline reads as the seconds it was set to."""
    client = make_client(pool or FakePool())
    client.clock = lambda: 0.0
    return client


@pytest.fixture
def pooled_client(monkeypatch):
    client = real_client()
    monkeypatch.setattr(_client, "client_from_options", lambda options: client)
    return client


@pytest.mark.parametrize("timeout", [7, 600])
def test_wait_timeout_bounds_the_retries_of_every_module(pooled_client, timeout):
    module = FakeModule({"wait_timeout": timeout})
    assert _module.run_with_client(module, lambda client: client) is pooled_client
    assert pooled_client.deadline == timeout
    assert module.warnings == []   # the client verifies the server certificate


def test_without_wait_timeout_only_the_attempt_cap_applies(pooled_client):
    _module.run_with_client(FakeModule({}), lambda client: None)
    assert pooled_client.deadline is None


def test_invalid_input_fails_before_a_client_exists(monkeypatch):
    made = []
    monkeypatch.setattr(_client, "client_from_options", made.append)

    def validate(params):
        raise InvalidOption("memory: '2 GB' is not a Kubernetes quantity; write it like 2Gi.")

    module = FakeModule({"wait_timeout": 5})
    with pytest.raises(Done):
        _module.run_with_client(module, lambda client: None, validate=validate)
    assert module.failed["msg"].startswith("memory: '2 GB'") and made == []


def _refused(secret=""):
    """work() that fails the way a client failure reaches the edge: our error, chained from the library's."""
    def work(client):
        try:
            raise ConnectionRefusedError(111, "Connection refused %s" % secret)
        except ConnectionRefusedError as exc:
            raise KubeVirtError("Cannot reach the API server at https://api.test:6443: connection refused.",
                                status=None) from exc
    return work


def test_failure_below_vvv_is_the_sentence_alone(pooled_client):
    module = FakeModule({}, verbosity=2)
    with pytest.raises(Done):
        _module.run_with_client(module, _refused())
    # No traceback: ansible-core 2.16 would print its last line after the sentence on every failure.
    assert module.failed == {"msg": "Cannot reach the API server at https://api.test:6443: connection refused.",
                             "status": None}


def test_failure_keeps_the_exception_chain_for_vvv(pooled_client):
    module = FakeModule({}, verbosity=3)
    with pytest.raises(Done):
        _module.run_with_client(module, _refused())
    failed = module.failed
    assert failed["msg"] == "Cannot reach the API server at https://api.test:6443: connection refused."
    assert failed["status"] is None
    trace = failed["exception"]
    # Both ends of the chain, in the order Python prints them (kubernetes.core's fail_from_exception form).
    assert trace.index("ConnectionRefusedError: [Errno 111] Connection refused") < \
        trace.index("The above exception was the direct cause of the following exception:") < \
        trace.index("KubeVirtError: Cannot reach the API server")


def test_a_refused_connection_reaches_the_edge_as_one_sentence_with_its_chain(monkeypatch):
    pool = FakePool().on("GET", PODS + "/web", ConnectionRefusedError(111, "Connection refused"))
    client = real_client(pool)
    monkeypatch.setattr(_client, "client_from_options", lambda options: client)
    module = FakeModule({}, verbosity=3)
    with pytest.raises(Done):
        _module.run_with_client(module, lambda c: Api(c).get(_kinds.POD, "web", "ns"))
    assert module.failed["msg"] == (
        "Cannot connect to the API server at https://api.test:6443 (connection refused): check host / the kubeconfig "
        "server URL and that the API server is running. (gave up after 6 attempts)")
    trace = module.failed["exception"]
    assert trace.index("ConnectionRefusedError: [Errno 111] Connection refused") < \
        trace.index("TransportError: Cannot connect to the API server")
    assert [r.path for r in pool.requests] == [PODS + "/web"] * 6   # a GET is retried up to the attempt cap


def test_a_client_that_does_not_verify_certificates_warns(monkeypatch):
    client = real_client()
    client.configuration.verify_ssl = False
    monkeypatch.setattr(_client, "client_from_options", lambda options: client)
    module = FakeModule({})
    _module.run_with_client(module, lambda c: None)
    assert module.warnings == [INSECURE_WARNING]


def test_traceback_of_a_real_module_masks_the_secrets(monkeypatch, capsys):
    from ansible_collections.virtfleet.kubevirt.plugins.module_utils._args import AUTH_ARG_SPEC
    from ..modules.module_args import patch_module_args
    try:  # ansible-core 2.19 adds the traceback only when the controller asks (-vvv / DISPLAY_TRACEBACK)
        from ansible.module_utils._internal import _traceback
        monkeypatch.setattr(_traceback, "_is_traceback_enabled", lambda event: True)
    except ImportError:
        pass
    monkeypatch.setattr(_client, "client_from_options", lambda options: real_client())
    with patch_module_args({"host": "https://api.test:6443", "api_key": "s3cr3t-t0ken-value", "_ansible_verbosity": 3}):
        module = _module.KubeVirtModule(argument_spec=dict(AUTH_ARG_SPEC))
        with pytest.raises(SystemExit):
            _module.run_with_client(module, _refused("for token s3cr3t-t0ken-value"))
    out = capsys.readouterr().out
    result = json.loads(out[out.index("{"):])
    assert result["failed"] is True and "ConnectionRefusedError" in result["exception"]
    assert "s3cr3t-t0ken-value" not in out and "for token ********" in result["exception"]
