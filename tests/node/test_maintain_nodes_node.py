"""playbooks/maintain_nodes.yml with the real kvm_host role on the QEMU TCG nodes of this suite (issue #18, "Must show":
the roll over three nodes and the stop at a node that does not come back).

The API side is the emulator (tests/kubeapi, simulated KubeVirt) with three Kubernetes Nodes node-a, node-b, node-c
(its seeded node01/node02 removed) and six simulated VMs spread over them. The Ansible side is real: every
inventory host is a Kubernetes node reached over SSH, and node_maintenance runs role kvm_host (become) and
kvm_host_info on it.

Run 1: node-a, node-b and node-c are all the `kvmnode` guest (-cpu max, KVM usable): every node is cordoned,
drained (its VMIs migrate, same VMI uid, Running elsewhere), kvm_host runs, KVM is usable, the node is uncordoned,
one node after the other. Run 2: node-b is the `novirtnode` guest (no svm/vmx): node-a is done again, the roll stops
at node-b (kvm_host's check, kvm_host_info, says KVM is not usable: the role's default policy fails), node-b stays
cordoned with its VMs gone elsewhere, and node-c is never touched (never cordoned, its VMIs unmoved, no task of the
play ran for it). Run 3 resumes as the failure message says (--limit node-b,node-c) with kvm_host_unusable_policy
report, so the kvm_host role carries on and node_maintenance's own check (kvm_host_info after the user's tasks) stops
the roll at node-b again, node-c still untouched. Run 4: node-b fixed (it is kvmnode again), the same --limit run
finishes node-b and node-c and uncordons them.

node_maintenance_reboot stays false: a TCG reboot costs a minute or two per node (test_kvm_host_role.py reboots
kvmnode already). The user task file (playbooks/tasks/maintenance_record.yml) records on which machine it ran (boot id)
and what the cluster said about the node at that moment.
"""
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from tests.summary import record

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = REPO / "playbooks" / "maintain_nodes.yml"
HERE = Path(__file__).resolve().parent / "playbooks"
USER_TASKS = HERE / "tasks" / "maintenance_record.yml"
RECORDER = HERE / "record_node_state.py"
NODES = ("node-a", "node-b", "node-c")
VMI_LIST = "/apis/kubevirt.io/v1/namespaces/%s/virtualmachineinstances"
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)\s+skipped=(\d+)", re.M)


def node_object(name, index):
    """A Ready node as the kubelet and virt-handler would leave it (labels kubevirt.io/schedulable=true)."""
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                                  "kubernetes.io/arch": "amd64", "kubevirt.io/schedulable": "true",
                                                  "node-role.kubernetes.io/worker": ""}},
            "spec": {},
            "status": {"addresses": [{"type": "InternalIP", "address": "192.0.2.%d" % (100 + index)},
                                     {"type": "Hostname", "address": name}],
                       "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110", "devices.kubevirt.io/kvm": "1k"},
                       "allocatable": {"cpu": "8", "memory": "31Gi", "pods": "110", "devices.kubevirt.io/kvm": "1k"},
                       "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                       "message": "kubelet is posting ready status"}]}}


# KubeVirt's default binding on the pod network is bridge, which cannot live-migrate: masquerade can.
MASQUERADE = {"name": "default", "masquerade": {}}
POD_NETWORK = {"name": "default", "pod": {}}


def vm_object(ns, name):
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
            "metadata": {"name": name, "namespace": ns, "labels": {"app": "maintained"}},
            "spec": {"runStrategy": "Always", "template": {
                "metadata": {"labels": {"app": "maintained", "kubevirt.io/domain": name}},
                "spec": {"domain": {"devices": {"disks": [{"name": "root", "disk": {"bus": "virtio"}}],
                                                "interfaces": [MASQUERADE]},
                                    "resources": {"requests": {"memory": "64Mi"}}},
                         "networks": [POD_NETWORK],
                         "volumes": [{"name": "root",
                                      "containerDisk": {"image": "quay.io/containerdisks/fedora:41"}}]}}}}


EMULATOR = {"name": "maintain-node", "controllers": ("virt",),
            "objects": lambda: [node_object(n, i) for i, n in enumerate(NODES)]}


