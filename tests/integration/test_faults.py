"""Fault suite: kubevirt_vm and the inventory plugin against an API server that fails about 10 % of requests.

The emulator's fault injection (seeded, so runs repeat) answers 500 or 429 (with Retry-After), drops
connections, adds latency, and can apply a fault after a write was stored (the answer is lost, the change
is not). What must hold: the tasks succeed, the cluster ends with exactly the declared VMs (no duplicate from
a retried create, none missing), a re-run changes nothing, and when faults outlast the retry budget the task
fails with every VM's outcome. Counts go to the test summary (tests/summary.py).
"""
import uuid

import pytest

from tests import summary
from tests.unit.plugins.inventory.objects import vm as inv_vm, vmi as inv_vmi

from .inventory_support import load, namespace, run_inventory, start_emulator
from .test_kubevirt_vm import VMS, play, vm_task

TOKEN_LABEL = "virtfleet.kubevirt/create-token"
SECTION = "fault suite"


def _faults(entries):
    return [e for e in entries if e.get("fault")]


def _count(entries, **match):
    return len([e for e in entries if all(e.get(k) == v for k, v in match.items())])


def _record(what, entries, extra=""):
    faults = _faults(entries)
    kinds = {}
    for e in faults:
        kinds[e["fault"]] = kinds.get(e["fault"], 0) + 1
    summary.record(SECTION, "%s: %d requests, %d faults injected (%s)%s" % (
        what, len(entries), len(faults), ", ".join("%s %d" % kv for kv in sorted(kinds.items())) or "none", extra))


def _live_vms(kubeapi, ns):
    status, doc, _headers = kubeapi._shortcut("GET", VMS % ns)  # pylint: disable=protected-access
    assert status == 200, doc
    return doc["items"]


