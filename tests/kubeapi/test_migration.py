"""Live migration in the simulated KubeVirt v1.9: LiveMigratable as virt-handler computes it, the migration admission
webhook, target node choice, the unschedulable timeout and cancel by delete (controllers/virt.py, webhooks.py)."""
import json
import time

import pytest
from kubernetes import client, config

from .test_client import vm_body

EMULATOR = {"name": "migration-emu", "controllers": ("virt",), "timing": "fast", "nodes": 4, "needs_hooks": True}
G, V = "kubevirt.io", "v1"


@pytest.fixture(scope="module")
def api(emu):
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(emu.kubeconfig), client_configuration=cfg)
    api_client = client.ApiClient(cfg)
    yield api_client
    api_client.close()


@pytest.fixture
def ns(api, request):
    name = "m-%s" % request.node.name.replace("_", "-")[5:30].strip("-").lower()
    client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})
    return name


def custom(api):
    return client.CustomObjectsApi(api)


def wait(fn, timeout=10, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.05)
    pytest.fail("timed out waiting for %s" % what)


def get(api, ns, plural, name):
    try:
        return custom(api).get_namespaced_custom_object(G, V, ns, plural, name)
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise


def cond(obj, ctype):
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == ctype), None)


def running_vm(api, ns, name, masquerade=True, annotations=None, **tspec):
    body = vm_body(name, run_strategy="Always")
    spec = body["spec"]["template"]["spec"]
    if masquerade:
        spec["domain"]["devices"]["interfaces"] = [{"name": "default", "masquerade": {}}]
        spec["networks"] = [{"name": "default", "pod": {}}]
    if annotations:
        body["spec"]["template"]["metadata"]["annotations"] = annotations
    for key, value in tspec.items():
        if key in ("hostDevices", "gpus"):
            spec["domain"]["devices"][key] = value
        elif key == "volumes":
            spec["volumes"] += value
        elif key == "memory":
            spec["domain"]["memory"] = {"guest": value}
        else:
            spec[key] = value
    custom(api).create_namespaced_custom_object(G, V, ns, "virtualmachines", body)
    return wait(lambda: (lambda vmi: vmi if vmi and cond(vmi, "Ready") and cond(vmi, "Ready")["status"] == "True"
                         and cond(vmi, "LiveMigratable") else None)(get(api, ns, "virtualmachineinstances", name)),
                what="VMI %s ready" % name)


def migrate(api, ns, vmi, annotations=None, selector=None):
    body = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstanceMigration",
            "metadata": {"generateName": vmi + "-", "annotations": annotations or {}}, "spec": {"vmiName": vmi}}
    if selector:
        body["spec"]["addedNodeSelector"] = selector
    return custom(api).create_namespaced_custom_object(G, V, ns, "virtualmachineinstancemigrations", body)


def phase_of(api, ns, name):
    return ((get(api, ns, "virtualmachineinstancemigrations", name) or {}).get("status") or {}).get("phase")


def denied(exc):
    return exc.value.status, json.loads(exc.value.body)["message"]


