"""Rolling node maintenance against the API emulator (three Nodes): module kubevirt_node, role node_maintenance and
playbooks/maintain_nodes.yml.

The inventory's hosts stand for the Nodes (local connection); role kvm_host and the KVM check are off here (a real
QEMU node tests them, tests/node). The user's task file records, on each node while it is in maintenance, every VMI
(its node and phase) and which nodes are cordoned, so the test sees the roll from inside, one node at a time.
The request log gives the order of the cordon/uncordon writes and every migration created.
"""
import json
import subprocess
import sys
from pathlib import Path

import yaml

from tests.integration.conftest import ANSIBLE_PLAYBOOK, assert_no_deprecation, run_playbook, vm_manifest

EMULATOR = {"name": "maintenance-emu", "tls": True, "controllers": ("virt",), "timing": 0.05, "nodes": 3,
            "needs_hooks": True}
NODES = ["node01", "node02", "node03"]
NODE = "/api/v1/nodes/%s"
VMIS = "/apis/kubevirt.io/v1/namespaces/%s/virtualmachineinstances"
VMIMS = "/apis/kubevirt.io/v1/namespaces/%s/virtualmachineinstancemigrations"
PLAYBOOK = Path(__file__).resolve().parents[2] / "playbooks" / "maintain_nodes.yml"


def node_task(register, ignore_errors=False, check_mode=None, **args):
    task = {"name": register, "virtfleet.kubevirt.kubevirt_node": args, "register": register}
    if ignore_errors:
        task["ignore_errors"] = True
    if check_mode is not None:
        task["check_mode"] = check_mode
    return task


def set_ready(emu, name, ready=True):
    """Write the node's Ready condition through the API (as the kubelet or the node lifecycle controller would)."""
    cond = {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status",
            "lastHeartbeatTime": "2026-12-05T01:00:00Z"} if ready else \
        {"type": "Ready", "status": "False", "reason": "KubeletNotReady",
         "message": "container runtime network not ready", "lastHeartbeatTime": "2026-12-05T00:59:00Z"}
    status, doc, _ = emu.http("PATCH", NODE % name + "/status", {"status": {"conditions": [cond]}},
                              content_type="application/merge-patch+json")
    assert status == 200, doc


def reset_nodes(emu):
    for name in NODES:
        set_ready(emu, name)
        status, doc, _ = emu.http("PATCH", NODE % name, {"spec": {"unschedulable": None}},
                                  content_type="application/merge-patch+json")
        assert status == 200, doc


def cordoned(emu, name):
    return bool((emu.get_object(NODE % name).get("spec") or {}).get("unschedulable"))


def node_writes(emu, mark):
    """(node[/subresource], method) of every write to a Node since ``mark``, in order."""
    return [(e["path"][len("/api/v1/nodes/"):], e["method"]) for e in emu.requests(since=mark)
            if e["path"].startswith("/api/v1/nodes/") and e["method"] in ("PATCH", "PUT")]


