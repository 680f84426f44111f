"""Fakes at the HTTP seam (the urllib3 pool of ``_client.Client``) shared by the client-layer unit tests.

Responses are real ``urllib3.HTTPResponse`` objects over in-memory bodies, so the code under test reads them
exactly as it reads the network.
"""
import io
import json
from urllib.parse import parse_qs, urlsplit

import urllib3

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _client


class Config:
    """The few ``kubernetes.client.Configuration`` attributes the Client reads."""

    def __init__(self, host='https://api.test:6443', token='t0ken'):
        self.host = host
        self.api_key = {'authorization': 'Bearer %s' % token} if token else {}
        self.username = None
        self.password = None
        self.verify_ssl = True
        self.ssl_ca_cert = None
        self.cert_file = None
        self.key_file = None
        self.assert_hostname = None
        self.proxy = None
        self.no_proxy = None
        self.proxy_headers = None

    def auth_settings(self):
        if not self.api_key:
            return {}
        return {'BearerToken': {'in': 'header', 'key': 'authorization', 'value': self.api_key['authorization']}}


def response(status=200, body=None, headers=None, raw=None):
    if raw is None:
        raw = json.dumps(body).encode() if body is not None else b''
    return urllib3.HTTPResponse(body=io.BytesIO(raw), status=status, headers=headers or {'Content-Type': 'application/json'},
                                preload_content=False)


def status_body(code, reason, message, name=None, kind=None):
    details = {'name': name, 'kind': kind} if name else {}
    return {'kind': 'Status', 'apiVersion': 'v1', 'status': 'Failure', 'code': code, 'reason': reason,
            'message': message, 'details': details}


def watch_body(events):
    return b''.join(json.dumps({'type': t, 'object': o}).encode() + b'\n' for t, o in events)


class Request:
    def __init__(self, method, url, body, headers, timeout):
        split = urlsplit(url)
        self.method = method
        self.url = url
        self.path = split.path
        self.query = dict((k, v[0]) for k, v in parse_qs(split.query).items())
        self.body = json.loads(body) if body else None
        self.headers = headers
        self.timeout = timeout


class FakePool:
    """Answers ``request`` (urllib3's PoolManager.request) from a queue of handlers per (method, path); unmatched requests get 404 page-not-found.

    A handler is a response, an exception instance (raised, like a refused connection), or a callable taking
    the Request and returning either.
    """

    def __init__(self):
        self.routes = {}
        self.requests = []

    def on(self, method, path, *handlers):
        self.routes.setdefault((method, path), []).extend(handlers)
        return self

    def request(self, method, url, body=None, headers=None, timeout=None, **kwargs):
        assert kwargs.get('retries') is False, 'the client must own retries'
        req = Request(method, url, body, headers, timeout)
        self.requests.append(req)
        queue = self.routes.get((method, req.path))
        if not queue:
            return response(404, raw=b'404 page not found', headers={'Content-Type': 'text/plain'})
        handler = queue.pop(0) if len(queue) > 1 else queue[0]
        if callable(handler) and not isinstance(handler, urllib3.HTTPResponse):
            handler = handler(req)
        if isinstance(handler, BaseException):
            raise handler
        if isinstance(handler, tuple):
            handler = response(*handler)
        # A fresh body each time the same handler answers again.
        if isinstance(handler, dict):
            handler = response(200, handler)
        return handler


class NoSleep:
    def __init__(self):
        self.calls = []

    def __call__(self, seconds):
        self.calls.append(seconds)


def make_client(pool=None, **kwargs):
    sleep = NoSleep()
    client = _client.Client(Config(**kwargs), pool=pool or FakePool(),
                            retry=_client.RetryPolicy(sleep=sleep, rand=lambda: 0.5))
    client.slept = sleep.calls
    return client
