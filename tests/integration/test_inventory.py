"""Inventory plugin through ansible-inventory / ansible-playbook against the emulator: compatibility with
kubevirt.core, states, address strategies, filters, constructed features, template safety."""

import pytest

from tests.unit.plugins.inventory.objects import node, service, vm, vmi

from .inventory_support import EMULATOR as INVENTORY_EMULATOR
from .inventory_support import namespace, run_inventory, run_play

PLUGIN_NAME = "virtfleet.kubevirt.kubevirt"
EVIL = "{{ 'EVALUATED' }}"
DUAL = [{"name": "default", "interfaceName": "eth0", "ipAddress": "10.20.0.1", "ipAddresses": ["10.20.0.1", "fd20::1"]},
        {"name": "storage", "interfaceName": "eth1", "ipAddress": "192.168.50.1", "ipAddresses": ["192.168.50.1"]}]
WIN_OS = {"id": "mswindows", "name": "Microsoft Windows", "prettyName": "Windows Server 2022"}


def dataset():
    objs = [namespace("inv-a"), namespace("inv-b"),
            node("node03", [("InternalIP", "192.0.2.13"), ("InternalIP", "2001:db8::13"), ("ExternalIP", "198.51.100.13"),
                            ("Hostname", "node03")])]

    def pair(name, ns, vm_kwargs=None, vmi_kwargs=None):
        labels = {"kubevirt.io/domain": name}
        vmi_kwargs = dict(vmi_kwargs or {})
        vmi_kwargs["labels"] = dict(labels, **vmi_kwargs.get("labels", {}))
        out = [vm(name, ns, **(vm_kwargs or {}))]
        if vmi_kwargs.pop("phase", "Running") is not None:
            out.append(vmi(name, ns, **vmi_kwargs))
        return out

    # Template-looking API data sits in annotations: label values may not contain braces or spaces on a real API.
    objs += pair("web1", "inv-a", {"labels": {"app": "web"}, "annotations": {"note": EVIL}},
                 {"labels": {"app": "web"}, "annotations": {"note": EVIL}, "node": "node03",
                  "guest_os": {"id": "fedora"}})
    objs.append(service("web1-ssh", "inv-a", selector={"kubevirt.io/domain": "web1"},
                        ports=[{"name": "ssh", "port": 22, "targetPort": 22, "nodePort": 30101, "protocol": "TCP"}]))
    objs += pair("web2", "inv-a", {"labels": {"app": "web"}},
                 {"labels": {"app": "web"}, "ports": [{"name": "ssh", "port": 22}]})
    objs.append(service("web2-lb", "inv-a", type_="LoadBalancer", selector={"kubevirt.io/domain": "web2"},
                        ports=[{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30280},
                               {"name": "ssh", "port": 2222, "targetPort": "ssh", "nodePort": 30222}],
                        ingress=[{"ip": "203.0.113.2"}, {"ip": "2001:db8::2"}]))
    objs += pair("win1", "inv-a", {"annotations": {"vm.kubevirt.io/os": "windows2k22"}}, {"guest_os": WIN_OS})
    objs.append(service("win1-winrm", "inv-a", selector={"kubevirt.io/domain": "win1"},
                        ports=[{"name": "winrm", "port": 5986, "targetPort": 5986, "nodePort": 30986}]))
    objs.append(vm("off1", "inv-a", printable="Stopped", run_strategy="Halted"))
    objs += pair("paused1", "inv-a", {"printable": "Paused"},
                 {"conditions": [{"type": "Ready", "status": "False"}, {"type": "Paused", "status": "True"}]})
    objs.append(vmi("db1", "inv-b", labels={"app": "db"}, interfaces=DUAL))
    objs += pair("plain", "inv-b", {"labels": {"tier": "backend"}}, {})
    objs.append(vmi("booting", "inv-b", phase="Scheduling"))
    objs += [namespace("v6ns"), vmi("v6first", "v6ns", interfaces=[
        {"name": "default", "ipAddress": "fd30::1", "ipAddresses": ["fd30::1", "10.30.0.1"]}])]
    return objs


EMULATOR = dict(INVENTORY_EMULATOR, objects=dataset)   # the emu fixture (tests/conftest.py)


@pytest.fixture(scope="module")
def default_run(emu, tmp_path_factory):
    run = run_inventory(emu, tmp_path_factory.mktemp("inv"), {"plugin": "virtfleet.kubevirt.kubevirt"})
    assert run.rc == 0, run
    return run


def cluster_group(emu):
    return "_" + emu.url.split("://")[1].replace(".", "-").replace(":", "_")[1:]


def test_default_hosts_are_running_vms_named_namespace_name(default_run):
    assert default_run.hosts("inv-") == ["inv-a-web1", "inv-a-web2", "inv-a-win1", "inv-b-db1", "inv-b-plain"]


