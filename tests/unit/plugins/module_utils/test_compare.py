"""Unit tests for _compare: idempotency with server-added fields, digest, hidden fields, diff."""
import pytest

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _compare as cmp


def vm(**tspec):
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
            "metadata": {"name": "a", "namespace": "ns", "labels": {"app": "a"}},
            "spec": {"runStrategy": "Always", "template": {"spec": dict({"domain": {"devices": {}}}, **tspec)}}}


DESIRED = vm(domain={"cpu": {"cores": 2}, "devices": {
    "interfaces": [{"name": "default", "masquerade": {}}],
    "disks": [{"name": "rootdisk", "disk": {"bus": "virtio"}}]}},
    networks=[{"name": "default", "pod": {}}],
    volumes=[{"name": "rootdisk", "containerDisk": {"image": "img"}}, {"name": "extra", "emptyDisk": {"capacity": "1Gi"}}])


def live_from(desired):
    """What a cluster with kubemacpool and KubeVirt's defaulting webhooks stores for `desired`."""
    live = cmp.hide_fields(desired, [])
    meta = live["metadata"]
    meta.update({"uid": "u1", "resourceVersion": "7", "generation": 1, "creationTimestamp": "2026-01-01T00:00:00Z",
                 "managedFields": [{"manager": "virtfleet.kubevirt", "operation": "Apply"}]})
    meta.setdefault("annotations", {})["kubemacpool.io/transaction-timestamp"] = "2026-01-01T00:00:00.1Z"
    meta["annotations"]["kubevirt.io/latest-observed-api-version"] = "v1"
    t = live["spec"]["template"]["spec"]
    t["architecture"] = "amd64"
    t["domain"]["machine"] = {"type": "q35"}
    t["domain"]["firmware"] = {"uuid": "6a1a24a1-4061-5d5f-9b6a-111111111111", "serial": "abc"}
    t["domain"]["devices"]["interfaces"][0]["macAddress"] = "02:00:00:00:00:01"
    # default disk for the volume that has none
    t["domain"]["devices"]["disks"].append({"name": "extra", "disk": {"bus": "virtio"}})
    live["status"] = {"printableStatus": "Running", "ready": True}
    return live


def test_live_with_webhook_and_controller_fields_satisfies_desired():
    assert cmp.differences(DESIRED, live_from(DESIRED)) == []
    assert cmp.needs_apply(DESIRED, live_from(DESIRED)) == (False, [])


@pytest.mark.parametrize("mutate,path", [
    (lambda v: v["spec"]["template"]["spec"]["domain"]["cpu"].update(cores=4), "spec.template.spec.domain.cpu.cores"),
    (lambda v: v["metadata"]["labels"].update(app="b"), "metadata.labels.app"),
    (lambda v: v["spec"].update(runStrategy="Halted"), "spec.runStrategy"),
    (lambda v: v["spec"]["template"]["spec"]["volumes"].pop(), "spec.template.spec.volumes[extra]"),
    (lambda v: v["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"][0].pop("masquerade"),
     "spec.template.spec.domain.devices.interfaces[default].masquerade"),
    (lambda v: v["spec"]["template"]["spec"]["networks"].__setitem__(0, {"name": "other", "pod": {}}),
     "spec.template.spec.networks[default]"),
])
def test_real_drift_is_detected_with_its_path(mutate, path):
    live = live_from(DESIRED)
    mutate(live)
    assert cmp.differences(DESIRED, live) == [path]


def test_named_list_order_matters():
    live = live_from(DESIRED)
    vols = live["spec"]["template"]["spec"]["volumes"]
    vols.reverse()
    assert cmp.differences(DESIRED, live) == ["spec.template.spec.volumes[extra]"]


def test_unnamed_lists_compare_by_length_and_position():
    assert cmp.differences({"a": [1, 2]}, {"a": [1, 2, 3]}) == ["a"]
    assert cmp.differences({"a": [{"k": 1}]}, {"a": [{"k": 1, "x": 2}]}) == []
    assert cmp.differences({"a": [{"k": 1}]}, {"a": [{"k": 2}]}) == ["a[0].k"]


def test_numbers_compare_by_value_but_not_bool():
    assert cmp.differences({"a": 2}, {"a": 2.0}) == []
    assert cmp.differences({"a": 1}, {"a": True}) == ["a"]


def test_empty_desired_dict_is_not_satisfied_by_missing_key():
    assert cmp.differences({"devices": {}}, {}) == ["devices"]
    assert cmp.differences({"devices": None}, {}) == []


