"""Route builders for ``kube_fakes.FakePool``: collections that answer lists and watches, 403s, request summaries.

The code under test runs on the real ``_client.Client`` and ``_api.Api``; these only script what the API server
answers, so a test reads as "the server holds X / refuses Y" and asserts on ``pool.requests``.
"""
from .kube_fakes import response, status_body, watch_body


class Clock:
    """Fake monotonic time: call for now, ``sleep`` advances it."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def listing(items, rv='1', continue_token=None):
    """A list answer (``kind: List``) holding ``items`` at resourceVersion ``rv``."""
    meta = {'resourceVersion': str(rv)}
    if continue_token:
        meta['continue'] = continue_token
    return {'kind': 'List', 'apiVersion': 'v1', 'metadata': meta, 'items': list(items)}


def forbidden(kind, namespace=None, verb='list'):
    """The API server's 403 for ``verb`` on ``kind`` (cluster-wide when ``namespace`` is None)."""
    where = 'in the namespace "%s"' % namespace if namespace else 'at the cluster scope'
    message = ('%s is forbidden: User "system:serviceaccount:ci:reader" cannot %s resource "%s" in API group "%s" %s'
               % (kind.plural, verb, kind.plural, kind.group, where))
    return 403, status_body(403, 'Forbidden', message)


def failure(code=500, message='etcdserver: request timed out'):
    return code, status_body(code, 'InternalError', message)


def namespace_of(obj):
    return (obj.get('metadata') or {}).get('namespace')


def serve_lists(pool, kind, items, denied=(), namespaces=None, rv='1'):
    """GET lists of ``kind``: cluster-wide and per namespace (those of ``items``, or ``namespaces``).

    ``denied`` holds the namespaces whose list answers 403; None in it denies the cluster-wide list.
    A path not served answers 404 page-not-found (FakePool's default), as for a kind the server does not know.
    """
    scopes = [None]
    if kind.namespaced:
        scopes += sorted(set(namespaces or ()) | set(namespace_of(o) for o in items if namespace_of(o)))
    for namespace in scopes:
        path = kind.path(namespace)
        if namespace in denied:
            pool.on('GET', path, forbidden(kind, namespace))
        else:
            pool.on('GET', path, listing([o for o in items if namespace is None or namespace_of(o) == namespace], rv))
    return pool


class Collection(object):
    """GET handler of one collection path: list requests take ``lists`` in order, watch requests ``watches``.

    The last list answers again once the others are used up. A watch entry is a list of ``(type, object)``
    events (a 200 stream) or anything FakePool accepts (a response, ``(status, body)``, an exception). With a
    ``clock``, a stream with events advances it by ``step`` per event, and a stream without events (also every
    watch after the scripted ones) stays open until its ``timeoutSeconds``, as the API server does.
    """

    def __init__(self, lists, watches=(), clock=None, step=0.0):
        self.lists = list(lists)
        self.watches = list(watches)
        self.clock = clock
        self.step = step

    def __call__(self, req):
        if req.query.get('watch') != 'true':
            return response(200, self.lists.pop(0) if len(self.lists) > 1 else self.lists[0])
        entry = self.watches.pop(0) if self.watches else []
        if not isinstance(entry, list):
            return entry
        if self.clock is not None:
            self.clock.now += self.step * len(entry) if entry else float(req.query['timeoutSeconds'])
        return response(200, raw=watch_body(entry))


def expired(message='too old resource version: 1 (9)'):
    """A watch whose resourceVersion fell out of the watch cache: 200, then one ERROR event (410 Expired)."""
    return response(200, raw=watch_body([('ERROR', status_body(410, 'Expired', message))]))


def calls(pool, *keys):
    """``(method, path, query[k] for k in keys)`` of every request sent, in order."""
    return [(r.method, r.path) + tuple(r.query.get(k) for k in keys) for r in pool.requests]


def watches(pool):
    return [r for r in pool.requests if r.query.get('watch') == 'true']


def lists(pool):
    return [r for r in pool.requests if r.method == 'GET' and r.query.get('watch') != 'true']