def test_groups_cluster_namespace(default_run, emu):
    data = default_run.data
    clusters = [g for g in data["all"]["children"] if g not in ("ungrouped",)]
    assert len(clusters) == 1
    # '-' becomes '_': inventory plugins' group name sanitizer (ansible.plugins.inventory.to_safe_group_name)
    # always transforms, whatever TRANSFORM_INVALID_GROUP_CHARS says.
    assert sorted(data[clusters[0]]["children"]) == ["namespace_inv_a", "namespace_inv_b", "namespace_v6ns"]
    ns_a = [c for c in data[clusters[0]]["children"] if c.endswith("a")][0]
    assert default_run.group_hosts(ns_a) == ["inv-a-web1", "inv-a-web2", "inv-a-win1"]


def test_vm_and_vmi_host_variables(default_run):
    v = default_run.hostvars["inv-a-web1"]
    assert v["vm_labels"] == {"app": "web"}
    assert v["vmi_labels"] == {"app": "web", "kubevirt.io/domain": "web1"}
    assert v["vm_annotations"] == {"note": EVIL} and v["vmi_annotations"] == {"note": EVIL}
    assert v["vm_printable_status"] == "Running" and v["vm_ready"] is True
    assert v["vmi_phase"] == "Running" and v["vmi_node_name"] == "node03"
    assert v["vmi_guest_os_info"] == {"id": "fedora"}
    assert v["vmi_interfaces"][0]["ipAddress"] == "10.0.0.1"
    for key in ("vm_uid", "vmi_uid", "vm_resource_version", "vmi_resource_version"):
        assert v[key]
    assert v["vm_state"] == "Running"
    assert not any(k.startswith("vmi_labels_") or k == "app" for k in v)  # labels never become variable names


def test_default_address_choice(default_run):
    hv = default_run.hostvars
    # NodePort Service -> the VMI's node name and the node port
    assert (hv["inv-a-web1"]["ansible_host"], hv["inv-a-web1"]["ansible_port"]) == ("node03", 30101)
    # LoadBalancer with several ports and a named target port -> ingress IP and the Service port mapping 22
    assert (hv["inv-a-web2"]["ansible_host"], hv["inv-a-web2"]["ansible_port"]) == ("203.0.113.2", 2222)
    assert hv["inv-a-web2"]["vm_address_source"] == "load_balancer"
    # no Service -> first interface, ansible_port unset (null) like kubevirt.core
    assert hv["inv-b-db1"]["ansible_host"] == "10.20.0.1" and hv["inv-b-db1"]["ansible_port"] is None
    assert hv["inv-b-db1"]["vm_address_source"] == "first_interface"


def test_windows_detection_sets_winrm(default_run):
    v = default_run.hostvars["inv-a-win1"]
    assert v["ansible_connection"] == "winrm"
    assert (v["ansible_host"], v["ansible_port"]) == ("node01", 30986)
    assert "ansible_connection" not in default_run.hostvars["inv-a-web1"]


def test_default_refresh_costs_one_list_per_kind(default_run):
    # the three kinds are listed concurrently, so their order in the log varies
    lists = sorted((r["method"], r["path"], r["verb"]) for r in default_run.requests)
    assert lists == [("GET", "/api/v1/services", "list"),
                     ("GET", "/apis/kubevirt.io/v1/virtualmachineinstances", "list"),
                     ("GET", "/apis/kubevirt.io/v1/virtualmachines", "list")]
    # no page_size: one unpaginated list each, which kube-apiserver serves from its watch cache
    assert all("limit" not in r["query"] and "continue" not in r["query"] for r in default_run.requests)


def test_states_option_and_state_variable(emu, tmp_path):
    run = run_inventory(emu, tmp_path, {"plugin": "virtfleet.kubevirt.kubevirt", "states": ["running", "Paused", "Stopped"]})
    assert run.rc == 0, run
    assert run.hosts("inv-a-") == ["inv-a-off1", "inv-a-paused1", "inv-a-web1", "inv-a-web2", "inv-a-win1"]
    assert run.hostvars["inv-a-off1"]["vm_state"] == "Stopped" and "ansible_host" not in run.hostvars["inv-a-off1"]
    assert run.hostvars["inv-a-paused1"]["vm_state"] == "Paused"
    run = run_inventory(emu, tmp_path, {"plugin": "virtfleet.kubevirt.kubevirt", "states": ["all"]})
    assert "inv-b-booting" in run.hostvars and run.hostvars["inv-b-booting"]["vm_state"] == "Scheduling"


