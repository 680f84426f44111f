"""Populate step (pure): API objects -> host names, groups and kubevirt.core-compatible host variables."""
import pytest

from ansible_collections.virtfleet.kubevirt.plugins.plugin_utils._inventory_address import AddressSettings
from ansible_collections.virtfleet.kubevirt.plugins.plugin_utils._inventory_populate import (
    PopulateSettings, build_hosts, check_host_format, default_cluster_name, is_windows, object_vars, snake_case, vm_state,
)

from .objects import service, vm, vmi

COMPAT = AddressSettings(("load_balancer", "node_port", "first_interface"))


def settings(**kwargs):
    kwargs.setdefault("address", COMPAT)
    return PopulateSettings(**kwargs)


def hosts_by_name(data, **kwargs):
    return {h.name: h for h in build_hosts(dict({"name": "cluster-a"}, **data), settings(**kwargs))}


@pytest.mark.parametrize("key, expected", [
    ("phase", "phase"),
    ("nodeName", "node_name"),
    ("guestOSInfo", "guest_os_info"),
    ("printableStatus", "printable_status"),
    ("VSOCKCID", "vsockcid"),
    ("launcherContainerImageVersion", "launcher_container_image_version"),
    ("volumeSnapshotStatuses", "volume_snapshot_statuses"),
])
def test_snake_case_matches_kubevirt_core(key, expected):
    assert snake_case(key) == expected


@pytest.mark.parametrize("host, expected", [
    ("https://127.0.0.1:6443", "127-0-0-1_6443"),
    ("http://api.example.com:8443", "api-example-com_8443"),
    ("api.example.com", "api-example-com"),
])
def test_default_cluster_name(host, expected):
    assert default_cluster_name(host) == expected


@pytest.mark.parametrize("fmt, ok", [
    ("{namespace}-{name}", True),
    ("{uid}", True),
    ("{cluster}.{namespace}.{name}", True),
    ("{name", False),
    ("{namespaces}-{name}", False),
    ("static", False),
])
def test_check_host_format(fmt, ok):
    assert (check_host_format(fmt) is None) is ok


def test_object_vars_prefix_metadata_and_snake_cased_status():
    obj = vmi("a", labels={"app": "x"}, annotations={"note": "y"}, guest_os={"id": "fedora"})
    obj["metadata"].update(uid="u-1", resourceVersion="42")
    out = object_vars("vmi", obj)
    assert out["vmi_labels"] == {"app": "x"}
    assert out["vmi_annotations"] == {"note": "y"}
    assert out["vmi_uid"] == "u-1" and out["vmi_resource_version"] == "42"
    assert out["vmi_guest_os_info"] == {"id": "fedora"}
    assert out["vmi_node_name"] == "node01" and out["vmi_phase"] == "Running"
    # label keys never become variable names
    assert not any(k.startswith("vmi_app") for k in out)


def test_object_vars_omit_empty_metadata():
    out = object_vars("vm", {"metadata": {"name": "a", "labels": {}}, "status": {}})
    assert out == {}


@pytest.mark.parametrize("vm_obj, vmi_obj, expected", [
    (vm("a"), vmi("a"), "Running"),
    (None, vmi("a"), "Running"),
    (vm("a", printable="Paused"), vmi("a", conditions=[{"type": "Paused", "status": "True"}]), "Paused"),
    (vm("a", printable="Stopped"), None, "Stopped"),
    ({"metadata": {"name": "a"}, "status": {}}, None, "Stopped"),
    (vm("a", printable="Starting"), vmi("a", phase="Scheduling"), "Starting"),
    (None, vmi("a", phase="Failed"), "Failed"),
])
def test_vm_state(vm_obj, vmi_obj, expected):
    assert vm_state(vm_obj, vmi_obj) == expected


@pytest.mark.parametrize("guest, vmi_ann, vm_ann, expected", [
    ({"id": "mswindows"}, {}, {}, True),
    ({"id": "fedora"}, {"vm.kubevirt.io/os": "windows2k22"}, {}, False),  # the agent wins
    (None, {"kubevirt.io/cluster-preference-name": "windows.2k22"}, {}, True),
    (None, {"kubevirt.io/preference-name": "windows.11"}, {}, True),
    (None, {"vm.kubevirt.io/os": "windows10"}, {}, True),
    (None, {"kubevirt.io/cluster-preference-name": "fedora"}, {"vm.kubevirt.io/os": "windows"}, False),
    (None, {}, {"vm.kubevirt.io/os": "windows2k19"}, True),
    (None, {}, {}, False),
])
def test_is_windows(guest, vmi_ann, vm_ann, expected):
    assert is_windows(vmi("a", guest_os=guest, annotations=vmi_ann), vm("a", annotations=vm_ann)) is expected


def test_default_host_name_groups_and_vars():
    hosts = hosts_by_name({"vms": [vm("web", "prod", labels={"app": "web"})],
                           "vmis": [vmi("web", "prod", labels={"kubevirt.io/domain": "web"})]})
    host = hosts["prod-web"]
    assert host.cluster_group == "cluster-a"
    assert host.namespace_group == "namespace_prod"
    assert host.label_groups == []
    v = host.variables
    assert v["vm_labels"] == {"app": "web"} and v["vmi_labels"] == {"kubevirt.io/domain": "web"}
    assert v["vm_printable_status"] == "Running" and v["vmi_phase"] == "Running"
    assert v["ansible_host"] == "10.0.0.1" and v["vm_address_source"] == "first_interface"
    assert "ansible_port" in v and v["ansible_port"] is None
    assert v["vm_state"] == "Running"
    assert "ansible_connection" not in v


