import pytest

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _kinds


@pytest.mark.parametrize('kind, ns, name, sub, path', [
    (_kinds.VM, 'ns', 'vm1', None, '/apis/kubevirt.io/v1/namespaces/ns/virtualmachines/vm1'),
    (_kinds.VM, None, None, None, '/apis/kubevirt.io/v1/virtualmachines'),
    (_kinds.VMI, 'ns', None, None, '/apis/kubevirt.io/v1/namespaces/ns/virtualmachineinstances'),
    (_kinds.VM_SUBRESOURCE, 'ns', 'vm1', 'start', '/apis/subresources.kubevirt.io/v1/namespaces/ns/virtualmachines/vm1/start'),
    (_kinds.NODE, 'ignored', 'n1', None, '/api/v1/nodes/n1'),
    (_kinds.NAMESPACE, None, 'default', None, '/api/v1/namespaces/default'),
    (_kinds.DATAVOLUME, 'ns', 'dv', None, '/apis/cdi.kubevirt.io/v1beta1/namespaces/ns/datavolumes/dv'),
    (_kinds.VM, 'ns', 'a/b', None, '/apis/kubevirt.io/v1/namespaces/ns/virtualmachines/a%2Fb'),
])
def test_paths(kind, ns, name, sub, path):
    assert kind.path(ns, name, sub) == path


def test_api_version_override():
    vm = _kinds.VM.with_api_version('kubevirt.io/v1alpha3')
    assert vm.path('n') == '/apis/kubevirt.io/v1alpha3/namespaces/n/virtualmachines'
    assert _kinds.VM.with_api_version('kubevirt.io/v1') is _kinds.VM
    assert _kinds.VM.describe('ns', 'x') == 'VirtualMachine ns/x'
