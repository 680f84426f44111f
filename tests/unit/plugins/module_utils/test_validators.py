"""The input validators (_args, _vm_spec.check_task, _install_preflight.check_params, inventory options)."""
import pytest
from ansible.errors import AnsibleError

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _args, _install_preflight
from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _vm_spec as vs
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._args import InvalidOption
from ansible_collections.virtfleet.kubevirt.plugins.plugin_utils import _inventory_options as io


@pytest.mark.parametrize("value", ["2Gi", "512Mi", "1.5G", "1e3", "100m", "0.5Gi", "+1Gi"])
def test_quantities_accepted(value):
    assert _args.check_quantity(value, "memory") == value


@pytest.mark.parametrize("value, hint", [
    ("2 GB", "such as 2Gi"), ("2gb", "such as 2Gi"), ("512 MiB", "such as 512Mi"), ("two", "such as 2Gi"),
    ("2 Gi", "such as 2Gi"), ("", "such as 2Gi"),
])
def test_quantities_rejected_with_the_spelling_meant(value, hint):
    with pytest.raises(InvalidOption, match="memory") as err:
        _args.check_quantity(value, "memory")
    assert hint in str(err.value)


@pytest.mark.parametrize("value", ["0", "-1Gi", "0.0Mi"])
def test_quantities_must_be_positive(value):
    with pytest.raises(InvalidOption, match="more than zero"):
        _args.check_quantity(value, "memory")


@pytest.mark.parametrize("value", ["web", "web-1", "a", "a" * 63, "my.vm"])
def test_names_accepted(value):
    _args.check_dns_subdomain(value, "name")


@pytest.mark.parametrize("value, suggestion", [("My_VM", "my-vm"), ("-web-", "web"), ("web server", "web-server"),
                                               ("a" * 254, "a" * 63)])
def test_names_rejected_with_a_suggestion(value, suggestion):
    with pytest.raises(InvalidOption, match='such as "%s"' % suggestion):
        _args.check_dns_subdomain(value, "name")


def test_namespace_is_a_label():
    _args.check_dns_label("team-a", "namespace")
    for bad in ("team.a", "a" * 64, "Team"):
        with pytest.raises(InvalidOption, match="namespace"):
            _args.check_dns_label(bad, "namespace")


@pytest.mark.parametrize("value, allow_scheme", [
    ("quay.io/containerdisks/fedora:41", False), ("fedora", False), ("localhost:5000/x/y:1.0", False),
    ("Registry.Example.com/x/y@sha256:" + "a" * 64, False), ("docker://quay.io/x/y:1", True),
])
def test_images_accepted(value, allow_scheme):
    _args.check_image(value, "boot_disk.container_image", allow_scheme=allow_scheme)


@pytest.mark.parametrize("value, words", [
    ("quay.io/containerdisks/fedora latest", "white space"), ("quay.io/Fedora:41", "lower case"),
    ("docker://quay.io/x/y:1", "not an image reference"), ("quay.io/x:", "not an image reference"),
])
def test_images_rejected(value, words):
    with pytest.raises(InvalidOption, match=words):
        _args.check_image(value, "boot_disk.container_image")


def test_image_scheme_must_be_docker():
    with pytest.raises(InvalidOption, match="use docker://"):
        _args.check_image("http://x/y", "boot_disk.registry", allow_scheme=True)


@pytest.mark.parametrize("selector", ["app=web", "app==web,tier!=db", "tier in (a, b),!legacy,env", "example.com/app=x",
                                      "app notin (a)", "app="])
def test_label_selectors_accepted(selector):
    _args.check_label_selector(selector, "label_selectors")


@pytest.mark.parametrize("selector, words", [
    ("app in (web", "unbalanced"), ("=web", "not a label selector"), ("!app=web", "bare key"),
    ("app notin ()", "at least one value"), ("app in (web server)", "label value"), ("my app=x", "not a label selector"),
    ("app=web,,tier=db", "not a label selector"),
])
def test_label_selectors_rejected(selector, words):
    with pytest.raises(InvalidOption, match=words):
        _args.check_label_selector(selector, "label_selectors")


def test_field_selectors():
    _args.check_field_selector("status.phase=Running,metadata.name!=x", "field_selectors")
    with pytest.raises(InvalidOption, match="such as status.phase=Running"):
        _args.check_field_selector("status.phase", "field_selectors")


def test_labels():
    _args.check_labels({"app": "web", "example.com/tier": "a", "flag": True, "n": 3, "empty": ""})
    with pytest.raises(InvalidOption, match="flatten"):
        _args.check_labels({"app": {"x": 1}})
    with pytest.raises(InvalidOption, match="label key"):
        _args.check_labels({"bad key": "x"})
    with pytest.raises(InvalidOption, match="label value"):
        _args.check_labels({"app": "x" * 64})