# --- shared with tests/guest/test_maintain_nodes_guest.py -------------------------------------------------------
class Timeline:
    """Polls the nodes and a namespace's VMIs (every `interval` seconds, harness GETs) in a thread while a playbook
    runs, and keeps every change: what the cluster looked like over the whole roll, independent of the playbook's
    own report.

    states: [(seconds since start, {"nodes": {name: unschedulable},
                                    "vmis": {name: (uid, nodeName, phase, ready, migrating)}})]
    (migrating: the VMI's status.migrationState names a migration that has not completed.) `started` is the
    time.monotonic() of the first state.
    """

    def __init__(self, emu, namespaces, interval=0.25):
        self.emu = emu
        self.namespaces = list(namespaces)
        self.interval = interval
        self.states = []
        self.errors = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="timeline", daemon=True)
        self.started = None

    def snapshot(self):
        nodes = {n["metadata"]["name"]: bool((n.get("spec") or {}).get("unschedulable"))
                 for n in self.emu.get_object("/api/v1/nodes")["items"]}
        vmis = {}
        for ns in self.namespaces:
            for vmi in self.emu.get_object(VMI_LIST % ns)["items"]:
                st = vmi.get("status") or {}
                ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or [])
                migration = st.get("migrationState") or {}
                key = "%s/%s" % (ns, vmi["metadata"]["name"])
                vmis[key] = (vmi["metadata"]["uid"], st.get("nodeName"), st.get("phase"), ready,
                             bool(migration) and not migration.get("completed"))
        return {"nodes": nodes, "vmis": vmis}

    def _run(self):
        while not self._stop.is_set():
            try:
                state = self.snapshot()
            except (OSError, RuntimeError, ValueError) as exc:   # the harness' urllib and EmulatorError
                self.errors.append(repr(exc))
            else:
                if not self.states or self.states[-1][1] != state:
                    self.states.append((time.monotonic() - self.started, state))
            self._stop.wait(self.interval)

    def __enter__(self):
        self.started = time.monotonic()
        self.states.append((0.0, self.snapshot()))
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(30)
        self.states.append((time.monotonic() - self.started, self.snapshot()))

    def cordon_order(self):
        """[(node, "cordoned" | "uncordoned")] in the order the timeline saw the changes."""
        events = []
        for (_, before), (_, after) in zip(self.states, self.states[1:]):
            for node, cordoned in sorted(after["nodes"].items()):
                if before["nodes"].get(node, False) != cordoned:
                    events.append((node, "cordoned" if cordoned else "uncordoned"))
        return events

    def nodes_of(self, vmi):
        """The distinct nodes a VMI was seen on, in order."""
        seen = []
        for _, state in self.states:
            node = (state["vmis"].get(vmi) or (None, None))[1]
            if node and (not seen or seen[-1] != node):
                seen.append(node)
        return seen

    def migrations_of(self, vmi):
        """[(from, to)] in time.monotonic() seconds: the windows in which the VMI had a migration in flight (as seen at
        the polls: from the first poll that saw it to the first that saw it completed)."""
        windows, since = [], None
        for seconds, state in self.states:
            migrating = len(state["vmis"].get(vmi) or ()) > 4 and state["vmis"][vmi][4]
            if migrating and since is None:
                since = seconds
            elif not migrating and since is not None:
                windows.append((self.started + since, self.started + seconds))
                since = None
        return windows

    def uids_of(self, vmi):
        return {state["vmis"][vmi][0] for _, state in self.states if vmi in state["vmis"]}

    def not_running(self):
        """[(seconds, vmi, phase, ready)] for every moment a VMI of the namespaces was missing or not Running."""
        names = set(self.states[0][1]["vmis"])
        bad = []
        for seconds, state in self.states:
            for name in sorted(names):
                entry = state["vmis"].get(name)
                if entry is None or entry[2] != "Running":
                    bad.append((seconds, name, entry and entry[2], entry and entry[3]))
        return bad


def recaps(output):
    return {m[0]: dict(zip(("ok", "changed", "unreachable", "failed", "skipped"), map(int, m[1:])))
            for m in RECAP.findall(output)}


def recap_lines(output):
    lines = output.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("PLAY RECAP")), len(lines))
    return [line for line in lines[start:] if line.strip()]


