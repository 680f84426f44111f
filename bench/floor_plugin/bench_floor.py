# -*- coding: utf-8 -*-
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The benchmark's floor: an inventory plugin that only adds given hosts, groups and variables (bench/README.md).

It reads a ``*.floor.json`` file that ``bench/inventory_bench.py`` writes from our plugin's ``--list`` output
(``{"groups": {name: {"children": [...], "hosts": [...]}}, "hostvars": {host: {...}}}``, string values plain and
untrusted, as an inventory plugin sets them) and adds them with the cheapest calls an inventory plugin has: one
``add_group``/``add_child``/``add_host`` each, every host's variables in one ``Host.vars.update()``, Python's cyclic
garbage collector paused while loading and the result frozen out of it (``gc.freeze()``). No request, no API
object to decode, trim or turn into variables: what is left is ``json.load`` of the variables and ansible-core's own
work, which every inventory plugin pays for the same hosts and variables.

ansible's ``yaml`` inventory plugin is no floor on ansible-core 2.19: it origin-tags and trusts every value and
copies each variable with ``set_variable()`` (55 s and 2 GB for ``--graph`` of 10,000 hosts here).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: bench_floor
short_description: Benchmark floor, adds the hosts, groups and variables of a .floor.json file
description: Used by bench/inventory_bench.py only.
options:
  plugin:
    description: Unused; the file is JSON, not a plugin configuration.
    type: str
"""

import gc
import json

from ansible.plugins.inventory import BaseInventoryPlugin
from ansible.utils.unsafe_proxy import wrap_var

try:
    from ansible.template import trust_as_template  # noqa: F401 pylint: disable=unused-import
    HAS_DATA_TAGGING = True
except ImportError:
    HAS_DATA_TAGGING = False


class InventoryModule(BaseInventoryPlugin):
    NAME = "bench_floor"

    def verify_file(self, path):
        return path.endswith(".floor.json")

    def parse(self, inventory, loader, path, cache=True):
        super(InventoryModule, self).parse(inventory, loader, path, cache)
        enabled = gc.isenabled()
        gc.disable()
        try:
            with open(path) as source:
                data = json.load(source)
            groups = data["groups"]
            for name in groups:
                inventory.add_group(name)
            for name, group in groups.items():
                for child in group.get("children") or ():
                    inventory.add_child(name, child)
                for host in group.get("hosts") or ():
                    inventory.add_host(host, group=name)
            for host, variables in data["hostvars"].items():
                if not HAS_DATA_TAGGING:
                    variables = dict((k, wrap_var(v)) for k, v in variables.items())
                inventory.get_host(host).vars.update(variables)
            del data, groups
        finally:
            if enabled:
                gc.enable()
        gc.freeze()
