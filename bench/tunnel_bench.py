"""The API tunnel against direct SSH on one real guest (issue #19): wall time and tunnel requests.

One QEMU TCG guest (tests/guest's Debian 12 image, booted by the emulator's real-guest backend,
tests/kubeapi/controllers/realguest.py) is reached two ways by the same ansible-playbook and the same ssh options:

* **direct**: the VM's NodePort Service (`<vm>-ssh`, 127.0.0.1:<nodePort>), which the emulator's small kube-proxy
  relays (plain TCP, one Python thread per direction) to QEMU's user-net hostfwd port of the guest's port 22;
* **api_tunnel**: the host variables `ansible-inventory --host` gives with `address_strategies: [api_tunnel]`
  (`ansible_ssh_common_args` with the ProxyCommand of plugins/plugin_utils/_api_tunnel.py): ssh -> the bridge ->
  TLS WebSocket to the emulator's virt-api `portforward` subresource -> the same hostfwd port.

Both hosts are written to one static YAML inventory, so the inventory plugin's own parse is not in the measured time.
Measured, each `--repeat` times with the two paths alternating, every run from a cold ssh connection (a fresh
ControlPath folder; ControlPersist as ansible-core's defaults set it, the master closed after the run):

* `copy`: a play with one ansible.builtin.copy of a `--size-mb` MB random file (ansible's ssh defaults: -C,
  ControlMaster=auto, ControlPersist=60s; pipelining on);
* `scp`: the same file with plain `scp` (no -C, no ControlMaster) through the same ProxyCommand: the transport alone;
  also straight to the hostfwd port (`hostfwd`), which shows what the NodePort relay itself costs;
* `tasks`: a play with `--tasks` ansible.builtin.ping tasks (pipelining on, ControlPersist: one ssh connection);
* `alone`: the tunnel without a guest: the ProxyCommand (run as ssh runs it) to a simulated VM whose port 22 the
  emulator's test hook points at a local sink: time to the first byte (bridge start-up, TLS, WebSocket upgrade), then
  `--size-mb` MiB each way. This is what the tunnel itself can carry, to compare with what the guest takes.

For each run: the wall time of the whole command (ansible-playbook start-up included) and the `portforward` upgrades
the emulator logged during it (with the bytes the tunnel carried each way). Prints a Markdown table of medians and
the overhead ratio api_tunnel / direct; `--json FILE` keeps every run. Never passes or fails on time.

    .venv/bin/python bench/tunnel_bench.py [--repeat 3] [--tasks 100] [--size-mb 50] [--json FILE] [--alone-only]
    .venv/bin/python bench/tunnel_bench.py --report FILE [FILE...]     # the tables of saved --json runs

Needs the guest image (.build/guest-image, built by tests/guest/build_image.sh, `make test-guest` installs its tools)
and qemu-system-x86_64 (not with --alone-only); the guest boots in under a minute on 2 quiet cores, the whole
benchmark takes 15-25 minutes (almost all of it the 100-task plays: a module run costs 1-2 s in a TCG guest).
"""
import argparse
import datetime
import json
import os
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
from tests.guest.guest import IMAGE, IMAGE_DIR, keypair  # noqa: E402  (the repo root must be on sys.path first)
from tests.kubeapi.harness import Emulator  # noqa: E402

BIN = Path(sys.executable).parent
COLLECTIONS = REPO / ".build" / "collections"
NAMESPACE = "bench-tunnel"
VM_NAME = "guest"
SINK_VM = "sink"   # a simulated VM (no QEMU) whose port 22 the benchmark points at a local sink / source
USER = "bench"
PATHS = ("direct", "api_tunnel")
SSH_OPTIONS = ["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no",
               "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"]


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def user_data(pubkey):
    return "\n".join(["#cloud-config", "users:", "  - name: %s" % USER, "    shell: /bin/bash",
                      "    sudo: ALL=(ALL) NOPASSWD:ALL", "    ssh_authorized_keys:", "      - %s" % pubkey, ""])


