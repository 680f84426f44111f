# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet.kubevirt contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Declare one or many VirtualMachines: read, decide, write, act, wait — with as few requests as possible.

Request budget for N VMs in one namespace: one GET (N=1) or one list of VMs (plus one of VMIs when a
lifecycle state or a wait needs them); one server-side apply per VM that needs a change (none on an
idempotent re-run); one subresource call per VM that must start/stop/restart/pause/unpause; the wait is one list and
at most one watch per kind and namespace, all under a single deadline. A namespace that does not exist costs
one POST and one repeated write, only with create_namespace (see ``_namespaces``).

The writes of a task with several VMs are sent a few at a time (``WRITE_WORKERS`` threads): the same requests,
each VM decided and written on its own as before, only not one after the other. Results keep the task's order.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _compare as cmp
from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _kinds
from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _namespaces
from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _vm_report
from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _vm_spec as vs
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._api import api_missing
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._errors import (
    ApiError,
    KubeVirtError,
    TransportError,
    maybe_written,
)
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._resource import (
    GIVEN,
    OWNED,
    REOPEN_PAUSE,
    REPLACE,
    Engine,
    Outcome,
    WatchStore,
    in_parallel,
)

RUNNING_STRATEGIES = ("Always", "RerunOnFailure")
LIFECYCLE_STATES = ("started", "stopped", "restarted", "paused")
# The VMI subresource calls (the others are the VM's); KubeVirt answers 409 with these words when it is already so.
VMI_ACTIONS = ("pause", "unpause")
# (A pause or unpause refused because the VMI does not run is a failure, not "already so".)
ALREADY_SO = {"start": ("already running",), "stop": ("not running", "already stopped"),
              "restart": ("already running", "not running", "already stopped"),
              "pause": ("already paused",), "unpause": ("not paused",)}
# How often the guarded swap of spec.running for runStrategy is re-read and re-sent when the VM changed
# under it or its answer was lost.
SWAP_ATTEMPTS = 3

# How many VM writes of one task are in flight at once. Each write waits for the API server and, for VMs, for
# KubeVirt's admission webhooks: one after the other, 100 VMs took 100 of those round trips. Eight is few enough
# for a small API server (kube-apiserver's default limit is 200 mutating requests in flight) and keeps the
# client's connection pool (``_client.POOL_MAXSIZE``) free of throwaway connections.
WRITE_WORKERS = 8

# A VM's progress through the task, one stage at a time.
PLANNED, WRITTEN, ACTED, SETTLED, FAILED = "planned", "written", "acted", "settled", "failed"
# Wait targets that need the VMIs watched first (the VM's own status follows them).
VMI_TARGETS = ("stopped", "restarted", "paused", "unpaused")


