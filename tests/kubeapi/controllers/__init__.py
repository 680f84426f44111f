"""Simulated controllers: each runs in its own thread, fed by store events and a deterministic timer queue."""
import heapq
import itertools
import queue
import threading
import time
import zlib

STEP = {"fast": 0.15, "normal": 1.0}


def step_seconds(timing):
    """Seconds per controller transition: "fast", "normal" or a number."""
    if timing in STEP:
        return STEP[timing]
    return max(0.0, float(timing))


class _Worker:
    """One thread of a controller: its event queue and its timers."""

    def __init__(self, controller, index):
        self.queue = queue.Queue()
        self.timers = []
        self.lock = threading.Lock()
        name = controller.name if index == 0 else "%s-%d" % (controller.name, index)
        self.thread = threading.Thread(target=controller._run, args=(self,), name=name, daemon=True)


class Controller:
    """Base: subclasses set `watches` (rkeys) and implement reconcile(rkey, ns, name).

    ``workers`` threads (default 1) reconcile, like the worker goroutines of a real controller's work queue: each
    object is always handled by the same worker (``shard_key``), so the events of one object stay in order and its
    timers (``after``) run on that worker, while different objects are reconciled concurrently. Several workers only
    pay off where the writes go over the network (the remote host, remote.py): the emulator's store is in-process.
    """

    name = "controller"
    watches = ()

    def __init__(self, app, workers=1):
        self.app = app
        self.api = app.api
        self.store = app.store
        self.step = step_seconds(app.timing)
        self._seq = itertools.count()
        self._stop = threading.Event()
        self._workers = [_Worker(self, i) for i in range(max(1, int(workers)))]
        self._local = threading.local()
        # The first worker's queue and thread, for subclasses that feed it themselves (gc.py).
        self._queue = self._workers[0].queue
        self._thread = self._workers[0].thread

    @property
    def workers(self):
        return len(self._workers)

    def start(self):
        watched = set(self.watches)

        def listener(rkey, event):
            if rkey in watched:
                self._worker_for(rkey, event).queue.put((rkey, event))
        self.store.subscribe(listener)
        self.setup()
        for w in self._workers:
            w.thread.start()

    def setup(self):
        pass

    def stop(self):
        self._stop.set()
        for w in self._workers:
            w.queue.put(None)

    def shard_key(self, rkey, ns, obj):
        """The object whose worker handles this event (default: the object itself, by namespace and name)."""
        return ns, obj["metadata"]["name"]

    def _worker_for(self, rkey, event):
        if len(self._workers) == 1:
            return self._workers[0]
        etype, obj, ns, prev, rv = event
        key = "/".join(str(k) for k in self.shard_key(rkey, ns, obj)).encode()
        return self._workers[zlib.crc32(key) % len(self._workers)]

    def after(self, delay, fn, *args):
        """Run fn(*args) after `delay` seconds on the calling worker (deterministic order), else on the first."""
        w = getattr(self._local, "worker", None) or self._workers[0]
        with w.lock:
            heapq.heappush(w.timers, (time.monotonic() + delay, next(self._seq), fn, args))
        w.queue.put(("__timer__", None))

    def _run(self, w):
        self._local.worker = w
        while not self._stop.is_set():
            with w.lock:
                wait = w.timers[0][0] - time.monotonic() if w.timers else 0.5
            try:
                item = w.queue.get(timeout=max(0.0, min(wait, 0.5)))
            except queue.Empty:
                item = ("__timer__", None)
            if item is None:
                break
            self._fire_timers(w)
            rkey, event = item
            if rkey == "__timer__":
                continue
            try:
                self.handle_event(rkey, event)
            except Exception as exc:   # a controller bug must not kill the emulator
                print("kubeapi: controller %s: %r" % (self.name, exc), flush=True)

    def _fire_timers(self, w):
        while True:
            with w.lock:
                if not w.timers or w.timers[0][0] > time.monotonic():
                    return
                _, _, fn, args = heapq.heappop(w.timers)
            try:
                fn(*args)
            except Exception as exc:   # see above
                print("kubeapi: controller %s timer: %r" % (self.name, exc), flush=True)

    def handle_event(self, rkey, event):
        etype, obj, ns, prev, rv = event
        self.reconcile(rkey, ns, obj["metadata"]["name"], etype, obj)

    def reconcile(self, rkey, ns, name, etype, obj):
        raise NotImplementedError


def start_controllers(app, names):
    from .gc import GarbageCollector
    controllers = [GarbageCollector(app)]
    for n in names:
        if n == "virt":
            from .virt import VirtController
            controllers.append(VirtController(app))
            try:   # virt-api/kubemacpool admission webhooks (written for the kubevirt_vm issue)
                from .webhooks import KubeVirtWebhooks
            except ImportError:
                KubeVirtWebhooks = None
            if KubeVirtWebhooks is not None:
                controllers.append(KubeVirtWebhooks(app))
            from .snapshot import SnapshotController   # snapshot.kubevirt.io snapshots and restores (#18)
            controllers.append(SnapshotController(app))
        elif n == "cdi":
            try:
                from .cdi import CdiController
            except ImportError:
                raise SystemExit("kubeapi: controller 'cdi' is not implemented yet")
            controllers.append(CdiController(app))
        elif n == "operators":   # simulated virt-operator + cdi-operator (kubevirt_install issue)
            from .operator import OperatorController
            controllers.append(OperatorController(app))
        else:
            raise SystemExit("kubeapi: unknown controller %r (known: virt, cdi, operators, none)" % n)
    if getattr(app, "guest_images", None):   # --guest-image: real QEMU guests behind mapped images (realguest.py)
        from .realguest import RealGuests
        app.realguests = RealGuests(app, app.guest_images, app.guest_workdir)
        controllers.append(app.realguests)
    for c in controllers:
        c.start()
        app.controllers.append(c)
    return controllers
