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


STAMP = "2025-06-02T08:00:00Z"
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBenchmarkKeyBenchmarkKeyBenchmarkKey0 bench"


def condition(kind, status="True", probe=None, transition=STAMP):
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
                       "conditions": [condition("Ready"), condition("LiveMigratable", transition=None),
                                      condition("AgentConnected", probe=STAMP, transition=None)],
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
                "conditions": [condition("Ready"), condition("LiveMigratable", transition=None),
                               condition("AgentConnected", probe=STAMP, transition=None)],
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
                "phaseTransitionTimestamps": [{"phase": phase, "phaseTransitionTimestamp": STAMP}
                                              for phase in ("Pending", "Scheduling", "Scheduled", "Running")],
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


def run_inventory(server, python, plugin_value, workdir, label, mode="--list"):
    source_dir = workdir / label
    source_dir.mkdir(exist_ok=True)
    source = source_dir / "kubevirt.yml"
    source.write_text("plugin: %s\n" % plugin_value)
    env = dict(os.environ, K8S_AUTH_KUBECONFIG=str(server.kubeconfig), ANSIBLE_INVENTORY_UNPARSED_FAILED="1",
               ANSIBLE_LOCAL_TEMP=str(workdir / "tmp"), ANSIBLE_HOME=str(workdir / ("home-" + label)))
    env["KUBECONFIG"] = str(server.kubeconfig)
    if label == "ours":
        env["ANSIBLE_COLLECTIONS_PATH"] = str(COLLECTIONS)
    else:
        env.pop("ANSIBLE_COLLECTIONS_PATH", None)  # the reference venv's site-packages ship kubevirt.core
    out = source_dir / "list.json"
    server.reset_requests()
    start = time.perf_counter()
    proc = subprocess.run([str(Path(python).parent / "ansible-inventory"), "-i", str(source), mode, "--output", str(out)],
                          env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit("%s ansible-inventory failed:\n%s" % (label, proc.stderr[-3000:]))
    requests = server.requests()
    if mode == "--graph":
        hosts = set(line.strip(" |-") for line in out.read_text().splitlines() if not line.strip(" |-").startswith("@"))
    else:
        hosts = set(json.loads(out.read_text()).get("_meta", {}).get("hostvars", {}))
    return elapsed, len(requests), hosts


def bench_size(count, args, workdir):
    # No KubeVirt controllers: the loaded objects stay exactly as written.
    server = _servers.start(args.server, workdir / ("server-%d" % count), controllers=(), nodes=4)
    try:
        load_time = _servers.load(server, dataset(count, args.namespaces))
        result = {"vmis": count, "namespaces": args.namespaces, "server": args.server,
                  "server_label": _servers.LABELS[args.server], "load_s": round(load_time, 1)}
        runs = [("ours", OURS_PYTHON, "virtfleet.kubevirt.kubevirt")]
        if not args.ours_only:
            runs.append(("ref", Path(args.ref_python), "kubevirt.core.kubevirt"))
        for label, python, plugin in runs:
            # one unmeasured warm-up run each: page cache, and kubevirt.core's on-disk discovery cache
            run_inventory(server, python, plugin, workdir, label)
            result[label] = {"runs": [], "graph_runs": [], "counts": []}
        # The measured runs alternate between the plugins, so that a burst of load elsewhere on the machine falls
        # on both rather than on one.
        for mode, key in (("--list", "runs"), ("--graph", "graph_runs")):
            for _run in range(args.repeat):
                for label, python, plugin in runs:
                    elapsed, requests, hosts = run_inventory(server, python, plugin, workdir, label, mode=mode)
                    result[label][key].append(round(elapsed, 2))
                    if mode == "--list":
                        result[label]["counts"].append(requests)
                        result[label]["hosts"] = len(hosts)
                    if len(hosts) != count:
                        print("WARNING: %s listed %d hosts, expected %d" % (label, len(hosts), count), file=sys.stderr)
        for label, _python, _plugin in runs:
            res = result[label]
            res["seconds"] = round(statistics.median(res["runs"]), 2)
            # --graph builds the same inventory but prints no host variables: the plugin's own share of the time
            res["graph_seconds"] = round(statistics.median(res["graph_runs"]), 2)
            res["requests"] = max(res.pop("counts"))
        if "ref" in result:
            result["time_ratio"] = round(result["ref"]["seconds"] / result["ours"]["seconds"], 1)
            result["request_ratio"] = round(result["ref"]["requests"] / float(result["ours"]["requests"]), 1)
            result["graph_time_ratio"] = round(result["ref"]["graph_seconds"] / result["ours"]["graph_seconds"], 1)
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
    _servers.add_argument(parser)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    if not args.ours_only and not Path(args.ref_python).exists():
        raise SystemExit("reference virtualenv missing (%s): run `make bench-venv` or pass --ours-only" % args.ref_python)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
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
            line = "VMIs %6d  ns %3d  load %5.1fs  ours --list %6.2fs --graph %6.2fs %5d req" % (
                size, result["namespaces"], result["load_s"], result["ours"]["seconds"],
                result["ours"]["graph_seconds"], result["ours"]["requests"])
            if "ref" in result:
                line += "  | kubevirt.core --list %7.2fs --graph %7.2fs %6d req  | --list x%.1f  --graph x%.1f  requests x%.1f" % (
                    result["ref"]["seconds"], result["ref"]["graph_seconds"], result["ref"]["requests"], result["time_ratio"],
                    result["graph_time_ratio"], result["request_ratio"])
            print(line, flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report(results, args.server)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2))
    return results


def report(results, server):
    """The README's table: medians of the measured runs, the server in its own column."""
    label = _servers.LABELS[server]
    print()
    print("Inventory on the %s (medians)" % label)
    print("| VMIs | server | metric | virtfleet | kubevirt.core | ratio |")
    print("|---:|---|---|---:|---:|---:|")
    for result in results:
        ref = result.get("ref")
        rows = (("`--list` seconds", "seconds", "time_ratio"),
                ("`--graph` seconds", "graph_seconds", "graph_time_ratio"),
                ("requests", "requests", "request_ratio"))
        for n, (metric, key, ratio_key) in enumerate(rows):
            print("| %s | %s | %s | %s | %s | %s |" % (
                "{:,}".format(result["vmis"]) if n == 0 else "", label if n == 0 else "", metric, result["ours"][key],
                ref[key] if ref else "-", "%sx" % result[ratio_key] if ref else "-"))


if __name__ == "__main__":
    main()
