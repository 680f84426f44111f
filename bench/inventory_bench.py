"""Inventory benchmark: virtfleet.kubevirt.kubevirt versus kubevirt.core.kubevirt on the same emulator data.

For each size N it starts a fresh Kubernetes API emulator (tests/kubeapi, no controllers), bulk-loads N running
VMIs with their VMs and one NodePort Service each, spread over --namespaces namespaces, then runs
``ansible-inventory --list`` with each plugin (default options), timing the whole command and counting the
HTTP requests the emulator logged. Prints wall-time and request-count ratios; it never passes or fails on time.

    make bench                                   # creates .venv-ref (kubevirt.core 2.3.0 from ansible 14.5.0)
    .venv/bin/python bench/inventory_bench.py --sizes 1000,10000
    .venv/bin/python bench/inventory_bench.py --sizes 50 --ours-only   # smoke run, no reference needed
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import urllib3
import yaml

REPO = Path(__file__).resolve().parent.parent
OURS_PYTHON = REPO / ".venv" / "bin" / "python"
REF_PYTHON = REPO / ".venv-ref" / "bin" / "python"
COLLECTIONS = REPO / ".build" / "collections"


class Emulator(object):
    """A private emulator process (no controllers, so the loaded objects stay exactly as written)."""

    def __init__(self, workdir, nodes=4):
        self.workdir = Path(workdir)
        self.kubeconfig = self.workdir / "kubeconfig"
        self.proc = subprocess.Popen(
            [str(OURS_PYTHON), "-m", "tests.kubeapi", "--port", "0", "--kubeconfig", str(self.kubeconfig),
             "--controllers", "none", "--nodes", str(nodes)],
            cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        line = ""
        deadline = time.time() + 60
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if "kubeapi ready on" in line or not line:
                break
        if "kubeapi ready on" not in line:
            self.stop()
            raise SystemExit("emulator did not start: %r" % line)
        self.url = line.strip().rsplit(" ", 1)[-1]
        config = yaml.safe_load(self.kubeconfig.read_text())
        self.token = config["users"][0]["user"]["token"]
        self.pool = urllib3.PoolManager(ca_certs=str(self.workdir / "ca.crt"), maxsize=2)

    def hook(self, method, what, body=None):
        resp = self.pool.request(method, self.url + "/_emulator/" + what, body=json.dumps(body) if body else None,
                                 headers={"Authorization": "Bearer " + self.token, "Content-Type": "application/json"},
                                 timeout=600)
        if resp.status != 200:
            raise SystemExit("hook %s %s failed: %s %s" % (method, what, resp.status, resp.data[:300]))
        return json.loads(resp.data)

    def bulk(self, objects, chunk=2000):
        for start in range(0, len(objects), chunk):
            self.hook("POST", "bulk", {"objects": objects[start:start + chunk]})

    def requests(self):
        return self.hook("GET", "requests")["items"]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def dataset(count, namespaces, nodes=4, prefix="bench"):
    """N running VMIs + their VMs + a NodePort Service each, round-robin over the namespaces."""
    objects = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "%s-%03d" % (prefix, n)}} for n in range(namespaces)]
    for i in range(count):
        ns, name = "%s-%03d" % (prefix, i % namespaces), "vm-%05d" % i
        labels = {"kubevirt.io/domain": name, "app": "bench", "shard": str(i % 10)}
        ip = "10.%d.%d.%d" % (i // 65536 + 1, (i // 256) % 256, i % 256)
        objects.append({
            "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"runStrategy": "Always", "template": {"metadata": {"labels": labels}, "spec": {
                "domain": {"devices": {"interfaces": [{"name": "default", "masquerade": {}}]}, "resources": {"requests": {"memory": "64Mi"}}},
                "networks": [{"name": "default", "pod": {}}]}}},
            "status": {"printableStatus": "Running", "ready": True, "created": True, "runStrategy": "Always",
                       "conditions": [{"type": "Ready", "status": "True"}]}})
        objects.append({
            "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
            "metadata": {"name": name, "namespace": ns, "labels": dict(labels, **{"kubevirt.io/nodeName": "node%02d" % (i % nodes + 1)})},
            "spec": {"domain": {"devices": {"interfaces": [{"name": "default", "masquerade": {}, "ports": [{"name": "ssh", "port": 22}]}]},
                                "resources": {"requests": {"memory": "64Mi"}}},
                     "networks": [{"name": "default", "pod": {}}]},
            "status": {"phase": "Running", "nodeName": "node%02d" % (i % nodes + 1),
                       "interfaces": [{"name": "default", "interfaceName": "eth0", "ipAddress": ip, "ipAddresses": [ip],
                                       "mac": "02:00:00:%02x:%02x:%02x" % (i >> 16 & 255, i >> 8 & 255, i & 255),
                                       "infoSource": "domain, guest-agent"}],
                       "conditions": [{"type": "Ready", "status": "True"}],
                       "guestOSInfo": {"id": "fedora", "name": "Fedora Linux", "version": "42"}}})
        objects.append({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": name + "-ssh", "namespace": ns},
            "spec": {"type": "NodePort", "selector": {"kubevirt.io/domain": name},
                     "ports": [{"port": 22, "targetPort": 22, "nodePort": 30000 + i % 2000, "protocol": "TCP"}]},
            "status": {"loadBalancer": {}}})
    return objects


def run_inventory(emu, python, plugin_value, workdir, label, mode="--list"):
    source_dir = workdir / label
    source_dir.mkdir(exist_ok=True)
    source = source_dir / "kubevirt.yml"
    source.write_text("plugin: %s\n" % plugin_value)
    env = dict(os.environ, K8S_AUTH_KUBECONFIG=str(emu.kubeconfig), ANSIBLE_INVENTORY_UNPARSED_FAILED="1",
               ANSIBLE_LOCAL_TEMP=str(workdir / "tmp"), ANSIBLE_HOME=str(workdir / ("home-" + label)))
    if label == "ours":
        env["ANSIBLE_COLLECTIONS_PATH"] = str(COLLECTIONS)
    else:
        env.pop("ANSIBLE_COLLECTIONS_PATH", None)  # the reference venv's site-packages ship kubevirt.core
    out = source_dir / "list.json"
    emu.hook("DELETE", "requests")
    start = time.perf_counter()
    proc = subprocess.run([str(Path(python).parent / "ansible-inventory"), "-i", str(source), mode, "--output", str(out)],
                          env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit("%s ansible-inventory failed:\n%s" % (label, proc.stderr[-3000:]))
    requests = emu.requests()
    if mode == "--graph":
        hosts = set(line.strip(" |-") for line in out.read_text().splitlines() if not line.strip(" |-").startswith("@"))
    else:
        hosts = set(json.loads(out.read_text()).get("_meta", {}).get("hostvars", {}))
    return elapsed, len(requests), hosts


def bench_size(count, args, workdir):
    emu = Emulator(workdir / ("emu-%d" % count))
    try:
        load_start = time.perf_counter()
        emu.bulk(dataset(count, args.namespaces))
        load_time = time.perf_counter() - load_start
        result = {"vmis": count, "namespaces": args.namespaces, "load_s": round(load_time, 1)}
        runs = [("ours", OURS_PYTHON, "virtfleet.kubevirt.kubevirt")]
        if not args.ours_only:
            runs.append(("ref", Path(args.ref_python), "kubevirt.core.kubevirt"))
        for label, python, plugin in runs:
            # one unmeasured warm-up run: page cache, and kubevirt.core's on-disk discovery cache
            run_inventory(emu, python, plugin, workdir, label)
            times, counts = [], []
            for _run in range(args.repeat):
                elapsed, requests, hosts = run_inventory(emu, python, plugin, workdir, label)
                times.append(elapsed)
                counts.append(requests)
            # --graph builds the same inventory but prints no host variables: the plugin's own share of the time
            graph = [run_inventory(emu, python, plugin, workdir, label, mode="--graph")[0] for _run in range(args.repeat)]
            result[label] = {"seconds": round(statistics.median(times), 2), "graph_seconds": round(statistics.median(graph), 2),
                             "requests": max(counts), "hosts": len(hosts),
                             "runs": [round(t, 2) for t in times], "graph_runs": [round(t, 2) for t in graph]}
            if len(hosts) != count:
                print("WARNING: %s listed %d hosts, expected %d" % (label, len(hosts), count), file=sys.stderr)
        if "ref" in result:
            result["time_ratio"] = round(result["ref"]["seconds"] / result["ours"]["seconds"], 1)
            result["request_ratio"] = round(result["ref"]["requests"] / float(result["ours"]["requests"]), 1)
            result["graph_time_ratio"] = round(result["ref"]["graph_seconds"] / result["ours"]["graph_seconds"], 1)
        return result
    finally:
        emu.stop()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated VMI counts (default 1000,10000)")
    parser.add_argument("--namespaces", type=int, default=200, help="namespaces to spread VMIs over (default 200)")
    parser.add_argument("--repeat", type=int, default=1, help="measured runs per plugin, median reported (default 1)")
    parser.add_argument("--ref-python", default=str(REF_PYTHON), help="python of the virtualenv with kubevirt.core")
    parser.add_argument("--ours-only", action="store_true", help="skip the reference plugin")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    if not args.ours_only and not Path(args.ref_python).exists():
        raise SystemExit("reference virtualenv missing (%s): run `make bench-venv` or pass --ours-only" % args.ref_python)
    workdir = Path(tempfile.mkdtemp(prefix="inventory-bench-"))
    results = []
    try:
        for size in [int(s) for s in args.sizes.split(",") if s.strip()]:
            result = bench_size(size, args, workdir)
            results.append(result)
            line = "VMIs %6d  ns %3d  ours --list %6.2fs --graph %6.2fs %5d req" % (
                size, result["namespaces"], result["ours"]["seconds"], result["ours"]["graph_seconds"], result["ours"]["requests"])
            if "ref" in result:
                line += "  | kubevirt.core --list %7.2fs --graph %7.2fs %6d req  | --list x%.1f  --graph x%.1f  requests x%.1f" % (
                    result["ref"]["seconds"], result["ref"]["graph_seconds"], result["ref"]["requests"], result["time_ratio"],
                    result["graph_time_ratio"], result["request_ratio"])
            print(line, flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
