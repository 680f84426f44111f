"""_resource: the watch store and ensure/delete, on the real Client and Api over a fake urllib3 pool."""
import pytest

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _kinds
from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _resource as rs
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._api import Api
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._errors import ApiError

from ..kube_fakes import FakePool, make_client, response, status_body, watch_body
from ..pool_routes import Clock

VMIS = '/apis/kubevirt.io/v1/namespaces/ns/virtualmachineinstances'
VMS = '/apis/kubevirt.io/v1/namespaces/ns/virtualmachines'


def obj(name, rv, phase='Running', kind='VirtualMachineInstance', **meta):
    return {'apiVersion': 'kubevirt.io/v1', 'kind': kind,
            'metadata': dict({'name': name, 'namespace': 'ns', 'resourceVersion': str(rv)}, **meta),
            'status': {'phase': phase}}


def listing(items, rv):
    return {'kind': 'List', 'metadata': {'resourceVersion': str(rv)}, 'items': items}


def expired():
    return response(200, raw=watch_body([('ERROR', status_body(410, 'Expired', 'too old resource version: 5 (9)'))]))


def route(pool, path, lists, watches):
    """GET ``path`` answers lists (in order) and, for watch requests, the watch responses (in order)."""
    def answer(req):
        if req.query.get('watch') == 'true':
            return watches.pop(0)
        return response(200, lists.pop(0))
    pool.on('GET', path, answer)


def store_for(pool, names, clock=None):
    clock = clock or Clock()
    api = Api(make_client(pool))
    return rs.WatchStore(api, _kinds.VMI, 'ns', names=names, clock=clock, sleep=clock.sleep), clock


def test_410_relist_replaces_the_store_so_an_object_deleted_in_the_gap_is_gone():
    """The defect of issue #14: a re-list that only added objects kept a VMI deleted while the watch was away."""
    pool = FakePool()
    route(pool, VMIS, [listing([obj('a', 5), obj('b', 5)], 5), listing([obj('b', 9)], 9)],
          [expired(), response(200, raw=watch_body([]))])
    store, clock = store_for(pool, ['a', 'b'])
    store.load()
    assert store.until(lambda st: st.get('a') is None, deadline=clock() + 30)
    assert store.relists == 1 and store.get('b')['metadata']['resourceVersion'] == '9'
    watches = [r for r in pool.requests if r.query.get('watch')]
    lists = [r for r in pool.requests if not r.query.get('watch')]
    assert len(watches) == 1 and len(lists) == 2
    assert watches[0].query['resourceVersion'] == '5'


def test_watch_events_and_names():
    pool = FakePool()
    route(pool, VMIS, [listing([obj('a', 5, phase='Pending'), obj('other', 5)], 5)],
          [response(200, raw=watch_body([('MODIFIED', obj('other', 6, phase='Failed')),
                                         ('MODIFIED', obj('a', 7))]))])
    store, clock = store_for(pool, ['a', 'b'])
    store.load()
    assert store.get('other') is None
    assert store.until(lambda st: (st.get('a') or {}).get('status', {}).get('phase') == 'Running', clock() + 30)
    assert [o['metadata']['name'] for o in store.items()] == ['a']
    assert 'fieldSelector' not in pool.requests[0].query     # two names: the namespace is listed


def test_one_name_lists_and_watches_with_a_field_selector_and_times_out_at_the_deadline():
    pool = FakePool()
    route(pool, VMIS, [listing([obj('a', 5)], 5)], [response(200, raw=watch_body([]))] * 50)
    store, clock = store_for(pool, ['a'])
    store.load()
    assert store.until(lambda st: st.get('a') is None, clock() + 3) is False
    assert all(r.query.get('fieldSelector') == 'metadata.name=a' for r in pool.requests)
    # Watches that the server closes at once are reopened after a pause, not in a tight loop.
    assert len([r for r in pool.requests if r.query.get('watch')]) <= 7


def test_other_watch_errors_propagate():
    pool = FakePool()
    route(pool, VMIS, [listing([obj('a', 5)], 5)],
          [response(200, raw=watch_body([('ERROR', status_body(500, 'InternalError', 'boom'))]))])
    store, clock = store_for(pool, ['a'])
    store.load()
    with pytest.raises(ApiError) as err:
        store.until(lambda st: st.get('a') is None, clock() + 3)
    assert err.value.status == 500


def test_pin_tracks_only_what_the_list_returned():
    pool = FakePool()
    route(pool, VMIS, [listing([obj('a', 5)], 5)],
          [response(200, raw=watch_body([('ADDED', obj('late', 6)), ('MODIFIED', obj('a', 7, phase='Succeeded'))]))])
    store, clock = store_for(pool, None)
    store.load().pin()
    assert store.until(lambda st: st.get('a')['status']['phase'] == 'Succeeded', clock() + 10)
    assert store.get('late') is None


# --- ensure / delete ---------------------------------------------------------------------------------------
def vm(name='web', labels=None, rv=3, **spec):
    meta = {'name': name, 'namespace': 'ns', 'resourceVersion': str(rv)}
    if labels:
        meta['labels'] = labels
    return {'apiVersion': 'kubevirt.io/v1', 'kind': 'VirtualMachine', 'metadata': meta,
            'spec': dict({'runStrategy': 'Halted'}, **spec)}


def engine(pool, check_mode=False, namespaces=None):
    return rs.Engine(Api(make_client(pool)), check_mode=check_mode, namespaces=namespaces)


