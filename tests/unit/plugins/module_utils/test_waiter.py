"""_waiter: one list + one watch for N objects, one deadline, precise timeout messages."""
import pytest

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _kinds
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._api import Api
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._errors import ApiError, WaitTimeout
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._info import vm_ready, vm_stopped, vmi_ready
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._waiter import Waiter, describe_state

from ..kube_fakes import FakePool, make_client, response, watch_body


def vm(name, rv, ready=False, printable='Starting', ns='ns', reason=None):
    cond = {'type': 'Ready', 'status': 'True' if ready else 'False'}
    if reason:
        cond['reason'] = reason
    return {'metadata': {'name': name, 'namespace': ns, 'resourceVersion': str(rv)},
            'status': {'printableStatus': printable, 'conditions': [cond]}}


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


class FakeApi:
    """Scripted list/watch: each watch call pops one list of events; time advances per event."""

    def __init__(self, items, version, streams, clock, step=1.0):
        self.items, self.version, self.streams, self.clock, self.step = items, version, streams, clock, step
        self.calls = []

    def list(self, kind, namespace=None, label_selectors=None, field_selectors=None):
        self.calls.append(('list', namespace, tuple(label_selectors or ()), tuple(field_selectors or ())))
        return list(self.items), self.version

    def watch(self, kind, namespace=None, label_selectors=None, field_selectors=None, resource_version=None, timeout=0):
        self.calls.append(('watch', resource_version, tuple(field_selectors or ()), round(timeout, 3)))
        events = self.streams.pop(0) if self.streams else []
        if isinstance(events, Exception):
            raise events
        for event in events:
            self.clock.now += self.step
            yield event
        if not events:
            self.clock.now += timeout   # a quiet stream lasts until its timeout


def test_fifty_objects_one_list_one_watch():
    clock = Clock()
    items = [vm('vm%02d' % i, 1) for i in range(50)]
    events = [('MODIFIED', vm('vm%02d' % i, 100 + i, ready=True, printable='Running')) for i in range(50)]
    api = FakeApi(items, '1', [events], clock, step=0.01)
    result = Waiter(api, clock=clock, sleep=clock.sleep).wait(_kinds.VM, vm_ready, 120, namespace='ns',
                                                              label_selectors=['app=fleet'])
    assert len(result) == 50 and all(vm_ready(o) for o in result)
    assert [c[0] for c in api.calls] == ['list', 'watch']
    assert api.calls[1][1] == '1'   # watch starts at the list's resourceVersion


def test_initial_snapshot_saves_the_list():
    clock = Clock()
    api = FakeApi([], None, [[('MODIFIED', vm('a', 5, ready=True))]], clock)
    result = Waiter(api, clock=clock, sleep=clock.sleep).wait(_kinds.VM, vm_ready, 60, namespace='ns',
                                                              initial=([vm('a', 4)], '4'))
    assert [c[0] for c in api.calls] == ['watch']
    assert result[0]['metadata']['resourceVersion'] == '5'


def test_deadline_is_shared_across_reopened_watches():
    clock = Clock()
    api = FakeApi([vm('a', 1)], '1', [[('MODIFIED', vm('a', 2))], [], []], clock, step=10)
    with pytest.raises(WaitTimeout):
        Waiter(api, clock=clock, sleep=clock.sleep).wait(_kinds.VM, vm_ready, 30, namespace='ns')
    watches = [c for c in api.calls if c[0] == 'watch']
    assert watches[0][3] == 30          # the first stream gets the whole budget
    assert watches[1][1] == '2'         # re-opened from the last seen resourceVersion
    assert watches[1][3] == 20          # with what is left, never more
    assert clock.now <= 30 + 1e-9


