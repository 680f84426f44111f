"""Role kvm_host and module kvm_host_info for real, on Debian 12 guests booted with QEMU TCG.

The tests run in file order: kvmnode goes fresh -> check mode -> first run -> second run -> a "VM" holding
KVM blocks a nested reload -> reboot. novirtnode (no svm/vmx) runs its own scenario in a background
thread meanwhile, and the last tests check what it saw.
"""
import pytest

from tests.node.vm import REPO

PLAYBOOK = REPO / 'playbooks' / 'prepare_nodes.yml'
INFO = REPO / 'tests' / 'node' / 'playbooks' / 'info.yml'

ROLE_VARS = {
    'kvm_host_nested': False,           # the kernel default is on, so this exercises the reload
    'kvm_host_dev_kvm_mode': '0666',
    'kvm_host_hugepages': [{'size': '2M', 'count': 16}],
    'kvm_host_extra_modules': ['vhost_vsock'],
}
MANAGED_FILES = ['/etc/modules-load.d/virtfleet-kvm.conf', '/etc/modprobe.d/virtfleet-kvm.conf',
                 '/etc/udev/rules.d/65-virtfleet-kvm.rules', '/etc/tmpfiles.d/virtfleet-hugepages.conf']
# Everything the role could touch, printed in one SSH round trip.
STATE_SCRIPT = r'''
cut -d' ' -f1 /proc/modules | sort | tr '\n' ' '; echo
cat /sys/module/kvm_amd/parameters/nested 2>/dev/null || echo no-kvm_amd
stat -c '%a %G' /dev/kvm 2>/dev/null || echo no-dev-kvm
cat /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
for d in /etc/modules-load.d /etc/modprobe.d /etc/udev/rules.d /etc/tmpfiles.d /etc/default/grub.d; do
  ls -la --time-style=+%s "$d" 2>/dev/null | tail -n +2; find "$d" -type f -exec md5sum {} + 2>/dev/null | sort
done
'''
HOLD_VM = ('setsid python3 -c "import os,fcntl,time; fd=os.open(\'/dev/kvm\',os.O_RDWR); '
           'vm=fcntl.ioctl(fd,0xAE01,0); time.sleep(3600)" >/dev/null 2>&1 </dev/null & echo $!')


def state(vm):
    return vm.ssh(STATE_SCRIPT).stdout


def loaded_modules(vm):
    return set(vm.ssh("cut -d' ' -f1 /proc/modules").stdout.split())


def info(vm):
    run = vm.playbook(INFO)
    assert run.rc == 0, run.summary()
    return run.result('Inspect KVM on the node')['kvm_host']


# ---- the negative guest, in the background --------------------------------------------------------

def negative_scenario(vm):
    """No svm/vmx: verdict, policy fail, policy report, and an opt-in that cannot apply without GRUB."""
    out = {'info': info(vm), 'state_before': state(vm)}
    out['fail'] = vm.playbook(PLAYBOOK, {})
    out['report'] = vm.playbook(PLAYBOOK, {'kvm_host_unusable_policy': 'report'})
    out['modules_after_report'] = loaded_modules(vm)
    out['iommu'] = vm.playbook(PLAYBOOK, {'kvm_host_unusable_policy': 'report', 'kvm_host_iommu': True})
    out['grub_dropin'] = vm.ssh('ls /etc/default/grub.d/virtfleet-kvm.cfg', check=False).returncode
    return out


@pytest.fixture(scope='module')
def negative(novirt_vm, background):
    return background.submit(negative_scenario, novirt_vm)


# ---- the KVM guest ---------------------------------------------------------------------------------

def test_guest_sees_svm_and_loads_kvm_amd(kvm_vm, negative):
    assert 'svm' in kvm_vm.read('/proc/cpuinfo')
    assert {'kvm', 'kvm_amd'} <= loaded_modules(kvm_vm)
    assert not {'vhost_net', 'vhost_vsock'} & loaded_modules(kvm_vm)


