"""Inventory benchmark: virtfleet.kubevirt.kubevirt versus kubevirt.core.kubevirt on the same API server data.

For each size N it starts a fresh API server without KubeVirt controllers (--server: a real kube-apiserver + etcd
from realk8s, or our emulator tests/kubeapi), loads N running VMIs with their VMs and one NodePort Service each,
spread over --namespaces namespaces, then runs ``ansible-inventory --list`` with each plugin (default options),
timing the whole command and counting the HTTP requests the server received (the emulator's request log, or the
log of the counting proxy in front of the real server). Prints wall-time and request-count ratios; it never passes
or fails on time.

    make bench                                   # creates .venv-ref (kubevirt.core 2.3.0 from ansible 14.5.0)
    .venv/bin/python bench/inventory_bench.py --sizes 1000,10000
    .venv/bin/python bench/inventory_bench.py --sizes 50 --ours-only   # smoke run, no reference needed
    .venv/bin/python bench/inventory_bench.py --server emulator        # the emulator even when realk8s is there
"""
import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _servers  # noqa: E402  (bench/ is not a package)

REPO = _servers.REPO
OURS_PYTHON = REPO / ".venv" / "bin" / "python"
REF_PYTHON = REPO / ".venv-ref" / "bin" / "python"
COLLECTIONS = REPO / ".build" / "collections"
NODE_PORTS = _servers.NODE_PORT_RANGE


EPOCH = datetime.datetime(2025, 6, 2, 8, 0, 0)
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBenchmarkKeyBenchmarkKeyBenchmarkKey0 bench"


def stamp(i, offset=0):
    """A timestamp of VM number ``i``: the VMs started one every 7 s, each step ``offset`` s after the start."""
    return (EPOCH + datetime.timedelta(seconds=7 * i + offset)).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(kind, transition, status="True", probe=None):
    return {"type": kind, "status": status, "lastProbeTime": probe, "lastTransitionTime": transition}


def vmi_spec(name):
    """The VMI spec KubeVirt stores for a VM with a container disk, cloud-init and masquerade networking."""
    return {"architecture": "amd64",
            "domain": {"cpu": {"cores": 1, "sockets": 1, "threads": 1, "model": "host-model", "maxSockets": 4},
                       "devices": {"disks": [{"name": "rootdisk", "disk": {"bus": "virtio"}},
                                             {"name": "cloudinitdisk", "disk": {"bus": "virtio"}}],
                                   "interfaces": [{"name": "default", "masquerade": {},
                                                   "ports": [{"name": "ssh", "port": 22, "protocol": "TCP"}]}]},
                       "features": {"acpi": {"enabled": True}},
                       "firmware": {"uuid": "5d307ca9-b3ef-428c-8861-06e72d69f223"},
                       "machine": {"type": "q35"}, "memory": {"guest": "1Gi"},
                       "resources": {"requests": {"memory": "1Gi"}}},
            "evictionStrategy": "LiveMigrate",
            "networks": [{"name": "default", "pod": {}}],
            "terminationGracePeriodSeconds": 180,
            "volumes": [{"name": "rootdisk", "containerDisk": {"image": "quay.io/containerdisks/fedora:42",
                                                               "imagePullPolicy": "IfNotPresent"}},
                        {"name": "cloudinitdisk", "cloudInitNoCloud": {
                            "userData": "#cloud-config\nhostname: %s\nssh_authorized_keys:\n- %s\n" % (
                                name, SSH_KEY)}}]}