def vm_manifest(pubkey):
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": VM_NAME, "namespace": NAMESPACE},
            "spec": {"runStrategy": "Always", "template": {"spec": {
                "domain": {"memory": {"guest": "1Gi"}, "devices": {"disks": [
                    {"name": "root", "disk": {"bus": "virtio"}}, {"name": "cloudinit", "disk": {"bus": "virtio"}}]}},
                "volumes": [{"name": "root", "containerDisk": {"image": IMAGE}},
                            {"name": "cloudinit", "cloudInitNoCloud": {"userData": user_data(pubkey)}}]}}}}


def ensure_image():
    """The guest image (built or reused by tests/guest/build_image.sh, ~10 minutes when missing)."""
    if not shutil.which("qemu-system-x86_64"):
        raise SystemExit("tunnel_bench needs qemu-system-x86_64 and the guest image tools: run tests/guest/install_deps.sh "
                         "as root (or `make test-guest` once)")
    proc = subprocess.run(["bash", str(REPO / "tests" / "guest" / "build_image.sh"), str(IMAGE_DIR)], check=False,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise SystemExit("guest image build failed (tests/guest/build_image.sh):\n%s%s" % (proc.stdout[-2000:], proc.stderr[-2000:]))
    log(proc.stdout.strip().splitlines()[-1])


def hostfwd_port(emu):
    """QEMU's hostfwd port for the guest's port 22, from the emulator's log line of the launch."""
    for line in (emu.workdir / "kubeapi.log").read_text().splitlines():
        if "real guest %s/%s: QEMU pid" % (NAMESPACE, VM_NAME) in line:
            return int(line.split("ssh hostfwd 127.0.0.1:")[1].split(",")[0])
    raise SystemExit("no QEMU launch line for %s/%s in %s" % (NAMESPACE, VM_NAME, emu.workdir / "kubeapi.log"))


class Sink:
    """A local TCP server in place of the guest port for the tunnel alone: ``discard`` counts what arrives (sets
    ``done`` once ``expect`` bytes are in), ``source`` sends ``expect`` bytes and closes."""

    def __init__(self):
        self.mode, self.expect, self.received = "discard", 0, 0
        self.done = threading.Event()
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(4)
        self.port = self.srv.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self, mode, expect):
        self.mode, self.expect, self.received = mode, expect, 0
        self.done.clear()

    def _accept(self):
        while True:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        try:
            if self.mode == "source":
                block = os.urandom(1024 * 1024)
                left = self.expect
                while left > 0:
                    conn.sendall(block[:left])
                    left -= len(block[:left])
            else:
                while True:
                    data = conn.recv(262144)
                    if not data:
                        break
                    self.received += len(data)
                    if self.received >= self.expect:
                        self.done.set()
        except OSError:
            pass
        conn.close()

    def close(self):
        self.srv.close()


def ssh_proxy_command(ssh_common_args, port):
    """The command ssh runs for a ProxyCommand option of ansible_ssh_common_args (ansible-core splits the value with
    shlex; ssh expands %p and %%)."""
    words = shlex.split(ssh_common_args)
    command = next(w for w in words if w.startswith("ProxyCommand="))[len("ProxyCommand="):]
    return command.replace("%p", str(port)).replace("%%", "%")


