"""Simulated virt-controller/virt-handler and the virt-api subresources (start/stop/restart/migrate/pause).

VM: runStrategy (or legacy spec.running) decides whether a VMI should exist; VM status mirrors the VMI
(printableStatus, ready, created, Ready condition). VMI: Pending -> Scheduling -> Scheduled -> Running, one
step per timer tick, then interfaces with IPs, node name, guest OS info; deletion goes through Succeeded.
State changes are timer-driven and deterministic (node round-robin, IPs and MACs from counters).
Like KubeVirt v1.9.0's virt-controller it first stamps the observed API version annotations on every VM and VMI it
syncs, persists a legacy firmware UUID into a VM template without one, and builds the VMI with a disk per volume.
RestartRequired as virt-controller computes it (vm.go): starting a VMI records the VM spec it starts from in a
ControllerRevision ``revision-start-vm-<vm uid>-<generation>`` named by the VMI's ``status.virtualMachineRevisionName``;
every VM status sync with an active VMI compares the VM's template spec with that record and sets or removes
``RestartRequired`` in the same status write as ``observedGeneration`` (no live updates are simulated: any template
spec change needs a restart). A new VMI clears it.
The VM admission checks (runStrategy, running) are in webhooks.py.
Live migration as in v1.9: the VMI's LiveMigratable condition as virt-handler computes it (live_migration_condition),
VirtualMachineInstanceMigration phases with the VMI's migrationState, a target node that is never the source, cordoned
or NotReady and matches the VMI's nodeSelector and the migration's addedNodeSelector (none: Scheduling until the
unschedulable timeout, then Failed), a transfer as long as guest memory / migrations.bandwidthPerMigration of the
KubeVirt CR (one step without it), and cancel by deleting an in-flight migration (abortStatus Succeeded, the VMI stays).
virt-api's migration admission (not migratable, in flight) is in webhooks.py.
"""
import datetime
import functools
import itertools
import uuid

from .. import errors
from ..api import Options, now
from . import Controller
from ..util import clone

VM = ("kubevirt.io", "virtualmachines")
VMI = ("kubevirt.io", "virtualmachineinstances")
VMIM = ("kubevirt.io", "virtualmachineinstancemigrations")
NODES = ("", "nodes")
CONTROLLER_REVISIONS = ("apps", "controllerrevisions")
FINALIZER = "kubevirt.io/virtualMachineControllerFinalize"
# staging/src/kubevirt.io/api/core/v1/types.go: VirtualMachineInstanceMigrationFinalizer, NodeNameLabel,
# MigrationUnschedulablePodTimeoutSecondsAnnotation; migration.go: defaultUnschedulablePendingTimeoutSeconds
MIGRATION_FINALIZER = "kubevirt.io/migrationJobFinalize"
NODE_NAME_LABEL = "kubevirt.io/nodeName"
MIGRATION_UNSCHEDULABLE_TIMEOUT_ANNOTATION = "kubevirt.io/migrationUnschedulablePodTimeoutSeconds"
DEFAULT_UNSCHEDULABLE_TIMEOUT = 300
FINALIZED_MIGRATIONS_KEPT = 5
# pkg/network/vmispec/interface.go:VerifyVMIMigratable, pkg/virt-handler/vm.go:checkVolumesForMigration and
# vmiContainsNonMigratablePCIHostDevices: the messages of the LiveMigratable condition
BRIDGE_NOT_MIGRATABLE = "cannot migrate VMI which does not use masquerade or a migratable plugin to connect to the pod network"
PVC_NOT_SHARED = ("cannot migrate VMI: PVC %s is not shared, live migration requires that all PVCs must be shared "
                  "(using ReadWriteMany access mode)")
PVC_UNKNOWN = ("cannot migrate VMI: Unable to determine if PVC %s is shared, live migration requires that all PVCs must "
               "be shared (using ReadWriteMany access mode)")
ALLOW_BRIDGE_MIGRATION_ANNOTATION = "kubevirt.io/allow-pod-bridge-network-live-migration"
SHARED_ACCESS_MODES = ("ReadWriteMany",)
# staging/src/kubevirt.io/api/core/v1/types.go: ControllerAPI{Latest,Storage}VersionObservedAnnotation; the values
# are register.go's ApiLatestVersion and ApiStorageVersion ("v1" both in v1.9.0).
OBSERVED_API_VERSIONS = {"kubevirt.io/latest-observed-api-version": "v1", "kubevirt.io/storage-observed-api-version": "v1"}
# pkg/virt-controller/watch/vm/firmware.go: magicUUID, the namespace of CalculateLegacyUUID
LEGACY_FIRMWARE_NS = uuid.UUID("6a1a24a1-4061-4607-8bf4-a3963d0c5895")
# pkg/virt-controller/watch/vm/vm.go:syncRestartRequired, the message of setRestartRequired for a template change
RESTART_MESSAGE = "a non-live-updatable field was changed in the template spec"
NEXT_PHASE = {"": "Pending", "Pending": "Scheduling", "Scheduling": "Scheduled", "Scheduled": "Running"}
GUESTS = {
    "fedora": {"id": "fedora", "name": "Fedora Linux", "prettyName": "Fedora Linux 41 (Cloud Edition)",
               "version": "41 (Cloud Edition)", "versionId": "41", "kernelRelease": "6.11.4-301.fc41.x86_64"},
    "cirros": {"id": "cirros", "name": "CirrOS", "prettyName": "CirrOS 0.6.2", "version": "0.6.2",
               "versionId": "0.6.2", "kernelRelease": "5.15.0-71-generic"},
    "alpine": {"id": "alpine", "name": "Alpine Linux", "prettyName": "Alpine Linux v3.20", "version": "3.20.3",
               "versionId": "3.20.3", "kernelRelease": "6.6.58-0-virt"},
    "ubuntu": {"id": "ubuntu", "name": "Ubuntu", "prettyName": "Ubuntu 24.04.1 LTS", "version": "24.04.1 LTS "
               "(Noble Numbat)", "versionId": "24.04", "kernelRelease": "6.8.0-48-generic"},
    "debian": {"id": "debian", "name": "Debian GNU/Linux", "prettyName": "Debian GNU/Linux 13 (trixie)",
               "version": "13 (trixie)", "versionId": "13", "kernelRelease": "6.12.9-amd64"},
}


def run_strategy(vm):
    spec = vm.get("spec") or {}
    if spec.get("runStrategy"):
        return spec["runStrategy"]
    return "Always" if spec.get("running") else "Halted"


def legacy_firmware_uuid(name):
    """pkg/virt-controller/watch/vm/firmware.go:CalculateLegacyUUID: SHA1 (v5) UUID of the VM name."""
    return str(uuid.uuid5(LEGACY_FIRMWARE_NS, name))


def vm_revision_name(vm_uid, generation):
    """pkg/virt-controller/watch/vm/vm.go:getVMRevisionName: ``revision-start-vm-<vm uid>-<generation>``."""
    return "revision-start-vm-%s-%d" % (vm_uid, generation)


_QUANTITY = {"Ki": 1024, "Mi": 1024 ** 2, "Gi": 1024 ** 3, "Ti": 1024 ** 4, "k": 1000, "M": 1000 ** 2,
             "G": 1000 ** 3, "T": 1000 ** 4}


