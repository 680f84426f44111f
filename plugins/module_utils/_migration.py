# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet.kubevirt contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Live-migrate (or cancel the migrations of) many VMIs in one task: kubevirt_vm_migration.

Plan, then write, then wait, like ``_vm_apply``:
- read: the VMIs (``_vm_select``: names, label selectors or every VMI on a node, one list) and the
  VirtualMachineInstanceMigrations of the same scope (one list), so every VMI's migration in flight is known;
- decide, before any write: a VMI whose ``LiveMigratable`` condition is False cannot be migrated (KubeVirt's
  admission webhook would refuse it); with ``non_migratable=fail`` the task then fails naming them all and writes
  nothing; ``skip`` leaves them; ``stop`` stops their VMs (the VM ``stop`` subresource);
- write: one VMIM per VMI (``generateName: <vmi>-migration-``), a few at a time (``WRITE_WORKERS``); a VMI that
  already has a migration in flight keeps it (it is waited for, no second one is created); ``state=absent``
  deletes the migrations in flight, which makes KubeVirt abort them;
- wait: one watch of VMIMs (per namespace, or cluster-wide) from the list's resourceVersion until every migration is
  Succeeded or Failed (and one watch of VMIs until the stopped ones are gone), all under one deadline. Source node,
  target node and duration come from the final VMIM's ``status.migrationState`` (KubeVirt copies the VMI's there when
  the migration ends); only when it lacks them is the VMI read.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import time

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _args
from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _kinds
from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _vm_select
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._errors import ApiError, KubeVirtError, TransportError
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._resource import REOPEN_PAUSE, Engine, WatchStore, in_parallel
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._vm_apply import WRITE_WORKERS

MANAGED_BY = {"app.kubernetes.io/managed-by": "virtfleet.kubevirt"}
# staging/src/kubevirt.io/api/core/v1/types.go: MigrationSelectorLabel (set on every VMIM by virt-api's mutator)
VMI_NAME_LABEL = "kubevirt.io/vmi-name"
FINAL_PHASES = ("Succeeded", "Failed")
NON_MIGRATABLE_CHOICES = ("fail", "skip", "stop")

# Outcomes of one VMI.
MIGRATED, PENDING, SKIPPED, STOPPED, CANCELLED, UNCHANGED, FAILED = (
    "migrated", "pending", "skipped", "stopped", "cancelled", "unchanged", "failed")


def check_params(params):
    """Every option the API server would refuse or misread; raises InvalidOption before any request."""
    _vm_select.check_selection(params, "VMIs", node=True)
    selector = params.get("target_node_selector") or {}
    _args.check_labels(selector, "target_node_selector")
    for key, value in selector.items():
        if value is None or isinstance(value, bool):
            raise _args.InvalidOption(
                'target_node_selector value of %s must be a string (a node label value such as "true"): quote it.' % key)
    if params.get("state") == "absent" and selector:
        raise _args.InvalidOption("target_node_selector only applies to state=present (new migrations); leave it out "
                                  "to cancel migrations.")
    timeout = params.get("wait_timeout")
    if timeout is not None and timeout < 1:
        raise _args.InvalidOption("wait_timeout must be 1 or more seconds, got %s." % timeout)


def _meta(obj):
    return (obj or {}).get("metadata") or {}


def _key(obj):
    meta = _meta(obj)
    return "%s/%s" % (meta.get("namespace") or "", meta.get("name") or "")


def in_flight(mig):
    """A migration that is not finished (KubeVirt's ensureNoMigrationConflict counts these)."""
    return ((mig or {}).get("status") or {}).get("phase") not in FINAL_PHASES