def test_kubevirt_node_cordon_uncordon_wait_and_failures(emu, tmp_path):
    reset_nodes(emu)
    set_ready(emu, "node03", ready=False)
    mark = emu.mark()
    env = emu.env()
    run = run_playbook(tmp_path, env, [
        dict(node_task("predict", check_mode=True, name="node01", schedulable=False), diff=True),
        dict(node_task("cordon", name="node01", schedulable=False), diff=True),
        node_task("cordon_again", name="node01", schedulable=False),
        node_task("uncordon", name="node01", schedulable=True, wait=True, require_kubevirt_schedulable=True),
        node_task("uncordon_again", name="node01", schedulable=True),
        node_task("missing", ignore_errors=True, name="node09", schedulable=False),
        node_task("bad", ignore_errors=True, name="Node_01"),
        node_task("not_ready", ignore_errors=True, name="node03", wait=True, wait_timeout=1),
    ], register=["predict", "cordon", "cordon_again", "uncordon", "uncordon_again", "missing", "bad", "not_ready"])
    assert run.rc == 0, run
    # Request budget (module notes): GET, + PATCH when needed, + a watch only for a node that is not ready yet.
    log = [(e["method"], e["path"], e.get("query") or {}) for e in emu.requests(since=mark)
           if e["path"].startswith("/api/v1/nodes")]
    v = run.vars
    assert v["predict"]["changed"] and v["predict"]["outcome"] == "cordoned"
    assert v["predict"]["diff"]["after"]["spec"]["unschedulable"] is True
    assert v["cordon"]["changed"] and v["cordon"]["outcome"] == "cordoned" and v["cordon"]["schedulable"] is False
    assert v["cordon"]["diff"] == {"before": {"metadata": {"name": "node01"}, "spec": {"unschedulable": False}},
                                   "after": {"metadata": {"name": "node01"}, "spec": {"unschedulable": True}}}
    assert not v["cordon_again"]["changed"] and v["cordon_again"]["outcome"] == "unchanged"
    u = v["uncordon"]
    assert u["changed"] and u["outcome"] == "uncordoned" and u["ready"] and u["kubevirt_schedulable"] and u["schedulable"]
    assert "unschedulable" not in u["node"]["spec"]
    assert not v["uncordon_again"]["changed"]
    assert v["missing"]["failed"] and "Node node09 does not exist" in v["missing"]["msg"]
    assert v["bad"]["failed"] and 'name "Node_01" is not a valid Kubernetes node name' in v["bad"]["msg"]
    nr = v["not_ready"]
    assert nr["failed"] and nr["ready"] is False and nr["outcome"] == "failed"
    assert ("Node node03 is not ready after 1 seconds (wait_timeout): Ready is False (KubeletNotReady): container "
            "runtime network not ready; last heartbeat 2026-12-05T00:59:00Z") in nr["msg"]
    assert not cordoned(emu, "node01") and not cordoned(emu, "node03")

    n1 = [(m, p) for m, p, _q in log if p == NODE % "node01"]
    assert n1 == [("GET", NODE % "node01"), ("PATCH", NODE % "node01"),     # check mode: a dry run
                  ("GET", NODE % "node01"), ("PATCH", NODE % "node01"),     # cordon
                  ("GET", NODE % "node01"),                                 # already cordoned: no write
                  ("GET", NODE % "node01"), ("PATCH", NODE % "node01"),     # uncordon; Ready already: no watch
                  ("GET", NODE % "node01")], log                            # already schedulable: no write
    assert [(m, p) for m, p, _q in log if p == NODE % "node09"] == [("GET", NODE % "node09")]
    assert [q.get("dryRun") for m, p, q in log if m == "PATCH"] == ["All", None, None]
    n3 = [(m, p, q) for m, p, q in log if "node03" in p or "node03" in str(q)]
    # node03: one GET, then watches with the name's field selector (one, or two when the server ended the first).
    assert n3[0][:2] == ("GET", NODE % "node03") and 2 <= len(n3) <= 3, log
    assert all(q.get("watch") == "true" and q.get("fieldSelector") == "metadata.name=node03" for _m, _p, q in n3[1:]), n3
    set_ready(emu, "node03")


# --- the roll: playbooks/maintain_nodes.yml ------------------------------------------------------------------------
RECORD_TASKS = """
- name: Record the VMIs while this node is in maintenance
  virtfleet.kubevirt.kubevirt_vmi_info:
    namespace: {ns}
  delegate_to: localhost
  register: _record_vmis
  when: not ansible_check_mode

- name: Record which nodes are cordoned
  ansible.builtin.uri:
    url: "{url}/api/v1/nodes"
    headers:
      Authorization: "Bearer {token}"
    ca_path: {ca}
  delegate_to: localhost
  register: _record_nodes
  when: not ansible_check_mode

- name: Write the record (a ConfigMap the test reads back)
  ansible.builtin.uri:
    url: "{url}/api/v1/namespaces/{ns}/configmaps"
    method: POST
    status_code: 201
    headers:
      Authorization: "Bearer {token}"
    ca_path: {ca}
    body_format: json
    body:
      metadata:
        name: "record-{run}-{{{{ inventory_hostname }}}}"
      data:
        record: "{{{{ {{'node': inventory_hostname,
                      'vmis': _record_vmis.resources | map(attribute='metadata.name')
                              | zip(_record_vmis.resources | map(attribute='status.nodeName'),
                                    _record_vmis.resources | map(attribute='status.phase')) | list,
                      'cordoned': _record_nodes.json['items'] | selectattr('spec.unschedulable', 'defined')
                                  | selectattr('spec.unschedulable') | map(attribute='metadata.name') | list}}
                    | to_json }}}}"
  delegate_to: localhost
  when: not ansible_check_mode

- name: Make this node NotReady, as a kubelet that does not come back would
  ansible.builtin.uri:
    url: "{url}/api/v1/nodes/{{{{ inventory_hostname }}}}/status"
    method: PATCH
    headers:
      Authorization: "Bearer {token}"
      Content-Type: application/merge-patch+json
    body_format: json
    body:
      status:
        conditions:
          - type: Ready
            status: "False"
            reason: KubeletNotReady
            message: PLEG is not healthy
            lastHeartbeatTime: "2026-12-05T00:58:00Z"
    ca_path: {ca}
  delegate_to: localhost
  when: inventory_hostname == (break_node | default(''))
"""