@pytest.mark.parametrize("options, host, expected", [
    ({"network_name": "storage"}, "inv-b-db1", ("192.168.50.1", None, "network")),
    ({"interface_name": "eth1"}, "inv-b-db1", ("192.168.50.1", None, "network")),
    ({"network_name": "storage", "kube_secondary_dns": True, "base_domain": "example.org"}, "inv-b-db1",
     ("storage.db1.inv-b.vm.example.org", None, "secondary_dns")),
    ({"address_strategies": ["first_interface"], "prefer_ip_family": "ipv6"}, "inv-b-db1", ("fd20::1", None, "first_interface")),
    ({"address_strategies": ["load_balancer", "first_interface"], "prefer_ip_family": "ipv6"}, "inv-a-web2",
     ("2001:db8::2", 2222, "load_balancer")),
    ({"address_strategies": ["node_port"]}, "inv-a-web2", ("node01", 30222, "node_port")),
    ({"address_strategies": ["node_port"], "node_address_types": ["ExternalIP", "InternalIP"]}, "inv-a-web1",
     ("198.51.100.13", 30101, "node_port")),
    ({"address_strategies": ["node_port"], "node_address_types": ["InternalIP"], "prefer_ip_family": "ipv6"}, "inv-a-web1",
     ("2001:db8::13", 30101, "node_port")),
    ({"append_base_domain": True, "base_domain": "nodes.example.org"}, "inv-a-web1", ("node03.nodes.example.org", 30101, "node_port")),
    ({"use_service": False}, "inv-a-web1", ("10.0.0.1", None, "first_interface")),
    ({}, "v6ns-v6first", ("fd30::1", None, "first_interface")),
    ({"prefer_ip_family": "ipv4"}, "v6ns-v6first", ("10.30.0.1", None, "first_interface")),
    ({"ssh_port": 2022}, "inv-a-web1", ("10.0.0.1", None, "first_interface")),
])
def test_address_strategies(emu, tmp_path, options, host, expected):
    run = run_inventory(emu, tmp_path, dict({"plugin": "virtfleet.kubevirt.kubevirt"}, **options))
    assert run.rc == 0, run
    v = run.hostvars[host]
    assert (v["ansible_host"], v.get("ansible_port"), v["vm_address_source"]) == expected


def test_node_addresses_cost_one_node_list(emu, tmp_path):
    run = run_inventory(emu, tmp_path, {"plugin": "virtfleet.kubevirt.kubevirt", "node_address_types": ["InternalIP"]})
    paths = [r["path"] for r in run.requests]
    assert sorted(paths[:3]) == ["/api/v1/services", "/apis/kubevirt.io/v1/virtualmachineinstances",
                                 "/apis/kubevirt.io/v1/virtualmachines"]
    assert paths[3:] == ["/api/v1/nodes"]  # after the concurrent lists, only when a node address type needs it


@pytest.mark.parametrize("options, expected", [
    ({"namespaces": ["inv-b"]}, ["inv-b-db1", "inv-b-plain"]),
    ({"label_selector": "app=web"}, ["inv-a-web1", "inv-a-web2"]),
    ({"field_selector": "metadata.namespace=inv-b"}, ["inv-b-db1", "inv-b-plain"]),
    ({"field_selector": "metadata.name!=web1", "namespaces": ["inv-a"]}, ["inv-a-web2", "inv-a-win1"]),
    ({"include_filters": ["vmi_labels.app | default('') == 'web'", "ansible_connection | default('') == 'winrm'"]},
     ["inv-a-web1", "inv-a-web2", "inv-a-win1"]),
    ({"exclude_filters": ["inventory_hostname.startswith('inv-a')", "'tier' in vm_labels | default({})"]}, ["inv-b-db1"]),
])
def test_filters_and_scope(emu, tmp_path, options, expected):
    run = run_inventory(emu, tmp_path, dict({"plugin": "virtfleet.kubevirt.kubevirt"}, **options))
    assert run.rc == 0, run
    assert run.hosts("inv-") == expected


def test_namespaces_option_lists_each_namespace(emu, tmp_path):
    run = run_inventory(emu, tmp_path, {"plugin": "virtfleet.kubevirt.kubevirt", "namespaces": ["inv-a", "inv-b"],
                                        "use_service": False})
    assert sorted(r["path"] for r in run.requests) == sorted(
        "/apis/kubevirt.io/v1/namespaces/%s/%s" % (ns, kind) for ns in ("inv-a", "inv-b")
        for kind in ("virtualmachineinstances", "virtualmachines"))


