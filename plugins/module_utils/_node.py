# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet.kubevirt contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""kubevirt_node: cordon / uncordon one Kubernetes Node and wait until it is Ready (and KubeVirt may use it).

Cordon is a JSON merge patch ``spec.unschedulable: true``; uncordon patches it to null, and only when the node
has ``spec.unschedulable: true``: Node is a built-in kind, whose ``omitempty`` false reads back absent, so a node
that is schedulable never gets a write. The write goes through ``_resource.Engine`` (GIVEN mode), which sends it as a
server-side dry run in check mode.

Readiness is the node's ``Ready`` condition (kubelet's, ``status.conditions``); KubeVirt's own view is the label
``kubevirt.io/schedulable`` that virt-handler's heartbeat sets to "true" once its device plugins run
(pkg/virt-handler/heartbeat/heartbeat.go: HeartBeat.do) and virt-controller's node controller sets to "false" when
that heartbeat goes stale (pkg/virt-controller/watch/node/node.go: Controller.execute). Cordoning leaves that
label alone, so "cordoned" and "KubeVirt-schedulable" are independent.

Request cost: one GET; one PATCH when the node must change; with ``wait`` and a node not yet Ready, one watch
(``metadata.name`` field selector, started from the resourceVersion already read, so no list) plus one per watch the
server closes before the deadline.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _args
from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _kinds
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._compare import condition
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._errors import KubeVirtError
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._resource import GIVEN, Engine, WatchStore

# v1.NodeSchedulable in kubevirt.io/api/core/v1/types.go.
KUBEVIRT_SCHEDULABLE_LABEL = "kubevirt.io/schedulable"


def node_option_spec():
    """kubevirt_node's own options (the auth and wait specs are added by the module)."""
    return dict(
        name=dict(type="str", required=True),
        schedulable=dict(type="bool"),
        require_kubevirt_schedulable=dict(type="bool", default=False),
    )


def check_params(params):
    """Refuse bad options before any request (InvalidOption: one sentence naming the option and the fix)."""
    _args.check_dns_subdomain(params.get("name"), "name", what="node name")
    _args.check_seconds(params.get("wait_timeout"), "wait_timeout")
    if params.get("require_kubevirt_schedulable") and not params.get("wait"):
        raise _args.InvalidOption(
            "require_kubevirt_schedulable only applies while waiting: set wait=true (or drop "
            "require_kubevirt_schedulable).")


# --- reading a Node ------------------------------------------------------------------------------------------
def is_cordoned(node):
    return bool(((node or {}).get("spec") or {}).get("unschedulable"))


def is_ready(node):
    cond = condition(node, "Ready")
    return bool(cond) and str(cond.get("status")).lower() == "true"


def kubevirt_schedulable(node):
    labels = ((node or {}).get("metadata") or {}).get("labels") or {}
    return labels.get(KUBEVIRT_SCHEDULABLE_LABEL) == "true"


def settled(node, require_kubevirt=False):
    """Is the node there, Ready and (when required) KubeVirt-schedulable?"""
    return node is not None and is_ready(node) and (not require_kubevirt or kubevirt_schedulable(node))


def why_not_ready(node, require_kubevirt=False):
    """One sentence on what the node lacks: its Ready condition (status, reason, message, last heartbeat) and
    the kubevirt.io/schedulable label."""
    if node is None:
        return "the Node was deleted"
    parts = []
    cond = condition(node, "Ready")
    if cond is None:
        parts.append("it has no Ready condition (the kubelet never reported)")
    elif not is_ready(node):
        text = "Ready is %s" % cond.get("status")
        if cond.get("reason"):
            text += " (%s)" % cond["reason"]
        if cond.get("message"):
            text += ": %s" % cond["message"]
        text += "; last heartbeat %s" % (cond.get("lastHeartbeatTime") or "never")
        parts.append(text)
    if require_kubevirt and not kubevirt_schedulable(node):
        value = (((node.get("metadata") or {}).get("labels") or {}).get(KUBEVIRT_SCHEDULABLE_LABEL))
        parts.append("label %s is %s, not \"true\" (virt-handler on the node has not reported ready)"
                     % (KUBEVIRT_SCHEDULABLE_LABEL, '"%s"' % value if value is not None else "missing"))
    return "; ".join(parts) or "it is Ready"


def _view(node):
    """What the diff shows of a node: its name and whether it is cordoned."""
    if node is None:
        return {}
    return {"metadata": {"name": (node.get("metadata") or {}).get("name")},
            "spec": {"unschedulable": is_cordoned(node)}}


