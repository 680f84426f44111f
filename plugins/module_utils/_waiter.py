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

from ansible_collections.virtfleet.kubevirt.plugins.module_utils._errors import ApiError, WaitTimeout

MAX_LISTED = 20


def object_key(obj):
    meta = obj.get('metadata') or {}
    return meta.get('namespace') or '', meta.get('name') or ''


def condition(obj, ctype):
    """The condition of ``ctype`` in ``status.conditions`` or None."""
    for cond in (obj.get('status') or {}).get('conditions') or []:
        if isinstance(cond, dict) and cond.get('type') == ctype:
            return cond
    return None


def condition_is(obj, ctype, status, reason=None):
    cond = condition(obj, ctype)
    if cond is None:
        return False
    if str(cond.get('status')).lower() != str(status).lower():
        return False
    return reason is None or cond.get('reason') == reason


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

    def __init__(self, api, clock=time.monotonic, sleep=time.sleep, reopen_pause=0.5):
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
        field_selectors = list(field_selectors or [])
        if name:
            field_selectors.append('metadata.name=%s' % name)
        if initial is None:
            initial = self.api.list(kind, namespace, label_selectors, field_selectors)
        items, version = initial
        order = [object_key(o) for o in items]
        state = dict((object_key(o), o) for o in items)
        expected = None if name else set(order)

        def pending():
            if name:
                if not state:
                    return [((namespace or ''), name)]
                return [k for k in state if not predicate(state[k])]
            return [k for k in order if k not in state or not predicate(state[k])]

        while pending():
            remaining = deadline - self.clock()
            if remaining <= 0:
                break
            started, events = self.clock(), 0
            try:
                for etype, obj in self.api.watch(kind, namespace, label_selectors, field_selectors,
                                                 resource_version=version, timeout=remaining):
                    events += 1
                    version = (obj.get('metadata') or {}).get('resourceVersion') or version
                    if etype == 'BOOKMARK':
                        continue
                    key = object_key(obj)
                    if expected is not None and key not in expected:
                        continue
                    if etype == 'DELETED':
                        state.pop(key, None)
                    else:
                        if key not in order:
                            order.append(key)
                        state[key] = obj
                    if not pending() or self.clock() >= deadline:
                        break
            except ApiError as err:
                if err.status != 410:
                    raise
                # Our resourceVersion fell out of the server's watch cache: take a fresh snapshot.
                fresh, version = self.api.list(kind, namespace, label_selectors, field_selectors)
                state = dict((object_key(o), o) for o in fresh if expected is None or object_key(o) in expected)
                continue
            if pending() and events == 0 and self.clock() - started < self.reopen_pause:
                self.sleep(min(self.reopen_pause, max(0.0, deadline - self.clock())))

        left = pending()
        if left:
            raise self._timeout(kind, left, state, len(order) if not name else 1, timeout, goal)
        return [state[k] for k in order if k in state]

    @staticmethod
    def _timeout(kind, left, state, total, timeout, goal):
        shown = ['%s (%s)' % ('/'.join(p for p in key if p), describe_state(state.get(key))) for key in left[:MAX_LISTED]]
        more = ' and %d more' % (len(left) - MAX_LISTED) if len(left) > MAX_LISTED else ''
        msg = ('Timed out after %ss waiting for %d of %d %s to be %s: %s%s. Increase wait_timeout, or check why they '
               'are not %s.' % (timeout, len(left), total, kind.kind + ('s' if total != 1 else ''), goal,
                                '; '.join(shown), more, goal))
        pending = [{'namespace': key[0], 'name': key[1], 'state': describe_state(state.get(key))} for key in left]
        return WaitTimeout(msg, pending=pending, resources=[state[k] for k in state])