class Bench:
    def __init__(self, emu, work, key, args):
        self.emu, self.work, self.key, self.args = emu, work, key, args
        self.env = emu.env(dict(os.environ))
        self.env.update({"HOME": str(work / "home"), "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS), "ANSIBLE_NOCOLOR": "1",
                         "ANSIBLE_HOST_KEY_CHECKING": "False", "ANSIBLE_PIPELINING": "1", "ANSIBLE_RETRY_FILES_ENABLED": "0",
                         "ANSIBLE_LOCAL_TEMP": str(work / "tmp"), "ANSIBLE_HOME": str(work / "ansible-home"),
                         "ANSIBLE_DEPRECATION_WARNINGS": "0", "ANSIBLE_TIMEOUT": "60"})
        (work / "home").mkdir(exist_ok=True)
        self.runs = []
        self.hosts = {}
        # The inventory source of the tunnelled hosts: the emulator's kubeconfig by path (no auth file).
        self.source = work / "kubevirt.yml"
        self.source.write_text(yaml.safe_dump({"plugin": "virtfleet.kubevirt.kubevirt", "kubeconfig": str(emu.kubeconfig),
                                               "namespaces": [NAMESPACE], "address_strategies": ["api_tunnel"]}))

    # --- the two ways in -----------------------------------------------------------------------------------
    def resolve_hosts(self):
        svc = self.emu.get_object("/api/v1/namespaces/%s/services/%s-ssh" % (NAMESPACE, VM_NAME))
        node_port = svc["spec"]["ports"][0]["nodePort"]
        proc = subprocess.run([str(BIN / "ansible-inventory"), "-i", str(self.source), "--host", "%s-%s" % (NAMESPACE, VM_NAME)],
                              env=self.env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SystemExit("ansible-inventory failed:\n" + proc.stderr[-3000:])
        tunnel = json.loads(proc.stdout)
        tunnel = dict((k, v["__ansible_unsafe"] if isinstance(v, dict) and "__ansible_unsafe" in v else v)
                      for k, v in tunnel.items())
        assert tunnel["vm_address_source"] == "api_tunnel", tunnel
        common = {"ansible_user": USER, "ansible_ssh_private_key_file": str(self.key),
                  "ansible_python_interpreter": "/usr/bin/python3"}
        self.hosts = {
            "direct": dict(common, ansible_host="127.0.0.1", ansible_port=node_port),
            "api_tunnel": dict(common, ansible_host=tunnel["ansible_host"], ansible_port=tunnel["ansible_port"],
                               ansible_ssh_common_args=tunnel["ansible_ssh_common_args"]),
            "hostfwd": dict(common, ansible_host="127.0.0.1", ansible_port=hostfwd_port(self.emu)),
        }
        self.inventory = self.work / "hosts.yml"
        self.inventory.write_text(yaml.safe_dump({"all": {"hosts": self.hosts}}, sort_keys=False))
        log("direct: NodePort 127.0.0.1:%d (hostfwd %d); api_tunnel: %s port %d"
            % (node_port, self.hosts["hostfwd"]["ansible_port"], tunnel["ansible_host"], tunnel["ansible_port"]))

    def ssh_argv(self, path, program="ssh"):
        """ssh/scp options and destination of a path (the tunnel's ProxyCommand split as ansible-core splits it)."""
        host = self.hosts[path]
        port_flag = "-p" if program == "ssh" else "-P"
        argv = [program, "-i", str(self.key), port_flag, str(host["ansible_port"])] + SSH_OPTIONS
        argv += shlex.split(host.get("ansible_ssh_common_args", ""))
        return argv, "%s@%s" % (USER, host["ansible_host"])

    def remote(self, command):
        """A command on the guest over the direct path (setup and clean-up, not measured)."""
        argv, dest = self.ssh_argv("direct")
        return subprocess.run(argv + [dest, command], env=self.env, capture_output=True, text=True, timeout=300, check=False)

    # --- measured runs -------------------------------------------------------------------------------------
    def measure(self, workload, path, argv, rep):
        control_dir = Path(tempfile.mkdtemp(prefix="cp-", dir=str(self.work)))
        env = dict(self.env, ANSIBLE_SSH_CONTROL_PATH_DIR=str(control_dir))
        mark = self.emu.mark()
        start = time.monotonic()
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False, cwd=str(self.work), timeout=3600)
        seconds = time.monotonic() - start
        for sock in control_dir.iterdir():   # close the ControlPersist master before the next run
            subprocess.run(["ssh", "-o", "ControlPath=%s" % sock, "-O", "exit", "x"], capture_output=True, check=False,
                           timeout=30)
        time.sleep(0.3)
        tunnels = [r for r in self.emu.requests(since=mark) if "/portforward/" in r.get("path", "")]
        run = {"workload": workload, "path": path, "repetition": rep, "seconds": round(seconds, 2), "rc": proc.returncode,
               "portforward_requests": len(tunnels),
               "portforward_statuses": sorted(set(r.get("status") for r in tunnels)),
               "to_guest_bytes": sum((r.get("tunnel") or {}).get("to_guest", 0) for r in tunnels),
               "from_guest_bytes": sum((r.get("tunnel") or {}).get("from_guest", 0) for r in tunnels),
               "load_average": round(os.getloadavg()[0], 2)}
        if proc.returncode != 0:
            raise SystemExit("%s over %s failed (rc %d):\n%s%s"
                             % (workload, path, proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:]))
        log("%-6s %-10s #%d: %6.2f s, %d portforward request(s), load %.2f"
            % (workload, path, rep, seconds, len(tunnels), run["load_average"]))
        self.runs.append(run)
        shutil.rmtree(control_dir, ignore_errors=True)
        return run

    def tunnel_alone(self):
        """The tunnel without a guest: the bridge (run as ssh runs it) and the emulator's relay to a local sink, both
        ways; the time until the first byte arrives (bridge start-up, TLS, upgrade) and MB/s of --size-mb MB."""
        sink = Sink()
        self.emu.apply_object({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
                               "metadata": {"name": SINK_VM, "namespace": NAMESPACE},
                               "spec": {"runStrategy": "Always", "template": {"spec": {"domain": {"devices": {}}}}}})
        self.emu.wait_for("/apis/kubevirt.io/v1/namespaces/%s/virtualmachineinstances/%s" % (NAMESPACE, SINK_VM),
                          lambda o: ((o or {}).get("status") or {}).get("phase") == "Running", timeout=60)
        self.emu._hook("PUT", "guest-ports", {"namespace": NAMESPACE, "name": SINK_VM, "port": 22,  # pylint: disable=protected-access
                                              "target_port": sink.port})
        proc = subprocess.run([str(BIN / "ansible-inventory"), "-i", str(self.source), "--host", "%s-%s" % (NAMESPACE, SINK_VM)],
                              env=self.env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SystemExit("ansible-inventory failed:\n" + proc.stderr[-3000:])
        args = json.loads(proc.stdout)["ansible_ssh_common_args"]
        command = ["/bin/sh", "-c", "exec " + ssh_proxy_command(args.get("__ansible_unsafe", args) if isinstance(args, dict)
                                                                else args, 22)]
        size = self.args.size_mb * 1024 * 1024
        block = os.urandom(1024 * 1024)
        try:
            for rep in range(1, self.args.repeat + 1):
                for direction, nbytes in (("first byte", 1), ("to guest", size), ("from guest", size)):
                    sink.arm("source" if direction == "from guest" else "discard", nbytes)
                    mark = self.emu.mark()
                    start = time.monotonic()
                    bridge = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                              env=self.env)
                    if direction == "from guest":
                        got = 0
                        while got < nbytes:
                            chunk = bridge.stdout.read1(262144)
                            if not chunk:
                                break
                            got += len(chunk)
                    else:
                        left = nbytes
                        while left > 0:
                            bridge.stdin.write(block[:left])
                            left -= len(block[:left])
                        bridge.stdin.flush()
                        sink.done.wait(300)
                        got = sink.received
                    seconds = time.monotonic() - start
                    bridge.stdin.close()
                    err = bridge.stderr.read().decode()
                    bridge.wait(60)
                    bridge.stdout.close()
                    bridge.stderr.close()
                    if got < nbytes or bridge.returncode != 0:
                        raise SystemExit("the tunnel to the sink carried %d of %d bytes (%s), rc %s: %s"
                                         % (got, nbytes, direction, bridge.returncode, err))
                    tunnels = [r for r in self.emu.requests(since=mark) if "/portforward/" in r.get("path", "")]
                    self.runs.append({"workload": "alone", "path": direction, "repetition": rep, "seconds": round(seconds, 3),
                                      "bytes": nbytes, "portforward_requests": len(tunnels),
                                      "load_average": round(os.getloadavg()[0], 2)})
                    log("alone  %-10s #%d: %6.2f s, %d portforward request(s)" % (direction, rep, seconds, len(tunnels)))
        finally:
            sink.close()

    def playbook(self, name, tasks):
        path = self.work / ("%s.yml" % name)
        path.write_text(yaml.safe_dump([{"hosts": "all", "gather_facts": False, "tasks": tasks}], sort_keys=False))
        return path

    def run_all(self):
        args = self.args
        payload = self.work / "payload.bin"
        with open(payload, "wb") as handle:
            for _ in range(args.size_mb):
                handle.write(os.urandom(1024 * 1024))
        copy_play = self.playbook("copy", [{"name": "copy %d MB" % args.size_mb, "ansible.builtin.copy": {
            "src": str(payload), "dest": "/tmp/bench-copy.bin", "mode": "0644"}}])
        tasks_play = self.playbook("tasks", [{"name": "ping %d" % i, "ansible.builtin.ping": {}}
                                             for i in range(args.tasks)])
        playbook = [str(BIN / "ansible-playbook"), "-i", str(self.inventory)]
        for rep in range(1, args.repeat + 1):
            # Alternate which path goes first, so a load change during a repetition does not favour one of them.
            order = PATHS if rep % 2 else tuple(reversed(PATHS))
            for path in order:
                self.remote("rm -f /tmp/bench-copy.bin")
                self.measure("copy", path, playbook + ["--limit", path, str(copy_play)], rep)
            for path in order + ("hostfwd",):
                self.remote("rm -f /tmp/bench-scp.bin")
                argv, dest = self.ssh_argv(path, "scp")
                self.measure("scp", path, argv + ["-q", str(payload), "%s:/tmp/bench-scp.bin" % dest], rep)
            for path in order:
                self.measure("tasks", path, playbook + ["--limit", path, str(tasks_play)], rep)
        check = self.remote("sha256sum /tmp/bench-copy.bin /tmp/bench-scp.bin")
        local = subprocess.run(["sha256sum", str(payload)], capture_output=True, text=True, check=True).stdout.split()[0]
        if check.returncode != 0 or check.stdout.split()[0::2] != [local, local]:
            raise SystemExit("the copied files differ from the payload:\n%s%s" % (check.stdout, check.stderr))
        self.remote("rm -f /tmp/bench-copy.bin /tmp/bench-scp.bin")


