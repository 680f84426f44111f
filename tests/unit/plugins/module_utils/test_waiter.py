"""_waiter: one list + one watch for N objects, one deadline, precise timeout messages.

The Waiter runs on the real Client and Api over a fake urllib3 pool; fake time comes from the clock/sleep it is given
(a quiet watch stream advances the clock to its timeoutSeconds, as the server holds it open that long)."""
import pytest

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _kinds
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._api import Api
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._errors import ApiError, WaitTimeout
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._info import vm_ready, vm_stopped, vmi_ready
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._waiter import Waiter, describe_state

from ..kube_fakes import FakePool, make_client, response, watch_body
from ..pool_routes import Clock, Collection, calls, expired, forbidden, listing, lists, watches

VMS = '/apis/kubevirt.io/v1/namespaces/ns/virtualmachines'
VMIS = '/apis/kubevirt.io/v1/namespaces/ns/virtualmachineinstances'


def vm(name, rv, ready=False, printable='Starting', ns='ns', reason=None):
    cond = {'type': 'Ready', 'status': 'True' if ready else 'False'}
    if reason:
        cond['reason'] = reason
    return {'metadata': {'name': name, 'namespace': ns, 'resourceVersion': str(rv)},
            'status': {'printableStatus': printable, 'conditions': [cond]}}


def waiter_on(pool, clock):
    return Waiter(Api(make_client(pool)), clock=clock, sleep=clock.sleep)


def serve(lists, watches, clock, path=VMS, step=1.0):
    """The server: GET ``path`` lists answer ``lists``, watches ``watches`` (then quiet streams until their timeout)."""
    return FakePool().on('GET', path, Collection(lists, watches, clock=clock, step=step))


def test_fifty_objects_one_list_one_watch():
    clock = Clock()
    items = [vm('vm%02d' % i, 1) for i in range(50)]
    events = [('MODIFIED', vm('vm%02d' % i, 100 + i, ready=True, printable='Running')) for i in range(50)]
    pool = serve([listing(items, 1)], [events], clock, step=0.01)
    result = waiter_on(pool, clock).wait(_kinds.VM, vm_ready, 120, namespace='ns', label_selectors=['app=fleet'])
    assert len(result) == 50 and all(vm_ready(o) for o in result)
    assert calls(pool, 'watch', 'labelSelector', 'resourceVersion') == [
        ('GET', VMS, None, 'app=fleet', None),
        ('GET', VMS, 'true', 'app=fleet', '1'),   # the watch starts at the list's resourceVersion
    ]


def test_initial_snapshot_saves_the_list():
    clock = Clock()
    pool = serve([], [[('MODIFIED', vm('a', 5, ready=True))]], clock)
    result = waiter_on(pool, clock).wait(_kinds.VM, vm_ready, 60, namespace='ns', initial=([vm('a', 4)], '4'))
    assert calls(pool, 'watch', 'resourceVersion') == [('GET', VMS, 'true', '4')]
    assert result[0]['metadata']['resourceVersion'] == '5'


def test_deadline_is_shared_across_reopened_watches():
    clock = Clock()
    pool = serve([listing([vm('a', 1)], 1)], [[('MODIFIED', vm('a', 2))]], clock, step=10)
    with pytest.raises(WaitTimeout):
        waiter_on(pool, clock).wait(_kinds.VM, vm_ready, 30, namespace='ns')
    opened = watches(pool)
    assert len(opened) == 2
    assert opened[0].query['timeoutSeconds'] == '30'      # the first stream gets the whole budget
    assert opened[1].query['resourceVersion'] == '2'      # re-opened from the last seen resourceVersion
    assert opened[1].query['timeoutSeconds'] == '20'      # with what is left, never more
    assert clock.now == 30


def test_timeout_message_names_each_object_and_state():
    clock = Clock()
    items = [vm('ok', 1, ready=True, printable='Running'), vm('slow', 1, printable='Starting'),
             vm('stuck', 1, printable='ErrorUnschedulable')]
    pool = serve([listing(items, 1)], [], clock)
    with pytest.raises(WaitTimeout) as err:
        waiter_on(pool, clock).wait(_kinds.VM, vm_ready, 5, namespace='ns', goal='ready (running)')
    msg = err.value.msg
    assert msg.startswith('Timed out after 5s waiting for 2 of 3 VirtualMachines to be ready (running)')
    assert 'ns/slow (printableStatus Starting, Ready=False)' in msg
    assert 'ns/stuck (printableStatus ErrorUnschedulable' in msg
    assert 'ns/ok' not in msg
    assert 'wait_timeout' in msg
    assert [p['name'] for p in err.value.pending] == ['slow', 'stuck']
    assert len(lists(pool)) == 1 and len(watches(pool)) == 1