def parse_quantity(value):
    """A Kubernetes quantity ("64Mi", "1G", "1048576") in bytes, None when absent or not understood."""
    if value in (None, ""):
        return None
    text = str(value)
    for suffix in sorted(_QUANTITY, key=len, reverse=True):
        if text.endswith(suffix):
            try:
                return float(text[:-len(suffix)]) * _QUANTITY[suffix]
            except ValueError:
                return None
    try:
        return float(text)
    except ValueError:
        return None


def guest_memory_bytes(vmi):
    """domain.memory.guest, else resources.requests.memory, else 128Mi (what the transfer has to copy)."""
    domain = (vmi.get("spec") or {}).get("domain") or {}
    mem = (domain.get("memory") or {}).get("guest") or ((domain.get("resources") or {}).get("requests") or {}).get("memory")
    return parse_quantity(mem) or 128 * 1024 ** 2


def live_migration_condition(vmi, store):
    """pkg/virt-handler/vm.go:calculateLiveMigrationCondition for what the emulator can know, in its order:
    interfaces (pkg/network/vmispec/interface.go:VerifyVMIMigratable: the pod network's interface must be masquerade
    or passt, or bridge with the allow-pod-bridge-network-live-migration annotation), host devices and GPUs
    (vmiContainsNonMigratablePCIHostDevices, no VGPULiveMigration gate), then volumes (checkVolumesForMigration: every
    PVC or DataVolume claim must be ReadWriteMany; the access modes come from the PVC, else the DataVolume's
    spec.pvc/spec.storage, as CDI would bind it). containerDisk, cloudInitNoCloud and the like are migratable (block
    migration). Returns the condition dict."""
    spec = vmi.get("spec") or {}
    devices = (spec.get("domain") or {}).get("devices") or {}
    ifaces = devices.get("interfaces") or []
    pod = next((n for n in spec.get("networks") or [] if "pod" in n), None)
    if ifaces and pod is not None:
        primary = next((i for i in ifaces if i.get("name") == pod.get("name")), None)
        if primary is None:
            return _cond("LiveMigratable", "False", "InterfaceNotLiveMigratable",
                         "no primary interface found for network %s" % pod.get("name"))
        allowed = "masquerade" in primary or "passtBinding" in primary or (
            "bridge" in primary and ALLOW_BRIDGE_MIGRATION_ANNOTATION in (vmi["metadata"].get("annotations") or {}))
        if not allowed:
            return _cond("LiveMigratable", "False", "InterfaceNotLiveMigratable", BRIDGE_NOT_MIGRATABLE)
    if devices.get("hostDevices"):
        return _cond("LiveMigratable", "False", "HostDeviceNotLiveMigratable",
                     "VMI specifies non-migratable generic PCI host device")
    gpus = devices.get("gpus") or []
    if len(gpus) > 1:
        return _cond("LiveMigratable", "False", "HostDeviceNotLiveMigratable", "VMI specifies too many GPUs")
    if gpus:
        return _cond("LiveMigratable", "False", "HostDeviceNotLiveMigratable",
                     "VMI specifies a GPU but feature gate VGPULiveMigration is not enabled")
    ns = vmi["metadata"].get("namespace")
    for volume in spec.get("volumes") or []:
        claim = (volume.get("persistentVolumeClaim") or {}).get("claimName") or (volume.get("dataVolume") or {}).get("name")
        if not claim:
            continue
        modes = claim_access_modes(store, ns, claim)
        if modes is None:
            return _cond("LiveMigratable", "False", "DisksNotLiveMigratable", PVC_UNKNOWN % claim)
        if not any(m in SHARED_ACCESS_MODES for m in modes):
            return _cond("LiveMigratable", "False", "DisksNotLiveMigratable", PVC_NOT_SHARED % claim)
    return _cond("LiveMigratable", "True")


def claim_access_modes(store, ns, claim):
    pvc = store.get(("", "persistentvolumeclaims"), ns, claim)
    if pvc is not None:
        return ((pvc.get("status") or {}).get("accessModes") or (pvc.get("spec") or {}).get("accessModes") or [])
    dv = store.get(("cdi.kubevirt.io", "datavolumes"), ns, claim)
    if dv is not None:
        dspec = dv.get("spec") or {}
        return (dspec.get("pvc") or dspec.get("storage") or {}).get("accessModes") or ["ReadWriteOnce"]
    return None


def _cond(ctype, status, reason="", message=""):
    c = {"type": ctype, "status": status, "lastProbeTime": None, "lastTransitionTime": now()}
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    return c


def _set_cond(conds, new):
    for i, c in enumerate(conds):
        if c.get("type") == new["type"]:
            if c.get("status") == new["status"] and c.get("reason") == new.get("reason"):
                return
            conds[i] = new
            return
    conds.append(new)


def _virt_not_found(resource, name):
    """virt-api reports missing objects with the singular resource (v1.Resource("virtualmachine"))."""
    return errors.ApiError(404, "NotFound", '%s.kubevirt.io "%s" not found' % (resource, name),
                           {"name": name, "group": "kubevirt.io", "kind": resource})


def _vm_conflict(name, message):
    return errors.ApiError(409, "Conflict", 'Operation cannot be fulfilled on virtualmachine.kubevirt.io "%s": %s'
                           % (name, message), {"name": name, "group": "kubevirt.io", "kind": "virtualmachine"})


def _vmi_conflict(name, message):
    return errors.ApiError(409, "Conflict", 'Operation cannot be fulfilled on virtualmachineinstance.kubevirt.io '
                           '"%s": %s' % (name, message), {"name": name, "group": "kubevirt.io",
                                                          "kind": "virtualmachineinstance"})


