# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Connection options -> an HTTP client for the Kubernetes API.

Kubeconfig files and the in-cluster service account are read by ``_kubeconfig`` (same rules as
``kubernetes.config``, without its 0.1 s import). The ``kubernetes`` package is imported only for a
kubeconfig user that authenticates through ``exec`` or ``auth-provider`` plugins (token refresh), which
only it implements. Requests themselves go through one urllib3 pool owned here, because
``ApiClient.call_api`` changed its signature between client releases and would force model
deserialisation we do not want. That one place (``Client._send``) is where requests are counted and
where the retry policy applies.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import ipaddress
import json
import os
import random
import threading
import time

from urllib.parse import urlencode, urlparse

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _kubeconfig
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._auth_env import AUTH_ENV, PROXY_HEADERS_ENV
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._errors import (
    ApiError,
    ConfigError,
    TransportError,
    describe_http_error,
    describe_transport_error,
    input_rejected,
)

IMPORT_ERROR = None
try:
    import urllib3
    try:
        from urllib3 import HTTPHeaderDict as _HeaderDict
    except ImportError:  # urllib3 1.26
        from urllib3._collections import HTTPHeaderDict as _HeaderDict
    # The kubernetes package stays a requirement (exec / auth-provider kubeconfigs), but importing it costs
    # about 0.1 s, so its presence is checked here and it is imported only when such a kubeconfig needs it.
    import importlib.util
    if importlib.util.find_spec('kubernetes') is None:
        raise ImportError("No module named 'kubernetes'")
except ImportError as _exc:  # the modules report it through missing_required_lib
    IMPORT_ERROR = _exc

try:
    import yaml
except ImportError:  # only needed to name the contexts in an error message
    yaml = None

USER_AGENT = 'virtfleet.kubevirt/1.0.0'
# Connections kept open per API server: as many as requests a task sends at once (kubevirt_vm's concurrent writes,
# ``_vm_apply.WRITE_WORKERS``; the inventory's concurrent lists); beyond it urllib3 opens and then drops extra ones.
POOL_MAXSIZE = 8
# Bytes read at a time from a body decoded while it arrives (request(decode=...)).
CHUNK_SIZE = 256 * 1024

AUTH_OPTIONS = tuple(AUTH_ENV) + ('proxy_headers',)
_BOOL_OPTIONS = ('validate_certs', 'persist_config')
_FALSE_STRINGS = ('0', 'false', 'no', 'off', 'n', 'f')


def _to_bool(value):
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() not in _FALSE_STRINGS


def resolve_auth(options, environ=None):
    """Fill options that are unset (None) from the K8S_AUTH_* environment, like kubernetes.core does."""
    environ = os.environ if environ is None else environ
    auth = dict((k, options.get(k)) for k in AUTH_OPTIONS)
    for name, env_names in AUTH_ENV.items():
        if auth.get(name) is not None:
            continue
        for env_name in env_names:
            if environ.get(env_name) not in (None, ''):
                auth[name] = environ[env_name]
                break
    for name in _BOOL_OPTIONS:
        if auth.get(name) is not None:
            auth[name] = _to_bool(auth[name])
    groups = auth.get('impersonate_groups')
    if isinstance(groups, str):
        auth['impersonate_groups'] = [g.strip() for g in groups.split(',') if g.strip()]
    if not auth.get('proxy_headers'):
        headers = dict((k, environ[v]) for k, v in PROXY_HEADERS_ENV.items() if environ.get(v))
        auth['proxy_headers'] = headers or None
    return auth


# ---------------------------------------------------------------------------------------------------
# Configuration: the same precedence as kubernetes.core, with errors that name the option to fix.


def _kubeconfig_paths(value):
    return [os.path.expanduser(p) for p in str(value).split(os.pathsep) if p]


def _read_documents(kubeconfig):
    """[(path or None, parsed document)] of a kubeconfig path (``:``-separated list; missing files skipped) or dict."""
    docs = []
    if isinstance(kubeconfig, dict):
        docs = [(None, kubeconfig)]
    elif yaml is not None:
        for path in _kubeconfig_paths(kubeconfig):
            if not os.path.exists(path):
                continue
            with open(path) as handle:
                try:
                    loaded = yaml.safe_load(handle)
                except yaml.YAMLError as exc:
                    raise ConfigError('The kubeconfig file %s is not valid YAML (%s): fix the file or point kubeconfig '
                                      '(K8S_AUTH_KUBECONFIG) at another one.' % (path, str(exc).splitlines()[0]))
            docs.append((path, loaded))
    return docs