def test_running_only_by_default_and_states_option():
    data = {"vms": [vm("up"), vm("down", printable="Stopped"), vm("zz", printable="Paused")],
            "vmis": [vmi("up"), vmi("zz", conditions=[{"type": "Paused", "status": "True"}]), vmi("orphan"),
                     vmi("boot", phase="Scheduling")]}
    assert sorted(hosts_by_name(data)) == ["default-orphan", "default-up"]
    assert sorted(hosts_by_name(data, states=["running", "paused"])) == ["default-orphan", "default-up", "default-zz"]
    everything = hosts_by_name(data, states=["all"])
    assert sorted(everything) == ["default-boot", "default-down", "default-orphan", "default-up", "default-zz"]
    assert everything["default-down"].variables["vm_state"] == "Stopped"
    assert "ansible_host" not in everything["default-down"].variables
    assert "vmi_phase" not in everything["default-down"].variables
    assert everything["default-boot"].variables["vm_state"] == "Scheduling"
    assert everything["default-zz"].variables["vm_state"] == "Paused"


def test_host_format_uses_vm_uid_when_vm_exists():
    data = {"vms": [vm("a", uid="vm-uid")], "vmis": [vmi("a", uid="vmi-uid"), vmi("b", uid="b-uid")]}
    assert sorted(hosts_by_name(data, host_format="{uid}")) == ["b-uid", "vm-uid"]
    assert sorted(hosts_by_name(data, host_format="{cluster}/{name}")) == ["cluster-a/a", "cluster-a/b"]


def test_create_groups_from_vm_and_vmi_labels_sanitized_and_deduplicated():
    data = {"vms": [vm("a", labels={"app": "web", "tier": "front"})],
            "vmis": [vmi("a", labels={"app": "web", "kubevirt.io/domain": "a"})]}
    seen = []

    def sanitize(name):
        seen.append(name)
        return name.replace("/", "_").replace(".", "_")

    hosts = build_hosts(dict(data, name="c"), settings(create_groups=True), sanitize=sanitize)
    assert hosts[0].label_groups == ["label_app_web", "label_tier_front", "label_kubevirt_io_domain_a"]
    assert "namespace_default" in seen and "c" in seen


def test_unset_ansible_port_false_leaves_port_out():
    hosts = hosts_by_name({"vmis": [vmi("a")]}, unset_ansible_port=False)
    assert "ansible_port" not in hosts["default-a"].variables


def test_windows_host_gets_winrm_and_winrm_service_port():
    svc = service("a-winrm", selector={"kubevirt.io/domain": "a"},
                  ports=[{"port": 5985, "targetPort": 5985, "nodePort": 30985}])
    ssh = service("a-ssh", selector={"kubevirt.io/domain": "a"})
    data = {"vmis": [vmi("a", labels={"kubevirt.io/domain": "a"}, guest_os={"id": "mswindows"})], "services": [ssh, svc]}
    v = hosts_by_name(data)["default-a"].variables
    assert v["ansible_connection"] == "winrm"
    assert (v["ansible_host"], v["ansible_port"], v["vm_address_source"]) == ("node01", 30985, "node_port")


@pytest.mark.parametrize("connection, port", [
    ("winrm", 30985), ("ansible.builtin.winrm", 30985), ("psrp", 30985), ("ansible.builtin.psrp", 30985),
    ("ssh", 30022), ("ansible.builtin.ssh", 30022),
])
def test_default_win_ansible_connection_sets_connection_and_service_port(connection, port):
    winrm = service("a-winrm", selector={"kubevirt.io/domain": "a"}, ports=[{"port": 5985, "targetPort": 5985, "nodePort": 30985}])
    ssh = service("a-ssh", selector={"kubevirt.io/domain": "a"})
    data = {"vmis": [vmi("a", labels={"kubevirt.io/domain": "a"}, guest_os={"id": "mswindows"}),
                     vmi("b", labels={"kubevirt.io/domain": "b"}, guest_os={"id": "fedora"})],
            "services": [winrm, ssh]}
    hosts = hosts_by_name(data, win_connection=connection)
    v = hosts["default-a"].variables
    assert (v["ansible_connection"], v["ansible_host"], v["ansible_port"]) == (connection, "node01", port)
    assert "ansible_connection" not in hosts["default-b"].variables


def test_windows_host_without_address_gets_no_connection():
    data = {"vmis": [vmi("a", guest_os={"id": "mswindows"}, interfaces=[{"name": "default"}])]}
    v = hosts_by_name(data)["default-a"].variables
    assert "ansible_connection" not in v and "ansible_host" not in v


def test_linux_host_uses_ssh_service():
    ssh = service("a-ssh", selector={"kubevirt.io/domain": "a"})
    data = {"vmis": [vmi("a", labels={"kubevirt.io/domain": "a"})], "services": [ssh]}
    v = hosts_by_name(data)["default-a"].variables
    assert (v["ansible_host"], v["ansible_port"]) == ("node01", 30022)


def test_invalid_objects_are_skipped():
    data = {"vmis": [{"metadata": {"name": "x"}, "status": {"phase": "Running"}}, vmi("ok")]}
    assert list(hosts_by_name(data)) == ["default-ok"]


def test_api_strings_are_passed_through_untouched():
    evil = "{{ 'EVALUATED' }}"
    # An annotation: a real API server rejects label values with braces or spaces.
    hosts = hosts_by_name({"vmis": [vmi("a", annotations={"note": evil})]})
    v = hosts["default-a"].variables
    assert v["vmi_annotations"]["note"] == evil