def test_given_sends_nothing_when_live_holds_the_fields():
    pool = FakePool()
    live = vm(labels={'app': 'web', 'team': 'x'})
    out = engine(pool).ensure(_kinds.VM, vm(labels={'app': 'web'}), live)
    assert (out.action, out.changed, pool.requests) == ('unchanged', False, [])


def test_given_merge_patches_only_the_given_fields():
    pool = FakePool().on('PATCH', VMS + '/web', lambda req: response(200, vm(labels={'app': 'db', 'team': 'x'}, rv=4)))
    live = vm(labels={'app': 'web', 'team': 'x'})
    desired = vm(labels={'app': 'db'})
    desired['metadata'].pop('resourceVersion')
    out = engine(pool).ensure(_kinds.VM, desired, live)
    assert out.action == 'updated' and out.changed
    (req,) = pool.requests
    assert req.headers['Content-Type'] == 'application/merge-patch+json'
    assert req.body['metadata']['labels'] == {'app': 'db'}


def test_check_mode_is_a_server_dry_run():
    pool = FakePool().on('POST', VMS, lambda req: response(201, vm()))
    out = engine(pool, check_mode=True).ensure(_kinds.VM, vm(), None)
    assert out.action == 'created' and pool.requests[0].query['dryRun'] == 'All'


def test_owned_applies_with_a_digest_and_is_idempotent_on_the_applied_object():
    pool = FakePool()
    seen = []

    def apply(req):
        seen.append(req.body)
        return response(200, dict(req.body, metadata=dict(req.body['metadata'], resourceVersion='9')))
    pool.on('PATCH', VMS + '/web', apply)
    eng = engine(pool)
    first = eng.ensure(_kinds.VM, vm(), None, mode=rs.OWNED)
    assert first.action == 'created'
    assert pool.requests[0].headers['Content-Type'] == 'application/apply-patch+yaml'
    assert 'virtfleet.kubevirt/applied-digest' in seen[0]['metadata']['annotations']
    again = eng.ensure(_kinds.VM, vm(), first.after, mode=rs.OWNED)
    assert again.action == 'unchanged' and len(pool.requests) == 1


def test_replace_rereads_after_a_conflict_and_sends_the_new_resource_version():
    conflict = response(409, status_body(409, 'Conflict', 'the object has been modified'))
    pool = FakePool().on('PUT', VMS + '/web', conflict, lambda req: response(200, dict(req.body)))
    pool.on('GET', VMS + '/web', lambda req: response(200, vm(rv=7)))
    out = engine(pool).ensure(_kinds.VM, vm(labels={'a': 'b'}), vm(rv=3), mode=rs.REPLACE)
    puts = [r for r in pool.requests if r.method == 'PUT']
    assert [p.body['metadata']['resourceVersion'] for p in puts] == ['3', '7']
    assert out.action == 'updated'


def test_delete_sends_preconditions_and_a_404_is_absent():
    pool = FakePool().on('DELETE', VMS + '/web', lambda req: response(200, vm()),
                         response(404, status_body(404, 'NotFound', 'virtualmachines "web" not found', 'web',
                                                   'virtualmachines')))
    eng = engine(pool)
    out = eng.delete(_kinds.VM, vm(), propagation='Foreground', preconditions={'uid': 'u1', 'resourceVersion': None})
    assert out.action == 'deleted'
    assert pool.requests[0].body['preconditions'] == {'uid': 'u1'}
    assert pool.requests[0].body['propagationPolicy'] == 'Foreground'
    assert eng.delete(_kinds.VM, vm()).action == 'absent'
    assert eng.delete(_kinds.VM, None).action == 'absent' and len(pool.requests) == 2


def test_a_terminating_object_is_unchanged_unless_asked_to_delete_again():
    pool = FakePool().on('DELETE', VMS + '/web', lambda req: response(200, vm()))
    terminating = vm()
    terminating['metadata']['deletionTimestamp'] = '2026-01-01T00:00:00Z'
    eng = engine(pool)
    assert eng.delete(_kinds.VM, terminating).action == 'unchanged' and pool.requests == []
    assert eng.delete(_kinds.VM, terminating, terminating_done=False).action == 'deleted'


def test_check_mode_predicts_objects_of_a_crd_this_run_creates():
    pool = FakePool().on('PATCH', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/kubevirts.kubevirt.io',
                         lambda req: response(200, req.body))
    eng = engine(pool, check_mode=True)
    crd = {'apiVersion': 'apiextensions.k8s.io/v1', 'kind': 'CustomResourceDefinition',
           'metadata': {'name': 'kubevirts.kubevirt.io'}, 'spec': {'group': 'kubevirt.io', 'names': {'plural': 'kubevirts'}}}
    assert eng.ensure(_kinds.CRD, crd, None, mode=rs.OWNED).action == 'created'
    cr = {'apiVersion': 'kubevirt.io/v1', 'kind': 'KubeVirt', 'metadata': {'name': 'kubevirt', 'namespace': 'kubevirt'},
          'spec': {}}
    assert eng.read(_kinds.KUBEVIRT, 'kubevirt', 'kubevirt') is None
    out = eng.ensure(_kinds.KUBEVIRT, cr, None, mode=rs.OWNED)
    assert out.action == 'created' and out.after['metadata']['name'] == 'kubevirt'
    assert len(pool.requests) == 1      # only the CRD's dry run: the CR cannot be dry-run, it is predicted
