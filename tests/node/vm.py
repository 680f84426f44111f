"""Boot the Debian test image with QEMU (TCG only), reach it over SSH on a forwarded 127.0.0.1 port.

Every VM runs with -snapshot: guest writes (and reboots inside the same QEMU) persist for the life of that
QEMU process only, so the cached image stays pristine and each boot starts fresh. QEMU processes are
tracked and stopped by PID.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
IMAGE_DIR = Path(os.environ.get('VIRTFLEET_NODE_IMAGE_DIR', REPO / '.build' / 'node-image'))
ANSIBLE_BIN = Path(sys.executable).parent


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


class QemuVM:
    """One QEMU TCG guest booted from the cached image."""

    def __init__(self, name, workdir, cpu='max', memory_mb=1024, image_dir=IMAGE_DIR):
        self.name = name
        self.workdir = Path(workdir)
        self.cpu = cpu
        self.memory_mb = memory_mb
        self.image_dir = Path(image_dir)
        self.key = self.image_dir / 'id_ed25519'
        self.port = None
        self.proc = None
        self.console = self.workdir / ('%s-console.log' % name)

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self):
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        label = (self.image_dir / 'label').read_text().strip()
        argv = [
            'qemu-system-x86_64', '-accel', 'tcg', '-cpu', self.cpu, '-smp', '1', '-m', str(self.memory_mb),
            '-nographic', '-monitor', 'none', '-serial', 'file:%s' % self.console,
            '-kernel', str(self.image_dir / 'vmlinuz'), '-initrd', str(self.image_dir / 'initrd.img'),
            '-append', 'root=LABEL=%s rw console=ttyS0' % label,
            '-drive', 'media=disk,format=raw,if=virtio,cache=unsafe,file=%s' % (self.image_dir / 'rootfs.ext4'),
            '-snapshot',
            '-netdev', 'user,id=net0,hostfwd=tcp:127.0.0.1:%d-:22' % self.port,
            '-device', 'virtio-net-pci,netdev=net0', '-device', 'virtio-rng-pci',
        ]
        log = open(self.workdir / ('%s-qemu.log' % self.name), 'wb')
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        return self

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=15)

    def ssh_argv(self, command):
        return ['ssh', '-i', str(self.key), '-p', str(self.port), '-o', 'BatchMode=yes',
                '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR',
                '-o', 'ConnectTimeout=10', 'root@127.0.0.1', command]

    def ssh(self, command, check=True, timeout=120):
        result = subprocess.run(self.ssh_argv(command), check=False, capture_output=True, text=True, timeout=timeout,
                                stdin=subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise AssertionError('ssh %s: %r failed (%d): %s%s' % (self.name, command, result.returncode,
                                                                   result.stdout, result.stderr))
        return result

    def wait_ssh(self, timeout=300):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError('QEMU for %s exited (%s); see %s' % (self.name, self.proc.returncode, self.console))
            try:
                if self.ssh('true', check=False, timeout=20).returncode == 0:
                    return
            except subprocess.TimeoutExpired:
                pass
            time.sleep(3)
        raise AssertionError('%s: no SSH within %ss; console log: %s' % (self.name, timeout, self.console))

    def boot_id(self):
        return self.ssh('cat /proc/sys/kernel/random/boot_id').stdout.strip()

    def reboot(self, timeout=300):
        """Reboot the guest (same QEMU, so -snapshot data survives) and wait until it is back."""
        before = self.boot_id()
        self.ssh('systemctl reboot', check=False, timeout=30)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(5)
            try:
                result = self.ssh('cat /proc/sys/kernel/random/boot_id', check=False, timeout=20)
            except subprocess.TimeoutExpired:
                continue
            if result.returncode == 0 and result.stdout.strip() not in ('', before):
                # systemd-modules-load and udev finish before ssh is reachable, but be explicit.
                self.ssh('systemctl is-system-running --wait || true', check=False, timeout=120)
                return
        raise AssertionError('%s did not come back from reboot within %ss' % (self.name, timeout))

    def read(self, path):
        return self.ssh('cat %s' % path).stdout

    # -- ansible ------------------------------------------------------------------------------------

    def inventory(self):
        path = self.workdir / ('%s-inventory.ini' % self.name)
        path.write_text(
            '[kubevirt_nodes]\n%s ansible_host=127.0.0.1 ansible_port=%d ansible_user=root '
            'ansible_ssh_private_key_file=%s ansible_python_interpreter=/usr/bin/python3 '
            'ansible_ssh_common_args="-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"\n'
            % (self.name, self.port, self.key))
        return path

    def ansible_env(self):
        env = dict(os.environ)
        env.update({
            'ANSIBLE_COLLECTIONS_PATH': str(REPO / '.build' / 'collections'),
            'ANSIBLE_STDOUT_CALLBACK': 'results_json',
            'ANSIBLE_CALLBACK_PLUGINS': str(REPO / 'tests' / 'node' / 'callback_plugins'),
            'ANSIBLE_HOST_KEY_CHECKING': 'False',
            'ANSIBLE_PIPELINING': 'True',
            'ANSIBLE_RETRY_FILES_ENABLED': 'False',
            'ANSIBLE_NOCOLOR': '1',
            # Each VM gets its own control sockets, so two guests on one port number never mix.
            'ANSIBLE_SSH_CONTROL_PATH_DIR': str(self.workdir / ('%s-cp' % self.name)),
            'ANSIBLE_LOCAL_TEMP': str(self.workdir / ('%s-tmp' % self.name)),
        })
        return env

    def playbook(self, playbook, extra_vars=None, check=False, timeout=600):
        argv = [str(ANSIBLE_BIN / 'ansible-playbook'), '-i', str(self.inventory()), str(playbook),
                '-e', json.dumps(dict({'virtfleet_node_hosts': self.name}, **(extra_vars or {})))]
        if check:
            argv.append('--check')
        result = subprocess.run(argv, check=False, capture_output=True, text=True, env=self.ansible_env(), timeout=timeout,
                                stdin=subprocess.DEVNULL, cwd=str(REPO))
        return PlaybookRun(self.name, argv, result)


class PlaybookRun:
    """Parsed output of ansible-playbook with the json stdout callback."""

    def __init__(self, host, argv, completed):
        self.host = host
        self.argv = argv
        self.rc = completed.returncode
        self.stderr = completed.stderr
        try:
            self.data = json.loads(completed.stdout[completed.stdout.index('{'):])
        except ValueError as exc:
            raise AssertionError('ansible-playbook printed no JSON (rc %d): %s\n%s'
                                 % (self.rc, completed.stdout[-3000:], completed.stderr[-3000:])) from exc

    @property
    def stats(self):
        return self.data['stats'][self.host]

    def tasks(self):
        for play in self.data['plays']:
            for task in play['tasks']:
                result = task['hosts'].get(self.host)
                if result is not None:
                    yield task['task']['name'], result

    def result(self, name):
        """Result of the last task whose name ends with ``name``."""
        found = [res for task_name, res in self.tasks() if task_name.endswith(name)]
        if not found:
            raise AssertionError('task %r not in run; tasks: %s' % (name, [task[0] for task in self.tasks()]))
        return found[-1]

    def changed_tasks(self):
        names = []
        for name, res in self.tasks():
            items = res.get('results') or [res]
            if any(i.get('changed') for i in items):
                names.append(name)
        return names

    def facts(self):
        return self.result('Leave facts for later plays')['ansible_facts']

    def failure(self):
        for name, res in self.tasks():
            if res.get('failed') and not res.get('ignore_errors'):
                return name, res.get('msg')
        return None

    def summary(self):
        return 'rc=%d stats=%s failure=%s stderr=%s' % (self.rc, self.stats, self.failure(), self.stderr[-2000:])
