"""Unit tests for _vm_spec: options -> VirtualMachine manifest."""
import pytest

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _vm_spec as vs


def opts(**kw):
    base = {k: None for k in vs.PER_VM_OPTIONS}
    base.update(kw)
    return base


def tspec(vm):
    return vm["spec"]["template"]["spec"]


def test_minimal_vm_is_kubevirt_core_shaped_but_uses_run_strategy():
    vm = vs.build_vm(opts(name="a", namespace="ns"))
    assert vm == {
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
        "metadata": {"name": "a", "namespace": "ns"},
        "spec": {"runStrategy": "Always", "template": {"spec": {"domain": {"devices": {}}}}},
    }
    assert "running" not in vm["spec"]


@pytest.mark.parametrize("given,state,live,expected", [
    ({}, "present", None, {"runStrategy": "Always"}),
    ({}, "stopped", None, {"runStrategy": "Halted"}),
    ({}, "present", {"spec": {}}, {}),                       # update: never touched unless given
    ({"run_strategy": "Manual"}, "present", None, {"runStrategy": "Manual"}),
    ({"run_strategy": "Halted"}, "present", {"spec": {}}, {"runStrategy": "Halted"}),
    ({"running": True}, "present", None, {"running": True}),  # deprecated field only when the user set it
    ({"running": False}, "present", {"spec": {}}, {"running": False}),
])
def test_run_strategy_rule(given, state, live, expected):
    vm = vs.build_vm(opts(name="a", namespace="ns", **given), state=state, live=live)
    got = {k: v for k, v in vm["spec"].items() if k in ("running", "runStrategy")}
    assert got == expected


def test_labels_and_annotations_are_strings_and_copied_to_template():
    vm = vs.build_vm(opts(name="a", labels={"tier": 1, "on": True}, annotations={"x": "y"}))
    assert vm["metadata"]["labels"] == {"tier": "1", "on": "true"}
    assert vm["spec"]["template"]["metadata"] == {"labels": {"tier": "1", "on": "true"}, "annotations": {"x": "y"}}


def test_label_value_must_not_be_a_dict():
    with pytest.raises(vs.VMSpecError, match="Option labels"):
        vs.build_vm(opts(name="a", labels={"a": {"b": 1}}))


def test_convenience_options_build_a_bootable_vm_with_pod_masquerade_by_default():
    vm = vs.build_vm(opts(
        name="web", namespace="ns", cpu={"cores": 2, "sockets": None, "threads": 1}, memory="2Gi",
        boot_disk={"container_image": "quay.io/containerdisks/fedora:latest"},
        cloud_init={"user": "fedora", "ssh_authorized_keys": ["ssh-ed25519 AAAA x@y"], "password": "s3cret"},
        node_selector={"disk": "ssd"}, tolerations=[{"key": "k", "operator": "Exists"}], eviction_strategy="LiveMigrate",
    ))
    t = tspec(vm)
    assert t["domain"]["cpu"] == {"cores": 2, "threads": 1}
    assert t["domain"]["memory"] == {"guest": "2Gi"}
    assert t["domain"]["devices"]["disks"] == [{"name": "rootdisk", "disk": {"bus": "virtio"}},
                                               {"name": "cloudinit", "disk": {"bus": "virtio"}}]
    assert t["volumes"][0] == {"name": "rootdisk", "containerDisk": {"image": "quay.io/containerdisks/fedora:latest"}}
    user_data = t["volumes"][1]["cloudInitNoCloud"]["userData"]
    assert user_data.startswith("#cloud-config\n")
    assert 'password: "s3cret"' in user_data and '- "ssh-ed25519 AAAA x@y"' in user_data
    assert t["networks"] == [{"name": "default", "pod": {}}]
    assert t["domain"]["devices"]["interfaces"] == [{"name": "default", "masquerade": {}}]
    assert t["nodeSelector"] == {"disk": "ssd"}
    assert t["tolerations"] == [{"key": "k", "operator": "Exists"}]
    assert t["evictionStrategy"] == "LiveMigrate"
    assert "dataVolumeTemplates" not in vm["spec"]


def test_spec_only_vm_gets_no_injected_network():
    vm = vs.build_vm(opts(name="a", spec={"domain": {"devices": {}}}))
    assert "networks" not in tspec(vm)


