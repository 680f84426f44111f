"""`python -m tests.kubeapi` started by hand, as README "Testing" says: its default controllers, its errors.

The README's command (`.venv/bin/python -m tests.kubeapi --port 6443 --kubeconfig /tmp/kubeconfig`) must serve what the
README's examples need, the KubeVirt/CDI install included: by default the emulator runs the controllers the demo runs.
A port already in use is one line on stderr and exit status 2, no traceback.
"""
import json
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from .__main__ import DEFAULT_CONTROLLERS, KNOWN_CONTROLLERS, parse_args
from .harness import REPO, cluster_env

INSTALL = REPO / "tests" / "fixtures" / "install"


def run_module(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "tests.kubeapi", *args], cwd=str(REPO), capture_output=True, text=True,
                          timeout=timeout)


def test_busy_port_is_one_line_and_exit_status_2(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = run_module("--port", str(port), "--kubeconfig", str(tmp_path / "kc"))
    assert out.returncode == 2, out
    assert out.stderr == ("kubeapi: port %d on 127.0.0.1 is in use (another emulator?): stop it or choose --port 0 for "
                          "a free port\n" % port)
    assert out.stdout == ""
    assert not (tmp_path / "kc").exists() and not (tmp_path / "ca.crt").exists(), "files written for a server that never ran"


def test_unknown_controller_is_refused_at_once(tmp_path):
    out = run_module("--kubeconfig", str(tmp_path / "kc"), "--controllers", "virt,operator")
    assert out.returncode == 2
    assert "--controllers: unknown operator (known: virt, cdi, operators, or none)" in out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "kc").exists()


def test_default_controllers_are_the_demos():
    """demo/run.py starts the emulator with these; a hand-started emulator without --controllers runs the same."""
    assert parse_args(["--kubeconfig", "kc"]).controllers == ",".join(DEFAULT_CONTROLLERS)
    assert set(DEFAULT_CONTROLLERS) == set(KNOWN_CONTROLLERS)
    demo = re.findall(r'controllers=\(([^)]*)\)', (REPO / "demo" / "run.py").read_text())
    assert demo and all(tuple(re.findall(r'"(\w+)"', found)) == DEFAULT_CONTROLLERS for found in demo), demo
    assert parse_args(["--kubeconfig", "kc", "--controllers", "none"]).controllers == "none"


class HandStarted:
    """The README's by-hand command (on a free port instead of 6443), read the way a user reads it."""

    def __init__(self, workdir):
        self.kubeconfig = workdir / "kubeconfig"
        self.log = workdir / "kubeapi.log"
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "tests.kubeapi", "--port", "0", "--kubeconfig",
                                          str(self.kubeconfig)], cwd=str(REPO), stdout=subprocess.PIPE, stderr=log,
                                         text=True)
        lines = []
        reader = threading.Thread(target=lambda: lines.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(60)
        assert lines and lines[0].startswith("kubeapi ready on https://127.0.0.1:"), (lines, self.proc.poll())
        self.url = lines[0].split()[-1]
        config = yaml.safe_load(self.kubeconfig.read_text())
        self.token = config["users"][0]["user"]["token"]
        self.ssl = ssl.create_default_context(cafile=str(workdir / "ca.crt"))

    def get(self, path):
        req = urllib.request.Request(self.url + path, headers={"Authorization": "Bearer " + self.token})
        with urllib.request.urlopen(req, context=self.ssl, timeout=30) as resp:
            return json.loads(resp.read())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc.stdout.close()
        return self.proc.returncode, self.log.read_text(errors="replace")


@pytest.mark.slow
def test_started_by_hand_it_serves_the_readme_install(tmp_path):
    """playbooks/install_kubevirt.yml with the local operator manifests, as the demo passes them, on a hand-started
    emulator: KubeVirt v1.9.0 and CDI v1.66.0 reach Deployed (the simulated operators run by default)."""
    emu = HandStarted(tmp_path)
    try:
        cmd = [str(Path(sys.executable).parent / "ansible-playbook"), str(REPO / "playbooks" / "install_kubevirt.yml"),
               "-e", "kubevirt_manifest_path=%s" % (INSTALL / "kubevirt-v1.9.0" / "kubevirt-operator.yaml"),
               "-e", "kubevirt_version=v1.9.0", "-e", "kubevirt_cdi=true",
               "-e", "kubevirt_cdi_manifest_path=%s" % (INSTALL / "cdi-v1.66.0" / "cdi-operator.yaml"),
               "-e", "kubevirt_wait_timeout=120"]
        env = cluster_env(emu.kubeconfig)
        env["ANSIBLE_LOCAL_TEMP"] = str(tmp_path / "ansible-tmp")
        started = time.monotonic()
        play = subprocess.run(cmd, cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=600)
        assert play.returncode == 0, play.stdout[-3000:] + play.stderr[-2000:]
        assert "KubeVirt: none -> v1.9.0, phase Deployed" in play.stdout
        assert "CDI: v1.66.0, phase Deployed" in play.stdout
        assert time.monotonic() - started < 300
        kubevirt = emu.get("/apis/kubevirt.io/v1/namespaces/kubevirt/kubevirts/kubevirt")
        assert kubevirt["status"]["phase"] == "Deployed" and kubevirt["status"]["observedKubeVirtVersion"] == "v1.9.0"
        cdi = emu.get("/apis/cdi.kubevirt.io/v1beta1/cdis/cdi")
        assert cdi["status"]["phase"] == "Deployed" and cdi["status"]["observedVersion"] == "v1.66.0"
    finally:
        code, stderr = emu.stop()
    assert code == 0, stderr[-2000:]