def test_digest_detects_a_dropped_field_that_live_still_satisfies():
    before = cmp.with_digest(DESIRED, cmp.digest(DESIRED))
    live = live_from(before)
    dropped = cmp.hide_fields(DESIRED, ["spec.template.spec.domain.cpu"])
    assert cmp.differences(dropped, live) == []       # live still has more than the user wants ...
    want = cmp.with_digest(dropped, cmp.digest(dropped))
    assert cmp.needs_apply(want, live)[0] is True      # ... but the digest tells the option was dropped
    same = cmp.with_digest(DESIRED, cmp.digest(DESIRED))
    assert cmp.needs_apply(same, live) == (False, [])


def test_digest_ignores_its_own_annotation_and_key_order():
    a = {"metadata": {"name": "x", "annotations": {cmp.DIGEST_ANNOTATION: "old"}}, "spec": {"b": 1, "a": 2}}
    b = {"spec": {"a": 2, "b": 1}, "metadata": {"name": "x"}}
    assert cmp.digest(a) == cmp.digest(b)


@pytest.mark.parametrize("text,parts", [
    ("metadata.managedFields", ["metadata", "managedFields"]),
    ("metadata.annotations[kubemacpool.io/transaction-timestamp]", ["metadata", "annotations", "kubemacpool.io/transaction-timestamp"]),
    ("spec.template.spec.domain.devices.interfaces[0].macAddress",
     ["spec", "template", "spec", "domain", "devices", "interfaces", 0, "macAddress"]),
])
def test_parse_field_path(text, parts):
    assert cmp.parse_field_path(text) == parts


def test_parse_field_path_rejects_unclosed_bracket():
    with pytest.raises(cmp.HiddenFieldError, match="unclosed"):
        cmp.parse_field_path("metadata.annotations[x")


def test_hide_fields_default_and_list_index_without_touching_input():
    live = live_from(DESIRED)
    extra = ["spec.template.spec.domain.devices.interfaces[0].macAddress", "does.not.exist"]
    hidden = cmp.hide_fields(live, cmp.DEFAULT_HIDDEN_FIELDS + extra)
    assert "managedFields" not in hidden["metadata"]
    assert "kubemacpool.io/transaction-timestamp" not in hidden["metadata"]["annotations"]
    assert "macAddress" not in hidden["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"][0]
    assert "managedFields" in live["metadata"]


def test_hidden_fields_are_ignored_when_comparing():
    want = cmp.with_digest(DESIRED, "d")
    want["metadata"]["annotations"]["note"] = "mine"
    live = live_from(cmp.with_digest(DESIRED, "d"))
    assert cmp.needs_apply(want, live)[0] is True
    assert cmp.needs_apply(want, live, ["metadata.annotations[note]"]) == (False, [])


def test_diff_hides_fields_and_handles_absent_objects():
    live = live_from(DESIRED)
    d = cmp.diff(None, live, cmp.DEFAULT_HIDDEN_FIELDS)
    assert d["before"] == {} and "managedFields" not in d["after"]["metadata"]
    assert cmp.diff(live, None)["after"] == {}


def test_template_changed_and_conditions():
    live = live_from(DESIRED)
    other = cmp.hide_fields(live, ["spec.template.spec.domain.cpu"])
    assert cmp.template_changed(live, other) and not cmp.template_changed(live, live)
    obj = {"status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "RestartRequired", "status": "False"}]}}
    assert cmp.is_true(obj, "Ready") and not cmp.is_true(obj, "RestartRequired") and not cmp.is_true(obj, "Paused")


@pytest.mark.parametrize("desired,live,omitted_zero,expected", [
    ({"globalDefault": False, "value": 1}, {"value": 1}, True, []),      # the server dropped the zero value
    ({"globalDefault": False, "value": 1}, {"value": 1}, False, ["globalDefault"]),
    ({"globalDefault": True}, {}, True, ["globalDefault"]),                # not a zero value: must be stored
    ({"spec": {"replicas": 0}}, {"spec": {"replicas": 3}}, True, ["spec.replicas"]),  # present and different
    ({"spec": {"paused": "", "n": 0}}, {"spec": {}}, True, []),
])
def test_omitted_zero_values_of_builtin_kinds(desired, live, omitted_zero, expected):
    assert cmp.differences(desired, live, omitted_zero=omitted_zero) == expected


def test_builtin_kinds():
    from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _kinds
    assert [k.builtin for k in (_kinds.NAMESPACE, _kinds.DEPLOYMENT, _kinds.PRIORITYCLASS, _kinds.CLUSTERROLE,
                                _kinds.CRD, _kinds.VM, _kinds.CDI)] == [True, True, True, True, True, False, False]
