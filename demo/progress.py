"""Progress lines for `make demo`: a step's output as it comes, and when nothing was printed for EVERY seconds a line
"... still <step>: <elapsed>s, <what it waits for>", so that a long silent step (pip, apt, the guest image build, a
task waiting for VMs, SSH to an emulated guest) shows that it is alive and what it is doing.

demo/run.py imports it; the Makefile wraps the .venv pip install with it (standard library only: it runs before
.venv exists):

    python3 demo/progress.py "installing .venv" -- .venv/bin/pip install -r requirements-test.txt
"""
import contextlib
import subprocess
import sys
import threading
import time

EVERY = 10      # seconds of silence before a progress line (`make demo` promises one at least every 15 s)


class Progress:
    """Stands in for sys.stdout (install()) and remembers when a line was last written; step() runs a thread that
    writes a progress line whenever the output has been silent for `every` seconds."""

    def __init__(self, stream, every=EVERY):
        self.stream = stream
        self.every = every
        self.lock = threading.RLock()
        self.last = time.monotonic()

    @classmethod
    def install(cls, every=EVERY):
        """Route sys.stdout through a Progress (once) and return it."""
        if not isinstance(sys.stdout, cls):
            sys.stdout = cls(sys.stdout, every)
        return sys.stdout

    def write(self, text):
        with self.lock:
            self.stream.write(text)
            self.stream.flush()
            if text:
                self.last = time.monotonic()
        return len(text)

    def flush(self):
        self.stream.flush()

    def __getattr__(self, name):      # encoding, fileno, isatty, ...: those of the real stream
        return getattr(self.stream, name)

    @contextlib.contextmanager
    def step(self, what, detail=None):
        """While the block runs, print "... still <what>: <elapsed>s[, detail()]" after `every` s without output
        (and again every `every` s while it stays silent). detail: a callable saying what the step waits for; it
        runs in the progress thread, so it must be quick; an error in it is shown instead of its text."""
        started = time.monotonic()
        done = threading.Event()

        def beat():
            while not done.wait(0.5):
                if time.monotonic() - self.last < self.every:
                    continue
                extra = ""
                if detail is not None:
                    try:
                        extra = detail() or ""
                    except Exception as exc:    # pylint: disable=broad-except  (a progress line must not fail)
                        extra = "(no detail: %s)" % (exc or type(exc).__name__)
                with self.lock:
                    if not done.is_set() and time.monotonic() - self.last >= self.every:
                        self.write("... still %s: %ds%s\n" % (what, time.monotonic() - started,
                                                              ", " + extra if extra else ""))

        thread = threading.Thread(target=beat, name="progress", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()


def run(cmd, env=None, cwd=None, step=None, detail=None, on_line=None, echo=True):
    """Run cmd (stderr merged into stdout) under a progress step; its lines are printed as they come (echo) and
    passed to on_line. Returns (exit status, output)."""
    progress = Progress.install()
    cmd = [str(c) for c in cmd]
    lines = []
    with progress.step(step or cmd[0], detail):
        proc = subprocess.Popen(cmd, env=env, cwd=None if cwd is None else str(cwd), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, errors="replace")
        for line in proc.stdout:
            if echo:
                print(line, end="", flush=True)
            if on_line is not None:
                on_line(line)
            lines.append(line)
        proc.wait()
    return proc.returncode, "".join(lines)


def main(argv):
    if len(argv) < 3 or argv[1] != "--":
        raise SystemExit("usage: progress.py STEP -- COMMAND [ARG...]")
    return run(argv[2:], step=argv[0])[0]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