def dataset(count, namespaces, nodes=4, prefix="bench"):
    """N running VMIs + their VMs + a NodePort Service each, round-robin over the namespaces.

    Objects as KubeVirt's controllers leave them for a running VM with a container disk (metadata, spec and the
    status fields virt-controller and virt-handler write: interfaces from the guest agent, guestOSInfo, conditions,
    phase transition timestamps, volume status...), each Service with its own node port (a real server enforces it).
    """
    objects = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "%s-%03d" % (prefix, n)}} for n in range(namespaces)]
    for i in range(count):
        ns, name = "%s-%03d" % (prefix, i % namespaces), "vm-%05d" % i
        node = "node%02d" % (i % nodes + 1)
        labels = {"kubevirt.io/domain": name, "app": "bench", "shard": str(i % 10)}
        ip = "10.%d.%d.%d" % (i // 65536 + 1, (i // 256) % 256, i % 256)
        ip6 = "fd10:244::%x" % (i + 1)
        annotations = {"kubevirt.io/latest-observed-api-version": "v1",
                       "kubevirt.io/storage-observed-api-version": "v1"}
        spec = vmi_spec(name)
        objects.append({
            "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
            "metadata": {"name": name, "namespace": ns, "labels": labels, "annotations": annotations},
            "spec": {"runStrategy": "Always", "template": {"metadata": {"labels": labels}, "spec": spec}},
            "status": {"printableStatus": "Running", "ready": True, "created": True, "runStrategy": "Always",
                       "desiredGeneration": 1, "observedGeneration": 1,
                       "conditions": [condition("Ready", stamp(i, 9)), condition("LiveMigratable", None),
                                      condition("AgentConnected", None, probe=stamp(i, 31))],
                       "volumeSnapshotStatuses": [
                           {"name": "rootdisk", "enabled": False,
                            "reason": "Snapshot is not supported for this volumeSource type [rootdisk]"},
                           {"name": "cloudinitdisk", "enabled": False,
                            "reason": "Snapshot is not supported for this volumeSource type [cloudinitdisk]"}]}})
        objects.append({
            "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
            "metadata": {"name": name, "namespace": ns, "labels": dict(labels, **{"kubevirt.io/nodeName": node}),
                         "annotations": dict(annotations, **{"kubevirt.io/vm-generation": "1"})},
            "spec": spec,
            "status": {
                "phase": "Running", "nodeName": node,
                "activePods": {"7f3a9c2e-%04x-4d1b-9a6e-%012x" % (i % 65536, i): node},
                "conditions": [condition("Ready", stamp(i, 9)), condition("LiveMigratable", None),
                               condition("AgentConnected", None, probe=stamp(i, 31))],
                "currentCPUTopology": {"cores": 1, "sockets": 1, "threads": 1},
                "guestOSInfo": {"id": "fedora", "name": "Fedora Linux", "prettyName": "Fedora Linux 42 (Cloud Edition)",
                                "version": "42 (Cloud Edition)", "versionId": "42", "machine": "x86_64",
                                "kernelRelease": "6.14.0-63.fc42.x86_64",
                                "kernelVersion": "#1 SMP PREEMPT_DYNAMIC Mon Mar 24 19:53:37 UTC 2025"},
                "interfaces": [{"name": "default", "interfaceName": "eth0", "ipAddress": ip, "ipAddresses": [ip, ip6],
                                "mac": "02:00:00:%02x:%02x:%02x" % (i >> 16 & 255, i >> 8 & 255, i & 255),
                                "infoSource": "domain, guest-agent", "linkState": "up", "podInterfaceName": "eth0",
                                "queueCount": 1}],
                "launcherContainerImageVersion": "quay.io/kubevirt/virt-launcher:v1.5.0",
                "machine": {"type": "pc-q35-rhel9.4.0"},
                "memory": {"guestAtBoot": "1Gi", "guestCurrent": "1Gi", "guestRequested": "1Gi"},
                "migrationMethod": "BlockMigration", "migrationTransport": "Unix",
                "phaseTransitionTimestamps": [{"phase": phase, "phaseTransitionTimestamp": stamp(i, n * 2)}
                                              for n, phase in enumerate(("Pending", "Scheduling", "Scheduled", "Running"))],
                "qosClass": "Burstable", "runtimeUser": 107, "selinuxContext": "none",
                "virtualMachineRevisionName": "revision-start-vm-%s-1" % name,
                "volumeStatus": [{"name": "cloudinitdisk", "size": 1048576, "target": "vdb"},
                                 {"name": "rootdisk", "target": "vda",
                                  "containerDiskVolume": {"checksum": 3414391291}}]}})
        objects.append({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name + "-ssh", "namespace": ns, "labels": {"app": "bench"}},
            "spec": {"type": "NodePort", "selector": {"kubevirt.io/domain": name},
                     "ports": [{"name": "ssh", "port": 22, "targetPort": 22, "protocol": "TCP",
                                "nodePort": NODE_PORTS[0] + i % (NODE_PORTS[1] - NODE_PORTS[0] + 1)}]},
            "status": {"loadBalancer": {}}})
    return objects


