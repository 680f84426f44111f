"""The scenarios of the differential tests: one table, each scenario a list of steps run with both collections.

A step is one task of ``kubevirt_vm``, ``kubevirt_vm_info`` or ``kubevirt_vmi_info`` with the same arguments for
kubevirt.core and virtfleet.kubevirt. The runner adds ``namespace`` (one per scenario and collection),
``wait_sleep: 1`` and, for ``kubevirt_vm``, ``name: vm1`` unless the step names its VM.
"""
import copy

VM_NAME = "vm1"
IMAGE = "quay.io/containerdisks/fedora:41"


def template_spec(memory="128Mi", image=IMAGE, data_disk=False, boot_volume=None):
    """A small VMI template spec as users write it for kubevirt.core (its option ``spec``)."""
    disks = [{"name": "root", "disk": {"bus": "virtio"}}]
    volumes = [boot_volume or {"name": "root", "containerDisk": {"image": image}}]
    if data_disk:
        disks.append({"name": "data", "disk": {"bus": "virtio"}})
        volumes.append({"name": "data", "emptyDisk": {"capacity": "1Gi"}})
    spec = {"domain": {"devices": {"disks": disks, "interfaces": [{"name": "default", "masquerade": {}}]}},
            "networks": [{"name": "default", "pod": {}}], "volumes": volumes}
    if memory:
        spec["domain"]["memory"] = {"guest": memory}
    return spec


SPEC = template_spec()
DVT = [{"metadata": {"name": "vm1-root"},
        "spec": {"source": {"registry": {"url": "docker://" + IMAGE}},
                 "storage": {"resources": {"requests": {"storage": "2Gi"}}}}}]
DV_SPEC = template_spec(boot_volume={"name": "root", "dataVolume": {"name": "vm1-root"}})

# Cluster-scoped objects some scenarios refer to (created once before both runs).
CLUSTER_OBJECTS = [
    {"apiVersion": "instancetype.kubevirt.io/v1beta1", "kind": "VirtualMachineClusterInstancetype",
     "metadata": {"name": "u1.small"}, "spec": {"cpu": {"guest": 1}, "memory": {"guest": "1Gi"}}},
    {"apiVersion": "instancetype.kubevirt.io/v1beta1", "kind": "VirtualMachineClusterInstancetype",
     "metadata": {"name": "u1.medium"}, "spec": {"cpu": {"guest": 2}, "memory": {"guest": "2Gi"}}},
    {"apiVersion": "instancetype.kubevirt.io/v1beta1", "kind": "VirtualMachineClusterPreference",
     "metadata": {"name": "fedora"}, "spec": {"devices": {"preferredDiskBus": "virtio"}}},
]


def vm(check=False, diff=False, **args):
    return {"module": "kubevirt_vm", "args": args, "check": check, "diff": diff}


def vm_info(**args):
    return {"module": "kubevirt_vm_info", "args": args, "check": False, "diff": False}


def vmi_info(**args):
    return {"module": "kubevirt_vmi_info", "args": args, "check": False, "diff": False}


def create(wait=False, **args):
    """The usual first step: a VM with labels, the small spec and an explicit run strategy."""
    base = {"labels": {"app": "web"}, "spec": SPEC, "run_strategy": "Always"}
    base.update(args)
    if wait:
        base["wait"] = True
    return vm(**base)


def halted(**args):
    return create(run_strategy="Halted", **args)


def running(**args):
    return create(wait=True, **args)


def spec_with(**kw):
    return template_spec(**kw)


NO_SPEC_STATE = {"labels": {"app": "web", "tier": "front"}}