def read_record(path):
    path = Path(path)
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def maintain(emu, workdir, inventory, extra, tag, timeout=1500, limit=None):
    """ansible-playbook playbooks/maintain_nodes.yml [--limit]; (rc, output, seconds). Deprecation warnings fail the
    run."""
    workdir = Path(workdir)
    (workdir / ("vars-%s.json" % tag)).write_text(json.dumps(extra))
    env = emu.env()
    env.update({
        "ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "False", "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_PIPELINING": "True", "ANSIBLE_LOCALHOST_WARNING": "False",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False", "ANSIBLE_DEPRECATION_WARNINGS": "True",
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(workdir / "cp"), "ANSIBLE_LOCAL_TEMP": str(workdir / "ansible-tmp"),
        "ANSIBLE_TIMEOUT": "60", "ANSIBLE_STDOUT_CALLBACK": "default"})
    env.pop("ANSIBLE_CALLBACK_PLUGINS", None)
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory),
           "-e", "@%s" % (workdir / ("vars-%s.json" % tag)), str(PLAYBOOK)] + (["--limit", limit] if limit else [])
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=str(workdir), env=env, capture_output=True, text=True, check=False,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    seconds = time.monotonic() - start
    output = proc.stdout + proc.stderr
    (workdir / ("maintain-%s.log" % tag)).write_text(output)
    found = [line for line in output.splitlines() if "[DEPRECATION WARNING]" in line]
    assert not found, "ansible-core printed deprecation warnings:\n%s\n%s" % ("\n".join(found), output[-3000:])
    return proc.returncode, output, seconds


def hosts_of(ran, suffix):
    """The hosts of the task of task_hosts() whose name ends with `suffix` (one task), in order."""
    (hosts,) = [hosts for task, hosts in ran.items() if task.endswith(suffix)] or [None]
    return hosts


def task_hosts(output):
    """{task name: [hosts with a result line]} from the default callback's output."""
    found, task = {}, None
    for line in output.splitlines():
        match = re.match(r"^TASK \[(.*)\] \*+", line)
        if match:
            task = match.group(1)
            continue
        match = re.match(r"^(ok|changed|failed|fatal|skipping|included): \[([^\]]+)\]", line)
        if match and task is not None:
            host = match.group(2).split(" -> ")[0]
            found.setdefault(task, []).append(host)
    return found


# --- the test ----------------------------------------------------------------------------------------------------
pytestmark = pytest.mark.timeout(3600)


