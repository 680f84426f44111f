"""Unit tests for _module.run_with_client: validation before any client, the task deadline handed to retries."""
import pytest

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _client
from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _module
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._args import InvalidOption


class Done(Exception):
    pass


class FakeModule:
    def __init__(self, params):
        self.params = params
        self.warnings = []
        self.failed = None

    def warn(self, text):
        self.warnings.append(text)

    def fail_json(self, **kwargs):
        self.failed = kwargs
        raise Done()


class FakeClient:
    def __init__(self):
        self.deadline_seconds = "unset"

    def set_deadline(self, seconds):
        self.deadline_seconds = seconds


@pytest.fixture
def fake_client(monkeypatch):
    client = FakeClient()
    monkeypatch.setattr(_client, "client_from_options", lambda options: client)
    monkeypatch.setattr(_module, "insecure", lambda c: False)
    return client


@pytest.mark.parametrize("timeout", [7, 600])
def test_wait_timeout_bounds_the_retries_of_every_module(fake_client, timeout):
    module = FakeModule({"wait_timeout": timeout})
    assert _module.run_with_client(module, lambda client: client) is fake_client
    assert fake_client.deadline_seconds == timeout


def test_without_wait_timeout_only_the_attempt_cap_applies(fake_client):
    _module.run_with_client(FakeModule({}), lambda client: None)
    assert fake_client.deadline_seconds == "unset"


def test_invalid_input_fails_before_a_client_exists(monkeypatch):
    made = []
    monkeypatch.setattr(_client, "client_from_options", made.append)

    def validate(params):
        raise InvalidOption("memory: '2 GB' is not a Kubernetes quantity; write it like 2Gi.")

    module = FakeModule({"wait_timeout": 5})
    with pytest.raises(Done):
        _module.run_with_client(module, lambda client: None, validate=validate)
    assert module.failed["msg"].startswith("memory: '2 GB'") and made == []
