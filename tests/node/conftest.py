"""Fixtures of the node suite: the cached image, and two QEMU TCG guests booted in parallel.

kvm_vm: -cpu max (TCG emulates SVM, the guest loads kvm_amd). novirt_vm: -cpu qemu64 with svm off.
The suite's tests run in file order against these stateful guests.
"""
import concurrent.futures
import os
import subprocess
import time

import pytest

from tests.node.vm import REPO, IMAGE_DIR, QemuVM

BOOT_TIMEOUT = int(os.environ.get('VIRTFLEET_NODE_BOOT_TIMEOUT', '300'))


@pytest.fixture(scope='session')
def node_image():
    start = time.monotonic()
    result = subprocess.run(['bash', str(REPO / 'tests' / 'node' / 'build_image.sh'), str(IMAGE_DIR)],
                            check=False, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=900)
    if result.returncode == 2:
        pytest.fail('node suite prerequisites missing: %s (run tests/node/install_deps.sh as root)' % result.stderr.strip())
    assert result.returncode == 0, 'image build failed:\n%s\n%s' % (result.stdout[-3000:], result.stderr[-3000:])
    print('node image ready in %.0fs: %s' % (time.monotonic() - start, result.stdout.strip()))
    return IMAGE_DIR


@pytest.fixture(scope='session')
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp('node')


@pytest.fixture(scope='session')
def vms(node_image, workdir):
    """Both guests, started together so their boots overlap; stopped by PID at the end."""
    guests = {
        'kvmnode': QemuVM('kvmnode', workdir, cpu='max'),
        # qemu64 without svm: 'max,svm=off,vmx=off' boots into failing units under TCG here.
        'novirtnode': QemuVM('novirtnode', workdir, cpu='qemu64,svm=off'),
    }
    try:
        for guest in guests.values():
            guest.start()
        start = time.monotonic()
        for guest in guests.values():
            guest.wait_ssh(BOOT_TIMEOUT)
        print('both guests reachable over SSH after %.0fs' % (time.monotonic() - start))
        yield guests
    finally:
        for guest in guests.values():
            guest.stop()


@pytest.fixture(scope='session')
def kvm_vm(vms):
    return vms['kvmnode']


@pytest.fixture(scope='session')
def novirt_vm(vms):
    return vms['novirtnode']


@pytest.fixture(scope='session')
def background():
    """Runs the negative guest's scenario while the tests drive the KVM guest (2 cores, 2 guests)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        yield pool
