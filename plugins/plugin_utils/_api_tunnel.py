# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The API tunnel: SSH to a guest through the Kubernetes API server, with KubeVirt's VMI ``portforward`` subresource.

Two halves live here. The inventory half (``ProxyCommand``) gives a host of the ``api_tunnel`` address strategy
the ssh option ``-o ProxyCommand=<python> <this file> --namespace NS --name VMI --port %p ...``; the bridge half
(``main``, run by ssh as that command) opens the WebSocket and copies stdin to it and it to stdout, so ssh speaks
to the guest's port as if it were a socket. ansible-core's own ``ssh`` connection needs nothing else: keys,
``ansible_user``, become, pipelining and ControlPersist work as over any ProxyCommand.

The wire, as KubeVirt v1.9.0 serves it (read in its source):

- ``GET /apis/subresources.kubevirt.io/v1/namespaces/{ns}/virtualmachineinstances/{name}/portforward/{port}``
  (optionally ``/{protocol}``, ``tcp`` by default): routes of ``pkg/virt-api/api.go``, the client path of
  ``staging/src/kubevirt.io/client-go/kubecli/vmi.go`` ``PortForward`` / ``buildPortForwardResourcePath`` and
  ``kubevirt/typed/core/v1/async.go`` ``RequestFromConfig`` (the server URL's own path is kept as a prefix).
- A WebSocket upgrade offering the subprotocol ``plain.kubevirt.io`` (``client-go/subresources/constants.go``
  ``PlainStreamProtocolName``; ``async.go`` ``roundTripperFromConfig`` dials with it and the client's usual TLS and
  credential headers). After ``101`` the guest's TCP bytes travel in binary frames both ways
  (``kubevirt/typed/core/v1/websocket.go`` ``binaryWriter`` / ``binaryReader``, which skips other message types, so
  this bridge sends binary frames only). virt-api pings every second and drops a client that has not answered for a
  minute (``pkg/virt-api/rest/streamer.go`` ``keepAliveClientStream``): websocket-client answers pings while it reads.
  The end of either side closes both (``Streamer.Handle``): a close frame from us, a plain TCP close from virt-api.
- virt-api connects to the guest *before* the upgrade (``Streamer.Handle`` calls ``DialUnderlying`` first;
  ``pkg/virt-api/rest/dialers.go`` ``netDial.DialUnderlying`` dials the VMI's first interface IP), so every failure
  is an ordinary ``Status`` answer: 404 for a missing VMI (``subresource.go`` ``FetchVirtualMachineInstance``),
  409 "VMI is paused" (``portforward.go`` ``validateVMIForPortForward``), 400 "no network interfaces are present" for a
  VMI that has none yet (not running), 500 "dialing VM: ... connection refused" for a closed guest port.
  kube-apiserver answers 401/403 before virt-api sees the request: the verb is ``get`` on
  ``virtualmachineinstances/portforward`` in the API group ``subresources.kubevirt.io`` (KubeVirt's
  ``kubevirt.io:edit`` and ``kubevirt.io:admin`` cluster roles grant it,
  ``pkg/virt-operator/resource/generate/rbac/cluster.go``), and 503 while virt-api is unavailable.

Credentials never reach argv: what the inventory source gives inline (api_key, username/password, a kubeconfig
dictionary, proxy credentials) goes into an auth file of mode 0600 whose path is the only trace in the command line;
what comes from the environment (K8S_AUTH_*, KUBECONFIG, the pod's service account) is read again by the bridge from
the environment ssh passes on. The bridge resolves all of it with the collection's own client (``module_utils._client``),
the same rules as the modules and the inventory plugin.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import base64
import errno
import hashlib
import hmac
import json
import os
import re
import shlex
import socket
import ssl
import stat
import sys
import tempfile
import threading
import time

from urllib.parse import quote, unquote, urlparse


def collections_root(path):
    """The folder holding ``ansible_collections`` of this file (…/ansible_collections/virtfleet/kubevirt/plugins/
    plugin_utils/_api_tunnel.py), or None when the file is not installed in such a tree."""
    folder = os.path.dirname(os.path.abspath(path))
    for _level in range(4):
        folder = os.path.dirname(folder)
    if os.path.basename(folder) != 'ansible_collections':
        return None
    return os.path.dirname(folder)


if __name__ == '__main__':
    # Run by ssh as a ProxyCommand, without Ansible's collection loader: the collection's module_utils are plain
    # (namespace) packages once the folder holding ansible_collections is on sys.path. Ours comes first.
    _ROOT = collections_root(__file__)
    if _ROOT is None:
        sys.stderr.write('The API tunnel bridge %s must be run from an installed collection '
                         '(.../ansible_collections/virtfleet/kubevirt/plugins/plugin_utils/): install virtfleet.kubevirt '
                         'with ansible-galaxy.\n' % os.path.abspath(__file__))
        sys.exit(255)
    sys.path.insert(0, _ROOT)

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _client
from ansible_collections.virtfleet.kubevirt.plugins.module_utils._errors import (
    ConfigError,
    KubeVirtError,
    describe_http_error,
    describe_transport_error,
    parse_status,
)

PROTOCOL = 'plain.kubevirt.io'
SUBRESOURCE_PATH = '/apis/subresources.kubevirt.io/v1/namespaces/%s/virtualmachineinstances/%s/portforward/%d'
VMI_PATH = '/apis/kubevirt.io/v1/namespaces/%s/virtualmachineinstances/%s'
RBAC_HINT = 'grant verb get on subresources.kubevirt.io virtualmachineinstances/portforward'
# Seconds for the TCP/TLS connection and the upgrade answer (virt-api dials the guest before it answers).
HANDSHAKE_TIMEOUT = 60.0
# Bytes read from stdin at a time: one binary frame each.
CHUNK = 64 * 1024
# Seconds the answer may still flow to stdout after stdin ended (the close frame is sent at once).
LINGER = 5.0
EXIT_ERROR = 255
# websocket-client 1.5.2 is the first to keep the body of a refused handshake (WebSocketBadStatusException.resp_body).
MIN_WEBSOCKET_CLIENT = (1, 5, 2)

# Connection options that are credentials: never in argv, in the auth file instead. A kubeconfig given as a
# dictionary and a proxy URL with user:password are credentials too (see secret_option()).
SECRET_OPTIONS = ('api_key', 'username', 'password', 'proxy_headers')
# Options that are file paths: made absolute, because ssh may run the bridge from another working directory.
PATH_OPTIONS = ('ca_cert', 'client_cert', 'client_key')
BOOL_OPTIONS = ('validate_certs', 'persist_config')
# The bridge's command line: connection option -> flag (bools: --x / --no-x; impersonate_groups: repeated).
FLAGS = (
    ('kubeconfig', '--kubeconfig'),
    ('context', '--context'),
    ('host', '--host'),
    ('validate_certs', '--validate-certs'),
    ('ca_cert', '--ca-cert'),
    ('client_cert', '--client-cert'),
    ('client_key', '--client-key'),
    ('proxy', '--proxy'),
    ('no_proxy', '--no-proxy'),
    ('persist_config', '--persist-config'),
    ('impersonate_user', '--impersonate-user'),
    ('impersonate_groups', '--impersonate-group'),
)

AUTH_FILE_PREFIX = 'auth-'
# Auth files no inventory has written or refreshed for this long are removed (they hold stale credentials).
AUTH_FILE_MAX_AGE = 30 * 24 * 3600


class TunnelError(KubeVirtError):
    """The tunnel cannot be set up or used; ``msg`` is the one sentence for the user."""


# ---------------------------------------------------------------------------------------------------
# Inventory side: the ProxyCommand of a tunnelled host.


def default_auth_dir():
    return os.path.join(os.path.expanduser('~'), '.ansible', 'virtfleet.kubevirt', 'api-tunnel')


def secret_option(name, value):
    if name in SECRET_OPTIONS:
        return True
    if name == 'kubeconfig':
        return not isinstance(value, str)
    if name == 'proxy':
        return bool(urlparse(str(value)).password or urlparse(str(value)).username)
    return False


def _absolute(name, value):
    if name == 'kubeconfig' and isinstance(value, str):
        return os.pathsep.join(os.path.abspath(os.path.expanduser(p)) for p in value.split(os.pathsep) if p)
    if name in PATH_OPTIONS:
        return os.path.abspath(os.path.expanduser(value))
    return value


def explicit_options(auth, environ=None):
    """The connection options of an inventory source the bridge must be given: those set in the source itself.

    ``auth`` holds what get_option returned, which already includes the K8S_AUTH_* environment; a value equal to
    what the environment gives is inherited by the bridge through ssh's environment, so it is left out (never
    copied into a file). Values are normalised as the client reads them (booleans, group lists, absolute paths).
    """
    environ = os.environ if environ is None else environ
    inherited = _client.resolve_auth({}, environ)
    found = {}
    for name in _client.AUTH_OPTIONS:
        value = auth.get(name)
        if value is None or value == '' or value == [] or value == {}:
            continue
        value = _client.resolve_auth({name: value}, {})[name]
        if value == inherited.get(name):
            continue
        found[name] = _absolute(name, value)
    return found


def option_argv(options):
    """argv flags of the non-secret options (see FLAGS), in a stable order."""
    argv = []
    for name, flag in FLAGS:
        if name not in options:
            continue
        value = options[name]
        if name in BOOL_OPTIONS:
            argv.append(flag if value else '--no-' + flag[2:])
        elif name == 'impersonate_groups':
            for group in value:
                argv.extend([flag, group])
        else:
            argv.extend([flag, str(value)])
    return argv


def _private_dir(path):
    """Create ``path`` (and its parents) with mode 0700; an existing one of ours is tightened to 0700."""
    if not os.path.isdir(path):
        os.makedirs(path, 0o700)
    info = os.stat(path)
    if info.st_uid != os.geteuid():
        raise TunnelError('The API tunnel folder %s belongs to another user (uid %d): remove it or change HOME.'
                          % (path, info.st_uid))
    if info.st_mode & 0o077:
        os.chmod(path, 0o700)


def _write_private(path, data):
    """Write bytes to ``path`` atomically, mode 0600 from the first byte (mkstemp creates files 0600)."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix='.tmp-')
    try:
        with os.fdopen(fd, 'wb') as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _user_key(directory):
    """A random per-user key (0600 file) that names auth files, so a name reveals nothing about its content."""
    path = os.path.join(directory, '.key')
    try:
        with open(path, 'rb') as handle:
            key = handle.read()
        if len(key) >= 32:
            return key
    except (IOError, OSError) as exc:
        if exc.errno != errno.ENOENT:
            raise
    _write_private(path, os.urandom(32))
    with open(path, 'rb') as handle:
        return handle.read()


def write_auth_file(secrets, directory=None, now=None):
    """Store ``secrets`` (connection options) as JSON in a 0600 file of a 0700 folder and return its path.

    The name is content-addressed (an HMAC of the content with a per-user key): the same credentials always give
    the same path, so host variables stay stable, and a changed token gives a new file. Auth files not refreshed for
    AUTH_FILE_MAX_AGE are removed.
    """
    directory = directory or default_auth_dir()
    data = json.dumps(secrets, sort_keys=True, separators=(',', ':')).encode('utf-8')
    try:
        _private_dir(directory)
        name = AUTH_FILE_PREFIX + hmac.new(_user_key(directory), data, hashlib.sha256).hexdigest()[:40] + '.json'
        path = os.path.join(directory, name)
        current = None
        if os.path.isfile(path):
            with open(path, 'rb') as handle:
                current = handle.read()
        if current != data or os.stat(path).st_mode & 0o077:
            _write_private(path, data)
        now = time.time() if now is None else now
        os.utime(path, (now, now))
    except (IOError, OSError) as exc:
        raise TunnelError('Cannot write the API tunnel auth file in %s (%s): make the folder writable for this user.'
                          % (directory, exc.strerror or exc))
    for other in os.listdir(directory):
        other_path = os.path.join(directory, other)
        try:
            if other.startswith(AUTH_FILE_PREFIX) and other != name and now - os.stat(other_path).st_mtime > AUTH_FILE_MAX_AGE:
                os.unlink(other_path)
        except OSError:
            pass  # removed by another inventory run meanwhile
    return path


class SshToken(str):
    """A word of the ProxyCommand that ssh must expand (PORT), unlike every other word, whose '%' are literal."""


PORT = SshToken('%p')


def ssh_quote(words):
    """A command line for ssh's ProxyCommand: shell-quoted words with '%' doubled, SshToken words as they are.

    ssh expands %-tokens in ProxyCommand and runs the result with ``$SHELL -c "exec ..."``.
    """
    return ' '.join(word if isinstance(word, SshToken) else shlex.quote(word).replace('%', '%%') for word in words)


class ProxyCommand(object):
    """The ssh options of tunnelled hosts of one cluster connection (the inventory's ``conn.auth``).

    The auth file, when the source holds credentials, is written on the first host (never when no host uses the
    tunnel) and refreshed on every inventory parse.
    """

    def __init__(self, auth, python=None, bridge=None, auth_dir=None, environ=None):
        self.auth = auth
        self.python = python or sys.executable
        self.bridge = bridge or os.path.abspath(__file__)
        self.auth_dir = auth_dir
        self.environ = environ
        self._options = None

    def options_argv(self):
        """Flags for the connection: non-secret options, then --auth-file when the source holds credentials."""
        if self._options is None:
            options = explicit_options(self.auth, self.environ)
            secrets = dict((k, v) for k, v in options.items() if secret_option(k, v))
            argv = option_argv(dict((k, v) for k, v in options.items() if k not in secrets))
            if secrets:
                argv.extend(['--auth-file', write_auth_file(secrets, self.auth_dir)])
            self._options = argv
        return self._options

    def command(self, namespace, name):
        """The argv ssh runs, with %p for the port (ansible_port, the guest's port)."""
        return [self.python, self.bridge, '--namespace', namespace, '--name', name, '--port', PORT] + self.options_argv()

    def ssh_args(self, namespace, name):
        """The value of ansible_ssh_common_args: ProxyCommand (one word after Ansible's shlex split) and
        CheckHostIP=no, as the host name is a label, never resolved (ssh does not resolve it behind a ProxyCommand)."""
        proxy = 'ProxyCommand=' + ssh_quote(self.command(namespace, name))
        return '-o %s -o CheckHostIP=no' % shlex.quote(proxy)


# ---------------------------------------------------------------------------------------------------
# Bridge side: run by ssh.


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise TunnelError('Bad API tunnel bridge arguments (%s): it is run by ssh as the ProxyCommand the inventory '
                          'plugin virtfleet.kubevirt.kubevirt writes; refresh the inventory.' % message)


def parse_args(argv):
    parser = _Parser(prog='_api_tunnel.py', description='stdio <-> a port of a KubeVirt VMI, through the API server')
    parser.add_argument('--namespace', required=True)
    parser.add_argument('--name', required=True)
    parser.add_argument('--port', required=True, type=int)
    parser.add_argument('--auth-file')
    for name, flag in FLAGS:
        if name in BOOL_OPTIONS:
            parser.add_argument(flag, dest=name, action='store_true', default=None)
            parser.add_argument('--no-' + flag[2:], dest=name, action='store_false')
        elif name == 'impersonate_groups':
            parser.add_argument(flag, dest=name, action='append')
        else:
            parser.add_argument(flag, dest=name)
    args = parser.parse_args(argv)
    if not 0 < args.port < 65536:
        raise TunnelError('--port must be a TCP port between 1 and 65535, got %d: set ssh_port or ansible_port.' % args.port)
    return args


def read_auth_file(path):
    """The options of an auth file; refused unless it is a regular file of mode 0600 (or stricter) owned by us."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, 'O_NOFOLLOW', 0))
    except (IOError, OSError) as exc:
        raise TunnelError('Cannot read the API tunnel auth file %s (%s): refresh the inventory, which writes it.'
                          % (path, exc.strerror or exc))
    with os.fdopen(fd, 'rb') as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
            raise TunnelError('The API tunnel auth file %s is refused because only its owner may read it: it must be '
                              'mode 0600 and owned by uid %d (it is mode %04o, owned by uid %d).'
                              % (path, os.geteuid(), info.st_mode & 0o7777, info.st_uid))
        raw = handle.read()
    try:
        options = json.loads(raw.decode('utf-8'))
    except ValueError:
        options = None
    if not isinstance(options, dict):
        raise TunnelError('The API tunnel auth file %s is not a JSON object of connection options: refresh the '
                          'inventory, which writes it.' % path)
    unknown = sorted(set(options) - set(_client.AUTH_OPTIONS))
    if unknown:
        raise TunnelError('The API tunnel auth file %s has the unknown option %s: refresh the inventory, which writes it.'
                          % (path, unknown[0]))
    return options


def bridge_options(args):
    """Connection options of the bridge: its flags, then its auth file; the rest comes from the environment."""
    options = dict((name, getattr(args, name)) for name, _flag in FLAGS if getattr(args, name) is not None)
    if args.auth_file:
        options.update(read_auth_file(args.auth_file))
    return options


def ssl_context(configuration):
    """The TLS settings of the client configuration (CA, client certificate, verification) as an SSLContext."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        if configuration.verify_ssl:
            ca_data = getattr(configuration, 'ca_cert_data', None)
            if configuration.ssl_ca_cert:
                context.load_verify_locations(cafile=configuration.ssl_ca_cert)
            if ca_data:
                context.load_verify_locations(cadata=ca_data.decode('ascii') if isinstance(ca_data, bytes) else ca_data)
            if not configuration.ssl_ca_cert and not ca_data:
                context.load_default_certs()
            if getattr(configuration, 'assert_hostname', None) is False:
                context.check_hostname = False
        else:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if configuration.cert_file:
            context.load_cert_chain(configuration.cert_file, configuration.key_file)
    except (ssl.SSLError, IOError, OSError, ValueError) as exc:
        raise ConfigError('Cannot load the TLS files of the connection (CA %s, client certificate %s) for the API '
                          'tunnel (%s): check ca_cert, client_cert and client_key.'
                          % (configuration.ssl_ca_cert, configuration.cert_file, exc))
    return context


def _read_head(sock):
    """Bytes of an HTTP answer's status line and headers, read one at a time so nothing after them is consumed."""
    head = b''
    while not head.endswith(b'\r\n\r\n'):
        byte = sock.recv(1)
        if not byte:
            break
        head += byte
        if len(head) > 65536:
            break
    return head


def tunnel_proxy(configuration, host):
    """The proxy URL the tunnel connects through (as the client's pool would), or None; ConfigError for a proxy
    that is not http:// (socks and TLS proxies are not supported by the bridge)."""
    proxy = configuration.proxy if not getattr(configuration, '_proxy_from_env', False) else None
    if not proxy or _client._bypass_proxy(host, configuration.no_proxy):
        return None
    parsed = urlparse(proxy)
    if parsed.scheme != 'http':
        raise ConfigError('The API tunnel reaches the API server through http:// proxies only, and proxy is %s://%s: set '
                          'proxy (K8S_AUTH_PROXY, or the kubeconfig proxy-url) to an http:// proxy, or no_proxy to bypass it.'
                          % (parsed.scheme, parsed.hostname))
    return proxy


def _proxy_socket(proxy_url, headers, host, port, timeout):
    """A TCP connection to host:port through an HTTP proxy's CONNECT."""
    proxy = urlparse(proxy_url)
    sock = socket.create_connection((proxy.hostname, proxy.port or 80), timeout)
    target = '[%s]:%d' % (host, port) if ':' in host else '%s:%d' % (host, port)
    lines = ['CONNECT %s HTTP/1.1' % target, 'Host: %s' % target]
    headers = dict((k.lower(), v) for k, v in (headers or {}).items())
    if 'proxy-authorization' not in headers and proxy.username:
        token = '%s:%s' % (unquote(proxy.username), unquote(proxy.password or ''))
        headers['proxy-authorization'] = 'Basic ' + base64.b64encode(token.encode('utf-8')).decode('ascii')
    lines.extend('%s: %s' % item for item in sorted(headers.items()))
    try:
        sock.sendall(('\r\n'.join(lines) + '\r\n\r\n').encode('latin-1'))
        status_line = _read_head(sock).split(b'\r\n', 1)[0].decode('latin-1')
    except BaseException:
        sock.close()
        raise
    parts = status_line.split(' ', 2)
    if len(parts) < 2 or parts[1] != '200':
        sock.close()
        raise TunnelError('The proxy %s://%s:%s refused to connect to the API server %s (%s): check proxy and '
                          'proxy_headers.' % (proxy.scheme, proxy.hostname, proxy.port or 80, target,
                                              status_line.strip() or 'no answer'))
    return sock


def open_socket(client, timeout=HANDSHAKE_TIMEOUT):
    """A connected (TLS when https) socket to the client's API server, through its proxy when one applies."""
    configuration = client.configuration
    url = urlparse(client.host)
    secure = url.scheme == 'https'
    host, port = url.hostname, url.port or (443 if secure else 80)
    proxy = tunnel_proxy(configuration, client.host)
    if proxy:
        sock = _proxy_socket(proxy, configuration.proxy_headers, host, port, timeout)
    else:
        sock = socket.create_connection((host, port), timeout)
    if secure:
        context = ssl_context(configuration)
        try:
            sock = context.wrap_socket(sock, server_hostname=getattr(configuration, 'tls_server_name', None) or host)
        except BaseException:
            sock.close()
            raise
    return sock


def describe_status(status, body, namespace, name, port, client=None):
    """One sentence for a refused upgrade (an HTTP status before 101), see the module docstring for what virt-api
    answers. ``client`` reads the VMI's phase when the answer may mean it is not running."""
    st = parse_status(body) or {}
    message = st.get('message') or ''
    vmi = '%s/%s' % (namespace, name)
    path = SUBRESOURCE_PATH % (namespace, name, port)
    host = client.host if client is not None else None
    if status == 403:
        user = re.search(r'User "([^"]*)"', message)
        return 'forbidden: %s may not get virtualmachineinstances/portforward in %s (%s).' % (
            user.group(1) if user else 'these credentials', namespace, RBAC_HINT)
    if status == 404:
        details = st.get('details') or {}
        if details.get('name') == name or '"%s" not found' % name in message:
            return ('VMI %s not found (404): the VM is not running or has another name (the tunnel needs a running '
                    'VirtualMachineInstance).' % vmi)
        return ('The API server %s does not serve the KubeVirt subresource API subresources.kubevirt.io (404): install '
                'KubeVirt, or check that virt-api runs and its APIService is available.' % host)
    if status == 503:
        return ('The KubeVirt subresource API is unavailable (503 from %s): check that virt-api runs and the APIService '
                'v1.subresources.kubevirt.io is available%s.' % (host, (' (server: %s)' % message.rstrip('.')) if message else ''))
    if status in (400, 409, 500):
        phase, paused = vmi_state(client, namespace, name)
        if phase is not None and phase != 'Running':
            return 'VMI %s is not running (phase %s): start the VM, or wait until it runs.' % (vmi, phase)
        if paused or (status == 409 and 'paused' in message.lower()):
            return 'VMI %s is paused: unpause it (virtctl unpause vmi %s -n %s) to connect.' % (vmi, name, namespace)
        if 'connection refused' in message.lower():
            return ('nothing listens on port %d in VMI %s (start the SSH server in the guest, or set ssh_port / the '
                    'annotation virtfleet.kubevirt/ssh-port to the port it listens on).' % (port, vmi))
        if 'no network interfaces' in message.lower():
            return ('VMI %s reports no network interface yet, so virt-api cannot reach its port %d: wait until it runs '
                    'with an interface IP.' % (vmi, port))
        if 'dialing vm' in message.lower():
            return 'virt-api cannot reach port %d of VMI %s (server: %s).' % (port, vmi, message.rstrip('.'))
    if status >= 500:
        return 'The API server failed on the tunnel request GET %s (%d)%s.' % (
            path, status, (': %s' % message.rstrip('.')) if message else '')
    return describe_http_error(status, body, 'GET', path, host=host, verb='get',
                               resource='virtualmachineinstances/portforward', namespace=namespace)


def vmi_state(client, namespace, name):
    """(phase, paused) of a VMI read with one GET, or (None, False) when it cannot be read."""
    if client is None:
        return None, False
    try:
        vmi = client.request('GET', VMI_PATH % (quote(namespace, safe=''), quote(name, safe='')), timeout=(5.0, 10.0))
    except KubeVirtError:
        return None, False
    status = (vmi or {}).get('status') or {}
    paused = any(c.get('type') == 'Paused' and c.get('status') == 'True' for c in status.get('conditions') or [])
    return status.get('phase') or 'Unknown', paused


def connect(client, namespace, name, port, timeout=HANDSHAKE_TIMEOUT, websocket=None):
    """The open WebSocket to port ``port`` of VMI namespace/name; raises TunnelError / KubeVirtError with one sentence."""
    if websocket is None:
        websocket = import_websocket()
    url = urlparse(client.host)
    path = url.path.rstrip('/') + SUBRESOURCE_PATH % (quote(namespace, safe=''), quote(name, safe=''), port)
    ws_url = '%s://%s%s' % ('wss' if url.scheme == 'https' else 'ws', url.netloc.rsplit('@', 1)[-1], path)
    try:
        sock = open_socket(client, timeout)
    except (OSError, ssl.SSLError) as exc:
        raise TunnelError(describe_transport_error(exc, client.host)[0])
    ws = websocket.WebSocket(enable_multithread=True, skip_utf8_validation=True)
    try:
        # redirect_limit=0: a redirect must not carry the credentials to another server; suppress_origin: as
        # KubeVirt's own client (gorilla's dialer sends no Origin).
        ws.connect(ws_url, socket=sock, header=client.header_lines(), subprotocols=[PROTOCOL], suppress_origin=True,
                   redirect_limit=0, timeout=timeout)
    except websocket.WebSocketBadStatusException as exc:
        sock.close()
        raise TunnelError(describe_status(exc.status_code, exc.resp_body, namespace, name, port, client))
    except websocket.WebSocketTimeoutException:
        sock.close()
        raise TunnelError('The API server at %s did not answer the tunnel request for VMI %s/%s in %d s: check host / '
                          'proxy and that virt-api runs.' % (client.host, namespace, name, timeout))
    except websocket.WebSocketException as exc:
        sock.close()
        raise TunnelError('The API server at %s did not switch the tunnel request for VMI %s/%s to a WebSocket (%s): '
                          'a proxy in between may not pass WebSocket upgrades.' % (client.host, namespace, name, exc))
    except (OSError, ssl.SSLError) as exc:
        sock.close()
        raise TunnelError(describe_transport_error(exc, client.host)[0])
    ws.settimeout(None)
    return ws


def exception_text(exc):
    """websocket-client raises some errors as (format, value) pairs ("Invalid opcode %r", 3): one readable text."""
    args = getattr(exc, 'args', ())
    if len(args) > 1 and isinstance(args[0], str) and '%' in args[0]:
        try:
            return args[0] % tuple(args[1:])
        except (TypeError, ValueError):
            pass
    return str(exc)


def import_websocket():
    """websocket-client, at least MIN_WEBSOCKET_CLIENT (which keeps the Status body of a refused upgrade, the
    source of every error sentence)."""
    try:
        import websocket  # pylint: disable=import-outside-toplevel
    except ImportError as exc:
        raise TunnelError('The websocket-client Python library is required for the api_tunnel address strategy on the '
                          'controller: pip install websocket-client (%s).' % exc)
    version = getattr(websocket, '__version__', '0')
    if tuple(int(p) if p.isdigit() else 0 for p in version.split('.')[:3]) < MIN_WEBSOCKET_CLIENT:
        raise TunnelError("websocket-client %s is too old for the api_tunnel address strategy: pip install "
                          "'websocket-client>=%s' on the controller." % (version, '.'.join(map(str, MIN_WEBSOCKET_CLIENT))))
    return websocket


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


# How a connection ends without a close frame: virt-api closes the TCP connection when the guest does, and a close
# with bytes still unread by the other side is a reset. Such an end is the tunnel's end, not an error.
ENDED_ERRNOS = (errno.EPIPE, errno.ECONNRESET, errno.ECONNABORTED, errno.EBADF, errno.ENOTCONN)


def connection_ended(exc, websocket):
    """True when ``exc`` only says the connection (or stdout) is gone."""
    if isinstance(exc, (websocket.WebSocketConnectionClosedException, ssl.SSLEOFError, ssl.SSLZeroReturnError)):
        return True
    return isinstance(exc, OSError) and exc.errno in ENDED_ERRNOS


def pump(ws, stdin_fd=0, stdout_fd=1, linger=LINGER, websocket=None):
    """Copy stdin to binary frames and data frames to stdout until either side ends.

    Returns None on a clean end (stdin closed, the server closed or dropped the connection, stdout closed), or a
    sentence for an error (a frame websocket-client rejects, a TLS error) that happened before stdin ended.
    """
    websocket = websocket or import_websocket()
    done = threading.Event()
    stdin_ended = threading.Event()
    errors = []

    def failed(what, exc):
        if not done.is_set() and not stdin_ended.is_set() and not connection_ended(exc, websocket):
            errors.append('%s (%s: %s)' % (what, type(exc).__name__, exception_text(exc)))

    def upstream():
        try:
            while True:
                data = os.read(stdin_fd, CHUNK)
                if not data:
                    break
                ws.send(data, websocket.ABNF.OPCODE_BINARY)
            stdin_ended.set()
            ws.send_close()
            done.wait(linger)
        except (OSError, websocket.WebSocketException) as exc:
            failed('sending to the tunnel failed', exc)
        finally:
            done.set()

    def downstream():
        try:
            while True:
                opcode, data = ws.recv_data()
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    break
                if data:
                    _write_all(stdout_fd, data)
        except (OSError, websocket.WebSocketException) as exc:
            failed('the tunnel connection broke', exc)
        finally:
            done.set()

    for target in (upstream, downstream):
        thread = threading.Thread(target=target)
        thread.daemon = True
        thread.start()
    done.wait()
    try:
        ws.shutdown()
    except Exception:  # pylint: disable=broad-except
        pass
    return errors[0] if errors else None


def run(argv, stdin_fd=0, stdout_fd=1, environ=None):
    """The bridge: returns the exit status, after one sentence on stderr for an error."""
    namespace = name = None
    try:
        args = parse_args(argv)
        namespace, name = args.namespace, args.name
        websocket = import_websocket()
        if _client.IMPORT_ERROR is not None:
            raise TunnelError('The kubernetes Python library (>= 28.1.0) is required for the API tunnel on the '
                              'controller: pip install kubernetes (%s).' % _client.IMPORT_ERROR)
        # client_from_options' steps, with the proxy checked before the client builds its pool (a socks proxy needs
        # PySocks there, which the tunnel would not use anyway).
        auth = _client.resolve_auth(bridge_options(args), environ)
        configuration = _client.build_configuration(auth, environ)
        tunnel_proxy(configuration, configuration.host)
        client = _client.Client(configuration, retry=_client.RetryPolicy(attempts=2),
                                impersonate_user=auth.get('impersonate_user'),
                                impersonate_groups=auth.get('impersonate_groups'))
        ws = connect(client, namespace, name, args.port, websocket=websocket)
        error = pump(ws, stdin_fd, stdout_fd, websocket=websocket)
        if error:
            raise TunnelError('The API tunnel to VMI %s/%s ended: %s.' % (namespace, name, error))
    except KubeVirtError as exc:
        report(exc.msg.rstrip('\n') + '\n')
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_ERROR
    except Exception as exc:  # pylint: disable=broad-except
        where = ' to VMI %s/%s' % (namespace, name) if name else ''
        report('The API tunnel%s failed unexpectedly (%s: %s).\n' % (where, type(exc).__name__, exc))
        return EXIT_ERROR
    return 0


def report(text, parent_stderr=None):
    """Write the error sentence to stderr, and to ssh's own stderr when ours is /dev/null.

    ssh discards a ProxyCommand's stderr when ControlPersist is on (OpenSSH sshconnect.c ``ssh_proxy_connect``:
    ``stdfd_devnull`` unless debugging), and ansible-core's default ssh_args turn it on: the sentence would never reach
    Ansible's UNREACHABLE message, which is ssh's stderr. Our parent is that ssh (it runs the command with ``exec``),
    which still writes to Ansible's pipe while it connects, so the sentence goes there too (Linux /proc; elsewhere it is
    only in our stderr). Not when that is a regular file: ssh writes it at its own offset, over ours.
    ``parent_stderr``: that path, for tests.
    """
    sys.stderr.write(text)
    try:
        sys.stderr.flush()
        if not os.path.samestat(os.fstat(sys.stderr.fileno()), os.stat(os.devnull)):
            return
        fd = os.open(parent_stderr or '/proc/%d/fd/2' % os.getppid(), os.O_WRONLY | os.O_APPEND | getattr(os, 'O_NOCTTY', 0))
    except (OSError, ValueError, AttributeError):   # no real stderr (a test's capture), no /proc, no parent's stderr
        return
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.write(fd, text.encode('utf-8', 'replace'))
    except OSError:
        pass
    finally:
        os.close(fd)


def main():
    sys.exit(run(sys.argv[1:]))


if __name__ == '__main__':
    main()
