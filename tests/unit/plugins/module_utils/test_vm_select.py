# -*- coding: utf-8 -*-
"""_vm_select: one list per selection, names kept in order, missing names reported, bad options refused."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _kinds
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._args import InvalidOption
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._vm_select import check_selection, select


def _vm(name, ns="vms"):
    return {"metadata": {"name": name, "namespace": ns}}


class FakeApi(object):
    def __init__(self, items):
        self.items = items
        self.calls = []

    def list(self, kind, namespace=None, label_selectors=None, field_selectors=None):
        self.calls.append((kind, namespace, label_selectors, field_selectors))
        return list(self.items), "42"


def test_names_in_given_order_with_missing_reported_from_one_list():
    api = FakeApi([_vm("a"), _vm("b"), _vm("c")])
    sel = select(api, _kinds.VM, "vms", names=["c", "x", "a", "c"])
    assert sel.keys() == ["vms/c", "vms/a"]
    assert sel.missing == ["vms/x"]
    assert sel.version == "42"
    assert api.calls == [(_kinds.VM, "vms", None, None)]


def test_one_name_lists_with_a_name_field_selector():
    api = FakeApi([_vm("a")])
    sel = select(api, _kinds.VM, "vms", names=["a"])
    assert sel.keys() == ["vms/a"] and not sel.missing
    assert api.calls[0][3] == ["metadata.name=a"]


def test_node_becomes_the_node_name_label():
    api = FakeApi([_vm("a", "x"), _vm("b", "y")])
    sel = select(api, _kinds.VMI, None, label_selectors=["app=web"], node="node-1")
    assert sel.keys() == ["x/a", "y/b"]
    assert api.calls[0][1:] == (None, ["app=web", "kubevirt.io/nodeName=node-1"], None)


@pytest.mark.parametrize("params, node, words", [
    ({}, False, "give names or label_selectors"),
    ({}, True, "give names, label_selectors or node"),
    ({"names": ["a"]}, False, "names needs a namespace"),
    ({"names": ["Bad_Name"], "namespace": "vms"}, False, 'names "Bad_Name" is not a valid Kubernetes name'),
    ({"label_selectors": ["app in ()"]}, False, "label_selectors"),
    ({"node": "Node_1"}, True, 'node "Node_1"'),
])
def test_bad_selections_are_refused_with_the_option_named(params, node, words):
    with pytest.raises(InvalidOption) as err:
        check_selection(params, node=node)
    assert words in str(err.value)


def test_good_selection_passes():
    check_selection({"names": ["a", "b"], "namespace": "vms"})
    check_selection({"label_selectors": ["app=web"]})
    check_selection({"node": "node-1"}, node=True)
