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


# --- Kubernetes API emulator (tests/kubeapi; interface in tests/kubeapi/README.md and harness.py) --------------
@pytest.fixture(scope="session")
def kubeapi(tmp_path_factory):
    """A started emulator (TLS, virt controller, fast timing), or a real cluster when VIRTFLEET_TEST_KUBECONFIG
    is set (its hook methods then skip the calling test)."""
    from tests.kubeapi.harness import RealCluster

    real = os.environ.get("VIRTFLEET_TEST_KUBECONFIG")
    if real:
        yield RealCluster(real)
        return
    emu = emulator_class()(tmp_path_factory.mktemp("kubeapi"), tls=True, controllers=("virt",), timing="fast")
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


def emulator_class():
    """The emulator, or with VIRTFLEET_TEST_REALK8S=1 (``make test-real``) the same interface on a real kube-apiserver
    (tests/kubeapi/realserver.py: realk8s + our KubeVirt simulation as its client + our counting/fault proxy)."""
    if os.environ.get("VIRTFLEET_TEST_REALK8S"):
        from tests.kubeapi.realserver import RealServer
        return RealServer
    from tests.kubeapi.harness import Emulator
    return Emulator


def start_emulator(tmp_path_factory, name="kubeapi", objects=(), needs_hooks=False, **options):
    """Start a private emulator in a fresh directory ``name`` and load ``objects`` into it (one bulk hook call,
    statuses included, not in the request log).

    ``options`` are ``tests.kubeapi.harness.Emulator``'s (tls, controllers, timing, nodes, guest_images, ...).
    ``objects`` and any option value may be a callable, called here: object builders, and ``build_image`` for
    guest images (which skips the test when QEMU tools are missing). ``needs_hooks``: skip when
    VIRTFLEET_TEST_KUBECONFIG points the tests at a real cluster, which has no bulk hook.
    """
    if needs_hooks and os.environ.get("VIRTFLEET_TEST_KUBECONFIG"):
        pytest.skip("these tests load data through the emulator's bulk hook")
    options = {key: value() if callable(value) else value for key, value in options.items()}
    objects = list(objects() if callable(objects) else objects)
    emu = emulator_class()(tmp_path_factory.mktemp(name), **options)
    emu.start()
    if objects:
        try:
            emu._hook("POST", "bulk", {"objects": objects})  # pylint: disable=protected-access
        except BaseException:
            emu.stop()
            raise
    return emu


@pytest.fixture(scope="module")
def emu(request, tmp_path_factory):
    """The test module's own emulator, as its ``EMULATOR`` dict (start_emulator's arguments) describes."""
    config = getattr(request.module, "EMULATOR", None)
    if config is None:
        pytest.fail("%s uses the emu fixture but defines no EMULATOR" % request.module.__name__)
    emulator = start_emulator(tmp_path_factory, **config)
    try:
        yield emulator
    finally:
        emulator.stop()


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
