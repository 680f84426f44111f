"""The bad-input catalogue: every module and the inventory plugin, fed input a user gets wrong.

Each case must fail with one sentence that names the option and says how to fix it, with no traceback, and
without a single HTTP request reaching the API server. Every case runs with its own token, so the emulator's
request log tells the cases apart even though all module cases share one ansible-playbook run and all
inventory cases one ansible-inventory run (which is what keeps the catalogue to seconds).
"""
import json
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from tests import summary

from .conftest import clean_env, unique_namespace

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "install"
KUBEVIRT_MANIFEST = str(FIXTURES / "kubevirt-v1.9.0" / "kubevirt-operator.yaml")
CDI_MANIFEST = str(FIXTURES / "cdi-v1.66.0" / "cdi-operator.yaml")
NS = "bad-input"  # never created: no case may get as far as looking for it

VM = "virtfleet.kubevirt.kubevirt_vm"
VM_INFO = "virtfleet.kubevirt.kubevirt_vm_info"
VMI_INFO = "virtfleet.kubevirt.kubevirt_vmi_info"
INSTALL = "virtfleet.kubevirt.kubevirt_install"
KVM = "virtfleet.kubevirt.kvm_host_info"

# Hints, as regular expressions (case-insensitive): ansible-core words its own checks differently in 2.16 and 2.19.
UNKNOWN = r"unsupported parameters|supported parameters include"
EXCLUSIVE = r"mutually exclusive"
TYPE = r"(is of type|unable to convert|could not parse|cannot be converted|invalid value|not a valid|must be)"
CHOICE = r"must be one of|one of:"


def vm(**kw):
    args = {"name": "ok-vm", "namespace": NS}
    args.update(kw)
    return dict((k, v) for k, v in args.items() if v is not None)


def inst(**kw):
    args = {"manifest_path": KUBEVIRT_MANIFEST, "wait": False}
    args.update(kw)
    return dict((k, v) for k, v in args.items() if v is not None)


