"""Unit tests for _namespaces: which 404 means "namespace missing", and what a namespace create failure says.

The errors and the create go through the real Client and Api over a fake urllib3 pool."""
import pytest

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _kinds
from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _namespaces as nsu
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._api import Api
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._errors import ApiError

from ..kube_fakes import FakePool, make_client, response, status_body
from ..pool_routes import calls, forbidden

NAMESPACES = '/api/v1/namespaces'
VM_PATH = '/apis/kubevirt.io/v1/namespaces/team/virtualmachines/team'


def error_of(answer):
    """The ApiError the real client raises when the server answers a VM read with ``answer``."""
    pool = FakePool().on('GET', VM_PATH, answer)
    with pytest.raises(ApiError) as err:
        make_client(pool).request('GET', VM_PATH)
    return err.value


NS_MISSING = error_of((404, status_body(404, 'NotFound', 'namespaces "team" not found', name='team', kind='namespaces')))
VM_MISSING = error_of((404, status_body(404, 'NotFound', 'virtualmachines.kubevirt.io "team" not found', name='team',
                                        kind='virtualmachines')))
# A Status without details: its message (which the client's sentence quotes) is all there is.
NS_MISSING_NO_DETAILS = error_of((404, status_body(404, 'NotFound', 'namespaces "team" not found')))
# No Status at all: a path the server does not serve, never a missing namespace.
PAGE_NOT_FOUND = error_of(response(404, raw=b'404 page not found', headers={'Content-Type': 'text/plain'}))


@pytest.mark.parametrize('err, namespace, missing', [
    (NS_MISSING, 'team', True),
    (NS_MISSING, 'other', False),
    (VM_MISSING, 'team', False),     # a VM named like the namespace
    (error_of(forbidden(_kinds.VM, 'team', verb='get')), 'team', False),
    (NS_MISSING_NO_DETAILS, 'team', True),
    (NS_MISSING_NO_DETAILS, 'other', False),
    (PAGE_NOT_FOUND, 'team', False),
])
def test_only_the_namespace_404_counts(err, namespace, missing):
    assert nsu.namespace_missing(err, namespace) is missing


def namespaces_on(pool, **kwargs):
    return nsu.Namespaces(Api(make_client(pool)), **kwargs)


def created(req):
    return 201, req.body


def test_disabled_names_the_option_and_sends_nothing():
    pool = FakePool().on('POST', NAMESPACES, created)
    with pytest.raises(ApiError) as err:
        namespaces_on(pool, enabled=False).ensure('team')
    assert 'Namespace "team" does not exist' in err.value.msg and 'create_namespace=true' in err.value.msg
    assert pool.requests == []


def test_creates_once_and_check_mode_remembers_it_missing():
    pool = FakePool().on('POST', NAMESPACES, created)
    made = namespaces_on(pool, enabled=True, check_mode=True)
    made.ensure('team')
    assert calls(pool, 'dryRun') == [('POST', NAMESPACES, 'All')]
    assert pool.requests[0].body == {'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': {'name': 'team'}}
    assert made.created == ['team'] and made.missing == {'team'}


def test_someone_else_created_it_meanwhile():
    pool = FakePool().on('POST', NAMESPACES, (409, status_body(409, 'AlreadyExists', 'namespaces "team" already exists',
                                                               name='team', kind='namespaces')))
    made = namespaces_on(pool, enabled=True)
    made.ensure('team')
    assert made.created == [] and not made.failed
    assert calls(pool, 'dryRun') == [('POST', NAMESPACES, None)]


def test_forbidden_is_one_sentence_and_remembered():
    pool = FakePool().on('POST', NAMESPACES, forbidden(_kinds.NAMESPACE, verb='create'))
    made = namespaces_on(pool, enabled=True)
    for _attempt in range(2):
        with pytest.raises(ApiError) as err:
            made.ensure('team')
        assert err.value.msg.startswith('Cannot create namespace "team" (create_namespace=true)')
        assert '403 Forbidden' in err.value.msg and 'grant them the RBAC permission' in err.value.msg
        assert err.value.msg.count('. ') == 0
    assert calls(pool) == [('POST', NAMESPACES)]
