#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet.kubevirt contributors
# Dual-licensed: Apache License 2.0 (see LICENSE) or, at your option,
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: kvm_host_info
short_description: Report whether a Linux node can run KubeVirt VMs with KVM acceleration
version_added: 1.0.0
author:
  - virtfleet maintainers (@virtfleet)
description:
  - Runs on the node itself (not against the Kubernetes API) and changes nothing.
  - Reports the CPU vendor and virtualization flags, C(/dev/kvm) presence, permissions and whether it opens,
    the loaded KVM-related kernel modules, the nested virtualization setting, IOMMU state and groups,
    hugepages per size, C(/dev/vhost-net) and C(/dev/net/tun), AppArmor and SELinux state, a host libvirt
    installation, and the results of C(virt-host-validate qemu) when that tool is installed.
  - Ends with a verdict, I(kvm_usable) yes or no, listing every reason together with the fix for it.
  - It also reports whether KVM virtual machines run on the node, which the C(virtfleet.kubevirt.kvm_host) role
    uses so that it never reloads a KVM module under a running VM.
  - Needs root (C(become)) for a complete picture; without it, C(/dev/kvm) access reflects the connecting user.
options:
  require_vhost_net:
    description:
      - Count a missing C(vhost_net) module as a reason that KVM is not usable. When false it is a warning.
    type: bool
    default: true
  require_tun:
    description:
      - Count a missing C(tun) module (C(/dev/net/tun)) as a reason that KVM is not usable. When false it is a warning.
    type: bool
    default: true
  require_nested:
    description:
      - Count disabled nested virtualization as a reason. When false it is a warning.
    type: bool
    default: false
  require_iommu:
    description:
      - Count a disabled IOMMU as a reason (needed for PCI passthrough). When false it is a warning.
    type: bool
    default: false
  require_hugepages:
    description:
      - 'Minimum number of allocated hugepages per page size, for example C({"2M": 512, "1G": 2}).'
      - Sizes accept C(2M), C(2Mi), C(1G), C(2048kB).
    type: dict
    default: {}
  virt_host_validate:
    description:
      - Run C(virt-host-validate qemu) when it is installed and parse its result lines.
      - Its exit code is 1 on warnings too, so only C(FAIL) lines count against the verdict.
    type: bool
    default: true
notes:
  - C(kvm-ok) is reported when installed but not run, because it loads the C(msr) module.
  - Supports C(check_mode); the module never changes the node.
seealso:
  - name: KubeVirt software emulation
    description: What to do when a node cannot have KVM.
    link: https://github.com/kubevirt/kubevirt/blob/main/docs/software-emulation.md
extends_documentation_fragment:
  - virtfleet.kubevirt._attributes.INFO_MODULE
'''

EXAMPLES = r'''
- name: Check every node
  virtfleet.kubevirt.kvm_host_info:
  become: true
  register: kvm

- name: Stop when a node cannot run VMs with KVM
  ansible.builtin.assert:
    that: kvm.kvm_host.verdict.kvm_usable
    fail_msg: "{{ kvm.kvm_host.verdict.reasons | map(attribute='fix') | join(' ') }}"

- name: Demand nested virtualization and 512 hugepages of 2M
  virtfleet.kubevirt.kvm_host_info:
    require_nested: true
    require_hugepages:
      2M: 512
  become: true
