"""Unit tests for _namespaces: which 404 means "namespace missing", and what a namespace create failure says."""
import json

import pytest

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _namespaces as nsu
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._errors import ApiError


def status(code, reason, message, details):
    return json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason,
                       "message": message, "details": details})


NS_MISSING = ApiError('x was not found', 404, body=status(404, "NotFound", 'namespaces "team" not found',
                                                          {"name": "team", "kind": "namespaces"}))
VM_MISSING = ApiError('x was not found', 404, body=status(
    404, "NotFound", 'virtualmachines.kubevirt.io "team" not found',
    {"name": "team", "group": "kubevirt.io", "kind": "virtualmachines"}))


def test_only_the_namespace_404_counts():
    assert nsu.namespace_missing(NS_MISSING, "team")
    assert not nsu.namespace_missing(NS_MISSING, "other")
    assert not nsu.namespace_missing(VM_MISSING, "team")     # a VM named like the namespace
    assert not nsu.namespace_missing(ApiError("denied", 403), "team")
    # A server without a Status body: the message is all there is.
    assert nsu.namespace_missing(ApiError('gone: namespaces "team" not found', 404), "team")


class FakeApi:
    def __init__(self, error=None):
        self.error = error
        self.calls = []

    def create(self, kind, obj, namespace=None, dry_run=False, field_manager=None):
        self.calls.append((kind.kind, obj["metadata"]["name"], dry_run))
        if self.error:
            raise self.error
        return obj


def test_disabled_names_the_option_and_sends_nothing():
    api = FakeApi()
    with pytest.raises(ApiError) as err:
        nsu.Namespaces(api, enabled=False).ensure("team")
    assert 'Namespace "team" does not exist' in err.value.msg and "create_namespace=true" in err.value.msg
    assert api.calls == []


def test_creates_once_and_check_mode_remembers_it_missing():
    api = FakeApi()
    made = nsu.Namespaces(api, enabled=True, check_mode=True)
    made.ensure("team")
    assert api.calls == [("Namespace", "team", True)] and made.created == ["team"] and made.missing == {"team"}


def test_someone_else_created_it_meanwhile():
    api = FakeApi(ApiError("exists", 409, body=status(409, "AlreadyExists", 'namespaces "team" already exists',
                                                      {"name": "team", "kind": "namespaces"})))
    made = nsu.Namespaces(api, enabled=True)
    made.ensure("team")
    assert made.created == [] and not made.failed


def test_forbidden_is_one_sentence_and_remembered():
    api = FakeApi(ApiError("denied", 403))
    made = nsu.Namespaces(api, enabled=True)
    for _attempt in range(2):
        with pytest.raises(ApiError) as err:
            made.ensure("team")
        assert err.value.msg.startswith('Cannot create namespace "team" (create_namespace=true)')
        assert "403 Forbidden" in err.value.msg and "grant them the RBAC permission" in err.value.msg
        assert err.value.msg.count(". ") == 0
    assert len(api.calls) == 1