def test_timeout_message_names_each_object_and_state():
    clock = Clock()
    items = [vm('ok', 1, ready=True, printable='Running'), vm('slow', 1, printable='Starting'),
             vm('stuck', 1, printable='ErrorUnschedulable')]
    api = FakeApi(items, '1', [[]], clock)
    with pytest.raises(WaitTimeout) as err:
        Waiter(api, clock=clock, sleep=clock.sleep).wait(_kinds.VM, vm_ready, 5, namespace='ns', goal='ready (running)')
    msg = err.value.msg
    assert msg.startswith('Timed out after 5s waiting for 2 of 3 VirtualMachines to be ready (running)')
    assert 'ns/slow (printableStatus Starting, Ready=False)' in msg
    assert 'ns/stuck (printableStatus ErrorUnschedulable' in msg
    assert 'ns/ok' not in msg
    assert 'wait_timeout' in msg
    assert [p['name'] for p in err.value.pending] == ['slow', 'stuck']


def test_named_object_may_appear_later_and_deleted_objects_count_as_pending():
    clock = Clock()
    vmi = {'metadata': {'name': 'x', 'namespace': 'ns', 'resourceVersion': '3'},
           'status': {'phase': 'Running', 'conditions': [{'type': 'Ready', 'status': 'True'}]}}
    api = FakeApi([], '2', [[('ADDED', dict(vmi, status={'phase': 'Pending'})), ('MODIFIED', vmi)]], clock)
    result = Waiter(api, clock=clock, sleep=clock.sleep).wait(_kinds.VMI, vmi_ready, 60, namespace='ns', name='x')
    assert result == [vmi]
    assert api.calls[0][3] == ('metadata.name=x',)


def test_named_object_never_appears():
    clock = Clock()
    api = FakeApi([], '2', [[]], clock)
    with pytest.raises(WaitTimeout) as err:
        Waiter(api, clock=clock, sleep=clock.sleep).wait(_kinds.VMI, vmi_ready, 3, namespace='ns', name='x')
    assert 'ns/x (does not exist)' in err.value.msg


def test_410_gone_relists_then_continues():
    clock = Clock()
    api = FakeApi([vm('a', 1)], '1', [ApiError('gone', 410), [('MODIFIED', vm('a', 9, ready=True))]], clock)
    result = Waiter(api, clock=clock, sleep=clock.sleep).wait(_kinds.VM, vm_ready, 60, namespace='ns')
    assert [c[0] for c in api.calls] == ['list', 'watch', 'list', 'watch']
    assert vm_ready(result[0])


def test_other_watch_errors_propagate():
    clock = Clock()
    api = FakeApi([vm('a', 1)], '1', [ApiError('forbidden', 403)], clock)
    with pytest.raises(ApiError):
        Waiter(api, clock=clock, sleep=clock.sleep).wait(_kinds.VM, vm_ready, 60, namespace='ns')


def test_objects_outside_the_listed_set_are_ignored():
    clock = Clock()
    api = FakeApi([vm('a', 1)], '1', [[('ADDED', vm('new', 2)), ('MODIFIED', vm('a', 3, ready=True))]], clock)
    result = Waiter(api, clock=clock, sleep=clock.sleep).wait(_kinds.VM, vm_ready, 60, namespace='ns')
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
    path = '/apis/kubevirt.io/v1/namespaces/ns/virtualmachines'
    listing = {'metadata': {'resourceVersion': '7'}, 'items': [vm('v%d' % i, 7) for i in range(50)]}
    stream = watch_body([('MODIFIED', vm('v%d' % i, 8 + i, ready=True)) for i in range(50)])
    pool = FakePool().on('GET', path, (200, listing), response(200, raw=stream))
    client = make_client(pool)
    result = Waiter(Api(client)).wait(_kinds.VM, vm_ready, 30, namespace='ns', label_selectors=['app=x'])
    assert len(result) == 50
    assert client.request_count == 2
    assert 'watch' not in pool.requests[0].query and pool.requests[1].query['watch'] == 'true'
    assert pool.requests[1].query['labelSelector'] == 'app=x'
