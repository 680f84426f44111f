"""kubevirt_vm_info entry point: kubevirt.core-compatible options and result, request costs, errors."""
import pytest

from ansible_collections.virtfleet.kubevirt.plugins.modules import kubevirt_vm_info

from ..kube_fakes import response, status_body, watch_body
from .module_harness import AUTH, Harness

VMS = '/apis/kubevirt.io/v1/namespaces/ns/virtualmachines'
ALL_VMS = '/apis/kubevirt.io/v1/virtualmachines'


def vm(name, rv='1', ready=False, printable='Starting', ns='ns', reason=None):
    cond = {'type': 'Ready', 'status': 'True' if ready else 'False'}
    if reason:
        cond['reason'] = reason
    return {'apiVersion': 'kubevirt.io/v1', 'kind': 'VirtualMachine',
            'metadata': {'name': name, 'namespace': ns, 'resourceVersion': rv, 'managedFields': [{'manager': 'x'}],
                         'annotations': {'kubemacpool.io/transaction-timestamp': 't', 'keep': 'me'}},
            'spec': {'runStrategy': 'Always'}, 'status': {'printableStatus': printable, 'conditions': [cond]}}


@pytest.fixture
def h(monkeypatch):
    return Harness(monkeypatch)


def test_read_one_vm_is_one_get(h):
    h.pool.on('GET', VMS + '/vm1', (200, vm('vm1', ready=True)))
    result = h.run(kubevirt_vm_info.main, dict(AUTH, name='vm1', namespace='ns'))
    assert result['changed'] is False and result['api_found'] is True
    assert [r['metadata']['name'] for r in result['resources']] == ['vm1']
    assert h.request_count == 1
    assert [(r.method, r.path, r.query) for r in h.pool.requests] == [('GET', VMS + '/vm1', {})]


def test_hidden_fields_default_removes_noise(h):
    h.pool.on('GET', VMS + '/vm1', (200, vm('vm1')))
    meta = h.run(kubevirt_vm_info.main, dict(AUTH, name='vm1', namespace='ns'))['resources'][0]['metadata']
    assert 'managedFields' not in meta
    assert meta['annotations'] == {'keep': 'me'}


def test_missing_vm_gives_empty_resources(h):
    h.pool.on('GET', VMS + '/nope', (404, status_body(404, 'NotFound', 'nf', name='nope')))
    result = h.run(kubevirt_vm_info.main, dict(AUTH, name='nope', namespace='ns'))
    assert result['resources'] == [] and result['api_found'] is True


def test_kubevirt_not_installed_sets_api_found_false(h):
    result = h.run(kubevirt_vm_info.main, dict(AUTH, namespace='ns'))
    assert result['api_found'] is False and result['resources'] == []
    assert 'KubeVirt installed' in result['msg']


def test_list_all_namespaces_with_selectors(h):
    h.pool.on('GET', ALL_VMS, (200, {'metadata': {'resourceVersion': '5'}, 'items': [vm('a'), vm('b', ns='other')]}))
    result = h.run(kubevirt_vm_info.main, dict(AUTH, label_selectors=['app=web'], field_selectors=['metadata.name!=c']))
    assert [r['metadata']['name'] for r in result['resources']] == ['a', 'b']
    assert h.pool.requests[0].query == {'labelSelector': 'app=web', 'fieldSelector': 'metadata.name!=c', 'limit': '500'}


def test_wait_for_many_uses_one_list_and_one_watch(h):
    items = [vm('v%02d' % i) for i in range(50)]
    events = [('MODIFIED', vm('v%02d' % i, rv=str(10 + i), ready=True, printable='Running')) for i in range(50)]
    h.pool.on('GET', VMS, (200, {'metadata': {'resourceVersion': '9'}, 'items': items}),
              response(200, raw=watch_body(events)))
    result = h.run(kubevirt_vm_info.main, dict(AUTH, namespace='ns', label_selectors=['fleet=a'], wait=True,
                                               wait_timeout=30))
    assert len(result['resources']) == 50
    assert all(r['status']['printableStatus'] == 'Running' for r in result['resources'])
    assert h.request_count == 2
    assert h.pool.requests[1].query['watch'] == 'true' and h.pool.requests[1].query['resourceVersion'] == '9'


