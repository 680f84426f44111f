# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Errors of the client layer and their translation into one human sentence.

Everything below module_utils raises ``KubeVirtError`` (or a subclass); modules and the inventory plugin
translate it once, at the edge, into ``fail_json`` / ``AnsibleError``. Messages name the cause and the option
that fixes it, because the user reads them in a playbook run, not in a traceback.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json


class KubeVirtError(Exception):
    """An error for the user: ``msg`` is the sentence, ``result`` extra keys for the task result."""

    def __init__(self, msg, **result):
        super(KubeVirtError, self).__init__(msg)
        self.msg = msg
        self.result = result


class ConfigError(KubeVirtError):
    """Connection options are wrong or incomplete (raised before any request)."""


class ApiError(KubeVirtError):
    """The API server answered with a non-2xx status."""

    def __init__(self, msg, status, reason=None, body=None, method=None, path=None):
        super(ApiError, self).__init__(msg, status=status)
        self.status = status
        self.reason = reason
        self.body = body
        self.method = method
        self.path = path

    @property
    def not_found(self):
        return self.status == 404


class TransportError(KubeVirtError):
    """No HTTP answer: connection refused, TLS failure, timeout, reset."""

    def __init__(self, msg, cause=None, retryable=False):
        super(TransportError, self).__init__(msg)
        self.cause = cause
        self.retryable = retryable


class WaitTimeout(KubeVirtError):
    """A wait ran out of time; ``pending`` lists the unsatisfied objects and their states."""

    def __init__(self, msg, pending=None, resources=None):
        super(WaitTimeout, self).__init__(msg, pending=pending or [])
        self.pending = pending or []
        self.resources = resources or []


# HTTP verbs -> the Kubernetes RBAC verb names users see in Role rules.
_RBAC_VERBS = {'GET': 'get', 'POST': 'create', 'PUT': 'update', 'PATCH': 'patch', 'DELETE': 'delete'}


def parse_status(raw):
    """Return the decoded ``Status`` object of an error body, or None when it is not one."""
    if raw is None:
        return None
    if isinstance(raw, bytes):
        raw = raw.decode('utf-8', 'replace')
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if isinstance(data, dict) and data.get('kind') == 'Status':
        return data
    return None


# 5xx answers after which a write may or may not have been stored (504: "the server may still be processing").
UNCERTAIN_STATUSES = (500, 502, 503, 504)


def maybe_written(err):
    """True when a failed write may still have taken effect: a dropped connection or a 5xx answer."""
    if isinstance(err, TransportError):
        return err.retryable
    return isinstance(err, ApiError) and err.status in UNCERTAIN_STATUSES


def conflict_kind(err):
    """Classify a 409: ``exists`` (create of a taken name), ``field-manager`` (server-side apply without force
    touching fields another manager owns), ``precondition`` (a uid/resourceVersion precondition failed),
    ``modified`` (optimistic lock: the resourceVersion sent is stale) or None when ``err`` is not a 409.

    Only ``modified`` is cured by re-reading and writing again; the others need a decision by the user.
    """
    if not isinstance(err, ApiError) or err.status != 409:
        return None
    st = parse_status(err.body) or {}
    if st.get('reason') == 'AlreadyExists':
        return 'exists'
    causes = (st.get('details') or {}).get('causes') or []
    message = (st.get('message') or '').lower()
    if any((c.get('reason') or c.get('type')) == 'FieldManagerConflict' for c in causes if isinstance(c, dict)) \
            or message.startswith('apply failed with'):
        return 'field-manager'
    if 'precondition failed' in message:
        return 'precondition'
    return 'modified'


def _where(namespace):
    return 'namespace "%s"' % namespace if namespace else 'all namespaces (cluster scope)'


# kube-apiserver answers a server-side apply whose body does not fit the schema (an unknown field, a wrong type) with a
# 500 whose message starts so (an upstream bug: it is the request, not the server). Retrying cannot help.
_TYPED_PATCH = 'failed to create typed patch object'


def input_rejected(status, body):
    """True for an error answer that is about the request's content even though its status says server error."""
    return status == 500 and _TYPED_PATCH in ((parse_status(body) or {}).get('message') or '')