def vmi_active(vmi):
    """A VMI that exists and is not finished or being deleted."""
    if not vmi:
        return False
    if (vmi.get("metadata") or {}).get("deletionTimestamp"):
        return False
    return (vmi.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def vmi_paused(vmi):
    """The VMI's Paused condition is True (paused by a user, at start, by the migration monitor or an I/O error)."""
    return bool(vmi) and cmp.is_true(vmi, "Paused")


def _key(ns, name):
    return "%s/%s" % (ns, name)


class VM(object):
    """Everything the task knows and decides about one VM.

    Progress is ``stage``: planned -> written (the create/update/delete, or its check-mode prediction, is
    ``write``, an ``_resource.Outcome``) -> acted (the start/stop/restart of ``action``) -> settled (the wait
    for ``target`` ended), or failed (``error``) at any point.
    """

    def __init__(self, index, opts, state):
        self.index = index
        self.opts = opts
        self.state = "restarted" if state == "restart" else state
        self.namespace = opts.get("namespace")
        self.name = opts.get("name") or (opts.get("definition") or {}).get("metadata", {}).get("name")
        if not self.namespace:
            self.namespace = (opts.get("definition") or {}).get("metadata", {}).get("namespace")
        self.stage = PLANNED
        self.live = None            # the VM and its VMI as read before the write
        self.vmi = None
        self.desired = None
        self.result = None          # the VM as last known: after the write, after the wait
        self.method = None          # the planned write: create, update or delete
        self.write = None           # its Outcome
        self.action = None          # planned lifecycle call: start, stop, restart, pause, unpause
        self.acted = False          # that call changed the VM (or, in check mode, would)
        self.target = None          # what the wait waits for: ready, restarted, stopped, gone, observed, paused, unpaused
        self.observe = False        # a template change on a running VM: wait for the controller's verdict
        self.restart_required = False
        self.old_vmi_uid = None
        self.error = None

    @property
    def label(self):
        if self.name:
            return _key(self.namespace, self.name)
        return "%s/%s* (vms[%d])" % (self.namespace, self.opts.get("generate_name"), self.index)

    def fail(self, msg):
        self.error = msg
        self.stage = FAILED

    def wrote(self, outcome):
        self.write = outcome
        self.result = outcome.after if outcome.after is not None else (outcome.before if outcome.action != "deleted"
                                                                       else None)
        if self.stage == PLANNED:
            self.stage = WRITTEN

    @property
    def changed(self):
        return bool(self.write is not None and self.write.changed) or self.acted

    def diff(self, hidden):
        """The write's before/after, or None when it changed nothing."""
        if self.write is None or not self.write.changed:
            return None
        return cmp.diff(self.write.before, None if self.write.action == "deleted" else self.write.after, hidden)

    @property
    def done(self):
        """What the write did: created, updated, unchanged, deleted, absent, or None when it did not happen."""
        return self.write.action if self.write is not None else None

    @property
    def outcome(self):
        return "failed" if self.error else (self.done or "failed")


class VMTask(object):
    """One kubevirt_vm task over one or more VMs.

    ``api`` is a ``_api.Api``; ``items`` are resolved per-VM option dicts (see ``resolve_items``).
    """

    def __init__(self, api, items, api_version=vs.DEFAULT_API_VERSION, wait=False, wait_timeout=120, hidden_fields=None,
                 delete_options=None, restart_if_required=False, grace_period_seconds=None, check_mode=False,
                 diff_mode=False, clock=time.monotonic, sleep=time.sleep, wait_sleep=5, create_namespace=False,
                 full_ownership=False, force=False, write_workers=WRITE_WORKERS):
        self.api = api
        self.write_workers = max(1, int(write_workers))
        # How an existing VM is updated: only the given fields (default), server-side apply of the whole
        # declaration (full_ownership), or a replace of the whole object (force).
        self.full_ownership = full_ownership
        self.force = force
        self.namespaces = _namespaces.Namespaces(api, create_namespace, check_mode=check_mode)
        self.kind = _kinds.VM.with_api_version(api_version)
        self.vmi_kind = _kinds.VMI.with_api_version(api_version)
        self.api_version = api_version
        self.vms = [VM(i, opts, state) for i, (opts, state) in enumerate(items)]
        self.wait = wait
        self.wait_timeout = wait_timeout
        self.hidden = list(cmp.DEFAULT_HIDDEN_FIELDS if hidden_fields is None else hidden_fields)
        self.engine = Engine(api, check_mode=check_mode, hidden=self.hidden, namespaces=self.namespaces)
        self.delete_options = delete_options or {}
        self.restart_if_required = restart_if_required
        self.grace_period_seconds = grace_period_seconds
        self.check_mode = check_mode
        self.diff_mode = diff_mode
        self.clock = clock
        self.sleep = sleep
        # wait_sleep only bounds the pause before re-opening a watch the server closed at once.
        self.reopen_pause = min(REOPEN_PAUSE, max(0.05, float(wait_sleep if wait_sleep is not None else 5)))
        self.deadline = None
        self.timeout_msg = None
        self.task_error = None

    # --- reading ------------------------------------------------------------------------------------------
    def _namespaces(self):
        out = []
        for vm in self.vms:
            if vm.namespace not in out:
                out.append(vm.namespace)
        return out

    def _needs_vmis(self):
        return any(vm.state in LIFECYCLE_STATES for vm in self.vms) or self.wait or self.restart_if_required

    def read(self):
        """Live VMs (and VMIs when needed): one GET per kind for a single VM, else one list per namespace."""
        for ns in self._namespaces():
            vms = [vm for vm in self.vms if vm.namespace == ns and vm.name]
            if not vms:
                continue
            for kind, attr in ((self.kind, "live"), (self.vmi_kind, "vmi")):
                if attr == "vmi" and not self._needs_vmis():
                    continue
                if len(vms) == 1:
                    found = {vms[0].name: self.api.get(kind, vms[0].name, ns)}
                else:
                    items, _rv = self.api.list(kind, ns)
                    found = dict(((o.get("metadata") or {}).get("name"), o) for o in items)
                for vm in vms:
                    setattr(vm, attr, found.get(vm.name))

    # --- deciding and writing -----------------------------------------------------------------------------
    def _plan_write(self, vm):
        """(desired object, engine mode, keyword arguments of Engine.ensure) for this VM."""
        # Full ownership takes over what a task declares; a task on an existing VM that declares no body (only
        # labels, annotations or the run state) writes just those: applying it whole would remove the template
        # this manager applied earlier, and a VM without devices is refused (422, devices must be an object).
        if not self.full_ownership or (vm.live is not None and not vs.declares_body(vm.opts)):
            # Defaults no option names (the pod network) only go into a VM that is created.
            desired = vs.build_vm(vm.opts, vm.state, vm.live, self.api_version, implied=vm.live is None or self.force)
            if vm.live is not None and self.force:
                self._keep_run_strategy(desired, vm.live)
                return desired, REPLACE, {}
            return desired, GIVEN, {"named_lists": vs.convenience_lists(vm.opts)}
        desired = vs.build_vm(vm.opts, vm.state, vm.live, self.api_version)
        # The digest covers what the user declared, not the create-time run strategy default.
        declared = vs.build_vm(vm.opts, vm.state, live={}, api_version=self.api_version)
        if vm.live is not None:
            spec, live_spec = desired["spec"], vm.live.get("spec") or {}
            if "running" in spec and "runStrategy" in live_spec and "running" not in live_spec:
                # KubeVirt rejects both fields together; a VM that uses runStrategy gets `running` as one.
                spec["runStrategy"] = "Always" if spec.pop("running") else "Halted"
            # Not given on update: keep the live value in the applied config so that server-side apply
            # does not remove a field this manager set at create time.
            self._keep_run_strategy(desired, vm.live)
        return desired, OWNED, {"digest_of": declared}

    @staticmethod
    def _keep_run_strategy(desired, live):
        """A write of the whole object that names no run strategy keeps the live one."""
        spec, live_spec = desired["spec"], live.get("spec") or {}
        if "runStrategy" not in spec and "running" not in spec:
            for field in ("runStrategy", "running"):
                if field in live_spec:
                    spec[field] = live_spec[field]

    def write(self, vm):
        """Create/update/delete one VM as needed; records the outcome on `vm`, never raises ApiError."""
        try:
            if vm.state == "absent":
                self._delete(vm)
            else:
                self._apply(vm)
        except (ApiError, TransportError) as err:
            vm.fail(err.msg)
        except (vs.VMSpecError, cmp.HiddenFieldError) as err:
            vm.fail(str(err))

    def write_all(self):
        """Write every VM (see ``write``), up to ``write_workers`` at a time; each VM's outcome stays on it.

        With create_namespace, a namespace where none of the task's VMs exists may be missing: its VMs wait for the
        first of them that creates (the others in front of it send nothing), so that a missing namespace is found by
        that one write and created once, and the others then go straight in, as they did one after the other.
        """
        todo = list(self.vms)
        if self.namespaces.enabled:
            existing = set(vm.namespace for vm in self.vms if vm.live is not None)
            for ns in self._namespaces():
                if ns in existing:
                    continue
                for vm in [v for v in todo if v.namespace == ns]:
                    self.write(vm)
                    todo.remove(vm)
                    if vm.method == "create":
                        break
        # write() records every API and spec error on its VM; anything else is a bug and is raised here.
        in_parallel(self.write, todo, self.write_workers)

    def _delete(self, vm):
        vm.method = "delete"
        opts = self.delete_options
        # kubernetes.core sends the delete again for a VM already being deleted: so do we (it is reported).
        outcome = self.engine.delete(self.kind, vm.live, propagation=opts.get("propagationPolicy"),
                                     preconditions=opts.get("preconditions"), terminating_done=False)
        vm.wrote(outcome)
        if outcome.action == "deleted":
            vm.target = "gone"

    def _apply(self, vm):
        if vm.live is None and vm.state == "restarted" and not vs.defines(vm.opts):
            raise vs.VMSpecError("VM %s does not exist, so it cannot be restarted; give its definition or use "
                                 "state=present." % vm.label)
        if vm.live is None and vm.state == "paused":
            # Pausing freezes a guest that runs; creating and booting one to freeze it is not what was asked.
            raise vs.VMSpecError("VM %s does not exist, so it cannot be paused; create and start it first "
                                 "(state=started with wait=true), then pause it." % vm.label)
        if vm.live is None and not vs.defines(vm.opts) and vm.state in ("started", "stopped"):
            raise vs.VMSpecError("VM %s does not exist and no spec was given to create it; give spec, definition or "
                                 "the VM options, or use state=present." % vm.label)
        desired, mode, how = self._plan_write(vm)
        vm.desired = desired
        vm.method = "update" if vm.live is not None else "create"
        if vm.live is not None and not vs.defines(vm.opts) and vm.state in LIFECYCLE_STATES:
            # A bare lifecycle request (name + state only) must not rewrite the VM.
            vm.wrote(Outcome("unchanged", vm.live, vm.live))
        elif mode == OWNED and self._needs_swap(vm, how["digest_of"]):
            # Server-side apply cannot remove spec.running that another manager set: swap it first.
            swapped = self._drop_running(vm, vm.live["spec"]["running"])
            if not self.check_mode:
                # (In check mode the dry run of the swap is the answer: a dry-run apply would still see running.)
                swapped = self.engine.ensure(self.kind, desired, swapped, mode=mode, **how).after
            vm.wrote(Outcome("updated", vm.live, swapped))
        else:
            vm.wrote(self.engine.ensure(self.kind, desired, vm.live, mode=mode, **how))
            vm.name = (vm.result.get("metadata") or {}).get("name") or vm.name
        if vm.live is not None and self._running(vm):
            # Predicted from this write, or already flagged by the controller after an earlier one.
            vm.observe = vm.changed and cmp.template_changed(vm.live, vm.result)
            vm.restart_required = vm.observe or cmp.is_true(vm.live, "RestartRequired")
        self._plan_lifecycle(vm)

    def _needs_swap(self, vm, declared):
        live_spec = (vm.live or {}).get("spec") or {}
        if vm.live is None or "running" not in live_spec or "runStrategy" not in vm.desired["spec"]:
            return False
        return cmp.needs_apply(cmp.with_digest(vm.desired, cmp.digest(declared)), vm.live, self.hidden)[0]

    def _drop_running(self, vm, value):
        """Move a VM from the deprecated spec.running (set by another tool) to runStrategy.

        Server-side apply cannot remove a field another manager owns, and KubeVirt rejects both fields
        together, so one guarded JSON patch swaps them first (only on this migration path). The guard (a
        ``test`` of the value read) makes it an optimistic write: when the VM changed in between, or the answer
        was lost, the VM is read again and the swap re-sent only if it is still needed.
        """
        strategy = vm.desired["spec"]["runStrategy"]
        for attempt in range(1, SWAP_ATTEMPTS + 1):
            ops = [{"op": "test", "path": "/spec/running", "value": value},
                   {"op": "remove", "path": "/spec/running"},
                   {"op": "add", "path": "/spec/runStrategy", "value": strategy}]
            try:
                return self.api.patch(self.kind, vm.name, ops, vm.namespace, patch_type="json", dry_run=self.check_mode,
                                      field_manager=cmp.FIELD_MANAGER)
            except (ApiError, TransportError) as err:
                stale = isinstance(err, ApiError) and err.status in (409, 422)
                if attempt == SWAP_ATTEMPTS or not (stale or maybe_written(err)):
                    raise
                live = self.api.get(self.kind, vm.name, vm.namespace)
                if live is None:
                    raise
                spec = live.get("spec") or {}
                if "running" not in spec:
                    return live     # the lost patch was applied (or someone did it): nothing left to swap
                if stale and spec["running"] == value:
                    raise           # the value did not change, so the rejection is about the patch itself
                value = spec["running"]
        return None  # not reached: the last attempt returns or raises

    def _running(self, vm):
        """Does the VM have an active VMI? From the VMI when it was read, else from the VM's status (no request)."""
        if self._needs_vmis():
            return vmi_active(vm.vmi)
        status = (vm.live or {}).get("status") or {}
        return bool(status.get("created")) or status.get("printableStatus") in ("Running", "Starting", "Migrating", "Paused")

    def _plan_lifecycle(self, vm):
        """Decide the subresource action and the wait target from the state and the VM after the write."""
        strategy = vs.run_strategy_of((vm.result or {}).get("spec"))
        running = vmi_active(vm.vmi)
        paused = running and vmi_paused(vm.vmi)
        if vm.state == "started":
            if paused:
                # "started" means the guest runs: a paused one is unpaused (kubevirt.core does not look at pause).
                vm.action = "unpause"
                vm.target = "unpaused"
                return
            if strategy not in RUNNING_STRATEGIES and not running:
                vm.action = "start"
            vm.target = "ready"
        elif vm.state == "paused":
            self._plan_pause(vm, strategy, running, paused)
        elif vm.state == "stopped":
            if strategy == "Always" or (strategy != "Halted" and running):
                vm.action = "stop"
            vm.target = "stopped"
        elif vm.state == "restarted":
            if running:
                vm.action = "restart"
                vm.old_vmi_uid = (vm.vmi.get("metadata") or {}).get("uid")
                vm.target = "restarted"
            else:
                if strategy not in RUNNING_STRATEGIES:
                    vm.action = "start"
                vm.target = "ready"
        else:
            if paused:
                # A paused VMI is not Ready (its pod's readiness gate is False) until someone unpauses it.
                vm.target = "paused"
            elif strategy in RUNNING_STRATEGIES:
                vm.target = "ready"
            elif strategy == "Halted":
                vm.target = "stopped"

    @staticmethod
    def _plan_pause(vm, strategy, running, paused):
        """state=paused: pause a running VMI, leave a paused one alone, refuse one that does not run (no request)."""
        phase = ((vm.vmi or {}).get("status") or {}).get("phase")
        if paused:
            vm.target = "paused"
        elif running and phase == "Running" and strategy != "Halted":
            vm.action = "pause"
            vm.target = "paused"
        elif running and strategy != "Halted":
            vm.fail("VM %s is not running yet (VMI phase %s), so it cannot be paused; wait until it runs "
                    "(state=started with wait=true), then pause it." % (vm.label, phase or "not set"))
        else:
            status = ((vm.result or {}).get("status") or {}).get("printableStatus") or "Stopped"
            vm.fail("VM %s is not running (%s), so it cannot be paused; start it first (state=started with "
                    "wait=true), then pause it." % (vm.label, status))

    def act(self, vm):
        """Call the start/stop/restart (VM) or pause/unpause (VMI) subresource, predicted in check mode.

        A 409 "already so" is no change.
        """
        if vm.error or not vm.action:
            return
        if self.check_mode:
            vm.acted = True
            vm.stage = ACTED
            return
        body = {}
        if self.grace_period_seconds is not None:
            # KubeVirt's StopOptions and RestartOptions spell it differently.
            if vm.action == "restart":
                body["gracePeriodSeconds"] = self.grace_period_seconds
            elif vm.action == "stop":
                body["gracePeriod"] = self.grace_period_seconds
        sub = _kinds.VMI_SUBRESOURCE if vm.action in VMI_ACTIONS else _kinds.VM_SUBRESOURCE
        # start, stop, pause and unpause end in the same state when sent twice (the second gets 409 "already so"),
        # so the client may retry them; a restart sent twice restarts twice, so after a lost answer the VMI is
        # checked first.
        repeatable = vm.action != "restart"
        client = getattr(self.api, "client", None)
        retries_before = getattr(client, "retries", 0)
        attempt = 0
        while True:
            attempt += 1
            try:
                self.api.subresource(sub, vm.name, vm.action, vm.namespace, body=body, idempotent=repeatable)
                vm.acted = True
                vm.stage = ACTED
                return
            except ApiError as err:
                text = (err.msg or "").lower()
                if err.status == 409 and any(words in text for words in ALREADY_SO[vm.action]):
                    # On a retry this is what the attempt whose answer was lost did.
                    vm.acted = vm.acted or getattr(client, "retries", 0) > retries_before
                    vm.stage = ACTED
                    return
                error = err
            except TransportError as err:
                error = err
            if vm.action == "restart" and maybe_written(error):
                try:
                    if self._restart_happened(vm):
                        vm.acted = True
                        vm.stage = ACTED
                        return
                except (ApiError, TransportError):
                    pass
                backoff = getattr(client, "backoff", None)
                if backoff is not None and backoff(attempt, "lost-restart"):
                    continue
            if api_missing(error):
                # The VM exists (it was just read): what is missing is virt-api's aggregated API.
                api = (sub.group, sub.version, sub.version, sub.group)
                vm.fail("Cannot %s VM %s: the API server does not serve KubeVirt's subresource API (%s/%s, answered "
                        "404): virt-api is not running or its APIService is not Available; check `kubectl get "
                        "apiservice %s.%s` and the virt-api pods." % ((vm.action, vm.label) + api))
                return
            vm.fail("Cannot %s VM %s: %s" % (vm.action, vm.label, error.msg))
            return

    def _restart_happened(self, vm):
        """After a restart whose answer was lost: is the old VMI gone or on its way out?"""
        vmi = self.api.get(self.vmi_kind, vm.name, vm.namespace)
        meta = (vmi or {}).get("metadata") or {}
        return vmi is None or meta.get("uid") != vm.old_vmi_uid or bool(meta.get("deletionTimestamp"))

    # --- waiting ------------------------------------------------------------------------------------------
    def satisfied(self, vm, vm_obj, vmi_obj):
        target = vm.target
        if target == "gone":
            return vm_obj is None
        if target == "stopped":
            return vmi_obj is None
        if vm_obj is None:
            return False
        if target == "ready":
            return cmp.is_true(vm_obj, "Ready")
        if target == "paused":
            return vmi_paused(vmi_obj) and (vm_obj.get("status") or {}).get("printableStatus") == "Paused"
        if target == "unpaused":
            return (vmi_active(vmi_obj) and not vmi_paused(vmi_obj) and cmp.is_true(vmi_obj, "Ready")
                    and cmp.is_true(vm_obj, "Ready") and (vm_obj.get("status") or {}).get("printableStatus") != "Paused")
        if target == "restarted":
            uid = ((vmi_obj or {}).get("metadata") or {}).get("uid")
            return bool(uid) and uid != vm.old_vmi_uid and cmp.is_true(vmi_obj, "Ready") and cmp.is_true(vm_obj, "Ready")
        if target == "observed":
            status = vm_obj.get("status") or {}
            gen = (vm_obj.get("metadata") or {}).get("generation") or 0
            return (status.get("observedGeneration") or 0) >= gen or cmp.condition(vm_obj, "RestartRequired") is not None
        return True

    def _watch(self, kind, ns, vms, settled):
        """One list and one watch of `kind` in `ns` until ``settled(vm, obj)`` holds for every VM or the deadline."""
        store = WatchStore(self.api, kind, ns, names=[vm.name for vm in vms], clock=self.clock, sleep=self.sleep,
                           reopen_pause=self.reopen_pause).load()
        done = store.until(lambda st: all(settled(vm, st.get(vm.name, ns)) for vm in vms), self.deadline)
        return store, done

    def wait_for(self, vms):
        """Wait for each VM's target under the task deadline; VMIs first, then VMs (whose final objects we return)."""
        vms = [vm for vm in vms if vm.target and not vm.error and vm.name]
        ok = True
        for ns in self._namespaces():
            group = [vm for vm in vms if vm.namespace == ns]
            if not group:
                continue
            vmi_group = [vm for vm in group if vm.target in VMI_TARGETS]
            if vmi_group:
                store, done = self._watch(self.vmi_kind, ns, vmi_group, self._vmi_settled)
                ok = done and ok
                for vm in vmi_group:
                    vm.vmi = store.get(vm.name, ns)
            store, done = self._watch(self.kind, ns, group, lambda vm, obj: self.satisfied(vm, obj, vm.vmi))
            ok = done and ok
            for vm in group:
                obj = store.get(vm.name, ns)
                settled = self.satisfied(vm, obj, vm.vmi) and (vm.target not in VMI_TARGETS
                                                               or self._vmi_settled(vm, vm.vmi))
                vm.stage = SETTLED if settled else (ACTED if vm.acted else WRITTEN)
                if obj is not None:
                    # After a delete: what still exists (a finalizer holds it), else the server's answer stays.
                    vm.result = obj
        return ok

    def _vmi_settled(self, vm, vmi):
        if vm.target == "stopped":
            return vmi is None
        if vm.target == "paused":
            return vmi_paused(vmi)
        if vm.target == "unpaused":
            return vmi_active(vmi) and not vmi_paused(vmi) and cmp.is_true(vmi, "Ready")
        uid = ((vmi or {}).get("metadata") or {}).get("uid")
        return bool(uid) and uid != vm.old_vmi_uid and cmp.is_true(vmi, "Ready")

    # --- the whole task -----------------------------------------------------------------------------------
    def run(self):
        started = self.clock()
        self.deadline = started + float(self.wait_timeout)
        try:
            self.read()
        except (ApiError, TransportError) as err:
            raise KubeVirtError("%s No VM was created, changed or deleted." % err.msg)
        self.write_all()
        try:
            self._after_writes()
        except (ApiError, TransportError) as err:
            # The writes above happened: report them with the error instead of losing them in a traceback.
            self.task_error = "After the writes, reading the VMs back failed: %s" % err.msg
        return self.clock() - started

    def _after_writes(self):
        waiting = self.wait and not self.check_mode
        # RestartRequired is written by the controller after it sees the new generation: wait for that first.
        observe = [vm for vm in self.vms if vm.observe and not vm.error and (waiting or self.restart_if_required)
                   and not self.check_mode]
        if observe:
            saved = dict((id(vm), vm.target) for vm in observe)
            for vm in observe:
                vm.target = "observed"
            self.wait_for(observe)
            for vm in observe:
                vm.stage = WRITTEN      # the controller's verdict is in; the lifecycle part comes next
                vm.target = saved[id(vm)]
                vm.restart_required = cmp.is_true(vm.result, "RestartRequired")
        if self.restart_if_required:
            for vm in self.vms:
                # A restart would unpause a paused VM (its new VMI runs): state=paused only reports restart_required.
                if vm.restart_required and not vm.error and vm.state not in ("absent", "stopped", "paused") \
                        and vm.action is None:
                    vm.action = "restart"
                    vm.old_vmi_uid = ((vm.vmi or {}).get("metadata") or {}).get("uid")
                    vm.target = "restarted"
                    vm.restart_required = False
        for vm in self.vms:
            self.act(vm)
        if waiting:
            self.wait_for(self.vms)
            # A VM whose wait did not end in its target is named, whatever the store says overall.
            self.timeout_msg = _vm_report.timeout_message(self)


def resolve_items(params):
    """Top-level options (+ `vms`) -> [(per-VM options, state)]; raises VMSpecError naming the item."""
    top_state = params.get("state") or "present"
    defaults = dict((k, params.get(k)) for k in vs.PER_VM_OPTIONS)
    if params.get("vms") is None:
        items = [(defaults, top_state)]
        where = [""]
    else:
        if params.get("name") or params.get("generate_name"):
            raise vs.VMSpecError("Options vms and name/generate_name are mutually exclusive: put each VM's name in its vms item.")
        items, where = [], []
        for i, item in enumerate(params["vms"]):
            merged = vs.merge_item(defaults, item)
            items.append((merged, item.get("state") or top_state))
            where.append("vms[%d]%s: " % (i, " (%s)" % item["name"] if item.get("name") else ""))
        if not items:
            return []
    seen = {}
    for (opts, state), prefix in zip(items, where):
        definition_meta = (opts.get("definition") or {}).get("metadata") or {}
        ns = opts.get("namespace") or definition_meta.get("namespace")
        name = opts.get("name") or definition_meta.get("name")
        if not ns:
            raise vs.VMSpecError("%sOption namespace is required (give it at the top level or in the item)." % prefix)
        if not name and not (opts.get("generate_name") or definition_meta.get("generateName")):
            raise vs.VMSpecError("%sOne of name or generate_name is required." % prefix)
        if (opts.get("generate_name") or definition_meta.get("generateName")) and not name and state != "present":
            raise vs.VMSpecError("%sgenerate_name only works with state=present; give name for state=%s." % (prefix, state))
        if name:
            if (ns, name) in seen:
                raise vs.VMSpecError("%sVM %s/%s is declared twice (also %s); give each VM once."
                                     % (prefix, ns, name, seen[(ns, name)].rstrip(": ") or "at the top level"))
            seen[(ns, name)] = prefix
        try:
            vs.check_state(opts, state)
        except vs.VMSpecError as err:
            raise vs.VMSpecError(prefix + str(err))
    return items


def run_task(api, params, check_mode=False, diff_mode=False):
    """Run a kubevirt_vm task; returns (failed, result dict). Raises KubeVirtError only for whole-task errors."""
    try:
        items = resolve_items(params)
        for field in params.get("hidden_fields") or ():
            cmp.parse_field_path(field)
    except (vs.VMSpecError, cmp.HiddenFieldError) as err:
        raise KubeVirtError(str(err))
    task = VMTask(api, items, api_version=params.get("api_version") or vs.DEFAULT_API_VERSION,
                  wait=bool(params.get("wait")), wait_timeout=params.get("wait_timeout") or 120,
                  hidden_fields=params.get("hidden_fields"), delete_options=params.get("delete_options"),
                  restart_if_required=bool(params.get("restart_if_required")),
                  grace_period_seconds=params.get("grace_period_seconds"), check_mode=check_mode, diff_mode=diff_mode,
                  wait_sleep=params.get("wait_sleep"), create_namespace=bool(params.get("create_namespace")),
                  full_ownership=bool(params.get("full_ownership")), force=bool(params.get("force")))
    client = getattr(api, "client", None)
    if hasattr(client, "set_deadline"):
        # Retries (and their pauses) never carry the task past wait_timeout.
        client.set_deadline(task.wait_timeout)
    retries_before = getattr(client, "retries", 0)
    try:
        duration = task.run()
    except KubeVirtError as err:
        err.result.setdefault("api_retries", getattr(client, "retries", 0) - retries_before)
        raise
    api_retries = getattr(client, "retries", 0) - retries_before
    return _vm_report.task_result(task, params, duration, api_retries, diff_mode)