def test_live_migratable_condition(api, ns):
    """virt-handler's calculateLiveMigrationCondition: the pod network's default bridge is not migratable (unless
    annotated), masquerade is; host devices and GPUs are not; a claim must be ReadWriteMany."""
    dv = {"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume",
          "spec": {"source": {"blank": {}}, "storage": {"resources": {"requests": {"storage": "1Gi"}}}}}
    for name, modes in (("rwo", ["ReadWriteOnce"]), ("rwx", ["ReadWriteMany"])):
        body = dict(dv, metadata={"name": name})
        body["spec"] = dict(dv["spec"], storage=dict(dv["spec"]["storage"], accessModes=modes))
        custom(api).create_namespaced_custom_object("cdi.kubevirt.io", "v1beta1", ns, "datavolumes", body)
    cases = {
        "bridge": (dict(masquerade=False), "InterfaceNotLiveMigratable",
                   "cannot migrate VMI which does not use masquerade or a migratable plugin to connect to the pod network"),
        "bridge-allowed": (dict(masquerade=False, annotations={"kubevirt.io/allow-pod-bridge-network-live-migration": ""}),
                           None, None),
        "masq": (dict(), None, None),
        "hostdev": (dict(hostDevices=[{"name": "d", "deviceName": "vendor.com/dev"}]), "HostDeviceNotLiveMigratable",
                    "VMI specifies non-migratable generic PCI host device"),
        "gpu": (dict(gpus=[{"name": "g", "deviceName": "nvidia.com/GP"}]), "HostDeviceNotLiveMigratable",
                "VMI specifies a GPU but feature gate VGPULiveMigration is not enabled"),
        "on-rwo": (dict(volumes=[{"name": "data", "dataVolume": {"name": "rwo"}}]), "DisksNotLiveMigratable",
                   "cannot migrate VMI: PVC rwo is not shared, live migration requires that all PVCs must be shared "
                   "(using ReadWriteMany access mode)"),
        "on-rwx": (dict(volumes=[{"name": "data", "dataVolume": {"name": "rwx"}}]), None, None),
        "on-none": (dict(volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "nope"}}]),
                    "DisksNotLiveMigratable", "cannot migrate VMI: Unable to determine if PVC nope is shared, live "
                    "migration requires that all PVCs must be shared (using ReadWriteMany access mode)"),
    }
    for name, (kw, reason, message) in cases.items():
        vmi = running_vm(api, ns, name, **kw)
        c = cond(vmi, "LiveMigratable")
        if reason is None:
            assert c["status"] == "True" and "reason" not in c, (name, c)
        else:
            assert (c["status"], c.get("reason"), c.get("message")) == ("False", reason, message), name


def test_webhook_rejects_non_migratable_and_second_migration(api, ns):
    running_vm(api, ns, "bridge", masquerade=False)
    with pytest.raises(client.ApiException) as exc:
        migrate(api, ns, "bridge")
    assert denied(exc) == (400, 'admission webhook "migration-create-validator.kubevirt.io" denied the request: Cannot '
                                'migrate VMI, Reason: InterfaceNotLiveMigratable, Message: cannot migrate VMI which does '
                                'not use masquerade or a migratable plugin to connect to the pod network')
    # virt-api's migrate subresource creates the migration the same way and answers its refusal as an internal error
    from kubernetes.dynamic import DynamicClient
    from kubernetes.dynamic.exceptions import DynamicApiError
    with pytest.raises(DynamicApiError) as exc:
        DynamicClient(api).request("put", "/apis/subresources.kubevirt.io/v1/namespaces/%s/virtualmachines/bridge/"
                                   "migrate" % ns, body={})
    assert exc.value.status == 500 and json.loads(exc.value.body)["message"].startswith(
        'Internal error occurred: admission webhook "migration-create-validator.kubevirt.io" denied the request: Cannot '
        'migrate VMI, Reason: InterfaceNotLiveMigratable')
    with pytest.raises(client.ApiException) as exc:
        migrate(api, ns, "ghost")
    assert denied(exc)[1].endswith('the VMI "%s/ghost" does not exist' % ns)
    running_vm(api, ns, "ok")
    first = migrate(api, ns, "ok")
    assert first["metadata"]["labels"]["kubevirt.io/vmi-name"] == "ok"
    assert first["metadata"]["finalizers"] == ["kubevirt.io/migrationJobFinalize"]
    with pytest.raises(client.ApiException) as exc:
        migrate(api, ns, "ok")
    assert denied(exc)[1].endswith("in-flight migration detected. Active migration job (%s) is currently already in "
                                   "progress for VMI ok." % first["metadata"]["uid"])
    wait(lambda: phase_of(api, ns, first["metadata"]["name"]) == "Succeeded", what="first migration done")
    migrate(api, ns, "ok")      # a finished migration does not block the next one