class VirtController(Controller):
    name = "virt-controller"
    watches = (VM, VMI, NODES, VMIM)

    def setup(self):
        self._ip = itertools.count(10)
        self._node_rr = itertools.count(0)
        self._pending = set()
        self._create_failed = set()
        handlers = self.app.subresource_handlers
        handlers[("virtualmachines", "start")] = self.sub_start
        handlers[("virtualmachines", "stop")] = self.sub_stop
        handlers[("virtualmachines", "restart")] = self.sub_restart
        handlers[("virtualmachines", "migrate")] = self.sub_migrate
        handlers[("virtualmachineinstances", "pause")] = self.sub_pause
        handlers[("virtualmachineinstances", "unpause")] = self.sub_unpause
        handlers[("virtualmachineinstances", "guestosinfo")] = self.sub_guestosinfo
        # portforward is a WebSocket (server.py `_portforward`): its handler dials the guest (portforward.py).
        from ..portforward import dial
        handlers[("virtualmachineinstances", "portforward")] = functools.partial(dial, self.app)
        handlers[("virtualmachines", "portforward")] = functools.partial(dial, self.app, via_vm=True)

    def _rt(self, key):
        return self.app.registry.get(*key)

    def _opts(self, manager="virt-controller"):
        return Options(validation="Ignore", manager=manager)

    # --- event dispatch ----------------------------------------------------------------------------------
    def shard_key(self, rkey, ns, obj):
        """A VM and its VMI share a name, so one worker handles both; a migration goes to the worker of its VMI,
        which it writes."""
        if rkey == VMIM:
            return ns, (obj.get("spec") or {}).get("vmiName") or obj["metadata"]["name"]
        return ns, obj["metadata"]["name"]

    def reconcile(self, rkey, ns, name, etype, obj):
        if rkey == VMIM:
            if etype != "DELETED":
                self.sync_migration(ns, name)
            return
        if rkey == VM:
            self.sync_vm(ns, name)
        elif rkey == VMI:
            self.sync_vmi(ns, name)
            if self.store.get(VM, ns, name) is not None:
                self.sync_vm(ns, name)

    def _later(self, key, fn, *args):
        """Schedule one pending step per key (ns, name, what)."""
        if key in self._pending:
            return
        self._pending.add(key)

        def run():
            self._pending.discard(key)
            fn(*args)
        self.after(self.step, run)

    # --- VM ----------------------------------------------------------------------------------------------
    def sync_vm(self, ns, name):
        vm = self.store.get(VM, ns, name)
        if vm is None:
            return
        # pkg/virt-controller/watch/vm/vm.go:Controller.execute: "this must be first step in execution" -- if
        # controller.ObservedLatestApiVersionAnnotation is false, SetLatestApiVersionAnnotation and Update the VM,
        # then return (the update's event syncs again). Deleting VMs too: execute checks before anything else.
        if self._observe_api_version(VM, vm):
            return
        if vm["metadata"].get("deletionTimestamp"):
            return
        if self._sync_firmware(vm):
            return
        strategy = run_strategy(vm)
        vmi = self.store.get(VMI, ns, name)
        status = vm.get("status") or {}
        requests = status.get("stateChangeRequests") or []
        if requests:
            self._handle_state_requests(vm, vmi, requests)
            return
        want = strategy in ("Always", "RerunOnFailure") or (strategy == "Once" and not status.get("created"))
        if strategy == "RerunOnFailure" and vmi is not None and (vmi.get("status") or {}).get("phase") == "Succeeded":
            want = False
        if strategy in ("Manual", "Once"):
            want = vmi is not None and not vmi["metadata"].get("deletionTimestamp") or (
                strategy == "Once" and not status.get("created") and vmi is None)
        if want and vmi is None:
            # The status write below records the new VMI (created, RestartRequired cleared): one status update per
            # sync, as vm.go's updateStatus does.
            self._create_vmi(vm, write_status=False)
        elif not want and vmi is not None and strategy in ("Halted",) and not vmi["metadata"].get("deletionTimestamp"):
            self._delete_vmi(ns, name)
        elif want and vmi is not None and vmi["metadata"].get("deletionTimestamp") is None and \
                (vmi.get("status") or {}).get("phase") in ("Succeeded", "Failed") and strategy == "Always":
            self._delete_vmi(ns, name)
        self._update_vm_status(ns, name)

    def _observe_api_version(self, key, obj):
        """pkg/controller/controller.go:ObservedLatestApiVersionAnnotation / SetLatestApiVersionAnnotation, written
        with a plain Update (PUT) of the whole object, as vm.go and vmi.go execute() do: admission runs, the
        resourceVersion moves, the generation does not (no spec change). True when it wrote (or tried)."""
        annotations = obj["metadata"].get("annotations") or {}
        if annotations.get("kubevirt.io/latest-observed-api-version") == "v1":
            return False
        body = clone(obj)
        body["metadata"].setdefault("annotations", {}).update(OBSERVED_API_VERSIONS)
        try:
            self.api.update(self._rt(key), "v1", obj["metadata"]["namespace"], obj["metadata"]["name"], body,
                            self._opts())
        except errors.ApiError:
            pass    # e.g. a conflict with a newer write: that write's event brings the VM back here
        return True

    def _sync_firmware(self, vm):
        """pkg/virt-controller/watch/vm/firmware.go:FirmwareController.Sync: a VM template without a firmware UUID
        (the VM mutator only sets one on create) gets CalculateLegacyUUID(name) through a JSON patch (test + add of
        /spec/template/spec/domain/firmware). True when it patched."""
        tspec = ((vm.get("spec") or {}).get("template") or {}).get("spec") or {}
        firmware = (tspec.get("domain") or {}).get("firmware")
        if (firmware or {}).get("uuid"):
            return False
        new = dict(firmware or {}, uuid=legacy_firmware_uuid(vm["metadata"]["name"]))
        ops = [{"op": "add", "path": "/spec/template/spec/domain/firmware", "value": new}]
        if firmware is not None:
            ops.insert(0, {"op": "test", "path": "/spec/template/spec/domain/firmware", "value": firmware})
        if "domain" not in tspec:   # only a hand-written stored object lacks it (the mutator always sets it)
            return False
        try:
            self.api.patch(self._rt(VM), "v1", vm["metadata"]["namespace"], vm["metadata"]["name"],
                           "application/json-patch+json", ops, self._opts())
        except errors.ApiError:
            pass
        return True

    def _handle_state_requests(self, vm, vmi, requests):
        ns, name = vm["metadata"]["namespace"], vm["metadata"]["name"]
        first = requests[0]
        if first.get("action") == "Stop":
            if vmi is not None:
                if not vmi["metadata"].get("deletionTimestamp"):
                    self._delete_vmi(ns, name)
                self._update_vm_status(ns, name)
                return
        elif first.get("action") == "Start":
            if vmi is not None:
                if vmi["metadata"].get("deletionTimestamp"):
                    return   # wait for the old VMI to go away first
            else:
                self._create_vmi(vm)

        def pop(o):
            reqs = (o.get("status") or {}).get("stateChangeRequests") or []
            if not reqs:
                return False
            o["status"]["stateChangeRequests"] = reqs[1:] or None
            if not reqs[1:]:
                del o["status"]["stateChangeRequests"]
        self.api.write_status(self._rt(VM), ns, name, pop, "virt-controller")

    def _create_vmi(self, vm, write_status=True):
        meta = vm["metadata"]
        tmpl = (vm.get("spec") or {}).get("template") or {}
        tmeta = tmpl.get("metadata") or {}
        labels = dict(tmeta.get("labels") or {})
        vmi = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
               "metadata": {"name": meta["name"], "namespace": meta["namespace"], "labels": labels,
                            "annotations": dict(tmeta.get("annotations") or {}),
                            "finalizers": [FINALIZER],
                            "ownerReferences": [{"apiVersion": vm["apiVersion"], "kind": "VirtualMachine",
                                                 "name": meta["name"], "uid": meta["uid"], "controller": True,
                                                 "blockOwnerDeletion": True}]},
               "spec": clone(tmpl.get("spec") or {})}
        # pkg/virt-controller/watch/vm/vm.go:SetupVMIFromVM: setupStableFirmwareUUID (the template's UUID, else
        # CalculateLegacyUUID) and util.SetDefaultVolumeDisk (a bare {name} disk per volume without one; the VMI
        # mutating webhook then gives it `disk: {}`, see webhooks.py:mutate_new_vmi).
        domain = vmi["spec"].setdefault("domain", {})
        firmware = domain.setdefault("firmware", {})
        firmware["uuid"] = firmware.get("uuid") or legacy_firmware_uuid(meta["name"])
        devices = domain.setdefault("devices", {})
        named = {d.get("name") for d in devices.get("disks") or []} | {
            f.get("name") for f in devices.get("filesystems") or []}
        missing = [v.get("name") for v in vmi["spec"].get("volumes") or [] if v.get("name") not in named]
        if missing:
            devices["disks"] = list(devices.get("disks") or []) + [{"name": n} for n in missing]
        if not vmi["metadata"]["annotations"]:
            del vmi["metadata"]["annotations"]
        # vm.go:startVMI: createVMRevision, then vmi.Status.VirtualMachineRevisionName (the VMI kind has no /status
        # subresource: a create keeps its status).
        revision = self._create_vm_revision(vm)
        if revision is None:
            return
        vmi["status"] = {"virtualMachineRevisionName": revision}
        try:
            self.api.create(self._rt(VMI), "v1", meta["namespace"], vmi, self._opts())
        except errors.ApiError as exc:
            if exc.reason != "AlreadyExists":
                # Refused (e.g. by an admission hook while DataVolumes are not ready): no status write, or
                # the VM would flip-flop and wake this controller forever; the next VM event retries.
                if meta["uid"] not in self._create_failed:
                    self._create_failed.add(meta["uid"])
                    print("kubeapi: virt-controller could not create VMI %s/%s: %s" % (
                        meta["namespace"], meta["name"], exc.message), flush=True)
                return
        if not write_status:
            return

        def created(o):
            st = o.setdefault("status", {})
            st["created"] = True
            # vm.go:startVMI -> cleanupRestartRequired: the new VMI runs the current template.
            conds = st.get("conditions") or []
            if any(c.get("type") == "RestartRequired" for c in conds):
                st["conditions"] = [c for c in conds if c.get("type") != "RestartRequired"]
        self.api.write_status(self._rt(VM), meta["namespace"], meta["name"], created, "virt-controller")

    def _create_vm_revision(self, vm):
        """vm.go:createVMRevision: the ControllerRevision a VMI is started from, ``revision-start-vm-<uid>-<gen>``
        (data ``{"spec": <the VM's spec>}``, revision = the VM's generation, controller ownerReference to the VM);
        deleteOlderVMRevision first deletes the VM's revisions of other generations and keeps (reuses) the one of
        this generation. Returns its name, None when it could not be written (no VMI is created then)."""
        meta = vm["metadata"]
        ns, gen = meta["namespace"], meta.get("generation", 1)
        name = vm_revision_name(meta["uid"], gen)
        prefix = "revision-start-vm-%s-" % meta["uid"]
        rt = self._rt(CONTROLLER_REVISIONS)
        exists = False
        try:
            for cr in self.store.items(CONTROLLER_REVISIONS, ns):
                if not cr["metadata"]["name"].startswith(prefix):
                    continue
                if cr.get("revision") == gen:
                    exists = True
                    continue
                try:
                    self.api.delete(rt, "v1", ns, cr["metadata"]["name"], self._opts())
                except errors.ApiError as exc:
                    if exc.code != 404:
                        raise
            if not exists:
                # KubeVirt Creates it; here a server-side apply creates it, so that the API server serializes
                # `data` (a RawExtension, stored as sent) itself: compact with sorted keys, as KubeVirt's
                # json.Marshal of a map does. A Create would keep this client's json.dumps bytes, and as `data` is
                # immutable, kube-controller-manager's garbage collector could then never patch the revision to
                # orphan it (its patch re-serializes `data`: "field is immutable").
                self.api.apply(rt, "v1", ns, name, {
                    "apiVersion": "apps/v1", "kind": "ControllerRevision",
                    "metadata": {"name": name, "namespace": ns, "ownerReferences": [{
                        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
                        "name": meta["name"], "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}]},
                    "data": {"spec": clone(vm.get("spec") or {})}, "revision": gen}, self._opts())
        except errors.ApiError as exc:
            if exc.reason != "AlreadyExists":
                if meta["uid"] not in self._create_failed:
                    self._create_failed.add(meta["uid"])
                    print("kubeapi: virt-controller could not write ControllerRevision %s/%s: %s" % (
                        ns, name, exc.message), flush=True)
                return None
        return name

    def _started_template_spec(self, vmi):
        """The template spec the VMI was started from: its ControllerRevision's ``data.spec.template.spec``
        (vm.go:sync -> getLastVMRevisionSpec); None without a record (then RestartRequired is left as it is)."""
        name = ((vmi or {}).get("status") or {}).get("virtualMachineRevisionName")
        if not name:
            return None
        cr = self.store.get(CONTROLLER_REVISIONS, vmi["metadata"]["namespace"], name)
        if cr is None:
            return None
        return ((((cr.get("data") or {}).get("spec") or {}).get("template") or {}).get("spec")) or {}

    @staticmethod
    def _sync_restart_required(conds, vm, vmi, started):
        """vm.go:syncRestartRequired without live updates (no LiveUpdate rollout strategy, no hotplug): the VM's
        template spec against the one the VMI started from, a firmware UUID change neutralized when the VMI already
        runs with the VM's UUID (the firmware synchronizer persisting it). Sets ``RestartRequired=True`` when they
        differ, removes the condition when they do not."""
        current = ((vm.get("spec") or {}).get("template") or {}).get("spec") or {}
        last = clone(started)
        vmi_uuid = ((((vmi.get("spec") or {}).get("domain") or {}).get("firmware")) or {}).get("uuid")
        vm_uuid = (((current.get("domain") or {}).get("firmware")) or {}).get("uuid")
        if vmi_uuid and vmi_uuid == vm_uuid and isinstance(last.get("domain"), dict):
            last["domain"]["firmware"] = dict(last["domain"].get("firmware") or {}, uuid=vm_uuid)
        if last != current:
            _set_cond(conds, _cond("RestartRequired", "True", message=RESTART_MESSAGE))
        else:
            conds[:] = [c for c in conds if c.get("type") != "RestartRequired"]

    def _delete_vmi(self, ns, name):
        try:
            self.api.delete(self._rt(VMI), "v1", ns, name, self._opts())
        except errors.ApiError:
            pass

    def _update_vm_status(self, ns, name):
        vm = self.store.get(VM, ns, name)
        if vm is None:
            return
        vmi = self.store.get(VMI, ns, name)
        strategy = run_strategy(vm)
        started = self._started_template_spec(vmi)

        def mutate(o):
            st = o.setdefault("status", {})
            before = clone(st)
            conds = st.setdefault("conditions", [])
            vst = (vmi or {}).get("status") or {}
            phase = vst.get("phase", "")
            if vmi is None:
                st["printableStatus"] = "Stopped"
                st["ready"] = False
                st["created"] = False
                _set_cond(conds, _cond("Ready", "False", "VMINotExists", "VMI does not exist"))
                conds[:] = [c for c in conds if c["type"] in ("Ready", "Failure", "RestartRequired")]
            else:
                st["created"] = True
                deleting = bool(vmi["metadata"].get("deletionTimestamp"))
                paused = any(c.get("type") == "Paused" and c.get("status") == "True"
                             for c in vst.get("conditions") or [])
                if deleting or (strategy == "Halted" and phase != "Succeeded"):
                    st["printableStatus"] = "Stopping"
                elif phase == "Running":
                    # vm.go:setPrintableStatus -> isVirtualMachineStatusMigrating: a migration in flight.
                    migrating = vst.get("migrationState") and not vst["migrationState"].get("completed")
                    st["printableStatus"] = "Paused" if paused else ("Migrating" if migrating else "Running")
                elif phase in ("Succeeded", "Failed"):
                    st["printableStatus"] = "Stopped" if phase == "Succeeded" else "CrashLoopBackOff"
                elif phase in ("", "Pending", "Scheduling", "Scheduled"):
                    st["printableStatus"] = "Starting" if phase else "Provisioning"
                ready = phase == "Running" and not deleting and any(
                    c.get("type") == "Ready" and c.get("status") == "True" for c in vst.get("conditions") or [])
                st["ready"] = ready
                if ready:
                    _set_cond(conds, _cond("Ready", "True"))
                else:
                    _set_cond(conds, _cond("Ready", "False", "GuestNotRunning" if phase else "PodNotExists",
                                           "Guest VM is not reported as running"))
                for c in vst.get("conditions") or []:
                    if c.get("type") not in ("Ready", "Failure", "RestartRequired"):
                        _set_cond(conds, clone(c))
                if not paused:
                    conds[:] = [c for c in conds if c["type"] != "Paused"]
                # vm.go:sync -> syncRestartRequired, written with observedGeneration by updateStatus. Only for an
                # active VMI: a stopping or finished one is about to be replaced (the next VMI clears it).
                if started is not None and not deleting and phase not in ("Succeeded", "Failed"):
                    self._sync_restart_required(conds, o, vmi, started)
            st["runStrategy"] = strategy
            gen = o["metadata"].get("generation", 1)
            st["desiredGeneration"] = gen
            st["observedGeneration"] = gen
            if st == before:
                return False
        self.api.write_status(self._rt(VM), ns, name, mutate, "virt-controller")

    # --- VMI ---------------------------------------------------------------------------------------------
    def sync_vmi(self, ns, name):
        vmi = self.store.get(VMI, ns, name)
        if vmi is None:
            return
        # pkg/virt-controller/watch/vmi/vmi.go:Controller.execute does the same first step as the VM controller.
        if self._observe_api_version(VMI, vmi):
            return
        uid = vmi["metadata"]["uid"]
        phase = (vmi.get("status") or {}).get("phase", "")
        if vmi["metadata"].get("deletionTimestamp"):
            if phase in ("Succeeded", "Failed"):
                self._later((ns, name, "final"), self._finalize, ns, name, uid)
            else:
                self._later((ns, name, "stop"), self._set_phase, ns, name, uid, "Succeeded")
            return
        nxt = NEXT_PHASE.get(phase)
        if nxt == "Pending":
            self._set_phase(ns, name, uid, "Pending")
        elif nxt:
            self._later((ns, name, nxt), self._set_phase, ns, name, uid, nxt)

    def _pick_node(self, vmi):
        nodes = [n for n in self.store.items(NODES) if any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (n.get("status") or {}).get("conditions") or [])
            and not (n.get("spec") or {}).get("unschedulable")]
        if getattr(self.app, "realguests", None) is not None:   # real guests run on the 127.0.0.1 node only
            nodes = self.app.realguests.filter_nodes(vmi, nodes)
        selector = (vmi.get("spec") or {}).get("nodeSelector") or {}
        nodes = [n for n in nodes if all((n["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())]
        if not nodes:
            return None
        return nodes[next(self._node_rr) % len(nodes)]

    def _set_phase(self, ns, name, uid, phase):
        vmi = self.store.get(VMI, ns, name)
        if vmi is None or vmi["metadata"]["uid"] != uid:
            return
        extra = {}
        if phase == "Scheduled":
            node = self._pick_node(vmi)
            if node is None:
                def unschedulable(o):
                    _set_cond(o.setdefault("status", {}).setdefault("conditions", []), _cond(
                        "PodScheduled", "False", "Unschedulable", "0/%d nodes are available" % len(
                            self.store.items(NODES))))
                self.api.write_status(self._rt(VMI), ns, name, unschedulable, "virt-controller")
                self._later((ns, name, "Scheduled"), self._set_phase, ns, name, uid, "Scheduled")
                return
            extra["node"] = node["metadata"]["name"]
        real = None
        if phase == "Running" and getattr(self.app, "realguests", None) is not None and \
                self.app.realguests.handles(vmi):
            real = self.app.realguests.launch(vmi)   # boots QEMU; returns the status it adds (realguest.py)
        if phase == "Running":
            n = next(self._ip)
            extra["ip"] = "10.244.%d.%d" % (n // 250, n % 250 + 2)
            extra["mac"] = "02:00:00:%02x:%02x:%02x" % ((n >> 16) & 255, (n >> 8) & 255, n & 255)

        def mutate(o):
            st = o.setdefault("status", {})
            st["phase"] = phase
            st.setdefault("phaseTransitionTimestamps", []).append({"phase": phase,
                                                                   "phaseTransitionTimestamp": now()})
            conds = st.setdefault("conditions", [])
            if phase == "Pending":
                if FINALIZER not in (o["metadata"].get("finalizers") or []):
                    o["metadata"].setdefault("finalizers", []).append(FINALIZER)
                st.setdefault("guestOSInfo", {})
                st["qosClass"] = "Burstable"
            elif phase == "Scheduling":
                _set_cond(conds, _cond("Ready", "False", "GuestNotRunning", "Guest VM is not reported as running"))
            elif phase == "Scheduled":
                st["nodeName"] = extra["node"]
                o["metadata"].setdefault("labels", {})["kubevirt.io/nodeName"] = extra["node"]
                st["activePods"] = {o["metadata"]["uid"][:8] + "-pod": extra["node"]}
                conds[:] = [c for c in conds if c.get("type") != "PodScheduled"]
            elif phase == "Running":
                st["interfaces"] = self._interfaces(o, extra["ip"], extra["mac"])
                st["guestOSInfo"] = self._guest_os(o)
                st["launcherContainerImageVersion"] = "quay.io/kubevirt/virt-launcher:v1.9.0"
                st["migrationMethod"] = "BlockMigration"
                st["migrationTransport"] = "Unix"
                _set_cond(conds, _cond("Ready", "True"))
                _set_cond(conds, live_migration_condition(o, self.store))
                _set_cond(conds, _cond("AgentConnected", "True"))
                if (o.get("spec") or {}).get("startStrategy") == "Paused":
                    _set_cond(conds, _cond("Paused", "True", "PausedStartStrategy",
                                           "VMI was started in paused state"))
            elif phase == "Succeeded":
                _set_cond(conds, _cond("Ready", "False", "PodTerminating", "virt-launcher pod is terminating"))
                conds[:] = [c for c in conds if c.get("type") not in ("AgentConnected", "Paused")]
            if real is not None:
                real(o)
        self.api.write_status(self._rt(VMI), ns, name, mutate, "virt-handler")

    def _interfaces(self, vmi, ip, mac):
        devices = (((vmi.get("spec") or {}).get("domain") or {}).get("devices") or {})
        ifaces = devices.get("interfaces")
        networks = (vmi.get("spec") or {}).get("networks")
        if ifaces is None and networks is None:
            ifaces = [{"name": "default"}]
        ifaces = ifaces or []
        out = []
        for i, iface in enumerate(ifaces):
            entry = {"name": iface.get("name"), "interfaceName": "eth%d" % i,
                     "mac": iface.get("macAddress") or mac[:-2] + "%02x" % ((int(mac[-2:], 16) + i * 16) % 256),
                     "infoSource": "domain, guest-agent", "queueCount": 1, "linkState": "up"}
            if i == 0:
                entry["ipAddress"] = ip
                entry["ipAddresses"] = [ip]
                entry["podInterfaceName"] = "eth0"
            out.append(entry)
        return out

    def _guest_os(self, vmi):
        text = str((vmi.get("spec") or {}).get("volumes") or "").lower() + vmi["metadata"]["name"].lower()
        for key in ("fedora", "cirros", "alpine", "ubuntu", "debian"):
            if key in text:
                return dict(GUESTS[key])
        return dict(GUESTS["fedora"])

    def _finalize(self, ns, name, uid):
        vmi = self.store.get(VMI, ns, name)
        if vmi is None or vmi["metadata"]["uid"] != uid:
            return

        def drop(o):
            o["metadata"]["finalizers"] = [f for f in o["metadata"].get("finalizers") or [] if f != FINALIZER]
        self.api.write_status(self._rt(VMI), ns, name, drop, "virt-controller")

    # --- migrations ----------------------------------------------------------------------------------------
    # pkg/virt-controller/watch/migration/migration.go (Controller.sync/updateStatus) and virt-handler's migration
    # source/target (pkg/virt-handler/vm.go): Pending -> Scheduling (target pod created) -> Scheduled (target pod
    # scheduled) -> PreparingTarget (handed off: the VMI's migrationState names source and target) -> TargetReady ->
    # Running (startTimestamp) -> Succeeded (the VMI on the target node, endTimestamp, completed). A target pod that
    # no node can take keeps the migration in Scheduling until the unschedulable timeout, then it is Failed.
    # Deleting an in-flight migration aborts it (abortRequested, abortStatus Succeeded): the VMI stays where it was.
    MIGRATION_PHASES = ["Pending", "Scheduling", "Scheduled", "PreparingTarget", "TargetReady", "Running",
                        "Succeeded"]
    HANDED_OFF = ("PreparingTarget", "TargetReady", "Running")

    def _migration_rt(self):
        return self._rt(VMIM)

    def _unschedulable_timeout(self, mig):
        """migration.go:getUnschedulablePendingTimeoutSeconds: the VMIM's annotation, else 300 s (scaled by the
        emulator's step: 45 s with timing "fast", 300 s with "normal")."""
        value = ((mig["metadata"].get("annotations") or {}).get(MIGRATION_UNSCHEDULABLE_TIMEOUT_ANNOTATION))
        try:
            return float(int(value))
        except (TypeError, ValueError):
            return DEFAULT_UNSCHEDULABLE_TIMEOUT * max(self.step, 0.01)

    def _migration_run_seconds(self, vmi):
        """How long the memory transfer takes: the guest memory over migrations.bandwidthPerMigration of the KubeVirt
        CR (virt-handler's migration monitor), one step when no bandwidth is set (unlimited)."""
        bandwidth = None
        for kv in self.store.items(("kubevirt.io", "kubevirts")):
            bandwidth = parse_quantity((((kv.get("spec") or {}).get("configuration") or {}).get("migrations") or {})
                                       .get("bandwidthPerMigration"))
            break
        if not bandwidth:
            return self.step
        return max(self.step, guest_memory_bytes(vmi) / float(bandwidth))

    def sync_migration(self, ns, name):
        mig = self.store.get(VMIM, ns, name)
        if mig is None:
            return
        uid = mig["metadata"]["uid"]
        phase = (mig.get("status") or {}).get("phase", "")
        if phase in ("Succeeded", "Failed"):
            if mig["metadata"].get("deletionTimestamp") or MIGRATION_FINALIZER in (mig["metadata"].get("finalizers") or []):
                # migration.go:updateStatus: "Remove the finalizer ... if the migration has already completed".
                self._drop_migration_finalizer(ns, name)
            self._gc_finalized_migrations(ns, (mig.get("spec") or {}).get("vmiName", ""))
            return
        if mig["metadata"].get("deletionTimestamp"):
            self._later((ns, name, "vmim-abort"), self._abort_migration, ns, name, uid)
            return
        vmi = self.store.get(VMI, ns, (mig.get("spec") or {}).get("vmiName", ""))
        if vmi is None or (vmi.get("status") or {}).get("phase") != "Running":
            self._set_migration_phase(ns, name, uid, "Failed", "VMI is not running")
            return
        nxt = self.MIGRATION_PHASES[self.MIGRATION_PHASES.index(phase) + 1] if phase else "Pending"
        if nxt == "Pending":
            self._set_migration_phase(ns, name, uid, nxt)
        else:
            delay = self._migration_run_seconds(vmi) if nxt == "Succeeded" else self.step
            self._later((ns, name, "vmim-" + nxt), self._set_migration_phase, ns, name, uid, nxt, None, delay)

    def _later_delay(self, key, delay, fn, *args):
        if key in self._pending:
            return
        self._pending.add(key)

        def run():
            self._pending.discard(key)
            fn(*args)
        self.after(delay, run)

    def _migration_targets(self, vmi, mig):
        """The nodes a target pod could be scheduled to: Ready, not cordoned, not the source, matching the VMI's
        nodeSelector and the migration's spec.addedNodeSelector (migration.go: the target pod's affinity)."""
        source = (vmi.get("status") or {}).get("nodeName")
        wanted = dict((vmi.get("spec") or {}).get("nodeSelector") or {})
        wanted.update((mig.get("spec") or {}).get("addedNodeSelector") or {})
        out = []
        for node in self.store.items(NODES):
            labels = node["metadata"].get("labels") or {}
            ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                        for c in (node.get("status") or {}).get("conditions") or [])
            if node["metadata"]["name"] == source or not ready or (node.get("spec") or {}).get("unschedulable"):
                continue
            if all(labels.get(k) == v for k, v in wanted.items()):
                out.append(node)
        if getattr(self.app, "realguests", None) is not None:
            out = self.app.realguests.filter_nodes(vmi, out)
        return out

    def _set_migration_phase(self, ns, name, uid, phase, reason=None, delay=None):
        if delay is not None and delay > self.step:
            # The Succeeded step of a slow transfer: wait the rest of it (an abort in between wins).
            self._later_delay((ns, name, "vmim-run"), delay - self.step, self._set_migration_phase, ns, name, uid,
                              phase, reason)
            return
        mig = self.store.get(VMIM, ns, name)
        if mig is None or mig["metadata"]["uid"] != uid or mig["metadata"].get("deletionTimestamp"):
            return
        if (mig.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return
        vmi_name = (mig.get("spec") or {}).get("vmiName", "")
        vmi = self.store.get(VMI, ns, vmi_name)
        status = mig.get("status") or {}
        target = status.get("migrationState", {}).get("targetNode") if status.get("migrationState") else None
        if phase != "Failed" and (vmi is None or (vmi.get("status") or {}).get("phase") != "Running"):
            phase, reason = "Failed", "VMI is not running"
        if phase == "Scheduled":
            nodes = self._migration_targets(vmi, mig)
            if not nodes:
                entered = next((t.get("phaseTransitionTimestamp") for t in status.get("phaseTransitionTimestamps") or []
                                if t.get("phase") == "Scheduling"), None)
                waited = self._since(entered)
                if waited < self._unschedulable_timeout(mig):
                    # The target pod stays Pending (Unschedulable); the scheduler tries again as nodes change.
                    self._later_delay((ns, name, "vmim-Scheduled"), self.step, self._set_migration_phase, ns, name,
                                      uid, "Scheduled")
                    return
                # migration.go:handlePendingPodTimeout deletes the target pod, then the migration is interrupted.
                phase = "Failed"
                reason = "unschedulable pod %s/%s timeout period exceeded" % (ns, self._target_pod(mig))
            else:
                target = nodes[next(self._node_rr) % len(nodes)]["metadata"]["name"]
        source = ((vmi or {}).get("status") or {}).get("nodeName")
        vmi_state = None
        if phase == "PreparingTarget":
            # migration.go:handleTargetPodHandoff: the VMI's migrationState names both ends of this migration.
            vmi_state = {"migrationUid": uid, "sourceNode": source, "targetNode": target,
                         "sourcePod": self._source_pod(vmi), "targetPod": self._target_pod(mig)}
        elif phase == "Running":
            vmi_state = {"startTimestamp": now(), "mode": "PreCopy", "targetNodeDomainDetected": True}
        elif phase == "Succeeded":
            vmi_state = {"endTimestamp": now(), "completed": True, "targetNodeDomainReadyTimestamp": now()}
        elif phase == "Failed" and status.get("phase") in self.HANDED_OFF:
            vmi_state = {"endTimestamp": now(), "completed": True, "failed": True, "failureReason": reason}
        if vmi_state is not None:
            self._write_vmi_migration(ns, vmi_name, uid, vmi_state, move_to=target if phase == "Succeeded" else None)
        self._write_migration_status(ns, name, phase, target, reason)

    @staticmethod
    def _since(stamp):
        if not stamp:
            return 0.0
        then = datetime.datetime.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)
        return (datetime.datetime.now(datetime.timezone.utc) - then).total_seconds()

    @staticmethod
    def _source_pod(vmi):
        pods = ((vmi or {}).get("status") or {}).get("activePods") or {}
        return next(iter(pods), "")

    @staticmethod
    def _target_pod(mig):
        return "virt-launcher-%s-%s" % ((mig.get("spec") or {}).get("vmiName", ""), mig["metadata"]["uid"][:5])

    def _write_vmi_migration(self, ns, vmi_name, uid, fields, move_to=None):
        def mutate(o):
            st = o.setdefault("status", {})
            state = st.get("migrationState") or {}
            if state.get("migrationUid") not in (None, uid):
                if "sourceNode" not in fields:
                    return False    # another migration took the VMI over
                state = {}
            state.update(fields)
            st["migrationState"] = state
            if move_to:
                # virt-handler on the target: the VMI now runs there (nodeName, its label, the new pod).
                st["nodeName"] = move_to
                o["metadata"].setdefault("labels", {})[NODE_NAME_LABEL] = move_to
                st["activePods"] = {uid[:8] + "-pod": move_to}
        self.api.write_status(self._rt(VMI), ns, vmi_name, mutate, "virt-handler")

    def _write_migration_status(self, ns, name, phase, target=None, reason=None):
        def mutate(o):
            st = o.setdefault("status", {})
            st["phase"] = phase
            st.setdefault("phaseTransitionTimestamps", []).append({"phase": phase, "phaseTransitionTimestamp": now()})
            if phase == "Scheduling":
                st["migrationState"] = {"targetPod": self._target_pod(o)}
            if target and phase in ("Scheduled", "PreparingTarget"):
                st.setdefault("migrationState", {})["targetNode"] = target
            if phase in ("Succeeded", "Failed"):
                # migration.go:updateStatus: a final migration keeps the VMI's migrationState of this migration.
                vmi = self.store.get(VMI, ns, (o.get("spec") or {}).get("vmiName", ""))
                state = clone(((vmi or {}).get("status") or {}).get("migrationState") or {})
                if state.get("migrationUid") == o["metadata"]["uid"]:
                    st["migrationState"] = state
                elif phase == "Failed":
                    st["migrationState"] = dict(st.get("migrationState") or {}, failed=True, completed=True)
                if phase == "Failed" and reason:
                    st.setdefault("migrationState", {}).setdefault("failureReason", reason)
        self.api.write_status(self._migration_rt(), ns, name, mutate, "virt-controller")

    def _abort_migration(self, ns, name, uid):
        """An in-flight migration being deleted (migration.go:sync, ``migration.DeletionTimestamp != nil``): before the
        hand-off it fails at once (condition migrationAbortRequested); after it, markMigrationAbortInVmiStatus sets
        abortRequested and virt-handler aborts the transfer (migrationState.abortStatus Succeeded, failed): the VMI
        stays on its source node. Then the finalizer goes and the migration with it."""
        mig = self.store.get(VMIM, ns, name)
        if mig is None or mig["metadata"]["uid"] != uid:
            return
        phase = (mig.get("status") or {}).get("phase", "")
        vmi_name = (mig.get("spec") or {}).get("vmiName", "")
        if phase in self.HANDED_OFF:
            self._write_vmi_migration(ns, vmi_name, uid, {"abortRequested": True, "abortStatus": "Succeeded",
                                                          "failed": True, "completed": True, "endTimestamp": now(),
                                                          "failureReason": "Live migration aborted "})

        def mutate(o):
            st = o.setdefault("status", {})
            conds = st.setdefault("conditions", [])
            if not any(c.get("type") == "migrationAbortRequested" for c in conds):
                conds.append({"type": "migrationAbortRequested", "status": "True", "lastProbeTime": now(),
                              "lastTransitionTime": None})
            if st.get("phase") not in ("Succeeded", "Failed"):
                st["phase"] = "Failed"
                st.setdefault("phaseTransitionTimestamps", []).append({"phase": "Failed",
                                                                       "phaseTransitionTimestamp": now()})
        self.api.write_status(self._migration_rt(), ns, name, mutate, "virt-controller")
        self._drop_migration_finalizer(ns, name)

    def _gc_finalized_migrations(self, ns, vmi_name):
        """migration.go:garbageCollectFinalizedMigrations: only the 5 newest finished migrations of a VMI are kept
        (defaultFinalizedMigrationGarbageCollectionBuffer), the older ones are deleted, oldest first."""
        done = [m for m in self.store.items(VMIM, ns) if (m.get("spec") or {}).get("vmiName") == vmi_name
                and (m.get("status") or {}).get("phase") in ("Succeeded", "Failed")
                and not m["metadata"].get("deletionTimestamp")]
        done.sort(key=lambda m: (m["metadata"].get("creationTimestamp") or "", int(m["metadata"]["resourceVersion"])))
        for mig in done[:max(0, len(done) - FINALIZED_MIGRATIONS_KEPT)]:
            try:
                self.api.delete(self._migration_rt(), "v1", ns, mig["metadata"]["name"], self._opts())
            except errors.ApiError:
                pass

    def _drop_migration_finalizer(self, ns, name):
        mig = self.store.get(VMIM, ns, name)
        if mig is None or MIGRATION_FINALIZER not in (mig["metadata"].get("finalizers") or []):
            return
        rest = [f for f in mig["metadata"]["finalizers"] if f != MIGRATION_FINALIZER]
        ops = [{"op": "test", "path": "/metadata/finalizers", "value": mig["metadata"]["finalizers"]},
               {"op": "replace", "path": "/metadata/finalizers", "value": rest}]
        try:
            self.api.patch(self._migration_rt(), "v1", ns, name, "application/json-patch+json", ops, self._opts())
        except errors.ApiError:
            pass    # changed in between: its event brings the migration back here

    # --- subresources (virt-api) -------------------------------------------------------------------------
    def _get_vm(self, ns, name):
        vm = self.store.get(VM, ns, name)
        if vm is None:
            raise _virt_not_found("virtualmachine", name)
        return vm

    def _running_vmi(self, ns, name):
        vmi = self.store.get(VMI, ns, name)
        if vmi is None or vmi["metadata"].get("deletionTimestamp") or \
                (vmi.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return None
        return vmi

    def _patch_spec(self, vm, dry, **changes):
        if dry:
            return
        ops = [{"op": "test", "path": "/metadata/resourceVersion", "value": vm["metadata"]["resourceVersion"]}]
        spec = vm.get("spec") or {}
        for k, v in changes.items():
            ops.append({"op": "replace" if k in spec else "add", "path": "/spec/" + k, "value": v})
        self.api.patch(self._rt(VM), "v1", vm["metadata"]["namespace"], vm["metadata"]["name"],
                       "application/json-patch+json", ops, self._opts("virt-api"))

    def _state_request(self, vm, dry, *reqs):
        if dry:
            return

        def add(o):
            st = o.setdefault("status", {})
            st["stateChangeRequests"] = (st.get("stateChangeRequests") or []) + list(reqs)
        self.api.write_status(self._rt(VM), vm["metadata"]["namespace"], vm["metadata"]["name"], add, "virt-api")

    def _flip_running(self, vm, dry, running):
        if "running" in (vm.get("spec") or {}) and not (vm.get("spec") or {}).get("runStrategy"):
            self._patch_spec(vm, dry, running=running)
        else:
            self._patch_spec(vm, dry, runStrategy="Always" if running else "Halted")

    def sub_start(self, ns, name, body, dry):
        vm = self._get_vm(ns, name)
        strategy = run_strategy(vm)
        vmi = self._running_vmi(ns, name)
        if strategy in ("Always", "Once"):
            raise _vm_conflict(name, "%s does not support manual start requests" % strategy)
        if vmi is not None:
            raise _vm_conflict(name, "VM is already running")
        if strategy == "Halted":
            self._flip_running(vm, dry, True)
        else:
            self._state_request(vm, dry, {"action": "Start"})
        return 202, None

    def sub_stop(self, ns, name, body, dry):
        vm = self._get_vm(ns, name)
        strategy = run_strategy(vm)
        vmi = self.store.get(VMI, ns, name)
        if strategy == "Halted" and body.get("gracePeriod") is None:
            raise _vm_conflict(name, "VM is not running")
        if vmi is None and strategy in ("Manual", "RerunOnFailure"):
            raise _vm_conflict(name, "VM is not running")
        if strategy in ("Always", "Once"):
            self._flip_running(vm, dry, False)
        elif strategy in ("Manual", "RerunOnFailure"):
            self._state_request(vm, dry, {"action": "Stop", "uid": vmi["metadata"]["uid"]})
        elif vmi is not None and not dry:
            self._delete_vmi(ns, name)
        return 202, None

    def sub_restart(self, ns, name, body, dry):
        vm = self._get_vm(ns, name)
        strategy = run_strategy(vm)
        if strategy in ("Halted", "Once"):
            raise _vm_conflict(name, "RunStategy %s does not support manual restart requests" % strategy)
        if body.get("gracePeriodSeconds") not in (None, 0):
            raise errors.bad_request("For force restart, only gracePeriod=0 is supported for now")
        vmi = self._running_vmi(ns, name)
        if vmi is None:
            raise _vm_conflict(name, "VM is not running")
        if dry:
            return 202, None
        if strategy == "Manual":
            self._state_request(vm, dry, {"action": "Stop", "uid": vmi["metadata"]["uid"]}, {"action": "Start"})
        else:
            self._delete_vmi(ns, name)
        return 202, None

    def sub_migrate(self, ns, name, body, dry):
        self._get_vm(ns, name)
        vmi = self._running_vmi(ns, name)
        if vmi is None or (vmi.get("status") or {}).get("phase") != "Running":
            raise _vm_conflict(name, "VM is not running")
        if not dry:
            mig = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstanceMigration",
                   "metadata": {"generateName": "kubevirt-migrate-vm-", "namespace": ns},
                   "spec": {"vmiName": name}}
            if body.get("addedNodeSelector"):
                mig["spec"]["addedNodeSelector"] = body["addedNodeSelector"]
            try:
                self.api.create(self._rt(VMIM), "v1", ns, mig, self._opts("virt-api"))
            except errors.ApiError as exc:
                # lifecycle.go:MigrateVMRequestHandler -> createMigrationJob: errors.NewInternalError(err)
                raise errors.ApiError(500, "InternalError", "Internal error occurred: %s" % exc.message)
        return 202, None

    def _get_vmi(self, ns, name):
        vmi = self.store.get(VMI, ns, name)
        if vmi is None:
            raise _virt_not_found("virtualmachineinstance", name)
        return vmi

    def _paused(self, vmi):
        """pkg/virt-api/rest/lifecycle.go validates with HasCondition(Paused): the condition, whatever its status
        (virt-handler only ever writes it True)."""
        return any(c.get("type") == "Paused" for c in (vmi.get("status") or {}).get("conditions") or [])

    # The VMI's Ready follows its pod's, and the pod carries the readiness gate kubevirt.io/virtual-machine-unpaused
    # (virt-controller/services/template.go:readinessGates; watch/vmi/lifecycle.go:syncPausedConditionToPod sets it
    # False while paused), so a paused VMI is not Ready (syncReadyConditionFromPod copies kubelet's pod condition).
    UNPAUSED_GATE = "kubevirt.io/virtual-machine-unpaused"

    def sub_pause(self, ns, name, body, dry):
        """lifecycle.go:PauseVMIRequestHandler; virt-handler's vm.go:calculatePausedCondition (PausedByUser)."""
        vmi = self._get_vmi(ns, name)
        if (vmi.get("status") or {}).get("phase") != "Running":
            raise _vmi_conflict(name, "VM is not running")
        probe = (vmi.get("spec") or {}).get("livenessProbe")
        if probe is not None and probe.get("guestAgentPing") is None:
            raise errors.ApiError(403, "Forbidden", 'virtualmachineinstance.kubevirt.io "%s" is forbidden: Pausing VMIs '
                                  'with a non-GuestAgentPing LivenessProbe is not supported' % name,
                                  {"name": name, "group": "kubevirt.io", "kind": "virtualmachineinstance"})
        if self._paused(vmi):
            raise _vmi_conflict(name, "VMI is already paused")
        if not dry:
            def pause(o):
                conds = o["status"].setdefault("conditions", [])
                _set_cond(conds, _cond("Paused", "True", "PausedByUser", "VMI was paused by user"))
                _set_cond(conds, _cond("Ready", "False", "ReadinessGatesNotReady", 'the status of pod readiness gate '
                                       '"%s" is not "True", but False' % self.UNPAUSED_GATE))
            self.api.write_status(self._rt(VMI), ns, name, pause, "virt-handler")
        return 200, None

    def sub_unpause(self, ns, name, body, dry):
        """lifecycle.go:UnpauseVMIRequestHandler (refused while the VM's snapshot is in progress)."""
        vm = self.store.get(VM, ns, name)
        if vm is not None and (vm.get("status") or {}).get("snapshotInProgress") is not None:
            raise _vm_conflict(name, "VM snapshot is in progress")
        vmi = self._get_vmi(ns, name)
        if (vmi.get("status") or {}).get("phase") != "Running":
            raise _vmi_conflict(name, "VMI is not running")
        if not self._paused(vmi):
            raise _vmi_conflict(name, "VMI is not paused")
        if not dry:
            def unpause(o):
                conds = [c for c in o["status"].get("conditions") or [] if c["type"] != "Paused"]
                _set_cond(conds, _cond("Ready", "True"))
                o["status"]["conditions"] = conds
            self.api.write_status(self._rt(VMI), ns, name, unpause, "virt-handler")
        return 200, None

    def sub_guestosinfo(self, ns, name, body, dry):
        vmi = self._get_vmi(ns, name)
        if (vmi.get("status") or {}).get("phase") != "Running":
            raise _vmi_conflict(name, "VMI is not running")
        return 200, {"guestAgentVersion": "9.0.0", "hostname": name, "os": vmi["status"].get("guestOSInfo", {}),
                     "timezone": "UTC, 0"}
