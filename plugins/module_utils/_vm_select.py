# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet.kubevirt contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which VMs (or VMIs) a day-2 task is about: by names, by label selectors, or every VMI on a node.

Shared by the snapshot, restore and migration modules so that "N VMs selected by names or labels" means the
same thing, costs the same and fails the same everywhere.

Request cost: one list (of one namespace, or cluster-wide without ``namespace``), whatever the number of names.
The list's resourceVersion is returned so a wait can start its watch from it without a second list.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _args

# The label virt-controller puts on every scheduled VMI (pkg/virt-controller/watch/vmi.go, v1.VirtualMachineLabel's
# sibling v1.NodeNameLabel); custom resources have no status.nodeName field selector on a real API server.
NODE_NAME_LABEL = "kubevirt.io/nodeName"


def selection_spec(node=False):
    """The selection options of a day-2 module (``names``, ``namespace``, ``label_selectors`` [, ``node``])."""
    spec = dict(
        names=dict(type="list", elements="str", aliases=["name"]),
        namespace=dict(type="str"),
        label_selectors=dict(type="list", elements="str", default=[]),
    )
    if node:
        spec["node"] = dict(type="str")
    return spec


def check_selection(params, what="VMs", node=False, required=True):
    """Raise InvalidOption when the selection options cannot select anything, before any request."""
    names = params.get("names") or []
    labels = params.get("label_selectors") or []
    node_name = params.get("node") if node else None
    for name in names:
        _args.check_dns_subdomain(name, "names")
    if params.get("namespace"):
        _args.check_dns_label(params["namespace"], "namespace", what="namespace")
    _args.check_selectors(labels, "label_selectors", _args.check_label_selector)
    if names and not params.get("namespace"):
        raise _args.InvalidOption(
            "names needs a namespace: set namespace (the %s's namespace), or select across namespaces with "
            "label_selectors instead of names" % what.rstrip("s"))
    if node_name:
        _args.check_dns_subdomain(node_name, "node", what="node name")
    if required and not (names or labels or node_name):
        choices = "names, label_selectors or node" if node else "names or label_selectors"
        raise _args.InvalidOption(
            "nothing selects the %s: give %s (a task never acts on every %s of a namespace by accident)"
            % (what, choices, what.rstrip("s")))


class Selection(object):
    """The selected objects in the order of ``names`` (else the list's order), the list's resourceVersion, and
    the ``namespace/name`` of every name given that does not exist."""

    def __init__(self, items, version, missing):
        self.items = items
        self.version = version
        self.missing = missing

    def keys(self):
        return [_key(o) for o in self.items]


def _key(obj):
    meta = obj.get("metadata") or {}
    return "%s/%s" % (meta.get("namespace") or "", meta.get("name") or "")


def select(api, kind, namespace=None, names=None, label_selectors=None, node=None):
    """One list of ``kind`` -> Selection. ``names`` narrow the list (in their order) and, with selectors or a
    node, must match those too; ``node`` adds the ``kubevirt.io/nodeName`` label to the selectors."""
    labels = list(label_selectors or [])
    if node:
        labels.append("%s=%s" % (NODE_NAME_LABEL, node))
    fields = ["metadata.name=%s" % names[0]] if names and len(names) == 1 else None
    items, version = api.list(kind, namespace, labels or None, fields)
    if not names:
        return Selection(items, version, [])
    by_name = dict(((o.get("metadata") or {}).get("name"), o) for o in items)
    chosen, missing, seen = [], [], set()
    for name in names:
        if name in seen:
            continue
        seen.add(name)
        if name in by_name:
            chosen.append(by_name[name])
        else:
            missing.append("%s/%s" % (namespace, name))
    return Selection(chosen, version, missing)
