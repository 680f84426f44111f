"""Simulated controllers: each runs in its own thread, fed by store events and a deterministic timer queue."""
import heapq
import itertools
import queue
import threading
import time

STEP = {"fast": 0.15, "normal": 1.0}


def step_seconds(timing):
    """Seconds per controller transition: "fast", "normal" or a number."""
    if timing in STEP:
        return STEP[timing]
    return max(0.0, float(timing))


class Controller:
    """Base: subclasses set `watches` (rkeys) and implement reconcile(rkey, ns, name)."""

    name = "controller"
    watches = ()

    def __init__(self, app):
        self.app = app
        self.api = app.api
        self.store = app.store
        self.step = step_seconds(app.timing)
        self._queue = queue.Queue()
        self._timers = []
        self._seq = itertools.count()
        self._tlock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    def start(self):
        watched = set(self.watches)

        def listener(rkey, event):
            if rkey in watched:
                self._queue.put((rkey, event))
        self.store.subscribe(listener)
        self.setup()
        self._thread.start()

    def setup(self):
        pass

    def stop(self):
        self._stop.set()
        self._queue.put(None)

    def after(self, delay, fn, *args):
        """Run fn(*args) on the controller thread after `delay` seconds (deterministic order)."""
        with self._tlock:
            heapq.heappush(self._timers, (time.monotonic() + delay, next(self._seq), fn, args))
        self._queue.put(("__timer__", None))

    def _run(self):
        while not self._stop.is_set():
            with self._tlock:
                wait = self._timers[0][0] - time.monotonic() if self._timers else 0.5
            try:
                item = self._queue.get(timeout=max(0.0, min(wait, 0.5)))
            except queue.Empty:
                item = ("__timer__", None)
            if item is None:
                break
            self._fire_timers()
            rkey, event = item
            if rkey == "__timer__":
                continue
            try:
                self.handle_event(rkey, event)
            except Exception as exc:   # a controller bug must not kill the emulator
                print("kubeapi: controller %s: %r" % (self.name, exc), flush=True)

    def _fire_timers(self):
        while True:
            with self._tlock:
                if not self._timers or self._timers[0][0] > time.monotonic():
                    return
                _, _, fn, args = heapq.heappop(self._timers)
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
