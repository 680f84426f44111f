#!/usr/bin/env python
"""Day-2 benchmark: snapshot, restore and live-migrate N VMs — one virtfleet.kubevirt task each
(kubevirt_vm_snapshot, kubevirt_vm_restore, kubevirt_vm_migration) versus the way it is done without this
collection: kubernetes.core.k8s in a loop over hand-written VirtualMachineSnapshot / VirtualMachineRestore /
VirtualMachineInstanceMigration manifests, then kubernetes.core.k8s_info polled with ``until`` — and the
idempotent re-run of ours.

Both sides run through ansible-playbook against the same API server with the simulated KubeVirt controllers (virt,
snapshot; timing ``fast``), each in namespaces of its own holding the same N running VMs (masquerade interface on
the pod network, so they are live-migratable), all started on node01 while the three other nodes were cordoned.
The server (--server) is our Kubernetes API emulator (tests/kubeapi) or a real kube-apiserver + etcd (realk8s)
with our KubeVirt simulation as its client; ``auto``, the default, takes the real one when realk8s is there. The
reference side is kubernetes.core 6.6.0 from the ``ansible`` 14.5.0 package, in the virtualenv of the
differential tests (.venv-ref, ``make bench-venv``).

For each scenario and side the script times the ansible-playbook command (and, inside it, the measured tasks) and
counts the HTTP requests the server received (emulator request log, or the counting proxy in front of the real
server), split into reads (get, list), writes (POST/PUT/PATCH/DELETE) and watches. Each scenario runs --repeat
times, the sides alternating which one goes first, on fresh namespaces; it prints medians and ratios and never
passes or fails on time.

    make bench-venv && .venv/bin/python bench/day2_bench.py                 # 50 VMs, 3 repeats
    .venv/bin/python bench/day2_bench.py --vms 10 --repeat 1 --server emulator

The reference polls every --ref-delay seconds (default 1): one k8s_info list of the namespace per poll, the
cheapest idiomatic wait for many objects (see bench/README.md).
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _servers  # noqa: E402  (bench/ is not a package)

REPO = _servers.REPO

OURS_BIN = REPO / ".venv" / "bin"
REF_BIN = _servers.REF_BIN
COLLECTIONS = _servers.COLLECTIONS
WRITES = ("POST", "PUT", "PATCH", "DELETE")
NODES = ("node01", "node02", "node03", "node04")
SOURCE = "node01"
SNAP = "bench"
SNAP_API = "snapshot.kubevirt.io/v1beta1"
METRICS = ("seconds", "task_seconds", "requests", "reads", "writes", "watches")
SCENARIOS = (("snapshot", "1. snapshot N VMs, wait readyToUse"),
             ("snapshot-rerun", "   re-run (ours only)"),
             ("migrate", "3. migrate every VMI off a node"),
             ("restore", "2. restore N stopped VMs, wait"),
             ("restore-rerun", "   re-run (ours only)"))


def vm_manifest(name, ns, run_strategy="Always"):
    """A VM as users declare it: masquerade binding on the pod network (live-migratable), 64Mi of memory."""
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
            "metadata": {"name": name, "namespace": ns, "labels": {"app": "day2-bench"}},
            "spec": {"runStrategy": run_strategy, "template": {
                "metadata": {"labels": {"app": "day2-bench", "kubevirt.io/domain": name}},
                "spec": {"domain": {"devices": {"interfaces": [{"name": "default", "masquerade": {}}]},
                                    "resources": {"requests": {"memory": "64Mi"}}},
                         "networks": [{"name": "default", "pod": {}}]}}}}


def play(tasks):
    """One play whose measured tasks sit between two clock readings: the tasks' own wall time (without
    ansible-playbook's start-up and exit) is printed as TASK_SECONDS=..."""
    return [{"hosts": "localhost", "gather_facts": False, "tasks": (
        [{"name": "clock before", "ansible.builtin.set_fact": {"bench_t0": "{{ now(utc=true).timestamp() }}"}}]
        + tasks
        + [{"name": "clock after", "ansible.builtin.debug": {
            "msg": "TASK_SECONDS={{ now(utc=true).timestamp() - (bench_t0 | float) }}"}}])}]


# ---- ours: one task per scenario ----

def ours_snapshot(ns, names, timeout):
    return play([{"name": "snapshot %d VMs" % len(names), "virtfleet.kubevirt.kubevirt_vm_snapshot": {
        "namespace": ns, "names": names, "snapshot": SNAP, "wait": True, "wait_timeout": timeout}}])


