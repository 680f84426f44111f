"""kubevirt_install entry point: option validation sentences, preflight_only costs, uninstall guard without writes."""
from pathlib import Path

import pytest

from ansible.module_utils import basic

from ansible_collections.virtfleet.kubevirt.plugins.modules import kubevirt_install

from .module_harness import AUTH, Harness

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "install"
KV190 = str(FIXTURES / "kubevirt-v1.9.0" / "kubevirt-operator.yaml")
NODE = {'metadata': {'name': 'node01', 'labels': {}}, 'spec': {},
        'status': {'conditions': [{'type': 'Ready', 'status': 'True'}]}}
WRITES = ('POST', 'PUT', 'PATCH', 'DELETE')


@pytest.fixture
def h(monkeypatch):
    return Harness(monkeypatch)


@pytest.mark.parametrize("args, message", [
    ({}, 'No source for the KubeVirt operator manifest: set version, manifest_url or manifest_path.'),
    ({'version': 'latest'}, 'version must be a release version such as v1.9.0, got "latest".'),
    ({'manifest_path': '/nonexistent/kubevirt-operator.yaml'}, 'manifest_path /nonexistent/kubevirt-operator.yaml does not '
     'exist'),
    ({'manifest_path': KV190, 'version': 'v1.8.4'}, 'version is v1.8.4 but the manifest'),
    ({'manifest_path': KV190, 'emulation': 'maybe'}, 'emulation must be auto, true or false, got "maybe".'),
    ({'manifest_path': KV190, 'feature_gates': ['A'], 'disabled_feature_gates': ['A']},
     'feature_gates and disabled_feature_gates both list A'),
    ({'manifest_path': KV190, 'wait_timeout': -1}, 'wait_timeout must be 0 or more seconds'),
    ({'manifest_path': KV190, 'manifest_url': 'https://x'}, 'parameters are mutually exclusive: manifest_url|manifest_path'),
])
def test_bad_options_fail_with_one_sentence_and_no_write(h, args, message):
    h.pool.on('GET', '/apis/kubevirt.io/v1/kubevirts', (200, {'items': [], 'metadata': {'resourceVersion': '1'}}))
    h.pool.on('GET', '/version', (200, {'gitVersion': 'v1.34.0'}))
    h.pool.on('GET', '/api/v1/nodes', (200, {'items': [NODE], 'metadata': {'resourceVersion': '1'}}))
    result = h.run(kubevirt_install.main, dict(AUTH, **args))
    assert h.failed is not None and message in result['msg'], result
    assert [r for r in h.pool.requests if r.method in WRITES] == []


def test_preflight_only_reads_version_and_nodes(h, monkeypatch):
    warnings = []
    monkeypatch.setattr(basic.AnsibleModule, 'warn', lambda module, msg: warnings.append(msg))
    h.pool.on('GET', '/version', (200, {'gitVersion': 'v1.30.1'}))
    h.pool.on('GET', '/api/v1/nodes', (200, {'items': [NODE], 'metadata': {'resourceVersion': '1'}}))
    result = h.run(kubevirt_install.main, dict(AUTH, preflight_only=True, version='v1.9.0'))
    assert result['changed'] is False
    assert result['cluster'] == {'kubernetes_version': 'v1.30.1', 'nodes': 1, 'schedulable_nodes': ['node01'],
                                 'kubevirt_version': 'v1.9.0', 'kubernetes_supported': {'min': '1.34', 'max': '1.36'}}
    assert any('outside what KubeVirt v1.9.0 supports' in w for w in warnings), warnings
    assert [r.path for r in h.pool.requests] == ['/version', '/api/v1/nodes']


def test_preflight_only_fails_without_schedulable_nodes(h):
    h.pool.on('GET', '/version', (200, {'gitVersion': 'v1.34.0'}))
    cordoned = dict(NODE, spec={'unschedulable': True})
    h.pool.on('GET', '/api/v1/nodes', (200, {'items': [cordoned], 'metadata': {'resourceVersion': '1'}}))
    result = h.run(kubevirt_install.main, dict(AUTH, preflight_only=True, version='v1.9.0'))
    assert h.failed and result['msg'].startswith('No Ready, schedulable node')


def test_blocked_uninstall_lists_workloads_and_writes_nothing(h):
    cr = {'apiVersion': 'kubevirt.io/v1', 'kind': 'KubeVirt',
          'metadata': {'name': 'kubevirt', 'namespace': 'kubevirt'},
          'spec': {'uninstallStrategy': 'BlockUninstallIfWorkloadsExist'},
          'status': {'phase': 'Deployed', 'observedKubeVirtVersion': 'v1.9.0'}}
    h.pool.on('GET', '/apis/kubevirt.io/v1/namespaces/kubevirt/kubevirts/kubevirt', (200, cr))
    empty = (200, {'items': [], 'metadata': {'resourceVersion': '1'}})
    h.pool.on('GET', '/apis/kubevirt.io/v1/virtualmachineinstances', empty)
    h.pool.on('GET', '/apis/kubevirt.io/v1/virtualmachines', (200, {'items': [
        {'metadata': {'name': 'db', 'namespace': 'prod'}}, {'metadata': {'name': 'web', 'namespace': 'prod'}}],
        'metadata': {'resourceVersion': '1'}}))
    h.pool.on('GET', '/apis/kubevirt.io/v1/virtualmachineinstancereplicasets', empty)
    result = h.run(kubevirt_install.main, dict(AUTH, state='absent'))
    assert h.failed and result['changed'] is False
    assert 'Refusing to uninstall KubeVirt' in result['msg'] and '2 VirtualMachines (prod/db, prod/web)' in result['msg']
    assert result['workloads'] == ['2 VirtualMachines (prod/db, prod/web)']
    assert [r for r in h.pool.requests if r.method in WRITES] == []
