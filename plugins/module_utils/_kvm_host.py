# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Read-only probe of a Linux node's KVM readiness, and the verdict built from it.

Everything reads files below ``root`` (``/`` on a real node, a fake tree in unit tests) and never
writes, loads modules or opens devices in a way that changes state, so the module can promise full
check mode. The only device opened is ``/dev/kvm`` when the kernel has registered it (opening an
unregistered static node would make the kernel autoload ``kvm``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import re

KVM_GET_API_VERSION = 0xAE00

VENDOR_MODULES = {'intel': 'kvm_intel', 'amd': 'kvm_amd'}
VENDOR_FLAGS = {'intel': 'vmx', 'amd': 'svm'}
# Modules the module reports on; "kvm" plus the vendor module create /dev/kvm.
WATCHED_MODULES = ('kvm', 'kvm_intel', 'kvm_amd', 'vhost_net', 'vhost', 'tun', 'vhost_vsock',
                   'vfio', 'vfio_pci', 'vfio_iommu_type1')
# Process names of hypervisors that may hold KVM VMs without us seeing an fd (e.g. hidden /proc).
HYPERVISOR_COMMS = re.compile(r'^(qemu-system-.*|qemu-kvm|virt-launcher|cloud-hypervisor|firecracker|crosvm)$')

VALIDATE_LINE = re.compile(r'^\s*(?P<driver>[A-Za-z]+):\s*Checking\s+(?P<check>.*?)\s*:\s*'
                           r'(?P<result>PASS|WARN|FAIL|NOTE)(?:\s*\((?P<hint>.*)\))?\s*$')

_SIZE_UNITS = {'k': 1, 'kb': 1, 'kib': 1, 'm': 1024, 'mb': 1024, 'mi': 1024, 'mib': 1024,
               'g': 1024 * 1024, 'gb': 1024 * 1024, 'gi': 1024 * 1024, 'gib': 1024 * 1024}


class ProbeError(Exception):
    """Bad input to the probe (raised for option values, never for node state)."""


def hugepage_size_kb(size):
    """'2M', '2Mi', '1G', '2048kB', 2048 -> size in kB; ProbeError on anything else."""
    if isinstance(size, int) and not isinstance(size, bool):
        return size
    match = re.match(r'^\s*(\d+)\s*([A-Za-z]*)\s*$', str(size))
    if not match or (match.group(2) and match.group(2).lower() not in _SIZE_UNITS):
        raise ProbeError("hugepage size %r is not a size like 2M, 1G or 2048kB" % (size,))
    unit = match.group(2).lower() or 'kb'
    return int(match.group(1)) * _SIZE_UNITS[unit]


def parse_validate_output(text):
    """Parse ``virt-host-validate`` output into a list of {driver, check, result, hint}.

    Its exit code is 1 on warnings too, so callers must read these lines, not the code.
    """
    results = []
    for line in (text or '').splitlines():
        # Colour codes appear only on a tty, but strip them anyway.
        line = re.sub(r'\x1b\[[0-9;]*m', '', line)
        match = VALIDATE_LINE.match(line)
        if match:
            results.append({'driver': match.group('driver'), 'check': match.group('check'),
                            'result': match.group('result'), 'hint': match.group('hint') or ''})
    return results


def _default_open_kvm(path):
    """Open /dev/kvm read-write and ask the API version; returns (accessible, error, api_version)."""
    import fcntl  # pylint: disable=import-outside-toplevel
    try:
        fd = os.open(path, os.O_RDWR | getattr(os, 'O_CLOEXEC', 0))
    except OSError as exc:
        return False, '%s: %s' % (errno.errorcode.get(exc.errno, exc.errno), exc.strerror), None
    try:
        return True, None, fcntl.ioctl(fd, KVM_GET_API_VERSION, 0)
    except OSError as exc:
        return False, 'ioctl KVM_GET_API_VERSION: %s' % exc.strerror, None
    finally:
        os.close(fd)


class HostProbe:
    """Collects facts from a node's /proc, /sys, /dev and /etc below ``root``."""

    def __init__(self, root='/', open_kvm=None, stat=os.stat, which=None):
        self.root = root
        self._open_kvm = open_kvm or _default_open_kvm
        self._stat = stat
        self._which = which

    def path(self, *parts):
        return os.path.join(self.root, *[p.lstrip('/') for p in parts])

    def read(self, *parts):
        try:
            with open(self.path(*parts), 'r', errors='replace') as handle:
                return handle.read()
        except (IOError, OSError):
            return None

    def exists(self, *parts):
        return os.path.lexists(self.path(*parts))

    def listdir(self, *parts):
        try:
            return sorted(os.listdir(self.path(*parts)))
        except (IOError, OSError):
            return []

    def which(self, name, dirs=('/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin',
                                '/usr/libexec')):
        if self._which:
            return self._which(name)
        for directory in dirs:
            candidate = self.path(directory, name)
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                return os.path.join(directory, name)
        return None

    # -- individual areas -------------------------------------------------------------------------

    def cpu(self):
        text = self.read('/proc/cpuinfo') or ''
        vendor_id, model, flags = None, None, set()
        for line in text.splitlines():
            key, dummy, value = line.partition(':')
            key = key.strip()
            if key == 'vendor_id' and vendor_id is None:
                vendor_id = value.strip()
            elif key == 'model name' and model is None:
                model = value.strip()
            elif key == 'flags' and not flags:
                flags = set(value.split())
        vendor = {'GenuineIntel': 'intel', 'AuthenticAMD': 'amd', 'HygonGenuine': 'amd'}.get(vendor_id)
        virt_flags = sorted(flags & {'vmx', 'svm'})
        if vendor is None and virt_flags:
            vendor = 'intel' if 'vmx' in virt_flags else 'amd'
        return {
            'vendor_id': vendor_id,
            'vendor': vendor,
            'model_name': model,
            'virtualization_flags': virt_flags,
            'hypervisor': 'hypervisor' in flags,
            'vendor_module': VENDOR_MODULES.get(vendor),
        }

    def modules(self):
        """Loaded modules of interest: name -> {loaded, refcount, used_by, builtin}."""
        loaded = {}
        for line in (self.read('/proc/modules') or '').splitlines():
            fields = line.split()
            if len(fields) >= 3:
                used_by = [u for u in fields[3].strip(',').split(',') if u and u != '-'] if len(fields) > 3 else []
                loaded[fields[0]] = {'refcount': int(fields[2]) if fields[2].isdigit() else 0, 'used_by': used_by}
        release = (self.read('/proc/sys/kernel/osrelease') or '').strip()
        builtin = set()
        for line in (self.read('/lib/modules', release, 'modules.builtin') or '').splitlines():
            builtin.add(os.path.basename(line.strip())[:-3].replace('-', '_'))
        result = {}
        for name in WATCHED_MODULES:
            info = loaded.get(name)
            result[name] = {
                'loaded': info is not None or name in builtin,
                'builtin': name in builtin,
                'refcount': info['refcount'] if info else 0,
                'used_by': info['used_by'] if info else [],
            }
        return result

    def char_device(self, name, misc_name):
        """State of a /dev node and whether the kernel registered the misc device behind it."""
        path = self.path('/dev', name)
        info = {'path': '/dev/' + name, 'exists': False, 'is_char_device': False,
                'registered': self.exists('/sys/class/misc', misc_name), 'mode': None, 'uid': None, 'gid': None}
        try:
            st = self._stat(path)
        except OSError:
            return info
        import stat as stat_mod  # pylint: disable=import-outside-toplevel
        info.update({'exists': True, 'is_char_device': stat_mod.S_ISCHR(st.st_mode),
                     'mode': '%04o' % stat_mod.S_IMODE(st.st_mode), 'uid': st.st_uid, 'gid': st.st_gid})
        return info

    def group_name(self, gid):
        for line in (self.read('/etc/group') or '').splitlines():
            fields = line.split(':')
            if len(fields) >= 3 and fields[2] == str(gid):
                return fields[0]
        return None

    def dev_kvm(self):
        info = self.char_device('kvm', 'kvm')
        info['group'] = self.group_name(info['gid']) if info['gid'] is not None else None
        info['world_accessible'] = bool(info['mode']) and (int(info['mode'], 8) & 0o006) == 0o006
        info['accessible'] = False
        info['open_error'] = None
        info['api_version'] = None
        if info['is_char_device'] and info['registered']:
            ok, error, version = self._open_kvm(self.path('/dev/kvm'))
            info.update({'accessible': ok, 'open_error': error, 'api_version': version})
        elif info['exists']:
            info['open_error'] = 'not registered by the kernel (kvm vendor module not loaded)'
        return info

    def nested(self, vendor_module):
        values = {}
        for module in ('kvm_intel', 'kvm_amd'):
            raw = self.read('/sys/module', module, 'parameters/nested')
            if raw is not None:
                values[module] = raw.strip()
        raw = values.get(vendor_module) if vendor_module else None
        return {
            'module': vendor_module,
            'raw': raw,
            'enabled': None if raw is None else raw in ('Y', 'y', '1'),
            'configured': self.modprobe_option(vendor_module, 'nested') if vendor_module else None,
        }

    def modprobe_option(self, module, option):
        """Last value of ``options <module> <option>=`` in /etc/modprobe.d, /run/modprobe.d, /usr/lib/modprobe.d."""
        if not module:
            return None
        wanted = {module, module.replace('_', '-')}
        value = None
        for directory in ('/usr/lib/modprobe.d', '/lib/modprobe.d', '/run/modprobe.d', '/etc/modprobe.d'):
            for name in self.listdir(directory):
                if not name.endswith('.conf'):
                    continue
                for line in (self.read(directory, name) or '').splitlines():
                    fields = line.split('#', 1)[0].split()
                    if len(fields) >= 3 and fields[0] == 'options' and fields[1] in wanted:
                        for item in fields[2:]:
                            key, dummy, val = item.partition('=')
                            if key == option:
                                value = val
        return value

    def cmdline(self):
        return (self.read('/proc/cmdline') or '').split()

    def iommu(self, cmdline):
        groups = {}
        for group in self.listdir('/sys/kernel/iommu_groups'):
            groups[group] = self.listdir('/sys/kernel/iommu_groups', group, 'devices')
        args = [a for a in cmdline if a.split('=', 1)[0] in ('intel_iommu', 'amd_iommu', 'iommu', 'vfio-pci.ids')]
        return {
            'enabled': bool(self.listdir('/sys/class/iommu')) or bool(groups),
            'units': self.listdir('/sys/class/iommu'),
            'kernel_args': args,
            'group_count': len(groups),
            'groups': groups,
        }

    def hugepages(self, cmdline):
        sizes = {}
        for entry in self.listdir('/sys/kernel/mm/hugepages'):
            match = re.match(r'^hugepages-(\d+)kB$', entry)
            if not match:
                continue

            def num(name, entry=entry):
                raw = self.read('/sys/kernel/mm/hugepages', entry, name)
                return int(raw.strip()) if raw and raw.strip().isdigit() else 0
            sizes['%skB' % match.group(1)] = {'size_kb': int(match.group(1)), 'total': num('nr_hugepages'),
                                              'free': num('free_hugepages')}
        args = [a for a in cmdline if a.split('=', 1)[0] in ('hugepagesz', 'hugepages', 'default_hugepagesz')]
        return {'sizes': sizes, 'kernel_args': args}

    def security(self):
        apparmor_raw = (self.read('/sys/module/apparmor/parameters/enabled') or '').strip()
        profiles = []
        for line in (self.read('/sys/kernel/security/apparmor/profiles') or '').splitlines():
            name = line.rsplit(' (', 1)[0].strip()
            if 'libvirt' in name or 'qemu' in name:
                profiles.append(line.strip())
        selinux_present = self.exists('/sys/fs/selinux/enforce')
        enforce = (self.read('/sys/fs/selinux/enforce') or '').strip()
        return {
            'apparmor': {'enabled': apparmor_raw == 'Y', 'virt_profiles': profiles,
                         'libvirtd_profile_file': self.exists('/etc/apparmor.d/usr.sbin.libvirtd')},
            'selinux': {'enabled': selinux_present,
                        'mode': ('enforcing' if enforce == '1' else 'permissive') if selinux_present else 'disabled'},
        }

    def processes(self):
        """PIDs holding a KVM VM (an anon_inode:kvm-vm fd) and hypervisor processes by name."""
        holders, hypervisors = [], []
        for pid in self.listdir('/proc'):
            if not pid.isdigit():
                continue
            comm = (self.read('/proc', pid, 'comm') or '').strip()
            if HYPERVISOR_COMMS.match(comm):
                hypervisors.append({'pid': int(pid), 'comm': comm})
            for fd in self.listdir('/proc', pid, 'fd'):
                try:
                    target = os.readlink(self.path('/proc', pid, 'fd', fd))
                except OSError:
                    continue
                if target == 'anon_inode:kvm-vm':
                    holders.append({'pid': int(pid), 'comm': comm})
                    break
        return holders, hypervisors

    def libvirt(self):
        binaries = {name: self.which(name) for name in ('libvirtd', 'virtqemud', 'virsh', 'virt-host-validate', 'kvm-ok')}
        running = []
        for pid in self.listdir('/proc'):
            if pid.isdigit() and (self.read('/proc', pid, 'comm') or '').strip() in ('libvirtd', 'virtqemud'):
                running.append((self.read('/proc', pid, 'comm') or '').strip())
        return {
            'daemon_installed': bool(binaries['libvirtd'] or binaries['virtqemud']),
            'daemon_running': sorted(set(running)),
            'paths': binaries,
        }

    def os_release(self):
        data = {}
        for line in (self.read('/etc/os-release') or self.read('/usr/lib/os-release') or '').splitlines():
            key, sep, value = line.partition('=')
            if sep:
                data[key.strip()] = value.strip().strip('"\'')
        return {'id': data.get('ID'), 'id_like': data.get('ID_LIKE', '').split(), 'version_id': data.get('VERSION_ID')}

    def collect(self):
        """All facts as one dict (no verdict)."""
        cpu = self.cpu()
        cmdline = self.cmdline()
        modules = self.modules()
        holders, hypervisors = self.processes()
        vendor_module = cpu['vendor_module']
        vendor_refs = modules[vendor_module]['refcount'] if vendor_module else 0
        return {
            'os': self.os_release(),
            'kernel': (self.read('/proc/sys/kernel/osrelease') or '').strip(),
            'kernel_cmdline': cmdline,
            'cpu': cpu,
            'modules': modules,
            'dev_kvm': self.dev_kvm(),
            'vhost_net': self.char_device('vhost-net', 'vhost-net'),
            'tun': self.char_device('net/tun', 'tun'),
            'nested': self.nested(vendor_module),
            'iommu': self.iommu(cmdline),
            'hugepages': self.hugepages(cmdline),
            'security': self.security(),
            'libvirt': self.libvirt(),
            'vms': {
                'running': bool(holders) or bool(hypervisors) or vendor_refs > 0,
                'kvm_vm_holders': holders,
                'hypervisor_processes': hypervisors,
                'vendor_module_refcount': vendor_refs,
            },
        }


def _reason(check, reason, fix):
    return {'check': check, 'reason': reason, 'fix': fix}


def verdict(facts, require_vhost_net=True, require_tun=True, require_nested=False, require_iommu=False,
            require_hugepages=None, validation=None):
    """Decide whether KVM is usable for KubeVirt on this node; every reason comes with its fix."""
    reasons, warnings = [], []
    cpu = facts['cpu']
    vendor = cpu['vendor']
    vendor_module = cpu['vendor_module'] or 'kvm_intel or kvm_amd'
    flag = VENDOR_FLAGS.get(vendor, 'vmx/svm')
    dev = facts['dev_kvm']
    modules = facts['modules']

    if not cpu['virtualization_flags']:
        where = ('this node is itself a VM: give it a CPU model with %s (enable nested virtualization on its host)' % flag
                 if cpu['hypervisor'] else 'enable %s in the firmware (BIOS/UEFI) setup and power-cycle the node' %
                 ('Intel VT-x' if vendor == 'intel' else 'AMD-V (SVM)' if vendor == 'amd' else 'VT-x/AMD-V'))
        reasons.append(_reason(
            'cpu_virtualization',
            'The CPU does not expose hardware virtualization (no vmx or svm flag in /proc/cpuinfo).',
            where[0].upper() + where[1:] + '; otherwise run KubeVirt with software emulation '
            '(spec.configuration.developerConfiguration.useEmulation: true).'))
    else:
        if not modules.get('kvm', {}).get('loaded') or not modules.get(cpu['vendor_module'] or '', {}).get('loaded'):
            missing = [m for m in ('kvm', cpu['vendor_module']) if m and not modules.get(m, {}).get('loaded')]
            reasons.append(_reason(
                'kvm_modules',
                'Kernel module(s) %s not loaded.' % ', '.join(missing),
                'Load them with "modprobe %s" and persist them in /etc/modules-load.d (role virtfleet.kubevirt.kvm_host '
                'does both); if modprobe fails, check dmesg: the firmware may have virtualization disabled.' % vendor_module))
        if not dev['exists'] or not dev['is_char_device'] or not dev['registered']:
            reasons.append(_reason(
                'dev_kvm',
                '/dev/kvm does not exist.' if not dev['exists'] else
                '/dev/kvm is not a character device.' if not dev['is_char_device'] else
                '/dev/kvm exists but the kernel has not registered KVM (%s not loaded or failed to initialise).'
                % vendor_module,
                'Load %s (modprobe %s); if it fails, check dmesg for "disabled by bios" and enable %s in the firmware.'
                % (vendor_module, vendor_module, flag)))
        elif not dev['accessible']:
            reasons.append(_reason(
                'dev_kvm_access',
                '/dev/kvm cannot be opened read-write (%s).' % dev['open_error'],
                'Give /dev/kvm mode 0666 with a udev rule (role variable kvm_host_dev_kvm_mode) and check that no '
                'security policy denies it.'))
    if dev['exists'] and dev['mode'] and not dev['world_accessible']:
        warnings.append(_reason(
            'dev_kvm_mode',
            '/dev/kvm has mode %s (group %s); non-root QEMU in virt-launcher pods may be refused.'
            % (dev['mode'], dev.get('group') or dev['gid']),
            'Set kvm_host_dev_kvm_mode: "0666" in role virtfleet.kubevirt.kvm_host (udev rule).'))

    for name, key, required, module, fix_extra in (
            ('vhost_net', 'vhost_net', require_vhost_net, 'vhost_net', 'VMs with virtio NICs fail to start without it '
             'unless KubeVirt runs with useEmulation'),
            ('tun', 'tun', require_tun, 'tun', 'pod networking of VMs needs /dev/net/tun')):
        device = facts[key]
        if device['registered'] or modules.get(module, {}).get('loaded'):
            continue
        entry = _reason(name, 'Module %s is not loaded (%s is not registered); %s.' % (module, device['path'], fix_extra),
                        'Load it with "modprobe %s" and persist it in /etc/modules-load.d (role kvm_host does both).'
                        % module)
        (reasons if required else warnings).append(entry)

    nested = facts['nested']
    if nested['enabled'] is False:
        entry = _reason('nested', 'Nested virtualization is disabled (%s nested=%s).' % (nested['module'], nested['raw']),
                        'Set kvm_host_nested: true in role kvm_host (writes /etc/modprobe.d and reloads %s when no VM '
                        'runs, otherwise after a reboot).' % nested['module'])
        (reasons if require_nested else warnings).append(entry)
    elif require_nested and nested['enabled'] is None:
        reasons.append(_reason('nested', 'Nested virtualization state is unknown: %s is not loaded.' % vendor_module,
                               'Load %s first.' % vendor_module))

    iommu = facts['iommu']
    if not iommu['enabled']:
        arg = 'intel_iommu=on' if vendor == 'intel' else 'amd_iommu=on' if vendor == 'amd' else 'intel_iommu=on/amd_iommu=on'
        entry = _reason('iommu', 'IOMMU is not enabled (no /sys/class/iommu units, no IOMMU groups); PCI passthrough '
                        'will not work.',
                        'Enable VT-d/AMD-Vi in the firmware and add %s iommu=pt to the kernel command line '
                        '(role kvm_host: kvm_host_iommu: true, then reboot).' % arg)
        (reasons if require_iommu else warnings).append(entry)

    for size, wanted in sorted((require_hugepages or {}).items()):
        size_kb = hugepage_size_kb(size)
        have = facts['hugepages']['sizes'].get('%dkB' % size_kb)
        if have is None:
            reasons.append(_reason('hugepages', 'The kernel does not offer %s hugepages.' % size,
                                   'Use a page size listed in /sys/kernel/mm/hugepages (2M on x86; 1G needs pdpe1gb).'))
        elif have['total'] < int(wanted):
            reasons.append(_reason('hugepages', '%d of %s required %s hugepages are allocated.' % (have['total'], wanted, size),
                                   'Set kvm_host_hugepages in role kvm_host (1G pages: kvm_host_hugepages_method: '
                                   'kernel_cmdline and reboot); restart kubelet afterwards so it reports them.'))

    libvirt = facts['libvirt']
    apparmor = facts['security']['apparmor']
    if libvirt['daemon_installed'] and apparmor['enabled']:
        warnings.append(_reason(
            'host_libvirt', 'A host libvirt daemon is installed and AppArmor is enabled; its profile can block QEMU '
            'inside virt-handler/virt-launcher ("failed to get emulator capabilities").',
            'Remove the host libvirt packages (KubeVirt brings its own), or add "/usr/libexec/qemu-kvm PUx," to '
            '/etc/apparmor.d/usr.sbin.libvirtd and run apparmor_parser -r.'))
    elif libvirt['daemon_installed']:
        warnings.append(_reason('host_libvirt', 'A host libvirt daemon is installed; KubeVirt does not need it.',
                                'Remove it unless something else on the node uses it.'))

    covered = {r['check'] for r in reasons}
    for item in (validation or {}).get('results', []):
        if item['result'] != 'FAIL':
            continue
        check = item['check'].lower()
        if ('hardware virtualization' in check and 'cpu_virtualization' in covered) or \
                ('/dev/kvm' in check and covered & {'cpu_virtualization', 'kvm_modules', 'dev_kvm', 'dev_kvm_access'}) or \
                ('/dev/net/tun' in check and 'tun' in covered):
            continue
        reasons.append(_reason('virt_host_validate', 'virt-host-validate: %s: FAIL' % item['check'],
                               item['hint'] or 'See virt-host-validate qemu output.'))

    return {'kvm_usable': not reasons, 'reasons': reasons, 'warnings': warnings}