'''

RETURN = r'''
kvm_host:
  description: Everything found on the node, and the verdict.
  returned: always
  type: dict
  contains:
    verdict:
      description: Whether KVM is usable for KubeVirt, each reason with its fix, and warnings that do not block.
      type: dict
      sample:
        kvm_usable: false
        reasons:
          - check: cpu_virtualization
            reason: The CPU does not expose hardware virtualization (no vmx or svm flag in /proc/cpuinfo).
            fix: Enable AMD-V (SVM) in the firmware (BIOS/UEFI) setup and power-cycle the node; otherwise ...
        warnings: []
    cpu:
      description: CPU vendor (C(intel), C(amd) or null), C(vendor_id), C(model_name), C(virtualization_flags)
        (C(vmx)/C(svm)), whether the node is itself a VM (C(hypervisor)) and the KVM C(vendor_module).
      type: dict
      sample: {vendor: amd, vendor_id: AuthenticAMD, virtualization_flags: [svm], hypervisor: true, vendor_module: kvm_amd}
    dev_kvm:
      description: C(/dev/kvm) state. C(registered) means the kernel registered the device; C(accessible) means it
        opened read-write and answered KVM_GET_API_VERSION (C(api_version)); C(mode), C(uid), C(gid), C(group),
        C(world_accessible), C(open_error).
      type: dict
    vhost_net:
      description: C(/dev/vhost-net) state (C(exists), C(registered), C(mode)).
      type: dict
    tun:
      description: C(/dev/net/tun) state (C(exists), C(registered), C(mode)).
      type: dict
    modules:
      description: Per watched module (kvm, kvm_intel, kvm_amd, vhost_net, vhost, tun, vhost_vsock, vfio, vfio_pci,
        vfio_iommu_type1) C(loaded), C(builtin), C(refcount), C(used_by).
      type: dict
    nested:
      description: Nested virtualization of the vendor module, C(enabled) (null when the module is not loaded),
        the C(raw) parameter value and the value C(configured) in modprobe.d (null when not set).
      type: dict
      sample: {module: kvm_amd, raw: '1', enabled: true, configured: null}
    iommu:
      description: C(enabled), IOMMU C(units), IOMMU-related C(kernel_args), C(group_count) and C(groups)
        (group number -> PCI addresses).
      type: dict
    hugepages:
      description: C(sizes) maps C(<n>kB) to C(size_kb), C(total) and C(free); C(kernel_args) lists hugepage
        arguments of the running kernel.
      type: dict
      sample: {sizes: {2048kB: {size_kb: 2048, total: 512, free: 512}}, kernel_args: []}
    security:
      description: C(apparmor) (C(enabled), libvirt/qemu C(virt_profiles), C(libvirtd_profile_file)) and
        C(selinux) (C(enabled), C(mode)).
      type: dict
    libvirt:
      description: Host libvirt C(daemon_installed), C(daemon_running) and tool C(paths) (libvirtd, virtqemud,
        virsh, virt-host-validate, kvm-ok; null when absent).
      type: dict
    validation:
      description: C(virt-host-validate qemu) C(ran), C(rc) (1 on warnings too), parsed C(results)
        (C(driver), C(check), C(result) PASS/WARN/FAIL/NOTE, C(hint)) and C(counts) per result.
      type: dict
    vms:
      description: C(running) is true when a process holds a KVM VM, a hypervisor process runs, or the vendor
        module is in use; with C(kvm_vm_holders), C(hypervisor_processes), C(vendor_module_refcount).
      type: dict
    os:
      description: C(id), C(id_like) and C(version_id) from os-release.
      type: dict
    kernel:
      description: Running kernel release.
      type: str
    kernel_cmdline:
      description: Running kernel command line, split into arguments.
      type: list
      elements: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtfleet.kubevirt.plugins.module_utils._kvm_host import (
    HostProbe,
    ProbeError,
    hugepage_size_kb,
    parse_validate_output,
    verdict,
)


def run_validation(module, path):
    """Run virt-host-validate qemu; rc 1 with WARN lines is normal, so the lines decide."""
    if not path:
        return {'ran': False, 'rc': None, 'results': [], 'counts': {}, 'error': None}
    rc, out, err = module.run_command([path, 'qemu'], environ_update={'LC_ALL': 'C', 'LANG': 'C'})
    results = parse_validate_output(out)
    counts = {}
    for item in results:
        counts[item['result']] = counts.get(item['result'], 0) + 1
    error = None
    if not results:
        error = 'virt-host-validate printed no result lines (rc=%s): %s' % (rc, (err or out).strip()[:500])
    return {'ran': True, 'rc': rc, 'results': results, 'counts': counts, 'error': error}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            require_vhost_net=dict(type='bool', default=True),
            require_tun=dict(type='bool', default=True),
            require_nested=dict(type='bool', default=False),
            require_iommu=dict(type='bool', default=False),
            require_hugepages=dict(type='dict', default={}),
            virt_host_validate=dict(type='bool', default=True),
        ),
        supports_check_mode=True,
    )
    params = module.params
    hugepages = params['require_hugepages'] or {}
    for size, count in hugepages.items():
        try:
            hugepage_size_kb(size)
        except ProbeError as exc:
            module.fail_json(msg='require_hugepages: %s; use keys like 2M or 1G.' % exc)
        if not str(count).isdigit():
            module.fail_json(msg='require_hugepages: the count for %s must be a whole number, got %r.' % (size, count))

    probe = HostProbe()
    facts = probe.collect()
    validation = {'ran': False, 'rc': None, 'results': [], 'counts': {}, 'error': None}
    if params['virt_host_validate']:
        validation = run_validation(module, facts['libvirt']['paths'].get('virt-host-validate'))
    facts['validation'] = validation
    facts['verdict'] = verdict(
        facts,
        require_vhost_net=params['require_vhost_net'],
        require_tun=params['require_tun'],
        require_nested=params['require_nested'],
        require_iommu=params['require_iommu'],
        require_hugepages=dict((k, int(v)) for k, v in hugepages.items()),
        validation=validation,
    )
    module.exit_json(changed=False, kvm_host=facts)


if __name__ == '__main__':
    main()