# (id, module, args, words that must all be in msg, fix hint regex, own): `own` marks messages written by the
# collection (held to one sentence); the others come from ansible-core's argument validation.
MODULE_CASES = [
    # --- kubevirt_vm: top level
    ("vm-unknown-option", VM, vm(colour="red"), ["colour"], UNKNOWN, False),
    ("vm-wait-timeout-type", VM, vm(wait_timeout="soon"), ["wait_timeout"], r"int", False),
    ("vm-running-type", VM, vm(running="perhaps"), ["running"], r"bool", False),
    ("vm-create-namespace-type", VM, vm(create_namespace="if needed"), ["create_namespace"], r"bool", False),
    ("vm-cpu-cores-type", VM, vm(cpu={"cores": "many"}), ["cores"], r"int", False),
    ("vm-spec-type", VM, vm(spec="domain: {}x"), ["spec"], r"dict", False),
    ("vm-name-and-generate-name", VM, vm(generate_name="web-"), ["name", "generate_name"], EXCLUSIVE, False),
    ("vm-running-and-run-strategy", VM, vm(running=True, run_strategy="Always"), ["running", "run_strategy"], EXCLUSIVE, False),
    ("vm-definition-and-spec", VM, vm(name=None, definition={"kind": "VirtualMachine"}, spec={"domain": {}}),
     ["definition", "spec"], EXCLUSIVE, False),
    ("vm-vms-and-name", VM, vm(vms=[{"name": "a"}]), ["vms", "name"], EXCLUSIVE, False),
    ("vm-run-strategy-choice", VM, vm(run_strategy="Sometimes"), ["run_strategy"], CHOICE, False),
    ("vm-state-choice", VM, vm(state="running"), ["state"], CHOICE, False),
    ("vm-name-not-dns1123", VM, vm(name="My_VM"), ["name", "My_VM"], r"lowercase.*such as \"my-vm\"", True),
    ("vm-name-too-long", VM, vm(name="a" * 254), ["name"], r"lowercase letters", True),
    ("vm-generate-name-bad", VM, vm(name=None, generate_name="Web Server-"), ["generate_name"], r"prefix.*such as", True),
    ("vm-namespace-not-dns1123", VM, vm(namespace="Prod NS"), ["namespace", "Prod NS"], r"such as \"prod-ns\"", True),
    ("vm-namespace-missing", VM, vm(namespace=None), ["namespace"], r"required.*give it", True),
    ("vm-memory-with-space", VM, vm(memory="2 GB"), ["memory", "2 GB"], r"without a space, such as 2Gi", True),
    ("vm-memory-words", VM, vm(memory="two gigs"), ["memory"], r"such as 2Gi", True),
    ("vm-memory-zero", VM, vm(memory="0"), ["memory"], r"more than zero", True),
    ("vm-image-with-space", VM, vm(boot_disk={"container_image": "quay.io/containerdisks/fedora latest"}),
     ["boot_disk.container_image"], r"white space.*such as", True),
    ("vm-image-upper-case", VM, vm(boot_disk={"container_image": "quay.io/ContainerDisks/Fedora:41"}),
     ["boot_disk.container_image"], r"lower case", True),
    ("vm-disk-size-with-space", VM, vm(boot_disk={"url": "https://example.com/d.qcow2", "size": "10 GB"}),
     ["boot_disk.size"], r"such as 10Gi", True),
    ("vm-disk-url-bad", VM, vm(boot_disk={"url": "example.com/disk.qcow2", "size": "10Gi"}), ["boot_disk.url"], r"https?", True),
    ("vm-disk-two-sources", VM, vm(boot_disk={"container_image": "quay.io/x/y:1", "pvc": "disk"}),
     ["container_image", "pvc"], EXCLUSIVE, False),
    ("vm-disk-url-without-size", VM, vm(boot_disk={"url": "https://example.com/d.qcow2"}), ["size", "url"], r"requir", False),
    ("vm-definition-wrong-kind", VM, vm(name=None, definition={
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": NS}, "spec": {"containers": []}}),
     ["definition", "Pod"], r"give a VirtualMachine manifest", True),
    ("vm-definition-wrong-api-version", VM, vm(name=None, definition={
        "apiVersion": "apps/v1", "kind": "VirtualMachine", "metadata": {"name": "x", "namespace": NS},
        "spec": {"template": {"spec": {}}}}), ["definition apiVersion"], r"use kubevirt.io/v1", True),
    ("vm-definition-without-template", VM, vm(name=None, definition={
        "kind": "VirtualMachine", "metadata": {"name": "x", "namespace": NS}, "spec": {"runStrategy": "Always"}}),
     ["definition"], r"template", True),
    ("vm-spec-is-whole-manifest", VM, vm(spec={"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "spec": {}}),
     ["spec", "definition"], r"give a whole VirtualMachine as definition", True),
    ("vm-spec-is-vm-spec", VM, vm(spec={"runStrategy": "Always", "template": {"spec": {}}}), ["spec"], r"move", True),
    ("vm-label-value-with-space", VM, vm(labels={"app": "web server"}), ["labels", "web server"], r"such as web-server", True),
    ("vm-label-value-dict", VM, vm(labels={"app": {"tier": "web"}}), ["labels", "app"], r"flatten", True),
    ("vm-label-key-bad", VM, vm(labels={"my app": "web"}), ["labels", "my app"], r"such as app", True),
    ("vm-node-selector-dict", VM, vm(node_selector={"zone": {"a": 1}}), ["node_selector"], r"must be a string", True),
    ("vm-stopped-but-always", VM, vm(state="stopped", run_strategy="Always"), ["run_strategy"], r"drop .* or use", True),
    ("vm-generate-name-absent", VM, vm(name=None, generate_name="web-", state="absent"), ["generate_name"], r"give name", True),
    ("vm-wait-timeout-negative", VM, vm(wait_timeout=-5), ["wait_timeout"], r"0 or more", True),
    ("vm-wait-sleep-negative", VM, vm(wait_sleep=-1), ["wait_sleep"], r"0 or more", True),
    ("vm-grace-period-negative", VM, vm(grace_period_seconds=-1, state="absent"), ["grace_period_seconds"], r"0 or more", True),
    ("vm-cpu-cores-zero", VM, vm(cpu={"cores": 0}), ["cpu.cores"], r"1 or more", True),
    ("vm-two-pod-networks", VM, vm(networks=[{"name": "a"}, {"name": "b"}]), ["networks"], r"give multus", True),
    ("vm-mac-bad", VM, vm(networks=[{"name": "default", "mac_address": "02:00:00:zz"}]), ["mac_address"], r"such as", True),
    ("vm-cloud-init-empty", VM, vm(cloud_init={"user": None}), ["cloud_init"], r"give at least one", True),
    ("vm-cloud-init-conflict", VM, vm(cloud_init={"user_data": "#cloud-config", "password": "not-shown-4711"}),
     ["user_data", "password"], EXCLUSIVE, False),
    ("vm-instancetype-without-name", VM, vm(instancetype={"kind": "VirtualMachineClusterInstancetype"}),
     ["instancetype"], r"with a name", True),
    ("vm-instancetype-and-memory", VM, vm(instancetype={"name": "u1.small"}, memory="1Gi"), ["instancetype", "memory"],
     EXCLUSIVE, False),
    ("vm-toleration-effect", VM, vm(tolerations=[{"key": "gpu", "effect": "Sometimes"}]), ["tolerations[0].effect"],
     r"must be one of", True),
    ("vm-dvt-without-name", VM, vm(data_volume_templates=[{"spec": {}}]), ["data_volume_templates[0]", "metadata.name"],
     r"name the DataVolume", True),
    ("vm-hidden-field-bad", VM, vm(hidden_fields=["metadata.annotations[x"]), ["hidden_fields"], r"unclosed", True),
    ("vm-api-version-bad", VM, vm(api_version="kubevirt/v1"), ["api_version"], r"use kubevirt.io/v1", True),
    ("vm-propagation-choice", VM, vm(state="absent", delete_options={"propagationPolicy": "Later"}),
     ["propagationPolicy"], CHOICE, False),
    ("vm-kubeconfig-missing", VM, vm(kubeconfig="/nonexistent/kubeconfig"), ["kubeconfig"], r"existing file", True),
    ("vm-validate-certs-type", VM, vm(validate_certs="sometimes"), ["validate_certs"], r"bool", False),
    # --- kubevirt_vm: the `vms` list form
    # ansible-core's own message for a list element that is not a dictionary does not name the option.
    ("vms-not-a-list-of-dicts", VM, {"namespace": NS, "vms": ["vm1"]}, [], r"dictionary requested", False),
    ("vms-item-unknown-option", VM, {"namespace": NS, "vms": [{"name": "a", "colour": "red"}]}, ["colour"], UNKNOWN, False),
    ("vms-item-wrong-type", VM, {"namespace": NS, "vms": [{"name": "a", "cpu": {"cores": "many"}}]}, ["cores"], r"int", False),
    ("vms-item-conflict", VM, {"namespace": NS, "vms": [{"name": "a", "running": True, "run_strategy": "Halted"}]},
     ["running", "run_strategy"], EXCLUSIVE, False),
    ("vms-item-name-bad", VM, {"namespace": NS, "vms": [{"name": "ok-a"}, {"name": "Bad_Name"}]},
     ["vms[1]", "name", "Bad_Name"], r"such as \"bad-name\"", True),
    ("vms-item-namespace-missing", VM, {"vms": [{"name": "a"}]}, ["vms[0]", "namespace"], r"give it", True),
    ("vms-item-memory-with-space", VM, {"namespace": NS, "vms": [{"name": "a", "memory": "512 MiB"}]},
     ["vms[0]", "memory"], r"such as 512Mi", True),
    ("vms-item-image-with-space", VM, {"namespace": NS, "vms": [{"name": "a", "boot_disk": {"container_image": "a b"}}]},
     ["vms[0]", "boot_disk.container_image"], r"without spaces", True),
    ("vms-shared-memory-bad", VM, {"namespace": NS, "memory": "2 GB", "vms": [{"name": "a"}]}, ["vms[0]", "memory"],
     r"such as 2Gi", True),
    ("vms-item-definition-wrong-kind", VM, {"namespace": NS, "vms": [{"definition": {
        "kind": "Service", "metadata": {"name": "s"}, "spec": {}}}]}, ["vms[0]", "definition", "Service"],
     r"give a VirtualMachine manifest", True),
    ("vms-declared-twice", VM, {"namespace": NS, "vms": [{"name": "a"}, {"name": "a"}]}, ["vms[1]", "a"], r"give each VM once", True),
    ("vms-item-state-choice", VM, {"namespace": NS, "vms": [{"name": "a", "state": "up"}]}, ["state"], CHOICE, False),
    # create_namespace is a task option, not a per-VM one.
    ("vms-item-create-namespace", VM, {"namespace": NS, "vms": [{"name": "a", "create_namespace": True}]},
     ["create_namespace"], UNKNOWN, False),
    # --- kubevirt_vm_info
    ("vm-info-unknown-option", VM_INFO, {"namespace": NS, "labels": ["app=web"]}, ["labels"], UNKNOWN, False),
    ("vm-info-name-bad", VM_INFO, {"namespace": NS, "name": "Web 1"}, ["name", "Web 1"], r"such as \"web-1\"", True),
    ("vm-info-namespace-bad", VM_INFO, {"namespace": "NS_1"}, ["namespace"], r"such as \"ns-1\"", True),
    ("vm-info-selector-unbalanced", VM_INFO, {"namespace": NS, "label_selectors": ["app in (web"]},
     ["label_selectors", "app in (web"], r"parentheses.*write requirements like", True),
    ("vm-info-selector-bad", VM_INFO, {"namespace": NS, "label_selectors": ["=web"]}, ["label_selectors"],
     r"write requirements like", True),
    ("vm-info-selector-value-space", VM_INFO, {"namespace": NS, "label_selectors": ["app in (web server)"]},
     ["label_selectors"], r"label value", True),
    ("vm-info-selector-type", VM_INFO, {"namespace": NS, "label_selectors": {"app": "web"}}, ["label_selectors"], r"list", False),
    ("vm-info-field-selector-bad", VM_INFO, {"namespace": NS, "field_selectors": ["status.phase"]}, ["field_selectors"],
     r"such as status.phase=Running", True),
    ("vm-info-wait-timeout-negative", VM_INFO, {"namespace": NS, "wait": True, "wait_timeout": -1}, ["wait_timeout"],
     r"0 or more", True),
    ("vm-info-wait-timeout-type", VM_INFO, {"namespace": NS, "wait": True, "wait_timeout": "5m"}, ["wait_timeout"], r"int", False),
    ("vm-info-running-without-wait", VM_INFO, {"namespace": NS, "running": True}, ["running", "wait"], r"requir", False),
    ("vm-info-api-version-bad", VM_INFO, {"namespace": NS, "api_version": "v1"}, ["api_version"], r"use kubevirt.io/v1", True),
    # --- kubevirt_vmi_info
    ("vmi-info-unknown-option", VMI_INFO, {"namespace": NS, "phase": "Running"}, ["phase"], UNKNOWN, False),
    ("vmi-info-name-bad", VMI_INFO, {"namespace": NS, "name": "-web-"}, ["name"], r"such as \"web\"", True),
    ("vmi-info-selector-bad", VMI_INFO, {"namespace": NS, "label_selectors": ["!app=web"]}, ["label_selectors"],
     r"only goes before a bare key", True),
    ("vmi-info-field-selector-bad", VMI_INFO, {"namespace": NS, "field_selectors": ["status.phase>Running"]},
     ["field_selectors"], r"field=value", True),
    ("vmi-info-wait-sleep-type", VMI_INFO, {"namespace": NS, "wait_sleep": "often"}, ["wait_sleep"], r"int", False),
    ("vmi-info-wait-timeout-negative", VMI_INFO, {"namespace": NS, "wait": True, "wait_timeout": -30}, ["wait_timeout"],
     r"0 or more", True),
    # --- kubevirt_install
    ("install-unknown-option", INSTALL, inst(versoin="v1.9.0"), ["versoin"], UNKNOWN, False),
    ("install-url-and-path", INSTALL, inst(manifest_url="https://example.com/k.yaml"), ["manifest_url", "manifest_path"],
     EXCLUSIVE, False),
    ("install-cdi-url-and-path", INSTALL, inst(cdi={"manifest_url": "https://example.com/c.yaml", "manifest_path": CDI_MANIFEST}),
     ["manifest_url", "manifest_path"], EXCLUSIVE, False),
    ("install-state-choice", INSTALL, inst(state="installed"), ["state"], CHOICE, False),
    ("install-pull-policy-choice", INSTALL, inst(image_pull_policy="Sometimes"), ["image_pull_policy"], CHOICE, False),
    ("install-wait-timeout-type", INSTALL, inst(wait_timeout="ten"), ["wait_timeout"], r"int", False),
    ("install-wait-timeout-negative", INSTALL, inst(wait_timeout=-1), ["wait_timeout"], r"0 or more", True),
    ("install-version-bad", INSTALL, inst(manifest_path=None, version="latest"), ["version", "latest"], r"such as v1.9.0", True),
    ("install-cdi-version-bad", INSTALL, inst(cdi={"version": "1.66"}), ["cdi.version"], r"such as v1.9.0", True),
    ("install-manifest-missing", INSTALL, inst(manifest_path="/nonexistent/kubevirt-operator.yaml"), ["manifest_path"],
     r"does not exist.*give the path", True),
    ("install-cdi-manifest-missing", INSTALL, inst(cdi={"manifest_path": "/nonexistent/cdi-operator.yaml"}),
     ["cdi.manifest_path"], r"does not exist", True),
    ("install-manifest-wrong-kind", INSTALL, inst(manifest_path="@VM_MANIFEST@"), ["manifest_path", "VirtualMachine"],
     r"point manifest_path or manifest_url at the KubeVirt operator manifest", True),
    ("install-cdi-manifest-wrong-kind", INSTALL, inst(cdi={"manifest_path": KUBEVIRT_MANIFEST}), ["cdi.manifest_path"],
     r"point cdi.manifest_path or cdi.manifest_url at the CDI operator manifest", True),
    ("install-namespace-bad", INSTALL, inst(namespace="KubeVirt System"), ["namespace"], r"such as \"kubevirt-system\"", True),
    ("install-registry-with-space", INSTALL, inst(image_registry="my registry.local"), ["image_registry"],
     r"such as registry.example.com", True),
    ("install-pull-secret-bad", INSTALL, inst(image_pull_secrets=["Pull Secret"]), ["image_pull_secrets", "Pull Secret"],
     r"such as \"pull-secret\"", True),
    ("install-emulation-bad", INSTALL, inst(emulation="maybe"), ["emulation", "maybe"], r"auto, true or false", True),
    ("install-gates-conflict", INSTALL, inst(feature_gates=["Snapshot"], disabled_feature_gates=["Snapshot"]),
     ["feature_gates", "disabled_feature_gates", "Snapshot"], r"only be in one", True),
    ("install-replicas-zero", INSTALL, inst(infra_replicas=0), ["infra_replicas"], r"1 or more", True),
    ("install-spec-is-whole-cr", INSTALL, inst(spec={"apiVersion": "kubevirt.io/v1", "kind": "KubeVirt", "spec": {}}),
     ["spec", "KubeVirt"], r"give only the contents of its spec", True),
    ("install-supported-kubernetes-bad", INSTALL, inst(supported_kubernetes={"min": "one", "max": "1.36"}),
     ["supported_kubernetes.min"], r"write it like 1.34", True),
    ("install-node-selector-bad", INSTALL, inst(workloads_node_placement={"node_selector": {"kvm": "yes please"}}),
     ["workloads_node_placement.node_selector"], r"such as", True),
    # --- kvm_host_info (runs on the node; never talks to the API server)
    ("kvm-unknown-option", KVM, {"require_kvm": True}, ["require_kvm"], UNKNOWN, False),
    ("kvm-bool-type", KVM, {"require_vhost_net": "perhaps"}, ["require_vhost_net"], r"bool", False),
    ("kvm-hugepages-type", KVM, {"require_hugepages": ["2M"]}, ["require_hugepages"], r"dict", False),
    ("kvm-hugepages-size-bad", KVM, {"require_hugepages": {"2 XB": 4}}, ["require_hugepages", "2 XB"], r"use keys like 2M or 1G", True),
    ("kvm-hugepages-count-bad", KVM, {"require_hugepages": {"2M": "many"}}, ["require_hugepages", "2M"], r"whole number", True),
]

# (id, source file content without plugin/kubeconfig, words in the message, fix hint regex, own)
INVENTORY_CASES = [
    ("inv-unknown-option", {"namespace": ["default"]}, ["namespace"], r"did you mean namespaces", True),
    ("inv-unknown-option-far", {"colour": "red"}, ["colour"], r"valid options are", True),
    ("inv-port-type", {"ssh_port": "abc"}, ["ssh_port"], r"int", False),
    ("inv-namespace-bad", {"namespaces": ["Prod NS"]}, ["namespaces", "Prod NS"], r"such as \"prod-ns\"", True),
    ("inv-label-selector-bad", {"label_selector": "app in (web"}, ["label_selector"], r"write requirements like", True),
    ("inv-label-selector-value", {"label_selector": "app=web server"}, ["label_selector"], r"write requirements like", True),
    ("inv-field-selector-bad", {"field_selector": "status.phase"}, ["field_selector"], r"such as status.phase=Running", True),
    ("inv-api-version-bad", {"api_version": "v1"}, ["api_version"], r"kubevirt.io/v1", True),
    ("inv-host-format-bad", {"host_format": "{namespace}-{vm}"}, ["host_format"], r"\{name\}", True),
    # Top-level options with `choices` are checked by ansible-core's config system, which words it its own way.
    ("inv-ip-family-bad", {"prefer_ip_family": "ipv5"}, ["prefer_ip_family", "ipv5"], r"invalid value|must be one of|valid values are", False),
    ("inv-strategy-bad", {"address_strategies": ["teleport"]}, ["address_strategies", "teleport"],
     r"invalid value|must be one of|valid values are", False),
    ("inv-strategy-needs-network", {"address_strategies": ["network"]}, ["address_strategies", "network_name"],
     r"set it to", True),
    ("inv-connections-strategy-bad", {"connections": [{"address_strategies": ["teleport"]}]},
     ["connections[0].address_strategies", "teleport"], r"must list some of", True),
    ("inv-page-size-zero", {"page_size": 0}, ["page_size"], r"positive", True),
    ("inv-winrm-port-range", {"winrm_ports": [70000]}, ["winrm_ports"], r"between 1 and 65535", True),
    ("inv-states-empty", {"states": []}, ["states"], r"at least one state", True),
    ("inv-kubeconfig-missing", {"kubeconfig": "/nonexistent/kubeconfig"}, ["kubeconfig"], r"existing file", True),
    ("inv-connections-not-dicts", {"connections": ["cluster-a"]}, ["connections[0]"], r"dictionary", True),
    ("inv-connections-unknown", {"connections": [{"nmespaces": ["a"]}]}, ["connections[0]", "nmespaces"],
     r"did you mean namespaces", True),
    ("inv-connections-port-type", {"connections": [{"ssh_port": "ssh"}]}, ["connections[0].ssh_port"], r"integer", True),
    ("inv-connections-selector-bad", {"connections": [{"label_selector": "=x"}]}, ["connections[0].label_selector"],
     r"write requirements like", True),
    ("inv-connections-namespace-bad", {"connections": [{"namespaces": ["a_b"]}]}, ["connections[0].namespaces"],
     r"such as \"a-b\"", True),
]


def sentences(msg):
    """Sentence count: a '.', '?' or '!' followed by a space and a capital letter ends one (e.g./i.e. excepted)."""
    return 1 + len(re.findall(r"(?<!e\.g)(?<!i\.e)[.?!]\s+(?=[A-Z])", msg))


def check(case_id, msg, words, hint, own, output=""):
    """Problems with one failure message (empty list when it is what users should see)."""
    problems = []
    if not isinstance(msg, str) or not msg:
        return ["%s: no message (%r)" % (case_id, msg)]
    flat = " ".join(msg.split())
    for word in words:
        if word not in flat:
            problems.append("%s: %r not named in %r" % (case_id, word, flat))
    if not re.search(hint, flat, re.IGNORECASE):
        problems.append("%s: no fix hint /%s/ in %r" % (case_id, hint, flat))
    if "Traceback" in msg or "Traceback" in output:
        problems.append("%s: traceback" % case_id)
    if own and ("\n" in msg.strip() or sentences(flat) != 1):
        problems.append("%s: not one sentence: %r" % (case_id, msg))
    return problems


@pytest.fixture(scope="module")
def tokens(kubeapi):
    """One token (and kubeconfig) per case: the request log attributes each request to its case by user name."""
    ns = unique_namespace(kubeapi, "bad")
    run = uuid.uuid4().hex[:6]
    out = {}
    for case_id in [c[0] for c in MODULE_CASES] + [c[0] for c in INVENTORY_CASES]:
        token = "bad-%s-%s" % (run, case_id)
        kubeapi.add_token(token, namespaces=[ns, NS], cluster_wide_read=True)
        out[case_id] = (token, str(kubeapi.kubeconfig_for(token)))
    return out


def requests_by_case(kubeapi, since, tokens_):
    users = dict((token, case_id) for case_id, (token, _kc) in tokens_.items())
    by_case, strangers = {}, []
    for entry in kubeapi.requests(since=since):
        case_id = users.get(entry.get("user"))
        if case_id:
            by_case.setdefault(case_id, []).append("%s %s" % (entry["method"], entry["path"]))
        elif entry.get("user") in (None, "", "system:anonymous"):
            strangers.append(entry)
    return by_case, strangers


RESULTS = {}


HOSTS = 2  # the cases are spread over this many local "hosts" run side by side (strategy free)


def run_cases(tmp_path, env, cases):
    """Run [(case_id, module, args)]: one looped task per module and host, case i on host i % HOSTS.

    A loop runs its items in one worker process, and pipelining sends each module run over stdin, so
    the ~100 module runs cost a few seconds per ansible-core line instead of minutes of task set-up.
    Returns ({case_id: registered item result}, output).
    """
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("[cases]\n" + "".join(
        "h%d ansible_connection=local ansible_python_interpreter=%s\n" % (h, sys.executable) for h in range(HOSTS)))
    modules = []
    by_host = dict(("h%d" % h, {}) for h in range(HOSTS))
    for i, (case_id, module, args) in enumerate(cases):
        if module not in modules:
            modules.append(module)
        by_host["h%d" % (i % HOSTS)].setdefault(module, []).append({"id": case_id, "args": args})
    tasks = []
    for m, module in enumerate(modules):
        tasks.append({"name": module, module: "{{ item.args }}", "register": "r%d" % m, "ignore_errors": True,
                      "loop": "{{ cases[inventory_hostname][%r] | default([]) }}" % module,
                      "loop_control": {"label": "{{ item.id }}"}})
    out = tmp_path / "results"
    out.mkdir()
    content = "{{ [%s] | to_json }}" % ", ".join("(r%d.results | default([]))" % m for m in range(len(modules)))
    tasks.append({"name": "Save registered results", "ansible.builtin.copy": {
        "content": content, "dest": str(out) + "/{{ inventory_hostname }}.json"}})
    playbook = tmp_path / "cases.yml"
    play = {"hosts": "cases", "gather_facts": False, "strategy": "free", "vars": {"cases": by_host}, "tasks": tasks}
    playbook.write_text(yaml.safe_dump([play], sort_keys=False))
    env = dict(env, ANSIBLE_NOCOLOR="1", ANSIBLE_PIPELINING="1", ANSIBLE_FORKS=str(HOSTS),
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"), ANSIBLE_REMOTE_TEMP=str(tmp_path / "tmp"),
               ANSIBLE_DEPRECATION_WARNINGS="0", ANSIBLE_RETRY_FILES_ENABLED="0")
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory), str(playbook)],
                          env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=600, check=False)
    results = {}
    for h in range(HOSTS):
        path = out / ("h%d.json" % h)
        if path.exists():
            for per_module in json.loads(path.read_text()):
                for item in per_module:
                    results[item["item"]["id"]] = item
    return results, proc.stdout + proc.stderr


def test_modules_reject_bad_input_without_requests(kubeapi, tokens, tmp_path):
    vm_manifest = tmp_path / "not-an-operator.yaml"
    vm_manifest.write_text(yaml.safe_dump({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
                                           "metadata": {"name": "x", "namespace": "default"}, "spec": {}}))
    cases = []
    for case_id, module, args, _words, _hint, _own in MODULE_CASES:
        args = dict(args)
        if args.get("manifest_path") == "@VM_MANIFEST@":
            args["manifest_path"] = str(vm_manifest)
        if module != KVM and "kubeconfig" not in args:
            args["kubeconfig"] = tokens[case_id][1]
        cases.append((case_id, module, args))
    mark = kubeapi.mark()
    # No K8S_AUTH_* and no ~/.kube/config: a case can only reach the server with its own token.
    results, output = run_cases(tmp_path, clean_env(kubeapi, tmp_path / "home"), cases)
    assert results, output[-5000:]
    by_case, strangers = requests_by_case(kubeapi, mark, tokens)
    problems = []
    for i, (case_id, _module, _args, words, hint, own) in enumerate(MODULE_CASES):
        result = results.get(case_id) or {}
        if not result.get("failed"):
            problems.append("%s: did not fail: %r" % (case_id, result))
            continue
        extra = "%s %s %s" % (result.get("exception", ""), result.get("module_stderr", ""), result.get("module_stdout", ""))
        problems += check(case_id, result.get("msg"), words, hint, own, extra)
        if by_case.get(case_id):
            problems.append("%s: sent %s" % (case_id, by_case[case_id]))
    assert "Traceback" not in output
    assert not strangers, strangers
    RESULTS["modules"] = (len(MODULE_CASES), len(MODULE_CASES) - len(set(p.split(":")[0] for p in problems)),
                          sum(len(v) for v in by_case.values()))
    assert not problems, "\n".join(problems)


def split_inventory_errors(stderr):
    """{source path: the warning text ansible-inventory printed for it} (both 2.16 and 2.19 layouts)."""
    out = {}
    # ansible-core 2.16 wraps warnings at 80 columns, also after the hyphens in paths and words: join those back.
    stderr = re.sub(r"-\n\s*", "-", stderr)
    chunks = re.split(r"\[WARNING\]:\s+Unable\s+to\s+parse\s+(\S+)\s+as\s+an\s+inventory\s+source", stderr)
    for i in range(1, len(chunks), 2):
        out[chunks[i]] = chunks[i - 1]
    return out


def inventory_message(chunk):
    """The plugin's own sentence out of ansible-inventory's warning for one source."""
    text = " ".join(chunk.split())
    if "<<< caused by >>>" in text:  # ansible-core 2.19
        text = text.rsplit("<<< caused by >>>", maxsplit=1)[-1]
    else:  # 2.16: " * Failed to parse <path> with <plugin> plugin: <message>"
        text = re.sub(r"^.*?Failed to parse \S+ with \S+ plugin:\s*", "", text)
    return re.split(r"\s*Origin: <", text)[0].strip()


def test_inventory_rejects_bad_input_without_requests(kubeapi, tokens, tmp_path):
    sources = {}
    for case_id, config, _words, _hint, _own in INVENTORY_CASES:
        directory = tmp_path / case_id
        directory.mkdir()
        content = {"plugin": "virtfleet.kubevirt.kubevirt"}
        if "kubeconfig" not in config:
            content["kubeconfig"] = tokens[case_id][1]
        content.update(config)
        path = directory / "kubevirt.yml"
        path.write_text(yaml.safe_dump(content, sort_keys=False))
        sources[str(path)] = case_id
    env = clean_env(kubeapi, tmp_path / "home")
    env.update({"ANSIBLE_NOCOLOR": "1", "ANSIBLE_INVENTORY_ENABLED": "virtfleet.kubevirt.kubevirt",
                "ANSIBLE_INVENTORY_UNPARSED_FAILED": "0", "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "0",
                "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"), "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
                "ANSIBLE_DEPRECATION_WARNINGS": "0", "COLUMNS": "1000"})
    cmd = [str(Path(sys.executable).parent / "ansible-inventory"), "--list"]
    for path in sources:
        cmd += ["-i", path]
    mark = kubeapi.mark()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    by_case, strangers = requests_by_case(kubeapi, mark, tokens)
    errors = split_inventory_errors(proc.stderr)
    problems = []
    for case_id, _config, words, hint, own in INVENTORY_CASES:
        path = next(p for p, c in sources.items() if c == case_id)
        if path not in errors:
            problems.append("%s: the source was parsed" % case_id)
            continue
        problems += check(case_id, inventory_message(errors[path]), words, hint, own, errors[path])
        if by_case.get(case_id):
            problems.append("%s: sent %s" % (case_id, by_case[case_id]))
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not strangers, strangers
    RESULTS["inventory"] = (len(INVENTORY_CASES), len(INVENTORY_CASES) - len(set(p.split(":")[0] for p in problems)),
                            sum(len(v) for v in by_case.values()))
    assert not problems, "\n".join(problems) + "\n" + proc.stderr[-3000:]


def test_summary():
    """Runs last in this file: the catalogue's counts in pytest's terminal summary."""
    if not RESULTS:
        pytest.skip("the catalogue did not run")
    tried = sum(r[0] for r in RESULTS.values())
    named = sum(r[1] for r in RESULTS.values())
    sent = sum(r[2] for r in RESULTS.values())
    summary.record("bad-input catalogue", "inputs tried: %d, rejected with a named option: %d, requests sent: %d"
                   " (modules %d, inventory %d; ansible-core %s)" % (
                       tried, named, sent, RESULTS.get("modules", (0,))[0], RESULTS.get("inventory", (0,))[0],
                       ansible_version()))


def ansible_version():
    from ansible.release import __version__
    return __version__