def test_spec_wins_over_convenience_options():
    vm = vs.build_vm(opts(name="a", cpu={"cores": 2}, memory="1Gi",
                          spec={"domain": {"cpu": {"cores": 4}, "devices": {"interfaces": [{"name": "x", "bridge": {}}]}},
                                "networks": [{"name": "x", "multus": {"networkName": "ns/br"}}]}))
    t = tspec(vm)
    assert t["domain"]["cpu"] == {"cores": 4}
    assert t["domain"]["memory"] == {"guest": "1Gi"}
    assert t["networks"] == [{"name": "x", "multus": {"networkName": "ns/br"}}]
    assert t["domain"]["devices"]["interfaces"] == [{"name": "x", "bridge": {}}]


def test_multus_network_defaults_to_bridge_binding():
    vm = vs.build_vm(opts(name="a", networks=[{"name": "default"}, {"name": "data", "multus": "ns/nad", "mac_address": "02:00:00:00:00:01"}]))
    t = tspec(vm)
    assert t["networks"][1] == {"name": "data", "multus": {"networkName": "ns/nad"}}
    assert t["domain"]["devices"]["interfaces"][1] == {"name": "data", "bridge": {}, "macAddress": "02:00:00:00:00:01"}


def test_two_pod_networks_are_rejected():
    with pytest.raises(vs.VMSpecError, match="only one pod network"):
        vs.build_vm(opts(name="a", networks=[{"name": "a"}, {"name": "b"}]))


@pytest.mark.parametrize("disk,source", [
    ({"url": "https://example.org/f.qcow2", "size": "5Gi"}, {"http": {"url": "https://example.org/f.qcow2"}}),
    ({"registry": "quay.io/containerdisks/fedora:41", "size": "5Gi"}, {"registry": {"url": "docker://quay.io/containerdisks/fedora:41"}}),
    ({"clone_from": {"name": "golden", "namespace": None}}, {"pvc": {"name": "golden", "namespace": "ns"}}),
])
def test_data_volume_boot_disks(disk, source):
    vm = vs.build_vm(opts(name="db", namespace="ns", boot_disk=dict(disk, storage_class="fast")))
    dvt = vm["spec"]["dataVolumeTemplates"]
    assert dvt[0]["metadata"] == {"name": "db-rootdisk"}
    assert dvt[0]["spec"]["source"] == source
    assert dvt[0]["spec"]["storage"]["storageClassName"] == "fast"
    assert tspec(vm)["volumes"][0] == {"name": "rootdisk", "dataVolume": {"name": "db-rootdisk"}}


def test_data_volume_boot_disk_needs_a_name():
    with pytest.raises(vs.VMSpecError, match="use name instead of generate_name"):
        vs.build_vm(opts(generate_name="db-", boot_disk={"url": "http://x", "size": "1Gi"}))


def test_user_data_templates_keep_user_entries_first():
    mine = {"metadata": {"name": "db-rootdisk"}, "spec": {"source": {"blank": {}}}}
    vm = vs.build_vm(opts(name="db", boot_disk={"url": "http://x", "size": "1Gi"}, data_volume_templates=[mine]))
    assert vm["spec"]["dataVolumeTemplates"] == [mine]


def test_definition_is_used_as_given_with_name_and_namespace_filled_in():
    definition = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"labels": {"a": "b"}},
                  "spec": {"template": {"spec": {"domain": {"devices": {}}}}}, "status": {"x": 1}}
    vm = vs.build_vm(opts(name="raw", namespace="ns", definition=definition))
    assert vm["metadata"] == {"labels": {"a": "b"}, "name": "raw", "namespace": "ns"}
    assert vm["spec"]["runStrategy"] == "Always"
    assert "status" not in vm


def test_definition_name_conflict_names_both():
    with pytest.raises(vs.VMSpecError, match="name and definition disagree"):
        vs.build_vm(opts(name="a", definition={"metadata": {"name": "b"}, "spec": {"template": {}}}))


def test_merge_item_overrides_and_merges_labels():
    defaults = opts(namespace="ns", labels={"app": "web", "tier": "1"}, memory="1Gi", cpu={"cores": 1})
    item = {"name": "w1", "labels": {"tier": "2"}, "cpu": {"cores": 4}}
    merged = vs.merge_item(defaults, item)
    assert merged["name"] == "w1" and merged["namespace"] == "ns" and merged["memory"] == "1Gi"
    assert merged["labels"] == {"app": "web", "tier": "2"}
    assert merged["cpu"] == {"cores": 4}


@pytest.mark.parametrize("given,state,msg", [
    ({"run_strategy": "Always"}, "stopped", "state=stopped contradicts run_strategy=Always"),
    ({"running": True}, "stopped", "state=stopped contradicts running=true"),
    ({"run_strategy": "Halted"}, "started", "state=started contradicts run_strategy=Halted"),
])
def test_state_contradictions(given, state, msg):
    with pytest.raises(vs.VMSpecError, match=msg):
        vs.check_state(opts(**given), state)


