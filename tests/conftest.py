"""Shared pytest fixtures: one Kubernetes API emulator per test session.

Set VIRTFLEET_TEST_KUBECONFIG to run the integration tests against a real cluster instead; tests that
need the emulator's hooks (request log, fault injection) are skipped then.
"""
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
COLLECTIONS = REPO / ".build" / "collections"
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))
os.environ.setdefault("ANSIBLE_COLLECTIONS_PATH", str(COLLECTIONS))


# --- Kubernetes API emulator (tests/kubeapi; interface in /work/notes/emulator-contract.md) ---------------------
@pytest.fixture(scope="session")
def kubeapi(tmp_path_factory):
    """A started emulator (TLS, virt controller, fast timing), or a real cluster when VIRTFLEET_TEST_KUBECONFIG
    is set (its hook methods then skip the calling test)."""
    from tests.kubeapi.harness import Emulator, RealCluster

    real = os.environ.get("VIRTFLEET_TEST_KUBECONFIG")
    if real:
        yield RealCluster(real)
        return
    emu = Emulator(tmp_path_factory.mktemp("kubeapi"), tls=True, controllers=("virt",), timing="fast")
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


def kubeapi_env(kubeapi, base=None):
    """Environment for subprocesses (ansible-playbook, kubectl) that should talk to `kubeapi`."""
    return kubeapi.env(base)


@pytest.fixture
def ansible_env(kubeapi):
    """kubeapi_env() as a fixture."""
    return kubeapi_env(kubeapi)


def pytest_terminal_summary(terminalreporter):
    """Print what tests recorded with tests.summary.record() (counts of faults, inputs tried, outcomes)."""
    from tests.summary import sections

    for section, lines in sections():
        terminalreporter.write_sep("-", section)
        for line in lines:
            terminalreporter.write_line(line)
