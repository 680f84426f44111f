"""Tests of the read-only KVM node probe and its verdict, on fake /proc and /sys trees."""
import pytest

from ansible_collections.virtfleet.kubevirt.plugins.module_utils._kvm_host import (
    HostProbe,
    ProbeError,
    hugepage_size_kb,
    parse_validate_output,
    verdict,
)
from tests.unit.plugins.module_utils.kvm_node_tree import FakeNode

# Real lines are wider than 160 columns; the padding does not matter to the parser.
VALIDATE_OUTPUT = """\
  QEMU: Checking for hardware virtualization : PASS
  QEMU: Checking if device /dev/kvm exists : PASS
  QEMU: Checking if device /dev/kvm is accessible : PASS
  QEMU: Checking if device /dev/vhost-net exists : WARN (Load the 'vhost_net' module to improve performance of virtio networking)
  QEMU: Checking if device /dev/net/tun exists : PASS
  QEMU: Checking for cgroup 'cpu' controller support : PASS
  QEMU: Checking for device assignment IOMMU support : WARN (No ACPI DMAR table found, IOMMU either disabled in BIOS or not supported by this hardware platform)
  QEMU: Checking for secure guest support : WARN (Unknown if this platform has Secure Guest support)
"""


def healthy(tmp_path, **kwargs):
    kwargs.setdefault('modules', ('kvm', 'kvm_amd', 'vhost_net', 'tun'))
    kwargs.setdefault('registered', ('kvm', 'vhost-net', 'tun'))
    kwargs.setdefault('nested', {'kvm_amd': '1'})
    return FakeNode(tmp_path, **kwargs)


def collect(node):
    return HostProbe(**node.probe_kwargs()).collect()


def checks(result, key='reasons'):
    return [item['check'] for item in result[key]]


def test_healthy_amd_node_is_usable(tmp_path):
    facts = collect(healthy(tmp_path, dev_kvm_mode=0o666))
    assert facts['cpu']['vendor'] == 'amd'
    assert facts['cpu']['virtualization_flags'] == ['svm']
    assert facts['cpu']['vendor_module'] == 'kvm_amd'
    assert facts['dev_kvm']['accessible'] is True and facts['dev_kvm']['api_version'] == 12
    assert facts['dev_kvm']['mode'] == '0666' and facts['dev_kvm']['group'] == 'kvm'
    assert facts['nested'] == {'module': 'kvm_amd', 'raw': '1', 'enabled': True, 'configured': None}
    result = verdict(facts)
    assert result['kvm_usable'] is True
    assert result['reasons'] == []
    # IOMMU off is only a warning unless required.
    assert checks(result, 'warnings') == ['iommu']


@pytest.mark.parametrize('vendor_id,flags,module,flag', [
    ('GenuineIntel', ('vmx',), 'kvm_intel', 'vmx'),
    ('AuthenticAMD', ('svm',), 'kvm_amd', 'svm'),
    ('HygonGenuine', ('svm',), 'kvm_amd', 'svm'),
])
def test_vendor_module_follows_cpu(tmp_path, vendor_id, flags, module, flag):
    node = FakeNode(tmp_path, vendor_id=vendor_id, flags=flags, modules=('kvm',), registered=())
    facts = collect(node)
    assert facts['cpu']['vendor_module'] == module
    result = verdict(facts)
    assert result['kvm_usable'] is False
    kvm_reason = [r for r in result['reasons'] if r['check'] == 'kvm_modules'][0]
    assert module in kvm_reason['reason'] and 'modprobe %s' % module in kvm_reason['fix']
    dev_reason = [r for r in result['reasons'] if r['check'] == 'dev_kvm'][0]
    assert 'not registered' in dev_reason['reason'] and flag in dev_reason['fix']


def test_no_virtualization_flags_gives_reason_and_fix(tmp_path):
    node = FakeNode(tmp_path, flags=('hypervisor',), modules=('vhost_net', 'tun'), registered=('vhost-net', 'tun'),
                    dev_kvm=False)
    result = verdict(collect(node))
    assert result['kvm_usable'] is False
    assert checks(result) == ['cpu_virtualization']
    reason = result['reasons'][0]
    assert 'no vmx or svm flag' in reason['reason']
    # A VM as node: the fix is at its host, and emulation is the fallback.
    assert 'This node is itself a VM' in reason['fix'] and 'useEmulation: true' in reason['fix']


def test_bare_metal_without_flags_points_at_firmware(tmp_path):
    node = FakeNode(tmp_path, vendor_id='GenuineIntel', flags=('sse',), modules=('vhost_net', 'tun'),
                    registered=('vhost-net', 'tun'), dev_kvm=False)
    reason = verdict(collect(node))['reasons'][0]
    assert reason['fix'].startswith('Enable Intel VT-x in the firmware')


def test_static_dev_kvm_node_is_not_opened_when_unregistered(tmp_path):
    # systemd creates /dev/kvm as a static node; opening it would autoload kvm, so the probe must not.
    node = healthy(tmp_path, modules=('kvm', 'vhost_net', 'tun'), registered=('vhost-net', 'tun'))
    facts = collect(node)
    assert node.opened == []
    assert facts['dev_kvm']['exists'] is True and facts['dev_kvm']['registered'] is False
    assert checks(verdict(facts)) == ['kvm_modules', 'dev_kvm']


