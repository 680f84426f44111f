"""Differential tests: every scenario of tests/compat/scenarios.py run with kubevirt.core 2.3.0 and with this
collection against the same emulator, compared after every step (``changed``, the stored VirtualMachine and the
result keys kubevirt.core returns). A difference passes only when a row of the intended-differences table in
docs/migrating-from-kubevirt-core.md allows its ``plugin:area:path`` key.

kubevirt.core runs from the reference virtualenv .venv-ref (``make venv`` builds it).
"""
import json
from pathlib import Path

import pytest

from tests.compat import compare, runner
from tests.compat.difftable import Table
from tests.compat.scenarios import CLUSTER_OBJECTS, scenarios
from tests.summary import record

SCENARIOS = scenarios()


def _load(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _short(value, limit=300):
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[:limit] + "..."


@pytest.fixture(scope="module")
def compat_run(tmp_path_factory):
    """Run both collections once; {scenario: [(step index, step, [(key, ref, our, row id or None)])]}."""
    if not (runner.REF_VENV / "bin" / "ansible-playbook").exists():
        pytest.fail("the reference virtualenv %s (kubevirt.core 2.3.0 from ansible 14.5.0) is missing: run "
                    "`make venv`, which builds it" % runner.REF_VENV, pytrace=False)
    from tests.kubeapi.harness import Emulator

    workdir = tmp_path_factory.mktemp("compat")
    emu = Emulator(workdir / "emu", tls=True, controllers=("virt", "cdi"), timing="fast")
    emu.start()
    try:
        for obj in CLUSTER_OBJECTS:
            emu.apply_object(obj)
        for name, _ in SCENARIOS:
            for side in runner.SIDES:
                emu.apply_object({"apiVersion": "v1", "kind": "Namespace",
                                  "metadata": {"name": runner.namespace(side, name)}})
        reader_config = workdir / "reader.json"
        reader_config.write_text(json.dumps({"url": emu.url, "token": emu.admin_token, "ca_file": str(emu.ca_file)}))
        runs = runner.run_both(SCENARIOS, workdir, emu.kubeconfig, reader_config)
    finally:
        emu.stop()
    for side, (index, code, _) in runs.items():
        missing = [name for name, (results, _) in index.items() if _load(results) is None]
        if missing:
            log = (workdir / ("%s.log" % side)).read_text()
            pytest.fail("the %s playbook wrote no results for %s (exit %s):\n%s" % (side, ", ".join(missing), code,
                                                                                  log[-4000:]), pytrace=False)
    return _compare(runs)


def _attribute(diffs):
    """A ``changed`` difference the table does not list is explained by an intended difference of the same step
    (e.g. kubevirt.core's write sends ``spec.running: true`` where ours writes nothing: row running-default)."""
    rows = [row for key, _, _, row in diffs if row and not key.endswith(":result:changed")]
    return [(key, a, b, row or (rows[0] if rows and key.endswith(":result:changed") else None))
            for key, a, b, row in diffs]


def _compare(runs):
    table = Table.load()
    ref_index, _, ref_seconds = runs["ref"]
    our_index, _, our_seconds = runs["our"]
    out = {}
    for name, steps in SCENARIOS:
        ref_results, ref_entries = ref_index[name]
        our_results, our_entries = our_index[name]
        ref_results, our_results = _load(ref_results), _load(our_results)
        ref_ns, our_ns = runner.namespace("ref", name), runner.namespace("our", name)
        out[name] = []
        for (i, reg, ref_snap), (_, _, our_snap) in zip(ref_entries, our_entries):
            step = steps[i]
            diffs = list(compare.result_differences(step, ref_results.get(reg), our_results.get(reg), ref_ns, our_ns))
            diffs += list(compare.vm_differences(_load(ref_snap), _load(our_snap), ref_ns, our_ns))
            out[name].append((i, step, _attribute([(key, a, b, table.match(key)) for key, a, b in diffs])))
    n_steps = sum(len(s) for s in out.values())
    seen = sorted(set(row for s in out.values() for _, _, diffs in s for _, _, _, row in diffs if row))
    unlisted = sum(1 for s in out.values() for _, _, diffs in s for _, _, _, row in diffs if not row)
    record("compat", "compat: %d scenarios, %d steps run with both collections; intended differences seen: %s; "
                     "unlisted differences: %d" % (len(out), n_steps, ", ".join(seen) or "none", unlisted))
    record("compat", "compat: playbook wall time (run side by side): kubevirt.core %ss, virtfleet.kubevirt %ss"
           % (ref_seconds, our_seconds))
    return out


@pytest.mark.parametrize("scenario", [name for name, _ in SCENARIOS])
def test_same_behaviour_as_kubevirt_core(compat_run, scenario):
    problems = []
    for i, step, diffs in compat_run[scenario]:
        for key, ref, our, row in diffs:
            if row is None:
                problems.append("step %d (%s %s%s): %s\n    kubevirt.core: %s\n    virtfleet:     %s" % (
                    i, step["module"], _short(step["args"], 160), " check_mode" * step["check"] + " diff" * step["diff"],
                    key, _short(ref), _short(our)))
    assert not problems, "scenario %s: differences not in the intended-differences table:\n%s" % (
        scenario, "\n".join(problems))
