"""Fault behaviour of the client layer: retry counting and the task deadline (_client), lost creates read back,
409 classification and apply conflicts (_api, _errors), deletes that find the object gone on a retry."""
import pytest
import urllib3

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _kinds
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._api import CREATE_TOKEN_LABEL, Api
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._errors import (
    ApiError,
    TransportError,
    conflict_kind,
    maybe_written,
)

from ..kube_fakes import FakePool, make_client, status_body

VMS = '/apis/kubevirt.io/v1/namespaces/ns/virtualmachines'
RESET = urllib3.exceptions.ProtocolError('Connection aborted.', ConnectionResetError(104, 'Connection reset by peer'))


def vm(name, token=None, generate=None):
    meta = {'namespace': 'ns'}
    if name:
        meta['name'] = name
    if generate:
        meta['generateName'] = generate
    if token:
        meta['labels'] = {CREATE_TOKEN_LABEL: token}
    return {'apiVersion': 'kubevirt.io/v1', 'kind': 'VirtualMachine', 'metadata': meta, 'spec': {}}


def stored(name, token=None):
    obj = vm(name, token)
    obj['metadata']['uid'] = 'uid-' + name
    return obj


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def missing(name):
    return (404, status_body(404, 'NotFound', 'virtualmachines.kubevirt.io "%s" not found' % name, name=name))


# ------------------------------------------------------------------------------------------- client


def test_retries_are_counted_by_cause():
    pool = FakePool().on('GET', '/r', (429, {}, {'Retry-After': '0'}), (503, {}), RESET, (200, {'ok': 1}))
    client = make_client(pool)
    assert client.request('GET', '/r') == {'ok': 1}
    assert client.retries == 3 and client.retry_reasons == {'429': 1, '503': 1, 'reset': 1}
    assert client.request_count == 4 and client.recovered == 0


def test_deadline_cuts_the_pause_and_stops_retrying():
    pool = FakePool().on('GET', '/r', (500, {}))
    client = make_client(pool)
    clock = Clock()
    client.clock = clock

    def sleep(seconds):
        client.slept.append(seconds)
        clock.now += seconds
    client.retry.sleep = sleep
    client.retry.rand = lambda: 1.0     # pauses 0.2, 0.4, 0.8, ...
    client.set_deadline(0.5)
    with pytest.raises(ApiError) as err:
        client.request('GET', '/r')
    # 0.2 fits, the next 0.4 is cut to the 0.3 left, then the deadline has passed: three attempts, not six.
    assert client.slept == [0.2, pytest.approx(0.3)]
    assert client.request_count == 3 and client.retries == 2
    assert 'gave up after 3 attempts at the task deadline' in err.value.msg


def test_no_deadline_means_only_the_attempt_cap():
    client = make_client(FakePool().on('GET', '/r', (502, {})))
    client.set_deadline(None)
    with pytest.raises(ApiError):
        client.request('GET', '/r')
    assert client.request_count == client.retry.attempts


def test_post_after_reset_is_not_resent_by_the_client():
    client = make_client(FakePool().on('POST', VMS, RESET))
    with pytest.raises(TransportError) as err:
        client.request('POST', VMS, body={})
    assert err.value.retryable and client.request_count == 1 and client.retries == 0
    assert maybe_written(err.value)


# ------------------------------------------------------------------------------------------- lost creates


def test_lost_named_create_is_found_by_reading_back():
    pool = FakePool().on('POST', VMS, RESET).on('GET', VMS + '/a', (200, stored('a')))
    client = make_client(pool)
    obj = Api(client).create(_kinds.VM, vm('a'))
    assert obj['metadata']['uid'] == 'uid-a'
    assert [(r.method, r.path) for r in pool.requests] == [('POST', VMS), ('GET', VMS + '/a')]
    assert client.recovered == 1 and client.retries == 0


def test_create_that_did_not_happen_is_sent_again():
    pool = FakePool().on('POST', VMS, (504, status_body(504, 'Timeout', 'no answer in time')), (201, stored('a')))
    pool.on('GET', VMS + '/a', missing('a'))
    client = make_client(pool)
    assert Api(client).create(_kinds.VM, vm('a'))['metadata']['name'] == 'a'
    assert [r.method for r in pool.requests] == ['POST', 'GET', 'POST']
    assert client.retry_reasons == {'lost-create': 1}


def test_lost_generate_name_create_is_found_by_its_token():
    pool = FakePool().on('POST', VMS, (500, status_body(500, 'InternalError', 'etcd hiccup')))
    pool.on('GET', VMS, (200, {'metadata': {}, 'items': [stored('gen-x1y2z', 'tok1')]}))
    client = make_client(pool)
    obj = Api(client).create(_kinds.VM, vm(None, token='tok1', generate='gen-'))
    assert obj['metadata']['name'] == 'gen-x1y2z'
    assert pool.requests[1].query['labelSelector'] == '%s=tok1' % CREATE_TOKEN_LABEL
    assert len([r for r in pool.requests if r.method == 'POST']) == 1