def test_target_never_source_cordoned_or_unselected(api, ns):
    core = client.CoreV1Api(api)
    core.patch_node("node03", {"spec": {"unschedulable": True}})
    try:
        vmi = running_vm(api, ns, "mv")
        source = vmi["status"]["nodeName"]
        seen_vm = set()
        mig = migrate(api, ns, "mv")
        name = mig["metadata"]["name"]
        while phase_of(api, ns, name) not in ("Succeeded", "Failed"):
            cur = get(api, ns, "virtualmachineinstances", "mv")
            assert cur["status"]["phase"] == "Running" and cond(cur, "Ready")["status"] == "True"
            seen_vm.add(get(api, ns, "virtualmachines", "mv")["status"]["printableStatus"])
            time.sleep(0.03)
        done = get(api, ns, "virtualmachineinstancemigrations", name)
        assert done["status"]["phase"] == "Succeeded"
        assert [p["phase"] for p in done["status"]["phaseTransitionTimestamps"]] == [
            "Pending", "Scheduling", "Scheduled", "PreparingTarget", "TargetReady", "Running", "Succeeded"]
        assert "Migrating" in seen_vm
        vmi = get(api, ns, "virtualmachineinstances", "mv")
        state = vmi["status"]["migrationState"]
        target = vmi["status"]["nodeName"]
        assert target not in (source, "node03") and vmi["metadata"]["labels"]["kubevirt.io/nodeName"] == target
        assert (state["sourceNode"], state["targetNode"], state["migrationUid"], state["completed"], state["mode"]) == (
            source, target, mig["metadata"]["uid"], True, "PreCopy")
        assert state["startTimestamp"] and state["endTimestamp"] and not state.get("failed")
        assert done["status"]["migrationState"]["targetNode"] == target
        assert "kubevirt.io/migrationJobFinalize" not in (done["metadata"].get("finalizers") or [])
        # addedNodeSelector: only the node it names (node01 unless that is where the VMI is now)
        wanted = "node01" if target != "node01" else "node02"
        mig = migrate(api, ns, "mv", selector={"kubernetes.io/hostname": wanted})
        wait(lambda: phase_of(api, ns, mig["metadata"]["name"]) == "Succeeded", what="selected migration")
        assert get(api, ns, "virtualmachineinstances", "mv")["status"]["nodeName"] == wanted
    finally:
        core.patch_node("node03", {"spec": {"unschedulable": None}})


def test_unschedulable_target_times_out(api, ns):
    """No node matches: the target pod stays Pending, the migration in Scheduling, until the unschedulable timeout
    (the VMIM's kubevirt.io/migrationUnschedulablePodTimeoutSeconds annotation) fails it; the VMI stays."""
    vmi = running_vm(api, ns, "stuck")
    mig = migrate(api, ns, "stuck", selector={"kubernetes.io/hostname": "nowhere"},
                  annotations={"kubevirt.io/migrationUnschedulablePodTimeoutSeconds": "2"})
    name = mig["metadata"]["name"]
    wait(lambda: phase_of(api, ns, name) == "Scheduling", what="scheduling")
    time.sleep(0.8)
    assert phase_of(api, ns, name) == "Scheduling"
    wait(lambda: phase_of(api, ns, name) == "Failed", timeout=6, what="failed after the timeout")
    done = get(api, ns, "virtualmachineinstancemigrations", name)
    assert done["status"]["migrationState"]["failureReason"].startswith("unschedulable pod %s/virt-launcher-stuck-" % ns)
    after = get(api, ns, "virtualmachineinstances", "stuck")
    assert after["status"]["nodeName"] == vmi["status"]["nodeName"] and "migrationState" not in after["status"]