def test_wait_with_name_lists_by_field_selector_and_skips_watch_when_ready(h):
    h.pool.on('GET', VMS, (200, {'metadata': {'resourceVersion': '3'}, 'items': [vm('vm1', ready=True)]}))
    result = h.run(kubevirt_vm_info.main, dict(AUTH, name='vm1', namespace='ns', wait=True))
    assert len(result['resources']) == 1
    assert h.request_count == 1
    assert h.pool.requests[0].query['fieldSelector'] == 'metadata.name=vm1'


def test_running_false_waits_for_stopped(h):
    stopped = vm('vm1', rv='4', printable='Stopped', reason='VMINotExists')
    h.pool.on('GET', VMS, (200, {'metadata': {'resourceVersion': '3'}, 'items': [vm('vm1', ready=True)]}),
              response(200, raw=watch_body([('MODIFIED', vm('vm1', rv='4', printable='Stopping')),
                                            ('MODIFIED', stopped)])))
    result = h.run(kubevirt_vm_info.main, dict(AUTH, name='vm1', namespace='ns', wait=True, running=False))
    assert result['resources'][0]['status']['printableStatus'] == 'Stopped'


def test_wait_timeout_fails_with_state_of_each_object(h):
    h.pool.on('GET', VMS, (200, {'metadata': {'resourceVersion': '3'}, 'items': [vm('a'), vm('b', ready=True)]}),
              response(200, raw=b''))
    result = h.run(kubevirt_vm_info.main, dict(AUTH, namespace='ns', wait=True, wait_timeout=1))
    assert h.failed is not None
    assert 'Timed out after 1s waiting for 1 of 2 VirtualMachines' in result['msg']
    assert 'ns/a (printableStatus Starting, Ready=False)' in result['msg']
    assert result['pending'] == [{'namespace': 'ns', 'name': 'a', 'state': 'printableStatus Starting, Ready=False'}]


def test_running_requires_wait(h):
    result = h.run(kubevirt_vm_info.main, dict(AUTH, name='x', namespace='ns', running=False))
    assert 'running' in result['msg'] and 'wait' in result['msg']


@pytest.mark.parametrize('status, fragment', [
    (401, 'rejected the credentials'),
    (403, 'may not get VirtualMachine ns/vm1 in namespace "ns"'),
])
def test_http_errors_are_one_sentence(h, status, fragment):
    h.pool.on('GET', VMS + '/vm1', (status, status_body(status, 'x', 'denied')))
    result = h.run(kubevirt_vm_info.main, dict(AUTH, name='vm1', namespace='ns'))
    assert h.failed is not None
    assert fragment in result['msg']
    assert 'Traceback' not in result['msg'] and 'secret-token' not in result['msg']


def test_missing_kubeconfig_names_option(h, tmp_path):
    result = h.run(kubevirt_vm_info.main, {'kubeconfig': str(tmp_path / 'missing'), 'name': 'x', 'namespace': 'ns'})
    assert 'does not exist: set kubeconfig' in result['msg']
    assert h.request_count == 0


def test_env_fallback_for_connection(h, monkeypatch):
    monkeypatch.setenv('K8S_AUTH_HOST', 'https://from-env:6443')
    monkeypatch.setenv('K8S_AUTH_API_KEY', 'envtoken')
    h.pool.on('GET', VMS + '/vm1', (200, vm('vm1')))
    h.run(kubevirt_vm_info.main, {'name': 'vm1', 'namespace': 'ns'})
    assert h.pool.requests[0].url.startswith('https://from-env:6443/')
    assert h.pool.requests[0].headers['authorization'] == 'Bearer envtoken'


def test_check_mode_reads_the_same(h):
    h.pool.on('GET', VMS + '/vm1', (200, vm('vm1')))
    result = h.run(kubevirt_vm_info.main, dict(AUTH, name='vm1', namespace='ns', _ansible_check_mode=True))
    assert result['resources'][0]['metadata']['name'] == 'vm1'
