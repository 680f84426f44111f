# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet.kubevirt contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a kubevirt_vm task reports: per-VM results, the outcome summary, and timeouts that say what is missing."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _compare as cmp
from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _kinds
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._errors import ApiError, TransportError
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._waiter import describe_state

MAX_NAMED = 20


def outcome_message(task):
    """Every VM, grouped by what happened to it, failures with their reason; None when nothing failed."""
    failed = [vm for vm in task.vms if vm.error]
    if not failed and not task.timeout_msg and not task.task_error:
        return None
    parts = []
    if failed:
        named = []
        for vm in failed:
            what = vm.label + (" (%s, then failed)" % vm.done if vm.write is not None and vm.write.changed else "")
            named.append("%s: %s" % (what, vm.error))
        parts.append("%d of %d VMs failed: %s." % (len(failed), len(task.vms), " | ".join(named)))
    groups = []
    for outcome in ("created", "updated", "unchanged", "deleted", "absent"):
        members = [vm for vm in task.vms if not vm.error and vm.outcome == outcome]
        if members:
            acted = ["%s%s" % (vm.label, " (%s)" % vm.action if vm.action else "") for vm in members]
            groups.append("%s %d: %s" % (outcome, len(members), ", ".join(acted)))
    if task.timeout_msg:
        parts.append(task.timeout_msg)
    if task.task_error:
        parts.append(task.task_error)
    if groups:
        parts.append(("Done%s: " % (" for the others" if failed else "")) + "; ".join(groups) + ".")
    elif failed:
        parts.append("No other VM was declared.")
    return " ".join(parts)


def timeout_message(task):
    pending = [vm for vm in task.vms if vm.target and vm.name and not vm.error and vm.stage != "settled"]
    if not pending:
        return None
    goal = {"ready": "Ready", "restarted": "Ready with a new VMI", "stopped": "stopped (VMI gone)",
            "gone": "deleted", "observed": "observed by the controller", "paused": "paused (VMI condition Paused)",
            "unpaused": "unpaused and Ready"}
    dvs = _data_volumes(task.api, pending)
    parts = []
    for vm in pending[:MAX_NAMED]:
        state = describe_state(vm.result) if vm.target != "gone" else "still exists%s" % _held_by(vm.result)
        vmi = "VMI %s" % ((vm.vmi.get("status") or {}).get("phase") or "without phase") if vm.vmi else "no VMI"
        words = ["%s waiting to be %s: %s, %s" % (vm.label, goal.get(vm.target, vm.target), state, vmi)]
        for tmpl in ((vm.result or {}).get("spec") or {}).get("dataVolumeTemplates") or []:
            dv_name = (tmpl.get("metadata") or {}).get("name")
            words.append("DataVolume %s: %s" % (dv_name, _dv_state(dvs.get((vm.namespace, dv_name)))))
        parts.append(", ".join(words))
    more = " and %d more" % (len(pending) - MAX_NAMED) if len(pending) > MAX_NAMED else ""
    return ("Timed out after %ss waiting for %d of %d VMs: %s%s. Increase wait_timeout or check why they are not there."
            % (task.wait_timeout, len(pending), len([v for v in task.vms if v.target]), "; ".join(parts), more))


def _held_by(obj):
    finalizers = ((obj or {}).get("metadata") or {}).get("finalizers") or []
    return " (finalizers: %s)" % ", ".join(finalizers) if finalizers else ""


def _data_volumes(api, pending):
    """DataVolumes of VMs that time out: one list per namespace, only on this failure path."""
    out = {}
    for ns in set(vm.namespace for vm in pending if ((vm.result or {}).get("spec") or {}).get("dataVolumeTemplates")):
        try:
            items, _rv = api.list(_kinds.DATAVOLUME, ns)
        except (ApiError, TransportError):
            continue
        for dv in items:
            out[(ns, (dv.get("metadata") or {}).get("name"))] = dv
    return out


def vm_result(vm, hidden, with_diff):
    out = {
        "name": vm.name, "namespace": vm.namespace, "changed": vm.changed, "method": vm.method,
        "result": cmp.hide_fields(vm.result, hidden) if vm.result else {},
        "restart_required": vm.restart_required, "outcome": vm.outcome,
    }
    if vm.action:
        out["action"] = vm.action
    if with_diff:
        out["diff"] = vm.diff(hidden) or {}
    if vm.error:
        out["failed"] = True
        out["msg"] = vm.error
    return out


def _dv_state(dv):
    if dv is None:
        return "not created"
    status = dv.get("status") or {}
    text = status.get("phase") or "no phase"
    if status.get("progress") and status.get("progress") != "N/A":
        text += " " + status["progress"]
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Running" and cond.get("reason") == "Error":
            text += " (%s)" % (cond.get("message") or "Error")
    return text


def task_result(task, params, duration, api_retries, diff_mode):
    """The module result: one VM's keys at the top level, or ``results`` for ``vms``; (failed, result)."""
    created = list(task.namespaces.created)
    changed = any(vm.changed for vm in task.vms) or bool(created)
    if params.get("vms") is None:
        vm = task.vms[0]
        res = vm_result(vm, task.hidden, diff_mode)
        res.pop("name")
        res.pop("namespace")
        res["duration"] = round(duration, 3)
        res["api_retries"] = api_retries
        res["namespaces_created"] = created
        res["changed"] = changed
        if not diff_mode:
            res.pop("diff", None)
        elif created:
            res["diff"] = dict(res.get("diff") or {"before": {}, "after": {}},
                               after_header="namespace %s created" % ", ".join(created))
        extra = [m for m in (task.task_error, task.timeout_msg) if m]
        if extra:
            res["failed"] = True
            res["msg"] = " ".join(([res["msg"]] if res.get("msg") else []) + extra)
        return bool(res.get("failed")), res
    results = [vm_result(vm, task.hidden, diff_mode) for vm in task.vms]
    out = {"changed": changed, "results": results, "duration": round(duration, 3), "api_retries": api_retries,
           "namespaces_created": created,
           "restart_required": [r["namespace"] + "/" + r["name"] for r in results if r.get("restart_required")]}
    msg = outcome_message(task)
    if msg:
        out["msg"] = msg
        out["failed"] = True
    if diff_mode:
        out["diff"] = {"before": dict((r["namespace"] + "/" + (r["name"] or ""), (r.get("diff") or {}).get("before", {}))
                                      for r in results if r["changed"]),
                       "after": dict((r["namespace"] + "/" + (r["name"] or ""), (r.get("diff") or {}).get("after", {}))
                                     for r in results if r["changed"])}
        for ns in created:
            # A space cannot occur in a namespace/name key, so these never collide with a VM's entry.
            out["diff"]["before"]["Namespace " + ns] = {}
            out["diff"]["after"]["Namespace " + ns] = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
    return bool(out.get("failed")), out