def _read_contexts(docs):
    """Context names and current-context of the documents _read_documents() gave."""
    names, current = [], None
    for _path, doc in docs:
        if not isinstance(doc, dict):
            continue
        for ctx in doc.get('contexts') or []:
            if isinstance(ctx, dict) and ctx.get('name') and ctx['name'] not in names:
                names.append(ctx['name'])
        current = current or doc.get('current-context')
    return names, current


def _check_kubeconfig(kubeconfig, context, source, docs):
    """Fail with a clear sentence on a missing file or context before the client raises something cryptic."""
    if not isinstance(kubeconfig, dict):
        paths = _kubeconfig_paths(kubeconfig)
        existing = [p for p in paths if os.path.isfile(p)]
        if not existing:
            raise ConfigError('The kubeconfig file %s does not exist: set kubeconfig (or K8S_AUTH_KUBECONFIG) to an '
                              'existing file, or give host and api_key instead.' % (kubeconfig if source == 'option' else
                                                                                    '%s (%s)' % (kubeconfig, source)))
    names, current = _read_contexts(docs)
    where = 'the kubeconfig given as a dict' if isinstance(kubeconfig, dict) else 'kubeconfig %s' % kubeconfig
    if context and names and context not in names:
        raise ConfigError('The context "%s" is not in %s (it has: %s): set context (or K8S_AUTH_CONTEXT) to one of them.'
                          % (context, where, ', '.join(names)))
    if not context and not current and names:
        raise ConfigError('%s has no current-context: set context (or K8S_AUTH_CONTEXT) to one of: %s.'
                          % (where[0].upper() + where[1:], ', '.join(names)))
    if not names and yaml is not None:
        raise ConfigError('%s defines no contexts: fix the file or set kubeconfig (or K8S_AUTH_KUBECONFIG) to another one.'
                          % (where[0].upper() + where[1:]))


def _load_with_kubernetes(auth, kubeconfig):
    """kubernetes.config for the users only it can authenticate (exec and auth-provider plugins)."""
    import kubernetes.client  # pylint: disable=import-outside-toplevel
    import kubernetes.config  # pylint: disable=import-outside-toplevel
    from kubernetes.config.config_exception import ConfigException  # pylint: disable=import-outside-toplevel
    configuration = kubernetes.client.Configuration()
    kwargs = dict(context=auth.get('context'), client_configuration=configuration,
                  persist_config=bool(auth.get('persist_config')))
    try:
        if isinstance(kubeconfig, dict):
            kubernetes.config.load_kube_config_from_dict(config_dict=kubeconfig, **kwargs)
        else:
            kubernetes.config.load_kube_config(config_file=kubeconfig, **kwargs)
    except ConfigException as exc:
        raise _kubeconfig.KubeconfigError(str(exc))
    return configuration


