"""kubevirt_vmi_info entry point: reads, waits for Ready, api_version option."""
import pytest

from ansible_collections.virtfleet.kubevirt.plugins.modules import kubevirt_vmi_info

from ..kube_fakes import response, watch_body
from .module_harness import AUTH, Harness

VMIS = '/apis/kubevirt.io/v1/namespaces/ns/virtualmachineinstances'


def vmi(name, rv='1', phase='Scheduling', ready=False):
    status = {'phase': phase}
    if ready:
        status['conditions'] = [{'type': 'Ready', 'status': 'True'}]
    return {'metadata': {'name': name, 'namespace': 'ns', 'resourceVersion': rv}, 'status': status}


@pytest.fixture
def h(monkeypatch):
    return Harness(monkeypatch)


def test_read_one_vmi_is_one_get(h):
    h.pool.on('GET', VMIS + '/a', (200, vmi('a', phase='Running', ready=True)))
    result = h.run(kubevirt_vmi_info.main, dict(AUTH, name='a', namespace='ns'))
    assert result['resources'][0]['status']['phase'] == 'Running'
    assert h.request_count == 1


def test_wait_for_a_vmi_that_does_not_exist_yet(h):
    events = [('ADDED', vmi('a', '5')), ('MODIFIED', vmi('a', '6', 'Running', ready=True))]
    h.pool.on('GET', VMIS, (200, {'metadata': {'resourceVersion': '4'}, 'items': []}),
              response(200, raw=watch_body(events)))
    result = h.run(kubevirt_vmi_info.main, dict(AUTH, name='a', namespace='ns', wait=True, wait_timeout=10))
    assert result['resources'][0]['metadata']['resourceVersion'] == '6'
    assert h.request_count == 2


def test_wait_on_empty_selection_returns_at_once(h):
    h.pool.on('GET', VMIS, (200, {'metadata': {'resourceVersion': '4'}, 'items': []}))
    result = h.run(kubevirt_vmi_info.main, dict(AUTH, namespace='ns', label_selectors=['none=here'], wait=True))
    assert result['resources'] == [] and h.request_count == 1


def test_running_phase_without_ready_is_not_enough(h):
    h.pool.on('GET', VMIS, (200, {'metadata': {'resourceVersion': '4'}, 'items': [vmi('a', phase='Running')]}),
              response(200, raw=b''))
    result = h.run(kubevirt_vmi_info.main, dict(AUTH, namespace='ns', wait=True, wait_timeout=1))
    assert 'ns/a (phase Running, no Ready condition yet)' in result['msg']


def test_api_version_option_changes_the_path(h):
    h.pool.on('GET', '/apis/kubevirt.io/v1alpha3/namespaces/ns/virtualmachineinstances/a', (200, vmi('a')))
    result = h.run(kubevirt_vmi_info.main, dict(AUTH, name='a', namespace='ns', api_version='kubevirt.io/v1alpha3'))
    assert len(result['resources']) == 1


def test_wait_sleep_bounds_the_reopen_pause(h, monkeypatch):
    from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _info
    seen = []

    class Spy(_info.Waiter):
        def __init__(self, api, **kwargs):
            seen.append(kwargs)
            super().__init__(api, **kwargs)

    monkeypatch.setattr(_info, 'Waiter', Spy)
    h.pool.on('GET', VMIS, (200, {'metadata': {'resourceVersion': '4'}, 'items': [vmi('a')]}), response(200, raw=b''))
    h.run(kubevirt_vmi_info.main, dict(AUTH, namespace='ns', wait=True, wait_timeout=1, wait_sleep=0))
    assert seen == [{'reopen_pause': 0.05}]
