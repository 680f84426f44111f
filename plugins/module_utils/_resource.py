# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet.kubevirt contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The kind-agnostic resource engine: a watch store for waits, and ensure / delete for writes.

Every module builds on these two pieces, so a new kind (a snapshot, a migration) is a planner and a module,
never another copy of a wait loop or of the "write only when needed" decision.

``WatchStore``: one list and one watch (names or selectors, one namespace or cluster-wide) under the caller's
deadline. ``until(check)`` feeds watch events into the store until ``check(store)`` holds; a watch the server
ends is reopened from the last resourceVersion; a 410 Gone (the version fell out of the server's watch cache)
is answered with a new list that *replaces* the store, so an object deleted in the gap is seen gone.

``Engine.ensure`` / ``Engine.delete``: the write decision for one object and its ``Outcome``:
- ``GIVEN`` (the default of kubevirt_vm, kubevirt.core's semantics): create, or a JSON merge patch of only the
  fields given, sent only when the live object lacks them;
- ``OWNED`` (full ownership, kubevirt_install): server-side apply of the whole declaration, with a digest
  annotation so that a field dropped from the declaration is noticed;
- ``REPLACE`` (force): a PUT guarded by the resourceVersion read, re-read and re-sent on 409.
Check mode sends the same request as a server-side dry run, or predicts the object when the server cannot
dry-run it (its namespace or CRD would only be created by this run). A create whose answer was lost is read
back (``_api.Api.create``), never sent twice blindly.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import time
import uuid

from concurrent.futures import ThreadPoolExecutor

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _compare as cmp
from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _kinds
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._api import CREATE_TOKEN_LABEL, api_missing
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._errors import ApiError
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._namespaces import namespace_missing

# Pause before reopening a watch that the server closed at once without an event (never hammer it).
REOPEN_PAUSE = 0.5
# How often a guarded write (replace with the resourceVersion read) is re-read and re-sent after a 409.
REPLACE_ATTEMPTS = 3

GIVEN, OWNED, REPLACE = "given", "owned", "replace"
# Metadata a declaration may carry that the server owns (a manifest's `creationTimestamp: null`, say).
_DECLARED_META = ("name", "generateName", "namespace", "labels", "annotations", "ownerReferences", "finalizers")


def in_parallel(fn, items, workers):
    """``fn(item)`` for every item, up to ``workers`` at a time (in this thread when one is enough). ``fn`` records
    its own errors on its item; anything it raises is a bug and is raised here."""
    items = list(items)
    workers = min(workers, len(items))
    if workers <= 1:
        for item in items:
            fn(item)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _done in pool.map(fn, items):
            pass


def key_of(obj):
    meta = (obj or {}).get("metadata") or {}
    return meta.get("namespace") or "", meta.get("name") or ""


# --- the watch store -----------------------------------------------------------------------------------------
class WatchStore(object):
    """The live objects of one kind that a wait is about, kept current by one list and one watch.

    ``names``: the names to track (one name lists and watches with a ``metadata.name`` field selector; several
    names list and watch the namespace and keep only those). Without names every object that matches the
    selectors is tracked; ``pin()`` narrows that to the objects the list returned.
    """

    def __init__(self, api, kind, namespace=None, names=None, label_selectors=None, field_selectors=None,
                 clock=time.monotonic, sleep=time.sleep, reopen_pause=REOPEN_PAUSE):
        self.api = api
        self.kind = kind
        self.namespace = namespace
        self.names = set(names) if names else None
        self.labels = list(label_selectors or []) or None
        fields = list(field_selectors or [])
        if self.names is not None and len(self.names) == 1:
            fields.append("metadata.name=%s" % next(iter(self.names)))
        self.fields = fields or None
        self.clock = clock
        self.sleep = sleep
        self.reopen_pause = reopen_pause
        self.objects = {}       # (namespace, name) -> the object as last seen
        self.order = []         # keys in the order first seen (results keep the list's order)
        self.pinned = None
        self.version = None
        self.relists = 0

    def _wanted(self, key):
        if self.pinned is not None:
            return key in self.pinned
        return self.names is None or key[1] in self.names

    def load(self, initial=None):
        """Fill the store from one list (or from ``initial`` = (items, resourceVersion) the caller already has)."""
        items, self.version = initial if initial is not None else self._list()
        self._replace(items)
        return self

    def _list(self):
        return self.api.list(self.kind, self.namespace, self.labels, self.fields)

    def _replace(self, items):
        self.objects = {}
        for obj in items:
            key = key_of(obj)
            if self._wanted(key):
                self.objects[key] = obj
                if key not in self.order:
                    self.order.append(key)

    def pin(self):
        """Track only what the list returned: objects created later are not waited for."""
        self.pinned = set(self.objects)
        return self

    def get(self, name, namespace=None):
        return self.objects.get((namespace if namespace is not None else (self.namespace or ""), name))

    def items(self):
        return [self.objects[k] for k in self.order if k in self.objects]

    def _event(self, etype, obj):
        key = key_of(obj)
        if etype == "BOOKMARK" or not self._wanted(key):
            return
        if etype == "DELETED":
            self.objects.pop(key, None)
            return
        self.objects[key] = obj
        if key not in self.order:
            self.order.append(key)

    def until(self, check, deadline):
        """Watch until ``check(self)`` holds (True) or the clock passes ``deadline`` (False)."""
        while not check(self):
            remaining = deadline - self.clock()
            if remaining <= 0:
                return False
            opened, events = self.clock(), 0
            try:
                for etype, obj in self.api.watch(self.kind, self.namespace, self.labels, self.fields,
                                                 resource_version=self.version, timeout=remaining):
                    events += 1
                    self.version = (obj.get("metadata") or {}).get("resourceVersion") or self.version
                    self._event(etype, obj)
                    if check(self) or self.clock() >= deadline:
                        break
            except ApiError as err:
                if err.status != 410:
                    raise
                # Our resourceVersion fell out of the server's watch cache: what was deleted in the gap sent no
                # event we can still get, so the new list is the whole truth.
                self.relists += 1
                items, self.version = self._list()
                self._replace(items)
                continue
            if not events and not check(self) and self.clock() - opened < self.reopen_pause:
                # The server closed the watch at once: do not hammer it with new ones.
                self.sleep(min(self.reopen_pause, max(0.0, deadline - self.clock())))
        return True


# --- ensure / delete -----------------------------------------------------------------------------------------
class Outcome(object):
    """What a write did to one object: ``action`` is created, updated, unchanged, deleted or absent."""

    def __init__(self, action, before=None, after=None, changed=None):
        self.action = action
        self.before = before
        self.after = after
        self.changed = action in ("created", "updated", "deleted") if changed is None else changed

    def diff(self, hidden=None):
        return cmp.diff(self.before, self.after, hidden)


def declared(obj):
    """What a declaration says, without status and server-owned metadata (for comparing with live)."""
    out = copy.deepcopy(obj)
    out.pop("status", None)
    meta = out.get("metadata") or {}
    for key in list(meta):
        if key not in _DECLARED_META:
            meta.pop(key)
    return out


class Engine(object):
    """Writes for one task: check mode, hidden fields, the field manager and the namespaces it may create.

    ``namespaces`` is a ``_namespaces.Namespaces`` (create_namespace) or None (a missing namespace is an error).
    """

    def __init__(self, api, check_mode=False, hidden=None, namespaces=None, field_manager=cmp.FIELD_MANAGER):
        self.api = api
        self.check_mode = check_mode
        self.hidden = list(hidden or [])
        self.namespaces = namespaces
        self.field_manager = field_manager
        # Check mode: namespaces and CRDs this run would create; objects in them cannot be dry-run, only predicted.
        self.pending_namespaces = set()
        self.pending_crds = set()

    # --- reading ---------------------------------------------------------------------------------------
    def _pending(self, kind, namespace):
        return self.check_mode and (namespace in self.pending_namespaces
                                    or (kind.group, kind.plural) in self.pending_crds)

    def read(self, kind, name, namespace=None):
        """The live object or None (also when its kind is not served, or only this check-mode run creates it)."""
        if self._pending(kind, namespace):
            return None
        try:
            return self.api.get(kind, name, namespace)
        except ApiError as err:
            if api_missing(err):
                return None
            raise

    # --- ensure ----------------------------------------------------------------------------------------
    def ensure(self, kind, desired, live, mode=GIVEN, named_lists=(), digest_of=None):
        """Make the object hold ``desired``; returns its Outcome. ``live`` is the object as read (None: absent).

        GIVEN: ``named_lists`` are the lists merged into the live ones by element name (see
        ``_compare.patch_body``). OWNED: ``digest_of`` is what the digest annotation covers (default: desired).
        """
        namespace = (desired.get("metadata") or {}).get("namespace") if kind.namespaced else None
        if mode == OWNED:
            desired = cmp.with_digest(desired, cmp.digest(desired if digest_of is None else digest_of))
        if live is None:
            after = self._create(kind, desired, namespace, apply=mode == OWNED)
            self._note_created(kind, desired)
            return Outcome("created", None, after)
        if mode == REPLACE:
            return self._replace(kind, desired, live, namespace)
        if mode == OWNED:
            # Compared with what the server stores: a built-in kind drops omitempty zero values (false, 0, "").
            needed, _why = cmp.needs_apply(declared(desired), live, self.hidden, omitted_zero=kind.builtin)
            if not needed:
                return Outcome("unchanged", live, live)
            after = self._apply(kind, desired, namespace)
            return Outcome("updated", live, after)
        body = cmp.patch_body(desired, live, named_lists)
        if not cmp.differences(cmp.hide_fields(body, self.hidden), cmp.hide_fields(live, self.hidden), extra_ok=False):
            return Outcome("unchanged", live, live)
        name = (live.get("metadata") or {}).get("name")
        after = self.api.patch(kind, name, body, namespace, patch_type="merge", dry_run=self.check_mode,
                               field_manager=self.field_manager)
        return self._updated(live, after)

    def _updated(self, live, after):
        changed = cmp.changed_between(live, after, self.hidden)
        return Outcome("updated" if changed else "unchanged", live, after, changed=changed)

    def _note_created(self, kind, obj):
        if not self.check_mode:
            return
        meta = obj.get("metadata") or {}
        if kind == _kinds.NAMESPACE:
            self.pending_namespaces.add(meta.get("name"))
        elif kind == _kinds.CRD:
            spec = obj.get("spec") or {}
            self.pending_crds.add((spec.get("group"), (spec.get("names") or {}).get("plural")))

    def _create(self, kind, desired, namespace, apply=False):
        meta = desired.get("metadata") or {}
        if apply and meta.get("name"):
            return self._in_namespace(kind, desired, namespace, lambda: self._apply(kind, desired, namespace, True))
        body = desired
        if not meta.get("name") and not self.check_mode:
            # The server picks the name: this label is how a create whose answer was lost is found again.
            body = dict(desired, metadata=dict(meta, labels=dict(meta.get("labels") or {},
                                                                 **{CREATE_TOKEN_LABEL: uuid.uuid4().hex})))
        return self._in_namespace(kind, desired, namespace, lambda: self.api.create(
            kind, body, namespace, dry_run=self.check_mode, field_manager=self.field_manager))

    def _apply(self, kind, desired, namespace, creating=False):
        try:
            return self.api.apply(kind, desired, self.field_manager, namespace, force=True, dry_run=self.check_mode)
        except ApiError as err:
            if creating and self.check_mode and (api_missing(err) or (err.status == 404 and self.namespaces is None)):
                return desired      # its CRD or namespace is not there yet: the dry run cannot answer
            raise

    def _in_namespace(self, kind, desired, namespace, send):
        """Send a create; when its namespace is missing, create that (if allowed) and send again.

        In check mode an object in a namespace (or of a CRD) that does not exist yet is predicted locally: a dry
        run there fails.
        """
        spaces = self.namespaces
        if self._pending(kind, namespace) or (spaces is not None and namespace in spaces.missing):
            meta = dict(desired.get("metadata") or {})
            if namespace:
                meta["namespace"] = namespace
            return dict(desired, metadata=meta)
        if spaces is not None and namespace in spaces.failed:
            raise spaces.failed[namespace]
        try:
            return send()
        except ApiError as err:
            if spaces is None or not namespace or not namespace_missing(err, namespace):
                raise
        spaces.ensure(namespace)
        if self.check_mode:
            return dict(desired, metadata=dict(desired.get("metadata") or {}, namespace=namespace))
        return send()

    def _replace(self, kind, desired, live, namespace):
        """PUT the declaration guarded by the resourceVersion read: the API server refuses an unconditional
        update of a custom resource, and an object changed in between is read again."""
        name = (live.get("metadata") or {}).get("name")
        for attempt in range(1, REPLACE_ATTEMPTS + 1):
            version = (live.get("metadata") or {}).get("resourceVersion")
            body = dict(desired, metadata=dict(desired.get("metadata") or {}, resourceVersion=version))
            try:
                after = self.api.replace(kind, body, namespace, dry_run=self.check_mode,
                                         field_manager=self.field_manager)
                return self._updated(live, after)
            except ApiError as err:
                if err.status != 409 or attempt == REPLACE_ATTEMPTS:
                    raise
                live = self.api.get(kind, name, namespace)
                if live is None:
                    raise
        return None  # not reached: the last attempt returns or raises

    # --- delete ----------------------------------------------------------------------------------------
    def delete(self, kind, live, propagation=None, preconditions=None, terminating_done=True):
        """Delete the object read as ``live``. A 404 (it went away since) is ``absent``; an object already being
        deleted is ``unchanged`` when ``terminating_done`` (else the delete is sent again, as kubernetes.core
        does); the Outcome's ``after`` is what the server answered (the terminating object)."""
        if live is None:
            return Outcome("absent")
        meta = live.get("metadata") or {}
        if terminating_done and meta.get("deletionTimestamp"):
            return Outcome("unchanged", live, live)
        namespace = meta.get("namespace") if kind.namespaced else None
        answer = self.api.delete(kind, meta.get("name"), namespace, propagation=propagation, dry_run=self.check_mode,
                                 preconditions=preconditions)
        if answer is None:
            return Outcome("absent", live, None)
        return Outcome("deleted", live, answer if answer.get("kind") == live.get("kind", kind.kind) else None)
