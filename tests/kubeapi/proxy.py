"""A TLS reverse proxy in front of a real kube-apiserver with the emulator's request log and injected faults.

    python -m tests.kubeapi.proxy --kubeconfig UPSTREAM --out-kubeconfig FILE [--port 0] [--faults JSON]
    -> prints one JSON line {"url": ..., "kubeconfig": ..., "ca_file": ...} when ready; runs until SIGTERM/SIGINT.

    p = Proxy(upstream_kubeconfig, out_kubeconfig).start()   # in-process (a serving thread)
    p = ProxyProcess(upstream_kubeconfig, out_kubeconfig).start()   # or as a subprocess
    p.url; p.kubeconfig; p.ca_file; p.stop()

What it does
* Serves HTTPS on 127.0.0.1 (free port by default) with its own CA and server certificate (tls.py); ``ca_file``
  (``proxy-ca.crt`` beside the out kubeconfig) holds that CA. The out kubeconfig points at the proxy with that CA
  and the upstream kubeconfig's credentials (token, or client certificate inlined as ``*-data``).
* Forwards every other request (method, path and query, headers including ``Authorization``, body) to the
  upstream server over TLS, verified with the upstream kubeconfig's CA, and presents the upstream kubeconfig's
  client certificate if it has one. Then kube-apiserver authenticates every request as that certificate's user
  (x509 comes before bearer tokens in its authenticator chain): per-token RBAC needs a token-based upstream
  kubeconfig, where a client's ``Authorization`` header is forwarded unchanged. Responses are streamed as they
  arrive (a watch is relayed chunk by chunk, never buffered); upstream connections are kept alive and reused.
* Request log and hooks like the emulator's (server.py): one entry per request, appended on arrival, with
  ``seq, method, path, query, verb, status, user, fault``. ``verb`` is worked out from the method and path the
  way the emulator's router does (get/list/watch/create/update/patch/apply/delete/deletecollection).
  ``user`` is ``"admin"`` for the upstream kubeconfig's own credentials, the registered user for a token added
  with ``PUT /_emulator/tokens``, the CN of another client certificate, else None (the proxy does not know who
  the real server will decide a foreign token is).
* Hooks under ``/_emulator/`` are answered by the proxy, never forwarded, and are not request-logged:
  ``GET requests?since=N``, ``DELETE requests``, ``GET mark``, ``GET|PUT|DELETE faults`` (the emulator's fault
  config, faults.py), ``PUT tokens`` ({"token", "user", "groups"} or a list: the proxy forwards that token's
  requests with the upstream credentials and ``Impersonate-User``/``Impersonate-Group`` headers, so a test
  user only needs RBAC objects upstream), ``DELETE tokens/{token}`` and ``POST client-certs`` ({"user", "groups"}:
  a client certificate issued by the proxy's CA, CN = user and O = groups; requests presenting it are forwarded
  like a registered token's, impersonating that user and those groups).
  **Hook authentication:** the caller must present the upstream kubeconfig's credentials, compared exactly: the
  same bearer token, or the same client certificate (the proxy asks for an optional client certificate and
  trusts that one certificate and the upstream CA). Anything else gets a 403 Status; being local is not enough.
* Faults are decided and applied as server.py does: latency first; 429/500 Status replies (errors.py); a
  connection reset; status 410 on a watch as a 200 stream with one ERROR 410 ``Expired`` event (not forwarded);
  410 on anything else as a 410 Status; ``after_commit``: the write is forwarded and completed upstream, its
  answer thrown away, then the client gets the reset or the 500 (logged ``reset-after-commit`` /
  ``500-after-commit``). Requests with ``X-Kubeapi-Harness: true`` are logged but never faulted (the header is
  not forwarded). Faulted requests other than after-commit ones never reach the upstream server.

* Protocol upgrades (a request whose ``Connection`` names ``upgrade``: virt-api's portforward WebSocket, kubectl
  exec/port-forward over WebSockets) go upstream on a connection of their own, with the same credentials or
  impersonation; a 101 answer is passed on and the bytes are then copied both ways until either side closes (what
  kube-apiserver's UpgradeAwareHandler does in front of an aggregated API); any other answer is relayed as usual.
  Logged with the answer's status (101); faults hit them before they are forwarded, like any request.

Not done: HTTP/2 (SPDY upgrades are relayed as bytes like any other): clients speak HTTP/1.1 to the proxy.
A watch whose client hangs up is ended upstream within half a second (the client socket turning readable).
"""
import argparse
import base64
import http.client
import json
import os
import select
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import yaml

