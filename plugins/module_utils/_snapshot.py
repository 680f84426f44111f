# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet.kubevirt contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""VirtualMachineSnapshots (snapshot.kubevirt.io/v1beta1) of many VMs in one task: kubevirt_vm_snapshot and
kubevirt_vm_snapshot_info (and the restore module's "newest ready snapshot of a VM").

Pure parts first (names, options, retention, the per-snapshot report), then ``SnapshotTask``.

Request budget of a task (one namespace, or cluster-wide without ``namespace``): one list of VMs (the selection),
one list of snapshots; one POST per snapshot to create and one DELETE per snapshot removed (retention or
state=absent), none on a re-run; a wait is one watch of snapshots started from the snapshot list's
resourceVersion (a new list only when the server answers 410 Gone); the snapshot contents are read with one list
when a reported snapshot has one (for ``size``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import time

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _args
from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _compare as cmp
from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _kinds
from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _vm_select
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._errors import ApiError, KubeVirtError, TransportError
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._resource import REOPEN_PAUSE, Engine, WatchStore, in_parallel

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGER = "virtfleet.kubevirt"
VM_LABEL = "virtfleet.kubevirt/vm"
# As kubevirt_vm: a few writes in flight at once (see _vm_apply.WRITE_WORKERS).
WRITE_WORKERS = 8
DELETION_POLICIES = ("Delete", "Retain")
# metav1.Duration as Go's time.ParseDuration reads it (no sign: a negative deadline makes no sense).
_DURATION = re.compile(r"^([0-9]+(\.[0-9]*)?(ns|us|\u00b5s|ms|s|m|h))+$")
_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+|[KMGTPE]i|[kMGTPE]|m)?$")
_FACTORS = {"Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60,
            "k": 10 ** 3, "M": 10 ** 6, "G": 10 ** 9, "T": 10 ** 12, "P": 10 ** 15, "E": 10 ** 18, "m": 0.001}
_SUFFIX = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


# --- pure: names and options ---------------------------------------------------------------------------------
def snapshot_name(vm, suffix):
    """The VirtualMachineSnapshot of VM ``vm`` for the ``snapshot`` option: ``<vm>-<snapshot>``."""
    return "%s-%s" % (vm, suffix)


def name_problem(vm, suffix):
    """Why ``<vm>-<suffix>`` cannot be this module's snapshot of VM ``vm`` (its name, its labels), or None."""
    full = snapshot_name(vm, suffix)
    if len(full) > 253:
        return ("snapshot name %s is %d characters long, more than the 253 a Kubernetes name may have: use a shorter "
                "snapshot option" % (full, len(full)))
    if len(vm) > 63:
        return ("VM name %s is longer than the 63 characters of a label value, so the %s label cannot name it"
                % (vm, VM_LABEL))
    return None


def check_params(params):
    """Every kubevirt_vm_snapshot option the API server would refuse or misread; raises InvalidOption."""
    absent = params.get("state") == "absent"
    _vm_select.check_selection(params, "VMs")
    suffix = params.get("snapshot")
    if not suffix or not _SUFFIX.match(suffix):
        raise _args.InvalidOption(
            'snapshot "%s" is not a valid name part: use lowercase letters, digits, "-" and ".", starting and ending '
            'with a letter or digit, such as "nightly" or "before-upgrade" (the snapshot of VM vm1 is then named '
            'vm1-<snapshot>).' % (suffix or ""))
    for name in params.get("names") or []:
        problem = name_problem(name, suffix)
        if problem and (not absent or len(snapshot_name(name, suffix)) > 253):
            # (state=absent names no label, so only the name's length matters there)
            raise _args.InvalidOption("snapshot: %s." % problem)
    deadline = params.get("failure_deadline")
    if deadline is not None and not _DURATION.match(deadline):
        raise _args.InvalidOption(
            'failure_deadline "%s" is not a duration: use a number with a unit (h, m, s, ms), such as "5m", '
            '"1h30m" or "0s" (no deadline).' % deadline)
    keep = params.get("keep")
    if keep is not None and keep < 1:
        raise _args.InvalidOption("keep must be 1 or more (the number of this module's snapshots kept per VM, the new "
                                  "one included), got %s; leave keep out to delete none." % keep)
    labels = params.get("labels") or {}
    _args.check_labels(labels, "labels")
    for key in (MANAGED_BY_LABEL, VM_LABEL):
        if key in labels:
            raise _args.InvalidOption("labels must not set %s: the module sets it on every snapshot it makes (retention "
                                      "with keep relies on it); remove it from labels." % key)
    _args.check_seconds(params.get("wait_timeout"), "wait_timeout")
    _args.check_seconds(params.get("wait_sleep"), "wait_sleep")


def check_info_params(params):
    """kubevirt_vm_snapshot_info options; raises InvalidOption before any request."""
    _vm_select.check_selection(params, "VMs", required=False)
    suffix = params.get("snapshot")
    if suffix is not None and not _SUFFIX.match(suffix):
        raise _args.InvalidOption('snapshot "%s" is not a valid name part: use lowercase letters, digits, "-" and ".", '
                                  'starting and ending with a letter or digit, such as "nightly".' % suffix)
    _args.check_selectors(params.get("snapshot_label_selectors"), "snapshot_label_selectors",
                          _args.check_label_selector)


def desired_snapshot(vm, namespace, suffix, labels=None, failure_deadline=None, deletion_policy=None):
    """The VirtualMachineSnapshot this module creates for VM ``namespace/vm``."""
    meta_labels = dict((k, "" if v is None else str(v).lower() if isinstance(v, bool) else str(v))
                       for k, v in (labels or {}).items())
    meta_labels[MANAGED_BY_LABEL] = MANAGER
    meta_labels[VM_LABEL] = vm
    spec = {"source": {"apiGroup": _kinds.VM.group, "kind": _kinds.VM.kind, "name": vm}}
    if failure_deadline is not None:
        spec["failureDeadline"] = failure_deadline
    if deletion_policy is not None:
        spec["deletionPolicy"] = deletion_policy
    return {"apiVersion": _kinds.VMSNAPSHOT.api_version, "kind": _kinds.VMSNAPSHOT.kind,
            "metadata": {"name": snapshot_name(vm, suffix), "namespace": namespace, "labels": meta_labels},
            "spec": spec}


# --- pure: reading snapshots ---------------------------------------------------------------------------------
def _meta(obj):
    return (obj or {}).get("metadata") or {}


def _status(obj):
    return (obj or {}).get("status") or {}


def source_vm(snapshot):
    """Name of the VirtualMachine a snapshot was taken of (``spec.source``), or None for another source kind."""
    source = (snapshot.get("spec") or {}).get("source") or {}
    if source.get("kind", "VirtualMachine") != "VirtualMachine":
        return None
    return source.get("name")


def _age_key(snapshot):
    # RFC 3339 timestamps in UTC ("...Z") sort as strings; the name breaks ties of one second.
    return (_meta(snapshot).get("creationTimestamp") or "", _status(snapshot).get("creationTime") or "",
            _meta(snapshot).get("name") or "")


def newest_first(snapshots):
    """The snapshots sorted newest first (by metadata.creationTimestamp, then status.creationTime, then name)."""
    return sorted(snapshots, key=_age_key, reverse=True)


def snapshots_by_vm(items):
    """``(namespace, vm name) -> [snapshots]`` newest first; snapshots of another source kind are left out."""
    out = {}
    for snap in items:
        vm = source_vm(snap)
        if not vm:
            continue
        out.setdefault((_meta(snap).get("namespace") or "", vm), []).append(snap)
    for key in out:
        out[key] = newest_first(out[key])
    return out


def is_ready(snapshot):
    return _status(snapshot).get("readyToUse") is True


def newest_ready(snapshots):
    """The newest snapshot that is ready to use (and not being deleted) among ``snapshots``, or None."""
    for snap in newest_first(snapshots):
        if is_ready(snap) and not _meta(snap).get("deletionTimestamp"):
            return snap
    return None


def managed_by_us(snapshot, vm):
    """Made by this module for VM ``vm``: both labels and the source agree."""
    labels = _meta(snapshot).get("labels") or {}
    return labels.get(MANAGED_BY_LABEL) == MANAGER and labels.get(VM_LABEL) == vm and source_vm(snapshot) == vm


def failure(snapshot):
    """Why the snapshot failed (phase Failed or a Failure condition True), or None while it has not."""
    cond = cmp.condition(snapshot, "Failure")
    failed_cond = cond is not None and str(cond.get("status")).lower() == "true"
    if not failed_cond and _status(snapshot).get("phase") != "Failed":
        return None
    if failed_cond:
        text = " ".join(p for p in (cond.get("reason"), cond.get("message")) if p)
        if text:
            return text
    err = _status(snapshot).get("error") or {}
    return err.get("message") or "phase Failed"


def retention(target, managed, keep):
    """Which of a VM's snapshots made by this module to delete so that ``keep`` remain, ``target`` (the snapshot this
    task names, new or not) counted as the newest. ``managed``: that VM's managed snapshots (any order); one being
    deleted already is neither counted nor deleted again. Returns the snapshots to delete, newest first."""
    others = [s for s in newest_first(managed)
              if _meta(s).get("name") != target and not _meta(s).get("deletionTimestamp")]
    return others[max(0, keep - 1):]


def quantity_bytes(text):
    """A Kubernetes quantity (``10Gi``, ``500M``, ``1e9``) in bytes (int), or None when it is not one."""
    match = _QUANTITY.match(str(text or "").strip())
    if not match:
        return None
    try:
        number = float(match.group(1))
    except ValueError:
        return None
    unit = match.group(2) or ""
    if unit[:1] in ("e", "E"):
        number *= 10 ** int(unit[1:])
    elif unit:
        number *= _FACTORS[unit]
    return int(round(number))


def content_size(content):
    """Bytes of the volumes a snapshot content holds: the sum of its volumeBackups' claim sizes (the requested
    storage of each PVC at snapshot time, what a restore asks for at least). 0 without backed-up volumes; None
    without a content, or when a claim carries no size."""
    if not content:
        return None
    total = 0
    for backup in (content.get("spec") or {}).get("volumeBackups") or []:
        pvc_spec = (backup.get("persistentVolumeClaim") or {}).get("spec") or {}
        size = quantity_bytes(((pvc_spec.get("resources") or {}).get("requests") or {}).get("storage"))
        if size is None:
            return None
        total += size
    return total


def indications(snapshot):
    st = _status(snapshot)
    found = list(st.get("indications") or [])
    for item in st.get("sourceIndications") or []:
        if item.get("indication") and item["indication"] not in found:
            found.append(item["indication"])
    return found


def snapshot_fields(snapshot, content=None):
    """The per-snapshot report fields read from the object (and its content, for the size)."""
    st = _status(snapshot)
    found = indications(snapshot)
    volumes = st.get("snapshotVolumes") or {}
    err = st.get("error") or {}
    return {
        "phase": st.get("phase"),
        "ready_to_use": st.get("readyToUse") is True,
        "indications": found,
        "online": "Online" in found,
        "guest_agent_freeze": "GuestAgent" in found,
        "size": content_size(content) if snapshot is not None else None,
        "included_volumes": list(volumes.get("includedVolumes") or []),
        "excluded_volumes": list(volumes.get("excludedVolumes") or []),
        "error": err.get("message") if isinstance(err, dict) else None,
        "creation_time": st.get("creationTime"),
    }


def content_name(snapshot):
    return _status(snapshot).get("virtualMachineSnapshotContentName")


def describe(snapshot):
    """Short state for a timeout message: ``phase InProgress, Progressing=False (Source not locked)``."""
    if snapshot is None:
        return "does not exist"
    parts = ["phase %s" % (_status(snapshot).get("phase") or "not set yet")]
    cond = cmp.condition(snapshot, "Progressing")
    if cond is not None:
        detail = " ".join(p for p in (cond.get("reason"), cond.get("message")) if p)
        parts.append("Progressing=%s%s" % (cond.get("status"), " (%s)" % detail if detail else ""))
    return ", ".join(parts)


# --- the task ------------------------------------------------------------------------------------------------
class Target(object):
    """One selected VM and its snapshot through the task."""

    def __init__(self, namespace, vm, suffix, exists=True):
        self.namespace = namespace
        self.vm = vm
        self.snapshot = snapshot_name(vm, suffix)
        self.vm_exists = exists
        self.live = None            # the snapshot as read (None: not there)
        self.obj = None             # the snapshot as last known
        self.write = None           # the Outcome of the create / delete
        self.others = []            # this VM's snapshots made by this module (retention)
        self.deleted = []           # names retention deleted (or, in check mode, would)
        self.deleted_objs = []
        self.outcome = None
        self.error = None
        self.settled = False

    @property
    def key(self):
        return (self.namespace, self.snapshot)

    @property
    def label(self):
        return "%s/%s" % (self.namespace, self.vm)

    def fail(self, msg, outcome="failed"):
        self.error = msg
        if outcome:
            self.outcome = outcome

    @property
    def changed(self):
        return bool(self.write is not None and self.write.changed) or bool(self.deleted)


class SnapshotTask(object):
    """One kubevirt_vm_snapshot task: ``params`` are the module's, ``api`` a ``_api.Api``."""

    def __init__(self, api, params, check_mode=False, diff_mode=False, clock=time.monotonic, sleep=time.sleep,
                 write_workers=WRITE_WORKERS):
        self.api = api
        self.params = params
        self.state = params.get("state") or "present"
        self.suffix = params["snapshot"]
        self.namespace = params.get("namespace")
        self.keep = params.get("keep")
        self.wait = bool(params.get("wait")) and not check_mode
        self.wait_timeout = params.get("wait_timeout") if params.get("wait_timeout") is not None else 120
        self.check_mode = check_mode
        self.diff_mode = diff_mode
        self.clock = clock
        self.sleep = sleep
        self.write_workers = max(1, int(write_workers))
        # wait_sleep (kubevirt.core's option) only bounds the pause before reopening a watch the server closed at once.
        sleep_option = params.get("wait_sleep")
        self.reopen_pause = min(REOPEN_PAUSE, max(0.05, float(sleep_option if sleep_option is not None else 5)))
        self.engine = Engine(api, check_mode=check_mode)
        self.targets = []
        self.missing = []
        self.snapshot_version = None
        self.timed_out = []
        self.task_error = None

    # --- reading --------------------------------------------------------------------------------------
    def read(self):
        """The selection (one list of VMs) and the snapshots (one list) of the same scope."""
        p = self.params
        selection = _vm_select.select(self.api, _kinds.VM, self.namespace, p.get("names"), p.get("label_selectors"))
        for vm in selection.items:
            meta = _meta(vm)
            self.targets.append(Target(meta.get("namespace") or self.namespace, meta.get("name"), self.suffix))
        for key in selection.missing:
            ns, _sep, name = key.partition("/")
            if self.state == "absent":
                # The snapshot of a VM deleted since is still this task's to remove.
                self.targets.append(Target(ns, name, self.suffix, exists=False))
            else:
                self.missing.append(Target(ns, name, self.suffix, exists=False))
        if not self.targets:
            return
        items, self.snapshot_version = self.api.list(_kinds.VMSNAPSHOT, self.namespace)
        self.snapshot_items = items
        by_key = dict(((_meta(s).get("namespace") or "", _meta(s).get("name")), s) for s in items)
        grouped = snapshots_by_vm(items)
        for t in self.targets:
            t.live = by_key.get(t.key)
            t.obj = t.live
            t.others = [s for s in grouped.get((t.namespace, t.vm), []) if managed_by_us(s, t.vm)]

    # --- writing --------------------------------------------------------------------------------------
    def _foreign(self, t):
        """The object named like this VM's snapshot is another VM's (or another kind of source's)."""
        if t.live is None or source_vm(t.live) == t.vm:
            return None
        source = (t.live.get("spec") or {}).get("source") or {}
        return ("VirtualMachineSnapshot %s/%s exists but is a snapshot of %s %s, not of VM %s: choose another snapshot "
                "name" % (t.namespace, t.snapshot, source.get("kind") or "VirtualMachine", source.get("name"), t.vm))

    def write(self, t):
        """Create or delete one VM's snapshot; records the outcome on the target, never raises ApiError."""
        try:
            foreign = self._foreign(t)
            if foreign:
                t.fail(foreign)
                return
            if self.state == "absent":
                t.write = self.engine.delete(_kinds.VMSNAPSHOT, t.live)
                t.outcome = t.write.action if t.write.action != "unchanged" else "deleted"
                t.obj = t.write.after if t.write.action != "absent" else None
                return
            problem = name_problem(t.vm, self.suffix)
            if problem:
                t.fail(problem)
                return
            if t.live is not None and _meta(t.live).get("deletionTimestamp"):
                t.fail("VirtualMachineSnapshot %s/%s is being deleted: run the task again once it is gone"
                       % (t.namespace, t.snapshot))
                return
            desired = desired_snapshot(t.vm, t.namespace, self.suffix, self.params.get("labels"),
                                       self.params.get("failure_deadline"), self.params.get("deletion_policy"))
            if t.live is not None:
                reason = failure(t.live)
                if reason:
                    t.fail("VirtualMachineSnapshot %s/%s exists and failed (%s): delete it (state=absent) or choose "
                           "another snapshot name" % (t.namespace, t.snapshot, reason))
                    return
                t.outcome = "unchanged"
                return
            t.write = self.engine.ensure(_kinds.VMSNAPSHOT, desired, None)
            t.outcome = "created"
            t.obj = t.write.after
        except (ApiError, TransportError) as err:
            t.fail(err.msg)

    def _parallel(self, fn, items):
        in_parallel(fn, items, self.write_workers)

    def prune(self, t):
        """Retention for one VM: delete its oldest managed snapshots beyond ``keep``."""
        if self.keep is None or t.error or t.outcome not in ("created", "unchanged"):
            return
        for snap in retention(t.snapshot, t.others, self.keep):
            try:
                outcome = self.engine.delete(_kinds.VMSNAPSHOT, snap)
            except (ApiError, TransportError) as err:
                name = _meta(snap).get("name")
                t.fail("deleting the older snapshot %s (keep=%d) failed: %s" % (name, self.keep, err.msg), outcome=None)
                return
            if outcome.action == "deleted":
                t.deleted.append(_meta(snap).get("name"))
                t.deleted_objs.append(snap)

    # --- waiting --------------------------------------------------------------------------------------
    def _settled(self, obj):
        if self.state == "absent":
            return obj is None
        return obj is not None and (is_ready(obj) or failure(obj) is not None)

    def wait_for(self, deadline):
        waiting = [t for t in self.targets if not t.error and (t.obj is not None or self.state != "absent")]
        if self.state == "absent":
            waiting = [t for t in waiting if t.outcome in ("deleted",)]
        if not waiting:
            return
        names = [t.snapshot for t in waiting]
        store = WatchStore(self.api, _kinds.VMSNAPSHOT, self.namespace, names=names, clock=self.clock,
                           sleep=self.sleep, reopen_pause=self.reopen_pause).load((self.snapshot_items, self.snapshot_version))
        store.until(lambda st: all(self._settled(st.objects.get(t.key)) for t in waiting), deadline)
        for t in waiting:
            obj = store.objects.get(t.key)
            if obj is not None or self.state == "absent":
                t.obj = obj
            t.settled = self._settled(obj)
            if not t.settled:
                self.timed_out.append(t)
                continue
            reason = failure(obj) if obj is not None else None
            if reason:
                t.fail("snapshot %s failed: %s" % (t.snapshot, reason))

    # --- the whole task -------------------------------------------------------------------------------
    def run(self):
        started = self.clock()
        deadline = started + float(self.wait_timeout)
        self.snapshot_items = []
        try:
            self.read()
        except (ApiError, TransportError) as err:
            raise KubeVirtError("%s No snapshot was created or deleted." % err.msg)
        self._parallel(self.write, self.targets)
        try:
            if self.state == "present" and not self.wait:
                # The new snapshot counts as the newest at once; with wait, only once it is ready (below).
                self._parallel(self.prune, self.targets)
            if self.wait:
                self.wait_for(deadline)
                if self.state == "present":
                    self._parallel(self.prune, [t for t in self.targets if t.settled and not t.error])
            self.contents = self._contents()
        except (ApiError, TransportError) as err:
            self.task_error = "After the writes, reading the snapshots back failed: %s" % err.msg
            self.contents = {}
        return self.clock() - started

    def _contents(self):
        """One list of snapshot contents when a reported snapshot has one (for ``size``)."""
        if not any(content_name(t.obj) for t in self.targets if t.obj is not None):
            return {}
        items, _rv = self.api.list(_kinds.VMSNAPSHOTCONTENT, self.namespace)
        return dict(((_meta(c).get("namespace") or "", _meta(c).get("name")), c) for c in items)

    # --- the report -----------------------------------------------------------------------------------
    def target_result(self, t):
        obj = t.obj
        content = self.contents.get((t.namespace, content_name(obj))) if obj is not None else None
        out = {"name": t.vm, "namespace": t.namespace, "snapshot": t.snapshot, "outcome": t.outcome or "failed",
               "changed": t.changed, "failed": bool(t.error), "resource": obj or {}}
        out.update(snapshot_fields(obj, content))
        out["deleted"] = list(t.deleted)
        if t.error:
            out["msg"] = t.error
        if self.diff_mode:
            out["diff"] = self._diff(t)
        return out

    def _diff(self, t):
        before, after = {}, {}
        if t.write is not None and t.write.changed:
            key = "%s/%s" % t.key
            if t.write.action == "created":
                before[key], after[key] = {}, t.write.after or {}
            else:
                before[key], after[key] = t.write.before or {}, {}
        for snap in t.deleted_objs:
            key = "%s/%s" % (t.namespace, _meta(snap).get("name"))
            before[key], after[key] = snap, {}
        return {"before": before, "after": after}

    def message(self):
        failed = [t for t in self.targets + self.missing if t.error]
        if not failed and not self.timed_out and not self.task_error:
            return None
        total = len(self.targets) + len(self.missing)
        parts = []
        if failed:
            parts.append("%d of %d VMs failed: %s." % (len(failed), total, " | ".join(
                "%s: %s" % (t.label, t.error) for t in failed)))
        if self.timed_out:
            goal = "deleted" if self.state == "absent" else "ready to use"
            parts.append("Timed out after %ss waiting for %d snapshots to be %s: %s. Increase wait_timeout or check "
                         "why they are not there." % (self.wait_timeout, len(self.timed_out), goal, "; ".join(
                             "%s/%s: %s" % (t.namespace, t.snapshot, describe(t.obj)) for t in self.timed_out[:20])))
        if self.task_error:
            parts.append(self.task_error)
        groups = []
        for outcome in ("created", "unchanged", "deleted", "absent"):
            members = [t.label for t in self.targets if not t.error and t.outcome == outcome]
            if members:
                groups.append("%s %d: %s" % (outcome, len(members), ", ".join(members)))
        if groups:
            parts.append("Done%s: %s." % (" for the others" if failed else "", "; ".join(groups)))
        return " ".join(parts)

    def result(self, duration, api_retries):
        for t in self.missing:
            t.fail("VM %s does not exist" % t.label)
        results = [self.target_result(t) for t in self.targets + self.missing]
        for t in self.timed_out:
            for r in results:
                if (r["namespace"], r["snapshot"]) == t.key:
                    r["failed"] = True
                    r["msg"] = "not %s within wait_timeout: %s" % (
                        "deleted" if self.state == "absent" else "ready to use", describe(t.obj))
        out = {"changed": any(r["changed"] for r in results), "results": results, "duration": round(duration, 3),
               "api_retries": api_retries}
        if self.diff_mode:
            out["diff"] = {"before": {}, "after": {}}
            for r in results:
                out["diff"]["before"].update(r["diff"]["before"])
                out["diff"]["after"].update(r["diff"]["after"])
        msg = self.message()
        if msg:
            out["msg"] = msg
            out["failed"] = True
        return out


def run_task(api, params, check_mode=False, diff_mode=False):
    """Run a kubevirt_vm_snapshot task; returns (failed, result)."""
    task = SnapshotTask(api, params, check_mode=check_mode, diff_mode=diff_mode)
    client = getattr(api, "client", None)
    retries_before = getattr(client, "retries", 0)
    duration = task.run()
    out = task.result(duration, getattr(client, "retries", 0) - retries_before)
    return bool(out.get("failed")), out


# --- kubevirt_vm_snapshot_info -------------------------------------------------------------------------------
def run_info(api, params):
    """The snapshots of the selected VMs (newest first per VM) and the raw objects: one list of snapshots, one of
    VMs only with label_selectors, one of contents only when a snapshot found has one."""
    namespace = params.get("namespace")
    names = params.get("names") or []
    vm_labels = params.get("label_selectors") or []
    order = None
    if vm_labels:
        selection = _vm_select.select(api, _kinds.VM, namespace, names, vm_labels)
        order = [(_meta(v).get("namespace") or namespace or "", _meta(v).get("name")) for v in selection.items]
    elif names:
        order = [(namespace, n) for n in names]
    items, _rv = api.list(_kinds.VMSNAPSHOT, namespace, params.get("snapshot_label_selectors") or None)
    grouped = snapshots_by_vm(items)
    suffix = params.get("snapshot")
    keys = order if order is not None else sorted(grouped)
    chosen = []
    seen = set()
    for key in keys:
        if key in seen:
            continue
        seen.add(key)
        for snap in grouped.get(key, []):
            if suffix and _meta(snap).get("name") != snapshot_name(key[1], suffix):
                continue
            chosen.append((key, snap))
    contents = {}
    if any(content_name(s) for _k, s in chosen):
        found, _rv = api.list(_kinds.VMSNAPSHOTCONTENT, namespace)
        contents = dict(((_meta(c).get("namespace") or "", _meta(c).get("name")), c) for c in found)
    snapshots = []
    for (ns, vm), snap in chosen:
        entry = {"name": vm, "namespace": ns, "snapshot": _meta(snap).get("name"),
                 "managed": managed_by_us(snap, vm), "resource": snap}
        entry.update(snapshot_fields(snap, contents.get((ns, content_name(snap)))))
        reason = failure(snap)
        entry["failure"] = reason
        snapshots.append(entry)
    return {"changed": False, "snapshots": snapshots, "resources": [s for _k, s in chosen]}
