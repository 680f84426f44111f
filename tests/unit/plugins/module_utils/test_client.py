"""_client: option resolution (K8S_AUTH_*), configuration precedence, the request seam, retries and errors."""
import base64
import json
import socket
import ssl

import pytest
import urllib3

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _client
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._errors import ApiError, ConfigError, TransportError

from ..kube_fakes import FakePool, make_client, response, status_body


def kubeconfig_dict(server='https://k8s.example:6443', token='abc', contexts=('dev',), current='dev', insecure=False):
    cluster = {'server': server}
    if insecure:
        cluster['insecure-skip-tls-verify'] = True
    return {
        'apiVersion': 'v1', 'kind': 'Config', 'current-context': current,
        'clusters': [{'name': 'c', 'cluster': cluster}],
        'users': [{'name': 'u', 'user': {'token': token}}],
        'contexts': [{'name': n, 'context': {'cluster': 'c', 'user': 'u', 'namespace': 'default'}} for n in contexts],
    }


@pytest.fixture
def kubeconfig_file(tmp_path):
    import yaml
    path = tmp_path / 'config'
    data = kubeconfig_dict(contexts=('dev', 'prod'))
    path.write_text(yaml.safe_dump(data))
    return path


# ----------------------------------------------------------------------------------- resolve_auth

@pytest.mark.parametrize('env, option, expected', [
    ({'K8S_AUTH_HOST': 'https://h'}, 'host', 'https://h'),
    ({'K8S_AUTH_API_KEY': 'tok'}, 'api_key', 'tok'),
    ({'K8S_AUTH_KUBECONFIG': '/k'}, 'kubeconfig', '/k'),
    ({'K8S_AUTH_CONTEXT': 'ctx'}, 'context', 'ctx'),
    ({'K8S_AUTH_USERNAME': 'u'}, 'username', 'u'),
    ({'K8S_AUTH_PASSWORD': 'p'}, 'password', 'p'),
    ({'K8S_AUTH_VERIFY_SSL': 'false'}, 'validate_certs', False),
    ({'K8S_AUTH_VALIDATE_CERTS': 'no'}, 'validate_certs', False),
    ({'K8S_AUTH_VERIFY_SSL': 'True'}, 'validate_certs', True),
    ({'K8S_AUTH_SSL_CA_CERT': '/ca'}, 'ca_cert', '/ca'),
    ({'K8S_AUTH_CA_CERT': '/ca2'}, 'ca_cert', '/ca2'),
    ({'K8S_AUTH_CERT_FILE': '/c'}, 'client_cert', '/c'),
    ({'K8S_AUTH_CLIENT_CERT': '/c2'}, 'client_cert', '/c2'),
    ({'K8S_AUTH_KEY_FILE': '/k'}, 'client_key', '/k'),
    ({'K8S_AUTH_PROXY': 'http://p:3128'}, 'proxy', 'http://p:3128'),
    ({'K8S_AUTH_NO_PROXY': 'a,b'}, 'no_proxy', 'a,b'),
    ({'K8S_AUTH_PERSIST_CONFIG': '1'}, 'persist_config', True),
    ({'K8S_AUTH_IMPERSONATE_USER': 'bob'}, 'impersonate_user', 'bob'),
    ({'K8S_AUTH_IMPERSONATE_GROUPS': 'g1, g2'}, 'impersonate_groups', ['g1', 'g2']),
    ({'K8S_AUTH_PROXY_HEADERS_USER_AGENT': 'ua/1'}, 'proxy_headers', {'user_agent': 'ua/1'}),
    ({'K8S_AUTH_PROXY_HEADERS_PROXY_BASIC_AUTH': 'a:b'}, 'proxy_headers', {'proxy_basic_auth': 'a:b'}),
])
def test_resolve_auth_reads_kubernetes_core_env_names(env, option, expected):
    assert _client.resolve_auth({}, env)[option] == expected


def test_resolve_auth_option_beats_env():
    auth = _client.resolve_auth({'host': 'https://opt', 'validate_certs': True},
                                {'K8S_AUTH_HOST': 'https://env', 'K8S_AUTH_VERIFY_SSL': 'false'})
    assert auth['host'] == 'https://opt'
    assert auth['validate_certs'] is True


def test_resolve_auth_unset_stays_none():
    auth = _client.resolve_auth({}, {})
    assert all(auth[k] is None for k in _client.AUTH_OPTIONS)


# ------------------------------------------------------------------------------ build_configuration