MIB = 1024 * 1024


def median(runs, workload, path, key="seconds"):
    values = [r[key] for r in runs if r["workload"] == workload and r["path"] == path]
    return statistics.median(values) if values else None


def guest_table(runs, args):
    size = args.size_mb
    rows = [("copy", "ansible.builtin.copy, %d MiB" % size), ("scp", "scp, %d MiB (transport only)" % size),
            ("tasks", "%d ping tasks" % args.tasks)]
    lines = ["| workload | direct (NodePort) s | api_tunnel s | overhead | hostfwd s | portforward requests per tunnel run "
             "| tunnel MiB to / from guest |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for workload, label in rows:
        direct, tunnel = median(runs, workload, "direct"), median(runs, workload, "api_tunnel")
        hostfwd = median(runs, workload, "hostfwd")
        requests = sorted(set(r["portforward_requests"] for r in runs if r["workload"] == workload and r["path"] == "api_tunnel"))
        direct_requests = sum(r["portforward_requests"] for r in runs if r["workload"] == workload and r["path"] != "api_tunnel")
        assert direct_requests == 0, "a direct run went through the tunnel"
        lines.append("| %s | %.2f | %.2f | %.2fx (%+.2f s) | %s | %s | %.1f / %.2f |" % (
            label, direct, tunnel, tunnel / direct, tunnel - direct, "%.2f" % hostfwd if hostfwd else "-",
            " / ".join(str(n) for n in requests), median(runs, workload, "api_tunnel", "to_guest_bytes") / MIB,
            median(runs, workload, "api_tunnel", "from_guest_bytes") / MIB))
    per_task = (median(runs, "tasks", "api_tunnel") - median(runs, "tasks", "direct")) / args.tasks
    throughput = dict((p, size / median(runs, "scp", p)) for p in PATHS + ("hostfwd",))
    every = "; ".join("%s %s %s" % (w, p, " / ".join("%.1f" % r["seconds"] for r in runs if r["workload"] == w and r["path"] == p))
                      for w in ("copy", "scp", "tasks") for p in PATHS + ("hostfwd",) if median(runs, w, p) is not None)
    notes = ["Medians of %d runs each; every run: %s." % (args.repeat, every),
             "scp throughput (whole command): direct %.1f MiB/s, api_tunnel %.1f MiB/s, hostfwd %.1f MiB/s; per task the "
             "tunnel adds %+.3f s (median difference / %d)."
             % (throughput["direct"], throughput["api_tunnel"], throughput["hostfwd"], per_task, args.tasks)]
    return lines, notes


def alone_table(runs, args):
    first = median(runs, "alone", "first byte")
    lines = ["| the tunnel alone, %d MiB to a local sink (no guest) | seconds | MiB/s after the first byte | portforward "
             "requests per run |" % args.size_mb, "|---|---:|---:|---:|",
             "| first byte (bridge start-up, TLS, upgrade) | %.2f | - | %s |" % (
                 first, "/".join(sorted(set(str(r["portforward_requests"]) for r in runs if r["path"] == "first byte"))))]
    for direction in ("to guest", "from guest"):
        seconds = median(runs, "alone", direction)
        lines.append("| %s | %.2f | %.0f | %s |" % (
            direction, seconds, args.size_mb / max(seconds - first, 1e-6),
            "/".join(sorted(set(str(r["portforward_requests"]) for r in runs if r["path"] == direction)))))
    notes = ["Tunnel alone, every run: %s." % "; ".join(
        "%s %s" % (d, " / ".join("%.2f" % r["seconds"] for r in runs if r["workload"] == "alone" and r["path"] == d))
        for d in ("first byte", "to guest", "from guest"))]
    return lines, notes


def table(runs, args):
    lines, notes = [], []
    if any(r["workload"] != "alone" for r in runs):
        lines, notes = guest_table(runs, args)
    if any(r["workload"] == "alone" for r in runs):
        more, more_notes = alone_table(runs, args)
        lines += ([""] if lines else []) + more
        notes += more_notes
    loads = [r["load_average"] for r in runs]
    notes.append("Load average (1 min) during the runs: %.2f-%.2f." % (min(loads), max(loads)))
    return "\n".join(lines), notes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="measured runs per workload and path (default 3)")
    parser.add_argument("--tasks", type=int, default=100, help="ping tasks of the tasks play (default 100)")
    parser.add_argument("--size-mb", type=int, default=50, help="size of the copied file in MB (default 50)")
    parser.add_argument("--json", help="write every run, the medians and the table to this file")
    parser.add_argument("--alone-only", action="store_true",
                        help="only the tunnel without a guest (bridge and relay to a local sink); no QEMU needed")
    parser.add_argument("--workdir", help="keep the emulator, guest and playbooks here (default: a temporary folder)")
    parser.add_argument("--report", metavar="JSON", nargs="+",
                        help="print the tables of earlier --json files (their runs together) and exit")
    args = parser.parse_args(argv)
    if args.report:
        saved = [json.loads(Path(f).read_text()) for f in args.report]
        for name in ("repeat", "tasks", "size_mb"):
            setattr(args, name, saved[0]["args"][name])
        text, notes = table([r for doc in saved for r in doc["runs"]], args)
        print(text + "\n\n" + "\n".join(notes))
        return
    for name in ("repeat", "tasks", "size_mb"):
        if getattr(args, name) < 1:
            parser.error("--%s must be at least 1" % name.replace("_", "-"))
    if not (COLLECTIONS / "ansible_collections" / "virtfleet" / "kubevirt").exists():
        raise SystemExit("the collection is not installed in %s: run `make collection` (or `make venv`)" % COLLECTIONS)
    if not args.alone_only:
        ensure_image()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="tunnel-bench-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    key, pubkey = keypair(work, "bench-key")
    emu = Emulator(work / "emulator", tls=True, controllers=("virt",), timing="fast",
                   guest_images=None if args.alone_only else {IMAGE: IMAGE_DIR})
    emu.start()
    try:
        started = time.monotonic()
        emu.apply_object({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
        bench = Bench(emu, work, key, args)
        if not args.alone_only:
            emu.apply_object(vm_manifest(pubkey))
            log("booting the guest (QEMU TCG)...")
            emu.wait_for("/apis/kubevirt.io/v1/namespaces/%s/virtualmachines/%s" % (NAMESPACE, VM_NAME),
                         lambda o: ((o or {}).get("status") or {}).get("ready") is True, timeout=900, interval=1)
            bench.resolve_hosts()
            for _ in range(60):   # cloud-init adds the user shortly after sshd answers
                if bench.remote("true").returncode == 0:
                    break
                time.sleep(2)
            bench.remote("cloud-init status --wait")
            log("guest ready after %.0f s" % (time.monotonic() - started))
            bench.run_all()
        bench.tunnel_alone()
    finally:
        emu.stop()
    text, notes = table(bench.runs, args)
    print("\n" + text + "\n\n" + "\n".join(notes))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"date": datetime.datetime.now().isoformat(timespec="seconds"),
                                               "args": vars(args), "runs": bench.runs, "table": text, "notes": notes},
                                              indent=2))
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
