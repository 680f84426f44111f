"""playbooks/maintain_nodes.yml over three Kubernetes nodes while a real guest keeps running and answering (issue #18,
"Must show": the VMs running and reachable throughout the roll).

The emulator runs the simulated virt controller with its real-guest backend: node `localnode` (where real guests
start), node01 and node02. One real Debian 12 QEMU TCG guest (no Service: the inventory reaches it through the API
server, the api_tunnel strategy, which does not depend on the node the VMI runs on) and four simulated VMs spread
over the nodes. The inventory of the roll names the three Kubernetes nodes (ansible_connection=local: the kvm_host
part is proven on a QEMU node in tests/node), node_maintenance_run_kvm_host and node_maintenance_require_kvm false,
and a user task file that records each node's state in the cluster while it is under maintenance.

While the roll runs, two probers go to the real guest through the inventory's own address (its ProxyCommand, a VMI
portforward through the API server): every second a fresh tunnel that must bring the guest's SSH banner, and every
few seconds a full SSH session reading the guest's uptime and boot id. Asserted: the roll finished; every node was
cordoned, drained (the user task saw it cordoned and empty) and uncordoned, one after the other, in inventory order;
the real guest's VMI moved node (same VMI uid) and its QEMU process is the same (pid), its boot id unchanged and
its uptime growing across every session; the probers saw zero failures, and probes ran inside every window in which
the real guest's live migration was in flight (a KubeVirt CR with migrations.bandwidthPerMigration 64Mi makes its
512 MiB take about 8 s). Probe counts, latencies and the in-flight windows are printed and recorded for the summary.
"""
import shlex
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import yaml

from tests.guest.guest import BOOT_TIMEOUT, IMAGE, build_image, keypair, ssh
from tests.guest.test_real_guest import user_data
from tests.guest.test_site_e2e import host_vars
from tests.kubeapi.harness import qemu_pids
from tests.node.test_maintain_nodes_node import (MASQUERADE, POD_NETWORK, RECORDER, USER_TASKS, VMI_LIST, Timeline,
                                                 maintain, read_record, recap_lines, recaps, summary_lines, vm_object)
from tests.summary import record

REPO = Path(__file__).resolve().parents[2]
NODES = ("localnode", "node01", "node02")       # the inventory's order is the roll's order
NO_SERVICE = {"kubeapi-emulator/ssh-service": "none"}
SESSION_COMMAND = "cat /proc/uptime /proc/sys/kernel/random/boot_id"

pytestmark = pytest.mark.timeout(BOOT_TIMEOUT + 1800)

# The emu fixture (tests/conftest.py): seeded node01/node02 plus the real guests' localnode.
EMULATOR = {"name": "maintain-guest", "controllers": ("virt",), "guest_images": lambda: {IMAGE: build_image()}}


def real_vm(ns, name, pubkey):
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
            "metadata": {"name": name, "namespace": ns, "labels": dict(NO_SERVICE, app="real")},
            "spec": {"runStrategy": "Always", "template": {
                "metadata": {"labels": {"app": "real"}},
                "spec": {"domain": {"memory": {"guest": "512Mi"}, "devices": {"disks": [
                    {"name": "root", "disk": {"bus": "virtio"}}, {"name": "cloudinit", "disk": {"bus": "virtio"}}],
                    "interfaces": [MASQUERADE]}},
                    "networks": [POD_NETWORK],
                    "volumes": [{"name": "root", "containerDisk": {"image": IMAGE}},
                                {"name": "cloudinit", "cloudInitNoCloud": {"userData": user_data("debian", pubkey)}}]}}}}


