"""The kubevirt role through playbooks/install_kubevirt.yml, against the emulator with the simulated operators."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import kubeapi_env
from tests.integration.test_kubevirt_install import CDI166, KV190, KV_PATH, WRITES

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = REPO / "playbooks" / "install_kubevirt.yml"

pytestmark = pytest.mark.skipif(bool(os.environ.get("VIRTFLEET_TEST_KUBECONFIG")),
                                reason="installs KubeVirt cluster-wide: emulator only")


EMULATOR = {"name": "install-role", "controllers": ("virt", "operators"), "timing": "fast"}   # the emu fixture


def run(emu, tmp_path, extra, inventory="localhost,"):
    (tmp_path / "vars.json").write_text(json.dumps(extra))
    env = kubeapi_env(emu)
    env.update({"ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
                "ANSIBLE_LOCALHOST_WARNING": "0", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0"})
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", inventory, "-e",
           "ansible_python_interpreter=%s" % sys.executable, "-e", "@%s" % (tmp_path / "vars.json"), str(PLAYBOOK)]
    proc = subprocess.run(cmd, cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    return proc.returncode, proc.stdout + proc.stderr


def recap(output):
    match = re.search(r"localhost\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", output)
    assert match, output
    return dict(zip(("ok", "changed", "unreachable", "failed"), map(int, match.groups())))


VARS = {"kubevirt_manifest_path": KV190, "kubevirt_version": "v1.9.0", "kubevirt_cdi": True,
        "kubevirt_cdi_manifest_path": CDI166, "kubevirt_feature_gates": ["Snapshot"], "kubevirt_wait_timeout": 60,
        "kubevirt_cdi_options": {"scratch_storage_class": "local"}}


def test_preflight_fails_without_enough_schedulable_nodes(emu, tmp_path):
    rc, out = run(emu, tmp_path, dict(VARS, kubevirt_min_schedulable_nodes=3))
    assert rc != 0 and "Only 2 Ready, schedulable node(s) (node01, node02)" in out, out
    assert emu.get_object(KV_PATH) is None


def test_role_installs_then_second_run_changes_nothing(emu, tmp_path):
    rc, out = run(emu, tmp_path, VARS)
    assert rc == 0, out
    assert recap(out)["changed"] >= 1
    assert "KubeVirt: none -> v1.9.0, phase Deployed" in out and "CDI: v1.66.0, phase Deployed" in out, out
    assert "Emulation: False (all 2 node(s) that may run VMs have KVM)" in out
    mark = emu.mark()
    rc, out = run(emu, tmp_path, VARS)
    assert rc == 0, out
    assert recap(out)["changed"] == 0, out
    assert "KubeVirt: v1.9.0 -> v1.9.0, phase Deployed" in out and "Objects changed: 0" in out
    assert [e for e in emu.requests(since=mark) if e["method"] in WRITES] == []


def test_kvm_host_facts_feed_emulation_auto(emu, tmp_path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        "all:\n  hosts:\n    localhost: {}\n  children:\n    kvm_hosts:\n      hosts:\n"
        "        node01: {kvm_host_usable: true}\n"
        "        worker-b: {kvm_host_usable: false, kubevirt_node_name: node02}\n")
    rc, out = run(emu, tmp_path, VARS, inventory=str(inventory))
    assert rc == 0, out
    assert "Emulation: True (nodes that may run VMs lack KVM: node02 (kvm_nodes))" in out, out
    live = emu.get_object(KV_PATH)
    assert live["spec"]["configuration"]["developerConfiguration"]["useEmulation"] is True


def test_role_uninstalls(emu, tmp_path):
    rc, out = run(emu, tmp_path, dict(VARS, kubevirt_state="absent"))
    assert rc == 0, out
    assert "KubeVirt: removed (was v1.9.0)" in out and "CDI: removed" in out, out
    assert emu.get_object(KV_PATH) is None
