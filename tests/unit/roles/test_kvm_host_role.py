"""Role kvm_host: argument spec vs defaults, and the per-family / per-vendor choices that cannot be booted here.

The planning tasks run for real (ansible-playbook, local connection) on a faked kvm_host_info result, so the
Jinja is checked by the ansible-core under test (2.19, 2.21 and 2.16).
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
ROLE = REPO / 'roles' / 'kvm_host'
PLAN = Path(__file__).with_name('plan_kvm_host.yml')
CALLBACKS = REPO / 'tests' / 'node' / 'callback_plugins'


def load(path):
    return yaml.safe_load((ROLE / path).read_text())


def test_defaults_equal_argument_spec_defaults():
    spec = load('meta/argument_specs.yml')['argument_specs']['main']['options']
    defaults = load('defaults/main.yml')
    assert set(defaults) == set(spec)
    for name, option in spec.items():
        assert name.startswith('kvm_host_')
        assert defaults[name] == option.get('default'), name


def test_every_role_variable_used_is_declared():
    spec = load('meta/argument_specs.yml')['argument_specs']['main']['options']
    text = '\n'.join(p.read_text() for p in list((ROLE / 'tasks').glob('*.yml')) + list((ROLE / 'templates').glob('*')))
    import re
    facts_set = {'kvm_host_info', 'kvm_host_usable', 'kvm_host_verdict', 'kvm_host_pending', 'kvm_host_report',
                 'kvm_host_emulation_needed', 'kvm_host_reboot_required'}
    used = set(re.findall(r'\b(kvm_host_[a-z_]+)\b', text)) - facts_set
    assert used <= set(spec), used - set(spec)


@pytest.mark.parametrize('family,packages,tool,update', [
    ('Debian', ['libvirt-clients', 'cpu-checker'], 'grub_d', ['update-grub']),
    ('RedHat', ['/usr/bin/virt-host-validate'], 'grubby', []),
])
def test_family_vars(family, packages, tool, update):
    data = load('vars/%s.yml' % family)
    assert data['_kvm_host_family_validation_packages'] == packages
    assert data['_kvm_host_kernel_args_tool'] == tool
    assert data['_kvm_host_grub_update_command'] == update
    # No hypervisor or libvirt daemon package: KubeVirt brings its own, and a host libvirtd can get in its way.
    assert not {'libvirt-daemon', 'libvirt-daemon-system', 'qemu-kvm', 'qemu-system-x86', 'libvirt'} & set(packages)


def fake_info(vendor='intel', flags=('vmx',), hugepage_sizes=('2048kB', '1048576kB'), cmdline=('ro', 'quiet')):
    return {'kvm_host': {
        'cpu': {'vendor': vendor, 'virtualization_flags': list(flags),
                'vendor_module': {'intel': 'kvm_intel', 'amd': 'kvm_amd'}.get(vendor)},
        'vms': {'running': False},
        'kernel_cmdline': list(cmdline),
        'modules': {},
        'hugepages': {'sizes': {size: {'size_kb': int(size[:-2]), 'total': 0, 'free': 0} for size in hugepage_sizes}},
    }}


def plan(tmp_path, family='Debian', info=None, **role_vars):
    extra = dict(role_vars, kvm_host_role_dir=str(ROLE), fake_os_family=family,
                 _kvm_host_before=info or fake_info())
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK='results_json', ANSIBLE_CALLBACK_PLUGINS=str(CALLBACKS),
               ANSIBLE_LOCALHOST_WARNING='False', ANSIBLE_INVENTORY_UNPARSED_WARNING='False',
               ANSIBLE_LOCAL_TEMP=str(tmp_path / 'tmp'), ANSIBLE_REMOTE_TEMP=str(tmp_path / 'rtmp'))
    result = subprocess.run([str(Path(sys.executable).parent / 'ansible-playbook'), str(PLAN), '-e', json.dumps(extra)],
                            check=False, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=120)
    data = json.loads(result.stdout[result.stdout.index('{'):])
    tasks = {t['task']['name']: t['hosts']['localhost'] for t in data['plays'][0]['tasks']}
    facts = {}
    for res in tasks.values():
        facts.update(res.get('ansible_facts', {}))
    shown = tasks.get('Show the plan', {}).get('msg')
    return result.returncode, facts, tasks, shown


def test_plan_intel_debian_defaults(tmp_path):
    rc, facts, tasks, shown = plan(tmp_path)
    assert rc == 0, tasks
    assert shown['vendor_module'] == 'kvm_intel'
    assert shown['modules'] == ['kvm', 'kvm_intel', 'vhost_net', 'tun']
    assert shown['kernel_args'] == []
    assert shown['validation_packages'] == ['libvirt-clients', 'cpu-checker']
    assert shown['kernel_args_tool'] == 'grub_d'


def test_plan_amd_redhat_with_extras(tmp_path):
    rc, facts, tasks, shown = plan(tmp_path, family='RedHat', info=fake_info('amd', ('svm',)),
                                   kvm_host_extra_modules=['vhost_vsock', 'tun'], kvm_host_vhost_net=False,
                                   kvm_host_validation_packages=['libvirt-client'])
    assert rc == 0, tasks
    assert shown['modules'] == ['kvm', 'kvm_amd', 'tun', 'vhost_vsock']
    assert shown['validation_packages'] == ['libvirt-client']
    assert shown['kernel_args_tool'] == 'grubby'


def test_plan_without_virtualization_flags_skips_kvm_modules(tmp_path):
    rc, facts, tasks, shown = plan(tmp_path, info=fake_info('amd', ()))
    assert rc == 0, tasks
    assert shown['vendor_module'] == ''
    assert shown['modules'] == ['vhost_net', 'tun']


@pytest.mark.parametrize('family,vendor,flags,passthrough,args,tool', [
    ('Debian', 'intel', ('vmx',), True, ['intel_iommu=on', 'iommu=pt'], 'update-grub'),
    ('RedHat', 'amd', ('svm',), True, ['amd_iommu=on', 'iommu=pt'], 'grubby'),
    ('RedHat', 'intel', ('vmx',), False, ['intel_iommu=on'], 'grubby'),
])
def test_plan_iommu_args_per_vendor_and_safe_stop_without_bootloader(
        tmp_path, family, vendor, flags, passthrough, args, tool):
    rc, facts, tasks, shown = plan(tmp_path, family=family, info=fake_info(vendor, flags), kvm_host_iommu=True,
                                   kvm_host_iommu_passthrough=passthrough)
    assert facts['_kvm_host_kernel_args_wanted'] == args
    assert 'vfio-pci' in facts['_kvm_host_modules_wanted']
    if Path('/usr/sbin/' + tool).exists():
        pytest.skip('this machine has %s; the no-bootloader stop is not reachable here' % tool)
    # This machine boots without that tool in /usr/sbin: the role must stop before any change.
    assert rc != 0
    failed = tasks['Fail before changing anything when the node has no GRUB tool']
    assert failed['failed'] is True
    assert ' '.join(args) in failed['msg'] and tool in failed['msg'] and 'nothing was changed' in failed['msg']


def test_plan_hugepages_kernel_cmdline_args(tmp_path):
    rc, facts, tasks, shown = plan(tmp_path, kvm_host_hugepages_method='kernel_cmdline',
                                   kvm_host_hugepages=[{'size': '1G', 'count': 2}, {'size': '2Mi', 'count': 512}],
                                   kvm_host_kernel_args=['mitigations=auto'])
    assert facts['_kvm_host_kernel_args_wanted'] == ['hugepagesz=1G', 'hugepages=2', 'hugepagesz=2M', 'hugepages=512',
                                                     'mitigations=auto']
    assert facts['_kvm_host_hugepages_plan'] == [
        {'size': '1G', 'kb': 1048576, 'count': 2, 'offered': True, 'current': 0},
        {'size': '2M', 'kb': 2048, 'count': 512, 'offered': True, 'current': 0},
    ]


def test_plan_hugepages_runtime_has_no_kernel_args(tmp_path):
    rc, facts, tasks, shown = plan(tmp_path, kvm_host_hugepages=[{'size': '2M', 'count': 64}])
    assert rc == 0, tasks
    assert shown['kernel_args'] == []
    assert shown['hugepages'][0]['kb'] == 2048


FAKE_INFO_MODULE = '''#!/usr/bin/python
# Stand-in for virtfleet.kubevirt.kvm_host_info: returns the node report the test wrote below.
from ansible.module_utils.basic import AnsibleModule

REPORT = %r


def main():
    module = AnsibleModule(argument_spec=dict(require_vhost_net=dict(type='raw'), require_tun=dict(type='raw'),
                                              virt_host_validate=dict(type='raw')))
    module.exit_json(changed=False, kvm_host=REPORT)


if __name__ == '__main__':
    main()
'''


def verdict(tmp_path, pending, reboot_pending, hugepages_total=0, **role_vars):
    """Run tasks/verdict.yml after earlier tasks left ``pending``/``reboot_pending``; a fake kvm_host_info answers."""
    modules = tmp_path / 'ac' / 'ansible_collections' / 'virtfleet' / 'kubevirt' / 'plugins' / 'modules'
    modules.mkdir(parents=True)
    report = {'verdict': {'usable': True, 'reasons': []},
              'hugepages': {'sizes': {'2048kB': {'size_kb': 2048, 'total': hugepages_total, 'free': 0}}}}
    (modules / 'kvm_host_info.py').write_text(FAKE_INFO_MODULE % (report,))
    (modules.parent.parent / 'galaxy.yml').write_text('namespace: virtfleet\nname: kubevirt\nversion: 0.0.1\n')
    playbook = tmp_path / 'verdict.yml'
    playbook.write_text(yaml.safe_dump([{
        'name': 'Verdict on a faked node', 'hosts': 'localhost', 'connection': 'local', 'gather_facts': False,
        'tasks': [
            {'name': 'Load the role defaults and vars', 'ansible.builtin.include_vars': {'file': '{{ item }}'},
             'loop': [str(ROLE / 'defaults' / 'main.yml'), str(ROLE / 'vars' / 'main.yml')]},
            # set_fact, not -e: extra vars would win over the role's own set_fact.
            {'name': 'What earlier tasks left', 'ansible.builtin.set_fact': {
                '_kvm_host_pending': pending, '_kvm_host_reboot_pending': reboot_pending,
                '_kvm_host_hugepages_plan': [{'size': '2M', 'kb': 2048, 'count': 4, 'offered': True, 'current': 0}]}},
            {'name': 'Run the verdict tasks', 'ansible.builtin.include_tasks': str(ROLE / 'tasks' / 'verdict.yml')},
        ]}]))
    extra = dict(role_vars)
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK='results_json', ANSIBLE_CALLBACK_PLUGINS=str(CALLBACKS),
               ANSIBLE_COLLECTIONS_PATH=str(tmp_path / 'ac'), ANSIBLE_LOCALHOST_WARNING='False',
               ANSIBLE_INVENTORY_UNPARSED_WARNING='False',
               ANSIBLE_LOCAL_TEMP=str(tmp_path / 'tmp'), ANSIBLE_REMOTE_TEMP=str(tmp_path / 'rtmp'))
    result = subprocess.run([str(Path(sys.executable).parent / 'ansible-playbook'), str(playbook), '-e', json.dumps(extra)],
                            check=False, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(result.stdout[result.stdout.index('{'):])
    facts = {}
    for task in data['plays'][0]['tasks']:
        facts.update(task['hosts']['localhost'].get('ansible_facts', {}))
    return facts


@pytest.mark.parametrize('pending,reboot_pending,hugepages_total,method,required', [
    # Nothing left to do.
    ([], False, 4, 'runtime', False),
    # kernel_args.yml / nested_apply.yml left a reboot behind.
    (['kernel arguments intel_iommu=on take effect after a reboot (kvm_host_reboot is false)'], True, 4, 'runtime',
     True),
    # Hugepages the kernel could not allocate: both methods end in a reboot (runtime: after switching method).
    ([], False, 0, 'runtime', True),
    ([], False, 0, 'kernel_cmdline', True),
    # A pending sentence that merely contains the word (modprobe's stderr) is no reboot: the flag decides.
    (['modprobe vhost_net failed: module was built for a kernel that needs a reboot'], False, 4, 'runtime', False),
])
def test_verdict_reboot_required_comes_from_the_flag(tmp_path, pending, reboot_pending, hugepages_total, method,
                                                     required):
    facts = verdict(tmp_path, pending, reboot_pending, hugepages_total, kvm_host_hugepages_method=method)
    assert facts['kvm_host_reboot_required'] is required
    assert facts['kvm_host_usable'] is True
    assert len(facts['kvm_host_pending']) == len(pending) + (hugepages_total < 4)