def test_host_and_token_need_no_kubeconfig(tmp_path):
    cfg = _client.build_configuration(_client.resolve_auth({'host': 'https://h:6443/', 'api_key': 'tok'}, {}),
                                      {'HOME': str(tmp_path)})
    assert cfg.host == 'https://h:6443'
    assert cfg.auth_settings()['BearerToken']['value'] == 'Bearer tok'


def test_kubeconfig_file_and_context(kubeconfig_file):
    cfg = _client.build_configuration(_client.resolve_auth({'kubeconfig': str(kubeconfig_file), 'context': 'prod'}, {}), {})
    assert cfg.host == 'https://k8s.example:6443'
    assert cfg.verify_ssl is True
    assert cfg.auth_settings()['BearerToken']['value'] == 'Bearer abc'


def test_kubeconfig_as_dict_and_overrides():
    auth = _client.resolve_auth({'kubeconfig': kubeconfig_dict(insecure=True), 'host': 'https://other:1',
                                 'api_key': 'override', 'validate_certs': True}, {})
    cfg = _client.build_configuration(auth, {})
    assert cfg.host == 'https://other:1'
    assert cfg.verify_ssl is True
    assert cfg.auth_settings()['BearerToken']['value'] == 'Bearer override'


def test_kubeconfig_insecure_skip_is_kept_when_validate_certs_unset():
    cfg = _client.build_configuration(_client.resolve_auth({'kubeconfig': kubeconfig_dict(insecure=True)}, {}), {})
    assert cfg.verify_ssl is False


def test_kubeconfig_from_env_var(kubeconfig_file):
    env = {'K8S_AUTH_KUBECONFIG': str(kubeconfig_file), 'K8S_AUTH_CONTEXT': 'dev'}
    client = _client.client_from_options({}, env, pool=FakePool())
    assert client.host == 'https://k8s.example:6443'


@pytest.mark.parametrize('options, fragments', [
    ({'kubeconfig': '/nonexistent/kubeconfig'}, ['/nonexistent/kubeconfig does not exist', 'kubeconfig']),
    ({'kubeconfig': 'KCFG', 'context': 'staging'}, ['"staging" is not in', 'dev, prod', 'set context']),
    ({'kubeconfig': kubeconfig_dict(), 'context': 'nope'}, ['"nope" is not in the kubeconfig given as a dict', 'context']),
    ({'kubeconfig': kubeconfig_dict(current=None)}, ['no current-context', 'set context']),
    ({'host': 'https://h', 'api_key': 't', 'ca_cert': '/missing/ca.pem'}, ['/missing/ca.pem given as ca_cert does not exist']),
])
def test_config_errors_name_the_option(options, fragments, kubeconfig_file):
    if options.get('kubeconfig') == 'KCFG':
        options = dict(options, kubeconfig=str(kubeconfig_file))
    with pytest.raises(ConfigError) as err:
        _client.build_configuration(_client.resolve_auth(options, {}), {})
    for fragment in fragments:
        assert fragment in err.value.msg
    assert '\n' not in err.value.msg


def test_no_configuration_at_all(tmp_path, monkeypatch):
    monkeypatch.delenv('KUBERNETES_SERVICE_HOST', raising=False)
    monkeypatch.setenv('HOME', str(tmp_path))
    with pytest.raises(ConfigError) as err:
        _client.build_configuration(_client.resolve_auth({}, {}), {})
    assert 'No Kubernetes connection is configured' in err.value.msg
    assert 'K8S_AUTH_KUBECONFIG' in err.value.msg


def test_in_cluster_service_account(tmp_path, monkeypatch):
    from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _kubeconfig as incluster
    token = tmp_path / 'token'
    token.write_text('sa-token')
    ca = tmp_path / 'ca.crt'
    ca.write_text('x')
    monkeypatch.setenv('KUBERNETES_SERVICE_HOST', '10.0.0.1')
    monkeypatch.setenv('KUBERNETES_SERVICE_PORT', '443')
    monkeypatch.setattr(incluster, 'SERVICE_TOKEN_FILENAME', str(token))
    monkeypatch.setattr(incluster, 'SERVICE_CERT_FILENAME', str(ca))
    cfg = _client.build_configuration(_client.resolve_auth({}, {}), {})
    assert cfg.host == 'https://10.0.0.1:443'
    assert cfg.auth_settings()['BearerToken']['value'].lower() == 'bearer sa-token'


# ------------------------------------------------------------------------------------- requests

