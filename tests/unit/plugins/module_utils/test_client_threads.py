"""The client's counters stay exact when threads share one Client (the inventory lists kinds in parallel)."""
import sys
import threading

from ..kube_fakes import FakePool, make_client, status_body

THREADS = 8
CALLS = 300


def test_counters_are_exact_across_threads():
    # Every call is answered 503 first, then 200: one retry per call, per thread (thread-local, so the
    # interleaving of threads does not change how many retries each call needs).
    state = threading.local()

    def flaky(req):
        state.failed = not getattr(state, 'failed', False)
        if state.failed:
            return 503, status_body(503, 'ServiceUnavailable', 'try again')
        return 200, {'kind': 'Status'}

    client = make_client(FakePool().on('GET', '/apis/x', flaky))
    start = threading.Barrier(THREADS)
    errors = []

    def worker():
        start.wait()
        try:
            for _call in range(CALLS):
                client.request('GET', '/apis/x')
        except Exception as exc:  # pragma: no cover - reported by the assert below
            errors.append(exc)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)   # switch threads as often as possible, so lost updates would show
    try:
        threads = [threading.Thread(target=worker) for _thread in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)

    assert errors == []
    calls = THREADS * CALLS
    assert client.request_count == 2 * calls
    assert len(client.request_log) == 2 * calls
    assert client.retries == calls
    assert client.retry_reasons == {'503': calls}