class Prober:
    """Probes one guest through an inventory host's ProxyCommand until stopped:
    banner: every `interval` s a new tunnel (the ProxyCommand, run as ssh would run it) must bring b"SSH-";
    session: every `session_interval` s our own ssh through the same ProxyCommand runs SESSION_COMMAND.
    Probes start on the clock, each in its own thread, so a slow answer (a loaded machine) never thins the schedule.
    Each probe is (seconds since start, latency, ok, detail); a probe that has not answered in `timeout` s fails."""

    def __init__(self, hvars, key, env, interval=1.0, session_interval=5.0, timeout=30):
        self.through = shlex.split(hvars["ansible_ssh_common_args"])
        proxy = next(w for w in self.through if w.startswith("ProxyCommand="))[len("ProxyCommand="):]
        # ssh's %-expansion of the command: %p is the guest port (ansible_port), %% a literal %.
        self.proxy = proxy.replace("%p", str(hvars["ansible_port"])).replace("%%", "%")
        self.host, self.user, self.key, self.env = hvars["ansible_host"], "debian", key, env
        self.interval, self.session_interval, self.timeout = interval, session_interval, timeout
        self.banners, self.sessions = [], []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._clock, args=(self.banner, interval, self.banners), daemon=True),
                         threading.Thread(target=self._clock, args=(self.session, session_interval, self.sessions),
                                          daemon=True)]
        self._probes = []
        self.started = None

    def banner(self):
        proc = subprocess.Popen(["/bin/sh", "-c", "exec " + self.proxy], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=self.env)
        timer = threading.Timer(self.timeout, proc.kill)
        timer.start()
        try:
            line = proc.stdout.readline()
        finally:
            timer.cancel()
            proc.stdin.close()
            proc.kill()
            err = proc.stderr.read().decode(errors="replace").strip()
            proc.wait()
        return line.startswith(b"SSH-"), line.decode(errors="replace").strip() or err[-300:]

    def session(self):
        try:
            out = ssh(self.key, self.user, 22, SESSION_COMMAND, timeout=self.timeout, host=self.host,
                      options=self.through, env=self.env)
        except subprocess.TimeoutExpired:
            return False, "no answer in %ds" % self.timeout
        return out.returncode == 0, (out.stdout if out.returncode == 0 else out.stderr[-300:])

    def _one(self, probe, results):
        began = time.monotonic()
        ok, detail = probe()
        results.append((began - self.started, time.monotonic() - began, ok, detail))

    def _clock(self, probe, interval, results):
        tick = time.monotonic()
        while not self._stop.is_set():
            thread = threading.Thread(target=self._one, args=(probe, results), daemon=True)
            thread.start()
            self._probes.append(thread)
            tick += interval
            self._stop.wait(max(0.0, tick - time.monotonic()))

    def __enter__(self):
        self.started = time.monotonic()
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for thread in self._threads + self._probes:
            thread.join(self.timeout + 30)
        for results in (self.banners, self.sessions):
            results.sort()

    @staticmethod
    def failures(results):
        return [r for r in results if not r[2]]

    @staticmethod
    def summary(results):
        latencies = sorted(r[1] for r in results) or [0.0]
        return "%d probes, %d failed, latency median %.2fs max %.2fs" % (
            len(results), len(Prober.failures(results)), latencies[len(latencies) // 2], latencies[-1])


def during(results, started, windows):
    """The probes of `results` (a Prober list, `started` its clock) that began inside one of `windows`, per window."""
    return [[r for r in results if low <= started + r[0] <= high] for low, high in windows]


def uptime_and_boot_id(text):
    words = text.split()
    return float(words[0]), words[2]


def test_maintain_nodes_keeps_the_real_guest_running_and_reachable(emu, tmp_path):
    ns = "mng-" + uuid.uuid4().hex[:6]
    emu.apply_object({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    key, pub = keypair(tmp_path, "fleet")
    emu.apply_object(real_vm(ns, "guest", pub))
    sims = ["sim-%d" % i for i in range(1, 5)]
    for name in sims:
        emu.apply_object(vm_object(ns, name))
    # Live migrations as slow as a 64 MiB/s link makes them (the KubeVirt CR's migrations.bandwidthPerMigration): the
    # real guest's 512 MiB take about 8 s, a window in which the probers must keep getting through.
    emu.apply_object({"apiVersion": "kubevirt.io/v1", "kind": "KubeVirt", "metadata": {"name": "kubevirt", "namespace": "kubevirt"},
                      "spec": {"configuration": {"migrations": {"bandwidthPerMigration": "64Mi"}}}})
    start = time.monotonic()
    emu.wait_for("/apis/kubevirt.io/v1/namespaces/%s/virtualmachines/guest" % ns,
                 lambda o: ((o or {}).get("status") or {}).get("ready") is True, timeout=BOOT_TIMEOUT, interval=1)
    print("real guest ready after %.0fs" % (time.monotonic() - start))
    vmis = {v["metadata"]["name"]: v for v in emu.get_object(VMI_LIST % ns)["items"]}
    assert set(vmis) == {"guest"} | set(sims) and all(v["status"]["phase"] == "Running" for v in vmis.values()), vmis
    before_nodes = {name: v["status"]["nodeName"] for name, v in vmis.items()}
    assert before_nodes["guest"] == "localnode" and set(before_nodes.values()) == set(NODES), before_nodes
    (pid,) = qemu_pids(emu.workdir / "guests").values()

    # The inventory plugin's address for the guest: no Service, so the API tunnel (independent of the node).
    source = yaml.safe_load((REPO / "playbooks" / "inventory" / "kubevirt.yml").read_text())
    source["namespaces"] = [ns]
    (tmp_path / "guests").mkdir()
    (tmp_path / "guests" / "kubevirt.yml").write_text(yaml.safe_dump(source))
    hvars = host_vars(emu, tmp_path / "guests", "%s-guest" % ns)
    assert hvars["vm_address_source"] == "api_tunnel", hvars
    prober = Prober(hvars, key, emu.env())
    ok, first = prober.session()
    assert ok, first
    uptime0, boot_id = uptime_and_boot_id(first)

    nodes_inventory = tmp_path / "nodes.ini"
    nodes_inventory.write_text("[kvm_nodes]\n%s\n\n[kvm_nodes:vars]\nansible_connection=local\n"
                               "ansible_python_interpreter=%s\n" % ("\n".join(NODES), sys.executable))
    record_file = tmp_path / "record.jsonl"
    extra = {"node_maintenance_run_kvm_host": False, "node_maintenance_require_kvm": False,
             "node_maintenance_migration_timeout": 300, "node_maintenance_ready_timeout": 120,
             "node_maintenance_tasks": str(USER_TASKS), "maintain_test_recorder": str(RECORDER),
             "maintain_test_record": str(record_file)}
    mark = emu.mark()
    with Timeline(emu, [ns]) as timeline, prober:
        rc, output, seconds = maintain(emu, tmp_path, nodes_inventory, extra, "roll", timeout=1200)
        time.sleep(2)       # a last probe after the roll
    print("\nmaintain_nodes.yml over %s: rc=%d in %.0fs" % (", ".join(NODES), rc, seconds))
    print("\n".join(recap_lines(output) + summary_lines(output)))
    banners, sessions = Prober.summary(prober.banners), Prober.summary(prober.sessions)
    print("banner prober (new API tunnel each second): %s" % banners)
    print("session prober (ssh through the tunnel every %ds): %s" % (prober.session_interval, sessions))
    record("maintain_nodes.yml (tests/guest)", "roll over 3 nodes, 1 real + 4 simulated VMs: rc=%d in %.0fs" % (
        rc, seconds))
    record("maintain_nodes.yml (tests/guest)", "real guest banner prober: %s" % banners)
    record("maintain_nodes.yml (tests/guest)", "real guest SSH session prober: %s" % sessions)
    assert rc == 0, output[-8000:]
    recap = recaps(output)
    assert all(recap[n]["failed"] == 0 and recap[n]["unreachable"] == 0 for n in NODES), recap

    # The roll: one node after the other, cordoned, drained (as the user task saw it), uncordoned.
    assert timeline.cordon_order() == [(n, e) for n in NODES for e in ("cordoned", "uncordoned")], \
        timeline.cordon_order()
    lines = read_record(record_file)
    assert [line["node"] for line in lines] == list(NODES), lines
    assert all(line["unschedulable"] is True and line["vmis"] == [] for line in lines), lines
    # Every VM moved by live migration (same VMI) and ran at every poll; the real guest too.
    for name in ["guest"] + sims:
        full = "%s/%s" % (ns, name)
        assert timeline.uids_of(full) == {vmis[name]["metadata"]["uid"]}, name
        assert len(timeline.nodes_of(full)) >= 2, (name, timeline.nodes_of(full))
    assert timeline.not_running() == [], timeline.not_running()[:10]
    print("real guest's VMI on: %s" % " -> ".join(timeline.nodes_of("%s/guest" % ns)))
    # The probes that began while the real guest's live migration was in flight, each window: all answered.
    windows = timeline.migrations_of("%s/guest" % ns)
    assert len(windows) == len(timeline.nodes_of("%s/guest" % ns)) - 1, windows
    in_flight = during(prober.banners, prober.started, windows)
    sessions_in_flight = during(prober.sessions, prober.started, windows)
    summary = "; ".join("%.1fs: %d banner probes, %d SSH sessions" % (high - low, len(b), len(ss))
                        for (low, high), b, ss in zip(windows, in_flight, sessions_in_flight))
    print("real guest's migrations in flight: %s" % summary)
    record("maintain_nodes.yml (tests/guest)", "real guest's migrations in flight: %s" % summary)
    assert all(len(b) >= 3 for b in in_flight), summary

    # Same QEMU process, same boot, uptime growing through every session; zero failed probes.
    assert list(qemu_pids(emu.workdir / "guests").values()) == [pid]
    assert Prober.failures(prober.banners) == [] and Prober.failures(prober.sessions) == [], \
        (Prober.failures(prober.banners)[:5], Prober.failures(prober.sessions)[:5])
    assert len(prober.banners) >= int(seconds) and len(prober.sessions) >= int(seconds / 5), (banners, sessions)
    uptimes = [uptime0]
    # In the order the sessions ended (they overlap on a loaded machine; each reads the uptime at its end).
    for _, _, _, text in sorted(prober.sessions, key=lambda r: r[0] + r[1]):
        uptime, seen = uptime_and_boot_id(text)
        assert seen == boot_id, (seen, boot_id)
        uptimes.append(uptime)
    ok, last = prober.session()
    assert ok, last
    uptimes.append(uptime_and_boot_id(last)[0])
    assert uptime_and_boot_id(last)[1] == boot_id
    assert uptimes == sorted(uptimes) and len(set(uptimes)) == len(uptimes), uptimes
    assert uptimes[-1] - uptimes[0] >= seconds * 0.5, (uptimes[0], uptimes[-1], seconds)
    # Every probe went through the API server: one portforward WebSocket (101) to the guest's port 22 each.
    tunnels = [e for e in emu.requests(since=mark) if e["path"].endswith("/virtualmachineinstances/guest/portforward/22")]
    assert len([e for e in tunnels if e["status"] == 101]) >= len(prober.banners) + len(prober.sessions), len(tunnels)