# --- the task ------------------------------------------------------------------------------------------------
class NodeTask(object):
    def __init__(self, api, params, check_mode=False, clock=time.monotonic):
        self.api = api
        self.name = params["name"]
        self.schedulable = params.get("schedulable")
        self.wait = bool(params.get("wait"))
        self.wait_timeout = params.get("wait_timeout") if params.get("wait_timeout") is not None else 120
        self.require_kubevirt = bool(params.get("require_kubevirt_schedulable"))
        self.check_mode = check_mode
        self.clock = clock
        self.engine = Engine(api, check_mode=check_mode)

    def _write(self, live):
        """(outcome, after): the cordon or uncordon the node needs, or none."""
        if self.schedulable is None:
            return "unchanged", live
        if self.schedulable is False and not is_cordoned(live):
            desired = {"metadata": {"name": self.name}, "spec": {"unschedulable": True}}
            outcome = "cordoned"
        elif self.schedulable is True and is_cordoned(live):
            # null removes the field: the server stores a schedulable node without it.
            desired = {"metadata": {"name": self.name}, "spec": {"unschedulable": None}}
            outcome = "uncordoned"
        else:
            return "unchanged", live
        result = self.engine.ensure(_kinds.NODE, desired, live, mode=GIVEN)
        return (outcome if result.changed else "unchanged"), result.after

    def _wait_ready(self, node, deadline):
        """The node as last seen once it is settled, or raise with why it is not."""
        if settled(node, self.require_kubevirt):
            return node
        store = WatchStore(self.api, _kinds.NODE, names=[self.name], clock=self.clock)
        store.load(initial=([node], (node.get("metadata") or {}).get("resourceVersion")))
        done = store.until(lambda st: settled(st.get(self.name, ""), self.require_kubevirt), deadline)
        last = store.get(self.name, "")
        if done:
            return last
        raise KubeVirtError(
            "Node %s is not ready after %s seconds (wait_timeout): %s. Check the node (kubectl describe node %s: "
            "kubelet, network, virt-handler) and run the task again, or raise wait_timeout."
            % (self.name, self.wait_timeout, why_not_ready(last, self.require_kubevirt), self.name),
            outcome="failed", ready=is_ready(last), node=last)

    def _wait_or_fail(self, node, deadline, outcome, diff, diff_mode):
        try:
            return self._wait_ready(node, deadline)
        except KubeVirtError as err:
            # What was written before the wait (a cordon) is reported with the failure.
            err.result.update(changed=outcome != "unchanged", cordon_outcome=outcome)
            if diff_mode:
                err.result["diff"] = diff or {"before": _view(node), "after": _view(node)}
            raise

    def run(self, diff_mode=False):
        started = self.clock()
        deadline = started + float(self.wait_timeout)
        live = self.engine.read(_kinds.NODE, self.name)
        if live is None:
            raise KubeVirtError(
                "Node %s does not exist: give the name of a Kubernetes Node as `kubectl get nodes` lists it "
                "(the inventory host name may differ: set it explicitly)." % self.name, outcome="failed")
        # Uncordon only a node that is ready: with wait, the wait comes first, and a node that never gets ready stays
        # cordoned. A cordon is always safe, so it comes before the wait.
        uncordon_after_wait = self.schedulable is True and self.wait and not self.check_mode
        if uncordon_after_wait:
            live = self._wait_or_fail(live, deadline, "unchanged", None, diff_mode)
        outcome, after = self._write(live)
        result = {"changed": outcome != "unchanged", "outcome": outcome}
        if diff_mode:
            result["diff"] = {"before": _view(live), "after": _view(after)}
        node = after
        if self.wait and not self.check_mode and not uncordon_after_wait:
            node = self._wait_or_fail(after, deadline, outcome, result.get("diff"), diff_mode)
        result.update(node=node, ready=is_ready(node), schedulable=not is_cordoned(node),
                      kubevirt_schedulable=kubevirt_schedulable(node), duration=round(self.clock() - started, 3))
        return result


def run_task(api, params, check_mode=False, diff_mode=False):
    """Run a kubevirt_node task; returns the result dict or raises KubeVirtError (with ``api_retries``)."""
    client = getattr(api, "client", None)
    retries_before = getattr(client, "retries", 0)
    task = NodeTask(api, params, check_mode=check_mode)
    try:
        result = task.run(diff_mode=diff_mode)
    except KubeVirtError as err:
        err.result.setdefault("api_retries", getattr(client, "retries", 0) - retries_before)
        err.result.setdefault("changed", False)
        raise
    result["api_retries"] = getattr(client, "retries", 0) - retries_before
    return result
