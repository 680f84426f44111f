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

import pytest
import yaml

from tests.integration.conftest import ANSIBLE_PLAYBOOK, assert_no_deprecation, run_playbook, vm_manifest

EMULATOR = {"name": "maintenance-emu", "tls": True, "controllers": ("virt",), "timing": "fast", "nodes": 3,
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
    """(node, body) of every write to a Node since ``mark``, in order."""
    return [(e["path"].rsplit("/", 1)[-1], e["method"]) for e in emu.requests(since=mark)
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