@pytest.fixture
def ns(kubeapi):
    name = "faults-" + uuid.uuid4().hex[:8]
    kubeapi.apply_object({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name
    kubeapi.clear_faults()


def test_fleet_converges_under_faults(kubeapi, ansible_env, tmp_path, ns):
    """100 named VMs (waited for), 10 generate_name VMs, a re-run and 10 removals, all under ~10 % faults."""
    fleet = [{"name": "vm-%03d" % i} for i in range(100)]
    common = dict(namespace=ns, memory="64Mi", boot_disk={"container_image": "img"})
    declare = vm_task("fleet", vms=fleet, labels={"app": "fleet"}, wait=True, wait_timeout=150, **common)
    generated = vm_task("gen", vms=[{"generate_name": "gen-"} for i in range(10)], labels={"app": "gen"},
                        run_strategy="Halted", **common)
    rerun = dict(declare, register="again", name="again")
    remove = vm_task("remove", namespace=ns, state="absent", vms=[{"name": "vm-%03d" % i} for i in range(90, 100)],
                     wait=True, wait_timeout=60)
    # Only this namespace is faulted, so other tests sharing the emulator are not disturbed. A third of the
    # faults on writes hit after the write was stored: the answer is lost, the change is not.
    kubeapi.set_faults(rate=0.1, statuses=(500, 429), reset=True, latency_ms=5, path_regex="/namespaces/%s/" % ns,
                       seed=8, after_commit=0.3)
    mark = kubeapi.mark()
    r = play(ansible_env, tmp_path, [declare, generated, rerun, remove])
    entries = kubeapi.requests(since=mark)
    kubeapi.clear_faults()

    for task in ("fleet", "gen", "again", "remove"):
        assert not r[task].get("failed"), (task, r[task].get("msg"))
    assert r["fleet"]["changed"] and [x["outcome"] for x in r["fleet"]["results"]] == ["created"] * 100
    assert all(x["result"]["status"]["ready"] for x in r["fleet"]["results"])
    assert r["again"]["changed"] is False and {x["outcome"] for x in r["again"]["results"]} == {"unchanged"}
    assert [x["outcome"] for x in r["remove"]["results"]] == ["deleted"] * 10

    live = _live_vms(kubeapi, ns)
    names = sorted(o["metadata"]["name"] for o in live)
    gen = [o for o in live if o["metadata"].get("generateName") == "gen-"]
    assert [n for n in names if n.startswith("vm-")] == ["vm-%03d" % i for i in range(90)]
    assert len(gen) == 10 and len(names) == 100, names
    tokens = set(o["metadata"]["labels"][TOKEN_LABEL] for o in gen)
    assert len(tokens) == 10   # one create per item: no token was created twice
    assert sorted(x["name"] for x in r["gen"]["results"]) == sorted(o["metadata"]["name"] for o in gen)

    faults = _faults(entries)
    retries = sum(r[t]["api_retries"] for t in ("fleet", "gen", "again", "remove"))
    lost = [e for e in faults if e["fault"].endswith("-after-commit")]
    lost_creates = [e for e in lost if e["method"] == "POST"]
    # Every fault costs exactly one retry, except a create whose answer was lost: that one is read back instead.
    assert len(faults) >= 10 and retries == len(faults) - len(lost_creates)
    _record("100-VM kubevirt_vm task + 10 generate_name + re-run + 10 removals", entries,
            "; %d lost answers of stored writes (%s); client retries %d; outcomes: 100 created, 10 generated, "
            "re-run 100 unchanged, 10 deleted; cluster holds exactly %d VMs"
            % (len(lost), ", ".join(sorted(e["method"] for e in lost)) or "none", retries, len(names)))


def test_lost_create_answers_are_read_back_not_repeated(kubeapi, ansible_env, tmp_path, ns):
    """Every create POST is stored and then its answer lost (reset or 500): each VM exists exactly once."""
    kubeapi.set_faults(rate=1.0, statuses=(500,), reset=True, path_regex="/namespaces/%s/virtualmachines$" % ns,
                       methods=["POST"], after_commit=1.0, count=4, seed=3)
    mark = kubeapi.mark()
    r = play(ansible_env, tmp_path, [vm_task("gen", namespace=ns, memory="64Mi", boot_disk={"container_image": "img"},
                                             run_strategy="Halted", vms=[{"generate_name": "lost-"} for i in range(4)])])
    entries = kubeapi.requests(since=mark)
    kubeapi.clear_faults()
    res = r["gen"]
    assert not res.get("failed"), res.get("msg")
    assert [x["outcome"] for x in res["results"]] == ["created"] * 4
    live = _live_vms(kubeapi, ns)
    assert len(live) == 4 and sorted(o["metadata"]["name"] for o in live) == sorted(x["name"] for x in res["results"])
    posts = [e for e in entries if e["method"] == "POST"]
    assert len(posts) == 4 and all(e["fault"] and e["fault"].endswith("after-commit") for e in posts)
    # Each lost create was found by its token label: one list per VM, no second POST.
    assert len([e for e in entries if (e["query"].get("labelSelector") or "").startswith(TOKEN_LABEL + "=")]) == 4
    _record("lost create answers (generate_name)", entries, "; 4 stored creates whose answer was lost, 4 VMs exist, "
            "0 duplicates")


def test_faults_beyond_the_retry_budget_report_every_vm(kubeapi, ansible_env, tmp_path, ns):
    """Writes to two VMs always fail: the task fails naming what was done to each of the four."""
    common = dict(namespace=ns, memory="64Mi", boot_disk={"container_image": "img"}, run_strategy="Halted")
    # Only updates (PATCH) of bad-* are faulted, so the first task (which creates the VMs) runs clean in the same
    # play; the second changes a label of bad-* (a merge patch each) and creates ok-1.
    kubeapi.set_faults(rate=1.0, statuses=(500, 503), reset=True, methods=["PATCH"],
                       path_regex="/namespaces/%s/virtualmachines/bad-" % ns, seed=5)
    mark = kubeapi.mark()
    relabel = {"labels": {"v": "2"}}
    r = play(ansible_env, tmp_path, [
        vm_task("pre", vms=[{"name": "same"}, {"name": "bad-1"}, {"name": "bad-2"}], **common),
        vm_task("fleet", ignore_errors=True, wait_timeout=60,
                vms=[{"name": "ok-1"}, dict(relabel, name="bad-1"), {"name": "same"}, dict(relabel, name="bad-2")],
                **common)])
    assert not r["pre"].get("failed"), r["pre"].get("msg")
    entries = kubeapi.requests(since=mark)
    kubeapi.clear_faults()
    res = r["fleet"]
    assert res["failed"]
    outcomes = dict((x["name"], x["outcome"]) for x in res["results"])
    assert outcomes == {"ok-1": "created", "bad-1": "failed", "same": "unchanged", "bad-2": "failed"}
    msg = res["msg"]
    assert msg.startswith("2 of 4 VMs failed: %s/bad-1: " % ns), msg
    assert "%s/bad-2: " % ns in msg and "gave up after 6 attempts" in msg
    assert "created 1: %s/ok-1" % ns in msg and "unchanged 1: %s/same" % ns in msg
    live = sorted(o["metadata"]["name"] for o in _live_vms(kubeapi, ns))
    assert live == ["bad-1", "bad-2", "ok-1", "same"]
    assert all("v" not in (o["metadata"].get("labels") or {}) for o in _live_vms(kubeapi, ns))
    # Each bad VM the full budget; ok-1 is one create.
    assert _count(entries, method="PATCH") == 2 * 6
    assert _count([e for e in entries if e["path"].endswith("/virtualmachines")], method="POST") == 4
    assert res["api_retries"] == 2 * 5
    _record("faults beyond the retry budget", entries, "; outcomes: %s; retries %d"
            % (", ".join("%s %s" % kv for kv in sorted(outcomes.items())), res["api_retries"]))


@pytest.fixture(scope="module")
def inventory_emu(tmp_path_factory):
    emu = start_emulator(tmp_path_factory)
    objs = [namespace("flt-%d" % n) for n in range(4)]
    for i in range(1000):
        ns = "flt-%d" % (i % 4)
        name = "guest-%04d" % i
        objs += [inv_vm(name, ns, labels={"app": "fleet"}),
                 inv_vmi(name, ns, labels={"app": "fleet", "kubevirt.io/domain": name},
                         interfaces=[{"name": "default", "interfaceName": "eth0", "ipAddress": "10.%d.%d.%d"
                                      % (i % 4, i // 250, i % 250 + 1)}])]
    load(emu, objs)
    yield emu
    emu.stop()


def test_inventory_of_1000_vms_under_faults(inventory_emu, tmp_path):
    config = {"plugin": "virtfleet.kubevirt.kubevirt", "page_size": 40}
    clean = run_inventory(inventory_emu, tmp_path, config)
    assert clean.rc == 0, clean
    inventory_emu.set_faults(rate=0.1, statuses=(500, 429), reset=True, latency_ms=5, seed=11)
    try:
        faulty = run_inventory(inventory_emu, tmp_path, config)
    finally:
        inventory_emu.clear_faults()
    assert faulty.rc == 0, faulty
    hosts = faulty.hosts()
    assert len(hosts) == 1000 and len(set(hosts)) == 1000
    # Nothing lost or doubled on the way: the same hosts, groups and variables as without faults.
    assert faulty.data == clean.data
    faults = _faults(faulty.requests)
    assert len(faults) >= 3, "too few faults were injected for the run to prove anything"
    ok_pages = [e for e in faulty.requests if not e.get("fault") and e["verb"] == "list"]
    _record("ansible-inventory --list, 1,000 VMs, page_size 40", faulty.requests,
            "; every faulted list retried (%d successful list requests); 1000 hosts, identical to a fault-free run"
            % len(ok_pages))
