"""Simulated KubeVirt v1.9.0 snapshot and restore controllers (snapshot.kubevirt.io/v1beta1, run with ``virt``).

Read from kubevirt/kubevirt v1.9.0, pkg/storage/snapshot/ (snapshot.go, source.go, util.go, restore.go) and
staging/src/kubevirt.io/api/snapshot/v1beta1/types.go. One controller transition per timing step (``self.step``).

VirtualMachineSnapshot (snapshot.go:updateVMSnapshot, updateSnapshotStatus):
  * not terminating: the finalizer ``snapshot.kubevirt.io/vmsnapshot-protection`` (addSnapshotFinalizer);
  * updateSnapshotStatus first writes ``status = {readyToUse: false, phase: InProgress, sourceUID}``, the
    conditions Progressing (True "Source locked and operation in progress" / False "Source not locked", or False
    "Source does not exist" without the VM) and Ready False "Not ready"; with the source present the indications
    (updateSnapshotSourceIndications): ``Online`` when a VMI exists, plus ``Paused`` (VMI Paused=True),
    ``GuestAgent`` (VMI has an AgentConnected condition) or ``NoGuestAgent``; ``status.indications`` and
    ``status.sourceIndications`` (with snapshotIndicationMessages' texts);
  * source.go:vmSnapshotSource.Lock: the VM's ``status.snapshotInProgress = <snapshot>`` and the VM finalizer
    ``snapshot.kubevirt.io/snapshot-source-protection``; another snapshot in progress keeps it unlocked
    (lockMsg ``Source not locked snapshot "x" in progress``);
  * locked: createContent makes ``vmsnapshot-content-<snapshot uid>`` (finalizer
    ``snapshot.kubevirt.io/vmsnapshotcontent-protection``, spec ``virtualMachineSnapshotName``,
    ``source.virtualMachine`` = source.go:Spec: metadata without managedFields, the VM spec (online: the spec of the
    ControllerRevision the VMI started from, with the VM's current volumes, disks and dataVolumeTemplates), empty
    status; ``volumeBackups``: one per PVC/DataVolume volume, ``{volumeName, persistentVolumeClaim: {metadata, spec},
    volumeSnapshotName: vmsnapshot-<snapshot uid>-volume-<volume>}``);
  * updateVMSnapshotContent: the content's status ``{creationTime, readyToUse: true, volumeSnapshotStatus}`` (here
    in one step: the VolumeSnapshots are not created, their status is simulated as ready);
  * the snapshot copies ``virtualMachineSnapshotContentName``, ``creationTime``, ``readyToUse``, ``error`` from the
    content -> phase Succeeded, Progressing False "Operation complete", Ready True "Ready", ``snapshotVolumes``
    (updateSnapshotSnapshotableVolumes: includedVolumes = volumes with a backup, excludedVolumes = the others, e.g.
    containerDisk, cloudInitNoCloud); then canUnlockSource -> Unlock (finalizer and snapshotInProgress removed);
  * deadline (util.go:timeUntilDeadline): creationTimestamp + ``spec.failureDeadline`` (default
    types.go:DefaultFailureDeadline 5m, ``0s`` = none) passed while still in progress -> phase Failed, Failure True
    "snapshot deadline exceeded", Progressing False "Operation failed"; the source is unlocked, the unready content
    deleted (shouldDeleteContent);
  * a missing VM: the snapshot stays InProgress (Progressing False "Source does not exist") until its deadline;
  * deletion: the content is deleted when ``spec.deletionPolicy`` is Delete (the default) or it is not ready, kept
    (without its finalizer) under Retain; a deleting snapshot still in progress gets phase Deleting; the finalizer
    goes once the source is unlocked.

VirtualMachineRestore (restore.go:updateVMRestore):
  * first ``status = {complete: false}``, Progressing True / Ready False "Initializing VirtualMachineRestore";
  * an existing target VM owns it (Own: controller ownerReference) and the finalizer
    ``snapshot.kubevirt.io/vmrestore-protection`` is added;
  * target not ready (a VMI exists, vmRestoreTarget.Ready) -> handleVMRestoreTargetNotReady per
    ``spec.targetReadinessPolicy`` (default WaitGracePeriod): WaitGracePeriod waits (waitGracePeriodMessage) and
    fails after DefaultGracePeriod 5m from creation (restoreGracePeriodExceededError), WaitEventually waits
    (waitEventuallyMessage), FailImmediate fails (targetNotReadyFailureMessage), StopTarget calls the VM's stop
    subresource (stopTargetMessage). Failing = doUpdateErrorWithFailure: Failure True, Progressing/Ready False with
    the message;
  * getVMSnapshot errors (``VMSnapshot ns/name does not exist``, ``... failed and is invalid to use``, ``... not
    ready``) are doUpdateError: Progressing/Ready False with the message, no Failure, retried;
  * a target VM other than the snapshot's source: errorRestoreToExistingTarget;
  * UpdateRestoreInProgress: the VM's ``status.restoreInProgress = <restore>`` (another one: ``vm restore x in
    progress``);
  * reconcileVolumeRestores: ``status.restores`` ``{volumeName, persistentVolumeClaim: restore-<restore uid>-<volume>
    (RandomizeNames; InPlace keeps the claim, PrefixTargetName <target>-<volume>, volumeRestoreOverrides win),
    volumeSnapshotName}`` (+ ``dataVolumeName`` for dataVolumeTemplates), "Creating new PVCs" / "Waiting for new
    PVCs" (no PVC is created here);
  * Reconcile -> generateRestoredVMSpec + reconcileSpec: the VM's spec replaced by the snapshot's copy, volumes
    pointing at the restored claims, the target's run strategy kept (``running`` false if it used ``running``), the
    annotation ``restore.kubevirt.io/lastRestoreUID = <restore name>-<restore uid>``, the legacy firmware UUID
    (setLegacyFirmwareUUID) when the names match; a missing target is created (runStrategy Halted, the snapshot
    VM's labels/annotations); "Updating target spec" / "Waiting for target update";
  * UpdateDoneRestore (restoreInProgress removed), ``complete: true``, ``restoreTime``, Progressing False / Ready
    True "Operation complete";
  * deletion (handleVMRestoreDeletion): restoreInProgress removed, "VM restore is deleting", finalizer removed.

Not simulated: VolumeSnapshot/VolumeSnapshotClass objects and their errors, PVC checks of Lock (verifyVolumes:
missing/unbound PVCs), guest freeze/unfreeze and QuiesceTimeout, PartialSnapshot, the VM's
``status.volumeSnapshotStatuses``, instancetype ControllerRevisions, restore PVC/DataVolume creation and
``spec.patches``, v1alpha1 objects (the controller watches the stored v1beta1 version).
"""
import re
from datetime import datetime, timezone