def test_insecure_detects_a_client_without_verification():
    class Conf(object):
        def __init__(self, verify, host):
            self.verify_ssl, self.host = verify, host

    class Client(object):
        def __init__(self, verify, host="https://k:6443"):
            self.configuration = Conf(verify, host)

    assert _args.insecure(Client(False)) and not _args.insecure(Client(True))
    assert not _args.insecure(Client(False, "http://k:8080")) and not _args.insecure(object())


# --- kubevirt_vm ---------------------------------------------------------------------------------------------

def vm_params(**kw):
    params = dict((k, None) for k in vs.PER_VM_OPTIONS)
    params.update(api_version="kubevirt.io/v1", state="present", wait_timeout=120, wait_sleep=5, vms=None,
                  name="web", namespace="ns")
    params.update(kw)
    return params


def test_check_task_accepts_a_good_vm():
    vs.check_task(vm_params(memory="2Gi", boot_disk={"container_image": "quay.io/x/y:1"}, labels={"app": "web"},
                            cpu={"cores": 2}, cloud_init={"user": "fedora", "password": "x"}))


@pytest.mark.parametrize("kw, words", [
    (dict(memory="2 GB"), "memory"),
    (dict(name="Web_1"), "name"),
    (dict(definition={"kind": "Pod", "spec": {"template": {}}}), "definition has kind Pod"),
    (dict(name=None, definition={"kind": "VirtualMachine", "metadata": {"name": "x"}, "spec": {}}), "template"),
    (dict(spec={"kind": "VirtualMachine"}), "whole manifest"),
    (dict(spec={"template": {}}), "move its template.spec up"),
    (dict(networks=[{"name": "a"}, {"name": "b"}]), "only one pod network"),
    (dict(cloud_init={"user": None}), "cloud_init"),
    (dict(cpu={"cores": 0}), "cpu.cores"),
    (dict(tolerations=[{"operator": "Maybe"}]), "tolerations\\[0\\].operator"),
    (dict(instancetype={"kind": "VirtualMachineInstancetype"}), "instancetype"),
    (dict(boot_disk={"url": "ftp://x/y", "size": "1Gi"}), "boot_disk.url"),
    (dict(wait_timeout=-1), "wait_timeout"),
    (dict(api_version="v1"), "api_version"),
])
def test_check_task_rejects(kw, words):
    with pytest.raises(InvalidOption, match=words):
        vs.check_task(vm_params(**kw))


def test_instancetype_kind_is_matched_like_kubevirt_does():
    for kind in ("VirtualMachineClusterInstancetype", "virtualmachineclusterinstancetypes", "virtualmachineinstancetype"):
        vs.check_task(vm_params(instancetype={"name": "u1.small", "kind": kind}))
    with pytest.raises(InvalidOption, match="instancetype.kind"):
        vs.check_task(vm_params(instancetype={"name": "u1.small", "kind": "VirtualMachinePreference"}))


def test_check_task_names_the_vms_item():
    params = vm_params(name=None, memory="1Gi", vms=[{"name": "a"}, {"name": "b", "memory": "1 GB"}])
    with pytest.raises(InvalidOption, match=r"^vms\[1\] \(b\): memory"):
        vs.check_task(params)


def test_check_task_skips_the_trial_build_for_absent():
    vs.check_task(vm_params(state="absent", cloud_init={"user": None}))


# --- kubevirt_install ----------------------------------------------------------------------------------------

def install_params(**kw):
    params = dict(state="present", name="kubevirt", namespace="kubevirt", version=None, manifest_url=None,
                  manifest_path=None, emulation="auto", wait_timeout=600, cdi=None)
    params.update(kw)
    return params


@pytest.mark.parametrize("kw, words", [
    (dict(version="latest"), "version"),
    (dict(emulation="maybe"), "emulation"),
    (dict(feature_gates=["A"], disabled_feature_gates=["A"]), "only be in one"),
    (dict(manifest_path="/nonexistent.yaml"), "manifest_path"),
    (dict(manifest_url="github.com/x.yaml"), "manifest_url"),
    (dict(image_registry="a b"), "image_registry"),
    (dict(image_pull_secrets=["A B"]), "image_pull_secrets"),
    (dict(infra_replicas=0), "infra_replicas"),
    (dict(spec={"kind": "KubeVirt"}), "whole KubeVirt resource"),
    (dict(supported_kubernetes={"min": "1.34"}), "both min and max"),
    (dict(cdi={"version": "x"}), "cdi.version"),
    (dict(cdi={"manifest_path": "/nonexistent.yaml"}), "cdi.manifest_path"),
    (dict(cdi={"spec": {"apiVersion": "cdi.kubevirt.io/v1beta1"}}), "cdi.spec"),
    (dict(wait_timeout=-2), "wait_timeout"),
])
def test_install_check_params_rejects(kw, words):
    with pytest.raises(InvalidOption, match=words):
        _install_preflight.check_params(install_params(**kw))