def test_conflict_after_a_lost_create_is_our_own_object():
    pool = FakePool().on('POST', VMS, RESET, (409, status_body(409, 'AlreadyExists', 'virtualmachines "a" already exists')))
    # First read-back races the commit and misses; the re-sent POST then meets the stored object.
    pool.on('GET', VMS + '/a', missing('a'), (200, stored('a', 'tok')))
    client = make_client(pool)
    assert Api(client).create(_kinds.VM, vm('a', token='tok'))['metadata']['uid'] == 'uid-a'
    assert [r.method for r in pool.requests] == ['POST', 'GET', 'POST', 'GET']


def test_conflict_with_somebody_elses_object_stands():
    pool = FakePool().on('POST', VMS, RESET, (409, status_body(409, 'AlreadyExists', 'virtualmachines "a" already exists')))
    pool.on('GET', VMS + '/a', missing('a'), (200, stored('a', 'other-token')))
    with pytest.raises(ApiError) as err:
        Api(make_client(pool)).create(_kinds.VM, vm('a', token='tok'))
    assert err.value.status == 409


def test_generated_name_clash_is_retried_with_a_new_post():
    clash = (409, status_body(409, 'AlreadyExists', 'virtualmachines "gen-abcde" already exists'))
    pool = FakePool().on('POST', VMS, clash, (201, stored('gen-fghij', 'tok')))
    pool.on('GET', VMS, (200, {'metadata': {}, 'items': []}))
    client = make_client(pool)
    assert Api(client).create(_kinds.VM, vm(None, token='tok', generate='gen-'))['metadata']['name'] == 'gen-fghij'
    assert client.retry_reasons == {'name-clash': 1}


def test_lost_create_without_name_or_token_says_so():
    pool = FakePool().on('POST', VMS, (503, status_body(503, 'ServiceUnavailable', 'try later')))
    with pytest.raises(ApiError) as err:
        Api(make_client(pool)).create(_kinds.VM, vm(None, generate='gen-'))
    assert 'may or may not have happened' in err.value.msg
    assert len(pool.requests) == 1


def test_lost_create_gives_up_within_the_budget():
    pool = FakePool().on('POST', VMS, RESET).on('GET', VMS + '/a', missing('a'))
    client = make_client(pool)
    with pytest.raises(TransportError):
        Api(client).create(_kinds.VM, vm('a'))
    assert len([r for r in pool.requests if r.method == 'POST']) == client.retry.attempts


def test_dry_run_create_is_retried_like_a_read():
    pool = FakePool().on('POST', VMS, (500, {}), (201, stored('a')))
    Api(make_client(pool)).create(_kinds.VM, vm('a'), dry_run=True)
    assert [r.method for r in pool.requests] == ['POST', 'POST']


# ------------------------------------------------------------------------------------------- 409 and deletes


@pytest.mark.parametrize('body, kind', [
    (status_body(409, 'AlreadyExists', 'virtualmachines.kubevirt.io "a" already exists'), 'exists'),
    (dict(status_body(409, 'Conflict', 'Apply failed with 1 conflict: conflict with "kubectl": .spec.runStrategy'),
          details={'causes': [{'reason': 'FieldManagerConflict', 'field': '.spec.runStrategy'}]}), 'field-manager'),
    (status_body(409, 'Conflict', 'Operation cannot be fulfilled on virtualmachines.kubevirt.io "a": Precondition '
                 'failed: UID in precondition: x, UID in object meta: y'), 'precondition'),
    (status_body(409, 'Conflict', 'Operation cannot be fulfilled on virtualmachines.kubevirt.io "a": the object has '
                 'been modified; please apply your changes to the latest version and try again'), 'modified'),
])
def test_conflict_kinds(body, kind):
    import json
    assert conflict_kind(ApiError('x', 409, body=json.dumps(body))) == kind
    assert conflict_kind(ApiError('x', 422, body=json.dumps(body))) is None


def test_apply_conflict_with_another_manager_is_not_retried_or_forced():
    body = dict(status_body(409, 'Conflict', 'Apply failed with 1 conflict: conflict with "kubectl": .spec.runStrategy'),
                details={'causes': [{'reason': 'FieldManagerConflict', 'field': '.spec.runStrategy'}]})
    pool = FakePool().on('PATCH', VMS + '/a', (409, body))
    with pytest.raises(ApiError) as err:
        Api(make_client(pool)).apply(_kinds.VM, vm('a'), 'virtfleet', force=False)
    assert len(pool.requests) == 1 and pool.requests[0].query['force'] == 'false'
    assert 'Another field manager owns these fields' in err.value.msg and 'kubectl' in err.value.msg


def test_apply_is_retried_after_a_lost_answer():
    pool = FakePool().on('PATCH', VMS + '/a', RESET, (200, stored('a')))
    client = make_client(pool)
    assert Api(client).apply(_kinds.VM, vm('a'), 'virtfleet', force=True)['metadata']['uid'] == 'uid-a'
    assert client.retries == 1


def test_delete_whose_answer_was_lost_finds_it_gone():
    pool = FakePool().on('DELETE', VMS + '/a', RESET, missing('a'))
    client = make_client(pool)
    assert Api(client).delete(_kinds.VM, 'a', 'ns') is None
    assert len(pool.requests) == 2 and client.retries == 1