def test_named_object_may_appear_later_and_deleted_objects_count_as_pending():
    clock = Clock()
    vmi = {'metadata': {'name': 'x', 'namespace': 'ns', 'resourceVersion': '3'},
           'status': {'phase': 'Running', 'conditions': [{'type': 'Ready', 'status': 'True'}]}}
    pool = serve([listing([], 2)], [[('ADDED', dict(vmi, status={'phase': 'Pending'})), ('MODIFIED', vmi)]], clock,
                 path=VMIS)
    result = waiter_on(pool, clock).wait(_kinds.VMI, vmi_ready, 60, namespace='ns', name='x')
    assert result == [vmi]
    assert calls(pool, 'watch', 'fieldSelector') == [('GET', VMIS, None, 'metadata.name=x'),
                                                     ('GET', VMIS, 'true', 'metadata.name=x')]


def test_named_object_never_appears():
    clock = Clock()
    pool = serve([listing([], 2)], [], clock, path=VMIS)
    with pytest.raises(WaitTimeout) as err:
        waiter_on(pool, clock).wait(_kinds.VMI, vmi_ready, 3, namespace='ns', name='x')
    assert 'ns/x (does not exist)' in err.value.msg


def test_410_gone_relists_then_continues():
    clock = Clock()
    pool = serve([listing([vm('a', 1)], 1), listing([vm('a', 8)], 8)],
                 [expired(), [('MODIFIED', vm('a', 9, ready=True))]], clock)
    result = waiter_on(pool, clock).wait(_kinds.VM, vm_ready, 60, namespace='ns')
    assert calls(pool, 'watch', 'resourceVersion') == [
        ('GET', VMS, None, None), ('GET', VMS, 'true', '1'),
        ('GET', VMS, None, None), ('GET', VMS, 'true', '8')]   # the new watch starts at the new list's version
    assert vm_ready(result[0])


def test_other_watch_errors_propagate():
    clock = Clock()
    pool = serve([listing([vm('a', 1)], 1)], [forbidden(_kinds.VM, 'ns', verb='watch')], clock)
    with pytest.raises(ApiError) as err:
        waiter_on(pool, clock).wait(_kinds.VM, vm_ready, 60, namespace='ns')
    assert err.value.status == 403
    assert len(watches(pool)) == 1   # a refusal is not retried


def test_objects_outside_the_listed_set_are_ignored():
    clock = Clock()
    pool = serve([listing([vm('a', 1)], 1)], [[('ADDED', vm('new', 2)), ('MODIFIED', vm('a', 3, ready=True))]], clock)
    result = waiter_on(pool, clock).wait(_kinds.VM, vm_ready, 60, namespace='ns')
    assert [o['metadata']['name'] for o in result] == ['a']


@pytest.mark.parametrize('obj, stopped', [
    (vm('a', 1, printable='Stopped', reason='VMINotExists'), True),
    (vm('a', 1, printable='Stopped'), True),
    (vm('a', 1, printable='Stopping'), False),
    (vm('a', 1, ready=True, printable='Running'), False),
])
def test_stopped_predicate(obj, stopped):
    assert vm_stopped(obj) is stopped


@pytest.mark.parametrize('obj, text', [
    (None, 'does not exist'),
    ({'status': {'phase': 'Scheduling'}}, 'phase Scheduling, no Ready condition yet'),
    ({'status': {'printableStatus': 'Starting', 'conditions': [
        {'type': 'Ready', 'status': 'False', 'reason': 'PodNotReady', 'message': 'pending'}]}},
     'printableStatus Starting, Ready=False (PodNotReady: pending)'),
    ({'metadata': {'deletionTimestamp': 'x'}, 'status': {}}, 'no Ready condition yet, being deleted'),
])
def test_describe_state(obj, text):
    assert describe_state(obj) == text


def test_real_api_wait_costs_one_list_and_one_watch_for_fifty():
    path = VMS
    listing = {'metadata': {'resourceVersion': '7'}, 'items': [vm('v%d' % i, 7) for i in range(50)]}
    stream = watch_body([('MODIFIED', vm('v%d' % i, 8 + i, ready=True)) for i in range(50)])
    pool = FakePool().on('GET', path, (200, listing), response(200, raw=stream))
    client = make_client(pool)
    result = Waiter(Api(client)).wait(_kinds.VM, vm_ready, 30, namespace='ns', label_selectors=['app=x'])
    assert len(result) == 50
    assert client.request_count == 2
    assert 'watch' not in pool.requests[0].query and pool.requests[1].query['watch'] == 'true'
    assert pool.requests[1].query['labelSelector'] == 'app=x'