SCENARIOS = [
    # --- create ----------------------------------------------------------------------------------------------
    ("create-plain", [vm(spec=SPEC), vm(spec=SPEC)]),
    ("create-labels-annotations", [create(annotations={"owner": "team-a"}), create(annotations={"owner": "team-a"})]),
    ("create-wait", [create(wait=True), vm_info(name=VM_NAME)]),
    ("create-halted", [halted(), halted()]),
    # --- re-declare subsets ------------------------------------------------------------------------------------
    ("labels-only", [create(), vm(labels={"app": "web", "tier": "front"})]),
    ("annotations-only", [create(), vm(annotations={"owner": "team-b"})]),
    ("state-only-present", [create(), vm(state="present")]),
    ("state-only-started", [halted(), vm(state="started", wait=True), vm(state="started")]),
    ("state-only-stopped", [running(), vm(state="stopped", wait=True), vm(state="stopped")]),
    ("state-only-restarted", [running(), vm(state="restarted", wait=True)]),
    ("state-only-absent", [create(), vm(state="absent", wait=True), vm(state="absent")]),
    ("labels-present", [create(), vm(state="present", **NO_SPEC_STATE)]),
    ("labels-started", [halted(), vm(state="started", wait=True, **NO_SPEC_STATE)]),
    ("labels-stopped", [running(), vm(state="stopped", wait=True, **NO_SPEC_STATE)]),
    ("labels-restarted", [running(), vm(state="restarted", wait=True, **NO_SPEC_STATE)]),
    ("labels-absent", [create(), vm(state="absent", wait=True, **NO_SPEC_STATE)]),
    # kubevirt.core's "relabel and stop this VM", then start it again: the spec of the first task must survive.
    ("relabel-and-stop", [create(wait=True, annotations={"owner": "team-a"}, spec=spec_with(data_disk=True),
                                 data_volume_templates=DVT, preference={"name": "fedora"}),
                          vm(state="stopped", wait=True, labels={"app": "web", "tier": "front"}),
                          vm(state="started", wait=True, labels={"app": "web", "tier": "front"})]),
    # --- spec changes ----------------------------------------------------------------------------------------
    ("spec-add-list-element", [create(), create(spec=spec_with(data_disk=True))]),
    ("spec-change-list-element", [create(), create(spec=spec_with(image="quay.io/containerdisks/fedora:42"))]),
    ("spec-remove-list-element", [create(spec=spec_with(data_disk=True)), create()]),
    ("spec-change-scalar", [create(), create(spec=spec_with(memory="256Mi"))]),
    ("spec-only", [create(), vm(spec=spec_with(memory="256Mi"))]),
    # --- running vs run_strategy -----------------------------------------------------------------------------
    ("running-true-false", [vm(spec=SPEC, running=True, wait=True), vm(spec=SPEC, running=False, wait=True),
                            vm(spec=SPEC, running=False)]),
    ("running-false-redeclare", [vm(spec=SPEC, running=False), vm(spec=SPEC, labels={"app": "web"})]),
    ("run-strategy-changes", [vm(spec=SPEC, run_strategy="Halted"), vm(spec=SPEC, run_strategy="Always", wait=True),
                              vm(spec=SPEC, run_strategy="Manual")]),
    ("running-to-run-strategy", [vm(spec=SPEC, running=True), vm(spec=SPEC, run_strategy="Always"),
                                 vm(spec=SPEC, running=True)]),
    # --- instancetype / preference, data volume templates --------------------------------------------------------
    ("instancetype-preference", [
        create(wait=True, spec=spec_with(memory=None), instancetype={"name": "u1.small"}, preference={"name": "fedora"}),
        create(spec=spec_with(memory=None), instancetype={"name": "u1.small"}, preference={"name": "fedora"})]),
    ("instancetype-change", [
        create(spec=spec_with(memory=None), instancetype={"name": "u1.small"}),
        create(spec=spec_with(memory=None), instancetype={"name": "u1.medium"})]),
    ("data-volume-templates", [create(wait=True, spec=DV_SPEC, data_volume_templates=DVT),
                               create(spec=DV_SPEC, data_volume_templates=DVT)]),
    # --- delete --------------------------------------------------------------------------------------------------
    ("delete-wait", [running(), vm(state="absent", wait=True)]),
    ("delete-no-wait", [create(), vm(state="absent"), vm(state="absent", wait=True)]),
    ("delete-options", [create(), vm(state="absent", wait=True, delete_options={"propagationPolicy": "Foreground"})]),
    ("delete-missing", [vm(state="absent"), vm(state="absent", wait=True)]),
    # --- check mode ----------------------------------------------------------------------------------------------
    ("check-create", [create(check=True), create(), create(check=True)]),
    ("check-update", [create(), vm(check=True, labels={"app": "db"}), create(check=True, spec=spec_with(memory="256Mi"))]),
    ("check-lifecycle-halted", [halted(), vm(check=True, state="started"), vm(check=True, state="stopped"),
                                vm(check=True, state="restarted")]),
    ("check-lifecycle-running", [running(), vm(check=True, state="stopped"), vm(check=True, state="started"),
                                 vm(check=True, state="restarted")]),
    ("check-absent", [create(), vm(check=True, state="absent"), vm(check=True, name="missing", state="absent")]),
    # --- diff ----------------------------------------------------------------------------------------------------
    ("diff-create", [create(diff=True), create(diff=True)]),
    ("diff-update", [create(), vm(diff=True, labels={"app": "db"}), create(diff=True, spec=spec_with(memory="256Mi"))]),
    ("diff-lifecycle", [running(), vm(diff=True, state="stopped", wait=True), vm(diff=True, state="started", wait=True),
                        vm(diff=True, state="restarted", wait=True)]),
    ("diff-absent", [create(), vm(diff=True, state="absent", wait=True)]),
    ("check-diff", [create(check=True, diff=True), create(), vm(check=True, diff=True, labels={"app": "db"}),
                    vm(check=True, diff=True, state="stopped"), vm(check=True, diff=True, state="absent")]),
    # --- errors --------------------------------------------------------------------------------------------------
    ("error-invalid-spec", [vm(spec=dict(SPEC, volumes=[]), run_strategy="Always")]),
    # --- info modules --------------------------------------------------------------------------------------------
    ("vm-info-name", [create(), create(name="vm2", labels={"app": "db"}), vm_info(name=VM_NAME),
                      vm_info(name="missing")]),
    ("vm-info-selectors", [create(), create(name="vm2", labels={"app": "db"}),
                           vm_info(label_selectors=["app=db"]), vm_info(label_selectors=["app in (web,db)"]),
                           vm_info(field_selectors=["metadata.name=vm2"]), vm_info()]),
    ("vm-info-wait", [create(), vm_info(name=VM_NAME, wait=True, wait_timeout=60),
                      vm_info(name=VM_NAME, wait=True, running=True)]),
    ("vm-info-wait-stopped", [halted(), vm_info(name=VM_NAME, wait=True, running=False)]),
    ("vmi-info", [create(), create(name="vm2", labels={"app": "db"}, wait=True),
                  vmi_info(name=VM_NAME, wait=True), vmi_info(name="vm2"),
                  vmi_info(label_selectors=["app=db"]), vmi_info(field_selectors=["metadata.name=vm1"]),
                  vmi_info(name="missing")]),
]


def scenarios():
    """[(name, [step, ...])] with the defaults the runner adds filled in."""
    out = []
    for name, steps in SCENARIOS:
        full = []
        for step in steps:
            step = copy.deepcopy(step)
            if step["module"] == "kubevirt_vm" and "generate_name" not in step["args"]:
                step["args"].setdefault("name", VM_NAME)
            step["args"].setdefault("wait_sleep", 1)
            full.append(step)
        out.append((name, full))
    return out
