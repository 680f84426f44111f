"""The HTTP(S) front end: routing, authentication, RBAC, faults, request log, watch streaming, hooks."""
import json
import socket
import ssl
import threading
import time
import traceback
import types
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml

from . import discovery, errors, protobuf, table, websocket
from .api import APPLY_PATCH, APPLY_PATCH_CBOR, Options
from .selectors import SelectorError, match_fields, match_labels, parse_field_selector, parse_label_selector
from .store import Gone

MAX_WATCH_SECONDS = 1800
REVIEWS = {("authorization.k8s.io", "selfsubjectaccessreviews"), ("authentication.k8s.io", "selfsubjectreviews")}
# Real apiservers bookmark about once a minute; the emulator does it after 1 s idle so clients' handling is exercised.
BOOKMARK_IDLE_SECONDS = 1.0


class RequestLog:
    def __init__(self, limit=2000000):
        self._lock = threading.Lock()
        self._items = []
        self.seq = 0
        self.limit = limit

    def add(self, entry):
        with self._lock:
            self.seq += 1
            entry["seq"] = self.seq
            self._items.append(entry)
            if len(self._items) > self.limit:
                del self._items[: len(self._items) - self.limit]

    def since(self, n=None):
        with self._lock:
            if not n:
                return list(self._items)
            return [e for e in self._items if e["seq"] > n]

    def clear(self):
        with self._lock:
            self._items = []


def _q(query, name, default=None):
    vals = query.get(name)
    return vals[-1] if vals else default


