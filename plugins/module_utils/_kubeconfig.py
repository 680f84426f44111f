# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Kubeconfig files and the in-cluster service account -> client settings, without the kubernetes package.

Importing ``kubernetes.config`` costs about 0.1 s (it pulls in the whole generated client, OAuth and
Google libraries) in every module run and inventory refresh, although nearly every kubeconfig only
holds a server, a CA and a token or client certificate. This module reads those the way
``kubernetes.config`` does (same merge rules for a ``:``-separated list, paths relative to the file
that names them, ``*-data`` fields preferred over files, ``insecure-skip-tls-verify``,
``tls-server-name``, ``proxy-url``, token before basic auth). A user entry with ``auth-provider`` or
``exec`` (token refresh, cloud plugins) is left to ``kubernetes.config``: ``load`` returns ``None``
and the caller imports it then. One deliberate difference: whitespace around a ``tokenFile``'s
content is dropped (kubectl does the same; ``kubernetes.config`` sent the newline in the header).

``tests/unit/plugins/module_utils/test_kubeconfig.py`` loads the same kubeconfigs with both and
compares the settings.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import atexit
import base64
import hashlib
import os
import shutil
import tempfile
import time

SERVICE_HOST_ENV_NAME = 'KUBERNETES_SERVICE_HOST'
SERVICE_PORT_ENV_NAME = 'KUBERNETES_SERVICE_PORT'
SERVICE_TOKEN_FILENAME = '/var/run/secrets/kubernetes.io/serviceaccount/token'
SERVICE_CERT_FILENAME = '/var/run/secrets/kubernetes.io/serviceaccount/ca.crt'
# Projected service account tokens rotate; re-read the file at most this often (as kubernetes.config does).
SERVICE_TOKEN_REFRESH_SECONDS = 60


class KubeconfigError(Exception):
    """The kubeconfig cannot be used; the message says which entry is wrong."""


class Settings(object):
    """The connection settings the client reads: the attributes of ``kubernetes.client.Configuration`` it uses."""

    def __init__(self):
        self.host = 'http://localhost'
        self.api_key = {}
        self.api_key_prefix = {}
        self.refresh_api_key_hook = None
        self.username = None
        self.password = None
        self.ssl_ca_cert = None
        self.cert_file = None
        self.key_file = None
        self.verify_ssl = True
        self.tls_server_name = None
        self.assert_hostname = None
        self.proxy = None
        self.no_proxy = None
        self.proxy_headers = None

    def auth_settings(self):
        """The Authorization header, in the shape ``kubernetes.client.Configuration.auth_settings()`` gives it."""
        if self.refresh_api_key_hook is not None:
            self.refresh_api_key_hook(self)
        value = self.api_key.get('BearerToken', self.api_key.get('authorization'))
        if not value:
            return {}
        prefix = self.api_key_prefix.get('BearerToken', self.api_key_prefix.get('authorization'))
        return {'BearerToken': {'type': 'api_key', 'in': 'header', 'key': 'authorization',
                                'value': '%s %s' % (prefix, value) if prefix else value}}


# -- temporary files for *-data fields (urllib3 wants paths for client certificates) --------------------------

_TEMP = {'dir': None}


def _temp_file(content):
    """A 0600 file holding ``content`` (bytes) in a private directory removed at exit; one file per content."""
    if _TEMP['dir'] is None or not os.path.isdir(_TEMP['dir']):
        _TEMP['dir'] = tempfile.mkdtemp(prefix='virtfleet-kubeconfig-')
        atexit.register(shutil.rmtree, _TEMP['dir'], True)
    path = os.path.join(_TEMP['dir'], hashlib.sha256(content).hexdigest())
    if not os.path.isfile(path):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, 'wb') as handle:
            handle.write(content)
    return path


