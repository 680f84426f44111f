# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet.kubevirt contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restore many VMs to their VirtualMachineSnapshots (snapshot.kubevirt.io/v1beta1 VirtualMachineRestore).

KubeVirt's restore controller (pkg/storage/snapshot/restore.go:updateVMRestore) does the work: it waits while the
target has a VMI (vmRestoreTarget.Ready) as ``spec.targetReadinessPolicy`` says, replaces the VM's spec by the
snapshot's copy (generateRestoredVMSpec: volumes on new claims, the target's run strategy kept), stamps the VM with
``restore.kubevirt.io/lastRestoreUID = <restore name>-<restore uid>`` and sets ``status.complete``.

The planner here decides per VM, before any write: which snapshot, whether the VM already holds it (``unchanged``),
whether it runs (``when_running``), and the restore's name. The rule for ``unchanged`` (see ``restored_already``):
the VM's lastRestoreUID names a complete restore of the chosen snapshot AND the VM's spec is still the spec that
restore gave it (recomputed from the snapshot content and the restore's ``status.restores``, as
generateRestoredVMSpec does). A VM changed after its restore fails the second test, so it is restored again.

Request budget, per namespace of the selected VMs: the selection's one list of VMs (cluster-wide without a
namespace), one list each of VMIs, VirtualMachineSnapshots and VirtualMachineRestores, one list of
VirtualMachineSnapshotContents only when a VM may already be restored (or in diff mode), one POST per restore; with
wait (or a restart) one list and one watch of restores (more watches when the server ends them), one list of VMs to
read them back, one ``start`` per restarted VM and a watch of VMs until those are Ready. A re-run that changes
nothing costs five lists and nothing else.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import hashlib
import time

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _args
from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _compare as cmp
from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _kinds
from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _snapshot
from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _vm_select
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._errors import ApiError, KubeVirtError, TransportError
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._resource import REOPEN_PAUSE, Engine, WatchStore, in_parallel

LAST_RESTORE = "restore.kubevirt.io/lastRestoreUID"      # restore.go:lastRestoreAnnotation
MANAGED_BY = {"app.kubernetes.io/managed-by": "virtfleet.kubevirt"}
# when_running -> spec.targetReadinessPolicy (restore.go:handleVMRestoreTargetNotReady).
POLICIES = {"stop": "StopTarget", "wait": "WaitEventually", "fail": "FailImmediate"}
WRITE_WORKERS = 8
MAX_NAME = 253
# run strategies the stop subresource turns into Halted (pkg/virt-api/rest/subresource.go:StopVMRequestHandler)
STOPPED_BY_STOP = ("Always", "RerunOnFailure", "Once")


def check_params(params):
    """Option errors, before any request (InvalidOption)."""
    _vm_select.check_selection(params)
    snapshot, exact = params.get("snapshot"), params.get("snapshot_name")
    if snapshot is not None and exact is not None:
        raise _args.InvalidOption("snapshot and snapshot_name are mutually exclusive: snapshot is the suffix of every "
                                  "VM's snapshot (VM vm1 -> vm1-<snapshot>), snapshot_name one exact snapshot name")
    if exact is not None:
        _args.check_dns_subdomain(exact, "snapshot_name", what="snapshot name")
        if len(params.get("names") or []) != 1 or params.get("label_selectors"):
            raise _args.InvalidOption("snapshot_name names one VirtualMachineSnapshot, so it restores one VM: give "
                                      "exactly one name in names (and no label_selectors), or use snapshot (a suffix)")
    if snapshot is not None:
        if not snapshot:
            raise _args.InvalidOption("snapshot is empty: give the suffix of the snapshots (VM vm1's snapshot daily is "
                                      "vm1-daily), or leave it out to restore each VM's newest ready snapshot")
        _args.check_dns_subdomain("vm-" + snapshot, "snapshot", what="snapshot suffix")
    if params.get("wait_timeout") is not None and params["wait_timeout"] < 1:
        raise _args.InvalidOption("wait_timeout must be at least 1 second (got %s)" % params["wait_timeout"])


def _meta(obj):
    return (obj or {}).get("metadata") or {}


def _status(obj):
    return (obj or {}).get("status") or {}


def restore_failed(restore):
    """restore.go:vmRestoreFailed: the restore has a Failure condition (KubeVirt only ever sets it True)."""
    return any(c.get("type") == "Failure" for c in _status(restore).get("conditions") or [])


