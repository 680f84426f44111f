"""_api: paths without discovery, pagination, 404 handling, watch streams, request costs."""
import socket

import pytest

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _kinds
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._api import Api, api_missing, join_selectors
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._errors import ApiError

from ..kube_fakes import FakePool, make_client, response, status_body, watch_body

VMS = '/apis/kubevirt.io/v1/namespaces/ns/virtualmachines'


def vm(name, ns='ns', rv='1', ready=None):
    obj = {'metadata': {'name': name, 'namespace': ns, 'resourceVersion': rv}}
    if ready is not None:
        obj['status'] = {'conditions': [{'type': 'Ready', 'status': 'True' if ready else 'False'}]}
    return obj


def test_get_is_exactly_one_request_on_the_known_path():
    pool = FakePool().on('GET', VMS + '/vm1', (200, vm('vm1')))
    api = Api(make_client(pool))
    assert api.get(_kinds.VM, 'vm1', 'ns')['metadata']['name'] == 'vm1'
    assert [(r.method, r.path) for r in pool.requests] == [('GET', VMS + '/vm1')]


def test_get_missing_object_returns_none_but_missing_api_raises():
    pool = FakePool().on('GET', VMS + '/gone', (404, status_body(404, 'NotFound', 'not found', name='gone')))
    api = Api(make_client(pool))
    assert api.get(_kinds.VM, 'gone', 'ns') is None
    with pytest.raises(ApiError) as err:
        api.get(_kinds.VM, 'other', 'ns')   # unrouted -> "404 page not found", the CRD is not served
    assert api_missing(err.value)


def test_list_follows_continue_and_keeps_first_resource_version():
    pool = FakePool().on('GET', VMS,
                         (200, {'metadata': {'resourceVersion': '10', 'continue': 'c1'}, 'items': [vm('a'), vm('b')]}),
                         (200, {'metadata': {'resourceVersion': '10'}, 'items': [vm('c')]}))
    api = Api(make_client(pool), page_size=2)
    items, version = api.list(_kinds.VM, 'ns', ['app=x', 'tier=web'], ['status.phase!=Failed'])
    assert [i['metadata']['name'] for i in items] == ['a', 'b', 'c']
    assert version == '10'
    assert all(i['kind'] == 'VirtualMachine' and i['apiVersion'] == 'kubevirt.io/v1' for i in items)
    assert pool.requests[0].query == {'labelSelector': 'app=x,tier=web', 'fieldSelector': 'status.phase!=Failed',
                                      'limit': '2'}
    assert pool.requests[1].query['continue'] == 'c1'
    assert len(pool.requests) == 2


def test_cluster_wide_list_path():
    pool = FakePool().on('GET', '/apis/kubevirt.io/v1/virtualmachineinstances', (200, {'metadata': {}, 'items': []}))
    assert Api(make_client(pool)).list(_kinds.VMI) == ([], None)


def test_forbidden_list_names_namespace_and_verb():
    pool = FakePool().on('GET', VMS, (403, status_body(403, 'Forbidden', 'forbidden')))
    with pytest.raises(ApiError) as err:
        Api(make_client(pool)).list(_kinds.VM, 'ns')
    assert 'may not list VirtualMachines in namespace "ns"' in err.value.msg


@pytest.mark.parametrize('method, call, path, query, content_type', [
    ('POST', lambda a: a.create(_kinds.VM, vm('n'), dry_run=True), VMS, {'dryRun': 'All'}, 'application/json'),
    ('PATCH', lambda a: a.patch(_kinds.VM, 'n', {'spec': {}}, 'ns'), VMS + '/n', {}, 'application/merge-patch+json'),
    ('PATCH', lambda a: a.apply(_kinds.VM, vm('n'), 'virtfleet', force=True), VMS + '/n',
     {'fieldManager': 'virtfleet', 'force': 'true'}, 'application/apply-patch+yaml'),
    ('PUT', lambda a: a.replace(_kinds.VM, vm('n')), VMS + '/n', {}, 'application/json'),
    ('PUT', lambda a: a.subresource(_kinds.VM_SUBRESOURCE, 'n', 'start', 'ns'),
     '/apis/subresources.kubevirt.io/v1/namespaces/ns/virtualmachines/n/start', {}, None),
])
def test_write_verbs(method, call, path, query, content_type):
    pool = FakePool().on(method, path, (200, {'ok': True}))
    call(Api(make_client(pool)))
    req = pool.requests[0]
    assert req.query == query
    assert req.headers.get('Content-Type') == content_type


def test_delete_sends_options_and_tolerates_gone():
    pool = FakePool().on('DELETE', VMS + '/n', (404, status_body(404, 'NotFound', 'nf', name='n')))
    assert Api(make_client(pool)).delete(_kinds.VM, 'n', 'ns', propagation='Foreground') is None
    assert pool.requests[0].body['propagationPolicy'] == 'Foreground'


def test_watch_streams_events_with_selectors_and_timeout():
    events = [('ADDED', vm('a', rv='11')), ('MODIFIED', vm('a', rv='12', ready=True))]
    pool = FakePool().on('GET', VMS, response(200, raw=watch_body(events)))
    api = Api(make_client(pool))
    got = list(api.watch(_kinds.VM, 'ns', ['app=x'], None, resource_version='10', timeout=30))
    assert [(t, o['metadata']['resourceVersion']) for t, o in got] == [('ADDED', '11'), ('MODIFIED', '12')]
    q = pool.requests[0].query
    assert q['watch'] == 'true' and q['resourceVersion'] == '10' and q['labelSelector'] == 'app=x'
    assert q['timeoutSeconds'] == '30'
    assert pool.requests[0].timeout.read_timeout == 32.0


def test_watch_error_event_raises_410():
    body = watch_body([('ERROR', {'kind': 'Status', 'code': 410, 'reason': 'Expired', 'message': 'too old'})])
    pool = FakePool().on('GET', VMS, response(200, raw=body))
    with pytest.raises(ApiError) as err:
        list(Api(make_client(pool)).watch(_kinds.VM, 'ns', resource_version='1'))
    assert err.value.status == 410


class _TimeoutBody:
    """A stream that delivers one event and then times out reading, as a quiet watch does."""

    def __init__(self, first):
        self.first = first

    def read1(self, amt=-1):
        if self.first:
            data, self.first = self.first, b''
            return data
        raise socket.timeout('timed out')

    read = read1

    def close(self):
        pass


def test_watch_read_timeout_just_ends_the_stream():
    import urllib3
    body = _TimeoutBody(watch_body([('ADDED', vm('a'))]))
    resp = urllib3.HTTPResponse(body=body, status=200, preload_content=False)
    pool = FakePool().on('GET', VMS, resp)
    got = list(Api(make_client(pool)).watch(_kinds.VM, 'ns', timeout=1))
    assert [t for t, _o in got] == ['ADDED']


@pytest.mark.parametrize('value, expected', [(None, None), ([], None), ('a=b', 'a=b'), (['a=b', ' c!=d '], 'a=b,c!=d')])
def test_join_selectors(value, expected):
    assert join_selectors(value) == expected
