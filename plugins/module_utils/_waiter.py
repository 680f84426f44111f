# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Wait for N objects to satisfy a predicate within one deadline, using one list and one watch.

Polling each object costs N requests per round and sleeps past the moment things become ready; a watch
on the collection (same selectors as the list) delivers every change for all N objects on one stream.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.virtfleet.kubevirt.plugins.module_utils._compare import condition
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._errors import WaitTimeout
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._resource import REOPEN_PAUSE, WatchStore

MAX_LISTED = 20


def describe_state(obj):
    """Short human state: ``printableStatus Starting, phase Scheduling, Ready=False (reason: message)``."""
    if obj is None:
        return 'does not exist'
    status = obj.get('status') or {}
    parts = []
    if status.get('printableStatus'):
        parts.append('printableStatus %s' % status['printableStatus'])
    if status.get('phase'):
        parts.append('phase %s' % status['phase'])
    ready = condition(obj, 'Ready')
    if ready is None:
        parts.append('no Ready condition yet')
    else:
        detail = ready.get('reason') or ''
        if ready.get('message'):
            detail = '%s: %s' % (detail, ready['message']) if detail else ready['message']
        parts.append('Ready=%s%s' % (ready.get('status'), ' (%s)' % detail if detail else ''))
    if (obj.get('metadata') or {}).get('deletionTimestamp'):
        parts.append('being deleted')
    return ', '.join(parts)


class Waiter(object):
    """``wait(...)`` returns the final objects, or raises WaitTimeout naming each unsatisfied one."""

    def __init__(self, api, clock=time.monotonic, sleep=time.sleep, reopen_pause=REOPEN_PAUSE):
        self.api = api
        self.clock = clock
        self.sleep = sleep
        self.reopen_pause = reopen_pause

    def wait(self, kind, predicate, timeout, namespace=None, name=None, label_selectors=None, field_selectors=None,
             goal='ready', initial=None):
        """Wait until every matched object satisfies ``predicate``.

        With ``name`` the object may not exist yet: the wait also covers its appearance. Without a name the
        set is what the list returned; objects created later are not waited for. ``initial`` is an optional
        ``(items, resourceVersion)`` the caller already listed, which saves the list request.
        """
        deadline = self.clock() + timeout
        store = WatchStore(self.api, kind, namespace, names=[name] if name else None, label_selectors=label_selectors,
                           field_selectors=field_selectors, clock=self.clock, sleep=self.sleep,
                           reopen_pause=self.reopen_pause).load(initial)
        if not name:
            store.pin()

        def pending(st):
            if name:
                if not st.objects:
                    return [((namespace or ''), name)]
                return [k for k in st.objects if not predicate(st.objects[k])]
            return [k for k in st.order if k not in st.objects or not predicate(st.objects[k])]

        store.until(lambda st: not pending(st), deadline)
        left = pending(store)
        if left:
            raise self._timeout(kind, left, store.objects, len(store.order) if not name else 1, timeout, goal)
        return store.items()

    @staticmethod
    def _timeout(kind, left, state, total, timeout, goal):
        shown = ['%s (%s)' % ('/'.join(p for p in key if p), describe_state(state.get(key))) for key in left[:MAX_LISTED]]
        more = ' and %d more' % (len(left) - MAX_LISTED) if len(left) > MAX_LISTED else ''
        msg = ('Timed out after %ss waiting for %d of %d %s to be %s: %s%s. Increase wait_timeout, or check why they '
               'are not %s.' % (timeout, len(left), total, kind.kind + ('s' if total != 1 else ''), goal,
                                '; '.join(shown), more, goal))
        pending = [{'namespace': key[0], 'name': key[1], 'state': describe_state(state.get(key))} for key in left]
        return WaitTimeout(msg, pending=pending, resources=[state[k] for k in state])
