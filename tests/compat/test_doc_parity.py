"""Documentation parity with kubevirt.core 2.3.0: `ansible-doc -j` of every same-named plugin, option by option.

For the three modules and the inventory plugin, the options kubevirt.core documents (recursively into
suboptions) are compared with ours on type, default, choices, aliases, required and elements. Each difference
becomes a key ``<plugin>:option:options.<name>[.suboptions.<name>].<attr>`` that must match a row of the
intended-differences table (docs/migrating-from-kubevirt-core.md, read by tests.compat.difftable).

Options, choices and aliases that only we have are additions (the collection is a superset) and pass. An
option, alias or choice of kubevirt.core that we lack fails whatever the table says: a playbook or inventory
file written for kubevirt.core would stop working.

Both sides run in isolation: the reference virtualenv (.venv-ref) sees only the collections installed in it
(kubevirt.core from the `ansible` package), ours sees only .build/collections.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.compat.difftable import Table

REPO = Path(__file__).resolve().parents[2]
REF_VENV = REPO / ".venv-ref"
OUR_BIN = Path(sys.executable).parent
OUR_COLLECTIONS = REPO / ".build" / "collections"

# our plugin key -> (ansible-doc type, plugin name); the keys are the table's plugin names.
PLUGINS = {
    "kubevirt_vm": ("module", "kubevirt_vm"),
    "kubevirt_vm_info": ("module", "kubevirt_vm_info"),
    "kubevirt_vmi_info": ("module", "kubevirt_vmi_info"),
    "inventory": ("inventory", "kubevirt"),
}
SIDES = {"ref": "kubevirt.core.", "our": "virtfleet.kubevirt."}
ATTRIBUTES = ("type", "default", "choices", "aliases", "required", "elements")
# Spellings Ansible's config and argument spec systems treat as the same type.
TYPE_SYNONYMS = {"boolean": "bool", "string": "str", "integer": "int", "dictionary": "dict"}


def _environment(side, workdir):
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.pop("ANSIBLE_CONFIG", None)
    env["ANSIBLE_HOME"] = str(workdir / ("home-" + side))
    env["ANSIBLE_NOCOLOR"] = "1"
    env["ANSIBLE_DEPRECATION_WARNINGS"] = "0"
    if side == "ref":
        # kubevirt.core (and kubernetes.core) come from the reference venv's own site-packages; an empty
        # collections path keeps our collection (and anything in ~/.ansible) out of its sight.
        empty = workdir / "no-collections"
        empty.mkdir(exist_ok=True)
        env["ANSIBLE_COLLECTIONS_PATH"] = str(empty)
    else:
        # Only our checkout: a kubevirt.core installed next to ansible-core in our venv must not answer.
        env["ANSIBLE_COLLECTIONS_PATH"] = str(OUR_COLLECTIONS)
        env["ANSIBLE_COLLECTIONS_SCAN_SYS_PATH"] = "False"
    return env


def _command(side, names):
    """ansible-doc -j for our table keys `names`, all of one plugin type."""
    binary = (REF_VENV / "bin" if side == "ref" else OUR_BIN) / "ansible-doc"
    kind = PLUGINS[names[0]][0]
    return [str(binary), "-t", kind, "-j"] + [SIDES[side] + PLUGINS[name][1] for name in names]


def _run(jobs, workdir):
    """Run [(side, names)] in parallel; {(side, names): (command, rc, stdout, stderr)}."""
    procs = []
    for side, names in jobs:
        cmd = _command(side, names)
        procs.append(((side, names), cmd, subprocess.Popen(cmd, env=_environment(side, workdir), cwd=str(workdir),
                                                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
    done = {}
    for job, cmd, proc in procs:
        out, err = proc.communicate(timeout=300)
        done[job] = (cmd, proc.returncode, out, err)
    return done


@pytest.fixture(scope="session")
def documentation(tmp_path_factory):
    """{side: {table plugin key: doc or error sentence}}: one ansible-doc per side and plugin type, in parallel;
    when one fails (a plugin whose documentation does not parse), each of its plugins is asked alone, so only
    the broken plugin's test fails."""
    if not (REF_VENV / "bin" / "ansible-doc").exists():
        pytest.fail("The reference virtualenv %s (ansible with kubevirt.core 2.3.0) is missing: `make venv` builds it."
                    % REF_VENV, pytrace=False)
    workdir = tmp_path_factory.mktemp("doc-parity")
    kinds = {}
    for name, (kind, _name) in sorted(PLUGINS.items()):
        kinds.setdefault(kind, []).append(name)
    docs = {"ref": {}, "our": {}}
    jobs = [(side, tuple(names)) for side in SIDES for names in kinds.values()]
    while jobs:
        retry = []
        for (side, names), (cmd, rc, out, err) in _run(jobs, workdir).items():
            if rc == 0 and out.strip():
                for fqcn, entry in json.loads(out).items():
                    key = fqcn[len(SIDES[side]):]
                    docs[side]["inventory" if key == "kubevirt" else key] = entry["doc"]
            elif len(names) > 1:
                retry += [(side, (name,)) for name in names]
            else:
                docs[side][names[0]] = "%s failed (rc %s):\n%s" % (" ".join(cmd), rc, err[-3000:])
        jobs = retry
    return docs


def _docs(documentation, plugin):
    ref, our = documentation["ref"][plugin], documentation["our"][plugin]
    for doc in (ref, our):
        if isinstance(doc, str):
            pytest.fail(doc, pytrace=False)
    return ref, our