def test_install_check_params_accepts():
    _install_preflight.check_params(install_params(version="v1.9.0", image_registry="registry.local:5000/kubevirt",
                                                   image_pull_secrets=["pull"], cdi={"version": "v1.66.0"}))


# --- inventory -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("options, words", [
    ({"label_selector": "app in (x"}, "label_selector"),
    ({"field_selector": "status.phase"}, "field_selector"),
    ({"namespaces": ["A_B"]}, "namespaces"),
])
def test_inventory_selectors_and_namespaces(options, words):
    with pytest.raises(AnsibleError, match=words):
        io.build_connections(options)


def test_inventory_unknown_option_suggests_the_near_one():
    with pytest.raises(AnsibleError, match="did you mean namespaces"):
        io.check_unknown_options({"plugin": "x", "namespace": ["a"]}, {"plugin": 1, "namespaces": 1}, "/x/kubevirt.yml")
    io.check_unknown_options({"plugin": "x"}, {"plugin": 1}, "/x/kubevirt.yml")


# --- secrets -------------------------------------------------------------------------------------------------

def test_connection_secrets_from_a_kubeconfig_dict_and_a_proxy_url():
    kubeconfig = {"users": [{"name": "u", "user": {
        "token": "tok-1", "client-key-data": "a2V5", "client-certificate-data": "Y2VydA==",
        "auth-provider": {"config": {"id-token": "idt", "refresh-token": "rt", "client-secret": "cs", "idp-issuer-url": "u"}},
        "exec": {"command": "x", "env": [{"name": "SECRET", "value": "ev"}], "args": ["--value", "arg"]}}}],
        "clusters": [{"cluster": {"server": "https://k", "token": "not-a-user-field"}}]}
    assert _args.connection_secrets({"kubeconfig": kubeconfig, "proxy": "http://me:pw-9@proxy:3128"}) == {
        "tok-1", "a2V5", "idt", "rt", "cs", "ev", "pw-9"}
    assert _args.connection_secrets({"kubeconfig": "/path/kubeconfig", "proxy": "http://proxy:3128"}) == set()


def test_sensitive_values_finds_user_data_in_spec_definition_and_items():
    ci = {"cloudInitNoCloud": {"userData": "ud-1", "networkData": "nd"}}
    params = {"spec": {"volumes": [dict(name="c", **ci)]},
              "vms": [{"definition": {"spec": {"template": {"spec": {"volumes": [
                  {"cloudInitConfigDrive": {"userDataBase64": "b64"}}]}}}}}, {"name": "plain"}]}
    assert vs.sensitive_values(params) == {"ud-1", "b64"}


def test_redact_user_data_keeps_a_digest_and_the_rest():
    obj = {"diff": {"before": {"volumes": [{"cloudInitNoCloud": {"userData": "old", "networkData": "nd"}}]},
                    "after": {"volumes": [{"cloudInitNoCloud": {"userData": "new"}}]}}, "other": "userData"}
    out = vs.redact_user_data(obj)
    before = out["diff"]["before"]["volumes"][0]["cloudInitNoCloud"]
    after = out["diff"]["after"]["volumes"][0]["cloudInitNoCloud"]
    assert before["userData"].startswith("<hidden: cloud-init user data, sha256:") and before["networkData"] == "nd"
    assert before["userData"] != after["userData"] and "old" not in str(out) and "new" not in str(out)
    assert obj["diff"]["before"]["volumes"][0]["cloudInitNoCloud"]["userData"] == "old"  # a copy


def test_module_masks_kubeconfig_secrets_even_in_ansible_cores_own_errors(capsys):
    from ansible_collections.virtfleet.kubevirt.plugins.modules import kubevirt_vm

    from ..modules.module_args import patch_module_args

    args = {"name": "a", "namespace": "x", "colour": "red",
            "kubeconfig": {"users": [{"name": "u", "user": {"token": "tok-planted-1"}}]},
            "spec": {"volumes": [{"name": "c", "cloudInitNoCloud": {"userData": "ud-planted-2"}}]}}
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            kubevirt_vm.main()
    out = capsys.readouterr().out
    assert "colour" in out and "tok-planted-1" not in out and "ud-planted-2" not in out