def test_label_groups_compose_keyed_groups_and_strict(emu, tmp_path):
    config = {"plugin": "virtfleet.kubevirt.kubevirt", "create_groups": True, "namespaces": ["inv-a"],
              "compose": {"guest_family": "vmi_guest_os_info.id | default('unknown')", "note_copy": "vmi_annotations.note | default('none')"},
              "groups": {"windows": "ansible_connection | default('ssh') == 'winrm'"},
              "keyed_groups": [{"key": "vmi_node_name", "prefix": "node"}]}
    run = run_inventory(emu, tmp_path, config)
    assert run.rc == 0, run
    assert run.group_hosts("label_app_web") == ["inv-a-web1", "inv-a-web2"]
    assert run.group_hosts("windows") == ["inv-a-win1"]
    assert run.group_hosts("node_node03") == ["inv-a-web1"]
    assert run.hostvars["inv-a-win1"]["guest_family"] == "mswindows"
    assert run.hostvars["inv-a-web1"]["note_copy"] == EVIL  # composed from API data, still not evaluated
    bad = dict(config, keyed_groups=[{"key": "no_such_var.attr", "prefix": "x"}], strict=True)
    run = run_inventory(emu, tmp_path, bad)
    assert run.rc != 0 and "no_such_var" in run.err
    run = run_inventory(emu, tmp_path, dict(bad, strict=False))
    assert run.rc == 0, run


def test_graph_output(emu, tmp_path):
    run = run_inventory(emu, tmp_path, {"plugin": "virtfleet.kubevirt.kubevirt", "namespaces": ["inv-b"]}, args=("--graph",))
    assert run.rc == 0, run
    assert "@namespace_inv" in run.stdout and "inv-b-db1" in run.stdout


def test_play_sees_hostvars_and_group_names_and_api_data_stays_literal(emu, tmp_path):
    tasks = [{"ansible.builtin.assert": {"that": [
        "vm_annotations.note == evil",
        "vmi_annotations.note == evil",
        "'namespace_inv-a' in group_names or 'namespace_inv_a' in group_names",
        "ansible_host == 'node03'",
        "ansible_port == 30101",
        "vm_state == 'Running'",
    ]}, "vars": {"evil": "{{ '{{' }} 'EVALUATED' {{ '}}' }}"}},
        {"ansible.builtin.debug": {"msg": "note={{ vmi_annotations.note }}"}}]
    proc = run_play(emu, tmp_path, {"plugin": "virtfleet.kubevirt.kubevirt", "namespaces": ["inv-a"]}, tasks, limit="inv-a-web1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "note={{ 'EVALUATED' }}" in proc.stdout
    assert "note=EVALUATED" not in proc.stdout


def test_bad_option_is_one_clear_error(emu, tmp_path):
    run = run_inventory(emu, tmp_path, {"plugin": "virtfleet.kubevirt.kubevirt", "address_strategies": ["network"]})
    assert run.rc != 0
    assert "address_strategies uses network, which needs network_name" in run.err
    assert "Traceback" not in run.err


def test_only_files_named_kubevirt_yml_are_accepted(emu, tmp_path):
    run = run_inventory(emu, tmp_path, {"plugin": "virtfleet.kubevirt.kubevirt"}, filename="inventory.yml")
    assert run.rc != 0  # not our file name: no plugin claims it, and unparsed sources fail in these tests


def test_naming_port_and_api_version_options(emu, tmp_path):
    run = run_inventory(emu, tmp_path, {"plugin": PLUGIN_NAME, "namespaces": ["inv-b"], "host_format": "{name}.{namespace}.{cluster}",
                                        "name": "lab", "unset_ansible_port": False, "api_version": "kubevirt.io/v1alpha3"})
    assert run.rc == 0, run
    assert run.hosts() == ["db1.inv-b.lab", "plain.inv-b.lab"]
    assert run.children("lab") == ["namespace_inv_b"]   # sanitized as in test_groups_cluster_namespace
    assert "ansible_port" not in run.hostvars["db1.inv-b.lab"]  # kubevirt.core's unset_ansible_port=false
    assert sorted(r["path"] for r in run.requests) == ["/api/v1/namespaces/inv-b/services",
                                                       "/apis/kubevirt.io/v1alpha3/namespaces/inv-b/virtualmachineinstances",
                                                       "/apis/kubevirt.io/v1alpha3/namespaces/inv-b/virtualmachines"]
    run = run_inventory(emu, tmp_path, {"plugin": PLUGIN_NAME, "namespaces": ["inv-a"], "host_format": "{uid}"})
    uid = emu.get_object("/apis/kubevirt.io/v1/namespaces/inv-a/virtualmachines/web1")["metadata"]["uid"]
    assert uid in run.hostvars and run.hostvars[uid]["vm_uid"] == uid


def test_unserved_api_version_is_one_sentence(emu, tmp_path):
    run = run_inventory(emu, tmp_path, {"plugin": PLUGIN_NAME, "api_version": "kubevirt.io/v9"})
    assert run.rc != 0
    assert "does not serve kubevirt.io/v9 (404): install KubeVirt, or set api_version" in run.err
