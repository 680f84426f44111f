#!/usr/bin/env python
"""VM benchmark: declare N VMs and wait for them Ready — one virtfleet.kubevirt.kubevirt_vm task (option ``vms``)
versus kubevirt.core.kubevirt_vm in a loop — then the idempotent re-run of both.

Both run through ansible-playbook against the same API server with the simulated virt-controller (fast timing),
each in its own namespace, with the same VM spec. The server (--server) is a real kube-apiserver + etcd (realk8s)
with our KubeVirt simulation as its client, or our Kubernetes API emulator (tests/kubeapi); ``auto``, the
default, takes the real one when realk8s is there. The reference is kubevirt.core 2.3.0 from the ``ansible``
14.5.0 package, in the virtualenv of the differential tests (.venv-ref, made by ``make venv`` or
``make bench-venv``). The script times each ansible-playbook command and counts the HTTP requests the server
received (all of them: discovery, reads, writes, watches; the emulator's request log, or that of the counting
proxy in front of the real server). It prints wall-time ratios and request counts; it never passes or fails on
time.

    make bench-venv && .venv/bin/python bench/vm_bench.py              # 100 VMs
    .venv/bin/python bench/vm_bench.py --vms 20 --ours-only           # smoke run, no reference needed
    .venv/bin/python bench/vm_bench.py --server emulator               # the emulator even when realk8s is there

kubevirt.core polls every ``wait_sleep`` seconds (default 5) per VM; the reference runs with
``--ref-wait-sleep`` (default 1), which favours it.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _servers  # noqa: E402  (bench/ is not a package)

REPO = _servers.REPO

OURS_BIN = REPO / ".venv" / "bin"
REF_BIN = _servers.REF_BIN
COLLECTIONS = _servers.COLLECTIONS
WRITES = ("POST", "PUT", "PATCH", "DELETE")


def vm_template_spec():
    """The same VMI template spec for both modules (what a hand-written kubevirt.core spec looks like)."""
    return {
        "domain": {"cpu": {"cores": 1}, "memory": {"guest": "256Mi"},
                   "devices": {"disks": [{"name": "rootdisk", "disk": {"bus": "virtio"}}],
                               "interfaces": [{"name": "default", "masquerade": {}}]}},
        "networks": [{"name": "default", "pod": {}}],
        "volumes": [{"name": "rootdisk", "containerDisk": {"image": "quay.io/containerdisks/fedora:41"}}],
    }


def ours_playbook(ns, names, timeout):
    return [{"hosts": "localhost", "gather_facts": False, "tasks": [{
        "name": "declare %d VMs in one task" % len(names),
        "virtfleet.kubevirt.kubevirt_vm": {
            "namespace": ns, "labels": {"app": "bench"}, "spec": vm_template_spec(),
            "vms": [{"name": n} for n in names], "wait": True, "wait_timeout": timeout}}]}]


def timed(playbook):
    """The playbook with the measured task between two clock readings, so that the task's own wall time (without
    ansible-playbook's start-up and exit) is printed as TASK_SECONDS=..."""
    tasks = playbook[0]["tasks"]
    playbook[0]["tasks"] = ([{"name": "clock before", "ansible.builtin.set_fact": {
        "bench_t0": "{{ now(utc=true).timestamp() }}"}}] + tasks
        + [{"name": "clock after", "ansible.builtin.debug": {
            "msg": "TASK_SECONDS={{ now(utc=true).timestamp() - (bench_t0 | float) }}"}}])
    return playbook


def ref_playbook(ns, names, timeout, wait_sleep):
    return [{"hosts": "localhost", "gather_facts": False, "tasks": [{
        "name": "declare %d VMs in a loop" % len(names),
        "kubevirt.core.kubevirt_vm": {
            "name": "{{ item }}", "namespace": ns, "labels": {"app": "bench"}, "spec": vm_template_spec(),
            "wait": True, "wait_sleep": wait_sleep, "wait_timeout": timeout},
        "loop": names}]}]


