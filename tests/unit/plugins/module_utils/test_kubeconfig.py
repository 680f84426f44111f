# -*- coding: utf-8 -*-
"""_kubeconfig reads kubeconfigs as kubernetes.config does: the same kubeconfigs loaded by both give the same settings."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import os
import stat

import pytest
import yaml

import kubernetes.client
import kubernetes.config
from kubernetes.config.config_exception import ConfigException

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _client, _kubeconfig
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._errors import ConfigError
from tests.conftest import COLLECTIONS

CA = b'-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n'
CERT = b'-----BEGIN CERTIFICATE-----\nCLIENT\n-----END CERTIFICATE-----\n'
KEY = b'-----BEGIN PRIVATE KEY-----\nKEY\n-----END PRIVATE KEY-----\n'


def b64(data):
    return base64.b64encode(data).decode()


def config(clusters, users, contexts, current='ctx'):
    doc = {'apiVersion': 'v1', 'kind': 'Config',
           'clusters': [{'name': n, 'cluster': c} for n, c in clusters.items()],
           'users': [{'name': n, 'user': u} for n, u in users.items()],
           'contexts': [{'name': n, 'context': c} for n, c in contexts.items()]}
    if current:
        doc['current-context'] = current
    return doc


def simple(cluster, user):
    return config({'c': cluster}, {'u': user}, {'ctx': {'cluster': 'c', 'user': 'u'}})


def content(path):
    if path is None:
        return None
    with open(path, 'rb') as handle:
        return handle.read()


def summary(cfg):
    """What the client takes from a configuration, with file paths replaced by their contents."""
    auth = cfg.auth_settings().get('BearerToken', {}).get('value')
    return {'host': cfg.host, 'auth': auth, 'ca': content(cfg.ssl_ca_cert), 'cert': content(cfg.cert_file),
            'key': content(cfg.key_file), 'verify_ssl': cfg.verify_ssl, 'tls_server_name': cfg.tls_server_name,
            'proxy': cfg.proxy}


def load_both(kubeconfig, context=None):
    """(ours, kubernetes.config's) summaries for a path list string or a dict."""
    ref = kubernetes.client.Configuration()
    if isinstance(kubeconfig, dict):
        kubernetes.config.load_kube_config_from_dict(config_dict=kubeconfig, context=context, client_configuration=ref,
                                                     persist_config=False)
    else:
        kubernetes.config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=ref,
                                           persist_config=False)
    ours = _kubeconfig.load(_client._read_documents(kubeconfig), context)
    assert ours is not None, 'a plain kubeconfig must not need the kubernetes package'
    return summary(ours), summary(ref)


def write(path, doc):
    path.write_text(yaml.safe_dump(doc))
    return str(path)


@pytest.fixture
def files(tmp_path):
    certs = tmp_path / 'certs'
    certs.mkdir()
    (certs / 'ca.crt').write_bytes(CA)
    (certs / 'client.crt').write_bytes(CERT)
    (certs / 'client.key').write_bytes(KEY)
    (certs / 'token').write_text('file-token')
    return tmp_path


CASES = {
    'token and CA data': simple({'server': 'https://api.example:6443/', 'certificate-authority-data': b64(CA)},
                                {'token': 'abc'}),
    'client certificate data': simple({'server': 'https://api.example:6443', 'certificate-authority-data': b64(CA)},
                                      {'client-certificate-data': b64(CERT), 'client-key-data': b64(KEY)}),
    'relative files': simple({'server': 'https://api.example', 'certificate-authority': 'certs/ca.crt'},
                             {'client-certificate': 'certs/client.crt', 'client-key': 'certs/client.key'}),
    'token file': simple({'server': 'https://api.example', 'insecure-skip-tls-verify': True},
                         {'tokenFile': 'certs/token'}),
    'token beats token file': simple({'server': 'https://api.example', 'insecure-skip-tls-verify': True},
                                     {'token': 'inline', 'tokenFile': 'certs/token'}),
    'basic auth': simple({'server': 'https://api.example', 'insecure-skip-tls-verify': True},
                         {'username': 'admin', 'password': 's3cret'}),
    'empty token falls back to basic auth': simple({'server': 'https://api.example', 'insecure-skip-tls-verify': True},
                                                   {'token': '', 'username': 'admin', 'password': 'pw'}),
    'tls server name and proxy': simple({'server': 'https://10.0.0.1', 'certificate-authority-data': b64(CA),
                                         'tls-server-name': 'api.internal', 'proxy-url': 'http://proxy:3128'},
                                        {'token': 'abc'}),
    'plain http ignores certificates': simple({'server': 'http://127.0.0.1:8080', 'certificate-authority': 'missing.crt'},
                                              {'client-certificate': 'missing.crt', 'token': 'abc'}),
    'data wins over file': simple({'server': 'https://api.example', 'certificate-authority-data': b64(CA),
                                   'certificate-authority': 'missing.crt'}, {'token': 'abc'}),
    'token and exec: the token wins': simple({'server': 'https://api.example', 'insecure-skip-tls-verify': True},
                                             {'token': 'abc', 'exec': {'command': 'false', 'apiVersion': 'x'}}),
    'user missing from users': config({'c': {'server': 'https://api.example', 'insecure-skip-tls-verify': True}},
                                      {'other': {'token': 'x'}}, {'ctx': {'cluster': 'c', 'user': 'nobody'}}),
}