@pytest.fixture(scope="module")
def fleet(emu):
    """Only node-a/b/c (the emulator's seeded nodes removed), six VMs spread over them, all Running."""
    for seeded in ("node01", "node02"):
        emu.delete_object("/api/v1/nodes/%s" % seeded)
    ns = "maint-" + uuid.uuid4().hex[:6]
    emu.apply_object({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    names = ["vm-%d" % i for i in range(1, 7)]
    for name in names:
        emu.apply_object(vm_object(ns, name))
    for name in names:
        emu.wait_for(VMI_LIST % ns + "/" + name, lambda o: ((o or {}).get("status") or {}).get("phase") == "Running",
                     timeout=60)
    return ns, names


def inventory(workdir, name, hosts):
    """[kvm_nodes]: every Kubernetes node name -> one of this suite's QEMU guests over SSH as root."""
    lines = ["[kvm_nodes]"]
    for node, guest in hosts.items():
        lines.append("%s ansible_host=127.0.0.1 ansible_port=%d ansible_user=root ansible_ssh_private_key_file=%s "
                     "ansible_python_interpreter=/usr/bin/python3" % (node, guest.port, guest.key))
    lines += ["", "[kvm_nodes:vars]",
              'ansible_ssh_common_args="-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"']
    path = Path(workdir) / ("%s.ini" % name)
    path.write_text("\n".join(lines) + "\n")
    return path


def extra_vars(record_file):
    return {"node_maintenance_run_kvm_host": True, "node_maintenance_require_kvm": True,
            "node_maintenance_reboot": False, "node_maintenance_migration_timeout": 300,
            "node_maintenance_ready_timeout": 300, "node_maintenance_tasks": str(USER_TASKS),
            "maintain_test_recorder": str(RECORDER), "maintain_test_record": str(record_file)}


def placement(emu, ns):
    return {v["metadata"]["name"]: (v["metadata"]["uid"], v["status"].get("nodeName"), v["status"].get("phase"))
            for v in emu.get_object(VMI_LIST % ns)["items"]}


def node_unschedulable(emu):
    return {n: bool((emu.get_object("/api/v1/nodes/%s" % n).get("spec") or {}).get("unschedulable")) for n in NODES}


def spread(emu, ns, wanted, timeout=120):
    """Live-migrate VMs to the nodes `wanted` ({vm: node}) says, through the VM migrate subresource with an
    addedNodeSelector (as `virtctl migrate --addedNodeSelector` would), and wait until they run there."""
    for name, node in wanted.items():
        if placement(emu, ns)[name][1] == node:
            continue
        status, body, _ = emu.http("PUT", "/apis/subresources.kubevirt.io/v1/namespaces/%s/virtualmachines/%s/migrate"
                                   % (ns, name), {"addedNodeSelector": {"kubernetes.io/hostname": node}})
        assert status == 202, (status, body)
        emu.wait_for(VMI_LIST % ns + "/" + name, lambda o, n=node: o["status"].get("nodeName") == n and
                     (o["status"].get("migrationState") or {}).get("completed"), timeout=timeout)


def summary_lines(output):
    """The summary play's lines (which nodes were done, where their VMs went)."""
    return re.findall(r'^\s+"msg": "(\S+: (?:done|stopped at)\b.*)"$', output, re.M)


def stop_messages(output, node):
    """The role's stop messages for `node` ("Maintenance of node ... failed at step ..."), from its fatal results."""
    pattern = r"^fatal: \[%s\]: FAILED! => (\{.*\})$" % re.escape(node)
    found = [json.loads(m).get("msg", "") for m in re.findall(pattern, output, re.M)]
    return [m for m in found if m.startswith("Maintenance of node %s failed at step" % node)]


def show(title, rc, output, seconds):
    print("\n%s: rc=%d in %.0fs" % (title, rc, seconds))
    print("\n".join(recap_lines(output)))
    print("\n".join(summary_lines(output)))
    record("maintain_nodes.yml (tests/node)", "%s: rc=%d in %.0fs; %s" % (
        title, rc, seconds, "; ".join(" ".join(line.split()) for line in recap_lines(output)[1:])))


def test_roll_over_three_nodes_runs_kvm_host_and_moves_every_vm(emu, fleet, kvm_vm, tmp_path):
    ns, names = fleet
    before = placement(emu, ns)
    assert {node for _, node, _ in before.values()} == set(NODES), before
    boot_id = kvm_vm.boot_id()
    record_file = tmp_path / "record.jsonl"
    inv = inventory(tmp_path, "run1", {n: kvm_vm for n in NODES})
    with Timeline(emu, [ns]) as timeline:
        rc, output, seconds = maintain(emu, tmp_path, inv, extra_vars(record_file), "run1")
    show("run 1 (three nodes on kvmnode)", rc, output, seconds)
    assert rc == 0, output[-8000:]
    recap = recaps(output)
    for node in NODES:
        assert recap[node]["failed"] == 0 and recap[node]["unreachable"] == 0, recap
    assert [line.split(":")[0] for line in summary_lines(output) if ": done" in line] == list(NODES), output[-5000:]

    # One node after the other: cordoned, then uncordoned before the next one is cordoned.
    assert timeline.cordon_order() == [(n, e) for n in NODES for e in ("cordoned", "uncordoned")], \
        timeline.cordon_order()
    assert node_unschedulable(emu) == {n: False for n in NODES}
    # The user task ran on the real machine (its boot id) while its node was cordoned and empty, in order.
    lines = read_record(record_file)
    assert [line["node"] for line in lines] == list(NODES), lines
    for line in lines:
        assert line["note"] == boot_id and line["unschedulable"] is True and line["vmis"] == [], line
    # Every VM moved off each of its nodes by live migration: the same VMI (uid), Running at every poll.
    after = placement(emu, ns)
    for name in names:
        assert timeline.uids_of("%s/%s" % (ns, name)) == {before[name][0]}, name
        assert len(timeline.nodes_of("%s/%s" % (ns, name))) >= 2, (name, timeline.nodes_of("%s/%s" % (ns, name)))
        assert after[name][2] == "Running"
    assert timeline.not_running() == []
    # kvm_host ran for real on the guest: its modules are loaded and KVM is usable there.
    assert {"kvm", "kvm_amd"} <= set(kvm_vm.ssh("cut -d' ' -f1 /proc/modules").stdout.split())
    ran = task_hosts(output)
    assert hosts_of(ran, "node_maintenance : Check that KVM is usable on the node") == list(NODES), ran
    assert hosts_of(ran, "kvm_host : Inspect the node before changing it") == list(NODES), ran
    record("maintain_nodes.yml (tests/node)", "run 1: %d VM moves seen, %d timeline states, %d polls failed" % (
        sum(len(timeline.nodes_of("%s/%s" % (ns, n))) - 1 for n in names), len(timeline.states), len(timeline.errors)))


def test_roll_stops_at_a_node_without_kvm_and_never_touches_the_next(emu, fleet, kvm_vm, novirt_vm, tmp_path):
    ns, names = fleet
    # Run 1 left node-c empty (drained last): two VMs on each node again, as an operator's rebalance would.
    spread(emu, ns, {name: NODES[i // 2] for i, name in enumerate(names)})
    before = placement(emu, ns)
    on = {node: sorted(n for n, (_, where, _) in before.items() if where == node) for node in NODES}
    assert on["node-b"] and on["node-c"], before
    record_file = tmp_path / "record.jsonl"
    inv = inventory(tmp_path, "run2", {"node-a": kvm_vm, "node-b": novirt_vm, "node-c": kvm_vm})
    mark = emu.mark()
    with Timeline(emu, [ns]) as timeline:
        rc, output, seconds = maintain(emu, tmp_path, inv, extra_vars(record_file), "run2")
    show("run 2 (node-b without KVM)", rc, output, seconds)
    assert rc != 0, output[-8000:]
    recap = recaps(output)
    assert recap["node-a"]["failed"] == 0 and recap["node-b"]["failed"] >= 1, recap
    assert "node-c" not in recap or recap["node-c"] == dict.fromkeys(recap["node-c"], 0), recap
    # Why it stopped, in the role's message: the step, KVM not usable on node-b (the reason and its fix), the node left
    # cordoned and the next ones untouched.
    stops = stop_messages(output, "node-b")
    assert stops, output[-8000:]
    print("the stop: %s" % stops[-1])
    record("maintain_nodes.yml (tests/node)", "run 2 stop message: %s" % stops[-1])
    assert "KVM is not usable on node-b" in stops[-1] and "no vmx or svm flag" in stops[-1], stops[-1]
    assert "stays cordoned" in stops[-1] and "Nodes done before it: node-a" in stops[-1], stops[-1]

    # node-a done and uncordoned; node-b cordoned (stays so: the roll stopped there) and drained; node-c untouched.
    assert timeline.cordon_order() == [("node-a", "cordoned"), ("node-a", "uncordoned"), ("node-b", "cordoned")], \
        timeline.cordon_order()
    assert node_unschedulable(emu) == {"node-a": False, "node-b": True, "node-c": False}
    after = placement(emu, ns)
    assert not [n for n, (_, where, _) in after.items() if where == "node-b"], after
    for name in on["node-c"]:
        assert after[name][:2] == before[name][:2], (name, before[name], after[name])
        assert timeline.nodes_of("%s/%s" % (ns, name)) == ["node-c"], name
    for name in names:
        assert timeline.uids_of("%s/%s" % (ns, name)) == {before[name][0]} and after[name][2] == "Running", name
    assert timeline.not_running() == []
    # No task of the play ran for node-c; the user task ran for node-a only (node-b failed before it, or in it).
    assert not [task for task, hosts in task_hosts(output).items() if "node-c" in hosts], task_hosts(output)
    assert [line["node"] for line in read_record(record_file) if line["node"] != "node-b"] == ["node-a"]
    # Nothing of the API side touched node-c: no write names it, no migration of a VMI that was on it.
    log = emu.requests(since=mark)
    assert not [e for e in log if e["method"] in ("PATCH", "PUT") and e["path"].endswith("/nodes/node-c")]
    print("node-b stays cordoned; node-c untouched: %s" % ", ".join(on["node-c"]))


def test_resume_stops_again_on_the_roles_own_kvm_check(emu, fleet, kvm_vm, novirt_vm, tmp_path):
    ns, names = fleet
    before = placement(emu, ns)
    on_c = sorted(n for n, (_, where, _) in before.items() if where == "node-c")
    assert node_unschedulable(emu) == {"node-a": False, "node-b": True, "node-c": False} and on_c, before
    record_file = tmp_path / "record.jsonl"
    inv = inventory(tmp_path, "run3", {"node-a": kvm_vm, "node-b": novirt_vm, "node-c": kvm_vm})
    mark = emu.mark()
    extra = dict(extra_vars(record_file), kvm_host_unusable_policy="report")
    with Timeline(emu, [ns]) as timeline:
        rc, output, seconds = maintain(emu, tmp_path, inv, extra, "run3", limit="node-b,node-c")
    show("run 3 (resume --limit node-b,node-c, node-b still without KVM, kvm_host policy report)", rc, output, seconds)
    assert rc != 0, output[-8000:]
    stops = stop_messages(output, "node-b")
    assert stops and 'step "Fail when KVM is not usable on the node"' in stops[-1], output[-8000:]
    assert "KVM is not usable on node node-b after the maintenance" in stops[-1] and "no vmx or svm" in stops[-1]
    assert "stays cordoned" in stops[-1] and "No node was done before it." in stops[-1], stops[-1]
    print("the stop: %s" % stops[-1])
    record("maintain_nodes.yml (tests/node)", "run 3 stop message: %s" % stops[-1])
    # The user's tasks ran on the machine behind node-b (its boot id) while node-b was cordoned and empty.
    (line,) = read_record(record_file)
    assert (line["node"], line["note"], line["unschedulable"], line["vmis"]) == ("node-b", novirt_vm.boot_id(), True, [])
    # node-b stays cordoned, node-c untouched (no task, no write, its VMIs where they were).
    assert node_unschedulable(emu) == {"node-a": False, "node-b": True, "node-c": False}
    assert timeline.cordon_order() == []
    assert not [task for task, hosts in task_hosts(output).items() if "node-c" in hosts], task_hosts(output)
    assert not [e for e in emu.requests(since=mark) if e["method"] in ("PATCH", "PUT") and e["path"].endswith("/nodes/node-c")]
    after = placement(emu, ns)
    assert all(after[name][:2] == before[name][:2] for name in on_c), (before, after)
    assert timeline.not_running() == []


def test_resume_after_the_fix_finishes_the_roll(emu, fleet, kvm_vm, tmp_path):
    ns, names = fleet
    before = placement(emu, ns)
    on_c = sorted(n for n, (_, where, _) in before.items() if where == "node-c")
    record_file = tmp_path / "record.jsonl"
    inv = inventory(tmp_path, "run4", {"node-a": kvm_vm, "node-b": kvm_vm, "node-c": kvm_vm})
    with Timeline(emu, [ns]) as timeline:
        rc, output, seconds = maintain(emu, tmp_path, inv, extra_vars(record_file), "run4", limit="node-b,node-c")
    show("run 4 (node-b fixed, resume --limit node-b,node-c)", rc, output, seconds)
    assert rc == 0, output[-8000:]
    assert [line.split(":")[0] for line in summary_lines(output) if ": done" in line] == ["node-b", "node-c"], \
        output[-5000:]
    # node-b (cordoned since run 2) is uncordoned after its maintenance, then node-c has its turn.
    assert timeline.cordon_order() == [("node-b", "uncordoned"), ("node-c", "cordoned"), ("node-c", "uncordoned")], \
        timeline.cordon_order()
    assert node_unschedulable(emu) == {n: False for n in NODES}
    assert [(line["node"], line["unschedulable"], line["vmis"]) for line in read_record(record_file)] == \
        [("node-b", True, []), ("node-c", True, [])]
    after = placement(emu, ns)
    for name in names:
        assert timeline.uids_of("%s/%s" % (ns, name)) == {before[name][0]} and after[name][2] == "Running", name
    assert all(after[name][1] != "node-c" for name in on_c), (before, after)
    assert timeline.not_running() == []
