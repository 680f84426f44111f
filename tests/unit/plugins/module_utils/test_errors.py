import ssl

import pytest
import urllib3

from ansible_collections.virtfleet.kubevirt.plugins.module_utils._errors import (
    describe_http_error,
    describe_transport_error,
    parse_status,
)

HOST = 'https://api.example:6443'


@pytest.mark.parametrize('status, kwargs, fragments', [
    (401, {}, ['rejected the credentials', 'api_key', 'kubeconfig']),
    (403, {'verb': 'list', 'resource': 'VirtualMachines', 'namespace': 'prod'},
     ['may not list VirtualMachines in namespace "prod"', 'RBAC']),
    (403, {'verb': 'list', 'resource': 'VirtualMachines'}, ['all namespaces (cluster scope)']),
    (404, {'resource': 'VirtualMachine ns/x'}, ['VirtualMachine ns/x was not found']),
    (409, {'resource': 'VirtualMachine ns/x'}, ['Conflict']),
    (422, {'resource': 'VirtualMachine ns/x'}, ['rejected VirtualMachine ns/x as invalid', 'spec.x: bad']),
    (429, {}, ['throttling']),
    (503, {}, ['failed on GET /p (503)', 'retries did not help']),
])
def test_http_errors(status, kwargs, fragments):
    body = b'{"kind": "Status", "message": "spec.x: bad"}'
    msg = describe_http_error(status, body, 'GET', '/p', host=HOST, **kwargs)
    for fragment in fragments:
        assert fragment in msg
    assert msg.endswith('.') or msg.endswith('bad')


def _ssl_error(text):
    return urllib3.exceptions.MaxRetryError(None, '/', urllib3.exceptions.SSLError(ssl.SSLCertVerificationError(1, text)))


@pytest.mark.parametrize('exc, fragments, retryable', [
    (_ssl_error('[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate in certificate chain'),
     ['TLS verification', 'self-signed certificate in certificate chain', 'ca_cert', 'validate_certs=false'], False),
    (urllib3.exceptions.NewConnectionError(None, 'Failed to establish a new connection: [Errno 111] Connection refused'),
     ['connection refused', HOST, 'host'], True),
    (urllib3.exceptions.NewConnectionError(None, 'Failed to resolve: [Errno -2] Name or service not known'),
     ['Cannot resolve', 'host'], False),
    (urllib3.exceptions.ConnectTimeoutError(None, 'Connection timed out'), ['did not answer in time'], True),
    (urllib3.exceptions.ProtocolError('Connection aborted.', ConnectionResetError(104, 'Connection reset by peer')),
     ['dropped'], True),
    (urllib3.exceptions.SSLError('[SSL: WRONG_VERSION_NUMBER] wrong version number'), ['does not speak HTTPS'], False),
])
def test_transport_errors(exc, fragments, retryable):
    msg, is_retryable = describe_transport_error(exc, HOST)
    for fragment in fragments:
        assert fragment in msg
    assert is_retryable is retryable


@pytest.mark.parametrize('raw, ok', [(b'{"kind": "Status"}', True), (b'404 page not found', False), (None, False),
                                     (b'{"kind": "Pod"}', False)])
def test_parse_status(raw, ok):
    assert (parse_status(raw) is not None) is ok
