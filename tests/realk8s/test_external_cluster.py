"""VIRTFLEET_TEST_KUBECONFIG: the integration suite on a cluster of the user's, here realk8s with our KubeVirt
simulation started by ``python -m tests.kubeapi.realserver`` and reached with the real server's own kubeconfig (a
client certificate, as kind writes it), so that the mode users run on their clusters cannot rot unnoticed."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import yaml

from tests.conftest import REPO

from .conftest import BIN, realk8s_dir

# Tests that run on a cluster with KubeVirt and CDI, and some that need the simulation's hooks (skipped).
FILES = ["tests/integration/test_kubevirt_vm_datavolume.py", "tests/integration/test_real_server_findings.py",
         "tests/integration/test_watch_expiry.py"]


def start_stack(workdir):
    env = dict(os.environ, PATH="%s%s%s" % (BIN, os.pathsep, os.environ.get("PATH", "")),
               VIRTFLEET_REALK8S=str(realk8s_dir()))
    proc = subprocess.Popen([sys.executable, "-m", "tests.kubeapi.realserver", str(workdir)], cwd=str(REPO), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.monotonic() + 240
    lines = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        lines.append(line)
        if line.startswith("{"):
            return proc, json.loads(line)
    proc.kill()
    raise AssertionError("realserver did not start:\n" + "".join(lines))


def test_suite_on_a_users_cluster_runs_and_skips_only_with_reasons(tmp_path):
    proc, info = start_stack(tmp_path / "stack")
    try:
        kubeconfig = info["kubeconfig"]
        assert "client-certificate-data" in json.dumps(yaml.safe_load(open(kubeconfig)))   # no token anywhere
        env = dict(os.environ, VIRTFLEET_TEST_KUBECONFIG=kubeconfig)
        env.pop("VIRTFLEET_TEST_REALK8S", None)
        run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rs", "-q", "--timeout",
                              "240"] + FILES, cwd=str(REPO), env=env, capture_output=True, text=True, timeout=1200,
                             check=False)
        out = run.stdout + run.stderr
        assert run.returncode == 0, out[-6000:]
        summary = re.search(r"(\d+) passed, (\d+) skipped", out)
        assert summary, out[-3000:]
        passed, skipped = int(summary.group(1)), int(summary.group(2))
        assert passed >= 5 and skipped >= 3, out[-3000:]
        reasons = re.findall(r"^SKIPPED \[\d+\] \S+: (.*)$", out, re.M)
        assert reasons and all("VIRTFLEET_TEST_KUBECONFIG" in r or "emulator only" in r for r in reasons), reasons
        # the namespaces the tests made were deleted when the run ended
        names = subprocess.run([str(BIN / "kubectl"), "--kubeconfig", kubeconfig, "get", "namespaces", "-o",
                                "jsonpath={range .items[?(@.status.phase==\"Active\")]}{.metadata.name} {end}"],
                               capture_output=True, text=True, timeout=60, check=True).stdout.split()
        assert not [n for n in names if re.match(r"^(dv|real|expiry)-[0-9a-f]{8}$", n)], names
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