def roll(emu, tmp_path, ns, extra=None, name="roll", check=False, env=None):
    """Run playbooks/maintain_nodes.yml on three hosts standing for the Nodes; returns (rc, output, records)."""
    workdir = tmp_path / name
    workdir.mkdir(parents=True)
    tasks = workdir / "record.yml"
    tasks.write_text(RECORD_TASKS.format(ns=ns, run=name, url=emu.url,
                                         token=emu.admin_token, ca=emu.ca_file))
    inventory = workdir / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"kvm_nodes": {"hosts": dict((n, None) for n in NODES), "vars": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
        "node_maintenance_run_kvm_host": False, "node_maintenance_require_kvm": False,
        "node_maintenance_tasks": str(tasks), "node_maintenance_migration_timeout": 60,
        "node_maintenance_ready_timeout": 2}}}))
    env = dict(env) if env is not None else emu.env()
    env.update({"ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "0", "ANSIBLE_DEPRECATION_WARNINGS": "1",
                "ANSIBLE_LOCAL_TEMP": str(workdir / "tmp"), "ANSIBLE_PIPELINING": "1"})
    cmd = [str(ANSIBLE_PLAYBOOK), "-i", str(inventory), str(PLAYBOOK)]
    for key, value in (extra or {}).items():
        cmd += ["-e", "%s=%s" % (key, value)]
    if check:
        cmd += ["--check", "--diff"]
    proc = subprocess.run(cmd, cwd=str(workdir), env=env, capture_output=True, text=True, timeout=240, check=False)
    output = proc.stdout + proc.stderr
    assert_no_deprecation(output)
    # ansible-core 2.16 shows a failure only as JSON (quotes escaped); 2.19+ also prints the message as it is.
    output = output.replace('\\"', '"')
    prefix = "record-%s-" % name
    records = dict((o["metadata"]["name"][len(prefix):], json.loads(o["data"]["record"]))
                   for o in emu.get_object("/api/v1/namespaces/%s/configmaps" % ns)["items"]
                   if o["metadata"]["name"].startswith(prefix))
    return proc.returncode, output, records


def migratable(name, ns):
    """A VM that can live-migrate: masquerade on the pod network (KubeVirt's default interface, bridge, cannot)."""
    vm = vm_manifest(name, ns)
    spec = vm["spec"]["template"]["spec"]
    spec["domain"]["devices"]["interfaces"] = [{"name": "default", "masquerade": {}}]
    spec["networks"] = [{"name": "default", "pod": {}}]
    return vm


def vmis(emu, ns):
    items = emu.get_object(VMIS % ns)["items"]
    return dict((o["metadata"]["name"], o) for o in items)


def place(emu, ns, manifests):
    """Create the VMs and wait until each VMI runs; returns {vmi: node}."""
    for manifest in manifests:
        emu.apply_object(manifest)
    for manifest in manifests:
        emu.wait_for(VMIS % ns + "/" + manifest["metadata"]["name"],
                     lambda o: bool(o) and (o.get("status") or {}).get("phase") == "Running", timeout=30)
    return dict((n, o["status"]["nodeName"]) for n, o in vmis(emu, ns).items())


def migrations(emu, mark, ns):
    return [e for e in emu.requests(since=mark) if e["method"] == "POST" and e["path"] == VMIMS % ns]


