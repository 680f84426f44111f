"""Run every scenario with one collection: one generated playbook, one ansible-playbook process.

Each step is a task with ``register`` and ``ignore_errors: true``, followed by the neutral reader
(tests/compat/reader.py, through a ``pipe`` lookup on the controller, so it costs no module run). The last
task writes all registered results to one JSON file. Scenario ``x`` runs in namespace ``ref-x`` (kubevirt.core)
or ``our-x`` (virtfleet.kubevirt).
"""
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.compat.scenarios import VM_NAME

REPO = Path(__file__).resolve().parents[2]
REF_VENV = REPO / ".venv-ref"
OUR_BIN = Path(sys.executable).parent
READER = Path(__file__).resolve().parent / "reader.py"
# Scenarios run in parallel (one inventory host each, strategy free): waits overlap, both cores stay busy.
FORKS = int(os.environ.get("VIRTFLEET_COMPAT_FORKS", "3"))
SIDES = {
    "ref": {"prefix": "kubevirt.core.", "ns": "ref-"},
    "our": {"prefix": "virtfleet.kubevirt.", "ns": "our-"},
}


def namespace(side, scenario):
    return SIDES[side]["ns"] + scenario


def read_name(step):
    if step["module"] == "kubevirt_vm":
        return step["args"].get("name", VM_NAME)
    return VM_NAME


def playbook(side, scenarios, workdir, reader_config):
    """The playbook for `side` (one inventory host per scenario, each including its own task file), and
    {scenario: (results file, [(step index, register name, snapshot file)])}."""
    workdir = Path(workdir) / side
    workdir.mkdir(parents=True, exist_ok=True)
    index = {}
    for scenario, steps in scenarios:
        ns = namespace(side, scenario)
        tasks, entries = [], []
        for i, step in enumerate(steps):
            reg = "r%d" % i
            args = dict(step["args"], namespace=ns)
            task = {"name": "%s step %d" % (scenario, i), SIDES[side]["prefix"] + step["module"]: args,
                    "register": reg, "ignore_errors": True}
            if step["check"]:
                task["check_mode"] = True
            if step["diff"]:
                task["diff"] = True
            tasks.append(task)
            snap = workdir / ("%s.%d.json" % (scenario, i))
            parts = (sys.executable, READER, reader_config, snap, ns, read_name(step))
            cmd = " ".join(shlex.quote(str(part)) for part in parts)
            tasks.append({"name": "%s step %d: read the VM" % (scenario, i),
                          "ansible.builtin.set_fact": {"compat_read": "{{ lookup('ansible.builtin.pipe', %s) }}"
                                                       % json.dumps(cmd)},
                          "check_mode": False, "ignore_errors": True})
            entries.append((i, reg, snap))
        results = workdir / ("%s.results.json" % scenario)
        mapping = ", ".join("%s: %s" % (json.dumps(entry[1]), entry[1]) for entry in entries)
        tasks.append({"name": "%s: write every registered result" % scenario, "ansible.builtin.copy": {
            "content": "{{ {%s} | to_json }}" % mapping, "dest": str(results), "mode": "0600"}, "check_mode": False})
        (workdir / ("%s.yml" % scenario)).write_text(yaml.safe_dump(tasks, sort_keys=False))
        index[scenario] = (results, entries)
    play = [{"name": "compat %s" % side, "hosts": "all", "gather_facts": False, "strategy": "free",
             "tasks": [{"name": "run the scenario of this host",
                        "ansible.builtin.include_tasks": str(workdir) + "/{{ inventory_hostname }}.yml"}]}]
    path = workdir / "playbook.yml"
    path.write_text(yaml.safe_dump(play, sort_keys=False))
    binary = REF_VENV / "bin" if side == "ref" else OUR_BIN
    inventory = {"all": {"vars": {"ansible_connection": "local", "ansible_python_interpreter": str(binary / "python")},
                         "hosts": dict((scenario[0], None) for scenario in scenarios)}}
    (workdir / "inventory.yml").write_text(yaml.safe_dump(inventory))
    return path, index


def command(side, path):
    binary = REF_VENV / "bin" if side == "ref" else OUR_BIN
    return [str(binary / "ansible-playbook"), "-i", str(Path(path).parent / "inventory.yml"), str(path)]


def environment(side, kubeconfig, workdir):
    env = dict(os.environ)
    env["K8S_AUTH_KUBECONFIG"] = str(kubeconfig)
    env["KUBECONFIG"] = str(kubeconfig)
    env["ANSIBLE_LOCAL_TEMP"] = str(Path(workdir) / ("tmp-%s" % side))
    env["ANSIBLE_NOCOLOR"] = "1"
    env["ANSIBLE_RETRY_FILES_ENABLED"] = "0"
    env["ANSIBLE_FORKS"] = str(FORKS)
    env["ANSIBLE_HOST_KEY_CHECKING"] = "0"
    env.pop("PYTHONPATH", None)
    if side == "ref":
        # kubevirt.core and kubernetes.core come from the reference venv's own ansible_collections.
        empty = Path(workdir) / "no-collections"
        empty.mkdir(exist_ok=True)
        env["ANSIBLE_COLLECTIONS_PATH"] = str(empty)
    else:
        env["ANSIBLE_COLLECTIONS_PATH"] = str(REPO / ".build" / "collections")
    return env


def run_both(scenarios, workdir, kubeconfig, reader_config):
    """Run both playbooks at once (separate namespaces); {side: (index, exit code, seconds)} with index as
    playbook() returns it."""
    procs = {}
    started = time.monotonic()
    for side in ("ref", "our"):
        path, index = playbook(side, scenarios, workdir, reader_config)
        log = open(Path(workdir) / ("%s.log" % side), "w")
        proc = subprocess.Popen(command(side, path), env=environment(side, kubeconfig, workdir), stdout=log,
                                stderr=subprocess.STDOUT, cwd=str(workdir))
        procs[side] = (index, proc, log)
    out = {}
    while procs:
        for side in list(procs):
            index, proc, log = procs[side]
            if proc.poll() is not None:
                log.close()
                out[side] = (index, proc.returncode, round(time.monotonic() - started, 1))
                del procs[side]
        time.sleep(0.2)
    return out
