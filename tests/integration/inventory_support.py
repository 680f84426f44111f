"""Helpers for the inventory plugin's integration tests: a private emulator, bulk loading, ansible-inventory runs.

The inventory tests use their own emulator without controllers, so the cluster-wide lists the plugin makes see
exactly the objects a test loaded, and statuses stay as written (VMIs, VM and Service status included).
"""
import json
import subprocess
import sys
import uuid
from pathlib import Path

import yaml

from tests import conftest
from tests.conftest import kubeapi_env
from tests.integration.conftest import assert_no_deprecation

BIN = Path(sys.executable).parent


# The inventory tests' emulator: no controllers, so statuses stay as loaded; data goes in through the bulk hook.
EMULATOR = {"name": "inventory-emu", "tls": True, "controllers": (), "needs_hooks": True}


def start_emulator(tmp_path_factory, nodes=None):
    return conftest.start_emulator(tmp_path_factory, nodes=nodes, **EMULATOR)


def load(emu, objects):
    """Create objects (statuses included) in one hook call; hook calls are not in the request log."""
    return emu._hook("POST", "bulk", {"objects": list(objects)})  # pylint: disable=protected-access


def namespace(name):
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def unwrap(value):
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return dict((k, unwrap(v)) for k, v in value.items())
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


class InventoryRun(object):
    def __init__(self, proc, requests, source):
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.requests = requests
        self.source = source
        self._data = None

    @property
    def raw(self):
        """--list output as printed: strings from plugins show as {"__ansible_unsafe": ...} (never templated)."""
        return json.loads(self.stdout)

    @property
    def data(self):
        if self._data is None:
            self._data = unwrap(self.raw)
        return self._data

    @property
    def err(self):
        """stderr with whitespace collapsed (ansible-core 2.16 wraps long warnings and errors)."""
        return " ".join(self.stderr.split())

    @property
    def hostvars(self):
        return self.data["_meta"]["hostvars"]

    def hosts(self, prefix=""):
        return sorted(h for h in self.hostvars if h.startswith(prefix))

    def group_hosts(self, group):
        """Hosts directly in a group (--list layout)."""
        return sorted(self.data.get(group, {}).get("hosts", []))

    def children(self, group):
        return sorted(self.data.get(group, {}).get("children", []))

    def __repr__(self):
        return "InventoryRun(rc=%s)\nstdout: %s\nstderr: %s" % (self.rc, self.stdout[-3000:], self.stderr[-3000:])


def write_source(workdir, config, filename="kubevirt.yml"):
    directory = Path(workdir) / ("src-" + uuid.uuid4().hex[:8])
    directory.mkdir(parents=True)
    path = directory / filename
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def base_env(emu, workdir, env=None):
    env = dict(env if env is not None else kubeapi_env(emu))
    env.update({"ANSIBLE_NOCOLOR": "1", "ANSIBLE_INVENTORY_UNPARSED_FAILED": "1",
                "ANSIBLE_LOCAL_TEMP": str(Path(workdir) / "tmp"), "ANSIBLE_HOME": str(Path(workdir) / "ansible-home"),
                "ANSIBLE_DEPRECATION_WARNINGS": "1"})
    return env


def run_inventory(emu, workdir, config, args=("--list",), env=None, filename="kubevirt.yml", binary=None, source=None):
    """Run ansible-inventory on a generated source file; returns the result and the HTTP requests it made."""
    source = source or write_source(workdir, config, filename)
    mark = emu.mark()
    proc = subprocess.run([str(binary or BIN / "ansible-inventory"), "-i", str(source)] + list(args),
                          env=base_env(emu, workdir, env), capture_output=True, text=True, timeout=300, check=False)
    assert_no_deprecation(proc.stderr)
    return InventoryRun(proc, emu.requests(since=mark), source)


def run_play(emu, workdir, config, tasks, env=None, limit=None):
    """Run a play over the inventory's hosts (no connection: tasks must be debug/assert/set_fact)."""
    source = write_source(workdir, config)
    play = [{"hosts": "all", "gather_facts": False, "tasks": tasks}]
    playbook = Path(workdir) / ("play-%s.yml" % uuid.uuid4().hex[:8])
    playbook.write_text(yaml.safe_dump(play, sort_keys=False))
    cmd = [str(BIN / "ansible-playbook"), "-i", str(source), str(playbook)]
    if limit:
        cmd += ["--limit", limit]
    proc = subprocess.run(cmd, env=base_env(emu, workdir, env), capture_output=True, text=True, timeout=300, check=False)
    assert_no_deprecation(proc.stdout + proc.stderr)
    return proc