def test_delete_in_flight_migration_aborts(api, ns):
    """A slow transfer (guest memory over the KubeVirt CR's migrations.bandwidthPerMigration) deleted while Running:
    virt-handler aborts it, the VMI stays on its source node, the migration goes away."""
    kv = {"apiVersion": "kubevirt.io/v1", "kind": "KubeVirt", "metadata": {"name": "kubevirt"},
          "spec": {"configuration": {"migrations": {"bandwidthPerMigration": "64Mi"}}}}
    custom(api).create_namespaced_custom_object(G, V, ns, "kubevirts", kv)
    try:
        vmi = running_vm(api, ns, "big", memory="4Gi")       # 64 s of transfer
        mig = migrate(api, ns, "big")
        name = mig["metadata"]["name"]
        wait(lambda: phase_of(api, ns, name) == "Running", what="transfer running")
        state = get(api, ns, "virtualmachineinstances", "big")["status"]["migrationState"]
        assert state["startTimestamp"] and not state.get("completed")
        custom(api).delete_namespaced_custom_object(G, V, ns, "virtualmachineinstancemigrations", name)
        wait(lambda: get(api, ns, "virtualmachineinstancemigrations", name) is None, what="migration gone")
        after = get(api, ns, "virtualmachineinstances", "big")
        state = after["status"]["migrationState"]
        assert after["status"]["nodeName"] == vmi["status"]["nodeName"] == state["sourceNode"]
        assert (state["abortRequested"], state["abortStatus"], state["failed"], state["completed"]) == (
            True, "Succeeded", True, True)
        assert after["status"]["phase"] == "Running"
        # Before the hand-off a delete fails the migration at once, nothing reaches the VMI.
        running_vm(api, ns, "early")
        mig = migrate(api, ns, "early")
        custom(api).delete_namespaced_custom_object(G, V, ns, "virtualmachineinstancemigrations", mig["metadata"]["name"])
        wait(lambda: get(api, ns, "virtualmachineinstancemigrations", mig["metadata"]["name"]) is None, what="gone")
        assert "migrationState" not in get(api, ns, "virtualmachineinstances", "early")["status"]
    finally:
        custom(api).delete_namespaced_custom_object(G, V, ns, "kubevirts", "kubevirt")


def test_only_the_five_newest_finished_migrations_are_kept(api, ns):
    """migration.go:garbageCollectFinalizedMigrations: a VMI's older finished migrations are deleted, 5 stay."""
    running_vm(api, ns, "often")
    names = []
    for _ in range(7):
        mig = migrate(api, ns, "often")
        names.append(mig["metadata"]["name"])
        wait(lambda: phase_of(api, ns, mig["metadata"]["name"]) == "Succeeded", what="migration done")

    def kept():
        items = custom(api).list_namespaced_custom_object(G, V, ns, "virtualmachineinstancemigrations")["items"]
        return sorted(m["metadata"]["name"] for m in items) if len(items) == 5 else None
    assert wait(kept, what="5 migrations left") == sorted(names[2:])


def test_target_honours_the_vmi_node_selector_and_skips_not_ready_nodes(api, ns):
    core = client.CoreV1Api(api)
    ready = [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status"}]
    not_ready = [{"type": "Ready", "status": "False", "reason": "KubeletNotReady", "message": "container runtime down"}]
    for node in ("node01", "node02", "node04"):
        core.patch_node(node, {"metadata": {"labels": {"zone": "a"}}})
    core.patch_node_status("node04", {"status": {"conditions": not_ready}})
    try:
        vmi = running_vm(api, ns, "zoned", nodeSelector={"zone": "a"})
        source = vmi["status"]["nodeName"]
        assert source in ("node01", "node02")
        mig = migrate(api, ns, "zoned")
        wait(lambda: phase_of(api, ns, mig["metadata"]["name"]) == "Succeeded", what="migration done")
        # node03 lacks the VMI's label, node04 is NotReady: the other zone-a node is the only target
        assert get(api, ns, "virtualmachineinstances", "zoned")["status"]["nodeName"] == (
            "node02" if source == "node01" else "node01")
    finally:
        core.patch_node_status("node04", {"status": {"conditions": ready}})
        for node in ("node01", "node02", "node04"):
            core.patch_node(node, {"metadata": {"labels": {"zone": None}}})
