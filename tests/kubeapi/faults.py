"""Injected faults: latency, HTTP 500/429 Status replies and dropped connections, chosen by a seeded RNG."""
import random
import re
import threading


class Faults:
    def __init__(self):
        self._lock = threading.Lock()
        self.clear()

    def clear(self):
        with self._lock:
            self.config = {"rate": 0.0, "statuses": [], "reset": False, "latency_ms": 0, "path_regex": None,
                           "methods": None, "count": None, "seed": 1, "after_commit": 0.0,
                           "watch_only": False}
            self._rng = random.Random(1)
            self._regex = None
            self.injected = 0

    def configure(self, rate=0.0, statuses=(500, 429), reset=False, latency_ms=0, path_regex=None, count=None,
                  seed=1, methods=None, after_commit=0.0, watch_only=False):
        with self._lock:
            self.config = {"rate": float(rate), "statuses": [int(s) for s in statuses or []], "reset": bool(reset),
                           "latency_ms": int(latency_ms or 0), "path_regex": path_regex,
                           "methods": [m.upper() for m in methods] if methods else None,
                           "count": count, "seed": seed, "after_commit": float(after_commit or 0.0),
                           "watch_only": bool(watch_only)}
            self._rng = random.Random(seed)
            self._regex = re.compile(path_regex) if path_regex else None
            self.injected = 0

    def decide(self, method, path, watch=False):
        """(latency_seconds, outcome) where outcome is None, an int status, or "reset".

        With ``watch_only`` only watch requests are faulted. Status 410 on a watch is answered the way
        kube-apiserver answers a watch from a resourceVersion it no longer has: a 200 stream whose one event is
        an ERROR with a 410 Expired Status (the latency passes first, so objects can change in the gap).
        """
        with self._lock:
            cfg = self.config
            if cfg.get("watch_only") and not watch:
                return 0.0, None
            if self._regex is not None and not self._regex.search(path):
                return 0.0, None
            if cfg["methods"] and method not in cfg["methods"]:
                return 0.0, None
            latency = cfg["latency_ms"] / 1000.0
            outcomes = list(cfg["statuses"]) + (["reset"] if cfg["reset"] else [])
            if not outcomes or cfg["rate"] <= 0:
                return latency, None
            if cfg["count"] is not None and self.injected >= cfg["count"]:
                return latency, None
            if self._rng.random() >= cfg["rate"]:
                return latency, None
            self.injected += 1
            return latency, self._rng.choice(outcomes)

    def after_commit(self, method, outcome):
        """Should this injected fault hit after the write was stored (a lost answer)? Writes only, never 429.

        With ``after_commit`` = p, that share of the faults chosen for POST/PUT/PATCH/DELETE is applied after
        the request has been processed: the change is stored, then the connection drops or a 5xx is sent.
        """
        if outcome == 429 or method not in ("POST", "PUT", "PATCH", "DELETE"):
            return False
        with self._lock:
            p = self.config.get("after_commit") or 0.0
            return p > 0 and self._rng.random() < p