def test_roll_moves_the_vms_off_each_node_in_turn_and_stops_at_a_node_that_does_not_come_back(emu, tmp_path):
    reset_nodes(emu)
    ns = "roll"
    emu.apply_object({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    names = ["vm%d" % i for i in range(6)]
    where = place(emu, ns, [migratable(n, ns) for n in names])
    assert set(where.values()) == set(NODES), where     # the scheduler spread them over the three nodes
    uids = dict((n, o["metadata"]["uid"]) for n, o in vmis(emu, ns).items())

    mark = emu.mark()
    rc, output, records = roll(emu, tmp_path, ns)
    assert rc == 0, output[-6000:]
    # One node at a time: each is cordoned, then uncordoned, before the next one is cordoned.
    assert node_writes(emu, mark) == [(n, "PATCH") for n in NODES for _ in (0, 1)]
    # Per node, kubevirt_node costs 5 requests: cordon GET+PATCH, the Ready wait one GET (no watch: it is Ready),
    # uncordon GET+PATCH.
    node_log = [(e["method"], e["path"]) for e in emu.requests(since=mark) if e["path"].startswith("/api/v1/nodes/")]
    assert node_log == [(m, NODE % n) for n in NODES for m in ("GET", "PATCH", "GET", "GET", "PATCH")], node_log
    # Seen from inside each node's maintenance: only that node cordoned, none of the VMIs on it, every VMI Running.
    assert sorted(records) == NODES
    for node in NODES:
        rec = records[node]
        assert rec["cordoned"] == [node], rec
        assert sorted(v[0] for v in rec["vmis"]) == names
        assert all(v[2] == "Running" and v[1] != node for v in rec["vmis"]), rec
    # The same VMIs (live-migrated, never restarted), all running, and no node left cordoned.
    after = vmis(emu, ns)
    assert dict((n, o["metadata"]["uid"]) for n, o in after.items()) == uids
    assert all(o["status"]["phase"] == "Running" for o in after.values())
    assert not any(cordoned(emu, n) for n in NODES)
    assert len(migrations(emu, mark, ns)) >= len(names)
    for node in NODES:
        assert "%s: done, uncordoned; " % node in output, output[-4000:]
    assert "roll/vm0 -> node0" in output and " (migrated)" in output, output[-4000:]

    # Second roll: node02 does not come back (its kubelet stops posting Ready during the user's tasks).
    before = dict((n, o["status"]["nodeName"]) for n, o in vmis(emu, ns).items())
    known = set(o["metadata"]["name"] for o in emu.get_object(VMIMS % ns)["items"])
    mark = emu.mark()
    rc, output, records = roll(emu, tmp_path, ns, extra={"break_node": "node02"}, name="broken")
    assert rc != 0, output[-4000:]
    assert ('Maintenance of node node02 failed at step "Wait until the node is Ready": Node node02 is not ready after 2 '
            'seconds (wait_timeout): Ready is False (KubeletNotReady): PLEG is not healthy; last heartbeat '
            '2026-12-05T00:58:00Z') in output, output[-4000:]
    assert "The node stays cordoned" in output and "Nodes done before it: node01." in output
    assert sorted(records) == ["node01", "node02"]          # the user's tasks never ran for node03
    assert cordoned(emu, "node02") and not cordoned(emu, "node01") and not cordoned(emu, "node03")
    # node03 never written; node02/status is the kubelet going away (the user's task file above).
    assert [n for n, _m in node_writes(emu, mark)] == ["node01", "node01", "node02", "node02/status"]
    # The VMIs that were on node03 did not move, and no migration was created for them.
    on3 = [n for n, node in before.items() if node == "node03"]
    now = vmis(emu, ns)
    assert all(now[n]["status"]["nodeName"] == "node03" for n in on3)
    moved = set(o["spec"]["vmiName"] for o in emu.get_object(VMIMS % ns)["items"] if o["metadata"]["name"] not in known)
    assert not moved & set(on3), (moved, on3)
    assert all(o["status"]["phase"] == "Running" for o in now.values())
    assert "Summarise the roll" not in output
    reset_nodes(emu)

    # Check mode on node01: the cordon and the migrations are server dry runs, nothing moves, nothing stays cordoned.
    before = dict((n, o["status"]["nodeName"]) for n, o in vmis(emu, ns).items())
    # The connection as an AWX/AAP bearer-token credential gives it: K8S_AUTH_HOST/API_KEY/SSL_CA_CERT, no kubeconfig.
    awx = dict((k, v) for k, v in emu.env().items() if k not in ("K8S_AUTH_KUBECONFIG", "KUBECONFIG"))
    awx.update({"K8S_AUTH_HOST": emu.url, "K8S_AUTH_API_KEY": emu.admin_token, "K8S_AUTH_SSL_CA_CERT": str(emu.ca_file),
                "HOME": str(tmp_path)})
    mark = emu.mark()
    rc, output, records = roll(emu, tmp_path, ns, extra={"maintain_nodes_hosts": "node01"}, name="check", check=True,
                               env=awx)
    assert rc == 0, output[-4000:]
    writes = [e for e in emu.requests(since=mark) if e["method"] in ("POST", "PUT", "PATCH", "DELETE")
              and not e["path"].endswith("/configmaps")]
    on1 = [n for n, node in before.items() if node == "node01"]
    assert on1 and [(e["method"], e["path"]) for e in writes] == [("PATCH", NODE % "node01")] + [("POST", VMIMS % ns)] * len(on1)
    assert all((e.get("query") or {}).get("dryRun") == "All" for e in writes), writes
    assert "unschedulable" in output and "node01: done, uncordoned" in output      # --diff shows the cordon
    assert not cordoned(emu, "node01")
    assert dict((n, o["status"]["nodeName"]) for n, o in vmis(emu, ns).items()) == before


def test_a_vm_that_cannot_migrate_stops_the_roll_at_its_node_before_any_migration(emu, tmp_path):
    reset_nodes(emu)
    ns = "pinned"
    emu.apply_object({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    stuck = vm_manifest("bridged", ns)
    spec = stuck["spec"]["template"]["spec"]
    # A bridge on the pod network cannot live-migrate (LiveMigratable False, InterfaceNotLiveMigratable).
    spec["domain"]["devices"]["interfaces"] = [{"name": "default", "bridge": {}}]
    spec["networks"] = [{"name": "default", "pod": {}}]
    # Both VMs start on node01: the other nodes are cordoned while they are scheduled.
    for node in ("node02", "node03"):
        emu.http("PATCH", NODE % node, {"spec": {"unschedulable": True}}, content_type="application/merge-patch+json")
    where = place(emu, ns, [stuck, migratable("movable", ns)])
    reset_nodes(emu)
    assert where == {"bridged": "node01", "movable": "node01"}

    mark = emu.mark()
    rc, output, records = roll(emu, tmp_path, ns, name="nonmigratable")
    assert rc != 0, output[-4000:]
    assert 'Maintenance of node node01 failed at step "Live-migrate the VMs away from the node"' in output, output[-4000:]
    assert "cannot migrate VMI which does not use masquerade" in output and "bridged" in output, output[-4000:]
    assert migrations(emu, mark, ns) == []              # fail: nothing migrated, not even the movable VM
    assert records == {}
    assert cordoned(emu, "node01") and not cordoned(emu, "node02") and not cordoned(emu, "node03")
    assert [n for n, _m in node_writes(emu, mark)] == ["node01"]
    assert all(o["status"]["nodeName"] == "node01" and o["status"]["phase"] == "Running" for o in vmis(emu, ns).values())
    reset_nodes(emu)

    # non_migratable=stop: the bridged VM is stopped, the other one migrates, the node is done.
    rc, output, records = roll(emu, tmp_path, ns, extra={"maintain_nodes_hosts": "node01",
                                                         "node_maintenance_non_migratable": "stop"}, name="stop")
    assert rc == 0, output[-4000:]
    # (the VMs of the other test's namespace on node01 move too: the node's VMIs in every namespace)
    assert "node01: done, uncordoned; " in output and "pinned/bridged -> - (stopped), pinned/movable -> node0" in output, \
        output[-4000:]
    assert records["node01"]["vmis"] == [["movable", records["node01"]["vmis"][0][1], "Running"]]
    assert records["node01"]["vmis"][0][1] != "node01"
    vm = emu.get_object("/apis/kubevirt.io/v1/namespaces/%s/virtualmachines/bridged" % ns)
    assert vm["spec"]["runStrategy"] == "Halted" and "bridged" not in vmis(emu, ns)
    reset_nodes(emu)

    # A host whose Node does not exist: the roll stops at the cordon, which did not happen, and says so.
    mark = emu.mark()
    rc, output, records = roll(emu, tmp_path, ns, extra={"node_maintenance_node_name": "node09"}, name="missing")
    assert rc != 0, output[-4000:]
    assert ('Maintenance of node node09 failed at step "Cordon the node": Node node09 does not exist: give the name of a '
            'Kubernetes Node') in output, output[-4000:]
    assert "The node was not cordoned; the nodes after it were not touched. No node was done before it." in output
    assert node_writes(emu, mark) == [] and migrations(emu, mark, ns) == [] and records == {}
    # A relative node_maintenance_tasks (include_tasks would not look in the directory of the run) fails before the cordon.
    rc, output, records = roll(emu, tmp_path, ns, extra={"node_maintenance_tasks": "upgrade.yml"}, name="relative")
    assert rc != 0 and ('node_maintenance_tasks must be the absolute path of a task file on the controller (in AWX, of '
                        'the project checkout, such as /runner/project/maintenance/upgrade.yml), or empty for none; got '
                        '"upgrade.yml", a relative path. No node was touched.') in output, output[-3000:]
    assert node_writes(emu, mark) == [] and migrations(emu, mark, ns) == []
    for name in ("bridged", "movable"):
        emu.delete_object("/apis/kubevirt.io/v1/namespaces/%s/virtualmachines/%s" % (ns, name))
    reset_nodes(emu)