def test_each_side_reads_only_its_own_collection(documentation):
    for key in PLUGINS:
        ref, our = documentation["ref"][key], documentation["our"][key]
        if isinstance(ref, str) or isinstance(our, str):
            continue  # reported by test_documented_options_match_kubevirt_core
        assert ref["collection"] == "kubevirt.core", key
        assert Path(ref["filename"]).resolve().is_relative_to(REF_VENV.resolve()), ref["filename"]
        assert our["collection"] == "virtfleet.kubevirt", key
        assert Path(our["filename"]).resolve().is_relative_to(REPO.resolve()), our["filename"]
        assert not Path(our["filename"]).resolve().is_relative_to(REF_VENV.resolve()), our["filename"]


def flatten(options, prefix="options"):
    """{'options.a': spec, 'options.a.suboptions.b': spec, ...}"""
    out = {}
    for name, spec in (options or {}).items():
        path = "%s.%s" % (prefix, name)
        out[path] = spec
        out.update(flatten(spec.get("suboptions"), path + ".suboptions"))
    return out


def _names(value):
    if isinstance(value, dict):  # choices documented with a description each
        return set(value)
    return set(value or ())


def normalise(spec, attribute, plugin_names=None):
    """What the attribute means to Ansible: an undocumented type is str, required defaults to false, order of
    choices/aliases does not matter. plugin_names maps kubevirt.core's FQCN to ours (the inventory `plugin` value)."""
    value = spec.get(attribute)
    if attribute == "type":
        return TYPE_SYNONYMS.get(value or "str", value or "str")
    if attribute == "required":
        return bool(value)
    if attribute in ("choices", "aliases"):
        names = _names(value)
        return frozenset(plugin_names.get(n, n) for n in names) if plugin_names else frozenset(names)
    return value


def differences(plugin, ref_doc, our_doc):
    """(excusable, inexcusable): excusable is [(key, theirs, ours)], inexcusable is [sentence]."""
    ref_opts, our_opts = flatten(ref_doc.get("options")), flatten(our_doc.get("options"))
    # The inventory file's `plugin` value names the plugin itself: kubevirt.core.kubevirt is ours' FQCN there.
    plugin_names = {"kubevirt.core.kubevirt": "virtfleet.kubevirt.kubevirt"} if plugin == "inventory" else None
    excusable, inexcusable = [], []
    for path in sorted(ref_opts):
        theirs = ref_opts[path]
        ours = our_opts.get(path)
        if ours is None:
            inexcusable.append("%s:option:%s: kubevirt.core documents this option, we do not" % (plugin, path))
            continue
        for attribute in ATTRIBUTES:
            names = plugin_names if path == "options.plugin" else None
            a, b = normalise(theirs, attribute, names), normalise(ours, attribute, names)
            if a == b:
                continue
            key = "%s:option:%s.%s" % (plugin, path, attribute)
            if attribute in ("choices", "aliases"):
                missing = a - b
                if missing:
                    inexcusable.append("%s: kubevirt.core accepts %s, we do not (kubevirt.core %s, ours %s)" % (
                        key, sorted(missing), sorted(a), sorted(b)))
                continue  # what only we accept is an addition
            excusable.append((key, theirs.get(attribute), ours.get(attribute)))
    return excusable, inexcusable


@pytest.mark.parametrize("plugin", sorted(PLUGINS))
def test_documented_options_match_kubevirt_core(plugin, documentation):
    table = Table.load()
    excusable, inexcusable = differences(plugin, *_docs(documentation, plugin))
    unexplained = ["%s: kubevirt.core %r, ours %r" % (key, theirs, ours)
                   for key, theirs, ours in excusable if table.match(key) is None]
    problems = []
    if inexcusable:
        problems.append("Missing in ours (no table row can excuse these):\n  " + "\n  ".join(inexcusable))
    if unexplained:
        problems.append("Differences that match no row of the intended-differences table in "
                        "docs/migrating-from-kubevirt-core.md:\n  " + "\n  ".join(unexplained))
    assert not problems, "\n".join(problems)


def test_comparison_rules():
    """The rules above on small documents (no ansible-doc needed)."""
    ref = {"options": {"a": {"type": "str", "choices": ["x", "y"], "aliases": ["al"]},
                       "b": {"required": True, "suboptions": {"c": {"type": "int", "default": 1}}},
                       "d": {}, "gone": {"type": "bool"},
                       "plugin": {"choices": ["kubevirt", "kubevirt.core.kubevirt"]}}}
    our = {"options": {"a": {"type": "str", "choices": ["y", "x", "z"], "aliases": ["al", "more"]},
                       "b": {"type": "str", "suboptions": {"c": {"type": "int", "default": 2}}},
                       "d": {"type": "string"}, "new": {"type": "bool"},
                       "plugin": {"type": "str", "choices": ["kubevirt", "virtfleet.kubevirt.kubevirt"]}}}
    excusable, inexcusable = differences("inventory", ref, our)
    assert excusable == [("inventory:option:options.b.required", True, None),
                         ("inventory:option:options.b.suboptions.c.default", 1, 2)]
    assert inexcusable == ["inventory:option:options.gone: kubevirt.core documents this option, we do not"]
    del our["options"]["a"]["aliases"]
    our["options"]["a"]["choices"] = ["x"]
    inexcusable = differences("kubevirt_vm", {"options": {"a": ref["options"]["a"]}}, our)[1]
    assert [m.split(":")[2].split(" ")[0] for m in inexcusable] == ["options.a.choices", "options.a.aliases"]
