# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet.kubevirt contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Create a VM's namespace on demand (kubevirt_vm ``create_namespace``).

Design (request cost): no namespace is read up front. The VM write is sent as usual; only when the API server
answers 404 ``namespaces "x" not found`` is the namespace created (one POST) and that one write sent again. A
re-run in an existing namespace therefore costs no extra request at all, and a new namespace costs one POST
plus the repeated write of its first VM (later VMs of the task in that namespace go straight through).
In check mode the POST is a server dry run (so missing rights show up), and the VMs of a namespace that does
not exist yet are predicted locally: a dry-run write into a missing namespace can only fail.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import threading

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _kinds
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._errors import ApiError, conflict_kind, parse_status


def namespace_missing(err, namespace):
    """True when ``err`` is the API's 404 for the namespace itself (not for the object written into it)."""
    if not isinstance(err, ApiError) or err.status != 404:
        return False
    details = (parse_status(err.body) or {}).get("details") or {}
    if details:
        return details.get("kind") == "namespaces" and details.get("name") == namespace
    return ('namespaces "%s" not found' % namespace) in (err.msg or "")


def missing_message(namespace):
    """The error for a missing namespace when the module may not create it."""
    return ('Namespace "%s" does not exist (the API server answered: namespaces "%s" not found): create it beforehand, '
            'or set create_namespace=true to let the module create it.' % (namespace, namespace))


class Namespaces(object):
    """Namespaces this task created (or, in check mode, would create), and those it could not create."""

    def __init__(self, api, enabled, check_mode=False):
        self.api = api
        self.enabled = enabled
        self.check_mode = check_mode
        self.created = []       # in the order they were created
        self.missing = set()    # check mode: known not to exist yet (their VMs are predicted locally)
        self.failed = {}        # namespace -> the ApiError from creating it, so later VMs fail without a request
        # kubevirt_vm writes several VMs at once: two writes that both found the namespace missing create it once.
        self._lock = threading.Lock()

    def ensure(self, namespace):
        """Create ``namespace`` after a write found it missing; raises ApiError with one clear sentence."""
        if not self.enabled:
            raise ApiError(missing_message(namespace), 404)
        with self._lock:
            self._ensure(namespace)

    def _ensure(self, namespace):
        if namespace in self.failed:
            raise self.failed[namespace]
        if namespace in self.created:
            return      # another write of this task found it missing first and created it
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
        try:
            self.api.create(_kinds.NAMESPACE, body, dry_run=self.check_mode)
        except ApiError as err:
            if conflict_kind(err) == "exists":
                return  # created by someone else in between: the write can go ahead
            self.failed[namespace] = self._explain(namespace, err)
            raise self.failed[namespace]
        if namespace not in self.created:
            self.created.append(namespace)
        if self.check_mode:
            self.missing.add(namespace)

    @staticmethod
    def _explain(namespace, err):
        if err.status == 403:
            msg = ('Cannot create namespace "%s" (create_namespace=true): the credentials may not create namespaces '
                   '(403 Forbidden); create the namespace beforehand or grant them the RBAC permission to create '
                   'namespaces.' % namespace)
        else:
            msg = ('Cannot create namespace "%s" (create_namespace=true): %s Create the namespace beforehand.'
                   % (namespace, (err.msg or "").rstrip()))
        return ApiError(msg, err.status, reason=err.reason, body=err.body, method=err.method, path=err.path)
