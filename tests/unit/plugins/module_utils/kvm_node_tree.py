"""Build fake node trees (/proc, /sys, /dev, /etc) for the kvm_host_info probe tests."""
import os
import stat

CPUINFO = """processor\t: 0
vendor_id\t: {vendor_id}
model name\t: {model}
flags\t\t: fpu vme de pse tsc msr {flags}

processor\t: 1
vendor_id\t: {vendor_id}
flags\t\t: fpu vme de pse tsc msr {flags}
"""


class FakeNode:
    """A node description written into a directory; ``probe_kwargs`` feed HostProbe."""

    def __init__(self, root, vendor_id='AuthenticAMD', flags=('svm', 'hypervisor'), modules=('kvm', 'kvm_amd'),
                 dev_kvm_mode=0o660, dev_kvm=True, registered=('kvm',), nested=None, open_error=None):
        self.root = str(root)
        self.dev_modes = {}
        self.open_error = open_error
        self.opened = []
        self.write('/proc/cpuinfo', CPUINFO.format(vendor_id=vendor_id, model='Test CPU', flags=' '.join(flags)))
        self.write('/proc/sys/kernel/osrelease', '6.1.0-test\n')
        self.write('/proc/cmdline', 'root=LABEL=debvm rw console=ttyS0\n')
        self.write('/etc/group', 'root:x:0:\nkvm:x:103:\n')
        self.write('/etc/os-release', 'ID=debian\nVERSION_ID="12"\n')
        self.set_modules(modules)
        for name in registered:
            os.makedirs(self.path('/sys/class/misc/' + name), exist_ok=True)
        if dev_kvm:
            self.add_dev('kvm', dev_kvm_mode)
        for module, value in (nested or {}).items():
            self.write('/sys/module/%s/parameters/nested' % module, value + '\n')
        os.makedirs(self.path('/sys/kernel/mm/hugepages/hugepages-2048kB'), exist_ok=True)
        self.set_hugepages('2048kB', 0, 0)

    def path(self, p):
        return os.path.join(self.root, p.lstrip('/'))

    def write(self, p, text):
        full = self.path(p)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, 'w') as handle:
            handle.write(text)

    def set_modules(self, modules, refcounts=None):
        refcounts = refcounts or {}
        lines = []
        for name in modules:
            used = {'kvm': 'kvm_amd,' if 'kvm_amd' in modules else 'kvm_intel,' if 'kvm_intel' in modules else '-'}.get(name, '-')
            lines.append('%s 16384 %d %s Live 0x0' % (name, refcounts.get(name, 1 if name == 'kvm' else 0), used))
        self.write('/proc/modules', '\n'.join(lines) + '\n')

    def set_hugepages(self, size, total, free):
        self.write('/sys/kernel/mm/hugepages/hugepages-%s/nr_hugepages' % size, '%d\n' % total)
        self.write('/sys/kernel/mm/hugepages/hugepages-%s/free_hugepages' % size, '%d\n' % free)

    def add_dev(self, name, mode, gid=103):
        self.write('/dev/' + name, '')
        self.dev_modes[self.path('/dev/' + name)] = (stat.S_IFCHR | mode, gid)

    def stat(self, path):
        if path in self.dev_modes:
            mode, gid = self.dev_modes[path]
            return os.stat_result((mode, 0, 0, 1, 0, gid, 0, 0, 0, 0))
        return os.stat(path)

    def open_kvm(self, path):
        self.opened.append(path)
        if self.open_error:
            return False, self.open_error, None
        return True, None, 12

    def add_process(self, pid, comm, fds=()):
        self.write('/proc/%d/comm' % pid, comm + '\n')
        os.makedirs(self.path('/proc/%d/fd' % pid), exist_ok=True)
        for number, target in enumerate(fds):
            os.symlink(target, self.path('/proc/%d/fd/%d' % (pid, number)))

    def add_tool(self, name, directory='/usr/bin'):
        self.write(directory + '/' + name, '#!/bin/sh\n')
        os.chmod(self.path(directory + '/' + name), 0o755)

    def probe_kwargs(self):
        return {'root': self.root, 'open_kvm': self.open_kvm, 'stat': self.stat}