def _dumps(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kubeapi-emulator"
    # Headers and body go out as two writes: with Nagle's algorithm the body waited for the client's delayed ACK
    # of the headers (about 40 ms on Linux loopback), which every request paid (as the proxy did, see proxy.py).
    disable_nagle_algorithm = True
    emu = None   # set by make_server

    def log_message(self, fmt, *args):   # quiet: the request log is the record
        pass

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def do_DELETE(self):
        self._dispatch("DELETE")

    # --- plumbing ------------------------------------------------------------------------------------------
    def _read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, code, body, headers=None, content_type="application/json"):
        if getattr(self, "_discard", False):   # an answer that an after-commit fault replaces
            return
        data = body if isinstance(body, bytes) else _dumps(body)
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache, private")
        for k, v in (headers or {}).items():
            if isinstance(v, list):
                for item in v:
                    self.send_header(k, item)
            else:
                self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self._status = code
        if getattr(self, "_entry", None) is not None:
            self._entry["status"] = code

    def _send_error(self, exc):
        self._send(exc.code, exc.status(), exc.headers)

    def _authenticate(self):
        auth = self.headers.get("Authorization") or ""
        if auth.lower().startswith("bearer "):
            user = self.emu.authz.user_for_token(auth[7:].strip())
            if user is None:
                raise errors.unauthorized()
            return user
        try:
            cert = self.connection.getpeercert() if isinstance(self.connection, ssl.SSLSocket) else None
        except (ValueError, ssl.SSLError):
            cert = None
        if cert:
            for rdn in cert.get("subject", ()):
                for k, v in rdn:
                    if k == "commonName":
                        return v
        raise errors.unauthorized()

    def _dispatch(self, method):
        self._status = 0
        parsed = urllib.parse.urlsplit(self.path)
        path = parsed.path.rstrip("/") or "/"
        query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
        entry = {"method": method, "path": path, "query": {k: v[-1] for k, v in query.items()},
                 "verb": self._verb_guess(method, path, query), "status": None, "user": None, "fault": None}
        hook = path.startswith("/_emulator")
        # Logged on arrival (seq = arrival order, so a watch is ordered by when it started); the remaining
        # fields are filled in place as the request proceeds.
        self._entry = None if hook else entry
        if not hook:
            self.emu.log.add(entry)
        try:
            body = self._read_body()
            user = self._authenticate()
            entry["user"] = user
            if hook:
                if user != "admin":
                    raise errors.ApiError(403, "Forbidden", "emulator hooks need the admin token")
                return self._hook(method, path, query, body)
            # The harness' own admin shortcuts (apply_object/get_object/...) are never faulted.
            if self.headers.get("X-Kubeapi-Harness") == "true":
                latency, outcome = 0, None
            else:
                latency, outcome = self.emu.faults.decide(method, path, _q(query, "watch") in ("true", "1"))
            if latency:
                time.sleep(latency)
            if outcome is not None and self.emu.faults.after_commit(method, outcome):
                # A lost answer: the write is processed and stored, then the client gets the fault instead.
                entry["fault"] = "%s-after-commit" % outcome
                self._discard = True
                try:
                    self._route(method, path, query, body, user, entry)
                except errors.ApiError:
                    pass
                finally:
                    self._discard = False
                self._status = None
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
                    if _q(query, "watch") in ("true", "1"):
                        self._expire_watch = True
                        try:
                            return self._route(method, path, query, body, user, entry)
                        finally:
                            self._expire_watch = False
                    raise errors.gone()
                raise errors.too_many_requests() if outcome == 429 else errors.internal_error()
            self._route(method, path, query, body, user, entry)
        except errors.ApiError as exc:
            try:
                self._send_error(exc)
            except OSError:
                pass
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:   # an emulator bug: answer 500 and keep serving, with the traceback on stderr
            traceback.print_exc()
            try:
                self._send_error(errors.ApiError(500, "InternalError", "kubeapi emulator bug: %r" % exc))
            except OSError:
                pass
        finally:
            if not hook:
                entry["status"] = self._status or None

    def _reset(self):
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    @staticmethod
    def _verb_guess(method, path, query):
        if method == "GET":
            return "watch" if _q(query, "watch") in ("true", "1") else "get"
        return {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method, method.lower())

    # --- routing -------------------------------------------------------------------------------------------
    def _route(self, method, path, query, body, user, entry):
        emu = self.emu
        segs = [urllib.parse.unquote(s) for s in path.split("/") if s]
        if path in ("/healthz", "/readyz", "/livez"):
            return self._send(200, b"ok", content_type="text/plain")
        if path == "/version":
            return self._send(200, discovery.KUBE_VERSION)
        if path == "/api":
            return self._send(200, discovery.api_versions(self.headers.get("Host") or "127.0.0.1"))
        if path == "/apis":
            return self._send(200, discovery.api_group_list(emu.registry))
        if segs[:1] == ["openapi"]:
            return self._openapi(segs)
        if segs[:1] == ["api"]:
            if len(segs) < 2:
                raise errors.not_found_path()
            group, version, rest = "", segs[1], segs[2:]
        elif segs[:1] == ["apis"]:
            if len(segs) == 2:
                doc = discovery.api_group(emu.registry, segs[1])
                if doc is None:
                    raise errors.not_found_path()
                return self._send(200, doc)
            if len(segs) < 3:
                raise errors.not_found_path()
            group, version, rest = segs[1], segs[2], segs[3:]
        else:
            raise errors.not_found_path()
        if not rest:
            doc = discovery.resource_list(emu.registry, group, version)
            if doc is None:
                raise errors.not_found_path()
            return self._send(200, doc)
        ns = None
        if rest[0] == "namespaces" and len(rest) >= 3 and not (len(rest) == 3 and rest[2] in ("status", "finalize")):
            ns, rest = rest[1], rest[2:]
        plural = rest[0]
        name = rest[1] if len(rest) > 1 else None
        sub = "/".join(rest[2:]) if len(rest) > 2 else None
        if group == discovery.VIRT_SUB_GROUP:
            entry["verb"] = "update" if method == "PUT" else "get"
            return self._virt_subresource(method, version, ns, plural, name, sub, body, user, query)
        rtype = emu.registry.lookup(group, version, plural)
        if rtype is None:
            raise errors.not_found_path()
        if rtype.namespaced and ns is None and name is not None:
            raise errors.not_found_path()
        if not rtype.namespaced and ns is not None:
            raise errors.not_found_path()
        if sub and sub not in rtype.subresources:
            raise errors.not_found_path()
        if sub == "finalize" or sub == "scale":
            raise errors.method_not_allowed()
        verb = self._verb(method, name, query)
        entry["verb"] = verb
        rbac_verb = "patch" if verb == "apply" else verb
        # Self reviews are open to every authenticated user (system:basic-user), as in a real cluster.
        if rtype.key not in REVIEWS and not emu.authz.allowed(user, rbac_verb, ns, plural, sub):
            raise errors.forbidden(rtype, name, user, rbac_verb, ns, sub)
        warnings = []
        if version in rtype.deprecated:
            warnings.append(rtype.deprecated[version])
        opts = self._options(query, user)
        api = emu.api
        ns = ns or ""
        if verb == "watch":
            return self._watch(rtype, version, ns, name, query, warnings)
        if verb == "get":
            obj = api.get(rtype, version, ns, name)
            return self._reply(200, rtype, version, obj, warnings, single=True)
        if verb == "list":
            lst = api.list(rtype, version, ns or None, _q(query, "labelSelector"), _q(query, "fieldSelector"),
                           _int(_q(query, "limit")), _q(query, "continue"))
            return self._reply(200, rtype, version, lst, warnings)
        if verb == "create" and rtype.key in REVIEWS:
            return self._review(rtype, version, self._decode(body, rtype=rtype), user)
        if verb not in rtype.verbs and not (verb == "apply" and "patch" in rtype.verbs):
            raise errors.method_not_allowed()
        if verb == "create":
            obj = api.create(rtype, version, ns, self._decode(body, rtype=rtype), opts)
            return self._reply(201, rtype, version, obj, warnings + opts.warnings, single=True)
        if verb == "update":
            obj = api.update(rtype, version, ns, name, self._decode(body, rtype=rtype), opts, sub)
            return self._reply(200, rtype, version, obj, warnings + opts.warnings, single=True)
        if verb in ("patch", "apply"):
            ctype = self.headers.get("Content-Type") or ""
            doc = self._decode(body, yaml_ok=ctype.startswith(APPLY_PATCH) or ctype.startswith(APPLY_PATCH_CBOR))
            existed = emu.store.get(rtype.key, ns, name) is not None
            obj = api.patch(rtype, version, ns, name, ctype, doc, opts, sub)
            code = 201 if verb == "apply" and not existed else 200
            return self._reply(code, rtype, version, obj, warnings + opts.warnings, single=True)
        if verb == "delete":
            options = self._decode(body) if body else {}
            if _q(query, "propagationPolicy"):
                options["propagationPolicy"] = _q(query, "propagationPolicy")
            if "All" in (options.get("dryRun") or []):   # kubectl sends dryRun in the DeleteOptions body
                opts.dry_run = True
            obj = api.delete(rtype, version, ns, name, opts, options)
            return self._reply(200, rtype, version, obj, warnings, single=True)
        if verb == "deletecollection":
            options = self._decode(body) if body else {}
            if "All" in (options.get("dryRun") or []):
                opts.dry_run = True
            lst = api.delete_collection(rtype, version, ns or None, opts, _q(query, "labelSelector"),
                                        _q(query, "fieldSelector"), options)
            return self._reply(200, rtype, version, lst, warnings)
        raise errors.method_not_allowed()

    def _review(self, rtype, version, body, user):
        """SelfSubjectAccessReview / SelfSubjectReview answered from the token RBAC, never stored."""
        out = dict(body or {}, apiVersion=rtype.api_version(version), kind=rtype.kind)
        out["metadata"] = {"creationTimestamp": None}
        if rtype.key == ("authentication.k8s.io", "selfsubjectreviews"):
            groups = ["system:masters", "system:authenticated"] if user == "admin" else ["system:authenticated"]
            out["status"] = {"userInfo": {"username": user, "groups": groups}}
            return self._send(201, out)
        attrs = ((body or {}).get("spec") or {}).get("resourceAttributes") or {}
        allowed = self.emu.authz.allowed(user, attrs.get("verb", ""), attrs.get("namespace") or None,
                                         attrs.get("resource", ""), attrs.get("subresource") or None)
        out["status"] = {"allowed": bool(allowed)}
        return self._send(201, out)

    def _verb(self, method, name, query):
        if method == "GET":
            if _q(query, "watch") in ("true", "1"):
                return "watch"
            return "get" if name else "list"
        if method == "POST":
            if name:
                raise errors.method_not_allowed()
            return "create"
        if method == "PUT":
            if not name:
                raise errors.method_not_allowed()
            return "update"
        if method == "PATCH":
            if not name:
                raise errors.method_not_allowed()
            ctype = self.headers.get("Content-Type") or ""
            return "apply" if ctype.startswith(APPLY_PATCH) or ctype.startswith(APPLY_PATCH_CBOR) else "patch"
        if method == "DELETE":
            return "delete" if name else "deletecollection"
        raise errors.method_not_allowed()

    def _options(self, query, user):
        dry = query.get("dryRun") or []
        for d in dry:
            if d != "All":
                raise errors.bad_request('Invalid dry run value: unsupported dry run value "%s"' % d)
        validation = _q(query, "fieldValidation") or "Warn"
        if validation not in ("Strict", "Warn", "Ignore"):
            raise errors.bad_request('fieldValidation must be one of "Ignore", "Warn", or "Strict", got %s'
                                     % validation)
        manager = _q(query, "fieldManager")
        if not manager:
            agent = self.headers.get("User-Agent") or "unknown"
            manager = agent.split("/")[0] or "unknown"
        return Options(dry_run=bool(dry), validation=validation, manager=manager,
                       force=_q(query, "force") in ("true", "1"), user=user)

    def _decode(self, body, yaml_ok=False, rtype=None):
        ctype = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip()
        if ctype == "application/vnd.kubernetes.protobuf" and rtype is not None and body:
            try:
                return protobuf.decode(body, rtype)
            except protobuf.ProtobufError:
                raise errors.unsupported_media(ctype, ["application/json", "application/yaml"])
        if "protobuf" in ctype or "cbor" in ctype:
            raise errors.unsupported_media(ctype, ["application/json", "application/yaml"])
        if not body:
            return {}
        try:
            if yaml_ok or ctype in ("application/yaml", "application/apply-patch+yaml"):
                return yaml.safe_load(body)
            return json.loads(body)
        except (ValueError, yaml.YAMLError) as exc:
            raise errors.bad_request("error decoding request body: %s" % exc)

    def _wants_table(self):
        accept = self.headers.get("Accept") or ""
        return "as=Table" in accept

    def _reply(self, code, rtype, version, obj, warnings, single=False):
        headers = {}
        if warnings:
            headers["Warning"] = ['299 - %s' % json.dumps(w) for w in warnings]
        if self._wants_table() and self.command == "GET":
            if single:
                obj = table.to_table(rtype, version, [obj], {"resourceVersion": obj["metadata"].get(
                    "resourceVersion", "")})
            else:
                obj = table.to_table(rtype, version, obj["items"], obj["metadata"])
        return self._send(code, obj, headers)

    # --- watch ---------------------------------------------------------------------------------------------
    def _watch(self, rtype, version, ns, name, query, warnings):
        emu = self.emu
        try:
            lreqs = parse_label_selector(_q(query, "labelSelector"))
            freqs = parse_field_selector(_q(query, "fieldSelector"), rtype)
        except SelectorError as exc:
            raise errors.bad_request(str(exc))
        if name:
            freqs = freqs + [("metadata.name", "=", name)]
        rv = _q(query, "resourceVersion")
        timeout = min(_int(_q(query, "timeoutSeconds")) or MAX_WATCH_SECONDS, MAX_WATCH_SECONDS)
        table_out = self._wants_table()
        bookmarks = _q(query, "allowWatchBookmarks") in ("true", "1") and not table_out
        initial = []
        gone = False
        key_ns = ns if rtype.namespaced else ""
        send_initial = _q(query, "sendInitialEvents") in ("true", "1")
        if send_initial and not bookmarks:
            raise errors.invalid(rtype, "", [{"reason": "FieldValueForbidden", "field": "allowWatchBookmarks",
                                              "message": "Forbidden: sendInitialEvents requires setting "
                                              "allowWatchBookmarks to true"}])
        snapshot_rv = None
        with emu.store.lock:
            if getattr(self, "_expire_watch", False):
                gone = True     # an injected 410 (faults with status 410): as if rv fell out of the history
                watcher = None
            elif rv in (None, "", "0") or send_initial:
                # Watch-list (sendInitialEvents) and plain watches without a resourceVersion start with the state.
                initial = emu.store.items(rtype.key, key_ns if key_ns else None)
                watcher = emu.store.watch(rtype.key, key_ns, None)
                snapshot_rv = emu.store.rv
            else:
                try:
                    watcher = emu.store.watch(rtype.key, key_ns, int(rv))
                except Gone:
                    gone = True
                    watcher = None
                except ValueError:
                    raise errors.bad_request("invalid resource version: %s" % rv)

        def matches(o):
            return (not lreqs or match_labels(lreqs, o["metadata"].get("labels"))) and \
                (not freqs or match_fields(freqs, o))

        def fmt(etype, o):
            o = emu.api.serve(rtype, version, o)
            if table_out:
                o = table.to_table(rtype, version, [o], {"resourceVersion": o["metadata"]["resourceVersion"]})
            return _dumps({"type": etype, "object": o}) + b"\n"

        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        for w in warnings:
            self.send_header("Warning", "299 - %s" % json.dumps(w))
        self.end_headers()
        self._status = 200
        self._entry["status"] = 200
        self.close_connection = True
        try:
            if gone:
                status = errors.gone("too old resource version: %s (%s)" % (rv, emu.store.rv)).status()
                self._chunk(_dumps({"type": "ERROR", "object": status}) + b"\n")
                return self._chunk(b"")
            for o in initial:
                if matches(o):
                    self._chunk(fmt("ADDED", o))
            if send_initial:
                self._chunk(_dumps({"type": "BOOKMARK", "object": {
                    "kind": rtype.kind, "apiVersion": rtype.api_version(version),
                    "metadata": {"resourceVersion": str(snapshot_rv),
                                 "annotations": {"k8s.io/initial-events-end": "true"}}}}) + b"\n")
            deadline = time.monotonic() + timeout
            last_sent = time.monotonic()
            while not emu.stopping.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    if bookmarks:
                        self._bookmark(rtype, version, watcher)
                    break
                try:
                    etype, obj, _ns, prev, _rv = watcher.queue.get(timeout=min(remaining, 0.5))
                except Exception:   # queue.Empty
                    if bookmarks and time.monotonic() - last_sent >= BOOKMARK_IDLE_SECONDS:
                        if self._bookmark(rtype, version, watcher):
                            last_sent = time.monotonic()
                    continue
                last_sent = time.monotonic()
                now_match = matches(obj)
                was = prev is not None and matches(prev)
                if etype == "DELETED":
                    if now_match or was:
                        self._chunk(fmt("DELETED", obj))
                elif now_match:
                    self._chunk(fmt("ADDED" if (etype == "MODIFIED" and prev is not None and not was) else etype, obj))
                elif was:
                    self._chunk(fmt("DELETED", obj))
            self._chunk(b"")
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            pass
        finally:
            if watcher is not None:
                emu.store.unwatch(watcher)

    def _bookmark(self, rtype, version, watcher):
        """Send a BOOKMARK with the current resourceVersion if no event is pending (consistent under the lock)."""
        with self.emu.store.lock:
            if not watcher.queue.empty():
                return False
            rv = self.emu.store.rv
        self._chunk(_dumps({"type": "BOOKMARK", "object": {"kind": rtype.kind, "apiVersion": rtype.api_version(
            version), "metadata": {"resourceVersion": str(rv)}}}) + b"\n")
        return True

    def _chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    # --- openapi -------------------------------------------------------------------------------------------
    def _openapi(self, segs):
        emu = self.emu
        if segs == ["openapi", "v3"]:
            return self._send(200, discovery.openapi_v3_index(emu.registry))
        if len(segs) >= 3 and segs[1] == "v3":
            doc = discovery.openapi_v3_doc(emu.registry, "/".join(segs[2:]))
            if doc is None:
                raise errors.not_found_path()
            return self._send(200, doc)
        raise errors.not_found_path()

    # --- virt-api subresources -----------------------------------------------------------------------------
    def _virt_subresource(self, method, version, ns, plural, name, action, body, user, query):
        emu = self.emu
        if version not in discovery.VIRT_SUB_VERSIONS:
            raise errors.not_found_path()
        if ns is None and plural in ("version", "healthz"):
            return self._send(200, {"gitVersion": "v1.9.0", "gitCommit": "79d34c17", "platform": "linux/amd64"})
        fake = types.SimpleNamespace(group=discovery.VIRT_SUB_GROUP, plural=plural,
                                     qualified=plural + "." + discovery.VIRT_SUB_GROUP)
        if not name or not action:
            raise errors.not_found_path()
        if action.split("/")[0] == "portforward":
            return self._portforward(method, ns, plural, name, action, user, fake)
        verb = "update" if method == "PUT" else "get"
        if not emu.authz.allowed(user, verb, ns, plural, action):
            raise errors.forbidden(fake, name, user, verb, ns, action)
        handler = emu.subresource_handlers.get((plural, action))
        if handler is None:
            raise errors.not_found_path()
        if method != "PUT" and verb == "update":
            raise errors.method_not_allowed()
        doc = self._decode(body) if body else {}
        dry = "All" in (query.get("dryRun") or []) or "All" in ((doc or {}).get("dryRun") or [])
        code, out = handler(ns, name, doc or {}, dry)
        return self._send(code, out if out is not None else b"", content_type="application/json")

    def _portforward(self, method, ns, plural, name, action, user, fake):
        """virt-api's `portforward/{port}[/{protocol}]` WebSocket (portforward.py, websocket.py: the KubeVirt sources).

        kube-apiserver's RBAC first (verb from the method, subresource `portforward` without port or protocol), then
        the route (GET only), then virt-api's checks and the dial to the guest (ApiError: a Status answer), then the
        handshake (gorilla's errors: text/plain with virt-api's Status appended), then 101 and the tunnel, which keeps
        this thread until it ends. The request log entry gets status 101 and `tunnel` (bytes each way, ended_by).
        """
        emu = self.emu
        parts = action.split("/")
        handler = emu.subresource_handlers.get((plural, "portforward"))
        if ns is None or handler is None or len(parts) not in (2, 3) or not all(parts):
            raise errors.not_found_path()
        verb = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}[method]
        if not emu.authz.allowed(user, verb, ns, plural, "portforward"):
            raise errors.forbidden(fake, name, user, verb, ns, "portforward")
        if method != "GET":
            raise errors.method_not_allowed()
        guest = handler(ns, name, parts[1], parts[2] if len(parts) == 3 else None)
        try:
            tunnel = websocket.upgrade(self, guest, emu.stopping)
        except websocket.HandshakeError as exc:
            code, body, headers = exc.answer()
            return self._send(code, body, headers, content_type=headers.pop("Content-Type"))
        self._status = 101
        self._entry["status"] = 101
        self._entry["tunnel"] = tunnel.stats          # live: the byte counts grow while the tunnel is open
        self.server.add_tunnel(tunnel)
        try:
            tunnel.run()
        finally:
            self.server.remove_tunnel(tunnel)

    # --- hooks ---------------------------------------------------------------------------------------------
    def _hook(self, method, path, query, body):
        emu = self.emu
        doc = json.loads(body) if body else None
        parts = path.split("/")[2:]
        what = parts[0] if parts else ""
        if what == "requests":
            if method == "DELETE":
                emu.log.clear()
                return self._send(200, {"mark": emu.log.seq})
            since = _int(_q(query, "since"))
            return self._send(200, {"mark": emu.log.seq, "items": emu.log.since(since)})
        if what == "mark":
            return self._send(200, {"mark": emu.log.seq})
        if what == "faults":
            if method == "DELETE":
                emu.faults.clear()
            elif method == "PUT":
                emu.faults.configure(**(doc or {}))
            return self._send(200, dict(emu.faults.config, injected=emu.faults.injected))
        if what == "tokens":
            if method == "DELETE" and len(parts) > 1:
                emu.authz.remove(parts[1])
                return self._send(200, {})
            specs = doc if isinstance(doc, list) else [doc]
            return self._send(200, {"tokens": [emu.authz.add(s) for s in specs if s]})
        if what == "client-certs":
            cert, key = emu.ca.issue((doc or {}).get("user") or "user", groups=(doc or {}).get("groups") or ())
            return self._send(200, {"cert": cert.decode(), "key": key.decode()})
        if what == "guest-ports":   # the VMI ports a portforward reaches (portforward.GuestPorts, as real guests use)
            if method != "GET":
                spec = doc or {}
                if not spec.get("namespace") or not spec.get("name") or not spec.get("port"):
                    raise errors.bad_request("guest-ports: give namespace, name and port (and host, target_port)")
                if method == "DELETE":
                    emu.guest_ports.unregister(spec["namespace"], spec["name"], spec["port"])
                else:
                    vmi = emu.store.get(("kubevirt.io", "virtualmachineinstances"), spec["namespace"], spec["name"])
                    if vmi is None:
                        raise errors.ApiError(404, "NotFound", "guest-ports: no VMI %s/%s" % (spec["namespace"], spec["name"]))
                    emu.guest_ports.register(spec["namespace"], spec["name"], spec["port"], spec.get("host") or
                                             "127.0.0.1", spec.get("target_port") or spec["port"],
                                             uid=vmi["metadata"]["uid"])
            return self._send(200, {"items": emu.guest_ports.items()})
        if what == "compact":
            emu.store.compact()
            return self._send(200, {"resourceVersion": str(emu.store.rv)})
        if what == "bulk":  # bulk loading for benchmarks, see bulk.py
            from . import bulk
            return self._send(200, bulk.load(emu, doc))
        if what == "state":
            counts = {"%s/%s" % rt.key: emu.store.count(rt.key) for rt in emu.registry.all()}
            return self._send(200, {"resourceVersion": str(emu.store.rv), "counts": counts})
        raise errors.not_found_path()


