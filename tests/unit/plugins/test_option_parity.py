"""The option tables and the documentation say the same: kubevirt_vm's argument spec (built from the per-VM option
table, _vm_options.VM_OPTIONS, and the module's task options) against its DOCUMENTATION, and the inventory's
per-cluster option table and address strategies against the plugin's DOCUMENTATION.

Adding a table row without documenting it (or documenting it differently) fails here; the *_is_caught tests show
that it does. The shared connection and wait options are checked against their doc fragments in test_args.py.
"""
import re

import pytest
import yaml

from ansible_collections.virtfleet.kubevirt.plugins.inventory import kubevirt as inventory_plugin
from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _args
from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _vm_options as vo
from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _vm_spec as vs
from ansible_collections.virtfleet.kubevirt.plugins.modules import kubevirt_vm
from ansible_collections.virtfleet.kubevirt.plugins.plugin_utils import _inventory_address as address
from ansible_collections.virtfleet.kubevirt.plugins.plugin_utils import _inventory_options as inv

ATTRIBUTES = ("type", "default", "choices", "elements", "aliases", "required")
# Inventory option kind -> (documented type, documented elements).
KIND_DOC = {"str": ("str", None), "bool": ("bool", None), "int": ("int", None), "list": ("list", "str"),
            "intlist": ("list", "int")}


def _normal(entry, attr):
    """One attribute of an argument spec entry or a documented option, with Ansible's defaults filled in."""
    value = entry.get(attr)
    if attr == "type":
        return value or "str"
    if attr == "required":
        return bool(value)
    if attr in ("choices", "aliases"):
        return list(value) if value else None
    return value


def spec_doc_problems(spec, doc, where=""):
    """Differences between an argument spec and documented options, recursively into suboptions."""
    problems = []
    for name in sorted(set(spec) - set(doc)):
        problems.append("%s%s is in the argument spec but not documented" % (where, name))
    for name in sorted(set(doc) - set(spec)):
        problems.append("%s%s is documented but not in the argument spec" % (where, name))
    for name in sorted(set(spec) & set(doc)):
        for attr in ATTRIBUTES:
            have, said = _normal(spec[name], attr), _normal(doc[name], attr)
            if have != said:
                problems.append("%s%s: %s is %r in the argument spec, %r in the documentation" % (where, name, attr, have, said))
        problems += spec_doc_problems(spec[name].get("options") or {}, doc[name].get("suboptions") or {},
                                      "%s%s." % (where, name))
    return problems


def vm_doc_problems():
    """kubevirt_vm: its argument spec without the fragment-only options against its DOCUMENTATION options."""
    doc = yaml.safe_load(kubevirt_vm.DOCUMENTATION)["options"]
    spec = kubevirt_vm.argument_spec()
    fragment_only = (set(_args.AUTH_ARG_SPEC) | set(_args.WAIT_ARG_SPEC)) - set(doc)
    return spec_doc_problems(dict((k, v) for k, v in spec.items() if k not in fragment_only), doc)


def inventory_doc_problems(table=None, strategies=None):
    """The inventory: every per-cluster option and the strategies against the plugin's DOCUMENTATION options."""
    table = inv.CLUSTER_OPTION_TABLE if table is None else table
    strategies = address.STRATEGIES if strategies is None else strategies
    doc = yaml.safe_load(inventory_plugin.DOCUMENTATION)["options"]
    problems = []
    known = set(o.name for o in table) | set(inv.SOURCE_OPTIONS)
    problems += ["%s is documented but in neither CLUSTER_OPTION_TABLE nor SOURCE_OPTIONS" % n for n in sorted(set(doc) - known)]
    for option in table:
        if option.name not in doc:
            problems.append("%s is in CLUSTER_OPTION_TABLE but not documented" % option.name)
            continue
        documented = doc[option.name]
        doc_type, elements = KIND_DOC[option.kind]
        expected = {"type": doc_type, "elements": elements, "default": option.default,
                    "choices": list(option.choices) if option.choices else None,
                    "aliases": list(option.aliases) or None}
        for attr, value in expected.items():
            said = _normal(documented, attr)
            if said != value:
                problems.append("%s: %s is %r in CLUSTER_OPTION_TABLE, %r in the documentation" % (option.name, attr, value, said))
    said = doc.get("address_strategies", {}).get("choices")
    if said != list(strategies):
        problems.append("address_strategies choices are %r in the documentation, STRATEGIES are %r" % (said, list(strategies)))
    text = " ".join(doc.get("address_strategies", {}).get("description", []))
    problems += ["strategy %s is not described in address_strategies" % s for s in strategies if "C(%s)" % s not in text]
    return problems


