"""Inventory differential test: kubevirt.core 2.3.0 and our plugin on the same emulator state and the same files.

Each scenario is one inventory file; it is run with `plugin: kubevirt.core.kubevirt` by the reference
virtualenv (.venv-ref) and with `plugin: virtfleet.kubevirt.kubevirt` by ours, and the `ansible-inventory
--list` outputs are compared. Together the scenarios use every option kubevirt.core 2.3.0 documents. Every
difference becomes a key that must match a row of the intended-differences table
(docs/migrating-from-kubevirt-core.md):

- ``inventory:host:<host> (<kubevirt.core|virtfleet.kubevirt> only, <state>)``: a host on one side only;
  <state> is the VM's state as our ``vm_state`` names it (Running, Paused, Stopped, or the VM's printable
  status / the VMI's phase);
- ``inventory:hostvar:<host>.<var>``: a variable of a host on both sides that differs or exists on one side
  only; for ansible_host/ansible_port `` (ours via <vm_address_source>)`` is appended;
- ``inventory:group:<group>.hosts`` / ``.children``: the hosts (of those on both sides) directly in a group,
  or its child groups (of those holding such a host), differ.
"""
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from tests.compat.difftable import Table
from tests.integration.inventory_support import InventoryRun, base_env, load, namespace, start_emulator, write_source
from tests.unit.plugins.inventory.objects import service, vm, vmi

REPO = Path(__file__).resolve().parents[2]
REF_VENV = REPO / ".venv-ref"
OUR_BIN = Path(sys.executable).parent
PLUGINS = {"ref": "kubevirt.core.kubevirt", "our": "virtfleet.kubevirt.kubevirt"}
SIDE_NAMES = {"ref": "kubevirt.core", "our": "virtfleet.kubevirt"}

WIN_OS = {"id": "mswindows", "name": "Microsoft Windows", "prettyName": "Windows Server 2022"}
MULTI = [{"name": "default", "interfaceName": "eth0", "ipAddress": "10.40.0.5", "ipAddresses": ["10.40.0.5"]},
         {"name": "storage", "interfaceName": "eth1", "ipAddress": "192.168.40.5", "ipAddresses": ["192.168.40.5"]}]


def _pair(name, ns, vm_kwargs=None, vmi_kwargs=None):
    vmi_kwargs = dict(vmi_kwargs or {})
    vmi_kwargs["labels"] = dict({"kubevirt.io/domain": name}, **vmi_kwargs.get("labels", {}))
    return [vm(name, ns, **(vm_kwargs or {})), vmi(name, ns, **vmi_kwargs)]


def _ssh(name, ns, type_="NodePort", node_port=30000, port=22, ingress=None, target=22):
    return service(name + "-svc", ns, type_=type_, selector={"kubevirt.io/domain": name}, ingress=ingress,
                   ports=[{"name": "p", "port": port, "targetPort": target, "nodePort": node_port, "protocol": "TCP"}])


def dataset():
    """Every case kubevirt.core handles, plus the ones where we deliberately differ (stopped/paused/pending VMs,
    a multi-port Service)."""
    a, b = "compat-a", "compat-b"
    objs = [namespace(a), namespace(b), namespace("compat-empty")]
    objs += _pair("web1", a, {"labels": {"app": "web"}}, {"labels": {"app": "web", "tier": "front"}})
    objs.append(_ssh("web1", a, node_port=30101))
    objs += _pair("web2", a, {"labels": {"app": "web"}}, {"labels": {"app": "web"}})
    objs.append(_ssh("web2", a, type_="LoadBalancer", port=2222, node_port=30102, ingress=[{"ip": "203.0.113.2"}]))
    objs += _pair("lbname", a, {}, {})
    objs.append(_ssh("lbname", a, type_="LoadBalancer", port=22, node_port=30103, ingress=[{"hostname": "lb.example.net"}]))
    objs += _pair("win1", a, {"annotations": {"vm.kubevirt.io/os": "windows2k22"}}, {"guest_os": WIN_OS})
    objs.append(_ssh("win1", a, node_port=30986, port=5986, target=5986))
    objs.append(service("win1-ssh", a, selector={"kubevirt.io/domain": "win1"},
                        ports=[{"name": "ssh", "port": 22, "targetPort": 22, "nodePort": 30122, "protocol": "TCP"}]))
    objs += _pair("win2", a, {}, {"annotations": {"vm.kubevirt.io/os": "windows10"}})
    objs.append(_ssh("win2", a, node_port=30985, port=5985, target=5985))
    objs += _pair("multi", b, {"labels": {"app": "db"}}, {"labels": {"app": "db"}, "interfaces": MULTI})
    objs.append(_ssh("multi", b, node_port=30104))
    objs.append(vm("off1", a, printable="Stopped", run_strategy="Halted", labels={"app": "web"}))
    objs.append(vm("off2", b, printable="Stopped", run_strategy="Halted"))
    objs += _pair("paused1", b, {"printable": "Paused"},
                  {"conditions": [{"type": "Ready", "status": "False"}, {"type": "Paused", "status": "True"}]})
    objs.append(vmi("orphan", b, labels={"app": "db"}))
    objs.append(vmi("booting", b, phase="Scheduling"))
    objs += _pair("twoport", b, {}, {"ports": [{"name": "ssh", "port": 22}]})
    objs.append(service("twoport-lb", b, type_="LoadBalancer", selector={"kubevirt.io/domain": "twoport"},
                        ports=[{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30280},
                               {"name": "ssh", "port": 2223, "targetPort": "ssh", "nodePort": 30223}],
                        ingress=[{"ip": "203.0.113.9"}]))
    return objs


