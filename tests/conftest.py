"""Shared pytest fixtures: one Kubernetes API emulator per test session.

Set VIRTFLEET_TEST_KUBECONFIG to run the integration tests against a cluster of yours instead (README "Testing");
tests that need our simulation's hooks (request log, fault injection, test users) are skipped then, with the reason.
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
    """A started emulator (TLS, virt controller, fast timing), or the user's cluster when VIRTFLEET_TEST_KUBECONFIG
    is set (hooks only our simulation has then skip the calling test)."""
    if os.environ.get("VIRTFLEET_TEST_KUBECONFIG"):
        yield external_cluster()
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


_EXTERNAL = []


def external_cluster():
    """The cluster of VIRTFLEET_TEST_KUBECONFIG (one per session; the namespaces the tests made are deleted at exit)."""
    if not _EXTERNAL:
        import atexit
        from tests.kubeapi.harness import ExternalCluster
        _EXTERNAL.append(ExternalCluster(os.environ["VIRTFLEET_TEST_KUBECONFIG"]))
        atexit.register(_EXTERNAL[0].cleanup)
    return _EXTERNAL[0]


# What a private emulator's options ask of the simulation that a cluster with real KubeVirt cannot give.
EXTERNAL_SKIPS = (
    (lambda o: not o.get("controllers", ("virt",)),
     "loads objects as they are, which KubeVirt's own controllers would change (a private server without controllers)"),
    (lambda o: "operators" in o.get("controllers", ()),
     "installs and uninstalls KubeVirt through our simulated operators (a private server)"),
    (lambda o: o.get("guest_images"), "boots mapped images as QEMU guests of our simulation"),
    (lambda o: o.get("nodes"), "needs a given number of fake nodes"),
)


def start_emulator(tmp_path_factory, name="kubeapi", objects=(), needs_hooks=False, **options):
    """Start a private emulator in a fresh directory ``name`` and load ``objects`` into it (one bulk hook call,
    statuses included, not in the request log).

    ``options`` are ``tests.kubeapi.harness.Emulator``'s (tls, controllers, timing, nodes, guest_images, ...).
    ``objects`` and any option value may be a callable, called here: object builders, and ``build_image`` for
    guest images (which skips the test when QEMU tools are missing). ``needs_hooks``: skip when
    VIRTFLEET_TEST_KUBECONFIG points the tests at a real cluster, which has no bulk hook.
    """
    if os.environ.get("VIRTFLEET_TEST_KUBECONFIG"):
        for applies, reason in EXTERNAL_SKIPS:
            if applies(options):
                pytest.skip("VIRTFLEET_TEST_KUBECONFIG: this test " + reason)
        if needs_hooks:
            pytest.skip("VIRTFLEET_TEST_KUBECONFIG: these tests use the request log or test users of our simulation")
    options = {key: value() if callable(value) else value for key, value in options.items()}
    objects = list(objects() if callable(objects) else objects)
    if os.environ.get("VIRTFLEET_TEST_KUBECONFIG"):
        emu = external_cluster()
        if "cdi" in options.get("controllers", ()) and emu.get_object("/apis/cdi.kubevirt.io/v1beta1") is None:
            pytest.skip("VIRTFLEET_TEST_KUBECONFIG: this test needs CDI (cdi.kubevirt.io/v1beta1), which the cluster "
                        "does not serve")
        if objects:
            emu._bulk(objects)  # pylint: disable=protected-access
        return emu
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