def _load_kubeconfig(auth, kubeconfig, source):
    """The kubeconfig -> settings: ``_kubeconfig`` for plain users, kubernetes.config for exec / auth-provider ones."""
    docs = _read_documents(kubeconfig)
    _check_kubeconfig(kubeconfig, auth.get('context'), source, docs)
    where = 'given as a dict' if isinstance(kubeconfig, dict) else kubeconfig
    try:
        settings = _kubeconfig.load(docs, auth.get('context')) if yaml is not None else None
        return settings if settings is not None else _load_with_kubernetes(auth, kubeconfig)
    except _kubeconfig.KubeconfigError as exc:
        raise ConfigError('Cannot use the kubeconfig %s (%s): fix the file, or set kubeconfig / context '
                          '(K8S_AUTH_KUBECONFIG / K8S_AUTH_CONTEXT).' % (where, exc))
    except (IOError, OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ConfigError('Cannot load the kubeconfig %s (%s: %s): check kubeconfig and context.'
                          % (where, type(exc).__name__, exc))


def build_configuration(auth, environ=None):
    """Resolved auth options -> ``_kubeconfig.Settings`` (or ``kubernetes.client.Configuration``); raises ConfigError."""
    if IMPORT_ERROR is not None:
        raise ConfigError('The kubernetes Python library (>= 28.1.0) is required on the host that runs this task: '
                          'pip install kubernetes (%s).' % IMPORT_ERROR)
    environ = os.environ if environ is None else environ
    configuration = _kubeconfig.Settings()
    host = auth.get('host')
    self_sufficient = host and (auth.get('api_key') or (auth.get('username') and auth.get('password'))
                                or (auth.get('client_cert') and auth.get('client_key')))
    if self_sufficient:
        pass
    elif auth.get('kubeconfig') or auth.get('context'):
        kubeconfig = auth.get('kubeconfig') or environ.get('KUBECONFIG') or os.path.expanduser('~/.kube/config')
        source = 'option' if auth.get('kubeconfig') else 'default location'
        configuration = _load_kubeconfig(auth, kubeconfig, source)
    else:
        try:
            configuration = _kubeconfig.load_incluster()  # the pod environment, as kubernetes.config reads it
        except _kubeconfig.KubeconfigError:
            kubeconfig = environ.get('KUBECONFIG') or os.path.expanduser('~/.kube/config')
            if not any(os.path.isfile(p) for p in _kubeconfig_paths(kubeconfig)) and not host:
                raise ConfigError('No Kubernetes connection is configured: set kubeconfig (or K8S_AUTH_KUBECONFIG), '
                                  'or host with api_key, or run inside a pod with a service account (%s does not exist).'
                                  % kubeconfig)
            if not host or any(os.path.isfile(p) for p in _kubeconfig_paths(kubeconfig)):
                configuration = _load_kubeconfig(auth, kubeconfig, 'KUBECONFIG' if environ.get('KUBECONFIG')
                                                 else 'default location')
    if host:
        configuration.host = host.rstrip('/')
    if auth.get('api_key'):
        configuration.api_key = {'authorization': 'Bearer %s' % auth['api_key']}
        configuration.api_key_prefix = {}
        configuration.refresh_api_key_hook = None
    for option, attr in (('username', 'username'), ('password', 'password'), ('ca_cert', 'ssl_ca_cert'),
                         ('client_cert', 'cert_file'), ('client_key', 'key_file'), ('validate_certs', 'verify_ssl'),
                         ('proxy', 'proxy'), ('no_proxy', 'no_proxy')):
        if auth.get(option) is not None:
            setattr(configuration, attr, auth[option])
    if auth.get('proxy_headers'):
        configuration.proxy_headers = urllib3.util.make_headers(
            **dict((k, v) for k, v in auth['proxy_headers'].items() if v))
    for option in ('ca_cert', 'client_cert', 'client_key'):
        path = auth.get(option)
        if path and not os.path.isfile(path):
            raise ConfigError('The file %s given as %s does not exist: set %s to an existing PEM file.' % (path, option, option))
    if not configuration.host or configuration.host == 'http://localhost' and not host:
        raise ConfigError('No API server URL is known: set host (or K8S_AUTH_HOST), or a kubeconfig whose cluster has a server.')
    return configuration


# ---------------------------------------------------------------------------------------------------
# Retry policy: the one place that decides what is retried and how long to back off.


class RetryPolicy(object):
    """What is retried, how often and how long to back off.

    429 is always retried (the server did nothing). 5xx and dropped connections are retried only on
    idempotent verbs; a non-idempotent write (POST) is resolved by its caller reading back (``_api.Api.create``).
    ``attempts`` counts the first try; every pause is cut to the caller's deadline.
    """

    RETRY_STATUSES = (429, 500, 502, 503, 504)
    IDEMPOTENT = ('GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE')

    def __init__(self, attempts=6, base=0.2, cap=3.0, sleep=time.sleep, rand=random.random):
        self.attempts = attempts
        self.base = base
        self.cap = cap
        self.sleep = sleep
        self.rand = rand

    def should_retry(self, method, attempt, status=None, transport_retryable=False, idempotent=None):
        if attempt >= self.attempts:
            return False
        idempotent = (method in self.IDEMPOTENT) if idempotent is None else idempotent
        if status == 429:
            return True
        if status in self.RETRY_STATUSES or transport_retryable:
            return idempotent
        return False

    def delay(self, attempt, retry_after=None):
        """Full-jitter exponential backoff, honouring Retry-After up to the cap."""
        if retry_after is not None:
            try:
                return min(self.cap, max(0.0, float(retry_after)))
            except ValueError:
                pass
        return self.rand() * min(self.cap, self.base * (2 ** (attempt - 1)))


# ---------------------------------------------------------------------------------------------------


def _bypass_proxy(host_url, no_proxy):
    if not no_proxy:
        return False
    parsed = urlparse(host_url)
    host = (parsed.hostname or '').lower()
    host_port = '%s:%s' % (host, parsed.port) if parsed.port else host
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    for entry in (e.strip().lower() for e in no_proxy.split(',')):
        if not entry:
            continue
        if entry == '*':
            return True
        if ip is not None:
            try:
                if ip in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
        entry = entry.lstrip('.')
        if host in (entry,) or host_port == entry or host.endswith('.' + entry):
            return True
    return False


class Client(object):
    """A counted, retrying JSON client for one API server.

    ``request_count`` counts every HTTP request sent (retries included); ``request_log`` keeps
    ``(method, path, status)`` for each, so tests and bench can assert on exact costs. ``retries`` counts
    the requests sent again after a fault (``retry_reasons`` by cause: ``429``, ``500``, ``reset``...),
    ``recovered`` the writes whose lost answer was resolved by reading back. ``deadline`` (a ``clock()``
    value, see ``set_deadline``) bounds every retry pause: once it has passed, a failed request is not retried.
    """

    def __init__(self, configuration, retry=None, timeout=(10.0, 60.0), pool=None, impersonate_user=None,
                 impersonate_groups=None, clock=time.monotonic):
        self.configuration = configuration
        self.impersonate_user = impersonate_user
        self.impersonate_groups = list(impersonate_groups or [])
        self.host = configuration.host.rstrip('/')
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self.clock = clock
        self.deadline = None
        self.request_count = 0
        self.request_log = []
        self.retries = 0
        self.retry_reasons = {}
        self.recovered = 0
        # The inventory lists kinds from several threads through one Client: counter updates are
        # read-modify-write, so they take this lock (the HTTP requests themselves run outside it).
        self._counter_lock = threading.Lock()
        self.pool = pool if pool is not None else self._make_pool()

    def set_deadline(self, seconds):
        """Stop retrying ``seconds`` from now (None: only the attempt cap applies)."""
        self.deadline = None if seconds is None else self.clock() + float(seconds)

    def backoff(self, attempt, reason, retry_after=None):
        """Sleep before attempt ``attempt + 1`` and count it; False (no sleep) when the budget or deadline is spent.

        Callers that resolve a lost write themselves (``_api.Api.create``) use this too, so one policy
        and one counter cover every retry.
        """
        if attempt >= self.retry.attempts:
            return False
        pause = self.retry.delay(attempt, retry_after)
        if self.deadline is not None:
            left = self.deadline - self.clock()
            if left <= 0:
                return False
            pause = min(pause, left)
        self.retry.sleep(pause)
        with self._counter_lock:
            self.retries += 1
            self.retry_reasons[reason] = self.retry_reasons.get(reason, 0) + 1
        return True

    # -- transport ---------------------------------------------------------------------------------
    def _make_pool(self):
        cfg = self.configuration
        import ssl  # pylint: disable=import-outside-toplevel
        kwargs = dict(num_pools=4, maxsize=POOL_MAXSIZE, cert_reqs=ssl.CERT_REQUIRED if cfg.verify_ssl else ssl.CERT_NONE,
                      ca_certs=cfg.ssl_ca_cert, cert_file=cfg.cert_file, key_file=cfg.key_file)
        if getattr(cfg, 'ca_cert_data', None):
            kwargs['ca_cert_data'] = cfg.ca_cert_data
        if getattr(cfg, 'tls_server_name', None):
            kwargs['server_hostname'] = cfg.tls_server_name
        if getattr(cfg, 'assert_hostname', None) is not None:
            kwargs['assert_hostname'] = cfg.assert_hostname
        # An environment proxy picked up by newer kubernetes clients is ignored on purpose: the documented
        # behaviour (shared with kubernetes.core) is that only proxy / K8S_AUTH_PROXY / proxy-url apply.
        proxy = cfg.proxy if not getattr(cfg, '_proxy_from_env', False) else None
        if proxy and not _bypass_proxy(self.host, cfg.no_proxy):
            if proxy.startswith('socks'):
                from urllib3.contrib.socks import SOCKSProxyManager  # pylint: disable=import-outside-toplevel
                return SOCKSProxyManager(proxy, headers=cfg.proxy_headers, **kwargs)
            return urllib3.ProxyManager(proxy, proxy_headers=cfg.proxy_headers, **kwargs)
        if not cfg.verify_ssl:
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        return urllib3.PoolManager(**kwargs)

    def _headers(self, content_type=None):
        headers = _HeaderDict()
        headers['Accept'] = 'application/json'
        headers['User-Agent'] = USER_AGENT
        for setting in self.configuration.auth_settings().values():
            if setting.get('in') == 'header' and setting.get('value'):
                headers[setting['key']] = setting['value']
        if 'authorization' not in headers and self.configuration.username and self.configuration.password:
            token = '%s:%s' % (self.configuration.username, self.configuration.password)
            headers['authorization'] = 'Basic %s' % base64.b64encode(token.encode('utf-8')).decode('ascii')
        if self.impersonate_user:
            headers['Impersonate-User'] = self.impersonate_user
        for group in self.impersonate_groups:
            headers.add('Impersonate-Group', group)
        if content_type:
            headers['Content-Type'] = content_type
        return headers

    def header_lines(self):
        """The headers every request carries (credentials, impersonation, User-Agent) as ``Name: value`` lines, for a
        connection this client does not send itself (the API tunnel's WebSocket upgrade, ``plugin_utils._api_tunnel``).
        They hold the credentials: never log them."""
        return ['%s: %s' % (name, value) for name, value in self._headers().items()]

    def _send(self, method, url, body, headers, timeout, path):
        """The lowest seam: every HTTP request of the collection passes here exactly once per attempt."""
        entry = [method, path, None]
        with self._counter_lock:
            self.request_count += 1
            self.request_log.append(entry)
        resp = self.pool.request(method, url, body=body, headers=headers, timeout=timeout, retries=False,
                                 redirect=False, preload_content=False)
        entry[2] = resp.status
        return resp

    def _gave_up(self, attempt):
        if attempt <= 1:
            return ''
        if self.deadline is not None and self.clock() >= self.deadline:
            return ' (gave up after %d attempts at the task deadline)' % attempt
        return ' (gave up after %d attempts)' % attempt

    def request(self, method, path, query=None, body=None, content_type=None, timeout=None, stream=False,
                idempotent=None, what=None, namespace=None, verb=None, decode=None):
        """Send one API call (with retries) and return the decoded JSON, or the open response when ``stream``.

        ``decode``: a function that decodes a successful body from an iterable of byte chunks as they arrive
        (``_list_stream.decode_list``), instead of reading it whole and ``json.loads``; it raises ValueError for a
        body that is not what it expects. A connection dropped while it reads is retried like any other.
        ``what``/``namespace``/``verb`` only shape error messages ("may not list VirtualMachines in namespace x").
        A non-idempotent call that fails with 5xx or a dropped connection raises at once: the caller must
        read back before sending it again (the write may have happened).
        """
        url = self.host + path
        if query:
            url += '?' + urlencode([(k, v) for k, v in query.items() if v is not None], doseq=True)
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode('utf-8')
        headers = self._headers(content_type or ('application/json' if body is not None else None))
        timeout = urllib3.Timeout(connect=(timeout or self.timeout)[0], read=(timeout or self.timeout)[1])
        attempt = 0
        while True:
            attempt += 1
            try:
                resp = self._send(method, url, body, headers, timeout, path)
                if resp.status < 400 and stream:
                    return resp
                try:
                    if resp.status < 400 and decode is not None:
                        try:
                            return decode(resp.stream(CHUNK_SIZE))
                        except ValueError:
                            resp.close()  # unread bytes must not go back to the pool with the connection
                            raise _not_json(method, path, resp.status)
                        except BaseException:
                            resp.close()
                            raise
                    data = resp.data
                finally:
                    resp.release_conn()
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                msg, retryable = describe_transport_error(exc, self.host)
                if self.retry.should_retry(method, attempt, transport_retryable=retryable, idempotent=idempotent) \
                        and self.backoff(attempt, 'reset' if retryable else 'transport'):
                    continue
                raise TransportError(msg + self._gave_up(attempt), cause=exc, retryable=retryable)
            if resp.status >= 400:
                if not input_rejected(resp.status, data) and \
                        self.retry.should_retry(method, attempt, status=resp.status, idempotent=idempotent) \
                        and self.backoff(attempt, str(resp.status), resp.headers.get('Retry-After')):
                    continue
                raise ApiError(describe_http_error(resp.status, data, method, path, host=self.host, verb=verb,
                                                   resource=what, namespace=namespace) + self._gave_up(attempt),
                               resp.status, reason=resp.reason, body=data, method=method, path=path)
            if not data:
                return None
            try:
                return json.loads(data)
            except ValueError:
                raise _not_json(method, path, resp.status, data)


def _not_json(method, path, status, body=None):
    return ApiError('The API server answered %s %s with something that is not JSON: check host (is it a Kubernetes API '
                    'server?).' % (method, path), status, body=body, method=method, path=path)


def client_from_options(options, environ=None, **kwargs):
    """Options (as documented in the _auth doc fragment) -> Client. Raises ConfigError."""
    auth = resolve_auth(options, environ)
    return Client(build_configuration(auth, environ), impersonate_user=auth.get('impersonate_user'),
                  impersonate_groups=auth.get('impersonate_groups'), **kwargs)