from .. import errors
from ..api import Options, now
from . import Controller
from .virt import legacy_firmware_uuid
from ..util import clone

VM = ("kubevirt.io", "virtualmachines")
VMI = ("kubevirt.io", "virtualmachineinstances")
CONTROLLER_REVISIONS = ("apps", "controllerrevisions")
PVC = ("", "persistentvolumeclaims")
SNAP = ("snapshot.kubevirt.io", "virtualmachinesnapshots")
CONTENT = ("snapshot.kubevirt.io", "virtualmachinesnapshotcontents")
RESTORE = ("snapshot.kubevirt.io", "virtualmachinerestores")
V = "v1beta1"

SNAPSHOT_FINALIZER = "snapshot.kubevirt.io/vmsnapshot-protection"          # snapshot.go:vmSnapshotFinalizer
CONTENT_FINALIZER = "snapshot.kubevirt.io/vmsnapshotcontent-protection"    # snapshot.go:vmSnapshotContentFinalizer
SOURCE_FINALIZER = "snapshot.kubevirt.io/snapshot-source-protection"       # source.go:sourceFinalizer
RESTORE_FINALIZER = "snapshot.kubevirt.io/vmrestore-protection"            # restore.go:vmRestoreFinalizer
LAST_RESTORE = "restore.kubevirt.io/lastRestoreUID"                        # restore.go:lastRestoreAnnotation
DEFAULT_DEADLINE = 300.0       # types.go:DefaultFailureDeadline
DEFAULT_GRACE = 300.0          # types.go:DefaultGracePeriod
DEADLINE_EXCEEDED = "snapshot deadline exceeded"
# snapshot.go:snapshotIndicationMessages
INDICATIONS = {
    "Online": "Snapshot taken while the VM was running. Consistency depends on guest-agent quiescing.",
    "GuestAgent": "Guest agent was active and attempted to quiesce the filesystem for application consistency.",
    "NoGuestAgent": "Guest agent was not available. Snapshot is crash-consistent and may not be application-consistent.",
    "Paused": "Snapshot taken while the VM was paused. Snapshot is crash-consistent and may not be application-consistent.",
}
# restore.go constants
WAIT_EVENTUALLY = "Waiting for target VM to be powered off. Please stop the restore target to proceed with restore"
STOP_TARGET = "Automatically stopping restore target for restore operation"
NOT_READY_FAILURE = "Restore target VMI must be powered off before restore operation"
TO_EXISTING_TARGET = "restore source and restore target are different but restore target already exists"
WAIT_GRACE = ("Waiting for target VM to be powered off. Please stop the restore target to proceed with restore, or the "
              "operation will fail after 5m0s")