def migratable_problem(vmi):
    """``"<reason>: <message>"`` when the VMI's LiveMigratable condition is False, else None."""
    for cond in ((vmi or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == "LiveMigratable" and cond.get("status") == "False":
            reason, message = cond.get("reason") or "NotMigratable", cond.get("message") or ""
            return "%s: %s" % (reason, message) if message else reason
    return None


def not_running(vmi):
    """Why a VMI cannot be migrated whatever its condition says (not Running, being deleted), or None."""
    if _meta(vmi).get("deletionTimestamp"):
        return "the VMI is being deleted"
    phase = ((vmi or {}).get("status") or {}).get("phase")
    if phase != "Running":
        return "the VMI is not running (phase %s)" % (phase or "unknown")
    return None


def parse_time(stamp):
    """An RFC 3339 timestamp of the API (``2026-12-05T00:43:43Z``, fractions allowed) -> aware datetime, or None."""
    if not stamp:
        return None
    text = stamp.replace("Z", "+00:00")
    base, _sep, rest = text.partition(".")
    if rest:
        digits = rest[:len(rest) - len(rest.lstrip("0123456789"))]
        zone = rest[len(digits):]
        text = "%s.%s%s" % (base, (digits + "000000")[:6], zone)
    try:
        return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z" if rest else "%Y-%m-%dT%H:%M:%S%z")
    except ValueError:
        return None


def state_duration(state):
    """Seconds from migrationState.startTimestamp to endTimestamp, or None while either is missing."""
    start, end = parse_time((state or {}).get("startTimestamp")), parse_time((state or {}).get("endTimestamp"))
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 3)


def failure_reason(mig):
    """Why a Failed migration failed, from what KubeVirt wrote: the migrationState's failure reason or abort status,
    else the phase it failed after."""
    status = (mig or {}).get("status") or {}
    state = status.get("migrationState") or {}
    if state.get("abortStatus") or state.get("abortRequested") or any(
            c.get("type") == "migrationAbortRequested" for c in status.get("conditions") or []):
        return "the migration was cancelled (aborted: %s)" % (state.get("abortStatus") or "requested")
    if state.get("failureReason"):
        return state["failureReason"].strip()
    phases = [t.get("phase") for t in status.get("phaseTransitionTimestamps") or [] if t.get("phase") != "Failed"]
    if phases:
        return "the migration failed after phase %s" % phases[-1]
    return "the migration failed"


class Item(object):
    """One VMI of the task: what was decided and what happened."""

    def __init__(self, namespace, name, vmi=None):
        self.namespace = namespace
        self.name = name
        self.vmi = vmi
        self.source_node = ((vmi or {}).get("status") or {}).get("nodeName")
        self.action = None          # create, reuse, stop, cancel, None (nothing to do)
        self.migration = None       # the VMIM (in flight found, created, or last seen)
        self.outcome = None
        self.changed = False
        self.error = None
        self.reason = None          # LiveMigratable message or failure reason
        self.non_migratable = False

    @property
    def label(self):
        return "%s/%s" % (self.namespace, self.name)

    def fail(self, msg):
        self.error = msg
        self.outcome = FAILED

    @property
    def migration_name(self):
        return _meta(self.migration).get("name")

    def result(self, check_mode):
        mig_status = (self.migration or {}).get("status") or {}
        state = mig_status.get("migrationState") or {}
        vmi_state = ((self.vmi or {}).get("status") or {}).get("migrationState") or {}
        if vmi_state.get("migrationUid") and vmi_state.get("migrationUid") == _meta(self.migration).get("uid"):
            state = dict(state, **vmi_state)
        target = state.get("targetNode")
        if self.outcome == MIGRATED and not target:
            target = ((self.vmi or {}).get("status") or {}).get("nodeName")
        out = {
            "name": self.name, "namespace": self.namespace, "outcome": self.outcome, "changed": self.changed,
            "failed": self.outcome == FAILED, "migration": self.migration_name,
            "phase": mig_status.get("phase"), "source_node": state.get("sourceNode") or self.source_node,
            "target_node": target, "duration": state_duration(state) if self.outcome == MIGRATED else None,
            "reason": self.reason, "reused": self.action == "reuse",
        }
        if self.error:
            out["msg"] = self.error
        return out


class MigrationTask(object):
    """One kubevirt_vm_migration task; ``api`` is a ``_api.Api``."""

    def __init__(self, api, params, check_mode=False, diff_mode=False, clock=time.monotonic, sleep=time.sleep,
                 write_workers=WRITE_WORKERS):
        self.api = api
        self.params = params
        self.namespace = params.get("namespace")
        self.state = params.get("state") or "present"
        self.policy = params.get("non_migratable") or "fail"
        self.selector = params.get("target_node_selector") or {}
        self.wait = bool(params.get("wait")) and not check_mode
        self.wait_timeout = params.get("wait_timeout") or 120
        self.check_mode = check_mode
        self.diff_mode = diff_mode
        self.clock = clock
        self.sleep = sleep
        self.write_workers = max(1, int(write_workers))
        self.engine = Engine(api, check_mode=check_mode)
        self.items = []
        self.missing = []
        self.selection = None       # the VMI list (_vm_select.Selection)
        self.migrations = None      # (items, resourceVersion) of the VMIM list
        self.deadline = None
        self.refused = None         # the non_migratable=fail message

    # --- reading and deciding ----------------------------------------------------------------------------
    def read(self):
        selection = _vm_select.select(self.api, _kinds.VMI, self.namespace, self.params.get("names"),
                                      self.params.get("label_selectors"), self.params.get("node"))
        self.selection = selection
        self.items = [Item(_meta(v).get("namespace"), _meta(v).get("name"), v) for v in selection.items]
        for key in selection.missing:
            ns, _sep, name = key.partition("/")
            item = Item(ns, name)
            if self.state == "absent":
                item.outcome = UNCHANGED    # no VMI, so no migration of it to cancel
            else:
                item.fail("VMI %s does not exist: its VM is not running, or there is no such VM." % key)
            self.missing.append(item)
        if not self.items:
            self.migrations = ([], None)
            return
        self.migrations = self.api.list(_kinds.VMIM, self.namespace)
        flying = {}
        for mig in self.migrations[0]:
            if in_flight(mig):
                vmi_name = ((mig.get("spec") or {}).get("vmiName") or (_meta(mig).get("labels") or {}).get(VMI_NAME_LABEL))
                flying["%s/%s" % (_meta(mig).get("namespace"), vmi_name)] = mig
        for item in self.items:
            item.migration = flying.get(item.label)

    def decide(self):
        """Each VMI's action; returns the non-migratable VMIs (LiveMigratable False, no migration in flight)."""
        blocked = []
        for item in self.items:
            if self.state == "absent":
                if item.migration is None:
                    item.action, item.outcome = None, UNCHANGED
                else:
                    item.action = "cancel"
                continue
            if item.migration is not None:
                item.action = "reuse"
                continue
            why = not_running(item.vmi)
            if why:
                item.fail("Cannot migrate VMI %s: %s." % (item.label, why))
                continue
            problem = migratable_problem(item.vmi)
            if problem:
                item.reason = problem
                item.non_migratable = True
                blocked.append(item)
                continue
            item.action = "create"
        if blocked and self.policy == "fail":
            self.refused = ("%d of the %d selected VMIs cannot be live-migrated, so no migration was created "
                            "(non_migratable=fail): %s. Use non_migratable=skip to migrate the others, or "
                            "non_migratable=stop to stop these VMs and migrate the others."
                            % (len(blocked), len(self.items), "; ".join("%s (%s)" % (i.label, i.reason) for i in blocked)))
            for item in self.items:
                if item in blocked:
                    item.fail("VMI %s cannot be live-migrated: %s" % (item.label, item.reason))
                elif item.outcome is None:
                    item.action, item.outcome = None, UNCHANGED
        else:
            for item in blocked:
                item.action = "stop" if self.policy == "stop" else None
                if self.policy == "skip":
                    item.outcome = SKIPPED
        return blocked

    # --- writing -----------------------------------------------------------------------------------------
    def desired(self, item):
        spec = {"vmiName": item.name}
        if self.selector:
            spec["addedNodeSelector"] = dict(self.selector)
        return {"apiVersion": _kinds.VMIM.api_version, "kind": _kinds.VMIM.kind,
                "metadata": {"generateName": "%s-migration-" % item.name[:52], "namespace": item.namespace,
                             "labels": dict(MANAGED_BY)},
                "spec": spec}

    def write(self, item):
        """The create/stop/cancel of one VMI; records errors on the item, never raises ApiError."""
        try:
            if item.action == "create":
                outcome = self.engine.ensure(_kinds.VMIM, self.desired(item), None)
                item.migration = outcome.after
                item.changed = True
                item.outcome = PENDING
            elif item.action == "reuse":
                item.outcome = PENDING
            elif item.action == "cancel":
                outcome = self.engine.delete(_kinds.VMIM, item.migration)
                item.changed = outcome.action == "deleted"
                item.outcome = CANCELLED if outcome.action in ("deleted", "unchanged") else UNCHANGED
            elif item.action == "stop":
                self._stop(item)
        except (ApiError, TransportError) as err:
            verb = {"create": "migrate", "cancel": "cancel the migration of", "stop": "stop the VM of"}.get(
                item.action, "handle")
            item.fail("Cannot %s VMI %s: %s" % (verb, item.label, err.msg))

    def _stop(self, item):
        owners = [o for o in _meta(item.vmi).get("ownerReferences") or [] if o.get("kind") == "VirtualMachine"]
        if not owners:
            item.fail("VMI %s cannot be live-migrated (%s) and has no VirtualMachine to stop it through; delete the "
                      "VMI yourself or use non_migratable=skip." % (item.label, item.reason))
            return
        if not self.check_mode:
            try:
                self.api.subresource(_kinds.VM_SUBRESOURCE, owners[0].get("name"), "stop", item.namespace, body={},
                                     idempotent=True)
            except ApiError as err:
                if not (err.status == 409 and "not running" in (err.msg or "").lower()):
                    raise
        item.changed = True
        item.outcome = STOPPED

    def write_all(self):
        in_parallel(self.write, [i for i in self.items if i.action and i.outcome != FAILED], self.write_workers)

    # --- waiting -----------------------------------------------------------------------------------------
    def _reopen_pause(self):
        return min(REOPEN_PAUSE, max(0.05, float(self.params.get("wait_sleep") or 5)))

    def wait_all(self):
        """Wait for the migrations (final phase, or gone after a cancel) and the stopped VMIs (gone)."""
        watched = [i for i in self.items if i.outcome in (PENDING, CANCELLED) and i.migration_name]
        ok = True
        if watched:
            names = [i.migration_name for i in watched]
            store = WatchStore(self.api, _kinds.VMIM, self.namespace, names=names, clock=self.clock, sleep=self.sleep,
                               reopen_pause=self._reopen_pause())
            base = [m for m in self.migrations[0] if _meta(m).get("name") in names]
            store.load(initial=(base, self.migrations[1]))

            def settled(item, st):
                obj = st.get(item.migration_name, item.namespace)
                if item.outcome == CANCELLED:
                    return obj is None
                return obj is not None and not in_flight(obj)
            ok = store.until(lambda st: all(settled(i, st) for i in watched), self.deadline) and ok
            for item in watched:
                obj = store.get(item.migration_name, item.namespace)
                if item.outcome == CANCELLED:
                    continue
                if obj is not None:
                    item.migration = obj
        stopped = [i for i in self.items if i.outcome == STOPPED]
        if stopped:
            store = WatchStore(self.api, _kinds.VMI, self.namespace, names=[i.name for i in stopped], clock=self.clock,
                               sleep=self.sleep, reopen_pause=self._reopen_pause())
            store.load(initial=([i.vmi for i in stopped], self.selection.version))
            done = store.until(lambda st: all(st.get(i.name, i.namespace) is None for i in stopped), self.deadline)
            if not done:
                for item in stopped:
                    if store.get(item.name, item.namespace) is not None:
                        item.fail("The VM of VMI %s was stopped but its VMI still exists after wait_timeout (%ss)."
                                  % (item.label, self.wait_timeout))
            ok = done and ok
        return ok

    def conclude(self):
        """Outcomes from the migrations as last seen (after the wait, or right after the create)."""
        for item in self.items:
            if item.outcome != PENDING or not self.wait:
                continue
            phase = ((item.migration or {}).get("status") or {}).get("phase")
            if phase == "Succeeded":
                item.outcome = MIGRATED
            elif phase == "Failed":
                item.reason = failure_reason(item.migration)
                item.fail("The migration %s of VMI %s failed: %s." % (item.migration_name, item.label, item.reason))
            else:
                item.fail("The migration %s of VMI %s is still %s after wait_timeout (%ss)%s." % (
                    item.migration_name, item.label, phase or "not started", self.wait_timeout,
                    ": no node can take the VMI yet (check target_node_selector, cordoned and NotReady nodes)"
                    if phase in ("Pending", "Scheduling") else ""))
        # The final VMIM carries the VMI's migrationState; without it (an older KubeVirt) the VMI is read.
        for item in self.items:
            if item.outcome != MIGRATED:
                continue
            state = ((item.migration or {}).get("status") or {}).get("migrationState") or {}
            if not (state.get("targetNode") and state.get("endTimestamp")):
                try:
                    item.vmi = self.api.get(_kinds.VMI, item.name, item.namespace) or item.vmi
                except (ApiError, TransportError):
                    pass

    # --- the whole task ----------------------------------------------------------------------------------
    def run(self):
        started = self.clock()
        self.deadline = started + float(self.wait_timeout)
        try:
            self.read()
        except (ApiError, TransportError) as err:
            raise KubeVirtError("%s No migration was created or cancelled." % err.msg)
        self.decide()
        if self.refused is None:
            self.write_all()
            if self.wait:
                try:
                    self.wait_all()
                except (ApiError, TransportError) as err:
                    for item in self.items:
                        if item.outcome in (PENDING, STOPPED):
                            item.fail("Waiting for VMI %s failed: %s" % (item.label, err.msg))
                self.conclude()
        return self.clock() - started

    def diff(self):
        before, after = {}, {}
        for item in self.items:
            if not item.changed:
                continue
            res = item.result(self.check_mode)
            if item.outcome == CANCELLED:
                before[item.label] = {"node": item.source_node, "migration": item.migration_name}
                after[item.label] = {"node": item.source_node, "migration": None}
            elif item.outcome == STOPPED:
                before[item.label] = {"node": item.source_node, "running": True}
                after[item.label] = {"node": None, "running": False}
            else:
                before[item.label] = {"node": item.source_node}
                after[item.label] = {"node": res["target_node"] or "(another node)"}
        return {"before": before, "after": after}

    def summary(self):
        counts = {}
        for item in self.items + self.missing:
            counts.setdefault(item.outcome, []).append(item)
        parts = []
        for outcome in (FAILED, MIGRATED, PENDING, STOPPED, SKIPPED, CANCELLED, UNCHANGED):
            group = counts.get(outcome) or []
            if not group:
                continue
            if outcome in (FAILED, SKIPPED):
                names = "; ".join("%s (%s)" % (i.label, i.error if outcome == FAILED else i.reason) for i in group)
            else:
                names = ", ".join(i.label for i in group)
            parts.append("%d %s: %s" % (len(group), outcome, names))
        return ". ".join(parts) + "."


def run_task(api, params, check_mode=False, diff_mode=False):
    """Run a kubevirt_vm_migration task; returns (failed, result dict)."""
    task = MigrationTask(api, params, check_mode=check_mode, diff_mode=diff_mode)
    client = getattr(api, "client", None)
    retries_before = getattr(client, "retries", 0)
    duration = task.run()
    items = task.items + task.missing
    results = [i.result(check_mode) for i in items]
    blocked = [i for i in task.items if i.non_migratable]
    result = {
        "changed": any(i.changed for i in items),
        "results": results,
        "non_migratable": [{"name": i.name, "namespace": i.namespace, "reason": i.reason} for i in blocked],
        "duration": round(duration, 3),
        "api_retries": getattr(client, "retries", 0) - retries_before,
    }
    if diff_mode:
        result["diff"] = task.diff()
    failed = bool(task.refused) or any(i.outcome == FAILED for i in items)
    if task.refused:
        result["msg"] = task.refused
    elif failed:
        result["msg"] = "Some VMIs failed. %s" % task.summary()
    return failed, result
