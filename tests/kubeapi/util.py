"""Small helpers shared by the emulator modules."""
import json
import signal
import threading


def clone(obj):
    """Deep copy of JSON-compatible data (several times faster than copy.deepcopy for API objects)."""
    return json.loads(json.dumps(obj))


def wait_for_signal(interval=0.5):
    """Block until SIGTERM or SIGINT (the command-line servers run until then, then clean up)."""
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    while not done.wait(interval):
        pass