def restore_complete(restore):
    return _status(restore).get("complete") is True


def restore_reason(restore):
    """Why a restore is where it is: the Failure, else the Ready/Progressing condition's reason."""
    conds = dict((c.get("type"), c) for c in _status(restore).get("conditions") or [])
    for ctype in ("Failure", "Ready", "Progressing"):
        c = conds.get(ctype)
        if c and c.get("reason"):
            return c["reason"]
    return "no status yet (is KubeVirt's snapshot controller running?)"


def restore_active(restore):
    """A restore the controller is still working on (not complete, failed or being deleted)."""
    return not (restore_complete(restore) or restore_failed(restore) or _meta(restore).get("deletionTimestamp"))


def restore_stamp(restore):
    """restore.go:getRestoreAnnotationValue."""
    meta = _meta(restore)
    return "%s-%s" % (meta.get("name"), meta.get("uid"))


def restore_volume_name(restore_uid, volume):
    """restore.go:restoreVolumeName under the default volumeRestorePolicy (RandomizeNames)."""
    return "restore-%s-%s" % (restore_uid, volume)


def restored_spec(snap_vm, live, restores):
    """The spec KubeVirt gives a VM restored from ``snap_vm`` (restore.go:generateRestoredVMSpec for an existing target).

    ``restores``: the restore's ``status.restores`` (volumeName -> persistentVolumeClaim, dataVolumeName). The
    target's run strategy is kept (``running`` becomes false when the target used ``running``); the firmware UUID
    setLegacyFirmwareUUID adds is taken from ``live`` when the snapshot's copy has none.
    """
    spec = copy.deepcopy((snap_vm or {}).get("spec") or {})
    by_volume = dict((r.get("volumeName"), r) for r in restores or [])
    templates = spec.get("dataVolumeTemplates") or []
    tspec = spec.setdefault("template", {}).setdefault("spec", {})
    volumes = []
    for vol in tspec.get("volumes") or []:
        new = copy.deepcopy(vol)
        rec = by_volume.get(vol.get("name"))
        if rec is not None and new.get("persistentVolumeClaim"):
            new["persistentVolumeClaim"]["claimName"] = rec.get("persistentVolumeClaim")
        elif rec is not None and new.get("dataVolume"):
            index = [i for i, t in enumerate(templates) if _meta(t).get("name") == new["dataVolume"].get("name")]
            if index and rec.get("dataVolumeName"):
                templates[index[0]].setdefault("metadata", {})["name"] = rec["dataVolumeName"]
                new["dataVolume"]["name"] = rec["dataVolumeName"]
            else:
                new = {"name": vol.get("name"), "persistentVolumeClaim": {"claimName": rec.get("persistentVolumeClaim")}}
        elif new.get("memoryDump"):
            continue
        volumes.append(new)
    tspec["volumes"] = volumes
    live_spec = (live or {}).get("spec") or {}
    spec.pop("running", None)
    spec.pop("runStrategy", None)
    if "running" in live_spec:
        spec["running"] = False
    elif "runStrategy" in live_spec:
        spec["runStrategy"] = live_spec["runStrategy"]
    live_domain = ((live_spec.get("template") or {}).get("spec") or {}).get("domain") or {}
    live_uuid = (live_domain.get("firmware") or {}).get("uuid")
    domain = tspec.get("domain")
    if live_uuid and isinstance(domain, dict) and not (domain.get("firmware") or {}).get("uuid"):
        domain.setdefault("firmware", {})["uuid"] = live_uuid
    return _omit_empty(spec)


def _omit_empty(spec):
    """The spec as the API stores KubeVirt's Go struct: the ``omitempty`` lists volumes and dataVolumeTemplates are
    left out when empty (restore.go writes a nil or empty slice there)."""
    spec = copy.deepcopy(spec or {})
    if not spec.get("dataVolumeTemplates"):
        spec.pop("dataVolumeTemplates", None)
    tspec = (spec.get("template") or {}).get("spec")
    if isinstance(tspec, dict) and not tspec.get("volumes"):
        tspec.pop("volumes", None)
    return spec