# name -> (file body without `plugin`, extra keys for our file only). Together they use every kubevirt.core option.
SCENARIOS = {
    "defaults": ({}, {}),
    "namespaces-selector-groups": ({"namespaces": ["compat-a", "compat-empty"], "label_selector": "app=web",
                                    "create_groups": True, "host_format": "{name}.{namespace}", "name": "lab",
                                    "api_version": "kubevirt.io/v1"}, {}),
    "network-secondary-dns": ({"network_name": "storage", "kube_secondary_dns": True, "base_domain": "example.org"}, {}),
    "interface-name": ({"interface_name": "storage", "unset_ansible_port": False}, {}),
    "no-service": ({"use_service": False, "create_groups": True}, {}),
    "append-base-domain": ({"append_base_domain": True, "base_domain": "nodes.example.org", "host_format": "{uid}"}, {}),
    "win-psrp": ({"default_win_ansible_connection": "ansible.builtin.psrp"}, {}),
    "win-ssh": ({"default_win_ansible_connection": "ssh"}, {}),
    "constructed": ({"strict": True, "compose": {"ansible_user": "'admin'", "nic_count": "vmi_interfaces | default([]) | length"},
                     "groups": {"webs": "(vmi_labels | default({})).get('app') == 'web'"},
                     "keyed_groups": [{"key": "vmi_node_name | default('none')", "prefix": "node"},
                                      {"key": "vm_labels | default({})", "prefix": "vmlabel", "separator": "-"}],
                     "leading_separator": False, "use_extra_vars": False, "cache": True, "cache_plugin": "memory",
                     "cache_timeout": 60, "cache_prefix": "compat_"}, {}),
    "connections": ({"connections": [{"namespaces": ["compat-b"], "create_groups": True, "name": "east"}]}, {}),
    # Our one deliberate difference switched off: kubevirt.core's exact host list.
    "states-all": ({"create_groups": True}, {"states": ["all"]}),
}


