"""docs/awx.md section 3, run as written: the AWX project layout reaches the imported declare_vms play.

The files come from the doc's own code blocks (a ``# path`` first line names each), the inventory source is the
copy of playbooks/inventory/kubevirt.yml the doc asks for, and the command is the doc's console block, so the doc
and this test cannot drift apart. Two ways in are checked: ``ansible-playbook -i inventory/kubevirt.yml`` from the
project, and AWX's own path (its inventory sync runs ``ansible-inventory --list --export`` on the source file,
as awx/main/tasks/jobs.py RunInventoryUpdate.build_args does; the job then gets that inventory, variables of
group ``all`` included, from a script outside the project). The old layout, ``group_vars/`` beside the wrapper
playbooks, is run too: the imported play never sees those variables.
"""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import kubeapi_env
from tests.integration.doc_blocks import commands, files, section

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "awx.md"
BIN = Path(sys.executable).parent
FLEET = "inventory/group_vars/all/fleet.yml"
VM_PATH = "/apis/kubevirt.io/v1/namespaces/%s/virtualmachines/%s"
SIZES = {"small": {"cpu": 1, "memory": "1Gi"}, "medium": {"cpu": 2, "memory": "2Gi"},
         "large": {"cpu": 4, "memory": "8Gi"}}     # declare_vms.yml's documented default fleet_sizes

pytestmark = pytest.mark.skipif(bool(os.environ.get("VIRTFLEET_TEST_KUBECONFIG")),
                                reason="declares the doc's example fleet in its fixed namespace: emulator only")

EMULATOR = {"name": "awx-doc", "controllers": ("virt",), "timing": "fast"}   # the emu fixture (tests/conftest.py)


def doc_section():
    return section(DOC.read_text(), "## 3. Project and inventory", where="docs/awx.md")


def project(tmp_path, text):
    """The project of the doc: its wrapper(s) and fleet as shown, and the inventory source it says to copy."""
    root = tmp_path / "my-fleet"
    for path, content in files(text, ["declare_vms.yml", FLEET], where="docs/awx.md section 3").items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(content)
    shutil.copy(REPO / "playbooks" / "inventory" / "kubevirt.yml", root / "inventory" / "kubevirt.yml")
    return root


def environment(emu, tmp_path):
    """The API credential as AWX injects it (K8S_AUTH_KUBECONFIG), and quiet, colourless output."""
    env = kubeapi_env(emu)
    env.update({"ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"), "ANSIBLE_HOST_KEY_CHECKING": "0",
                "ANSIBLE_RETRY_FILES_ENABLED": "0", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0"})
    return env


def run(words, cwd, env):
    cmd = [str(BIN / words[0]) if (BIN / words[0]).exists() else words[0]] + list(words[1:])
    proc = subprocess.run(cmd, cwd=str(cwd), env=env, capture_output=True, text=True, timeout=400, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def changed(output, host="localhost"):
    match = re.search(r"^%s\s+: ok=\d+\s+changed=(\d+)\s" % re.escape(host), output, re.M)
    assert match, output
    return int(match.group(1))


def assert_fleet_declared(emu, fleet):
    """Every VM of the fleet file exists with the file's values (namespace, size, labels, key, user)."""
    sizes = dict(SIZES, **fleet.get("fleet_sizes", {}))
    for vm in fleet["fleet_vms"]:
        stored = emu.get_object(VM_PATH % (vm.get("namespace", fleet.get("fleet_namespace")), vm["name"]))
        assert stored is not None, vm
        size = sizes[vm.get("size", fleet.get("fleet_default_size", "small"))]
        domain = stored["spec"]["template"]["spec"]["domain"]
        assert domain["cpu"]["cores"] == vm.get("cpu", size["cpu"]), (vm, domain)
        assert domain["memory"]["guest"] == vm.get("memory", size["memory"]), (vm, domain)
        assert stored["metadata"]["labels"] == dict(fleet.get("fleet_labels", {}), **vm.get("labels", {}))
        assert stored["spec"]["runStrategy"] == ("Always" if vm.get("running", True) else "Halted")
        volumes = {v["name"]: v for v in stored["spec"]["template"]["spec"]["volumes"]}
        cloud_config = yaml.safe_load(volumes["cloudinit"]["cloudInitNoCloud"]["userData"])
        assert cloud_config["user"] == vm.get("user", fleet.get("fleet_user", "debian")), cloud_config
        assert cloud_config["ssh_authorized_keys"] == vm.get("ssh_authorized_keys",
                                                             fleet.get("fleet_ssh_authorized_keys")), cloud_config


def test_the_documented_layout_reaches_the_imported_play_from_the_cli_and_from_an_awx_sync(emu, tmp_path):
    text = doc_section()
    root = project(tmp_path, text)
    fleet = yaml.safe_load((root / FLEET).read_text())
    assert fleet["fleet_vms"], "docs/awx.md: the example fleet declares no VM"
    env = environment(emu, tmp_path)

    # 1. The command line of the doc, from the project's directory.
    playbook_runs = [words for words in commands(text, where="docs/awx.md section 3") if words[0] == "ansible-playbook"]
    assert playbook_runs, "docs/awx.md section 3 shows no ansible-playbook command"
    for words in playbook_runs:
        rc, out = run(words, root, env)
        assert rc == 0, out
    assert "%d VM(s) declared: %d changed" % (len(fleet["fleet_vms"]), len(fleet["fleet_vms"])) in out, out
    assert_fleet_declared(emu, fleet)

    # 2. AWX: the inventory sync of the source file, then a job whose inventory is that sync's output, served by a
    # script outside the project (the project's group_vars/ are not beside that inventory nor the playbook).
    runner = tmp_path / "runner"
    (runner / "inventory").mkdir(parents=True)
    rc, out = run(["ansible-inventory", "--list", "--export", "-i", str(root / "inventory" / "kubevirt.yml"),
                   "--playbook-dir", str(root / "inventory"), "--output", str(runner / "output.json")], root, env)
    assert rc == 0, out
    synced = json.loads((runner / "output.json").read_text())
    assert {k: v for k, v in synced["all"].get("vars", {}).items() if k in fleet} == fleet, synced["all"]
    script = runner / "inventory" / "hosts"
    script.write_text("#!%s\nimport sys\nsys.stdout.write(%r)\n" % (sys.executable, json.dumps(synced)))
    script.chmod(0o755)
    rc, out = run(["ansible-playbook", "-i", str(script), "declare_vms.yml"], root, env)
    assert rc == 0, out
    assert "%d VM(s) declared: 0 changed" % len(fleet["fleet_vms"]) in out, out
    assert changed(out) == 0, out


def test_group_vars_beside_the_wrappers_do_not_reach_the_imported_play(emu, tmp_path):
    """What the doc warns about: the fleet in the project's top-level group_vars/ is never read."""
    root = project(tmp_path, doc_section())
    (root / "group_vars" / "all").mkdir(parents=True)
    (root / FLEET).rename(root / "group_vars" / "all" / "fleet.yml")
    mark = emu.mark()
    rc, out = run(["ansible-playbook", "-i", "inventory/kubevirt.yml", "declare_vms.yml"], root,
                  environment(emu, tmp_path))
    assert rc != 0, out
    assert "The fleet description is invalid: missing required arguments: fleet_vms" in out, out
    assert "missing required arguments: fleet_vms" in doc_section()      # the doc quotes this very message
    assert [e for e in emu.requests(since=mark) if e["method"] in ("POST", "PUT", "PATCH", "DELETE")] == []
