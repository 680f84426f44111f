"""Helpers of the real-guest suite: the cached guest image, SSH keys, ssh into a NodePort or through a
ProxyCommand, QEMU pids."""
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
IMAGE = "quay.io/containerdisks/debian:12"
IMAGE_DIR = Path(os.environ.get("VIRTFLEET_GUEST_IMAGE_DIR", REPO / ".build" / "guest-image"))
TOOLS = ("qemu-system-x86_64", "mmdebstrap", "debvm-create", "mkfs.vfat", "mcopy", "ssh", "ssh-keygen")
BOOT_TIMEOUT = int(os.environ.get("VIRTFLEET_GUEST_BOOT_TIMEOUT", "900"))


def missing_tools():
    return [t for t in TOOLS if not (shutil.which(t) or shutil.which(t, path="/usr/sbin:/sbin"))]


def build_image():
    """Build (or reuse) the guest image; skip (fail on CI) when the system tools are missing."""
    missing = missing_tools()
    if missing:
        msg = ("real-guest suite needs %s (run tests/guest/install_deps.sh as root, or `make test-guest`)"
               % ", ".join(missing))
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    start = time.monotonic()
    result = subprocess.run(["bash", str(REPO / "tests" / "guest" / "build_image.sh"), str(IMAGE_DIR)], check=False,
                            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=900)
    assert result.returncode == 0, "guest image build failed:\n%s\n%s" % (result.stdout[-3000:], result.stderr[-3000:])
    print("guest image ready in %.0fs: %s" % (time.monotonic() - start, result.stdout.strip().splitlines()[-1]))
    return IMAGE_DIR


def keypair(directory, name):
    key = Path(directory) / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True)
    return key, (Path(str(key) + ".pub")).read_text().strip()


def ssh(key, user, port, command, timeout=60, host="127.0.0.1", options=(), env=None):
    """Our own ssh session; options: more ssh arguments (an api_tunnel host's ProxyCommand), env: its environment."""
    argv = ["ssh", "-i", str(key), "-p", str(port), "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
            "-o", "ConnectTimeout=15", *options, "%s@%s" % (user, host), command]
    return subprocess.run(argv, check=False, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                          env=env)


def boot_seconds(guest_dir):
    """{guest dir name: seconds from QEMU start to the SSH banner}, as the emulator measured them."""
    return {f.parent.name: float(f.read_text()) for f in Path(guest_dir).glob("*/ready_after")}


def wait_gone(pid, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Path("/proc/%d" % pid).exists():
            return True
        time.sleep(0.5)
    return False