GRACE_EXCEEDED = "Restore target failed to be ready within 5m0s. Please power off the target VM before attempting restore"
_DURATION = re.compile(r"(\d+(?:\.\d*)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def go_duration(text, default):
    """Seconds of a metav1.Duration string ("1m30s", "500ms", "0s"); the default when absent or unparsable."""
    if text in (None, ""):
        return default
    text = str(text)
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text.lstrip("+"):
        return default
    return sum(float(n) * _UNITS[u] for n, u in parts)


def _age(obj):
    ts = obj["metadata"].get("creationTimestamp")
    try:
        created = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except (TypeError, ValueError):
        return 0.0
    return (datetime.now(timezone.utc) - created).total_seconds()


def _cond(ctype, status, reason):
    """util.go:newReadyCondition/newProgressingCondition/newFailureCondition."""
    return {"type": ctype, "status": status, "reason": reason, "lastProbeTime": None, "lastTransitionTime": now()}


def _set_cond(conds, new):
    """util.go:updateCondition: replace (new transition time) only when status or reason changed."""
    for i, c in enumerate(conds):
        if c.get("type") == new["type"]:
            if c.get("status") != new["status"] or c.get("reason") != new["reason"]:
                conds[i] = new
            return
    conds.append(new)


def _volumes(vm):
    return (((vm.get("spec") or {}).get("template") or {}).get("spec") or {}).get("volumes") or []


def _claim(volume):
    """storagetypes.GetPVCsFromVolumes: the claim of a PVC or DataVolume volume, else None."""
    if volume.get("persistentVolumeClaim"):
        return volume["persistentVolumeClaim"].get("claimName")
    if volume.get("dataVolume"):
        return volume["dataVolume"].get("name")
    return None


class SnapshotController(Controller):
    name = "snapshot-controller"
    watches = (SNAP, CONTENT, RESTORE, VM, VMI)

    def setup(self):
        self._pending = set()

    def _rt(self, key):
        return self.app.registry.get(*key)

    def _opts(self):
        return Options(validation="Ignore", manager="virt-controller")

    def _later(self, key, fn, *args, delay=None):
        """One pending step per key, like virt.py's."""
        if key in self._pending:
            return
        self._pending.add(key)

        def run():
            self._pending.discard(key)
            fn(*args)
        self.after(self.step if delay is None else delay, run)

    def shard_key(self, rkey, ns, obj):
        return (ns,)

    def reconcile(self, rkey, ns, name, etype, obj):
        if rkey == SNAP:   # a snapshot event also syncs its content (snapshot.go: handleVMSnapshot enqueues it)
            self.sync_snapshot(ns, name)
            content = self._content_name(obj)
            if self.store.get(CONTENT, ns, content) is not None:
                self.sync_content(ns, content)
        elif rkey == CONTENT:
            snap = (obj.get("spec") or {}).get("virtualMachineSnapshotName")
            self.sync_content(ns, name)
            if snap:
                self.sync_snapshot(ns, snap)
        elif rkey == RESTORE:
            self.sync_restore(ns, name)
        else:   # a VM or VMI changed: the snapshots of that VM and the restores targeting it
            for s in self.store.items(SNAP, ns):
                if ((s.get("spec") or {}).get("source") or {}).get("name") == name:
                    self.sync_snapshot(ns, s["metadata"]["name"])
            for r in self.store.items(RESTORE, ns):
                if ((r.get("spec") or {}).get("target") or {}).get("name") == name:
                    self.sync_restore(ns, r["metadata"]["name"])

    # --- helpers -------------------------------------------------------------------------------------------
    def _patch_finalizers(self, key, obj, add=None, remove=None):
        fins = list(obj["metadata"].get("finalizers") or [])
        if add and add not in fins:
            fins.append(add)
        if remove and remove in fins:
            fins.remove(remove)
        if fins == list(obj["metadata"].get("finalizers") or []):
            return False
        try:
            self.api.patch(self._rt(key), "v1" if key == VM else V, obj["metadata"]["namespace"],
                           obj["metadata"]["name"], "application/merge-patch+json",
                           {"metadata": {"finalizers": fins, "resourceVersion": obj["metadata"]["resourceVersion"]}},
                           self._opts())
        except errors.ApiError:
            pass
        return True

    def _write_vm_status(self, ns, name, field, value, only_if=None):
        def mutate(o):
            st = o.setdefault("status", {})
            if only_if is not None and st.get(field) != only_if:
                return False
            if value is None:
                if field not in st:
                    return False
                del st[field]
            else:
                if st.get(field) == value:
                    return False
                st[field] = value
        self.api.write_status(self._rt(VM), ns, name, mutate, "virt-controller")

    def _write_status(self, key, ns, name, mutate):
        def wrapped(o):
            before = clone(o.get("status"))
            mutate(o)
            if o.get("status") == before:
                return False
        try:
            self.api.write_status(self._rt(key), ns, name, wrapped, "virt-controller")
        except errors.ApiError:
            pass

    # --- VirtualMachineSnapshot ----------------------------------------------------------------------------
    def _source(self, snap):
        """source.go:vmSnapshotSource.UpdateSourceState: (vm, vmi, locked) or None without the VM."""
        ns = snap["metadata"]["namespace"]
        source = (snap.get("spec") or {}).get("source") or {}
        vm = self.store.get(VM, ns, source.get("name", ""))
        if vm is None:
            return None
        vmi = self.store.get(VMI, ns, vm["metadata"]["name"])
        locked = (vm.get("status") or {}).get("snapshotInProgress") == snap["metadata"]["name"] and \
            SOURCE_FINALIZER in (vm["metadata"].get("finalizers") or [])
        return vm, vmi, locked

    @staticmethod
    def _progressing(snap):
        return (snap.get("status") or {}).get("phase") not in ("Succeeded", "Failed")

    def _deadline_left(self, snap):
        """util.go:timeUntilDeadline; None when there is no deadline (failureDeadline 0)."""
        deadline = go_duration((snap.get("spec") or {}).get("failureDeadline"), DEFAULT_DEADLINE)
        if deadline == 0:
            return None
        return deadline - _age(snap)

    def _deadline_exceeded(self, snap):
        if (snap.get("status") or {}).get("phase") == "Failed":
            return True
        if not self._progressing(snap):
            return False
        left = self._deadline_left(snap)
        return left is not None and left < 0

    def _content_name(self, snap):
        """snapshot.go:GetVMSnapshotContentName."""
        return (snap.get("status") or {}).get("virtualMachineSnapshotContentName") or \
            "vmsnapshot-content-%s" % snap["metadata"]["uid"]

    @staticmethod
    def _delete_content_policy(snap):
        return (snap.get("spec") or {}).get("deletionPolicy") in (None, "Delete")

    def sync_snapshot(self, ns, name):
        snap = self.store.get(SNAP, ns, name)
        if snap is None:
            return
        deleting = bool(snap["metadata"].get("deletionTimestamp"))
        terminating = deleting or self._deadline_exceeded(snap)
        if not terminating and self._patch_finalizers(SNAP, snap, add=SNAPSHOT_FINALIZER):
            return
        source = self._source(snap)
        content = self.store.get(CONTENT, ns, self._content_name(snap))
        can_remove_finalizer = True
        if snap.get("status") is not None and source is not None:
            vm, vmi, locked = source
            if self._progressing(snap) and not terminating:
                if not locked:
                    self._later((ns, name, "lock"), self._lock, ns, name)
                elif content is None:
                    self._later((ns, name, "content"), self._create_content, ns, name)
                can_remove_finalizer = False
            else:
                content_ready = content is not None and (content.get("status") or {}).get("readyToUse") is True
                should_delete = content is not None and (self._delete_content_policy(snap) or not content_ready)
                if not self._progressing(snap) or (terminating and not should_delete):
                    self._unlock(ns, name, vm)
                    vm = self.store.get(VM, ns, vm["metadata"]["name"]) or vm
                can_remove_finalizer = not ((vm.get("status") or {}).get("snapshotInProgress") == name and
                                            SOURCE_FINALIZER in (vm["metadata"].get("finalizers") or []))
        if terminating and content is not None and not content["metadata"].get("deletionTimestamp"):
            ready = (content.get("status") or {}).get("readyToUse") is True
            if self._delete_content_policy(snap) or not ready:
                try:
                    self.api.delete(self._rt(CONTENT), V, ns, content["metadata"]["name"], self._opts())
                except errors.ApiError:
                    pass
        self._update_snapshot_status(ns, name, source)
        snap = self.store.get(SNAP, ns, name)
        if snap is not None and deleting and can_remove_finalizer:
            self._patch_finalizers(SNAP, snap, remove=SNAPSHOT_FINALIZER)
            return
        if snap is not None and self._progressing(snap):
            left = self._deadline_left(snap)
            if left is not None:
                self._later((ns, name, "deadline"), self.sync_snapshot, ns, name, delay=max(0.0, left) + 0.05)

    def _lock(self, ns, name):
        """source.go:vmSnapshotSource.Lock: snapshotInProgress in the VM status, then the source finalizer."""
        snap = self.store.get(SNAP, ns, name)
        if snap is None or not self._progressing(snap) or snap["metadata"].get("deletionTimestamp"):
            return
        vm_name = ((snap.get("spec") or {}).get("source") or {}).get("name", "")
        vm = self.store.get(VM, ns, vm_name)
        if vm is None:
            return
        busy = (vm.get("status") or {}).get("snapshotInProgress")
        if busy and busy != name:
            return   # lockMsg ' snapshot "x" in progress'; retried when the VM changes
        if not busy:
            self._write_vm_status(ns, vm_name, "snapshotInProgress", name)
            vm = self.store.get(VM, ns, vm_name) or vm
        self._patch_finalizers(VM, vm, add=SOURCE_FINALIZER)

    def _unlock(self, ns, name, vm):
        """source.go:vmSnapshotSource.Unlock: the source finalizer, then snapshotInProgress."""
        if (vm.get("status") or {}).get("snapshotInProgress") != name:
            return
        self._patch_finalizers(VM, vm, remove=SOURCE_FINALIZER)
        self._write_vm_status(ns, vm["metadata"]["name"], "snapshotInProgress", None, only_if=name)

    def _source_spec(self, vm, vmi):
        """source.go:vmSnapshotSource.Spec."""
        meta = clone(vm["metadata"])
        meta.pop("managedFields", None)
        spec = clone(vm.get("spec") or {})
        if vmi is not None:   # online: the spec the VMI started from (getVMRevision), current volumes and disks
            rev = ((vmi.get("status") or {}).get("virtualMachineRevisionName")) or ""
            cr = self.store.get(CONTROLLER_REVISIONS, vm["metadata"]["namespace"], rev) if rev else None
            if cr is not None and (cr.get("data") or {}).get("spec"):
                started = clone(cr["data"]["spec"])
                tspec = started.setdefault("template", {}).setdefault("spec", {})
                cur = (spec.get("template") or {}).get("spec") or {}
                tspec["volumes"] = clone(cur.get("volumes"))
                tspec.setdefault("domain", {}).setdefault("devices", {})["disks"] = clone(
                    ((cur.get("domain") or {}).get("devices") or {}).get("disks"))
                started["dataVolumeTemplates"] = clone(spec.get("dataVolumeTemplates"))
                spec = {k: v for k, v in started.items() if v is not None}
        return {"metadata": meta, "spec": spec, "status": {}}

    def _create_content(self, ns, name):
        """snapshot.go:createContent."""
        snap = self.store.get(SNAP, ns, name)
        source = self._source(snap) if snap is not None else None
        if source is None or not source[2] or self._deadline_exceeded(snap) or snap["metadata"].get("deletionTimestamp"):
            return
        vm, vmi, _ = source
        backups = []
        for vol in _volumes(vm):
            claim = _claim(vol)
            if not claim:
                continue
            pvc = self.store.get(PVC, ns, claim)
            pmeta = {"name": claim, "namespace": ns}
            pspec = {}
            if pvc is not None:   # getSimplifiedMetaObject(pvc.ObjectMeta), pvc.Spec
                pmeta = clone(pvc["metadata"])
                pmeta.pop("managedFields", None)
                pspec = clone(pvc.get("spec") or {})
            backups.append({"volumeName": vol["name"], "persistentVolumeClaim": {"metadata": pmeta, "spec": pspec},
                            "volumeSnapshotName": "vmsnapshot-%s-volume-%s" % (snap["metadata"]["uid"], vol["name"])})
        body = {"apiVersion": "snapshot.kubevirt.io/" + V, "kind": "VirtualMachineSnapshotContent",
                "metadata": {"name": self._content_name(snap), "namespace": ns, "finalizers": [CONTENT_FINALIZER]},
                "spec": {"virtualMachineSnapshotName": name, "source": {"virtualMachine": self._source_spec(vm, vmi)}}}
        if backups:
            body["spec"]["volumeBackups"] = backups
        try:
            self.api.create(self._rt(CONTENT), V, ns, body, self._opts())
        except errors.ApiError as exc:
            if exc.reason != "AlreadyExists":
                print("kubeapi: snapshot-controller could not create %s: %s" % (
                    body["metadata"]["name"], exc.message), flush=True)

    def sync_content(self, ns, name):
        """snapshot.go:updateVMSnapshotContent."""
        content = self.store.get(CONTENT, ns, name)
        if content is None:
            return
        snap_name = (content.get("spec") or {}).get("virtualMachineSnapshotName") or ""
        snap = self.store.get(SNAP, ns, snap_name)
        if snap is None or snap["metadata"].get("deletionTimestamp") or self._deadline_exceeded(snap):
            self._patch_finalizers(CONTENT, content, remove=CONTENT_FINALIZER)
            return
        if content["metadata"].get("deletionTimestamp") or (content.get("status") or {}).get("readyToUse") is True:
            return
        self._later((ns, name, "content-ready"), self._content_ready, ns, name)

    def _content_ready(self, ns, name):
        content = self.store.get(CONTENT, ns, name)
        if content is None or content["metadata"].get("deletionTimestamp"):
            return
        stamp = now()

        def mutate(o):
            st = o.setdefault("status", {})
            st["volumeSnapshotStatus"] = [{"volumeSnapshotName": b["volumeSnapshotName"], "readyToUse": True,
                                           "creationTime": stamp} for b in (o["spec"].get("volumeBackups") or [])]
            st.setdefault("creationTime", stamp)
            st["readyToUse"] = True
            st.pop("error", None)
        self._write_status(CONTENT, ns, name, mutate)

    def _update_snapshot_status(self, ns, name, source):
        """snapshot.go:updateSnapshotStatus."""
        content = None
        snap = self.store.get(SNAP, ns, name)
        if snap is not None:
            content = self.store.get(CONTENT, ns, self._content_name(snap))

        def mutate(o):
            if o.get("status") is None:
                o["status"] = {"readyToUse": False}
            st = o["status"]
            conds = st.setdefault("conditions", [])
            if source is not None:
                st["sourceUID"] = source[0]["metadata"]["uid"]
            if content is not None and content.get("status") is not None:
                cst = content["status"]
                st["virtualMachineSnapshotContentName"] = content["metadata"]["name"]
                for k in ("creationTime", "readyToUse", "error"):
                    if cst.get(k) is not None:
                        st[k] = clone(cst[k])
                    else:
                        st.pop(k, None)
            if self._deadline_exceeded(o):
                st["phase"] = "Failed"
                _set_cond(conds, _cond("Failure", "True", DEADLINE_EXCEEDED))
                _set_cond(conds, _cond("Progressing", "False", "Operation failed"))
            elif st.get("phase") == "Succeeded" or st.get("creationTime"):
                st["phase"] = "Succeeded"
                _set_cond(conds, _cond("Progressing", "False", "Operation complete"))
                self._snapshot_volumes(st, content)
            else:
                st["phase"] = "InProgress"
                if source is not None:
                    vm, vmi, locked = source
                    if locked:
                        _set_cond(conds, _cond("Progressing", "True", "Source locked and operation in progress"))
                    else:
                        busy = (vm.get("status") or {}).get("snapshotInProgress")
                        msg = "Source not locked" + (' snapshot "%s" in progress' % busy if busy and busy != name
                                                     else "")
                        _set_cond(conds, _cond("Progressing", "False", msg))
                    self._indications(st, vmi)
                else:
                    _set_cond(conds, _cond("Progressing", "False", "Source does not exist"))
                if o["metadata"].get("deletionTimestamp"):
                    st["phase"] = "Deleting"
                    _set_cond(conds, _cond("Progressing", "False", "VM snapshot is deleting"))
            if st.get("readyToUse") is True:
                _set_cond(conds, _cond("Ready", "True", "Ready"))
            else:
                _set_cond(conds, _cond("Ready", "False", "Not ready"))
            if st.get("error"):
                _set_cond(conds, _cond("Progressing", "False", "In error state"))
        self._write_status(SNAP, ns, name, mutate)

    @staticmethod
    def _indications(st, vmi):
        """snapshot.go:updateSnapshotSourceIndications (source.go:UpdateSourceState for online/paused/guestAgent)."""
        if vmi is None:
            st.pop("indications", None)
            st.pop("sourceIndications", None)
            return
        vconds = (vmi.get("status") or {}).get("conditions") or []
        found = set(st.get("indications") or []) | {"Online"}
        if any(c.get("type") == "Paused" and c.get("status") == "True" for c in vconds):
            found.add("Paused")
        elif any(c.get("type") == "AgentConnected" for c in vconds):
            found.add("GuestAgent")
        else:
            found.add("NoGuestAgent")
        ordered = sorted(found)   # sets.List: sorted
        st["indications"] = ordered
        st["sourceIndications"] = [{"indication": i, "message": INDICATIONS.get(i, "")} for i in ordered]

    @staticmethod
    def _snapshot_volumes(st, content):
        """snapshot.go:updateSnapshotSnapshotableVolumes."""
        vm = (((content or {}).get("spec") or {}).get("source") or {}).get("virtualMachine")
        if not vm or not (vm.get("spec") or {}).get("template"):
            return
        backed = {b["volumeName"] for b in content["spec"].get("volumeBackups") or []}
        names = [v["name"] for v in _volumes(vm)]
        lists = {}
        inc = [n for n in names if n in backed]
        exc = [n for n in names if n not in backed]
        if inc:
            lists["includedVolumes"] = inc
        if exc:
            lists["excludedVolumes"] = exc
        st["snapshotVolumes"] = lists

    # --- VirtualMachineRestore -----------------------------------------------------------------------------
    def sync_restore(self, ns, name):
        restore = self.store.get(RESTORE, ns, name)
        if restore is None:
            return
        if restore.get("status") is None:
            def init(o):
                o["status"] = {"complete": False, "conditions": [
                    _cond("Progressing", "True", "Initializing VirtualMachineRestore"),
                    _cond("Ready", "False", "Initializing VirtualMachineRestore")]}
            self._write_status(RESTORE, ns, name, init)
            return
        self._later((ns, name, "restore"), self._restore_step, ns, name)

    def _restore_error(self, ns, name, message, fail=False):
        """restore.go:doUpdateError / doUpdateErrorWithFailure."""
        def mutate(o):
            conds = o.setdefault("status", {}).setdefault("conditions", [])
            _set_cond(conds, _cond("Progressing", "False", message))
            _set_cond(conds, _cond("Ready", "False", message))
            if fail:
                _set_cond(conds, _cond("Failure", "True", message))
        self._write_status(RESTORE, ns, name, mutate)

    def _restore_conditions(self, ns, name, progressing, ready, reason_p, reason_r=None, extra=None):
        def mutate(o):
            st = o.setdefault("status", {})
            conds = st.setdefault("conditions", [])
            _set_cond(conds, _cond("Progressing", progressing, reason_p))
            _set_cond(conds, _cond("Ready", ready, reason_r or reason_p))
            if extra:
                extra(st)
        self._write_status(RESTORE, ns, name, mutate)

    @staticmethod
    def _restore_name(restore, volume, claim):
        """restore.go:restoreVolumeName."""
        spec = restore.get("spec") or {}
        for o in spec.get("volumeRestoreOverrides") or []:
            if o.get("volumeName") == volume and o.get("restoreName"):
                return o["restoreName"]
        policy = spec.get("volumeRestorePolicy")
        if policy == "InPlace":
            return claim
        if policy == "PrefixTargetName":
            return ("%s-%s" % ((spec.get("target") or {}).get("name", ""), volume))[:63]
        return "restore-%s-%s" % (restore["metadata"]["uid"], volume)

    def _restore_step(self, ns, name):
        """restore.go:updateVMRestore, one write per step."""
        restore = self.store.get(RESTORE, ns, name)
        if restore is None:
            return
        st = restore.get("status") or {}
        spec = restore.get("spec") or {}
        target_name = (spec.get("target") or {}).get("name", "")
        vm = self.store.get(VM, ns, target_name)
        stamp = "%s-%s" % (name, restore["metadata"]["uid"])
        restored = vm is not None and (vm["metadata"].get("annotations") or {}).get(LAST_RESTORE) == stamp
        if restore["metadata"].get("deletionTimestamp"):   # handleVMRestoreDeletion
            if RESTORE_FINALIZER not in (restore["metadata"].get("finalizers") or []):
                return
            if vm is not None:
                self._write_vm_status(ns, target_name, "restoreInProgress", None, only_if=name)
            reasons = [(c.get("type"), c.get("reason")) for c in st.get("conditions") or []]
            if ("Progressing", "VM restore is deleting") not in reasons:
                self._restore_conditions(ns, name, "False", "False", "VM restore is deleting")
                return
            self._patch_finalizers(RESTORE, restore, remove=RESTORE_FINALIZER)
            return
        failed = any(c.get("type") == "Failure" for c in st.get("conditions") or [])
        if st.get("complete") is True or failed:
            return
        meta = restore["metadata"]
        if (vm is not None and not meta.get("ownerReferences")) or RESTORE_FINALIZER not in (meta.get("finalizers") or []):
            patch = {"metadata": {"resourceVersion": meta["resourceVersion"],
                                  "finalizers": list(meta.get("finalizers") or []) + [RESTORE_FINALIZER]}}
            if RESTORE_FINALIZER in (meta.get("finalizers") or []):
                del patch["metadata"]["finalizers"]
            if vm is not None and not meta.get("ownerReferences"):   # vmRestoreTarget.Own
                patch["metadata"]["ownerReferences"] = [{
                    "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "name": target_name,
                    "uid": vm["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}]
            try:
                self.api.patch(self._rt(RESTORE), V, ns, name, "application/merge-patch+json", patch, self._opts())
            except errors.ApiError:
                pass
            return
        if vm is not None and self.store.get(VMI, ns, target_name) is not None:   # vmRestoreTarget.Ready false
            self._target_not_ready(ns, name, restore)
            return
        snap_name = spec.get("virtualMachineSnapshotName", "")
        snap = self.store.get(SNAP, ns, snap_name)
        key = "%s/%s" % (ns, snap_name)
        sst = (snap or {}).get("status") or {}
        if snap is None:
            return self._restore_error(ns, name, "VMSnapshot %s does not exist" % key)
        if sst.get("phase") == "Failed":
            return self._restore_error(ns, name, "VMSnapshot %s failed and is invalid to use" % key)
        if sst.get("readyToUse") is not True:
            return self._restore_error(ns, name, "VMSnapshot %s not ready" % key)
        content = self.store.get(CONTENT, ns, sst.get("virtualMachineSnapshotContentName") or "")
        if content is None:
            return self._restore_error(ns, name, "VMSnapshotContent %s/%s does not exist" % (
                ns, sst.get("virtualMachineSnapshotContentName")))
        if vm is not None and not restored and sst.get("sourceUID") and sst["sourceUID"] != vm["metadata"]["uid"]:
            return self._restore_error(ns, name, TO_EXISTING_TARGET)
        if vm is not None and not restored:   # UpdateRestoreInProgress
            busy = (vm.get("status") or {}).get("restoreInProgress")
            if busy and busy != name:
                return self._restore_error(ns, name, "vm restore %s in progress" % busy)
            if not busy:
                self._write_vm_status(ns, target_name, "restoreInProgress", name)
                self._later((ns, name, "restore"), self._restore_step, ns, name)
                return
        snap_vm = content["spec"]["source"]["virtualMachine"]
        if not restored:
            backups = content["spec"].get("volumeBackups") or []
            if backups and not st.get("restores"):   # reconcileVolumeRestores
                restores = []
                for b in backups:
                    claim = (b.get("persistentVolumeClaim") or {}).get("metadata", {}).get("name", "")
                    restores.append({"volumeName": b["volumeName"], "volumeSnapshotName": b.get("volumeSnapshotName"),
                                     "persistentVolumeClaim": self._restore_name(restore, b["volumeName"], claim)})
                for r in restores:   # updateVMRestoreRestores: DataVolume templates get a restored DV name
                    for v in _volumes(snap_vm):
                        dv = (v.get("dataVolume") or {}).get("name")
                        if v["name"] == r["volumeName"] and dv and any(
                                (t.get("metadata") or {}).get("name") == dv
                                for t in snap_vm["spec"].get("dataVolumeTemplates") or []):
                            r["dataVolumeName"] = self._restore_name(restore, v["name"], dv)

                def set_restores(s):
                    s["restores"] = restores
                self._restore_conditions(ns, name, "True", "False", "Creating new PVCs", "Waiting for new PVCs",
                                         set_restores)
                return
            self._reconcile_target(restore, vm, snap_vm, st.get("restores") or [], stamp)
            self._restore_conditions(ns, name, "True", "False", "Updating target spec", "Waiting for target update")
            return
        self._write_vm_status(ns, target_name, "restoreInProgress", None, only_if=name)   # UpdateDoneRestore

        def done(s):
            s["complete"] = True
            s["restoreTime"] = now()
        self._restore_conditions(ns, name, "False", "True", "Operation complete", extra=done)

    def _target_not_ready(self, ns, name, restore):
        """restore.go:handleVMRestoreTargetNotReady."""
        policy = (restore.get("spec") or {}).get("targetReadinessPolicy") or "WaitGracePeriod"
        if policy == "WaitEventually":
            self._restore_conditions(ns, name, "False", "False", WAIT_EVENTUALLY)
        elif policy == "StopTarget":
            self._restore_conditions(ns, name, "False", "False", STOP_TARGET)
            handler = self.app.subresource_handlers.get(("virtualmachines", "stop"))
            target = restore["spec"]["target"]["name"]
            try:
                if handler is not None:
                    handler(ns, target, {}, False)
            except errors.ApiError as exc:
                self._restore_error(ns, name, exc.message)
        elif policy == "FailImmediate":
            self._restore_error(ns, name, NOT_READY_FAILURE, fail=True)
        else:
            if _age(restore) > DEFAULT_GRACE:
                self._restore_error(ns, name, GRACE_EXCEEDED, fail=True)
                return
            self._restore_conditions(ns, name, "False", "False", WAIT_GRACE)
            self._later((ns, name, "grace"), self.sync_restore, ns, name, delay=max(0.0, DEFAULT_GRACE - _age(restore)) + 0.05)

    def _reconcile_target(self, restore, vm, snap_vm, restores, stamp):
        """restore.go:generateRestoredVMSpec + reconcileSpec."""
        ns = restore["metadata"]["namespace"]
        target = restore["spec"]["target"]["name"]
        spec = clone(snap_vm.get("spec") or {})
        by_volume = {r["volumeName"]: r for r in restores}
        templates = spec.get("dataVolumeTemplates") or []
        new_volumes = []
        for v in _volumes(snap_vm):
            nv = clone(v)
            r = by_volume.get(v["name"])
            if r is not None and nv.get("persistentVolumeClaim"):
                nv["persistentVolumeClaim"]["claimName"] = r["persistentVolumeClaim"]
            elif r is not None and nv.get("dataVolume"):
                idx = [i for i, t in enumerate(templates) if (t.get("metadata") or {}).get("name") == v["dataVolume"]["name"]]
                if idx and r.get("dataVolumeName"):
                    templates[idx[0]].setdefault("metadata", {})["name"] = r["dataVolumeName"]
                    nv["dataVolume"]["name"] = r["dataVolumeName"]
                else:
                    nv = {"name": v["name"], "persistentVolumeClaim": {"claimName": r["persistentVolumeClaim"]}}
            elif nv.get("memoryDump"):
                continue
            new_volumes.append(nv)
        # Volumes and DataVolumeTemplates are omitempty slices in Go: nil or empty, they are not stored at all.
        tspec = spec.setdefault("template", {}).setdefault("spec", {})
        tspec.pop("volumes", None)
        spec.pop("dataVolumeTemplates", None)
        if new_volumes:
            tspec["volumes"] = new_volumes
        if templates:
            spec["dataVolumeTemplates"] = templates
        rt = self._rt(VM)
        try:
            if vm is None:
                if "running" in spec:
                    spec["running"] = False
                else:
                    spec["runStrategy"] = "Halted"
                smeta = snap_vm.get("metadata") or {}
                body = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "spec": spec, "metadata": {
                    "name": target, "namespace": ns, "labels": clone(smeta.get("labels") or {}),
                    "annotations": dict(clone(smeta.get("annotations") or {}), **{LAST_RESTORE: stamp})}}
                for k in ("kubevirt.io/latest-observed-api-version", "kubevirt.io/storage-observed-api-version"):
                    body["metadata"]["annotations"].pop(k, None)
                self._firmware(body, smeta.get("name"))
                self.api.create(rt, "v1", ns, body, self._opts())
            else:
                body = clone(vm)
                old = vm.get("spec") or {}
                if "running" in old:
                    spec["running"] = False
                    spec.pop("runStrategy", None)
                else:
                    spec["runStrategy"] = old.get("runStrategy") or "Halted"
                    spec.pop("running", None)
                body["spec"] = spec
                body["metadata"].setdefault("annotations", {})[LAST_RESTORE] = stamp
                self._firmware(body, (snap_vm.get("metadata") or {}).get("name"))
                self.api.update(rt, "v1", ns, target, body, self._opts())
        except errors.ApiError as exc:
            self._restore_error(ns, restore["metadata"]["name"], exc.message)

    @staticmethod
    def _firmware(vm, snap_vm_name):
        """restore.go:setLegacyFirmwareUUID when the snapshot VM and the target share a name."""
        if snap_vm_name != vm["metadata"]["name"]:
            return
        domain = vm["spec"].setdefault("template", {}).setdefault("spec", {}).setdefault("domain", {})
        fw = domain.setdefault("firmware", {})
        if not fw.get("uuid"):
            fw["uuid"] = legacy_firmware_uuid(vm["metadata"]["name"])