def describe_http_error(status, body, method, path, host=None, verb=None, resource=None, namespace=None):
    """Turn an HTTP error answer into one sentence that names the cause and the option to change."""
    st = parse_status(body)
    server_msg = (st or {}).get('message') or ''
    verb = verb or _RBAC_VERBS.get((method or '').upper(), (method or '').lower())
    what = resource or path
    if status == 401:
        return ('The API server %srejected the credentials (401 Unauthorized): check api_key, or the user of the '
                'kubeconfig context (kubeconfig / context), or refresh an expired token.' % ('at %s ' % host if host else ''))
    if status == 403:
        return ('Access denied (403 Forbidden): the credentials may not %s %s in %s%s; set namespace to one they may '
                'access, grant them that RBAC permission, or use other credentials (api_key / kubeconfig / context).'
                % (verb, what, _where(namespace), (' (server: %s)' % server_msg.rstrip('.')) if server_msg else ''))
    if status == 404:
        return '%s was not found (404)%s.' % (what, (': %s' % server_msg) if server_msg else '')
    if status == 409:
        return 'Conflict writing %s (409): %s' % (what, server_msg or 'the object changed or already exists.')
    if status == 422:
        return 'The API server rejected %s as invalid (422): %s' % (what, server_msg or 'no details given.')
    if status == 429:
        return 'The API server kept throttling requests (429 Too Many Requests) for %s; retry later.' % what
    if input_rejected(status, body):
        # "failed to create typed patch object (ns/name; group/v1, Kind=X): .spec.foo: field not declared in schema"
        detail = server_msg.split('): ', 1)[-1]
        return ('The API server rejected the server-side apply of %s: %s. Fix or remove that field in the declaration '
                '(kube-apiserver reports this as a 500).' % (what, detail.rstrip('.')))
    if status >= 500:
        return ('The API server failed on %s %s (%s)%s; retries did not help.'
                % (method, path, status, (': %s' % server_msg) if server_msg else ''))
    return 'The API server answered %s to %s %s%s.' % (status, method, path, (': %s' % server_msg) if server_msg else '')


def _chain(exc):
    """The exception plus what it wraps (urllib3 ``reason``, ``__cause__``, ``__context__``)."""
    seen = []
    todo = [exc]
    while todo:
        cur = todo.pop(0)
        if not isinstance(cur, BaseException) or any(cur is s for s in seen):
            continue
        seen.append(cur)
        todo.extend([getattr(cur, 'reason', None), cur.__cause__, cur.__context__])
    return seen


def describe_transport_error(exc, host):
    """Classify a urllib3/socket error: returns (sentence, retryable)."""
    import ssl  # local: only needed on the error path

    texts = ' '.join('%s: %s' % (type(e).__name__, e) for e in _chain(exc))
    lowered = texts.lower()
    if 'certificate verify failed' in lowered or 'certificateerror' in lowered or any(
            isinstance(e, ssl.SSLCertVerificationError) for e in _chain(exc)):
        return ('TLS verification of the API server %s failed (%s): set ca_cert to the CA that signed its certificate, '
                'or validate_certs=false to skip verification (insecure).' % (host, _short_ssl_reason(lowered)), False)
    if 'ssl' in lowered and ('wrong version number' in lowered or 'record layer' in lowered):
        return ('TLS handshake with %s failed: the server does not speak HTTPS on that port; check host '
                '(http:// vs https://) or the kubeconfig server URL.' % host, False)
    if 'connection refused' in lowered or 'errno 111' in lowered:
        return ('Cannot connect to the API server at %s (connection refused): check host / the kubeconfig server URL '
                'and that the API server is running.' % host, True)
    if 'name or service not known' in lowered or 'nodename nor servname' in lowered or 'getaddrinfo' in lowered \
            or 'temporary failure in name resolution' in lowered:
        return 'Cannot resolve the API server host %s: check host / the kubeconfig server URL.' % host, False
    if 'timed out' in lowered or 'timeout' in lowered:
        return ('The API server at %s did not answer in time: check host / proxy, network reachability and '
                'firewalls.' % host, True)
    if 'reset' in lowered or 'remotedisconnected' in lowered or 'protocolerror' in lowered or 'broken pipe' in lowered:
        return 'The connection to the API server at %s was dropped (%s); retries did not help.' % (host, texts), True
    if 'ssl' in lowered:
        return ('TLS error talking to the API server at %s (%s): check ca_cert, client_cert / client_key and '
                'validate_certs.' % (host, texts), False)
    return 'Cannot reach the API server at %s (%s): check host / the kubeconfig server URL and proxy.' % (host, texts), False


def _short_ssl_reason(lowered):
    for marker in ('self-signed certificate in certificate chain', 'self signed certificate in certificate chain',
                   'self-signed certificate', 'self signed certificate', 'unable to get local issuer certificate',
                   'certificate has expired', "hostname mismatch", "doesn't match", 'ip address mismatch'):
        if marker in lowered:
            return marker
    return 'certificate verify failed'