from . import errors
from .faults import Faults
from .server import RequestLog, Server, _dumps, _q
from .tls import CertificateAuthority
from .util import wait_for_signal

REPO = Path(__file__).resolve().parents[2]
# Not copied between the two connections (hop-by-hop, or set again by the side that sends).
HOP_HEADERS = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
               "host", "content-length", "expect", "x-kubeapi-harness"}
RESPONSE_SKIP = HOP_HEADERS | {"date", "server"}
VIRT_SUB_GROUP = "subresources.kubevirt.io"
APPLY_TYPES = ("application/apply-patch+yaml", "application/apply-patch+cbor")
UPSTREAM_TIMEOUT = 120


class UpstreamError(Exception):
    pass


def _b64(data):
    return base64.b64encode(data).decode()


def _material(obj, key, base):
    """Bytes of kubeconfig entry `key` given as `key-data` (base64) or as a path (relative to the kubeconfig)."""
    if obj.get(key + "-data"):
        return base64.b64decode(obj[key + "-data"])
    if obj.get(key):
        return (base / obj[key]).read_bytes()
    return None


class Upstream:
    """The real server of a kubeconfig: address, TLS context (CA, client certificate) and credentials."""

    def __init__(self, kubeconfig, context=None):
        path = Path(kubeconfig).resolve()
        kc = yaml.safe_load(path.read_text())
        name = context or kc.get("current-context")
        ctx = next(c for c in kc.get("contexts") or [] if c["name"] == name)["context"]
        cluster = next(c for c in kc["clusters"] if c["name"] == ctx["cluster"])["cluster"]
        self.user_name = ctx.get("user") or "admin"
        self.user = dict(next((u.get("user") or {} for u in kc.get("users") or [] if u["name"] == ctx.get("user")),
                              {}))
        self.namespace = ctx.get("namespace")
        url = urllib.parse.urlsplit(cluster["server"])
        if url.scheme != "https":
            raise ValueError("upstream %s: only https servers are supported" % cluster["server"])
        self.host, self.port = url.hostname, url.port or 443
        self.netloc = url.netloc
        base = path.parent
        self.ca_pem = _material(cluster, "certificate-authority", base)
        self.token = self.user.get("token")
        if not self.token and self.user.get("tokenFile"):
            self.token = (base / self.user["tokenFile"]).read_text().strip()
        self.cert_pem = _material(self.user, "client-certificate", base)
        self.key_pem = _material(self.user, "client-key", base)
        self.cert_der = ssl.PEM_cert_to_DER_cert(self.cert_pem.decode()) if self.cert_pem else None
        if self.cert_pem is None and not self.token and self.user:
            raise ValueError("upstream kubeconfig user %r: only token and client-certificate credentials are "
                             "supported" % self.user_name)
        if cluster.get("insecure-skip-tls-verify"):
            self.ssl = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            self.ssl.check_hostname = False
            self.ssl.verify_mode = ssl.CERT_NONE
        else:
            self.ssl = ssl.create_default_context(cadata=self.ca_pem.decode() if self.ca_pem else None)
        self.server_hostname = cluster.get("tls-server-name") or self.host
        if self.cert_pem:
            _load_chain(self.ssl, self.cert_pem, self.key_pem)

    def user_for_clients(self):
        """The kubeconfig user entry for the proxy's clients: the same credentials, files inlined."""
        if self.cert_pem:
            return {"client-certificate-data": _b64(self.cert_pem), "client-key-data": _b64(self.key_pem)}
        if self.token:
            return {"token": self.token}
        return dict(self.user)

    def connect(self, timeout):
        return _Connection(self.host, self.port, timeout, self.ssl, self.server_hostname)