# --- kubevirt_vm ------------------------------------------------------------------------------------------------

def test_kubevirt_vm_spec_equals_its_documentation():
    assert vm_doc_problems() == []


def test_vms_suboptions_are_the_per_vm_options():
    doc = yaml.safe_load(kubevirt_vm.DOCUMENTATION)["options"]
    suboptions = doc["vms"]["suboptions"]
    assert list(suboptions) == list(vs.PER_VM_OPTIONS)
    assert spec_doc_problems(vs.vm_option_spec(for_item=True), suboptions, "vms.") == []


def test_vms_description_names_every_per_vm_option_and_the_merged_ones():
    text = " ".join(yaml.safe_load(kubevirt_vm.DOCUMENTATION)["options"]["vms"]["description"])
    listed = text.split("); the top-level values", maxsplit=1)[0]
    assert re.findall(r"O\((\w+)\)", listed.split("per-VM options (", 1)[1]) == list(vs.PER_VM_OPTIONS)
    merged = text.split("except ", 1)[1].split("which are merged")[0]
    assert tuple(re.findall(r"O\((\w+)\)", merged)) == vs.MERGED_DICT_OPTIONS


def test_top_level_per_vm_options_are_documented_like_the_vms_suboptions():
    """A per-VM option means the same at the top level and in a `vms` item (only `state` differs: its default)."""
    doc = yaml.safe_load(kubevirt_vm.DOCUMENTATION)["options"]
    for name in vs.PER_VM_OPTIONS:
        for attr in ("type", "choices", "elements", "aliases"):
            assert _normal(doc[name], attr) == _normal(doc["vms"]["suboptions"][name], attr), (name, attr)


def test_an_undocumented_vm_option_is_caught(monkeypatch):
    monkeypatch.setattr(vo, "VM_OPTIONS", vo.VM_OPTIONS + (vo._convenience("hugepages", dict(type="str")),))
    problems = vm_doc_problems()
    assert "hugepages is in the argument spec but not documented" in problems
    assert "vms.hugepages is in the argument spec but not documented" in problems


def test_a_differently_documented_vm_option_is_caught(monkeypatch):
    changed = tuple(o._replace(spec=dict(o.spec, choices=["Always"])) if o.name == "run_strategy" else o
                    for o in vo.VM_OPTIONS)
    monkeypatch.setattr(vo, "VM_OPTIONS", changed)
    problems = vm_doc_problems()
    assert any(p.startswith("run_strategy: choices is ['Always']") for p in problems)
    assert any(p.startswith("vms.run_strategy: choices") for p in problems)


# --- inventory --------------------------------------------------------------------------------------------------

def test_inventory_options_equal_their_documentation():
    assert inventory_doc_problems() == []


def test_inventory_strategy_choices_are_the_strategies():
    doc = yaml.safe_load(inventory_plugin.DOCUMENTATION)["options"]
    assert doc["address_strategies"]["choices"] == list(address.STRATEGIES)


def test_an_undocumented_cluster_option_or_strategy_is_caught():
    table = inv.CLUSTER_OPTION_TABLE + (inv._option("vm_label_prefix", "str"),)
    assert inventory_doc_problems(table=table) == ["vm_label_prefix is in CLUSTER_OPTION_TABLE but not documented"]
    changed = tuple(o._replace(default=2222) if o.name == "ssh_port" else o for o in inv.CLUSTER_OPTION_TABLE)
    assert inventory_doc_problems(table=changed) == ["ssh_port: default is 2222 in CLUSTER_OPTION_TABLE, 22 in the documentation"]
    problems = inventory_doc_problems(strategies=address.STRATEGIES + ("dhcp_lease",))
    assert problems[0].startswith("address_strategies choices are")
    assert problems[1] == "strategy dhcp_lease is not described in address_strategies"


@pytest.mark.parametrize("strategy", address.STRATEGY_TABLE, ids=lambda s: s.name)
def test_every_strategy_is_implemented(strategy):
    if not strategy.uses_services:
        assert callable(getattr(address.AddressChooser, "_" + strategy.name, None))
    if strategy.needs_network_name:
        with pytest.raises(Exception, match="which needs network_name"):
            inv.build_connections({"address_strategies": [strategy.name]})
    else:
        inv.build_connections({"address_strategies": [strategy.name]})