# Runs argv[2:] and writes its peak RSS (KB) to argv[1]. The measured command is forked from this small process,
# not from the benchmark: Linux counts the RSS of the process a child was forked (or vforked) from into the
# child's ru_maxrss at exec, and the benchmark holds the whole dataset (hundreds of MB).
RUSAGE_WRAPPER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execvpe(sys.argv[2], sys.argv[2:], os.environ)
_pid, status, usage = os.wait4(pid, 0)
open(sys.argv[1], "w").write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_measured(argv, env, out_dir):
    """Run ``argv`` to completion: (seconds, peak RSS in MB of the command, its stderr tail). stdout/stderr go to
    files (no pipe to fill); the peak RSS is the command's own ``ru_maxrss`` (see RUSAGE_WRAPPER)."""
    rss_file = out_dir / "maxrss"
    start = time.perf_counter()
    with open(out_dir / "stdout", "wb") as stdout, open(out_dir / "stderr", "wb") as stderr:
        proc = subprocess.run([sys.executable, "-c", RUSAGE_WRAPPER, str(rss_file)] + [str(a) for a in argv], env=env,
                              stdout=stdout, stderr=stderr, check=False)
    elapsed = time.perf_counter() - start
    err = (out_dir / "stderr").read_text(errors="replace")[-3000:]
    if proc.returncode != 0:
        raise SystemExit("%s failed (%s):\n%s" % (" ".join(str(a) for a in argv[:4]), proc.returncode, err))
    return elapsed, int(rss_file.read_text()) / 1024.0, err


def inventory_env(server, workdir, label):
    env = dict(os.environ, K8S_AUTH_KUBECONFIG=str(server.kubeconfig), ANSIBLE_INVENTORY_UNPARSED_FAILED="1",
               ANSIBLE_LOCAL_TEMP=str(workdir / "tmp"), ANSIBLE_HOME=str(workdir / ("home-" + label)))
    env["KUBECONFIG"] = str(server.kubeconfig)
    if label == "ref":
        env.pop("ANSIBLE_COLLECTIONS_PATH", None)  # the reference venv's site-packages ship kubevirt.core
    elif label == "baseline":
        env["ANSIBLE_COLLECTIONS_PATH"] = str(BASELINE[0])
    else:
        env["ANSIBLE_COLLECTIONS_PATH"] = str(COLLECTIONS)
    if label == "floor":
        env["ANSIBLE_INVENTORY_PLUGINS"] = str(FLOOR_PLUGINS)
        env["ANSIBLE_INVENTORY_ENABLED"] = "bench_floor"
    return env


def run_inventory(server, python, plugin_value, workdir, label, mode="--list", source=None):
    """One measured ``ansible-inventory -i SOURCE MODE`` run: (seconds, requests, host names, peak RSS MB).

    ``source`` (the floor) is an inventory file; otherwise a ``kubevirt.yml`` with ``plugin: plugin_value``."""
    source_dir = workdir / label
    source_dir.mkdir(exist_ok=True)
    if source is None:
        source = source_dir / "kubevirt.yml"
        source.write_text("plugin: %s\n" % plugin_value)
    out = source_dir / ("list.json" if mode == "--list" else "graph.txt")
    server.reset_requests()
    elapsed, rss, _err = run_measured([str(Path(python).parent / "ansible-inventory"), "-i", str(source), mode,
                                       "--output", str(out)], inventory_env(server, workdir, label), source_dir)
    requests = server.requests()
    if mode == "--graph":
        hosts = set(line.strip(" |-") for line in out.read_text().splitlines() if not line.strip(" |-").startswith("@"))
    else:
        hosts = set(json.loads(out.read_text()).get("_meta", {}).get("hostvars", {}))
    return elapsed, len(requests), hosts, rss


FLOOR_PLUGINS = Path(__file__).resolve().parent / "floor_plugin"
BASELINE = []  # --baseline: a collections path with another version of this collection