class _Connection(http.client.HTTPSConnection):
    """HTTPSConnection that verifies the server as `server_hostname` (the kubeconfig's tls-server-name)."""

    def __init__(self, host, port, timeout, context, server_hostname):
        super().__init__(host, port, timeout=timeout, context=context)
        self._server_hostname = server_hostname

    def connect(self):
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self._server_hostname)


def _load_chain(ctx, cert_pem, key_pem):
    """load_cert_chain wants files: write them to a private temporary directory for the call."""
    tmp = tempfile.mkdtemp(prefix="kubeapi-proxy-")
    try:
        cf, kf = os.path.join(tmp, "tls.crt"), os.path.join(tmp, "tls.key")
        for f, data in ((cf, cert_pem), (kf, key_pem)):
            fd = os.open(f, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        ctx.load_cert_chain(cf, kf)
    finally:
        for f in os.listdir(tmp):
            os.unlink(os.path.join(tmp, f))
        os.rmdir(tmp)


def verb_of(method, path, query, content_type=""):
    """The emulator router's verb for a request (server.py `_route`), from the path alone."""
    if method == "GET" and _q(query, "watch") in ("true", "1"):
        return "watch"
    segs = [urllib.parse.unquote(s) for s in path.split("/") if s]
    rest, group = None, None
    if segs[:1] == ["api"] and len(segs) >= 3:
        group, rest = "", segs[2:]
    elif segs[:1] == ["apis"] and len(segs) >= 4:
        group, rest = segs[1], segs[3:]
    if rest is None:   # discovery, /version, /openapi, /healthz...
        return {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch",
                "DELETE": "delete"}.get(method, method.lower())
    if rest[0] == "watch":   # the deprecated /watch/ paths
        return "watch"
    if group == VIRT_SUB_GROUP:
        return "update" if method == "PUT" else "get"
    if rest[0] == "namespaces" and len(rest) >= 3 and not (len(rest) == 3 and rest[2] in ("status", "finalize")):
        rest = rest[2:]
    name = rest[1] if len(rest) > 1 else None
    if method == "GET":
        return "get" if name else "list"
    if method == "PATCH":
        return "apply" if (content_type or "").startswith(APPLY_TYPES) else "patch"
    if method == "DELETE":
        return "delete" if name else "deletecollection"
    return {"POST": "create", "PUT": "update"}.get(method, method.lower())


class ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kubeapi-proxy"
    # Headers and body are two writes: with Nagle's algorithm the body waited for the client's delayed ACK of the
    # headers (about 40 ms on Linux loopback), which every request through the proxy paid.
    disable_nagle_algorithm = True
    proxy = None   # set by Proxy

    def log_message(self, fmt, *args):   # quiet: the request log is the record
        pass

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def do_OPTIONS(self):
        self._dispatch("OPTIONS")

    # --- plumbing --------------------------------------------------------------------------------------------
    def _read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            out = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):   # trailers
                        pass
                    return b"".join(out)
                out.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _set_status(self, code):
        self._status = code
        if self._entry is not None:
            self._entry["status"] = code

    def _send(self, code, body, headers=None):
        data = body if isinstance(body, bytes) else _dumps(body)
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache, private")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self._set_status(code)

    def _chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _reset(self):
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _identify(self):
        """(user for the log, caller holds the upstream admin credentials, token spec to impersonate or None)."""
        up = self.proxy.upstream
        auth = self.headers.get("Authorization") or ""
        if auth[:7].lower() == "bearer ":
            token = auth[7:].strip()
            if up.token and token == up.token:
                return "admin", True, None
            spec = self.proxy.tokens.get(token)
            if spec is not None:
                return spec["user"], False, spec
            return None, False, None
        try:
            der = self.connection.getpeercert(binary_form=True) if isinstance(self.connection, ssl.SSLSocket) \
                else None
        except (ValueError, ssl.SSLError):
            der = None
        if der:
            if up.cert_der is not None and der == up.cert_der:
                return "admin", True, None
            peer = self.connection.getpeercert() or {}
            names = [(k, v) for rdn in peer.get("subject", ()) for k, v in rdn]
            user = next((v for k, v in names if k == "commonName"), None)
            issuer = [v for rdn in peer.get("issuer", ()) for k, v in rdn if k == "commonName"]
            if user and issuer == [self.proxy.ca_name]:
                # a test user's certificate (POST /_emulator/client-certs): impersonate its CN and O groups
                return user, False, {"user": user, "groups": [v for k, v in names if k == "organizationName"]}
            return user, False, None
        return None, False, None

    # --- dispatch --------------------------------------------------------------------------------------------
    def _dispatch(self, method):
        proxy = self.proxy
        self._status = None
        parsed = urllib.parse.urlsplit(self.path)
        path = parsed.path.rstrip("/") or "/"
        query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
        watch = method == "GET" and _q(query, "watch") in ("true", "1")
        entry = {"method": method, "path": path, "query": {k: v[-1] for k, v in query.items()},
                 "verb": verb_of(method, path, query, self.headers.get("Content-Type")), "status": None,
                 "user": None, "fault": None}
        hook = path == "/_emulator" or path.startswith("/_emulator/")
        self._entry = None if hook else entry
        if not hook:
            proxy.log.add(entry)
        try:
            body = self._read_body()
            user, admin, spec = self._identify()
            entry["user"] = user
            if hook:
                if not admin:
                    raise errors.ApiError(403, "Forbidden", "kubeapi proxy hooks need the upstream kubeconfig's "
                                                            "credentials")
                return self._hook(method, path, query, body)
            if self.headers.get("X-Kubeapi-Harness") == "true":
                latency, outcome = 0, None
            else:
                latency, outcome = proxy.faults.decide(method, path, watch)
            if latency:
                time.sleep(latency)
            if outcome is not None and proxy.faults.after_commit(method, outcome):
                # A lost answer: the write is done upstream, then the client gets the fault instead.
                entry["fault"] = "%s-after-commit" % outcome
                try:
                    self._forward(method, body, spec, watch, discard=True)
                except UpstreamError:
                    pass
                self._status = None
                entry["status"] = None
                if outcome == "reset":
                    return self._reset()
                raise errors.internal_error() if outcome == 500 else errors.ApiError(
                    int(outcome), "Timeout", "the server was unable to return a response in the time allotted, "
                    "but may still be processing the request")
            if outcome is not None:
                entry["fault"] = str(outcome)
                if outcome == "reset":
                    return self._reset()
                if outcome == 410:
                    if watch:
                        return self._expired_watch(_q(query, "resourceVersion"))
                    raise errors.gone()
                raise errors.too_many_requests() if outcome == 429 else errors.internal_error()
            if _is_upgrade(self.headers):
                return self._forward_upgrade(method, spec)
            self._forward(method, body, spec, watch)
        except errors.ApiError as exc:
            try:
                self._send(exc.code, exc.status(), exc.headers)
            except OSError:
                pass
        except UpstreamError as exc:
            try:
                self._send(502, errors.ApiError(502, "InternalError", "kubeapi proxy: %s" % exc).status())
            except OSError:
                pass
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True
        except Exception as exc:   # a proxy bug: answer 500 and keep serving, with the traceback on stderr
            traceback.print_exc()
            try:
                self._send(500, errors.ApiError(500, "InternalError", "kubeapi proxy bug: %r" % exc).status())
            except OSError:
                pass
        finally:
            if not hook:
                entry["status"] = self._status or None

    def _expired_watch(self, rv):
        """What kube-apiserver sends for a watch from a resourceVersion it no longer has."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        self._set_status(200)
        self.close_connection = True
        status = errors.gone("too old resource version: %s" % (rv or "0")).status()
        self._chunk(_dumps({"type": "ERROR", "object": status}) + b"\n")
        self._chunk(b"")

    # --- forwarding ------------------------------------------------------------------------------------------
    def _upstream_headers(self, spec):
        up = self.proxy.upstream
        headers = [(k, v) for k, v in self.headers.items() if k.lower() not in HOP_HEADERS]
        if spec is not None:   # a token registered with PUT /_emulator/tokens: admin credentials + impersonation
            headers = [(k, v) for k, v in headers if k.lower() != "authorization"
                       and not k.lower().startswith("impersonate-")]
            if up.token:
                headers.append(("Authorization", "Bearer " + up.token))
            headers.append(("Impersonate-User", spec["user"]))
            for group in spec.get("groups") or ():
                headers.append(("Impersonate-Group", group))
        return headers

    def _forward(self, method, body, spec, watch, discard=False):
        proxy = self.proxy
        headers = self._upstream_headers(spec)
        resp = conn = None
        for attempt in (0, 1):
            conn, reused = proxy.pool.get(None if watch else UPSTREAM_TIMEOUT, fresh=attempt > 0)
            try:
                conn.putrequest(method, self.path, skip_host=True, skip_accept_encoding=True)
                conn.putheader("Host", proxy.upstream.netloc)
                for k, v in headers:
                    conn.putheader(k, v)
                if body or method in ("POST", "PUT", "PATCH"):
                    conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body or None)
                resp = conn.getresponse()
                break
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                # A kept-alive connection the server has closed meanwhile: once more on a new one.
                # (The other idle ones are as old: dropped too, and the retry opens a new connection.)
                if attempt == 0 and reused and isinstance(exc, (http.client.RemoteDisconnected, BrokenPipeError,
                                                                ConnectionResetError, ssl.SSLError)):
                    proxy.pool.drop_idle()
                    continue
                raise UpstreamError("upstream %s: %s" % (proxy.upstream.netloc, exc))
        proxy.pool.active.add(conn)
        done = threading.Event()
        if watch:
            threading.Thread(target=self._watch_client, args=(conn, done), daemon=True).start()
        try:
            self._relay(method, resp, discard)
        except BaseException:
            conn.close()
            raise
        finally:
            done.set()
            proxy.pool.active.discard(conn)
        if resp.will_close or not resp.isclosed():
            conn.close()
        else:
            proxy.pool.put(conn)

    def _forward_upgrade(self, method, spec):
        """Relay a protocol upgrade on a fresh upstream connection (see the module docstring)."""
        up = self.proxy.upstream
        try:
            sock = up.ssl.wrap_socket(socket.create_connection((up.host, up.port), timeout=UPSTREAM_TIMEOUT),
                                      server_hostname=up.server_hostname)
            lines = ["%s %s HTTP/1.1" % (method, self.path), "Host: " + up.netloc]
            lines += ["%s: %s" % kv for kv in self._upstream_headers(spec)]
            lines += ["%s: %s" % (name, v) for name in ("Connection", "Upgrade") for v in self.headers.get_all(name) or []]
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            upstream = sock.makefile("rb")
            status_line = upstream.readline(65537)
            headers = http.client.parse_headers(upstream)
            parts = status_line.decode("latin-1").split(None, 2)
            status = int(parts[1])
        except (OSError, ValueError, IndexError, http.client.HTTPException) as exc:
            raise UpstreamError("upstream %s: %s" % (up.netloc, exc or "no answer"))
        self.close_connection = True
        if status != 101:   # refused (a Status): relayed as an ordinary answer
            try:
                body = _read_message_body(upstream, headers)
            except (OSError, ValueError) as exc:
                raise UpstreamError("upstream %s: %s" % (up.netloc, exc))
            finally:
                sock.close()
            self.send_response(status, parts[2].strip() if len(parts) > 2 else None)
            for k, v in headers.items():
                if k.lower() not in RESPONSE_SKIP:
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self._set_status(status)
            return
        sock.settimeout(None)
        self.connection.sendall(status_line + b"".join(b"%s: %s\r\n" % (k.encode("latin-1"), v.encode("latin-1"))
                                                       for k, v in headers.items()) + b"\r\n")
        self._set_status(101)
        relay = _Relay(self.connection, self.rfile, sock, upstream)
        self.server.add_tunnel(relay)
        try:
            relay.run()
        finally:
            self.server.remove_tunnel(relay)

    def _watch_client(self, conn, done):
        """While a watch is relayed: a client that hangs up (its socket turns readable: FIN or TLS close_notify,
        clients send nothing else during a watch) ends the upstream watch at once, not at its next event."""
        while not done.is_set():
            try:
                readable, _, _ = select.select([self.connection], [], [], 0.5)
            except (OSError, ValueError):
                readable = True
            if readable and not done.is_set():
                try:
                    if conn.sock is not None:
                        conn.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return

    def _relay(self, method, resp, discard):
        status = resp.status
        if discard:
            try:
                resp.read()
            except (OSError, http.client.HTTPException):
                pass
            return
        no_body = method == "HEAD" or status in (204, 304) or 100 <= status < 200
        self.send_response(status, resp.reason)
        for k, v in resp.getheaders():
            if k.lower() not in RESPONSE_SKIP or (method == "HEAD" and k.lower() == "content-length"):
                self.send_header(k, v)
        if no_body:
            if method != "HEAD":
                self.send_header("Content-Length", "0")
            self.end_headers()
            self._set_status(status)
            resp.read()
            return
        if resp.length is not None:   # a Content-Length answer: copied as it comes
            self.send_header("Content-Length", str(resp.length))
            self.end_headers()
            self._set_status(status)
            while True:
                data = self._read_upstream(resp, resp.read, 65536)
                if not data:
                    break
                self.wfile.write(data)
            self.wfile.flush()
            return
        # Chunked (a watch) or close-delimited: relayed chunk by chunk as the upstream bytes arrive.
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._set_status(status)
        while True:
            data = self._read_upstream(resp, resp.read1, 65536)
            if not data:
                break
            self._chunk(data)
        self._chunk(b"")

    def _read_upstream(self, resp, read, n):
        try:
            return read(n)
        except (OSError, http.client.HTTPException, ValueError):
            # The upstream stream broke (or the proxy is stopping): the client sees the connection end.
            self.close_connection = True
            raise ConnectionResetError("upstream stream ended")

    # --- hooks -----------------------------------------------------------------------------------------------
    def _hook(self, method, path, query, body):
        proxy = self.proxy
        try:
            doc = json.loads(body) if body else None
        except ValueError as exc:
            raise errors.bad_request("hook body: %s" % exc)
        parts = path.split("/")[2:]
        what = parts[0] if parts else ""
        if what == "requests":
            if method == "DELETE":
                proxy.log.clear()
                return self._send(200, {"mark": proxy.log.seq})
            since = _q(query, "since")
            try:
                since = int(since) if since else None
            except ValueError:
                raise errors.bad_request("invalid integer: %s" % since)
            return self._send(200, {"mark": proxy.log.seq, "items": proxy.log.since(since)})
        if what == "mark":
            return self._send(200, {"mark": proxy.log.seq})
        if what == "faults":
            if method == "DELETE":
                proxy.faults.clear()
            elif method == "PUT":
                try:
                    proxy.faults.configure(**(doc or {}))
                except (TypeError, ValueError) as exc:
                    raise errors.bad_request("faults: %s" % exc)
            return self._send(200, dict(proxy.faults.config, injected=proxy.faults.injected))
        if what == "client-certs":
            if method != "POST":
                raise errors.method_not_allowed()
            cert, key = proxy.ca.issue((doc or {}).get("user") or "user", groups=(doc or {}).get("groups") or ())
            return self._send(200, {"cert": cert.decode(), "key": key.decode()})
        if what == "tokens":
            if method == "DELETE" and len(parts) > 1:
                proxy.tokens.pop(urllib.parse.unquote(parts[1]), None)
                return self._send(200, {})
            if method != "PUT":
                raise errors.method_not_allowed()
            specs = doc if isinstance(doc, list) else [doc]
            out = []
            for s in specs:
                if not s or not s.get("token"):
                    continue
                s = {"token": s["token"], "user": s.get("user") or s["token"], "groups": list(s.get("groups") or [])}
                proxy.tokens[s["token"]] = s
                out.append(s)
            return self._send(200, {"tokens": out})
        raise errors.not_found_path()


def _is_upgrade(headers):
    return any(t.strip().lower() == "upgrade" for v in headers.get_all("Connection") or [] for t in v.split(","))


def _read_message_body(fp, headers):
    """The body of an HTTP/1.1 answer read from `fp`: Content-Length bytes, the chunks of a chunked one, or (neither)
    everything up to the end of the connection."""
    if "chunked" in (headers.get("Transfer-Encoding") or "").lower():
        out = []
        while True:
            size = int(fp.readline(65537).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while fp.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(out)
            out.append(fp.read(size))
            fp.readline(65537)
    if headers.get("Content-Length") is not None:
        return fp.read(int(headers["Content-Length"]))
    return fp.read()


class _Relay:
    """The bytes of an upgraded connection, both ways, until either side ends (then both are shut down).

    Each side is read through its buffered reader (`read1`): what was read with the HTTP headers is not lost.
    """

    def __init__(self, client, client_reader, upstream, upstream_reader):
        self.client, self.client_reader = client, client_reader
        self.upstream, self.upstream_reader = upstream, upstream_reader
        self._once = threading.Lock()
        self.ended_by = None

    def end(self, why):
        with self._once:
            if self.ended_by is not None:
                return
            self.ended_by = why
        for sock in (self.upstream, self.client):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.upstream.close()

    def _copy(self, reader, dst, why):
        try:
            while True:
                data = reader.read1(65536)
                if not data:
                    break
                dst.sendall(data)
        except (OSError, ValueError):
            pass
        self.end(why)

    def run(self):
        back = threading.Thread(target=self._copy, args=(self.upstream_reader, self.client, "upstream"), daemon=True,
                                name="kubeapi-proxy-upgrade")
        back.start()
        self._copy(self.client_reader, self.upstream, "client")
        back.join(5)


class _Pool:
    """Kept-alive upstream connections; `active` holds the ones relaying now (closed by stop())."""

    def __init__(self, upstream, size=16):
        self.upstream = upstream
        self.size = size
        self._idle = []
        self._lock = threading.Lock()
        self.active = set()

    MAX_IDLE = 30.0   # seconds an idle connection is reused for (the server may close it after a while)

    def get(self, timeout, fresh=False):
        conn = None
        with self._lock:
            while self._idle and not fresh:
                conn, since = self._idle.pop()
                if time.monotonic() - since < self.MAX_IDLE:
                    break
                conn.close()
                conn = None
        if conn is None:
            return self.upstream.connect(timeout), False
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn, True

    def put(self, conn):
        with self._lock:
            if len(self._idle) < self.size:
                self._idle.append((conn, time.monotonic()))
                return
        conn.close()

    def drop_idle(self):
        with self._lock:
            idle, self._idle = self._idle, []
        for conn, _since in idle:
            conn.close()

    def close(self):
        with self._lock:
            idle, self._idle = [conn for conn, _since in self._idle], []
        for conn in idle + list(self.active):
            try:
                if conn.sock is not None:
                    conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()


class Proxy:
    """The proxy in this process: start() serves from a thread; stop() ends it (and the watches it relays)."""

    def __init__(self, upstream_kubeconfig, out_kubeconfig, host="127.0.0.1", port=0, context=None, faults=None):
        self.upstream = Upstream(upstream_kubeconfig, context)
        self.kubeconfig = Path(out_kubeconfig).resolve()
        self.ca_file = self.kubeconfig.parent / "proxy-ca.crt"
        self.host, self.port = host, port
        self.log = RequestLog()
        self.faults = Faults()
        if faults:
            self.faults.configure(**faults)
        self.tokens = {}
        self.ca = self.ca_name = None
        self.pool = _Pool(self.upstream)
        self.url = None
        self._server = None
        self._thread = None

    def _ssl_context(self, ca):
        cert, key = ca.issue("kubeapi-proxy", server_hosts=[self.host, "localhost", "127.0.0.1"])
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        _load_chain(ctx, cert, key)
        up = self.upstream
        # Ask for an optional client certificate: test users' ones (issued by this proxy's CA, see client-certs) and,
        # so that the hooks can recognise it, the upstream kubeconfig's own one.
        ctx.verify_mode = ssl.CERT_OPTIONAL
        ctx.load_verify_locations(cadata=ca.cert_pem.decode())
        if up.cert_pem:
            ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
            ctx.load_verify_locations(cadata=up.cert_pem.decode())
            if up.ca_pem:
                ctx.load_verify_locations(cadata=up.ca_pem.decode())
        return ctx

    def start(self):
        ca = self.ca = CertificateAuthority()
        self.ca_name = ca.cert.subject.rfc4514_string().split("=", 1)[1]
        handler = type("BoundProxyHandler", (ProxyHandler,), {"proxy": self})
        self._server = Server((self.host, self.port), handler, self._ssl_context(ca))
        self.port = self._server.server_address[1]
        self.url = "https://%s:%d" % (self.host, self.port)
        self.kubeconfig.parent.mkdir(parents=True, exist_ok=True)
        self.ca_file.write_bytes(ca.cert_pem)
        context = {"cluster": "kubeapi-proxy", "user": self.upstream.user_name}
        if self.upstream.namespace:
            context["namespace"] = self.upstream.namespace
        kc = {"apiVersion": "v1", "kind": "Config", "preferences": {},
              "clusters": [{"name": "kubeapi-proxy", "cluster": {
                  "server": self.url, "certificate-authority-data": _b64(ca.cert_pem)}}],
              "users": [{"name": self.upstream.user_name, "user": self.upstream.user_for_clients()}],
              "contexts": [{"name": "kubeapi-proxy", "context": context}],
              "current-context": "kubeapi-proxy"}
        tmp = self.kubeconfig.with_name(self.kubeconfig.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(yaml.safe_dump(kc, sort_keys=False))
        os.replace(tmp, self.kubeconfig)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="kubeapi-proxy", daemon=True)
        self._thread.start()
        return self

    def info(self):
        return {"url": self.url, "kubeconfig": str(self.kubeconfig), "ca_file": str(self.ca_file)}

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.pool.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class ProxyProcess:
    """The proxy as a subprocess (``python -m tests.kubeapi.proxy``); same attributes as Proxy after start()."""

    def __init__(self, upstream_kubeconfig, out_kubeconfig, port=0, log_file=None):
        self.upstream_kubeconfig = Path(upstream_kubeconfig)
        self.kubeconfig = Path(out_kubeconfig).resolve()
        self.port = port
        self.log_file = Path(log_file) if log_file else self.kubeconfig.parent / "proxy.log"
        self.proc = None
        self.url = self.ca_file = None

    def start(self, timeout=30):
        cmd = [sys.executable, "-m", "tests.kubeapi.proxy", "--kubeconfig", str(self.upstream_kubeconfig),
               "--out-kubeconfig", str(self.kubeconfig), "--port", str(self.port)]
        self._log = open(self.log_file, "w")
        self.proc = subprocess.Popen(cmd, cwd=str(REPO), stdout=subprocess.PIPE, stderr=self._log, text=True)
        ready = {}

        def reader():
            line = self.proc.stdout.readline()
            try:
                ready.update(json.loads(line))
            except ValueError:
                ready["error"] = line
        t = threading.Thread(target=reader, daemon=True)
        t.start()
        t.join(timeout)
        if "url" not in ready:
            self.stop()
            raise RuntimeError("kubeapi proxy did not start (%s); see %s" % (ready.get("error", "timeout"),
                                                                              self.log_file))
        self.url, self.ca_file = ready["url"], Path(ready["ca_file"])
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if getattr(self, "_log", None) is not None:
            self._log.close()
            self._log = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m tests.kubeapi.proxy", description=__doc__.split("\n\n")[0])
    p.add_argument("--kubeconfig", required=True, help="kubeconfig of the real API server (its current context)")
    p.add_argument("--context", help="context of --kubeconfig to use instead of the current one")
    p.add_argument("--out-kubeconfig", required=True, help="kubeconfig to write for the proxy's clients "
                   "(proxy-ca.crt is written beside it)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--faults", help="initial fault config: JSON, or a file holding it (see faults.py)")
    args = p.parse_args(argv)
    faults = None
    if args.faults:
        text = Path(args.faults).read_text() if os.path.isfile(args.faults) else args.faults
        faults = json.loads(text)
    proxy = Proxy(args.kubeconfig, args.out_kubeconfig, args.host, args.port, args.context, faults).start()
    print(json.dumps(proxy.info()), flush=True)
    try:
        wait_for_signal()
    finally:
        proxy.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