def predicted_restores(snap_vm, content, restore_uid):
    """``status.restores`` as restore.go:reconcileVolumeRestores/updateVMRestoreRestores will write them."""
    out = []
    templates = set(_meta(t).get("name") for t in ((snap_vm or {}).get("spec") or {}).get("dataVolumeTemplates") or [])
    vols = dict((v.get("name"), v) for v in ((((snap_vm or {}).get("spec") or {}).get("template") or {}).get("spec") or {})
                .get("volumes") or [])
    for backup in ((content or {}).get("spec") or {}).get("volumeBackups") or []:
        name = backup.get("volumeName")
        rec = {"volumeName": name, "persistentVolumeClaim": restore_volume_name(restore_uid, name)}
        dv = (vols.get(name) or {}).get("dataVolume") or {}
        if dv.get("name") in templates:
            rec["dataVolumeName"] = restore_volume_name(restore_uid, name)
        out.append(rec)
    return out


def restore_name(snapshot_name, taken):
    """``<snapshot>-restore-<n>``: the lowest n whose name is not ``taken`` (a deterministic name, read back after a
    lost create)."""
    base = snapshot_name
    if len(base) > MAX_NAME - 20:
        base = "%s-%s" % (base[:MAX_NAME - 31], hashlib.sha256(snapshot_name.encode()).hexdigest()[:10])
    n = 1
    while "%s-restore-%d" % (base, n) in taken:
        n += 1
    return "%s-restore-%d" % (base, n)


class Target(object):
    """One VM of the task and everything decided about it."""

    def __init__(self, vm):
        meta = _meta(vm)
        self.vm = vm
        self.name = meta.get("name")
        self.namespace = meta.get("namespace")
        self.vmi = None
        self.snapshot = None        # the chosen VirtualMachineSnapshot
        self.content = None         # its VirtualMachineSnapshotContent (when read)
        self.restore = None         # the VirtualMachineRestore created (or adopted)
        self.restore_name = None
        self.adopted = False        # an earlier run's restore of this snapshot is still in progress
        self.running = False
        self.stop = False           # the task has KubeVirt stop it (when_running=stop)
        self.restart = False        # the task starts it again after the restore
        self.restarted = False
        self.outcome = None
        self.error = None
        self.changed = False
        self.final_vm = None
        self.before_spec = None

    @property
    def label(self):
        return "%s/%s" % (self.namespace, self.name)

    def fail(self, msg):
        self.error = msg
        self.outcome = "failed"