def ours_restore(ns, names, timeout):
    return play([{"name": "restore %d VMs" % len(names), "virtfleet.kubevirt.kubevirt_vm_restore": {
        "namespace": ns, "names": names, "snapshot": SNAP, "wait": True, "wait_timeout": timeout}}])


def ours_migrate(ns, _names, timeout):
    return play([{"name": "migrate every VMI off %s" % SOURCE, "virtfleet.kubevirt.kubevirt_vm_migration": {
        "namespace": ns, "node": SOURCE, "wait": True, "wait_timeout": timeout}}])


# ---- theirs: kubernetes.core.k8s in a loop, then one k8s_info list polled with until ----

def _count_where(register, field, test):
    """Jinja: how many listed objects have status.<field> passing ``test`` (a selectattr test and its argument)."""
    return ("(%s.resources | map(attribute='status', default={}) | selectattr('%s', 'defined') | selectattr('%s'%s)"
            " | list | length)" % (register, field, field, test))


def _poll(name, api_version, kind, ns, run_label, register, until, timeout, delay):
    return {"name": name, "kubernetes.core.k8s_info": {
        "api_version": api_version, "kind": kind, "namespace": ns, "label_selectors": [run_label]},
        "register": register, "until": until, "retries": max(1, int(timeout / delay)), "delay": delay}