def test_get_counts_one_request_and_sends_auth():
    pool = FakePool().on('GET', '/api/v1/namespaces/x', (200, {'kind': 'Namespace'}))
    client = make_client(pool)
    assert client.request('GET', '/api/v1/namespaces/x') == {'kind': 'Namespace'}
    assert client.request_count == 1
    assert client.request_log == [['GET', '/api/v1/namespaces/x', 200]]
    assert pool.requests[0].headers['authorization'] == 'Bearer t0ken'
    assert pool.requests[0].headers['Accept'] == 'application/json'


def test_query_and_body_are_encoded():
    pool = FakePool().on('POST', '/apis/g/v1/namespaces/n/things', (201, {'ok': 1}))
    client = make_client(pool)
    client.request('POST', '/apis/g/v1/namespaces/n/things', query={'dryRun': 'All', 'fieldManager': None},
                   body={'a': 1})
    req = pool.requests[0]
    assert req.query == {'dryRun': 'All'}
    assert req.body == {'a': 1}
    assert req.headers['Content-Type'] == 'application/json'


def test_impersonation_and_basic_auth_headers():
    pool = FakePool().on('GET', '/x', (200, {}))
    client = make_client(pool, token=None)
    client.configuration.username, client.configuration.password = 'u', 'p'
    client.impersonate_user = 'alice'
    client.impersonate_groups = ['g1', 'g2']
    client.request('GET', '/x')
    headers = pool.requests[0].headers
    assert headers['authorization'] == 'Basic ' + base64.b64encode(b'u:p').decode()
    assert headers['Impersonate-User'] == 'alice'
    assert list(headers.getlist('Impersonate-Group')) == ['g1', 'g2']


@pytest.mark.parametrize('method, status, attempts, expect_error', [
    ('GET', 503, 2, False),         # idempotent: retried
    ('GET', 429, 2, False),
    ('POST', 429, 2, False),        # 429: the server did nothing, so even a create is retried
    ('POST', 500, 1, True),         # never retry a non-idempotent call blindly
    ('PATCH', 502, 1, True),
    ('GET', 400, 1, True),          # client errors are final
])
def test_retry_policy(method, status, attempts, expect_error):
    pool = FakePool().on(method, '/r', (status, {'kind': 'Status', 'message': 'boom'}), (200, {'ok': True}))
    client = make_client(pool)
    if expect_error:
        with pytest.raises(ApiError) as err:
            client.request(method, '/r')
        assert err.value.status == status
    else:
        assert client.request(method, '/r') == {'ok': True}
    assert client.request_count == attempts


def test_retries_are_capped_and_back_off_with_jitter():
    pool = FakePool().on('GET', '/r', (500, {}))
    client = make_client(pool)
    with pytest.raises(ApiError) as err:
        client.request('GET', '/r')
    assert client.request_count == client.retry.attempts == 6
    assert client.slept == [0.1, 0.2, 0.4, 0.8, 1.5]   # rand 0.5 * min(cap 3, base 0.2 * 2^n)
    assert 'retries did not help' in err.value.msg and 'gave up after 6 attempts' in err.value.msg
    assert client.retries == 5 and client.retry_reasons == {'500': 5}


def test_retry_after_header_is_honoured():
    pool = FakePool().on('GET', '/r', (429, {}, {'Retry-After': '2'}), (200, {}))
    client = make_client(pool)
    client.request('GET', '/r')
    assert client.slept == [2.0]


def test_connection_reset_retried_on_get():
    reset = urllib3.exceptions.ProtocolError('Connection aborted.', ConnectionResetError(104, 'Connection reset by peer'))
    pool = FakePool().on('GET', '/r', reset, (200, {'ok': 1}))
    client = make_client(pool)
    assert client.request('GET', '/r') == {'ok': 1}
    assert client.request_count == 2


def test_connection_refused_names_host():
    err = urllib3.exceptions.NewConnectionError(None, 'Failed to establish a new connection: [Errno 111] Connection refused')
    client = make_client(FakePool().on('GET', '/r', err))
    with pytest.raises(TransportError) as exc:
        client.request('GET', '/r')
    assert 'https://api.test:6443' in exc.value.msg
    assert 'connection refused' in exc.value.msg
    assert 'host' in exc.value.msg


def test_tls_verification_failure_says_ca_cert_or_validate_certs():
    cause = ssl.SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate')
    client = make_client(FakePool().on('GET', '/r', urllib3.exceptions.SSLError(cause)))
    with pytest.raises(TransportError) as exc:
        client.request('GET', '/r')
    assert 'ca_cert' in exc.value.msg and 'validate_certs=false' in exc.value.msg
    assert client.request_count == 1   # a TLS failure is not retried