def test_check_mode_on_fresh_vm_reports_and_changes_nothing(kvm_vm):
    before = state(kvm_vm)
    run = kvm_vm.playbook(PLAYBOOK, ROLE_VARS, check=True)
    assert run.rc == 0, run.summary()
    changed = run.changed_tasks()
    for task in ('Write the nested virtualization option for kvm_amd', 'Load kernel modules that are not loaded yet',
                 'Persist the kernel modules in modules-load.d', 'Unload kvm_amd',
                 'Persist the /dev/kvm group and mode in a udev rule', 'Apply the /dev/kvm group and mode now',
                 'Persist hugepage counts for every boot'):
        assert any(name.endswith(task) for name in changed), (task, changed)
    would_load = [r['item'] for r in run.result('Load kernel modules that are not loaded yet')['results'] if r.get('changed')]
    assert set(would_load) == {'vhost_net', 'tun', 'vhost_vsock'}
    assert state(kvm_vm) == before
    # The prediction: everything missing is something the role fixes, so the node would be usable.
    assert run.facts()['kvm_host_usable'] is True


def test_first_run_changes_what_it_must(kvm_vm):
    run = kvm_vm.playbook(PLAYBOOK, ROLE_VARS)
    assert run.rc == 0, run.summary()
    assert run.stats['changed'] >= 7, run.changed_tasks()
    assert {'kvm', 'kvm_amd', 'vhost_net', 'tun', 'vhost_vsock'} <= loaded_modules(kvm_vm)
    assert kvm_vm.read('/etc/modules-load.d/virtfleet-kvm.conf').split('\n')[2:] == [
        'kvm', 'kvm_amd', 'vhost_net', 'tun', 'vhost_vsock', '']
    assert 'options kvm_amd nested=0' in kvm_vm.read('/etc/modprobe.d/virtfleet-kvm.conf')
    assert kvm_vm.read('/sys/module/kvm_amd/parameters/nested').strip() == '0'
    assert kvm_vm.ssh('stat -c "%a %G" /dev/kvm').stdout.strip() == '666 kvm'
    assert kvm_vm.read('/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages').strip() == '16'
    facts = run.facts()
    assert facts['kvm_host_usable'] is True and facts['kvm_host_emulation_needed'] is False
    assert facts['kvm_host_pending'] == ['hugepages changed: restart kubelet on this node so it reports them']


def test_second_run_changes_nothing_and_kvm_is_usable(kvm_vm):
    run = kvm_vm.playbook(PLAYBOOK, ROLE_VARS)
    assert run.rc == 0, run.summary()
    assert run.stats['changed'] == 0, run.changed_tasks()
    facts = run.facts()
    assert facts['kvm_host_pending'] == []
    report = facts['kvm_host_report']
    assert report['verdict']['kvm_usable'] is True, report['verdict']
    assert report['dev_kvm']['accessible'] is True and report['dev_kvm']['api_version'] == 12
    assert report['nested'] == {'module': 'kvm_amd', 'raw': '0', 'enabled': False, 'configured': '0'}
    # virt-host-validate (libvirt-clients is in the image) warns about IOMMU; only its FAIL lines would count.
    validation = report['validation']
    assert validation['ran'] is True and validation['rc'] in (0, 1) and validation['error'] is None
    results = {item['check']: item['result'] for item in validation['results']}
    assert results['for hardware virtualization'] == 'PASS'
    assert results['if device /dev/kvm is accessible'] == 'PASS'
    assert results['if device /dev/vhost-net exists'] == 'PASS'
    assert 'WARN' in results.values()