def ref_snapshot(ns, names, timeout, delay):
    return play([
        {"name": "create %d VirtualMachineSnapshots" % len(names), "kubernetes.core.k8s": {
            "state": "present", "definition": {
                "apiVersion": SNAP_API, "kind": "VirtualMachineSnapshot",
                "metadata": {"name": "{{ item }}-%s" % SNAP, "namespace": ns, "labels": {"bench-run": ns}},
                "spec": {"source": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": "{{ item }}"}}}},
         "loop": names},
        _poll("wait until every snapshot is readyToUse", SNAP_API, "VirtualMachineSnapshot", ns, "bench-run=" + ns,
              "snaps", "%s == %d" % (_count_where("snaps", "readyToUse", ""), len(names)), timeout, delay)])


def ref_restore(ns, names, timeout, delay):
    return play([
        {"name": "create %d VirtualMachineRestores" % len(names), "kubernetes.core.k8s": {
            "state": "present", "definition": {
                "apiVersion": SNAP_API, "kind": "VirtualMachineRestore",
                "metadata": {"name": "{{ item }}-%s-restore" % SNAP, "namespace": ns, "labels": {"bench-run": ns}},
                "spec": {"target": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": "{{ item }}"},
                         "virtualMachineSnapshotName": "{{ item }}-%s" % SNAP}}},
         "loop": names},
        _poll("wait until every restore is complete", SNAP_API, "VirtualMachineRestore", ns, "bench-run=" + ns,
              "restores", "%s == %d" % (_count_where("restores", "complete", ""), len(names)), timeout, delay)])


def ref_migrate(ns, _names, timeout, delay):
    return play([
        {"name": "list the VMIs on %s" % SOURCE, "kubernetes.core.k8s_info": {
            "api_version": "kubevirt.io/v1", "kind": "VirtualMachineInstance", "namespace": ns,
            "label_selectors": ["kubevirt.io/nodeName=" + SOURCE]}, "register": "vmis"},
        {"name": "create a VirtualMachineInstanceMigration for each", "kubernetes.core.k8s": {
            "state": "present", "definition": {
                "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstanceMigration",
                "metadata": {"name": "{{ item }}-drain", "namespace": ns, "labels": {"bench-run": ns}},
                "spec": {"vmiName": "{{ item }}"}}},
         "loop": "{{ vmis.resources | map(attribute='metadata.name') | list }}"},
        _poll("wait until every migration Succeeded", "kubevirt.io/v1", "VirtualMachineInstanceMigration", ns,
              "bench-run=" + ns, "migs",
              "%s == (vmis.resources | length)" % _count_where("migs", "phase", ", 'equalto', 'Succeeded'"),
              timeout, delay)])


class Runner(object):
    def __init__(self, server, workdir):
        self.server = server
        self.workdir = Path(workdir)

    def env(self, reference):
        env = dict(os.environ)
        env["K8S_AUTH_KUBECONFIG"] = str(self.server.kubeconfig)
        env["KUBECONFIG"] = str(self.server.kubeconfig)
        env["ANSIBLE_LOCAL_TEMP"] = str(self.workdir / "tmp")
        env["ANSIBLE_NOCOLOR"] = "1"
        # kubernetes.core comes from the reference venv's site-packages (the `ansible` package).
        env["ANSIBLE_COLLECTIONS_PATH"] = str(self.workdir / "no-collections") if reference else str(COLLECTIONS)
        return env

    def run(self, label, playbook, reference):
        binary = REF_BIN if reference else OURS_BIN
        path = self.workdir / ("%s.yml" % label)
        path.write_text(yaml.safe_dump(playbook, sort_keys=False))
        cmd = [str(binary / "ansible-playbook"), "-i", "localhost,", "-c", "local",
               "-e", "ansible_python_interpreter=%s" % (binary / "python"), str(path)]
        mark = self.server.mark()
        started = time.monotonic()
        proc = subprocess.run(cmd, env=self.env(reference), capture_output=True, text=True, check=False)
        seconds = time.monotonic() - started
        entries = [e for e in self.server.requests(since=mark) if not e["path"].startswith("/_emulator")]
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout[-6000:] + proc.stderr[-2000:])
            raise SystemExit("%s failed (exit %s)" % (label, proc.returncode))
        recap = [line for line in proc.stdout.splitlines() if "changed=" in line]
        task = re.search(r"TASK_SECONDS=([0-9.]+)", proc.stdout)
        writes = len([e for e in entries if e["method"] in WRITES])
        watches = len([e for e in entries if e.get("verb") == "watch"])
        row = {"label": label, "seconds": round(seconds, 2),
               "task_seconds": round(float(task.group(1)), 2) if task else None,
               "requests": len(entries), "reads": len(entries) - writes - watches, "writes": writes,
               "watches": watches, "recap": recap[-1].strip() if recap else ""}
        print("  %-22s %7.2f s (tasks %s s) %4d requests: %d reads, %d writes, %d watches" % (
            label, row["seconds"], row["task_seconds"], row["requests"], row["reads"], writes, watches), flush=True)
        return row


# ---- the cluster's state around the measured runs (through the API, not counted) ----

def items(server, path):
    return server.http("GET", path)[1].get("items") or []


def vmis_path(ns):
    return "/apis/kubevirt.io/v1/namespaces/%s/virtualmachineinstances" % ns


def wait_until(what, check, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    raise SystemExit("timed out after %d s waiting for %s" % (timeout, what))


def cordon(server, node, on):
    status, doc = server.http("PATCH", "/api/v1/nodes/" + node, {"spec": {"unschedulable": True if on else None}},
                              content_type="application/merge-patch+json")[:2]
    if status != 200:
        raise SystemExit("cordoning %s: %s %s" % (node, status, doc))


def seed(server, namespaces, names, timeout):
    """N running VMs in each namespace, every VMI on SOURCE (the other nodes cordoned while they start)."""
    for node in NODES[1:]:
        cordon(server, node, True)
    try:
        objs = [vm_manifest(n, ns) for ns in namespaces for n in names]
        for ns in namespaces:
            server.apply_object({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(server.apply_object, objs))

        def running():
            for ns in namespaces:
                got = [v for v in items(server, vmis_path(ns)) if (v.get("status") or {}).get("phase") == "Running"]
                if len(got) < len(names):
                    return False
                if {v["status"].get("nodeName") for v in got} != {SOURCE}:
                    raise SystemExit("a seeded VMI is not on %s" % SOURCE)
            return True
        wait_until("%d VMIs running" % len(objs), running, timeout)
    finally:
        for node in NODES[1:]:
            cordon(server, node, False)


def stop_all(server, namespaces, names, timeout):
    """Restores need stopped VMs: runStrategy Halted for every VM, then wait until their VMIs are gone."""
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(server.apply_object, [vm_manifest(n, ns, "Halted") for ns in namespaces for n in names]))
    wait_until("the VMIs to go", lambda: not any(items(server, vmis_path(ns)) for ns in namespaces), timeout)


def check_done(server, ns, scenario, names):
    """What each side claimed, checked on the server: every snapshot ready, every restore complete, no VMI left
    on the source node."""
    if scenario == "snapshot":
        got = items(server, "/apis/%s/namespaces/%s/virtualmachinesnapshots" % (SNAP_API, ns))
        ready = [s for s in got if (s.get("status") or {}).get("readyToUse")]
        ok = len(ready) == len(names)
    elif scenario == "restore":
        got = items(server, "/apis/%s/namespaces/%s/virtualmachinerestores" % (SNAP_API, ns))
        ok = len([r for r in got if (r.get("status") or {}).get("complete")]) == len(names)
    else:
        got = items(server, vmis_path(ns))
        ok = len(got) == len(names) and all((v.get("status") or {}).get("nodeName") != SOURCE for v in got)
    if not ok:
        raise SystemExit("%s in %s: the server does not show it done" % (scenario, ns))


def median_row(rows):
    out = {}
    for metric in METRICS:
        values = [r[metric] for r in rows if r.get(metric) is not None]
        out[metric] = round(statistics.median(values), 2) if values else None
        if metric not in ("seconds", "task_seconds") and out[metric] is not None and float(out[metric]).is_integer():
            out[metric] = int(out[metric])
    return out


def ratio(ref, ours):
    if ref is None or ours is None:
        return "-"
    if not ours:
        return "n/a" if not ref else "inf"
    return "%.1fx" % (float(ref) / ours)


def report(summary, n, repeat, server):
    print()
    print("day-2 benchmark: %d VMs, medians of %d runs, on the %s" % (n, repeat, _servers.LABELS[server]))
    print("%-36s %-13s %10s %15s %8s" % ("scenario", "metric", "virtfleet", "kubernetes.core", "ratio"))
    for key, title in SCENARIOS:
        ours, ref = summary[key]["ours"], summary[key].get("ref")
        for metric in METRICS:
            r = ref[metric] if ref else None
            print("%-36s %-13s %10s %15s %8s" % (title if metric == "seconds" else "", metric, ours[metric],
                                                 "-" if r is None else r,
                                                 "-" if metric == "watches" else ratio(r, ours[metric])))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--vms", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3, help="runs per scenario and side (medians are reported)")
    parser.add_argument("--ours-only", action="store_true", help="skip kubernetes.core (no reference venv needed)")
    parser.add_argument("--ref-delay", type=int, default=1, help="seconds between the reference's k8s_info polls")
    parser.add_argument("--timeout", type=int, default=600, help="wait_timeout of both sides")
    _servers.add_argument(parser)
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args()
    _servers.check_prerequisites(args.ours_only)
    server_kind = _servers.resolve(args.server)
    print("day-2 benchmark on the %s" % _servers.LABELS[server_kind], flush=True)
    names = ["vm-%03d" % i for i in range(args.vms)]
    sides = ("ours",) if args.ours_only else ("ours", "ref")
    runs = dict((key, {"ours": [], "ref": []}) for key, _title in SCENARIOS)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="day2-bench-") as tmp:
        server = _servers.start(server_kind, Path(tmp) / "server", controllers=("virt",), timing="fast", nodes=4)
        try:
            runner = Runner(server, tmp)
            for rep in range(args.repeat):
                order = sides if rep % 2 == 0 else tuple(reversed(sides))
                ns = dict((side, "day2-%s-%d" % (side, rep)) for side in sides)
                print("run %d of %d: seeding %d running VMs per side on %s" % (rep + 1, args.repeat, args.vms, SOURCE),
                      flush=True)
                seed(server, list(ns.values()), names, args.timeout)

                def measure(key, side, rep=rep, ns=ns):
                    if side == "ours":
                        book = {"snapshot": ours_snapshot, "restore": ours_restore, "migrate": ours_migrate}[
                            key.replace("-rerun", "")](ns[side], names, args.timeout)
                    else:
                        book = {"snapshot": ref_snapshot, "restore": ref_restore, "migrate": ref_migrate}[key](
                            ns[side], names, args.timeout, args.ref_delay)
                    runs[key][side].append(runner.run("%s-%s-%d" % (side, key, rep), book, side == "ref"))
                    if not key.endswith("-rerun"):
                        check_done(server, ns[side], key, names)

                for key in ("snapshot", "migrate"):
                    for side in order:
                        measure(key, side)
                measure("snapshot-rerun", "ours")
                stop_all(server, list(ns.values()), names, args.timeout)
                for side in order:
                    measure("restore", side)
                measure("restore-rerun", "ours")
        finally:
            server.stop()
    summary = {}
    for key, _title in SCENARIOS:
        summary[key] = {"ours": median_row(runs[key]["ours"])}
        if runs[key]["ref"]:
            summary[key]["ref"] = median_row(runs[key]["ref"])
    report(summary, args.vms, args.repeat, server_kind)
    print("total %.0f s" % (time.monotonic() - started))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({
            "vms": args.vms, "repeat": args.repeat, "ref_delay": args.ref_delay, "server": server_kind,
            "server_label": _servers.LABELS[server_kind], "source_node": SOURCE, "summary": summary, "runs": runs},
            indent=2))


if __name__ == "__main__":
    main()