def _run(side, workdir, emu, scenario):
    config, ours_only = SCENARIOS[scenario]
    body = dict(plugin=PLUGINS[side], **config)
    if side == "our":
        body.update(ours_only)
    source = write_source(Path(workdir) / side, body)
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if side == "ref":
        # kubevirt.core and kubernetes.core from the reference venv's own site-packages, never our collection.
        empty = Path(workdir) / "no-collections"
        empty.mkdir(exist_ok=True)
        env["ANSIBLE_COLLECTIONS_PATH"] = str(empty)
        binary = REF_VENV / "bin" / "ansible-inventory"
    else:
        env["ANSIBLE_COLLECTIONS_PATH"] = str(REPO / ".build" / "collections")
        env["ANSIBLE_COLLECTIONS_SCAN_SYS_PATH"] = "False"
        binary = OUR_BIN / "ansible-inventory"
    env = base_env(emu, Path(workdir) / side, emu.env(env))
    proc = subprocess.run([str(binary), "-i", str(source), "--list"], env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    return InventoryRun(proc, [], source)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """{scenario: {side: InventoryRun}}, every ansible-inventory of the module run once, a few at a time."""
    if not (REF_VENV / "bin" / "ansible-inventory").exists():
        pytest.fail("The reference virtualenv %s (ansible with kubevirt.core 2.3.0) is missing: `make venv` builds it."
                    % REF_VENV, pytrace=False)
    emu = start_emulator(tmp_path_factory)
    try:
        load(emu, dataset())
        workdir = tmp_path_factory.mktemp("inventory-compat")
        jobs = [(scenario, side) for scenario in SCENARIOS for side in PLUGINS]
        with ThreadPoolExecutor(max_workers=4) as pool:
            futures = dict(((scenario, side), pool.submit(_run, side, workdir / scenario, emu, scenario))
                           for scenario, side in jobs)
        out = {}
        for (scenario, side), future in futures.items():
            run = future.result()
            assert run.rc == 0, (scenario, side, run)
            out.setdefault(scenario, {})[side] = run
        return out
    finally:
        emu.stop()


def state_of(hostvars):
    """The state our vm_state would give, from kubevirt.core's vm_*/vmi_* variables."""
    if "vm_state" in hostvars:
        return hostvars["vm_state"]
    if hostvars.get("vmi_phase") == "Running":
        paused = any(c.get("type") == "Paused" and c.get("status") == "True" for c in hostvars.get("vmi_conditions") or [])
        return "Paused" if paused else "Running"
    return hostvars.get("vm_printable_status") or hostvars.get("vmi_phase") or "Unknown"


def _groups(data):
    return dict((name, body) for name, body in data.items() if name != "_meta")


def _hosts_below(groups, name, seen=None):
    seen = set() if seen is None else seen
    if name in seen:
        return set()
    seen.add(name)
    body = groups.get(name) or {}
    hosts = set(body.get("hosts") or ())
    for child in body.get("children") or ():
        hosts |= _hosts_below(groups, child, seen)
    return hosts


def differences(ref, our):
    """[(key, kubevirt.core value, our value)] between two --list outputs."""
    out = []
    ref_vars, our_vars = ref["_meta"]["hostvars"], our["_meta"]["hostvars"]
    for side, mine, other in (("ref", ref_vars, our_vars), ("our", our_vars, ref_vars)):
        for host in sorted(set(mine) - set(other)):
            key = "inventory:host:%s (%s only, %s)" % (host, SIDE_NAMES[side], state_of(mine[host]))
            out.append((key, host if side == "ref" else None, host if side == "our" else None))
    common = set(ref_vars) & set(our_vars)
    for host in sorted(common):
        theirs, ours = ref_vars[host], our_vars[host]
        for var in sorted(set(theirs) | set(ours)):
            missing = object()
            a, b = theirs.get(var, missing), ours.get(var, missing)
            if a == b:
                continue
            key = "inventory:hostvar:%s.%s" % (host, var)
            if var in ("ansible_host", "ansible_port"):
                key += " (ours via %s)" % ours.get("vm_address_source", "nothing")
            out.append((key, None if a is missing else a, None if b is missing else b))
    ref_groups, our_groups = _groups(ref), _groups(our)
    for group in sorted(set(ref_groups) | set(our_groups)):
        sides = []
        for groups in (ref_groups, our_groups):
            body = groups.get(group) or {}
            hosts = sorted(h for h in body.get("hosts") or () if h in common)
            children = sorted(c for c in body.get("children") or () if _hosts_below(groups, c) & common)
            sides.append((hosts, children))
        for index, part in enumerate(("hosts", "children")):
            if sides[0][index] != sides[1][index]:
                out.append(("inventory:group:%s.%s" % (group, part), sides[0][index], sides[1][index]))
    return out


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_inventory_matches_kubevirt_core(scenario, runs):
    table = Table.load()
    found = differences(runs[scenario]["ref"].data, runs[scenario]["our"].data)
    unexplained = ["%s: kubevirt.core %r, ours %r" % d for d in found if table.match(d[0]) is None]
    assert not unexplained, "Differences that match no row of the intended-differences table in " \
                            "docs/migrating-from-kubevirt-core.md (%s):\n  %s" % (
                                scenario, "\n  ".join(unexplained))


def test_states_all_gives_kubevirt_cores_host_list(runs):
    ref, our = runs["states-all"]["ref"], runs["states-all"]["our"]
    assert sorted(ref.hostvars) == sorted(our.hostvars)
    assert "compat-a-off1" in our.hostvars and "compat-b-booting" in our.hostvars


def test_default_hosts_differ_only_by_not_running_vms(runs):
    """The states row excuses exactly the hosts whose VM does not run; every running VM is on both sides."""
    ref, our = runs["defaults"]["ref"], runs["defaults"]["our"]
    only_ref = set(ref.hostvars) - set(our.hostvars)
    assert not set(our.hostvars) - set(ref.hostvars)
    assert sorted(only_ref) == ["compat-a-off1", "compat-b-booting", "compat-b-off2", "compat-b-paused1"]
    assert all(state_of(ref.hostvars[h]) != "Running" for h in only_ref)


def test_scenarios_use_every_kubevirt_core_option():
    """A new kubevirt.core option must get a scenario (auth options come from the emulator's kubeconfig)."""
    doc = yaml.safe_load(_reference_documentation())
    used = set()
    for config, _ours_only in SCENARIOS.values():
        used |= set(config)
        for entry in config.get("connections", ()):
            used |= set(entry)
    auth = {"kubeconfig", "context", "host", "api_key", "username", "password", "client_cert", "client_key", "ca_cert",
            "validate_certs", "proxy", "no_proxy", "proxy_headers", "persist_config", "impersonate_user",
            "impersonate_groups", "cache_connection"}
    names = set(doc["options"]) - {"plugin"} - auth
    unused = sorted(n for n in names if n not in used and not (set(doc["options"][n].get("aliases") or ()) & used))
    assert not unused, "kubevirt.core options no scenario uses: %s" % unused


def _reference_documentation():
    path = next(REF_VENV.glob("lib/python3*/site-packages/ansible_collections/kubevirt/core/plugins/inventory/kubevirt.py"))
    text = path.read_text(encoding="utf-8")
    start = text.index('DOCUMENTATION = """') + len('DOCUMENTATION = """')
    return text[start:text.index('"""', start)]