def test_dev_kvm_open_denied_is_a_reason(tmp_path):
    node = healthy(tmp_path, open_error='EACCES: Permission denied')
    result = verdict(collect(node))
    assert checks(result) == ['dev_kvm_access']
    assert 'EACCES' in result['reasons'][0]['reason']
    assert 'kvm_host_dev_kvm_mode' in result['reasons'][0]['fix']


def test_group_only_dev_kvm_is_a_warning(tmp_path):
    result = verdict(collect(healthy(tmp_path, dev_kvm_mode=0o660)))
    assert result['kvm_usable'] is True
    warning = [w for w in result['warnings'] if w['check'] == 'dev_kvm_mode'][0]
    assert '0660' in warning['reason'] and 'kvm' in warning['reason']


@pytest.mark.parametrize('required', [True, False])
def test_vhost_net_and_tun_policy(tmp_path, required):
    node = FakeNode(tmp_path, modules=('kvm', 'kvm_amd'), registered=('kvm',))
    result = verdict(collect(node), require_vhost_net=required, require_tun=required)
    target = checks(result) if required else checks(result, 'warnings')
    assert 'vhost_net' in target and 'tun' in target
    assert result['kvm_usable'] is (not required)


def test_builtin_tun_counts_as_loaded(tmp_path):
    node = healthy(tmp_path, modules=('kvm', 'kvm_amd', 'vhost_net'), registered=('kvm', 'vhost-net'))
    node.write('/lib/modules/6.1.0-test/modules.builtin', 'kernel/drivers/net/tun.ko\n')
    facts = collect(node)
    assert facts['modules']['tun'] == {'loaded': True, 'builtin': True, 'refcount': 0, 'used_by': []}
    assert verdict(facts)['kvm_usable'] is True


@pytest.mark.parametrize('raw,enabled', [('Y', True), ('1', True), ('N', False), ('0', False)])
def test_nested_values(tmp_path, raw, enabled):
    facts = collect(healthy(tmp_path, nested={'kvm_amd': raw}))
    assert facts['nested']['enabled'] is enabled
    required = verdict(facts, require_nested=True)
    assert ('nested' in checks(required)) is (not enabled)
    relaxed = verdict(facts)
    assert relaxed['kvm_usable'] is True
    assert ('nested' in checks(relaxed, 'warnings')) is (not enabled)


def test_nested_configured_value_read_from_modprobe_d(tmp_path):
    node = healthy(tmp_path)
    node.write('/usr/lib/modprobe.d/vendor.conf', 'options kvm_amd nested=1\n')
    node.write('/etc/modprobe.d/virtfleet-kvm.conf', '# managed\noptions kvm-amd npt=1 nested=0  # off\n')
    assert collect(node)['nested']['configured'] == '0'


def test_iommu_groups_and_requirement(tmp_path):
    node = healthy(tmp_path)
    node.write('/proc/cmdline', 'root=/dev/sda1 intel_iommu=on iommu=pt quiet\n')
    import os
    os.makedirs(node.path('/sys/class/iommu/dmar0'))
    for group, dev in (('0', '0000:00:00.0'), ('1', '0000:00:02.0')):
        os.makedirs(node.path('/sys/kernel/iommu_groups/%s/devices/%s' % (group, dev)))
    facts = collect(node)
    assert facts['iommu']['enabled'] is True
    assert facts['iommu']['group_count'] == 2
    assert facts['iommu']['groups'] == {'0': ['0000:00:00.0'], '1': ['0000:00:02.0']}
    assert facts['iommu']['kernel_args'] == ['intel_iommu=on', 'iommu=pt']
    assert verdict(facts, require_iommu=True)['kvm_usable'] is True


def test_iommu_required_but_off(tmp_path):
    result = verdict(collect(healthy(tmp_path, vendor_id='GenuineIntel', flags=('vmx',),
                                     modules=('kvm', 'kvm_intel', 'vhost_net', 'tun'))), require_iommu=True)
    assert checks(result) == ['iommu']
    assert 'intel_iommu=on iommu=pt' in result['reasons'][0]['fix']


def test_hugepages_per_size(tmp_path):
    node = healthy(tmp_path)
    node.set_hugepages('2048kB', 512, 500)
    node.set_hugepages('1048576kB', 1, 1)
    facts = collect(node)
    assert facts['hugepages']['sizes']['2048kB'] == {'size_kb': 2048, 'total': 512, 'free': 500}
    assert verdict(facts, require_hugepages={'2M': 512})['kvm_usable'] is True
    result = verdict(facts, require_hugepages={'2M': 1024, '1Gi': 2})
    assert [r['reason'] for r in result['reasons']] == [
        '1 of 2 required 1Gi hugepages are allocated.',
        '512 of 1024 required 2M hugepages are allocated.',
    ]
    missing = verdict(facts, require_hugepages={'16G': 1})
    assert 'does not offer 16G' in missing['reasons'][0]['reason']