class RestoreTask(object):
    """One kubevirt_vm_restore task."""

    def __init__(self, api, params, check_mode=False, diff_mode=False, clock=time.monotonic, sleep=time.sleep,
                 write_workers=WRITE_WORKERS):
        self.api = api
        self.params = params
        self.check_mode = check_mode
        self.diff_mode = diff_mode
        self.clock = clock
        self.sleep = sleep
        self.write_workers = max(1, int(write_workers))
        self.when_running = params.get("when_running") or "fail"
        self.restart = params.get("restart") is not False
        self.force = bool(params.get("force"))
        self.wait = bool(params.get("wait"))
        self.wait_timeout = params.get("wait_timeout") or 120
        self.engine = Engine(api, check_mode=check_mode)
        self.targets = []
        self.missing = []
        self.deadline = None
        self.running_blocked = []
        self.timed_out = []

    # --- reading ------------------------------------------------------------------------------------------
    def _namespaces(self):
        out = []
        for t in self.targets:
            if t.namespace not in out:
                out.append(t.namespace)
        return out

    def read(self):
        p = self.params
        sel = _vm_select.select(self.api, _kinds.VM, p.get("namespace"), p.get("names"), p.get("label_selectors"))
        self.targets = [Target(vm) for vm in sel.items]
        self.missing = sel.missing
        self.snapshots, self.restores, self.vmis, self.contents = {}, {}, {}, {}
        for ns in self._namespaces():
            vmis, _rv = self.api.list(_kinds.VMI, ns)
            self.vmis[ns] = dict((_meta(o).get("name"), o) for o in vmis)
            snaps, _rv = self.api.list(_kinds.VMSNAPSHOT, ns)
            self.snapshots[ns] = snaps
            restores, _rv = self.api.list(_kinds.VMRESTORE, ns)
            self.restores[ns] = restores

    def _contents(self, ns):
        if ns not in self.contents:
            items, _rv = self.api.list(_kinds.VMSNAPSHOTCONTENT, ns)
            self.contents[ns] = dict((_meta(o).get("name"), o) for o in items)
        return self.contents[ns]

    def content_of(self, target):
        name = _status(target.snapshot).get("virtualMachineSnapshotContentName")
        return self._contents(target.namespace).get(name) if name else None

    # --- deciding -----------------------------------------------------------------------------------------
    def choose_snapshot(self, target):
        """The VirtualMachineSnapshot to restore, or an error message naming the VM."""
        p = self.params
        mine = _snapshot.snapshots_by_vm(self.snapshots.get(target.namespace) or []).get((target.namespace, target.name), [])
        names = [_meta(s).get("name") for s in mine]
        if p.get("snapshot_name") is not None or p.get("snapshot") is not None:
            wanted = p.get("snapshot_name") or "%s-%s" % (target.name, p["snapshot"])
            found = [s for s in self.snapshots.get(target.namespace) or [] if _meta(s).get("name") == wanted]
            if not found:
                return None, ("VM %s has no VirtualMachineSnapshot %s (its snapshots: %s)"
                              % (target.label, wanted, ", ".join(names) or "none"))
            snap = found[0]
            if _snapshot.source_vm(snap) != target.name:
                return None, ("VirtualMachineSnapshot %s/%s is a snapshot of %s, not of VM %s"
                              % (target.namespace, wanted, _snapshot.source_vm(snap) or "another kind of source",
                                 target.name))
            if _meta(snap).get("deletionTimestamp"):
                return None, "VirtualMachineSnapshot %s/%s is being deleted" % (target.namespace, wanted)
            if not _snapshot.is_ready(snap):
                st = _status(snap)
                return None, ("VirtualMachineSnapshot %s/%s is not ready to use (phase %s%s)"
                              % (target.namespace, wanted, st.get("phase") or "unknown",
                                 ": %s" % st["error"]["message"] if (st.get("error") or {}).get("message") else ""))
            return snap, None
        snap = _snapshot.newest_ready(mine)
        if snap is None:
            return None, ("VM %s has no snapshot ready to use (%s): take one with virtfleet.kubevirt.kubevirt_vm_snapshot "
                          "first" % (target.label, "its snapshots: %s" % ", ".join(names) if names else "it has none"))
        return snap, None

    def restored_already(self, target):
        """Does the VM hold the chosen snapshot since its last restore (see the module docstring)?"""
        if self.force:
            return False
        stamp = (_meta(target.vm).get("annotations") or {}).get(LAST_RESTORE)
        if not stamp:
            return False
        last = [r for r in self.restores.get(target.namespace) or [] if restore_stamp(r) == stamp]
        if not last or not restore_complete(last[0]):
            return False
        last = last[0]
        if (last.get("spec") or {}).get("virtualMachineSnapshotName") != _meta(target.snapshot).get("name"):
            return False
        content = self.content_of(target)
        if content is None:
            return False
        snap_vm = ((content.get("spec") or {}).get("source") or {}).get("virtualMachine")
        expected = restored_spec(snap_vm, target.vm, _status(last).get("restores"))
        return expected == _omit_empty(target.vm.get("spec"))

    def in_progress(self, target):
        """(a restore of this VM the controller still works on, a restore of it that blocks a new one) or Nones.

        KubeVirt's restore admission webhook (pkg/storage/admitters/vmrestore.go:Admit) refuses a new restore of a VM
        while another restore of it is not complete: one failed, or being deleted, blocks it too.
        """
        active = blocking = None
        for r in self.restores.get(target.namespace) or []:
            if ((r.get("spec") or {}).get("target") or {}).get("name") != target.name or restore_complete(r):
                continue
            if restore_active(r):
                active = active or r
            else:
                blocking = blocking or r
        return active, blocking

    def plan(self, target):
        snap, error = self.choose_snapshot(target)
        if error:
            return target.fail(error)
        target.snapshot = snap
        source_uid = _status(snap).get("sourceUID")
        if source_uid and source_uid != _meta(target.vm).get("uid"):
            return target.fail("VirtualMachineSnapshot %s/%s was taken of an earlier VM named %s (uid %s), not of this one "
                               "(uid %s): KubeVirt refuses to restore it onto an existing VM"
                               % (target.namespace, _meta(snap).get("name"), target.name, source_uid,
                                  _meta(target.vm).get("uid")))
        busy, blocking = self.in_progress(target)
        if busy is None and blocking is not None:
            why = "is being deleted" if _meta(blocking).get("deletionTimestamp") else "failed (%s)" % restore_reason(blocking)
            return target.fail("VirtualMachineRestore %s/%s of VM %s %s, and KubeVirt accepts no new restore of a VM while "
                               "one of it is not complete: delete it (kubectl delete vmrestore -n %s %s), then run the "
                               "task again" % (target.namespace, _meta(blocking).get("name"), target.name, why,
                                               target.namespace, _meta(blocking).get("name")))
        if busy is not None:
            if (busy.get("spec") or {}).get("virtualMachineSnapshotName") != _meta(snap).get("name"):
                return target.fail("restore %s of snapshot %s is still in progress on VM %s (%s): wait for it or delete it"
                                   % (_meta(busy).get("name"), (busy.get("spec") or {}).get("virtualMachineSnapshotName"),
                                      target.label, restore_reason(busy)))
            target.restore = busy
            target.restore_name = _meta(busy).get("name")
            target.adopted = True
            target.outcome = "pending"
            return None
        if self.restored_already(target):
            target.outcome = "unchanged"
            return None
        target.vmi = (self.vmis.get(target.namespace) or {}).get(target.name)
        target.running = target.vmi is not None    # restore.go:vmRestoreTarget.Ready: no VMI
        if target.running:
            if self.when_running == "fail":
                self.running_blocked.append(target)
            elif self.when_running == "stop":
                # Only a VM the task has stopped is started again: under when_running=wait somebody else stops it.
                target.stop = True
                target.restart = self.restart
        taken = set(_meta(r).get("name") for r in self.restores.get(target.namespace) or [])
        target.restore_name = restore_name(_meta(snap).get("name"), taken)
        self.restores.setdefault(target.namespace, []).append({"metadata": {"name": target.restore_name}})
        target.outcome = "planned"
        return None

    # --- writing ------------------------------------------------------------------------------------------
    def desired(self, target):
        spec = {"target": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": target.name},
                "virtualMachineSnapshotName": _meta(target.snapshot).get("name"),
                "targetReadinessPolicy": POLICIES[self.when_running]}
        return {"apiVersion": _kinds.VMRESTORE.api_version, "kind": _kinds.VMRESTORE.kind,
                "metadata": {"name": target.restore_name, "namespace": target.namespace, "labels": dict(MANAGED_BY)},
                "spec": spec}

    def write(self, target):
        try:
            outcome = self.engine.ensure(_kinds.VMRESTORE, self.desired(target), None)
        except (ApiError, TransportError) as err:
            target.fail("Cannot create VirtualMachineRestore %s/%s: %s" % (target.namespace, target.restore_name, err.msg))
            return
        target.restore = outcome.after
        target.changed = True
        target.outcome = "pending"

    def write_all(self, todo):
        in_parallel(self.write, todo, self.write_workers)

    def start(self, target):
        if self.check_mode:
            target.restarted = True
            return
        try:
            self.api.subresource(_kinds.VM_SUBRESOURCE, target.name, "start", target.namespace, body={}, idempotent=True)
            target.restarted = True
        except ApiError as err:
            if err.status == 409 and "already running" in (err.msg or "").lower():
                target.restarted = True
                return
            target.fail("VM %s was restored but starting it again failed: %s" % (target.label, err.msg))
        except TransportError as err:
            target.fail("VM %s was restored but starting it again failed: %s" % (target.label, err.msg))

    # --- waiting ------------------------------------------------------------------------------------------
    def _store(self, kind, ns, names):
        # wait_sleep only bounds the pause before reopening a watch the server closed at once (as kubevirt_vm's).
        pause = min(REOPEN_PAUSE, max(0.05, float(self.params.get("wait_sleep") or 5)))
        return WatchStore(self.api, kind, ns, names=names, clock=self.clock, sleep=self.sleep, reopen_pause=pause).load()

    def wait_restores(self, targets):
        """Until each restore is complete or failed; records the outcome per VM."""
        for ns in self._namespaces():
            group = [t for t in targets if t.namespace == ns]
            if not group:
                continue
            store = self._store(_kinds.VMRESTORE, ns, [t.restore_name for t in group])

            def settled(st, group=group, ns=ns):
                return all(self._restore_settled(st.get(t.restore_name, ns)) for t in group)
            store.until(settled, self.deadline)
            for t in group:
                obj = store.get(t.restore_name, ns)
                t.restore = obj or t.restore
                if obj is None:
                    t.fail("VirtualMachineRestore %s/%s disappeared before it completed" % (ns, t.restore_name))
                elif restore_failed(obj):
                    t.fail("restore %s failed: %s" % (t.restore_name, restore_reason(obj)))
                elif restore_complete(obj):
                    t.outcome = "restored"
                else:
                    self.timed_out.append(t)
                    t.fail("restore %s not complete after %ss: %s" % (t.restore_name, self.wait_timeout,
                                                                      restore_reason(obj)))

    @staticmethod
    def _restore_settled(obj):
        return obj is None or restore_complete(obj) or restore_failed(obj)

    def wait_vms(self, targets, ready):
        """Read the VMs back (one list per namespace); with ``ready`` watch until the restarted ones are Ready."""
        for ns in self._namespaces():
            group = [t for t in targets if t.namespace == ns]
            if not group:
                continue
            store = self._store(_kinds.VM, ns, [t.name for t in group])
            if ready:
                waiting = [t for t in group if t.restarted]
                store.until(lambda st, w=waiting, ns=ns: all(cmp.is_true(st.get(t.name, ns), "Ready") for t in w),
                            self.deadline)
            for t in group:
                t.final_vm = store.get(t.name, ns) or t.final_vm
                if ready and t.restarted and not cmp.is_true(t.final_vm, "Ready"):
                    self.timed_out.append(t)
                    t.fail("VM %s was restored and started but is not Ready after %ss (%s)"
                           % (t.label, self.wait_timeout, (_status(t.final_vm).get("printableStatus") or "no status")))

    # --- the task -----------------------------------------------------------------------------------------
    def run(self):
        started = self.clock()
        self.deadline = started + float(self.wait_timeout)
        try:
            self.read()
            for t in self.targets:
                self.plan(t)
            if self.diff_mode:
                # The diff's "after" comes from the snapshot contents: read them now, before any write.
                for ns in set(t.namespace for t in self.targets if t.outcome == "planned"):
                    self._contents(ns)
        except (ApiError, TransportError) as err:
            raise KubeVirtError("%s No VirtualMachineRestore was created." % err.msg)
        todo = [t for t in self.targets if t.outcome == "planned"]
        if self.running_blocked:
            for t in self.running_blocked:
                t.fail("VM %s is running (VMI phase %s): stop it first, or set when_running=stop (KubeVirt stops it for "
                       "the restore) or when_running=wait" % (t.label, _status(t.vmi).get("phase") or "unknown"))
            for t in todo:
                if not t.error:
                    t.outcome = "skipped"
            return self.clock() - started
        for t in todo:
            t.before_spec = copy.deepcopy(t.vm.get("spec") or {})
        self.write_all(todo)
        if self.check_mode:
            for t in todo:
                if not t.error:
                    t.outcome = "restored" if self.wait else "pending"
                    if t.restart:
                        self.start(t)
            return self.clock() - started
        created = [t for t in self.targets if t.restore is not None and not t.error]
        restarting = [t for t in created if t.restart]
        try:
            if self.wait:
                self.wait_restores(created)
            elif restarting:
                # A VM can only be started again once its restore is complete: those restores are waited for.
                self.wait_restores(restarting)
            for t in restarting:
                if t.outcome == "restored":
                    self.start(t)
            if self.wait or restarting:
                done = [t for t in created if t.outcome == "restored"]
                self.wait_vms(done, ready=self.wait)
        except (ApiError, TransportError) as err:
            for t in created:
                if t.outcome == "pending":
                    t.fail("waiting for restore %s failed: %s" % (t.restore_name, err.msg))
        return self.clock() - started

    # --- the report ---------------------------------------------------------------------------------------
    def predicted_after(self, target):
        """The VM spec after the restore: what the server answered, else generateRestoredVMSpec's prediction."""
        if target.final_vm is not None and target.outcome == "restored":
            return target.final_vm.get("spec") or {}
        content = self.content_of(target)
        snap_vm = (((content or {}).get("spec") or {}).get("source") or {}).get("virtualMachine")
        live = copy.deepcopy(target.vm)
        strategy = (live.get("spec") or {}).get("runStrategy")
        if target.stop and strategy in STOPPED_BY_STOP:
            live["spec"]["runStrategy"] = "Halted"
        if target.restarted and (live.get("spec") or {}).get("runStrategy") == "Halted":
            live["spec"]["runStrategy"] = "Always"
        uid = _meta(target.restore).get("uid") or "<uid>"
        return restored_spec(snap_vm, live, _status(target.restore).get("restores") or predicted_restores(snap_vm, content, uid))

    def result_of(self, target):
        restore = target.restore or {}
        out = {"name": target.name, "namespace": target.namespace,
               "snapshot": _meta(target.snapshot).get("name") if target.snapshot else None,
               "restore": target.restore_name, "outcome": target.outcome, "changed": target.changed,
               "failed": bool(target.error), "stopped": bool(target.stop and target.changed),
               "restarted": target.restarted, "restore_time": _status(restore).get("restoreTime"),
               "msg": target.error or self._msg(target),
               "resource": target.final_vm if target.final_vm is not None else target.vm}
        return out

    def _msg(self, t):
        snap = _meta(t.snapshot).get("name")
        if t.outcome == "unchanged":
            return "VM %s already holds snapshot %s (restore %s, not changed since)" % (
                t.label, snap, (_meta(t.vm).get("annotations") or {}).get(LAST_RESTORE))
        if t.outcome == "skipped":
            return "nothing was written: other selected VMs are running (when_running=fail)"
        if t.adopted:
            return "restore %s of snapshot %s was already in progress (%s)" % (
                t.restore_name, snap, restore_reason(t.restore))
        if t.outcome == "pending":
            extra = ""
            if t.running and self.when_running == "wait":
                extra = "; it waits until the VM is stopped (when_running=wait)"
            elif t.running:
                extra = "; KubeVirt stops the VM first"
            return "restore %s of snapshot %s created%s" % (t.restore_name, snap, extra)
        return "VM %s restored from snapshot %s%s" % (t.label, snap, " and started again" if t.restarted else "")

    def report(self, duration, api_retries):
        results = [self.result_of(t) for t in self.targets]
        for key in self.missing:
            ns, _sep, name = key.partition("/")
            results.append({"name": name, "namespace": ns, "snapshot": None, "restore": None, "outcome": "failed",
                            "changed": False, "failed": True, "stopped": False, "restarted": False,
                            "restore_time": None, "msg": "VM %s does not exist" % key, "resource": None})
        failed = [r for r in results if r["failed"]]
        result = {"changed": any(r["changed"] for r in results), "results": results, "duration": round(duration, 3),
                  "api_retries": api_retries}
        if self.diff_mode:
            before, after = [], []
            for t in self.targets:
                if t.changed:
                    meta = {"name": t.name, "namespace": t.namespace}
                    before.append({"metadata": meta, "spec": t.before_spec})
                    after.append({"metadata": meta, "spec": self.predicted_after(t)})
            result["diff"] = {"before": before, "after": after}
        groups = []
        for outcome in ("restored", "pending", "unchanged", "skipped"):
            members = [r for r in results if r["outcome"] == outcome and not r["failed"]]
            if members:
                named = ", ".join("%s/%s" % (r["namespace"], r["name"]) for r in members[:20])
                groups.append("%s %d: %s%s" % (outcome, len(members), named, " ..." if len(members) > 20 else ""))
        summary = "; ".join(groups) or "no VM restored"
        if failed:
            shown = " | ".join("%s/%s: %s" % (r["namespace"], r["name"], r["msg"]) for r in failed[:20])
            more = " and %d more" % (len(failed) - 20) if len(failed) > 20 else ""
            written = "" if not self.running_blocked else " Nothing was written."
            result["msg"] = "%d of %d VMs failed: %s%s.%s %s." % (len(failed), len(results), shown, more, written, summary)
        else:
            result["msg"] = summary + "."
        return bool(failed), result


def run_task(api, params, check_mode=False, diff_mode=False):
    """Run a kubevirt_vm_restore task; returns (failed, result)."""
    task = RestoreTask(api, params, check_mode=check_mode, diff_mode=diff_mode)
    client = getattr(api, "client", None)
    retries_before = getattr(client, "retries", 0)
    duration = task.run()
    return task.report(duration, getattr(client, "retries", 0) - retries_before)