class Runner(object):
    def __init__(self, emu, workdir):
        self.emu = emu
        self.workdir = Path(workdir)

    def env(self, reference):
        env = dict(os.environ)
        env["K8S_AUTH_KUBECONFIG"] = str(self.emu.kubeconfig)
        env["KUBECONFIG"] = str(self.emu.kubeconfig)
        env["ANSIBLE_LOCAL_TEMP"] = str(self.workdir / "tmp")
        env["ANSIBLE_NOCOLOR"] = "1"
        if reference:
            # kubevirt.core and kubernetes.core come from the reference venv's site-packages.
            env.pop("ANSIBLE_COLLECTIONS_PATH", None)
            env["ANSIBLE_COLLECTIONS_PATH"] = str(self.workdir / "no-collections")
        else:
            env["ANSIBLE_COLLECTIONS_PATH"] = str(COLLECTIONS)
        return env

    def run(self, label, playbook, reference):
        binary = REF_BIN if reference else OURS_BIN
        path = self.workdir / ("%s.yml" % label)
        path.write_text(yaml.safe_dump(timed(playbook), sort_keys=False))
        cmd = [str(binary / "ansible-playbook"), "-i", "localhost,", "-c", "local",
               "-e", "ansible_python_interpreter=%s" % (binary / "python"), str(path)]
        mark = self.emu.mark()
        started = time.monotonic()
        proc = subprocess.run(cmd, env=self.env(reference), capture_output=True, text=True, check=False)
        seconds = time.monotonic() - started
        entries = self.emu.requests(since=mark)
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-2000:])
            raise SystemExit("%s failed (exit %s)" % (label, proc.returncode))
        recap = [line for line in proc.stdout.splitlines() if "changed=" in line]
        task = re.search(r"TASK_SECONDS=([0-9.]+)", proc.stdout)
        return {"label": label, "seconds": round(seconds, 2), "task_seconds": round(float(task.group(1)), 2) if task else None,
                "requests": len(entries),
                "writes": len([e for e in entries if e["method"] in WRITES]),
                "watches": len([e for e in entries if e.get("verb") == "watch"]), "recap": recap[-1].strip() if recap else ""}


def all_ready(emu, ns, names):
    items = emu.http("GET", "/apis/kubevirt.io/v1/namespaces/%s/virtualmachines" % ns)[1]["items"]
    ready = {i["metadata"]["name"] for i in items if (i.get("status") or {}).get("ready")}
    return set(names) <= ready


def ratio(ref, ours):
    if not ours:
        return "n/a" if not ref else "inf"
    return "%.1fx" % (float(ref) / ours)


def report(rows, n, server):
    print()
    print("kubevirt_vm benchmark: %d VMs, create + wait Ready, then the idempotent re-run, on the %s" % (
        n, _servers.LABELS[server]))
    print("%-22s %-9s %12s %12s %9s" % ("scenario", "metric", "virtfleet", "kubevirt.core", "ratio"))
    for scenario, ours, ref in rows:
        for metric in ("seconds", "task_seconds", "requests", "writes"):
            o = ours[metric]
            r = ref[metric] if ref else None
            print("%-22s %-9s %12s %12s %9s" % (scenario if metric == "seconds" else "", metric, o,
                                                "-" if r is None else r, "-" if r is None else ratio(r, o)))
    for scenario, ours, ref in rows:
        per_vm = float(ours["requests"]) / n
        print("%s: virtfleet %.2f requests per VM (%d watches)%s" % (
            scenario, per_vm, ours["watches"], "" if not ref else "; kubevirt.core %.2f" % (float(ref["requests"]) / n)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--vms", type=int, default=100)
    parser.add_argument("--ours-only", action="store_true", help="skip kubevirt.core (no reference venv needed)")
    parser.add_argument("--ref-wait-sleep", type=int, default=1, help="kubevirt.core wait_sleep (its default is 5)")
    parser.add_argument("--timeout", type=int, default=900, help="wait_timeout of both")
    _servers.add_argument(parser)
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args()
    _servers.check_prerequisites(args.ours_only)
    server = _servers.resolve(args.server)
    print("kubevirt_vm benchmark on the %s" % _servers.LABELS[server], flush=True)
    names = ["vm-%03d" % i for i in range(args.vms)]
    with tempfile.TemporaryDirectory(prefix="vm-bench-") as tmp:
        emu = _servers.start(server, Path(tmp) / "server", controllers=("virt",), timing="fast", nodes=4)
        try:
            for ns in ("bench-ours", "bench-ref"):
                emu.apply_object({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
            runner = Runner(emu, tmp)
            rows = []
            ours = runner.run("ours-create", ours_playbook("bench-ours", names, args.timeout), False)
            assert all_ready(emu, "bench-ours", names), "virtfleet: not all VMs are Ready"
            ref = None
            if not args.ours_only:
                ref = runner.run("ref-create", ref_playbook("bench-ref", names, args.timeout, args.ref_wait_sleep), True)
                assert all_ready(emu, "bench-ref", names), "kubevirt.core: not all VMs are Ready"
            rows.append(("create + wait Ready", ours, ref))
            ours2 = runner.run("ours-rerun", ours_playbook("bench-ours", names, args.timeout), False)
            ref2 = None
            if not args.ours_only:
                ref2 = runner.run("ref-rerun", ref_playbook("bench-ref", names, args.timeout, args.ref_wait_sleep), True)
            rows.append(("idempotent re-run", ours2, ref2))
        finally:
            emu.stop()
    report(rows, args.vms, server)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"vms": args.vms, "ref_wait_sleep": args.ref_wait_sleep, "server": server,
                                               "server_label": _servers.LABELS[server], "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