@pytest.mark.parametrize('status, fragments', [
    (401, ['rejected the credentials', 'api_key', 'kubeconfig']),
    (403, ['may not get', 'namespace "secret-ns"', 'RBAC']),
])
def test_auth_errors_are_sentences(status, fragments):
    body = status_body(status, 'Forbidden', 'virtualmachines.kubevirt.io "x" is forbidden')
    client = make_client(FakePool().on('GET', '/r', (status, body)))
    with pytest.raises(ApiError) as exc:
        client.request('GET', '/r', what='VirtualMachine secret-ns/x', namespace='secret-ns', verb='get')
    for fragment in fragments:
        assert fragment in exc.value.msg
    assert client.request_count == 1


def test_non_json_answer_is_reported():
    client = make_client(FakePool().on('GET', '/r', response(200, raw=b'<html>')))
    with pytest.raises(ApiError) as exc:
        client.request('GET', '/r')
    assert 'not JSON' in exc.value.msg


@pytest.mark.parametrize('host, no_proxy, bypass', [
    ('https://10.1.2.3:6443', '10.0.0.0/8', True),
    ('https://api.corp.example:6443', '.example', True),
    ('https://api.corp.example:6443', 'corp.example', True),
    ('https://api.other:6443', 'example,localhost', False),
    ('https://api.other:6443', '', False),
])
def test_no_proxy(host, no_proxy, bypass):
    assert _client._bypass_proxy(host, no_proxy) is bypass


def test_real_pool_uses_proxy_from_option_only(monkeypatch):
    monkeypatch.setenv('HTTPS_PROXY', 'http://env-proxy:3128')
    auth = _client.resolve_auth({'host': 'https://h:6443', 'api_key': 't', 'proxy': 'http://proxy:3128'}, {})
    client = _client.Client(_client.build_configuration(auth, {}))
    assert isinstance(client.pool, urllib3.ProxyManager)
    auth = _client.resolve_auth({'host': 'https://h:6443', 'api_key': 't'}, {})
    client = _client.Client(_client.build_configuration(auth, {}))
    assert not isinstance(client.pool, urllib3.ProxyManager)


def test_real_socket_connection_refused():
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()
    auth = _client.resolve_auth({'host': 'https://127.0.0.1:%d' % port, 'api_key': 't'}, {})
    client = _client.Client(_client.build_configuration(auth, {}),
                            retry=_client.RetryPolicy(sleep=lambda s: None))
    with pytest.raises(TransportError) as exc:
        client.request('GET', '/version')
    assert 'connection refused' in exc.value.msg
    assert '127.0.0.1:%d' % port in exc.value.msg
    assert client.request_count == client.retry.attempts
    json.dumps(exc.value.result)


def test_kubeconfig_path_with_tilde(tmp_path, monkeypatch, kubeconfig_file):
    monkeypatch.setenv('HOME', str(kubeconfig_file.parent))
    cfg = _client.build_configuration(_client.resolve_auth({'kubeconfig': '~/config', 'context': 'dev'}, {}), {})
    assert cfg.host == 'https://k8s.example:6443'


def test_kubeconfig_path_list(tmp_path, kubeconfig_file):
    paths = '%s:%s' % (tmp_path / 'absent', kubeconfig_file)
    cfg = _client.build_configuration(_client.resolve_auth({'kubeconfig': paths, 'context': 'prod'}, {}), {})
    assert cfg.host == 'https://k8s.example:6443'


def test_headers_on_the_wire_with_a_real_pool():
    """Through urllib3 to a local HTTP server: auth, impersonation (one header per group), user agent."""
    import http.server
    import threading

    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server naming
            seen.append(self.headers)
            body = b'{"kind": "Status", "status": "Success"}'
            self.send_response(200)
            self.send_header('Content-Type', 'application/json')
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(('127.0.0.1', 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = _client.client_from_options({'host': 'http://127.0.0.1:%d' % server.server_port, 'api_key': 'tok',
                                              'impersonate_user': 'alice', 'impersonate_groups': ['g1', 'g2']}, {})
        assert client.request('GET', '/version') == {'kind': 'Status', 'status': 'Success'}
    finally:
        server.shutdown()
        server.server_close()
    headers = seen[0]
    assert headers['Authorization'] == 'Bearer tok'
    assert headers['Impersonate-User'] == 'alice'
    assert headers.get_all('Impersonate-Group') == ['g1', 'g2']
    assert headers['User-Agent'].startswith('virtfleet.kubevirt/')