def test_running_vm_blocks_the_nested_reload(kvm_vm):
    pid = kvm_vm.ssh(HOLD_VM).stdout.strip()
    try:
        kvm_vm.ssh('for i in $(seq 50); do ls -l /proc/%s/fd 2>/dev/null | grep -q kvm-vm && exit 0; sleep 0.2; done; '
                   'exit 1' % pid)
        run = kvm_vm.playbook(PLAYBOOK, dict(ROLE_VARS, kvm_host_nested=True))
        assert run.rc == 0, run.summary()
        assert run.result('Unload kvm_amd').get('skipped') is True
        pending = run.facts()['kvm_host_pending']
        assert len(pending) == 1 and 'VMs run on this node (python3)' in pending[0], pending
        assert 'reboot' in pending[0] and run.facts()['kvm_host_reboot_required'] is True
        # Config written for the next boot; the running module untouched.
        assert 'options kvm_amd nested=1' in kvm_vm.read('/etc/modprobe.d/virtfleet-kvm.conf')
        assert kvm_vm.read('/sys/module/kvm_amd/parameters/nested').strip() == '0'
        assert kvm_vm.ssh('ls -l /proc/%s/fd | grep -c kvm-vm' % pid).stdout.strip() == '1'
    finally:
        kvm_vm.ssh('kill %s' % pid, check=False)


def test_after_reboot_modules_and_settings_are_back(kvm_vm):
    kvm_vm.reboot()
    assert {'kvm', 'kvm_amd', 'vhost_net', 'tun', 'vhost_vsock'} <= loaded_modules(kvm_vm)
    # The nested setting that waited for a reboot is active now.
    assert kvm_vm.read('/sys/module/kvm_amd/parameters/nested').strip() == '1'
    assert kvm_vm.ssh('stat -c "%a %G" /dev/kvm').stdout.strip() == '666 kvm'
    assert kvm_vm.read('/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages').strip() == '16'
    report = info(kvm_vm)
    assert report['verdict']['kvm_usable'] is True, report['verdict']
    assert report['verdict']['reasons'] == []
    assert report['vms']['running'] is False


# ---- the guest without virtualization flags ---------------------------------------------------------

def test_no_virt_flags_verdict_has_reason_and_fix(negative):
    report = negative.result(timeout=900)['info']
    assert report['cpu']['virtualization_flags'] == []
    verdict = report['verdict']
    assert verdict['kvm_usable'] is False
    reason = [r for r in verdict['reasons'] if r['check'] == 'cpu_virtualization'][0]
    assert 'no vmx or svm flag' in reason['reason']
    assert 'useEmulation: true' in reason['fix'] and 'This node is itself a VM' in reason['fix']


def test_no_virt_flags_policy_fail_fails_with_reason_and_fix(negative):
    run = negative.result(timeout=900)['fail']
    assert run.rc != 0
    assert run.stats['failures'] == 1
    task, message = run.failure()
    assert task.endswith('Fail because KVM is not usable (kvm_host_unusable_policy is fail)')
    assert 'KVM is not usable on novirtnode' in message
    assert 'no vmx or svm flag' in message and 'Fix: This node is itself a VM' in message


def test_no_virt_flags_policy_report_continues_with_facts(negative):
    out = negative.result(timeout=900)
    run = out['report']
    assert run.rc == 0, run.summary()
    facts = run.facts()
    assert facts['kvm_host_usable'] is False and facts['kvm_host_emulation_needed'] is True
    assert [r['check'] for r in facts['kvm_host_verdict']['reasons']] == ['cpu_virtualization']
    assert 'continuing because kvm_host_unusable_policy is report' in \
        run.result('Report that KVM is not usable (kvm_host_unusable_policy is report)')['msg']
    # The play went on: the summary play ran and reported the node as needing emulation.
    assert run.result('Show nodes without usable KVM and work left on nodes')['msg']['needs_emulation'] == ['novirtnode']
    # The vendor module is neither loaded nor persisted without svm; the rest is.
    assert {'vhost_net', 'tun'} <= out['modules_after_report'] and 'kvm_amd' not in out['modules_after_report']


def test_opt_in_that_cannot_apply_fails_before_changing_anything(negative):
    out = negative.result(timeout=900)
    run = out['iommu']
    assert run.rc != 0
    task, message = run.failure()
    assert task.endswith('Fail before changing anything when the node has no GRUB tool')
    assert 'amd_iommu=on iommu=pt' in message and 'nothing was changed' in message
    assert out['grub_dropin'] != 0
