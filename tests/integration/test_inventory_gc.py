"""gc_freeze: the inventory is frozen out of cyclic collections after a refresh, and a later refresh still frees it.

Runs ansible-core's InventoryManager in a child process (the freeze is process-wide), refreshes it the way
``meta: refresh_inventory`` does, and checks with a weak reference that the replaced inventory's hosts were freed.
Frozen counts are compared with the child's own before the inventory: Python 3.12 already counts a few hundred
immortal objects there (its collections move them into the frozen generation), 3.11 and 3.13 none.
"""
import json
import subprocess
import sys

from tests.conftest import COLLECTIONS
from tests.unit.plugins.inventory.objects import vm, vmi

from .inventory_support import EMULATOR as INVENTORY_EMULATOR
from .inventory_support import base_env, namespace, write_source

CHILD = r"""
import gc, json, sys, weakref
from ansible.plugins.loader import init_plugin_loader
init_plugin_loader([sys.argv[2]])
from ansible.parsing.dataloader import DataLoader
from ansible.inventory.manager import InventoryManager

gc.collect()
baseline = gc.get_freeze_count()
inventory = InventoryManager(DataLoader(), sources=[sys.argv[1]])
first = {"hosts": len(inventory.hosts), "frozen": gc.get_freeze_count()}
old_host = weakref.ref(inventory.get_host("gc-ns-vm-1"))
inventory.refresh_inventory()
freed_by_refresh = old_host() is None
gc.collect()
print(json.dumps({"baseline": baseline, "first": first, "second": {"hosts": len(inventory.hosts), "frozen": gc.get_freeze_count()},
                  "freed_by_refresh": freed_by_refresh, "freed_by_collect": old_host() is None,
                  "gc_enabled": gc.isenabled()}))
"""


def dataset():
    objects = [namespace("gc-ns")]
    for i in range(20):
        objects += [vm("vm-%d" % i, "gc-ns"), vmi("vm-%d" % i, "gc-ns")]
    return objects


EMULATOR = dict(INVENTORY_EMULATOR, objects=dataset)   # the emu fixture (tests/conftest.py)


def refresh_twice(emu, tmp_path, config):
    source = write_source(tmp_path, dict({"plugin": "virtfleet.kubevirt.kubevirt"}, **config))
    proc = subprocess.run([sys.executable, "-c", CHILD, str(source), str(COLLECTIONS)], env=base_env(emu, tmp_path),
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_inventory_is_frozen_and_a_refresh_frees_the_old_one(emu, tmp_path):
    out = refresh_twice(emu, tmp_path, {})
    assert out["first"]["hosts"] == out["second"]["hosts"] == 20
    assert out["first"]["frozen"] > out["baseline"] + 1000  # the process's objects, the 20 hosts among them
    assert out["second"]["frozen"] > out["baseline"] + 1000
    assert out["freed_by_refresh"] and out["freed_by_collect"], "the inventory replaced by a refresh stayed frozen (leak)"
    assert out["gc_enabled"]


def test_gc_freeze_false_leaves_the_collector_alone(emu, tmp_path):
    out = refresh_twice(emu, tmp_path, {"gc_freeze": False})
    assert out["first"]["frozen"] == out["second"]["frozen"] == out["baseline"]
    assert out["first"]["hosts"] == 20
    assert out["freed_by_collect"]