@pytest.mark.parametrize('case', sorted(CASES))
def test_same_settings_as_kubernetes_config(case, files, monkeypatch):
    path = write(files / 'config', CASES[case])
    ours, ref = load_both(path)
    assert ours == ref
    monkeypatch.chdir(files)  # a dict has no file: relative paths are relative to the working directory
    ours, ref = load_both(CASES[case])
    assert ours == ref


def test_merged_files_and_paths_relative_to_each_file(files):
    second = files / 'second'
    second.mkdir()
    (second / 'ca.crt').write_bytes(b'second CA\n')
    first = write(files / 'first.yaml', config(
        {'shared': {'server': 'https://first', 'certificate-authority': 'certs/ca.crt'}},
        {'shared-user': {'token': 'first-token'}},
        {'first-ctx': {'cluster': 'shared', 'user': 'shared-user'}}, current='first-ctx'))
    other = write(second / 'config', config(
        {'shared': {'server': 'https://ignored'}, 'own': {'server': 'https://second', 'certificate-authority': 'ca.crt'}},
        {'shared-user': {'token': 'ignored'},
         'own-user': {'client-certificate': '../certs/client.crt', 'client-key': '../certs/client.key'}},
        {'second-ctx': {'cluster': 'own', 'user': 'own-user'}, 'mixed': {'cluster': 'shared', 'user': 'shared-user'}},
        current='second-ctx'))
    paths = os.pathsep.join([first, str(files / 'absent.yaml'), other])
    for context in (None, 'first-ctx', 'second-ctx', 'mixed'):
        ours, ref = load_both(paths, context)
        assert ours == ref, context
    ours, _ref = load_both(paths)  # current-context comes from the last file that sets it
    assert ours['host'] == 'https://second' and ours['ca'] == b'second CA\n'
    ours, _ref = load_both(paths, 'mixed')  # the first file's entry of a name wins
    assert ours['host'] == 'https://first' and ours['auth'] == 'Bearer first-token'


def test_token_file_whitespace_is_dropped(files):
    (files / 'certs' / 'token').write_text('file-token\n')
    path = write(files / 'config', CASES['token file'])
    ours = _kubeconfig.load(_client._read_documents(path))
    assert ours.auth_settings()['BearerToken']['value'] == 'Bearer file-token'


def test_data_files_are_private_and_reused(files):
    path = write(files / 'config', CASES['client certificate data'])
    first = _kubeconfig.load(_client._read_documents(path))
    second = _kubeconfig.load(_client._read_documents(path))
    assert first.key_file == second.key_file
    assert stat.S_IMODE(os.stat(first.key_file).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(first.key_file)).st_mode) == 0o700


@pytest.mark.parametrize('user', [
    {'exec': {'apiVersion': 'client.authentication.k8s.io/v1', 'command': 'get-token'}},
    {'token': '', 'exec': {'apiVersion': 'client.authentication.k8s.io/v1', 'command': 'get-token'}},
    {'auth-provider': {'name': 'oidc', 'config': {'id-token': 'x'}}, 'token': 'ignored'},
])
def test_plugins_are_left_to_kubernetes_config(user, files, monkeypatch):
    doc = simple({'server': 'https://api.example', 'insecure-skip-tls-verify': True}, user)
    assert _kubeconfig.load([(None, doc)]) is None
    # build_configuration then hands the file to kubernetes.config (stubbed: no exec plugin runs here)
    calls = []

    def fake_load(config_file, context, client_configuration, persist_config):
        calls.append((config_file, context, persist_config))
        client_configuration.host = 'https://from-kubernetes-config'
    monkeypatch.setattr(kubernetes.config, 'load_kube_config', fake_load)
    path = write(files / 'config', doc)
    cfg = _client.build_configuration(_client.resolve_auth({'kubeconfig': path, 'persist_config': True}, {}), {})
    assert isinstance(cfg, kubernetes.client.Configuration)
    assert cfg.host == 'https://from-kubernetes-config'
    assert calls == [(path, None, True)]


