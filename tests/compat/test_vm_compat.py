"""Differential tests: every scenario of tests/compat/scenarios.py run with kubevirt.core 2.3.0 and with this
collection against the same emulator, compared after every step (``changed``, the stored VirtualMachine and the
result keys kubevirt.core returns). A difference passes only when a row of the intended-differences table in
docs/migrating-from-kubevirt-core.md allows its ``plugin:area:path`` key.

kubevirt.core runs from the reference virtualenv .venv-ref (``make venv`` builds it).
"""
import collections
import json
from pathlib import Path

import pytest

from tests.compat import compare, runner
from tests.compat.difftable import Table
from tests.compat.scenarios import CLUSTER_OBJECTS, scenarios
from tests.summary import record

SCENARIOS = scenarios()
Diff = collections.namedtuple("Diff", "key ref our row")
Step = collections.namedtuple("Step", "index step diffs ref our ref_vm our_vm")


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
    """Run both collections once; {scenario: [Step]}."""
    if not (runner.REF_VENV / "bin" / "ansible-playbook").exists():
        pytest.fail("the reference virtualenv %s (kubevirt.core 2.3.0 from ansible 14.5.0) is missing: run "
                    "`make venv`, which builds it" % runner.REF_VENV, pytrace=False)
    from tests.conftest import emulator_class

    workdir = tmp_path_factory.mktemp("compat")
    emu = emulator_class()(workdir / "emu", tls=True, controllers=("virt", "cdi"), timing="fast")
    emu.start()
    try:
        for obj in CLUSTER_OBJECTS:
            emu.apply_object(obj)
        for scenario in SCENARIOS:
            for side in runner.SIDES:
                emu.apply_object({"apiVersion": "v1", "kind": "Namespace",
                                  "metadata": {"name": runner.namespace(side, scenario[0])}})
        reader_config = workdir / "reader.json"
        reader_config.write_text(json.dumps({"url": emu.url, "token": emu.admin_token, "ca_file": str(emu.ca_file)}))
        runs = runner.run_both(SCENARIOS, workdir, emu.kubeconfig, reader_config)
    finally:
        emu.stop()
    for side, (index, code, seconds) in runs.items():
        missing = [name for name, files in index.items() if _load(files[0]) is None]
        if missing:
            log = (workdir / ("%s.log" % side)).read_text()
            pytest.fail("the %s playbook wrote no results for %s (exit %s after %ss):\n%s"
                        % (side, ", ".join(missing), code, seconds, log[-4000:]), pytrace=False)
    return _compare(runs)


def _compare(runs):
    table = Table.load()
    ref_index, our_index = runs["ref"][0], runs["our"][0]
    out = {}
    for name, steps in SCENARIOS:
        ref_file, ref_entries = ref_index[name]
        our_file, our_entries = our_index[name]
        ref_results, our_results = _load(ref_file) or {}, _load(our_file) or {}
        ref_ns, our_ns = runner.namespace("ref", name), runner.namespace("our", name)
        out[name] = []
        for (i, reg, ref_snap), our_entry in zip(ref_entries, our_entries):
            step = steps[i]
            ref_vm, our_vm = _load(ref_snap), _load(our_entry[2])
            found = list(compare.result_differences(step, ref_results.get(reg), our_results.get(reg), ref_ns, our_ns))
            found += list(compare.vm_differences(ref_vm, our_vm, ref_ns, our_ns))
            out[name].append(Step(i, step, [Diff(key, a, b, table.match(key)) for key, a, b in found],
                                  ref_results.get(reg) or {}, our_results.get(reg) or {},
                                  (ref_vm or {}).get("object"), (our_vm or {}).get("object")))
    diffs = [d for steps in out.values() for step in steps for d in step.diffs]
    seen = sorted(set(d.row for d in diffs if d.row))
    record("compat", "compat: %d scenarios, %d steps run with both collections; intended differences seen: %s; "
                     "unlisted differences: %d" % (len(out), sum(len(s) for s in out.values()),
                                                   ", ".join(seen) or "none", len([d for d in diffs if not d.row])))
    record("compat", "compat: playbook wall time (run side by side): kubevirt.core %ss, virtfleet.kubevirt %ss"
           % (runs["ref"][2], runs["our"][2]))
    return out


@pytest.mark.parametrize("scenario", [scenario[0] for scenario in SCENARIOS])
def test_same_behaviour_as_kubevirt_core(compat_run, scenario):
    problems = []
    for step in compat_run[scenario]:
        mode = " check_mode" * step.step["check"] + " diff" * step.step["diff"]
        for diff in step.diffs:
            if diff.row is None:
                problems.append("step %d (%s %s%s): %s\n    kubevirt.core: %s\n    virtfleet:     %s" % (
                    step.index, step.step["module"], _short(step.step["args"], 160), mode, diff.key,
                    _short(diff.ref), _short(diff.our)))
    assert not problems, "scenario %s: differences not in the intended-differences table:\n%s" % (
        scenario, "\n".join(problems))


def test_relabel_and_stop_keeps_the_spec(compat_run):
    """The safety case of issue #13: a task that names fewer fields (labels + state) never strips the VM."""
    steps = compat_run["relabel-and-stop"]
    first, stopped, started = (step.our_vm for step in steps)
    assert first and stopped and started, "the VM is missing after a step"
    for later in (stopped, started):
        assert later["spec"]["template"]["spec"] == first["spec"]["template"]["spec"]
        for field in ("dataVolumeTemplates", "preference"):
            assert later["spec"][field] == first["spec"][field]
        assert later["metadata"]["annotations"]["owner"] == "team-a"
        assert later["metadata"]["labels"] == {"app": "web", "tier": "front"}
    assert stopped["spec"]["runStrategy"] == "Halted" and started["spec"]["runStrategy"] == "Always"
    changed = [(step.ref.get("changed"), step.our.get("changed")) for step in steps]
    assert all(ref == our for ref, our in changed), changed
    record("compat", "compat: relabel-and-stop (create with a full spec, labels + stopped, labels + started): template "
                     "spec, dataVolumeTemplates, preference and annotations identical after each step; changed "
                     "(kubevirt.core, virtfleet) = %s" % changed)