def _file_or_data(entry, file_key, base_path, where):
    """Path of ``file_key``, or of a temporary file with the base64-decoded ``file_key-data`` (data wins)."""
    if not entry:
        return None
    data_key = file_key + '-data'
    if data_key in entry:
        data = entry[data_key]
        if not data:
            return None
        try:
            # strict, unlike kubernetes.config (which silently dropped bad characters): wrapped lines are fine
            text = data.decode('ascii') if isinstance(data, bytes) else str(data)
            content = base64.b64decode(''.join(text.split()), validate=True)
        except (TypeError, ValueError) as exc:
            raise KubeconfigError('%s.%s is not valid base64 (%s)' % (where, data_key, exc))
        return _temp_file(content)
    if file_key in entry and entry[file_key]:
        path = os.path.normpath(os.path.join(base_path, str(entry[file_key])))
        if not os.path.isfile(path):
            raise KubeconfigError('File does not exist: %s (%s.%s)' % (path, where, file_key))
        return path
    return None


# -- merging ----------------------------------------------------------------------------------------------------

def _merge(documents):
    """[(path or None, dict)] -> (merged dict, {(section, name): path}) with kubernetes.config's rules.

    The first entry of a name wins in clusters, contexts and users; current-context comes from the last
    document that sets it; each entry remembers the file it came from, for relative paths.
    """
    merged = None
    origin = {}
    for path, doc in documents:
        if doc is None:
            raise KubeconfigError('%s is empty' % (path or 'the kubeconfig'))
        if not isinstance(doc, dict):
            raise KubeconfigError('%s is not a mapping' % (path or 'the kubeconfig'))
        if merged is None:
            merged = dict(doc)
            for section in ('clusters', 'contexts', 'users'):
                merged[section] = []
        for section in ('clusters', 'contexts', 'users'):
            entries = doc.get(section) or []
            if not isinstance(entries, list):
                raise KubeconfigError('%s in %s is not a list' % (section, path or 'the kubeconfig'))
            for entry in entries:
                if not isinstance(entry, dict) or 'name' not in entry:
                    raise KubeconfigError("every entry of %s must have a 'name' (%s)" % (section, path or 'the kubeconfig'))
                if any(e['name'] == entry['name'] for e in merged[section]):
                    continue
                merged[section].append(entry)
                origin[(section, entry['name'])] = path
        if 'current-context' in doc:
            merged['current-context'] = doc['current-context']
    if merged is None:
        raise KubeconfigError('no configuration found')
    return merged, origin


def _named(merged, section, name, required=True):
    found = [e for e in merged.get(section) or [] if e.get('name') == name]
    if len(found) > 1:
        raise KubeconfigError('more than one entry named %s in %s' % (name, section))
    if not found:
        if required:
            raise KubeconfigError('no entry named %s in %s' % (name, section))
        return None
    return found[0]


def _base_path(origin, section, name):
    path = origin.get((section, name))
    return os.path.abspath(os.path.dirname(path)) if path else ''


# -- public -----------------------------------------------------------------------------------------------------

def _token(user, base_path, where):
    """The user's token (``token`` wins over ``tokenFile``, as in kubernetes.config), or None."""
    if 'token' in user:
        return user['token'] or None
    if user.get('tokenFile'):
        path = os.path.normpath(os.path.join(base_path, str(user['tokenFile'])))
        try:
            with open(path) as handle:
                return handle.read().strip() or None
        except (IOError, OSError) as exc:
            raise KubeconfigError('cannot read %s.tokenFile %s (%s)' % (where, path, exc.strerror or exc))
    return None