@pytest.mark.parametrize('doc, fragment', [
    (config({'c': {'server': 'https://a'}}, {}, {'ctx': {'cluster': 'nope'}}), 'no entry named nope in clusters'),
    (simple({'server': 'https://a', 'certificate-authority': 'missing.crt'}, {'token': 't'}), 'File does not exist'),
    (simple({'server': 'https://a'}, {'tokenFile': 'missing-token'}), 'tokenFile'),
])
def test_broken_kubeconfigs_fail_in_both(doc, fragment, files):
    path = write(files / 'config', doc)
    with pytest.raises((ConfigException, IOError, OSError, ValueError)):
        kubernetes.config.load_kube_config(config_file=path, client_configuration=kubernetes.client.Configuration(),
                                           persist_config=False)
    with pytest.raises(ConfigError) as err:
        _client.build_configuration(_client.resolve_auth({'kubeconfig': path}, {}), {})
    assert fragment in err.value.msg
    assert 'kubeconfig' in err.value.msg


def test_bad_base64_is_named(files):
    """kubernetes.config dropped the bad characters and failed later in TLS; we name the field."""
    path = write(files / 'config', simple({'server': 'https://a', 'certificate-authority-data': 'not base64!'},
                                          {'token': 't'}))
    with pytest.raises(ConfigError) as err:
        _client.build_configuration(_client.resolve_auth({'kubeconfig': path}, {}), {})
    assert 'clusters[c].cluster.certificate-authority-data is not valid base64' in err.value.msg
    wrapped = simple({'server': 'https://a', 'certificate-authority-data': b64(CA)[:20] + '\n' + b64(CA)[20:]},
                     {'token': 't'})
    assert content(_kubeconfig.load([(None, wrapped)]).ssl_ca_cert) == CA


def test_in_cluster_token_is_re_read_after_a_minute(tmp_path, monkeypatch):
    token = tmp_path / 'token'
    token.write_text('first')
    ca = tmp_path / 'ca.crt'
    ca.write_bytes(CA)
    monkeypatch.setattr(_kubeconfig, 'SERVICE_TOKEN_FILENAME', str(token))
    monkeypatch.setattr(_kubeconfig, 'SERVICE_CERT_FILENAME', str(ca))
    clock = [1000.0]
    monkeypatch.setattr(_kubeconfig.time, 'monotonic', lambda: clock[0])
    cfg = _kubeconfig.load_incluster({'KUBERNETES_SERVICE_HOST': 'fd00::1', 'KUBERNETES_SERVICE_PORT': '443'})
    assert cfg.host == 'https://[fd00::1]:443'
    assert cfg.auth_settings()['BearerToken']['value'] == 'bearer first'
    token.write_text('rotated')
    clock[0] += 30
    assert cfg.auth_settings()['BearerToken']['value'] == 'bearer first'
    clock[0] += 31
    assert cfg.auth_settings()['BearerToken']['value'] == 'bearer rotated'


def test_plain_kubeconfig_does_not_import_kubernetes(files):
    """The point of _kubeconfig: a module run with a token kubeconfig never imports the kubernetes package."""
    import subprocess
    import sys
    path = write(files / 'config', CASES['token and CA data'])
    code = ("import sys\n"
            "from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _client\n"
            "cfg = _client.build_configuration(_client.resolve_auth({'kubeconfig': %r}, {}), {})\n"
            "assert cfg.host == 'https://api.example:6443', cfg.host\n"
            "print(sorted(m for m in sys.modules if m == 'kubernetes' or m.startswith('kubernetes.')))\n" % path)
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=str(COLLECTIONS)))
    assert out.stdout.strip() == '[]'


def test_kubernetes_config_errors_get_the_same_sentence(files, monkeypatch):
    """A broken exec/auth-provider kubeconfig fails in kubernetes.config; the message names the file and the fix."""
    def fake_load(**_kwargs):
        raise ConfigException('Invalid kube-config file. Expected key exec in users[u].user')
    monkeypatch.setattr(kubernetes.config, 'load_kube_config', fake_load)
    doc = simple({'server': 'https://api.example'}, {'exec': {'command': 'get-token'}})
    path = write(files / 'config', doc)
    with pytest.raises(ConfigError) as err:
        _client.build_configuration(_client.resolve_auth({'kubeconfig': path}, {}), {})
    assert err.value.msg == ('Cannot use the kubeconfig %s (Invalid kube-config file. Expected key exec in users[u].user): '
                             'fix the file, or set kubeconfig / context (K8S_AUTH_KUBECONFIG / K8S_AUTH_CONTEXT).' % path)