@pytest.mark.parametrize('size,kb', [('2M', 2048), ('2Mi', 2048), ('1G', 1048576), ('2048kB', 2048), (2048, 2048),
                                     ('64k', 64)])
def test_hugepage_size_parsing(size, kb):
    assert hugepage_size_kb(size) == kb


@pytest.mark.parametrize('size', ['big', '2X', '', '1.5G'])
def test_hugepage_size_rejects_garbage(size):
    with pytest.raises(ProbeError, match='not a size like 2M'):
        hugepage_size_kb(size)


def test_running_vm_detected_by_fd(tmp_path):
    node = healthy(tmp_path)
    node.add_process(4242, 'python3', fds=('/dev/null', '/dev/kvm', 'anon_inode:kvm-vm'))
    node.add_process(4243, 'bash', fds=('/dev/null',))
    vms = collect(node)['vms']
    assert vms['running'] is True
    assert vms['kvm_vm_holders'] == [{'pid': 4242, 'comm': 'python3'}]


def test_running_vm_detected_by_refcount_or_name(tmp_path):
    node = healthy(tmp_path)
    assert collect(node)['vms']['running'] is False
    node.set_modules(('kvm', 'kvm_amd', 'vhost_net', 'tun'), refcounts={'kvm_amd': 2})
    assert collect(node)['vms'] == {'running': True, 'kvm_vm_holders': [], 'hypervisor_processes': [],
                                    'vendor_module_refcount': 2}
    node.set_modules(('kvm', 'kvm_amd', 'vhost_net', 'tun'))
    node.add_process(77, 'qemu-system-x86_64')
    assert collect(node)['vms']['hypervisor_processes'] == [{'pid': 77, 'comm': 'qemu-system-x86_64'}]


def test_host_libvirt_with_apparmor_warns(tmp_path):
    node = healthy(tmp_path)
    node.add_tool('libvirtd', '/usr/sbin')
    node.write('/sys/module/apparmor/parameters/enabled', 'Y\n')
    node.write('/sys/kernel/security/apparmor/profiles', 'libvirtd (enforce)\nman_groff (enforce)\n')
    node.add_process(10, 'libvirtd')
    facts = collect(node)
    assert facts['libvirt']['daemon_installed'] is True
    assert facts['libvirt']['daemon_running'] == ['libvirtd']
    assert facts['security']['apparmor']['virt_profiles'] == ['libvirtd (enforce)']
    warning = [w for w in verdict(facts)['warnings'] if w['check'] == 'host_libvirt'][0]
    assert 'AppArmor' in warning['reason'] and 'apparmor_parser -r' in warning['fix']


def test_selinux_modes(tmp_path):
    node = healthy(tmp_path)
    assert collect(node)['security']['selinux'] == {'enabled': False, 'mode': 'disabled'}
    node.write('/sys/fs/selinux/enforce', '1')
    assert collect(node)['security']['selinux'] == {'enabled': True, 'mode': 'enforcing'}
    node.write('/sys/fs/selinux/enforce', '0')
    assert collect(node)['security']['selinux']['mode'] == 'permissive'


def test_parse_validate_output():
    results = parse_validate_output(VALIDATE_OUTPUT + 'some noise line\n\x1b[32m  QEMU: Checking x : PASS\x1b[0m\n')
    assert len(results) == 9
    assert results[0] == {'driver': 'QEMU', 'check': 'for hardware virtualization', 'result': 'PASS', 'hint': ''}
    assert results[3]['result'] == 'WARN'
    assert results[3]['hint'] == "Load the 'vhost_net' module to improve performance of virtio networking"
    assert results[-1]['check'] == 'x'


def test_validate_warnings_do_not_block_but_uncovered_fail_does(tmp_path):
    facts = collect(healthy(tmp_path))
    warn_only = {'results': parse_validate_output(VALIDATE_OUTPUT)}
    assert verdict(facts, validation=warn_only)['kvm_usable'] is True
    failing = {'results': parse_validate_output(
        "  QEMU: Checking for cgroup 'devices' controller mount-point : FAIL (Mount 'devices' cgroup controller)\n")}
    result = verdict(facts, validation=failing)
    assert result['reasons'] == [{'check': 'virt_host_validate',
                                  'reason': "virt-host-validate: for cgroup 'devices' controller mount-point: FAIL",
                                  'fix': "Mount 'devices' cgroup controller"}]


def test_validate_fail_already_explained_is_not_repeated(tmp_path):
    node = FakeNode(tmp_path, flags=('sse',), modules=('vhost_net', 'tun'), registered=('vhost-net', 'tun'), dev_kvm=False)
    failing = {'results': parse_validate_output(
        "  QEMU: Checking for hardware virtualization : FAIL (Only emulated CPUs are available, performance will be "
        "significantly limited)\n  QEMU: Checking if device /dev/kvm exists : FAIL (Check that ...)\n")}
    assert checks(verdict(collect(node), validation=failing)) == ['cpu_virtualization']