def _int(v):
    try:
        return int(v) if v not in (None, "") else None
    except ValueError:
        raise errors.bad_request("invalid integer: %s" % v)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, handler, ssl_context=None):
        self._tunnels = set()                 # before the bind: a failed bind calls server_close()
        self._tunnels_lock = threading.Lock()
        super().__init__(addr, handler)
        self.ssl_context = ssl_context

    def add_tunnel(self, tunnel):
        with self._tunnels_lock:
            self._tunnels.add(tunnel)

    def remove_tunnel(self, tunnel):
        with self._tunnels_lock:
            self._tunnels.discard(tunnel)

    def server_close(self):
        """Stop listening and end the open portforward tunnels (their threads are daemons: nothing waits for them)."""
        super().server_close()
        with self._tunnels_lock:
            tunnels = list(self._tunnels)
        for tunnel in tunnels:
            tunnel.end("server-stop")

    def get_request(self):
        sock, addr = super().get_request()
        if self.ssl_context is not None:
            sock = self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def finish_request(self, request, client_address):
        if isinstance(request, ssl.SSLSocket):
            try:
                request.settimeout(30)
                request.do_handshake()
                request.settimeout(None)
            except (ssl.SSLError, OSError):
                return
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address):
        pass


def make_server(emu, host, port, ssl_context=None):
    handler = type("BoundHandler", (Handler,), {"emu": emu})
    return Server((host, port), handler, ssl_context)
