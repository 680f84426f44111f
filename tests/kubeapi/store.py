"""In-memory object store: one lock, one global resourceVersion counter, per-(resource, namespace) indexes,
a bounded event history per resource for watches from a resourceVersion, and watch fan-out.

Stored objects are never mutated after being stored (writers store a fresh dict), so readers may serialise
them without holding the lock.
"""
import collections
import queue
import threading


class Gone(Exception):
    """A watch asked for a resourceVersion older than the kept history."""


class Watcher:
    def __init__(self, rkey, namespace, since_rv):
        self.rkey = rkey
        self.namespace = namespace
        self.queue = queue.Queue()
        self.since_rv = since_rv
        self.closed = False

    def offer(self, event):
        if self.namespace and event[2] != self.namespace:
            return
        self.queue.put(event)


def sorted_items(buckets, namespace=None):
    """{namespace: {name: obj}} -> objects sorted by (namespace, name), of one namespace when given."""
    if not buckets:
        return []
    if namespace is not None:
        ns_map = buckets.get(namespace or "")
        return [ns_map[n] for n in sorted(ns_map)] if ns_map else []
    out = []
    for ns in sorted(buckets):
        out.extend(buckets[ns][n] for n in sorted(buckets[ns]))
    return out


class Store:
    def __init__(self, history=200000):
        self.lock = threading.RLock()
        self.rv = 1000
        self._data = collections.defaultdict(lambda: collections.defaultdict(dict))
        self._history = collections.defaultdict(lambda: collections.deque(maxlen=history))
        self._oldest = {}
        self._watchers = collections.defaultdict(set)
        self._listeners = []

    # --- reads -------------------------------------------------------------------------------------------
    def get(self, rkey, namespace, name):
        return self._data[rkey][namespace or ""].get(name)

    def items(self, rkey, namespace=None):
        """Objects of one resource, sorted by (namespace, name) like etcd key order; a snapshot list."""
        with self.lock:
            return sorted_items(self._data.get(rkey), namespace)

    def count(self, rkey, namespace=None):
        with self.lock:
            buckets = self._data.get(rkey) or {}
            if namespace is not None:
                return len(buckets.get(namespace or "", {}))
            return sum(len(v) for v in buckets.values())

    def namespaces_with(self, namespace):
        """rkeys that hold objects in `namespace` (for namespace deletion)."""
        with self.lock:
            return [rk for rk, b in self._data.items() if b.get(namespace)]

    # --- writes ------------------------------------------------------------------------------------------
    def next_rv(self):
        with self.lock:
            self.rv += 1
            return self.rv

    def put(self, rkey, obj, etype):
        """Store `obj` (its metadata.resourceVersion must already be the new rv) and emit an event."""
        meta = obj["metadata"]
        ns = meta.get("namespace") or ""
        with self.lock:
            prev = self._data[rkey][ns].get(meta["name"])
            self._data[rkey][ns][meta["name"]] = obj
            self._emit(rkey, (etype, obj, ns, prev, int(meta["resourceVersion"])))
        return prev

    def remove(self, rkey, obj):
        """Remove the object; `obj` is the final state (with a fresh resourceVersion) sent as DELETED."""
        meta = obj["metadata"]
        ns = meta.get("namespace") or ""
        with self.lock:
            prev = self._data[rkey][ns].pop(meta["name"], None)
            if not self._data[rkey][ns]:
                del self._data[rkey][ns]
            self._emit(rkey, ("DELETED", obj, ns, prev, int(meta["resourceVersion"])))
        return prev

    def _emit(self, rkey, event):
        hist = self._history[rkey]
        if hist.maxlen and len(hist) == hist.maxlen:
            self._oldest[rkey] = hist[0][4]
        hist.append(event)
        for w in list(self._watchers.get(rkey, ())):
            w.offer(event)
        for cb in self._listeners:
            cb(rkey, event)

    # --- watch -------------------------------------------------------------------------------------------
    def watch(self, rkey, namespace, since_rv):
        """Register a watcher; events newer than since_rv are replayed first. Raises Gone if too old."""
        with self.lock:
            w = Watcher(rkey, namespace, since_rv)
            if since_rv is not None:
                oldest = self._oldest.get(rkey)
                if oldest is not None and since_rv < oldest:
                    raise Gone()
                for ev in self._history.get(rkey, ()):
                    if ev[4] > since_rv:
                        w.offer(ev)
            self._watchers[rkey].add(w)
            return w

    def unwatch(self, w):
        with self.lock:
            self._watchers[w.rkey].discard(w)
            w.closed = True

    def compact(self, rkey=None):
        """Forget history (test hook): later watches from an older resourceVersion get 410 Gone."""
        with self.lock:
            for rk in ([rkey] if rkey else list(self._history)):
                self._history[rk].clear()
                self._oldest[rk] = self.rv

    def subscribe(self, callback):
        """callback(rkey, event) is called under the store lock for every change: keep it to a queue put."""
        self._listeners.append(callback)
