"""A watch whose resourceVersion the server no longer has (410 Gone) in the middle of a wait.

kube-apiserver answers such a watch with one ERROR event carrying a 410 Expired Status; a client must list again
and take that list as the whole truth: an object missing from it is gone, even though no DELETED event was seen.
The emulator's fault injection (``watch_only``, status 410) sends exactly that after a pause in which the objects
change, so both defects of issue #14 are reproduced through the public path:
- kubevirt_vm ``state: stopped, wait: true``: the VMI is deleted in the gap; a re-list that only adds objects keeps
  the stale VMI and the wait runs to its timeout;
- kubevirt_install ``state: absent``: the wait for the KubeVirt CR to go failed the task on the 410 event.
"""
import os
from pathlib import Path

import pytest

from tests.conftest import emulator_class, kubeapi_env
from tests.integration.conftest import run_playbook, unique_namespace

from .test_kubevirt_vm import play, vm_task

INSTALL = Path(__file__).resolve().parents[1] / "fixtures" / "install" / "kubevirt-v1.9.0" / "kubevirt-operator.yaml"


def _expired(entries, plural):
    return [e for e in entries if e.get("fault") == "410" and plural in e["path"] and e["query"].get("watch")]


@pytest.fixture
def ns(kubeapi):
    yield unique_namespace(kubeapi, "expiry")
    kubeapi.clear_faults()


def test_stop_wait_sees_a_vmi_deleted_behind_an_expired_watch(kubeapi, ansible_env, tmp_path, ns):
    vm = dict(name="web", namespace=ns, memory="64Mi", boot_disk={"container_image": "img"})
    r = play(ansible_env, tmp_path, [vm_task("up", wait=True, wait_timeout=60, **vm)], name="up")
    assert not r["up"].get("failed") and r["up"]["result"]["status"]["ready"], r["up"]
    # The first VMI watch of the stop's wait is held 1.5 s (the controller deletes the VMI within ~0.3 s of the
    # stop), then answered with 410 Expired: only the re-list can tell the wait that the VMI is gone.
    kubeapi.set_faults(rate=1.0, statuses=(410,), latency_ms=1500, count=1, watch_only=True,
                       path_regex="/namespaces/%s/virtualmachineinstances" % ns)
    mark = kubeapi.mark()
    r = play(ansible_env, tmp_path, [vm_task("down", state="stopped", wait=True, wait_timeout=20, name="web",
                                             namespace=ns, ignore_errors=True)], name="down")
    entries = kubeapi.requests(since=mark)
    kubeapi.clear_faults()
    assert len(_expired(entries, "virtualmachineinstances")) == 1, "the 410 was not injected: nothing reproduced"
    down = r["down"]
    assert not down.get("failed"), down.get("msg")
    assert down["changed"] is True and down["action"] == "stop"
    assert down["result"]["status"]["printableStatus"] == "Stopped"
    assert down["duration"] < 15     # not the 20 s timeout: the re-list ended the wait


@pytest.mark.skipif(bool(os.environ.get("VIRTFLEET_TEST_KUBECONFIG")), reason="uninstalls KubeVirt: emulator only")
def test_uninstall_survives_an_expired_watch(tmp_path_factory, tmp_path):
    emu = emulator_class()(tmp_path_factory.mktemp("expiry-install"), controllers=("virt", "operators"), timing="fast")
    emu.start()
    try:
        def install(**options):
            task = {"name": "kubevirt_install", "register": "r", "ignore_errors": True,
                    "virtfleet.kubevirt.kubevirt_install": dict({"wait_timeout": 60}, **options)}
            return run_playbook(tmp_path, kubeapi_env(emu), [task], register=["r"]).vars["r"]

        r = install(manifest_path=str(INSTALL))
        assert not r.get("failed") and r["kubevirt"]["status"]["phase"] == "Deployed", r.get("msg")
        emu.set_faults(rate=1.0, statuses=(410,), latency_ms=300, count=1, watch_only=True, path_regex="/kubevirts")
        mark = emu.mark()
        r = install(state="absent")
        entries = emu.requests(since=mark)
        emu.clear_faults()
        assert len(_expired(entries, "kubevirts")) == 1, "the 410 was not injected: nothing reproduced"
        assert not r.get("failed"), r.get("msg")
        assert r["changed"] is True
        assert emu.get_object("/apis/apps/v1/namespaces/kubevirt/deployments/virt-operator") is None
        assert ("KubeVirt", "deleted") in [(o["kind"], o["action"]) for o in r["objects"]]
    finally:
        emu.stop()
