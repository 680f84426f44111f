"""Helpers to run ansible-playbook (from the interpreter's own virtualenv) against the `kubeapi` fixture.

    result = run_playbook(tmp_path, env, tasks, register=["r1"], module_defaults={...})
    result.rc, result.vars["r1"], result.output

Registered results are written to a JSON file by an `always:` task, so failed tasks (with
`ignore_errors: true`) can be inspected too. No callback plugin outside ansible-core is needed.
Deprecation warnings stay on, and a run that prints one fails (assert_no_deprecation).
"""
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from tests.conftest import kubeapi_env

ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"


def assert_no_deprecation(output):
    """Users see ansible-core's deprecation warnings about our modules, inventory plugin, roles and playbooks (a
    removal in a later ansible-core breaks them): an ansible-playbook or ansible-inventory run that prints one fails.
    Its runs set ANSIBLE_DEPRECATION_WARNINGS=1, whatever the environment says."""
    found = [line for line in output.splitlines() if "[DEPRECATION WARNING]" in line]
    assert not found, "ansible-core printed deprecation warnings:\n" + "\n".join(found) + "\n" + output[-3000:]


class PlaybookResult:
    def __init__(self, proc, vars_):
        self.rc = proc.returncode
        self.output = proc.stdout + proc.stderr
        self.vars = vars_

    def __repr__(self):
        return "PlaybookResult(rc=%s)\n%s" % (self.rc, self.output[-4000:])


def run_playbook(workdir, env, tasks, register=(), module_defaults=None, timeout=300, check=False):
    """Run `tasks` on localhost (local connection, this interpreter) and return the registered variables."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    out = workdir / ("vars-%s.json" % uuid.uuid4().hex[:8])
    content = "{{ {%s} | to_json }}" % ", ".join("%r: (%s | default(None))" % (n, n) for n in register)
    play = {
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [{"block": tasks,
                   "always": [{"name": "Save registered results", "check_mode": False, "ansible.builtin.copy":
                               {"content": content, "dest": str(out)}}]}],
    }
    if module_defaults:
        play["module_defaults"] = module_defaults
    playbook = workdir / ("play-%s.yml" % uuid.uuid4().hex[:8])
    playbook.write_text(yaml.safe_dump([play], sort_keys=False))
    cmd = [str(ANSIBLE_PLAYBOOK), "-i", "localhost,", "-c", "local", "-e",
           "ansible_python_interpreter=%s" % sys.executable, str(playbook)]
    if check:
        cmd.append("--check")
    env = dict(env)
    env.update({"ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "0", "ANSIBLE_LOCALHOST_WARNING": "0",
                "ANSIBLE_LOCAL_TEMP": str(workdir / "tmp"), "ANSIBLE_REMOTE_TEMP": str(workdir / "tmp"),
                "ANSIBLE_DEPRECATION_WARNINGS": "1", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0"})
    proc = subprocess.run(cmd, cwd=str(workdir), env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)
    assert_no_deprecation(proc.stdout + proc.stderr)
    vars_ = json.loads(out.read_text()) if out.exists() else {}
    return PlaybookResult(proc, vars_)


@pytest.fixture
def playbook(tmp_path, kubeapi):
    """`playbook(tasks, register=[...], env=None, **kw)` with the kubeapi environment by default."""
    def run(tasks, register=(), env=None, **kwargs):
        return run_playbook(tmp_path, env if env is not None else kubeapi_env(kubeapi), tasks, register, **kwargs)
    return run


def unique_namespace(kubeapi, prefix="t"):
    """Create a fresh namespace on the emulator and return its name."""
    name = "%s-%s" % (prefix, uuid.uuid4().hex[:8])
    kubeapi.apply_object({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


def vm_manifest(name, namespace, run_strategy="Always", labels=None):
    labels = dict(labels or {})
    return {
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"runStrategy": run_strategy, "template": {
            "metadata": {"labels": dict(labels, **{"kubevirt.io/domain": name})},
            "spec": {"domain": {"devices": {}, "resources": {"requests": {"memory": "64Mi"}}}}}},
    }


def clean_env(kubeapi, home):
    """An environment with no connection settings at all (no K8S_AUTH_*, KUBECONFIG, ~/.kube/config)."""
    env = kubeapi_env(kubeapi)
    for key in list(env):
        if key.startswith("K8S_AUTH_") or key == "KUBECONFIG":
            del env[key]
    env["HOME"] = str(home)
    return env
