"""Module entry point of kvm_host_info: arguments, virt-host-validate handling, result shape."""
import functools

import pytest

from ansible.module_utils import basic

from ansible_collections.virtfleet.kubevirt.plugins.module_utils._kvm_host import HostProbe
from ansible_collections.virtfleet.kubevirt.plugins.modules import kvm_host_info
from tests.unit.plugins.module_utils.kvm_node_tree import FakeNode
from tests.unit.plugins.module_utils.test_kvm_host import VALIDATE_OUTPUT
from tests.unit.plugins.modules.module_args import Exit, Fail, patch_module_args


@pytest.fixture
def node(tmp_path, monkeypatch):
    fake = FakeNode(tmp_path, modules=('kvm', 'kvm_amd', 'vhost_net', 'tun'), registered=('kvm', 'vhost-net', 'tun'),
                    nested={'kvm_amd': '1'})
    monkeypatch.setattr(kvm_host_info, 'HostProbe', functools.partial(HostProbe, **fake.probe_kwargs()))
    return fake


@pytest.fixture
def module_calls(monkeypatch):
    calls = {'commands': []}

    def exit_json(self, **kwargs):
        calls['exit'] = kwargs
        raise Exit()

    def fail_json(self, **kwargs):
        calls['fail'] = kwargs
        raise Fail(kwargs['msg'])

    def run_command(self, args, **kwargs):
        calls['commands'].append((args, kwargs))
        return calls.get('rc', 1), calls.get('stdout', VALIDATE_OUTPUT), ''

    monkeypatch.setattr(basic.AnsibleModule, 'exit_json', exit_json)
    monkeypatch.setattr(basic.AnsibleModule, 'fail_json', fail_json)
    monkeypatch.setattr(basic.AnsibleModule, 'run_command', run_command)
    return calls


def run(args):
    with patch_module_args(args):
        with pytest.raises((Exit, Fail)):
            kvm_host_info.main()


def test_reports_usable_node_without_validation_tool(node, module_calls):
    run({})
    result = module_calls['exit']
    assert result['changed'] is False
    assert result['kvm_host']['verdict']['kvm_usable'] is True
    assert result['kvm_host']['validation']['ran'] is False
    assert module_calls['commands'] == []


def test_check_mode_gives_same_answer(node, module_calls):
    run({'_ansible_check_mode': True})
    assert module_calls['exit']['changed'] is False
    assert module_calls['exit']['kvm_host']['verdict']['kvm_usable'] is True


def test_validate_rc_1_with_warnings_is_not_a_failure(node, module_calls):
    node.add_tool('virt-host-validate')
    run({})
    validation = module_calls['exit']['kvm_host']['validation']
    args, kwargs = module_calls['commands'][0]
    assert args == ['/usr/bin/virt-host-validate', 'qemu']
    assert kwargs['environ_update']['LC_ALL'] == 'C'
    assert validation['ran'] is True and validation['rc'] == 1
    assert validation['counts'] == {'PASS': 5, 'WARN': 3}
    assert module_calls['exit']['kvm_host']['verdict']['kvm_usable'] is True


def test_validate_can_be_turned_off(node, module_calls):
    node.add_tool('virt-host-validate')
    run({'virt_host_validate': False})
    assert module_calls['commands'] == []


def test_validate_without_result_lines_is_reported(node, module_calls):
    node.add_tool('virt-host-validate')
    module_calls['stdout'] = 'error: unknown hypervisor qemu'
    run({})
    validation = module_calls['exit']['kvm_host']['validation']
    assert validation['results'] == []
    assert 'printed no result lines' in validation['error']


def test_requirements_reach_the_verdict(node, module_calls):
    run({'require_hugepages': {'2M': 16}, 'require_iommu': True})
    reasons = module_calls['exit']['kvm_host']['verdict']['reasons']
    assert [r['check'] for r in reasons] == ['iommu', 'hugepages']


@pytest.mark.parametrize('value,message', [
    ({'huge': 4}, "require_hugepages: hugepage size 'huge' is not a size like 2M"),
    ({'2M': 'lots'}, 'require_hugepages: the count for 2M must be a whole number'),
])
def test_bad_hugepages_option(node, module_calls, value, message):
    run({'require_hugepages': value})
    assert module_calls['fail']['msg'].startswith(message)
    assert 'exit' not in module_calls


def test_unknown_option_rejected(node, module_calls):
    run({'nested': True})
    assert 'Unsupported parameters' in module_calls['fail']['msg']


def test_documentation_matches_argument_spec(monkeypatch):
    import yaml
    doc = yaml.safe_load(kvm_host_info.DOCUMENTATION)
    yaml.safe_load(kvm_host_info.EXAMPLES)
    returned = yaml.safe_load(kvm_host_info.RETURN)
    captured = {}

    class Capture(Exception):
        pass

    def fake_init(self, argument_spec, **kwargs):
        captured.update(argument_spec=argument_spec, kwargs=kwargs)
        raise Capture()

    monkeypatch.setattr(kvm_host_info, 'AnsibleModule', type('M', (), {'__init__': fake_init}))
    with pytest.raises(Capture):
        kvm_host_info.main()
    spec = captured['argument_spec']
    assert set(spec) == set(doc['options'])
    for name, option in doc['options'].items():
        assert spec[name]['type'] == option['type']
        assert spec[name].get('default') == option.get('default')
    assert captured['kwargs']['supports_check_mode'] is True
    assert doc['extends_documentation_fragment'] == ['virtfleet.kubevirt._attributes.INFO_MODULE']
    assert set(returned['kvm_host']['contains']) >= {'verdict', 'cpu', 'dev_kvm', 'modules', 'nested', 'iommu',
                                                     'hugepages', 'security', 'libvirt', 'validation', 'vms'}
