"""Namespace deletion and ownerReference cascade (background propagation), like kube-controller-manager."""
import collections

from ..api import Options
from ..errors import ApiError
from . import Controller
from ..util import clone


class GarbageCollector(Controller):
    name = "gc"

    def __init__(self, app):
        super().__init__(app)
        self._dependents = collections.defaultdict(set)   # owner uid -> {(rkey, ns, name)}
        self._terminating = set()
        self._fg_pending = set()

    def start(self):
        def listener(rkey, event):
            self._queue.put((rkey, event))
        self.store.subscribe(listener)
        self._thread.start()

    def _opts(self):
        return Options(validation="Ignore", manager="generic-garbage-collector")

    def handle_event(self, rkey, event):
        etype, obj, ns, prev, rv = event
        meta = obj["metadata"]
        ident = (rkey, ns, meta["name"])
        if etype == "DELETED":
            for ref in meta.get("ownerReferences") or []:
                self._dependents[ref.get("uid")].discard(ident)
            self._cascade(meta.get("uid"))
            if ns in self._terminating:
                self._drain(ns)
        else:
            for ref in meta.get("ownerReferences") or []:
                self._dependents[ref.get("uid")].add(ident)
                if etype == "ADDED" and ref.get("uid") and not self._owner_exists(ref, ns):
                    self.after(0, self._cascade, ref.get("uid"))
        if etype != "DELETED" and meta.get("deletionTimestamp") and "foregroundDeletion" in (meta.get("finalizers")
                                                                                            or []):
            if meta.get("uid") not in self._fg_pending:
                self._fg_pending.add(meta.get("uid"))
                self._foreground(rkey, ns, meta["name"], meta.get("uid"))
        if rkey == ("", "namespaces") and etype != "DELETED" and meta.get("deletionTimestamp"):
            if meta["name"] not in self._terminating:
                self._terminating.add(meta["name"])
                self._drain(meta["name"])

    def _owner_exists(self, ref, ns):
        rt = self.app.registry.by_kind(ref.get("apiVersion", ""), ref.get("kind", ""))
        if rt is None:
            return True
        obj = self.store.get(rt.key, ns if rt.namespaced else "", ref.get("name"))
        return obj is not None and obj["metadata"].get("uid") == ref.get("uid")

    def _cascade(self, uid):
        if not uid:
            return
        orphan = uid in self.api._orphans
        for rkey, ns, name in sorted(self._dependents.pop(uid, set())):
            rt = self.app.registry.get(*rkey)
            if rt is None:
                continue
            try:
                if orphan:
                    def drop(o, uid=uid):
                        refs = [r for r in o["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
                        o["metadata"]["ownerReferences"] = refs
                    self._update_meta(rt, ns, name, drop)
                else:
                    self.api.delete(rt, rt.storage_version, ns, name, self._opts())
            except ApiError:
                pass

    def _foreground(self, rkey, ns, name, uid):
        """Foreground deletion: delete dependents; drop the finalizer once none is left."""
        deps = [d for d in self._dependents.get(uid, set()) if self.store.get(d[0], d[1], d[2]) is not None]
        for drk, dns, dname in sorted(deps):
            rt = self.app.registry.get(*drk)
            obj = self.store.get(drk, dns, dname)
            if rt is None or obj is None or obj["metadata"].get("deletionTimestamp"):
                continue
            try:
                self.api.delete(rt, rt.storage_version, dns, dname, self._opts(), {"propagationPolicy": "Foreground"})
            except ApiError:
                pass
        if deps:
            self.after(self.step, self._foreground, rkey, ns, name, uid)
            return
        self._fg_pending.discard(uid)
        rt = self.app.registry.get(*rkey)
        cur = self.store.get(rkey, ns, name)
        if rt is None or cur is None or cur["metadata"].get("uid") != uid:
            return

        def drop(o):
            o["metadata"]["finalizers"] = [f for f in o["metadata"].get("finalizers") or [] if f != "foregroundDeletion"]
        self._update_meta(rt, ns, name, drop)

    def _update_meta(self, rt, ns, name, fn):
        cur = self.store.get(rt.key, ns, name)
        if cur is None:
            return
        new = clone(cur)
        fn(new)
        self.api.update(rt, rt.storage_version, ns, name, new, self._opts())

    def _drain(self, ns):
        """Delete everything in a terminating namespace; remove it once empty."""
        left = 0
        for rkey in self.store.namespaces_with(ns):
            rt = self.app.registry.get(*rkey)
            if rt is None:
                continue
            for obj in self.store.items(rkey, ns):
                left += 1
                if obj["metadata"].get("deletionTimestamp"):
                    continue
                try:
                    self.api.delete(rt, rt.storage_version, ns, obj["metadata"]["name"], self._opts())
                except ApiError:
                    pass
        if left and self.store.namespaces_with(ns):
            self.after(self.step, self._drain, ns)
            return
        nsobj = self.store.get(("", "namespaces"), "", ns)
        self._terminating.discard(ns)
        if nsobj is None:
            return
        with self.store.lock:
            final = clone(nsobj)
            final["metadata"]["resourceVersion"] = str(self.store.next_rv())
            final["spec"]["finalizers"] = []
            self.store.remove(("", "namespaces"), final)