def test_state_without_contradiction_passes():
    vs.check_state(opts(run_strategy="Manual"), "stopped")
    vs.check_state(opts(), "started")


def test_argument_spec_has_no_defaults_so_unset_means_none():
    def walk(spec):
        for opt in spec.values():
            assert "default" not in opt
            walk(opt.get("options") or {})
    walk(vs.vm_option_spec(for_item=True))
    assert ["running", "run_strategy"] in vs.vm_option_rules()


# --- the per-VM option table (_vm_options) and what is derived from it -------------------------------------------

def _defines_reference(o):
    """VMTask._defines in _vm_apply.py as it was written by hand before defines() existed."""
    return bool(o.get("definition") or o.get("spec") or o.get("instancetype") or o.get("preference")
                or o.get("data_volume_templates") or o.get("labels") or o.get("annotations")
                or o.get("running") is not None or o.get("run_strategy") or vs.uses_convenience(o))


# Values that tell the three tests apart: falsy, empty containers, false, zero, empty string, a value.
PROBES = (None, False, 0, "", [], {}, [{}], {"a": "b"}, "x", True)


@pytest.mark.parametrize("option", vs.PER_VM_OPTIONS)
@pytest.mark.parametrize("value", PROBES, ids=repr)
def test_defines_has_the_truth_table_of_vm_apply(option, value):
    assert vs.defines(opts(**{option: value})) is _defines_reference(opts(**{option: value}))
    assert vs.defines({option: value}) is _defines_reference({option: value})  # missing keys are not given


@pytest.mark.parametrize("given,expected", [
    ({"name": "a", "namespace": "ns", "state": "started"}, False),  # a bare lifecycle request
    ({"generate_name": "a-"}, False),
    ({"running": False}, True),      # running counts whenever it is given
    ({"run_strategy": ""}, False),
    ({"labels": {}}, False),
    ({"memory": ""}, True),          # convenience options count unless None, [] or {}
    ({"networks": []}, False),
    ({"cpu": {"cores": None}}, True),
    ({"definition": {"spec": {}}}, True),
])
def test_defines_examples(given, expected):
    assert vs.defines(opts(**given)) is expected


def test_derived_lists_come_from_the_table():
    names = tuple(o.name for o in vs.VM_OPTIONS)
    assert vs.PER_VM_OPTIONS == names
    assert len(set(names)) == len(names)
    assert list(vs.vm_option_spec(for_item=True)) == [n for n in names if n != "state"] + ["state"]
    assert list(vs.vm_option_spec()) == [o.name for o in vs.VM_OPTIONS if not o.item_only]
    assert set(vs.CONVENIENCE_OPTIONS) <= set(vs.DEFINITION_EXCLUSIVE) <= set(names) - {"name", "namespace", "state", "definition"}
    assert set(vs.MERGED_DICT_OPTIONS) <= set(n for n in names if vs.vm_option_spec(True)[n]["type"] == "dict")
    for option in vs.VM_OPTIONS:
        if option.convenience:
            assert option.defines and option.excludes_definition, option.name


def test_rules_name_options_of_the_spec_and_every_definition_conflict():
    spec = vs.vm_option_spec(for_item=True)
    rules = vs.vm_option_rules()
    for rule in rules:
        assert set(rule) <= set(spec), rule
    assert [r[1] for r in rules if r[0] == "definition"] == list(vs.DEFINITION_EXCLUSIVE)
    assert rules[:2] == [["name", "generate_name"], ["running", "run_strategy"]]
    assert rules[-2:] == [["instancetype", "cpu"], ["instancetype", "memory"]]


def test_vm_option_spec_returns_independent_copies():
    spec = vs.vm_option_spec()
    spec["cpu"]["options"]["cores"]["type"] = "str"
    spec["run_strategy"]["choices"].append("Never")
    assert vs.vm_option_spec()["cpu"]["options"]["cores"]["type"] == "int"
    assert "Never" not in vs.vm_option_spec(for_item=True)["run_strategy"]["choices"]
    assert "Never" not in vs.RUN_STRATEGIES


def test_module_argument_spec_uses_the_table_at_both_levels():
    from ansible_collections.virtfleet.kubevirt.plugins.modules import kubevirt_vm

    spec = kubevirt_vm.argument_spec()
    for name, entry in vs.vm_option_spec().items():
        assert spec[name] == entry, name
    assert spec["vms"]["options"] == vs.vm_option_spec(for_item=True)
    assert spec["vms"]["mutually_exclusive"] == vs.vm_option_rules()
    assert spec["state"] == dict(type="str", default="present", choices=vs.STATES)