def load(documents, context=None):
    """[(path or None, kubeconfig dict)] and a context name -> Settings, or None when kubernetes.config must load it.

    Raises KubeconfigError naming the entry at fault.
    """
    merged, origin = _merge(documents)
    context_name = context or merged.get('current-context')
    if not context_name:
        raise KubeconfigError('no context given and no current-context set')
    ctx_entry = _named(merged, 'contexts', context_name)
    ctx = ctx_entry.get('context') or {}
    if not isinstance(ctx, dict) or not ctx.get('cluster'):
        raise KubeconfigError('context %s names no cluster' % context_name)
    user, user_base, user_where = None, '', 'user'
    if ctx.get('user') and merged.get('users'):
        user_entry = _named(merged, 'users', ctx['user'], required=False)
        if user_entry is not None:
            user = user_entry.get('user')
            if not isinstance(user, dict):
                raise KubeconfigError('user %s has no user mapping' % ctx['user'])
            user_base = _base_path(origin, 'users', ctx['user'])
            user_where = 'users[%s].user' % ctx['user']
    token = None
    if user:
        # kubernetes.config's order: auth-provider, then token / tokenFile, then exec, then username/password.
        if 'auth-provider' in user:
            return None
        token = _token(user, user_base, user_where)
        if not token and 'exec' in user:
            return None
    cluster_entry = _named(merged, 'clusters', ctx['cluster'])
    cluster = cluster_entry.get('cluster')
    if not isinstance(cluster, dict):
        raise KubeconfigError('cluster %s has no cluster mapping' % ctx['cluster'])
    cluster_base = _base_path(origin, 'clusters', ctx['cluster'])
    cluster_where = 'clusters[%s].cluster' % ctx['cluster']

    settings = Settings()
    if user:
        if token:
            settings.api_key['BearerToken'] = 'Bearer %s' % token
        elif 'username' in user and 'password' in user:
            basic = '%s:%s' % (user['username'], user['password'])
            settings.api_key['BearerToken'] = 'Basic %s' % base64.b64encode(basic.encode('utf-8')).decode('ascii')
    if 'server' in cluster:
        settings.host = str(cluster['server']).rstrip('/')
        if settings.host.startswith('https'):
            # kubernetes.config resolves the user's certificate paths against the cluster's file as well
            settings.ssl_ca_cert = _file_or_data(cluster, 'certificate-authority', cluster_base, cluster_where)
            settings.cert_file = _file_or_data(user, 'client-certificate', cluster_base, user_where)
            settings.key_file = _file_or_data(user, 'client-key', cluster_base, user_where)
    if 'insecure-skip-tls-verify' in cluster:
        settings.verify_ssl = not cluster['insecure-skip-tls-verify']
    if 'tls-server-name' in cluster:
        settings.tls_server_name = cluster['tls-server-name']
    if 'proxy-url' in cluster:
        settings.proxy = cluster['proxy-url']
    return settings


def load_incluster(environ=None):
    """The pod's service account -> Settings; KubeconfigError when not running in a pod."""
    environ = os.environ if environ is None else environ
    host, port = environ.get(SERVICE_HOST_ENV_NAME), environ.get(SERVICE_PORT_ENV_NAME)
    if host is None or port is None:
        raise KubeconfigError('Service host/port is not set.')
    if not host or not port:
        raise KubeconfigError('Service host/port is set but empty.')
    if not os.path.isfile(SERVICE_TOKEN_FILENAME):
        raise KubeconfigError('Service token file does not exist.')
    if not os.path.isfile(SERVICE_CERT_FILENAME):
        raise KubeconfigError('Service certification file does not exist.')
    with open(SERVICE_CERT_FILENAME) as handle:
        if not handle.read():
            raise KubeconfigError('Cert file exists but empty.')
    settings = Settings()
    settings.host = 'https://' + ('[%s]:%s' if ':' in host or '%' in host else '%s:%s') % (host, port)
    settings.ssl_ca_cert = SERVICE_CERT_FILENAME
    token_file = SERVICE_TOKEN_FILENAME
    state = {'read_at': None}

    def refresh(target):
        if state['read_at'] is not None and time.monotonic() - state['read_at'] < SERVICE_TOKEN_REFRESH_SECONDS:
            return
        with open(token_file) as handle:
            token = handle.read()
        if not token:
            raise KubeconfigError('Token file exists but empty.')
        state['read_at'] = time.monotonic()
        target.api_key['BearerToken'] = 'bearer ' + token

    refresh(settings)
    settings.refresh_api_key_hook = refresh
    return settings