def _plain(value):
    """A value of ``ansible-inventory --list`` output as the plugin set it: ``{"__ansible_unsafe": s}`` -> ``s``."""
    if isinstance(value, dict):
        if len(value) == 1 and "__ansible_unsafe" in value:
            return value["__ansible_unsafe"]
        return dict((k, _plain(v)) for k, v in value.items())
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def floor_inventory(listed, path):
    """Write the hosts, groups and host variables of an ``ansible-inventory --list`` output as the ``.floor.json``
    file of ``bench/floor_plugin/bench_floor.py`` (string values plain, as our plugin sets them). Loading it with
    the same ``ansible-inventory`` is the floor no inventory plugin can go below for these hosts and variables: no
    request and no API object, only ``json.load`` and ansible-core's own work."""
    groups = dict((name, {"children": group.get("children") or [], "hosts": group.get("hosts") or []})
                  for name, group in listed.items() if name not in ("_meta", "all", "ungrouped"))
    hostvars = _plain(listed.get("_meta", {}).get("hostvars", {}))
    path.write_text(json.dumps({"groups": groups, "hostvars": hostvars}))
    return path


RAW_FETCH = """
import json, sys, time, threading, urllib3, yaml, base64, tempfile, os
kc = yaml.safe_load(open(sys.argv[1]))
cluster, user = kc["clusters"][0]["cluster"], kc["users"][0]["user"]
ca = tempfile.NamedTemporaryFile(delete=False, suffix=".crt")
ca.write(base64.b64decode(cluster["certificate-authority-data"])); ca.close()
headers = {"Accept": "application/json"}
kwargs = {}
if user.get("token"):
    headers["Authorization"] = "Bearer " + user["token"]
else:
    files = []
    for key in ("client-certificate-data", "client-key-data"):
        f = tempfile.NamedTemporaryFile(delete=False, suffix=".pem"); f.write(base64.b64decode(user[key])); f.close()
        files.append(f.name)
    kwargs = {"cert_file": files[0], "key_file": files[1]}
pool = urllib3.PoolManager(ca_certs=ca.name, maxsize=4, **kwargs)
paths = sys.argv[3:]
counts, sizes = {}, {}
def fetch(path):
    query, n, size = ({"limit": sys.argv[2]} if sys.argv[2] != "0" else {}), 0, 0
    while True:
        resp = pool.request("GET", cluster["server"].rstrip("/") + path, fields=query, headers=headers)
        assert resp.status == 200, (path, resp.status, resp.data[:200])
        size += len(resp.data)
        page = json.loads(resp.data)
        n += len(page["items"])
        token = page["metadata"].get("continue")
        if not token:
            break
        query = dict(query, **{"continue": token})
    counts[path], sizes[path] = n, size
threads = [threading.Thread(target=fetch, args=(p,)) for p in paths]
start = time.perf_counter()
[t.start() for t in threads]; [t.join() for t in threads]
print(json.dumps({"seconds": time.perf_counter() - start, "items": counts, "bytes": sizes}))
"""

LISTS = ("/apis/kubevirt.io/v1/virtualmachineinstances", "/apis/kubevirt.io/v1/virtualmachines", "/api/v1/services")


def raw_fetch(server, workdir, page_size):
    """The three cluster-wide lists our plugin reads with default options, fetched concurrently and decoded with
    ``json.loads`` by a bare Python process, nothing else: (seconds inside the process, peak RSS MB, MB received).
    The server's share of a refresh (plus decoding), which no plugin on this server can go below either."""
    out_dir = workdir / "raw"
    out_dir.mkdir(exist_ok=True)
    _elapsed, rss, _err = run_measured([str(OURS_PYTHON), "-c", RAW_FETCH, str(server.kubeconfig), str(page_size)]
                                       + list(LISTS), dict(os.environ), out_dir)
    result = json.loads((out_dir / "stdout").read_text())
    return result["seconds"], rss, sum(result["bytes"].values()) / 1e6


