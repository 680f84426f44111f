"""README.md "Quick start", run as written on a fresh emulator: the playbook, the inventory file and the commands.

The files are the README's yaml blocks that start with a ``# path`` line, written byte for byte; the commands are
its console block of ansible commands, run in order from that directory with no edit. The README's kubeconfig is
``~/.kube/config``, so HOME is a temporary directory whose .kube/config points at the emulator, and no K8S_AUTH_*
or KUBECONFIG variable is set. Checked: the VMs and their namespace exist with the example's CPU and memory and
run, a second playbook run reports changed=0 and writes nothing, and the inventory lists the running VMs.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import clean_env
from tests.integration.doc_blocks import commands, files, section
from tests.summary import record

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
BIN = Path(sys.executable).parent
VM_PATH = "/apis/kubevirt.io/v1/namespaces/%s/virtualmachines/%s"
WRITES = ("POST", "PUT", "PATCH", "DELETE")

pytestmark = pytest.mark.skipif(bool(os.environ.get("VIRTFLEET_TEST_KUBECONFIG")),
                                reason="needs a fresh cluster (the README's namespace web must not exist): emulator only")

EMULATOR = {"name": "readme", "controllers": ("virt",), "timing": "fast"}   # the emu fixture (tests/conftest.py)


def run(words, cwd, env):
    """One command line of the README, its program taken from this interpreter's virtualenv."""
    cmd = [str(BIN / words[0]) if (BIN / words[0]).exists() else words[0]] + list(words[1:])
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=str(cwd), env=env, capture_output=True, text=True, timeout=400, check=False)
    record("README examples", "%-60s rc=%d %5.1f s" % (" ".join(words), proc.returncode, time.monotonic() - started))
    return proc.returncode, proc.stdout + proc.stderr


def changed(output):
    match = re.search(r"^localhost\s+: ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=0\s", output, re.M)
    assert match, output
    return int(match.group(1))


def task_results(output):
    """{task name: its result} from ansible-playbook's output at verbosity 1 (one JSON line per host and task)."""
    results, task = {}, None
    for line in output.splitlines():
        header = re.match(r"TASK \[(.*)\] \*+$", line)
        if header:
            task = header.group(1)
        match = re.match(r"(?:ok|changed): \[localhost\] => (\{.*\})$", line)
        if match and task:
            results[task] = json.loads(match.group(1))
    return results


def declared(playbook):
    """(namespace, {VM name: (cores, memory)}) as the example's kubevirt_vm task asks for them."""
    tasks = [task for play in yaml.safe_load(playbook) for task in play["tasks"]]
    vm_tasks = [task["virtfleet.kubevirt.kubevirt_vm"] for task in tasks if "virtfleet.kubevirt.kubevirt_vm" in task]
    assert len(vm_tasks) == 1, "README.md: the example playbook should have one kubevirt_vm task: %s" % tasks
    info_tasks = [task["name"] for task in tasks if "virtfleet.kubevirt.kubevirt_vm_info" in task]
    assert len(info_tasks) == 1, "README.md: the example playbook should have one kubevirt_vm_info task: %s" % tasks
    args = vm_tasks[0]
    return args["namespace"], {vm["name"]: (vm.get("cpu", args["cpu"])["cores"], vm.get("memory", args["memory"]))
                               for vm in args["vms"]}, info_tasks[0]


def test_readme_quick_start_runs_as_written_on_a_fresh_cluster(emu, tmp_path):
    text = section(README.read_text(), "## Quick start", where="README.md")
    examples = files(text, ["web.yml", "inventory/kubevirt.yml"], where="README.md Quick start")
    lines = commands(text, where="README.md Quick start")
    programs = [words[0] for words in lines]
    assert programs == ["ansible-playbook", "ansible-inventory"], \
        "README.md Quick start: expected the playbook run, then the inventory graph; found %s" % lines

    work, home = tmp_path / "work", tmp_path / "home"
    for path, content in examples.items():
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_text(content)
    (home / ".kube").mkdir(parents=True)
    shutil.copy(emu.kubeconfig, home / ".kube" / "config")
    env = clean_env(emu, home)
    env.update({"ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "0"})

    namespace, vms, wait_task = declared(examples["web.yml"])
    assert emu.get_object("/api/v1/namespaces/%s" % namespace) is None, "not a fresh cluster: %s exists" % namespace

    # The playbook: the VMs and their namespace are created, then waited for by label. Verbosity 1 (set in the
    # environment: the command stays as shown) prints each task's result.
    rc, out = run(lines[0], work, dict(env, ANSIBLE_VERBOSITY="1"))
    assert rc == 0, out
    assert changed(out) == 1, out
    waited = task_results(out)[wait_task]["resources"]
    assert sorted(vm["metadata"]["name"] for vm in waited) == sorted(vms), waited
    assert all(vm["status"].get("ready") is True for vm in waited), [vm["status"] for vm in waited]
    assert emu.get_object("/api/v1/namespaces/%s" % namespace) is not None
    for name, (cores, memory) in vms.items():
        vm = emu.get_object(VM_PATH % (namespace, name))
        assert vm is not None, name
        domain = vm["spec"]["template"]["spec"]["domain"]
        assert (domain["cpu"]["cores"], domain["memory"]["guest"]) == (cores, memory), (name, domain)
        assert vm["spec"]["runStrategy"] == "Always" and vm["metadata"]["labels"]["app"] == "web"
    assert sorted(vms) == ["web-1", "web-2", "web-3"] and vms["web-3"][1] == "4Gi"

    # "a second run: changed=0" and, as the sentence above the playbook says, no write request.
    mark = emu.mark()
    rc, out = run(lines[0], work, env)
    assert rc == 0, out
    assert changed(out) == 0, out
    assert [e for e in emu.requests(since=mark) if e["method"] in WRITES] == []

    # The inventory: the running VMs, named namespace-name as the comment says.
    rc, out = run(lines[1], work, env)
    assert rc == 0, out
    hosts = set(re.findall(r"--(%s-\S+)$" % re.escape(namespace), out, re.M))
    assert hosts == {"%s-%s" % (namespace, name) for name in vms}, out
    comment = [line for line in text.splitlines() if line.startswith("ansible-inventory")][0]
    assert all(host in comment for host in hosts), comment
