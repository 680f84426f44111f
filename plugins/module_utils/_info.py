# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The read-only modules' logic: find VMs/VMIs, optionally wait for a state, build the result.

Request costs: by name without selectors one GET; otherwise one list per page; a wait adds one watch
(re-opened only when the server ends it early).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtfleet.kubevirt.plugins.module_utils._api import Api, api_missing
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._compare import condition_is
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._errors import ApiError
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._fields import hide_fields
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._waiter import Waiter


def vm_ready(obj):
    return condition_is(obj, 'Ready', 'True')


def vm_stopped(obj):
    # kubevirt.core waits for Ready=False/VMINotExists; printableStatus Stopped means the same for a VM whose
    # controller did not (yet) write that reason, so either counts.
    status = obj.get('status') or {}
    return condition_is(obj, 'Ready', 'False', 'VMINotExists') or (
        status.get('printableStatus') == 'Stopped' and not condition_is(obj, 'Ready', 'True'))


def vmi_ready(obj):
    return condition_is(obj, 'Ready', 'True')


def vm_goal(running):
    """(predicate, words) for kubevirt_vm_info: running None/True waits for Ready, False for stopped."""
    if running is None or running:
        return vm_ready, 'ready (running)'
    return vm_stopped, 'stopped'


def find(api, kind, name=None, namespace=None, label_selectors=None, field_selectors=None, for_watch=False):
    """(items, resourceVersion, api_found). A plain name costs one GET; selectors (or a wait, which needs the
    list's resourceVersion to start its watch from) turn it into one list."""
    try:
        if name and namespace and not label_selectors and not field_selectors and not for_watch:
            obj = api.get(kind, name, namespace)
            return ([obj] if obj else []), None, True
        fields = list(field_selectors or [])
        if name:
            fields.append('metadata.name=%s' % name)
        items, version = api.list(kind, namespace, label_selectors, fields)
        return items, version, True
    except ApiError as err:
        if api_missing(err):
            return [], None, False
        raise


def run_info(client, kind, params, predicate=None, goal='ready', waiter_factory=None):
    """Module params (INFO + WAIT specs) -> result dict ``{changed, api_found, resources}``."""
    kind = kind.with_api_version(params.get('api_version'))
    api = Api(client)
    name, namespace = params.get('name'), params.get('namespace')
    selectors = dict(label_selectors=params.get('label_selectors') or [], field_selectors=params.get('field_selectors') or [])
    waiting = bool(params.get('wait')) and predicate is not None
    items, version, found = find(api, kind, name, namespace, for_watch=waiting, **selectors)
    if not found:
        return dict(changed=False, api_found=False, resources=[],
                    msg='The API server does not serve %s %s: is KubeVirt installed, and is api_version right?'
                        % (kind.api_version, kind.plural))
    if waiting and (name or items) and (not items or not all(predicate(o) for o in items)):
        # wait_sleep only bounds the pause before re-opening a watch the server ended without news
        # (with a floor, so a server that ends every watch at once cannot make us spin).
        pause = min(0.5, max(0.05, float(params.get('wait_sleep') or 0)))
        waiter = (waiter_factory or Waiter)(api, reopen_pause=pause)
        items = waiter.wait(kind, predicate, params.get('wait_timeout') or 0, namespace=namespace, name=name, goal=goal,
                            initial=(items, version), **selectors)
    hidden = params.get('hidden_fields') or []
    return dict(changed=False, api_found=True, resources=[hide_fields(o, hidden) for o in items])