def bench_size(count, args, workdir):
    # No KubeVirt controllers: the loaded objects stay exactly as written.
    server = _servers.start(args.server, workdir / ("server-%d" % count), controllers=(), nodes=4)
    try:
        load_time = _servers.load(server, dataset(count, args.namespaces))
        result = {"vmis": count, "namespaces": args.namespaces, "server": args.server,
                  "server_label": _servers.LABELS[args.server], "load_s": round(load_time, 1)}
        runs = [("ours", OURS_PYTHON, "virtfleet.kubevirt.kubevirt", None)]
        if not args.ours_only:
            runs.append(("ref", Path(args.ref_python), "kubevirt.core.kubevirt", None))
        if BASELINE:
            runs.append(("baseline", OURS_PYTHON, "virtfleet.kubevirt.kubevirt", None))
        for label, python, plugin, _source in runs:
            # one unmeasured warm-up run each: page cache, and kubevirt.core's on-disk discovery cache
            run_inventory(server, python, plugin, workdir, label)
            result[label] = {"runs": [], "graph_runs": [], "counts": [], "rss": [], "graph_rss": []}
        if not args.no_floor:
            # The floor: our --list output as a static file, loaded by the same ansible-inventory.
            listed = json.loads((workdir / "ours" / "list.json").read_text())
            source = floor_inventory(listed, workdir / "inventory.floor.json")
            del listed
            runs.append(("floor", OURS_PYTHON, None, source))
            run_inventory(server, OURS_PYTHON, None, workdir, "floor", source=source)
            result["floor"] = {"runs": [], "graph_runs": [], "counts": [], "rss": [], "graph_rss": [],
                               "static_mb": round(source.stat().st_size / 1e6, 1)}
        # The measured runs alternate between the plugins, so that a burst of load elsewhere on the machine falls
        # on both rather than on one.
        for mode, key in (("--list", "runs"), ("--graph", "graph_runs")):
            for _run in range(args.repeat):
                for label, python, plugin, source in runs:
                    elapsed, requests, hosts, rss = run_inventory(server, python, plugin, workdir, label, mode=mode,
                                                                  source=source)
                    result[label][key].append(round(elapsed, 2))
                    result[label]["rss" if mode == "--list" else "graph_rss"].append(round(rss))
                    if mode == "--list":
                        result[label]["counts"].append(requests)
                        result[label]["hosts"] = len(hosts)
                    if len(hosts) != count:
                        print("WARNING: %s listed %d hosts, expected %d" % (label, len(hosts), count), file=sys.stderr)
        raw = [raw_fetch(server, workdir, args.raw_page_size) for _run in range(args.repeat)]
        result["raw_fetch"] = {"runs": [round(r[0], 2) for r in raw], "seconds": round(statistics.median(r[0] for r in raw), 2),
                               "rss": round(max(r[1] for r in raw)), "mb": round(raw[0][2], 1),
                               "page_size": args.raw_page_size}
        for label, _python, _plugin, _source in runs:
            res = result[label]
            res["seconds"] = round(statistics.median(res["runs"]), 2)
            # --graph builds the same inventory but prints no host variables: the plugin's own share of the time
            res["graph_seconds"] = round(statistics.median(res["graph_runs"]), 2)
            res["requests"] = max(res.pop("counts"))
            res["peak_rss"] = max(res["rss"])
            res["graph_peak_rss"] = max(res["graph_rss"])
        if "ref" in result:
            result["time_ratio"] = round(result["ref"]["seconds"] / result["ours"]["seconds"], 1)
            result["request_ratio"] = round(result["ref"]["requests"] / float(result["ours"]["requests"]), 1)
            result["graph_time_ratio"] = round(result["ref"]["graph_seconds"] / result["ours"]["graph_seconds"], 1)
        if "floor" in result:
            result["floor_ratio"] = round(result["ours"]["seconds"] / result["floor"]["seconds"], 2)
        return result
    finally:
        server.stop()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated VMI counts (default 1000,10000)")
    parser.add_argument("--namespaces", type=int, default=200, help="namespaces to spread VMIs over (default 200)")
    parser.add_argument("--repeat", type=int, default=1, help="measured runs per plugin, median reported (default 1)")
    parser.add_argument("--ref-python", default=str(REF_PYTHON), help="python of the virtualenv with kubevirt.core")
    parser.add_argument("--ours-only", action="store_true", help="skip the reference plugin")
    parser.add_argument("--no-floor", action="store_true", help="skip the static-inventory floor")
    parser.add_argument("--baseline", help="also run this collection as found in this collections path (for example "
                        "a git worktree of an earlier commit: DIR/ansible_collections/virtfleet/kubevirt), as 'baseline'")
    parser.add_argument("--raw-page-size", type=int, default=0,
                        help="limit of the raw fetch's list requests (default 0: none, as the plugin's default page_size)")
    _servers.add_argument(parser)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    if not args.ours_only and not Path(args.ref_python).exists():
        raise SystemExit("reference virtualenv missing (%s): run `make bench-venv` or pass --ours-only" % args.ref_python)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if args.baseline:
        BASELINE.append(Path(args.baseline).resolve())
    args.server = _servers.resolve(args.server)
    if args.server == "real" and max(sizes) > NODE_PORTS[1] - NODE_PORTS[0] + 1:
        raise SystemExit("a real server has %d node ports for the NodePort Services: at most that many VMIs"
                         % (NODE_PORTS[1] - NODE_PORTS[0] + 1))
    print("inventory benchmark on the %s" % _servers.LABELS[args.server], flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="inventory-bench-"))
    results = []
    try:
        for size in sizes:
            result = bench_size(size, args, workdir)
            results.append(result)
            line = "VMIs %6d  ns %3d  load %5.1fs  ours --list %6.2fs %4d MB --graph %6.2fs %4d MB %5d req" % (
                size, result["namespaces"], result["load_s"], result["ours"]["seconds"], result["ours"]["peak_rss"],
                result["ours"]["graph_seconds"], result["ours"]["graph_peak_rss"], result["ours"]["requests"])
            if "floor" in result:
                line += "  | floor --list %6.2fs %4d MB (x%.2f)" % (
                    result["floor"]["seconds"], result["floor"]["peak_rss"], result["floor_ratio"])
            line += "  | raw fetch %5.2fs %4d MB" % (result["raw_fetch"]["seconds"], result["raw_fetch"]["rss"])
            if "baseline" in result:
                line += "  | baseline --list %6.2fs %4d MB --graph %6.2fs %4d MB" % (
                    result["baseline"]["seconds"], result["baseline"]["peak_rss"], result["baseline"]["graph_seconds"],
                    result["baseline"]["graph_peak_rss"])
            if "ref" in result:
                line += "  | kubevirt.core --list %7.2fs %4d MB --graph %7.2fs %6d req  | --list x%.1f  --graph x%.1f  requests x%.1f" % (
                    result["ref"]["seconds"], result["ref"]["peak_rss"], result["ref"]["graph_seconds"],
                    result["ref"]["requests"], result["time_ratio"], result["graph_time_ratio"], result["request_ratio"])
            print(line, flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report(results, args.server)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2))
    return results


def report(results, server):
    """The README's table: medians of the measured runs, peak RSS the highest of them. ``floor``: the same hosts and
    variables from a local file through the cheapest plugin (bench/floor_plugin); ``raw fetch``: the plugin's three
    lists fetched and decoded by a bare Python process; ``baseline``: --baseline's collection."""
    label = _servers.LABELS[server]
    print()
    print("Inventory on the %s (medians; load average now %.2f %.2f %.2f)" % ((label,) + os.getloadavg()))
    baseline = any("baseline" in r for r in results)
    print("| VMIs | metric | virtfleet | kubevirt.core | ratio | floor | virtfleet / floor | raw fetch |%s" % (
        " baseline |" if baseline else ""))
    print("|---:|---|---:|---:|---:|---:|---:|---:|%s" % ("---:|" if baseline else ""))
    for result in results:
        ref, floor, raw = result.get("ref") or {}, result.get("floor") or {}, result["raw_fetch"]
        rows = (("`--list` seconds", "seconds", raw["seconds"]), ("`--list` peak RSS MB", "peak_rss", raw["rss"]),
                ("`--graph` seconds", "graph_seconds", ""), ("`--graph` peak RSS MB", "graph_peak_rss", ""),
                ("requests", "requests", ""))
        for n, (metric, key, raw_value) in enumerate(rows):
            ours = result["ours"][key]
            theirs = ref.get(key, "-")
            ratio = "%.1fx" % (theirs / float(ours)) if ref and ours else "-"
            base = floor.get(key, "-") if key != "requests" else (0 if floor else "-")
            vs_floor = "%.2fx" % (ours / float(base)) if floor and key != "requests" and base else "-"
            line = "| %s | %s | %s | %s | %s | %s | %s | %s |" % (
                "{:,}".format(result["vmis"]) if n == 0 else "", metric, ours, theirs, ratio, base, vs_floor, raw_value)
            if baseline:
                line += " %s |" % (result.get("baseline") or {}).get(key, "-")
            print(line)


if __name__ == "__main__":
    main()
