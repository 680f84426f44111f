"""The emulator's simulated KubeVirt (controllers/*.py) run as an API client of a real kube-apiserver.

One implementation, two hosts: inside the emulator the controllers use its in-memory `Store` and `Api`; here
`RemoteApp` gives the same controller classes the same interface backed by a real server (issue #15):

* ``store`` (`RemoteStore`): a local cache kept by one list+watch per resource (started for every rkey a
  controller watches, and lazily for any other rkey a controller reads); ``subscribe`` listeners get the
  store's event tuples ``(rkey, (etype, obj, ns, prev, rv))``. The controllers' own successful writes are put
  into the cache at once (as the emulator's store does), the watch event of the same resourceVersion is then
  dropped.
* ``api`` (`RemoteApi`): create/update/patch/delete/write_status over HTTPS with the signatures and return
  values of api.Api; errors are `errors.ApiError` built from the server's Status. ``write_status`` writes the
  /status subresource where the CRD has one (VirtualMachine) and the whole object otherwise
  (VirtualMachineInstance), and re-reads the live object on a 409.
* virt-api's subresources (``app.subresource_handlers``) are served as an aggregated API: an HTTPS server on
  127.0.0.1 registered with an ``APIService`` (v1 and v1alpha3 .subresources.kubevirt.io) whose Service is an
  ``ExternalName`` localhost Service with the server's port.
  That includes the ``portforward`` WebSocket (websocket.py, portforward.py): kube-apiserver authorises it (verb
  get on virtualmachineinstances/portforward) and relays the upgrade; the guest ports it reaches are registered on
  this host's server with ``PUT /_emulator/guest-ports`` (as on the emulator; no authentication: 127.0.0.1 only).
* the admission hooks (``api.admission_hooks``, ``api.delete_hooks``) are real webhooks on the same HTTPS
  server, registered by a Mutating- and a ValidatingWebhookConfiguration with ``clientConfig.url`` and caBundle.
* fake nodes (Node objects with a Ready status and renewed Leases, so kube-controller-manager keeps them Ready).

The emulator's garbage collector is not run: kube-controller-manager's is real.

    python -m tests.kubeapi.remote --kubeconfig K [--controllers virt,cdi,operators] [--timing fast] [--nodes 2]

prints one JSON line ``{"ready": true, ...}`` when the APIService is Available and the webhooks are registered,
and runs until SIGTERM/SIGINT, then deletes what it registered.
"""
import argparse
import base64
import collections
import datetime
import http.server
import json
import os
import signal
import socketserver
import ssl
import sys
import tempfile
import threading
import time
import urllib.parse

import urllib3
import yaml

from . import discovery, errors, websocket
from .api import Options
from .portforward import GuestPorts
from .resources import PRESERVE, Registry, ResourceType, builtin_types, type_from_crd
from .store import sorted_items
from .tls import CertificateAuthority
from .util import clone

VM = ("kubevirt.io", "virtualmachines")
VMI = ("kubevirt.io", "virtualmachineinstances")
NODES = ("", "nodes")
LEASES = ("coordination.k8s.io", "leases")
CRDS = ("apiextensions.k8s.io", "customresourcedefinitions")
APISERVICE_VERSIONS = ("v1", "v1alpha3")
NAME = "virtfleet-remote"
EXTRA_KINDS = (("coordination.k8s.io", "Lease", "leases", True),
               ("apiregistration.k8s.io", "APIService", "apiservices", False),
               ("admissionregistration.k8s.io", "MutatingWebhookConfiguration", "mutatingwebhookconfigurations", False),
               ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration", "validatingwebhookconfigurations",
                False))
OWN_LABEL = {"virtfleet.kubevirt/remote-host": "true"}
# Worker threads of the simulated virt-controller/virt-handler here (KubeVirt's run several workers per controller):
# each of their writes is an HTTP round trip, most through the admission webhooks, so one thread wrote the many VMs
# of one task one after the other (about 1,200 writes for 100 VMs). Each VM is handled by one worker (in order).
VIRT_WORKERS = 8


def log(msg):
    print("kubeapi-remote: %s" % msg, file=sys.stderr, flush=True)


# --- HTTP client ------------------------------------------------------------------------------------------------
class Client:
    """Minimal Kubernetes REST client from a kubeconfig (client cert, token or both)."""

    def __init__(self, kubeconfig, context=None):
        with open(kubeconfig) as fh:
            cfg = yaml.safe_load(fh)
        ctx_name = context or cfg.get("current-context")
        ctx = next(c["context"] for c in cfg["contexts"] if not ctx_name or c["name"] == ctx_name)
        cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
        user = next((u["user"] for u in cfg.get("users") or [] if u["name"] == ctx.get("user")), {})
        self.server = cluster["server"].rstrip("/")
        self._dir = tempfile.mkdtemp(prefix="kubeapi-remote-")
        base = os.path.dirname(os.path.abspath(kubeconfig))

        def material(obj, key):
            if obj.get(key + "-data"):
                path = os.path.join(self._dir, key)
                with open(path, "wb") as fh:
                    fh.write(base64.b64decode(obj[key + "-data"]))
                return path
            if obj.get(key):
                return os.path.join(base, obj[key])
            return None
        self.ca_file = material(cluster, "certificate-authority")
        kw = {}
        if cluster.get("insecure-skip-tls-verify"):
            kw["cert_reqs"] = "CERT_NONE"
        else:
            kw["cert_reqs"] = "CERT_REQUIRED"
            kw["ca_certs"] = self.ca_file
        cert, key = material(user, "client-certificate"), material(user, "client-key")
        if cert:
            kw.update(cert_file=cert, key_file=key)
        self.cert_file, self.key_file = cert, key
        self.headers = {"Accept": "application/json", "User-Agent": "virtfleet-kubeapi-remote/1"}
        if user.get("token"):
            self.headers["Authorization"] = "Bearer " + user["token"]
        self.http = urllib3.PoolManager(num_pools=4, maxsize=32, block=False, **kw)

    def request(self, method, path, body=None, query=None, content_type="application/json", timeout=30,
                stream=False):
        url = self.server + path
        if query:
            url += "?" + urllib.parse.urlencode([(k, v) for k, v in query.items() if v is not None])
        headers = dict(self.headers)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        return self.http.request(method, url, body=data, headers=headers, preload_content=not stream,
                                 timeout=urllib3.Timeout(connect=10, read=timeout), retries=False)

    def call(self, method, path, body=None, query=None, content_type="application/json", warnings=None):
        """JSON answer of a request; a non-2xx answer raises errors.ApiError from the server's Status."""
        resp = self.request(method, path, body, query, content_type)
        if warnings is not None:
            for w in resp.headers.getlist("Warning") if hasattr(resp.headers, "getlist") else []:
                parts = w.split(" ", 2)
                warnings.append(parts[2].strip('"') if len(parts) == 3 else w)
        try:
            doc = json.loads(resp.data) if resp.data else None
        except ValueError:
            doc = None
        if resp.status >= 300:
            if isinstance(doc, dict) and doc.get("kind") == "Status":
                raise errors.ApiError(doc.get("code") or resp.status, doc.get("reason", ""), doc.get("message", ""),
                                      doc.get("details"))
            raise errors.ApiError(resp.status, "", resp.data.decode(errors="replace")[:500])
        return doc


def resource_path(rt, version, ns=None, name=None, sub=None):
    path = "/api/" + version if not rt.group else "/apis/%s/%s" % (rt.group, version)
    if rt.namespaced and ns:
        path += "/namespaces/" + urllib.parse.quote(ns)
    path += "/" + rt.plural
    if name:
        path += "/" + urllib.parse.quote(name)
    if sub:
        path += "/" + sub
    return path


def _rv(obj):
    try:
        return int(obj["metadata"]["resourceVersion"])
    except (KeyError, TypeError, ValueError):
        return 0


# --- the cache ----------------------------------------------------------------------------------------------------
class RemoteStore:
    """store.Store's read and subscribe interface over list+watch caches of a real server."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.RLock()
        self._data = collections.defaultdict(lambda: collections.defaultdict(dict))
        self._seen = {}          # (rkey, ns, name) -> newest resourceVersion applied (kept after deletion)
        self._listeners = []
        self._informers = {}     # rkey -> threading.Event (initial list done)
        self._stop = threading.Event()
        self.rv = 0

    # --- reads ---------------------------------------------------------------------------------------------
    def get(self, rkey, namespace, name):
        self.ensure(rkey)
        return self._data[rkey][namespace or ""].get(name)

    def items(self, rkey, namespace=None):
        self.ensure(rkey)
        with self.lock:
            return sorted_items(self._data.get(rkey), namespace)

    def count(self, rkey, namespace=None):
        return len(self.items(rkey, namespace))

    def namespaces_with(self, namespace):
        with self.lock:
            return [rk for rk, b in self._data.items() if b.get(namespace)]

    def subscribe(self, callback):
        self._listeners.append(callback)

    # --- cache maintenance ---------------------------------------------------------------------------------
    def apply(self, rkey, etype, obj, rv=None):
        """Put a server object into the cache (newer resourceVersions only) and emit a store event."""
        meta = obj["metadata"]
        ns = meta.get("namespace") or "" if self._namespaced(rkey) else ""
        ident = (rkey, ns, meta["name"])
        rv = rv if rv is not None else _rv(obj)
        with self.lock:
            if rv and rv <= self._seen.get(ident, 0):
                return False
            self._seen[ident] = rv
            self.rv = max(self.rv, rv)
            bucket = self._data[rkey][ns]
            prev = bucket.get(meta["name"])
            if etype == "DELETED":
                if prev is None:
                    return False
                del bucket[meta["name"]]
                if not bucket:
                    del self._data[rkey][ns]
            else:
                bucket[meta["name"]] = obj
                etype = "MODIFIED" if prev is not None else "ADDED"
            event = (etype, obj, ns, prev, rv)
            for cb in list(self._listeners):
                cb(rkey, event)
            return True

    def _namespaced(self, rkey):
        rt = self.app.registry.get(*rkey)
        return rt is None or rt.namespaced

    def refresh(self, rkey, ns, name):
        """Read one object live (a consistent read before a virt-api subresource decides on the cache)."""
        rt = self.app.registry.get(*rkey)
        if rt is None:
            return None
        try:
            obj = self.app.client.call("GET", resource_path(rt, rt.storage_version, ns, name))
        except errors.ApiError as exc:
            if exc.code != 404:
                raise
            with self.lock:
                cur = self._data[rkey][ns or ""].get(name)
                if cur is not None:
                    self.apply(rkey, "DELETED", cur, rv=_rv(cur) + 1)
            return None
        obj.setdefault("apiVersion", rt.api_version(rt.storage_version))
        obj.setdefault("kind", rt.kind)
        self.apply(rkey, "MODIFIED", obj)
        return self.get(rkey, ns, name)

    def ensure(self, rkey, wait=15.0):
        """Start the informer of rkey if needed and wait for its first list."""
        with self.lock:
            ev = self._informers.get(rkey)
            if ev is None:
                ev = self._informers[rkey] = threading.Event()
                threading.Thread(target=self._informer, args=(rkey, ev), name="watch-%s/%s" % rkey,
                                 daemon=True).start()
        if not ev.is_set():
            ev.wait(wait)

    def stop(self):
        self._stop.set()

    def _informer(self, rkey, synced):
        client = self.app.client
        rv = None
        while not self._stop.is_set():
            rt = self.app.registry.get(*rkey)
            if rt is None:
                synced.set()     # not served (yet): reads see nothing
                self._stop.wait(5)
                self.app.refresh_registry()
                continue
            version = rt.storage_version
            try:
                if rv is None:
                    lst = client.call("GET", resource_path(rt, version))
                    rv = lst["metadata"]["resourceVersion"]
                    self._replace(rt, version, lst.get("items") or [], int(rv))
                    synced.set()
                rv = self._watch(rt, version, rv)
            except errors.ApiError as exc:
                synced.set()
                if exc.code == 410:
                    rv = None
                    continue
                log("watch %s: %s %s" % (rt.qualified, exc.code, exc.message))
                if exc.code == 404:
                    self.app.refresh_registry()
                self._stop.wait(2)
            except Exception as exc:   # connection reset, timeouts: resume from the last resourceVersion
                if not self._stop.is_set():
                    log("watch %s: %r" % (rt.qualified, exc))
                self._stop.wait(1)

    def _replace(self, rt, version, items, list_rv):
        listed = set()
        for obj in items:
            obj["apiVersion"], obj["kind"] = rt.api_version(version), rt.kind
            listed.add((obj["metadata"].get("namespace") or "" if rt.namespaced else "", obj["metadata"]["name"]))
            self.apply(rt.key, "ADDED", obj)
        with self.lock:
            gone = [o for ns, b in self._data.get(rt.key, {}).items() for n, o in b.items() if (ns, n) not in listed]
        for obj in gone:
            self.apply(rt.key, "DELETED", obj, rv=list_rv)

    def _watch(self, rt, version, rv):
        resp = self.app.client.request("GET", resource_path(rt, version), query={
            "watch": "1", "resourceVersion": rv, "allowWatchBookmarks": "true", "timeoutSeconds": "290"},
            timeout=330, stream=True)
        try:
            if resp.status != 200:
                doc = json.loads(resp.read() or b"{}")
                raise errors.ApiError(doc.get("code") or resp.status, doc.get("reason", ""), doc.get("message", ""))
            buf = b""
            chunks = resp.read_chunked() if resp.chunked else iter(lambda: resp.read1(65536), b"")
            for chunk in chunks:
                if self._stop.is_set():
                    return rv
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if not line.strip():
                        continue
                    ev = json.loads(line)
                    etype, obj = ev.get("type"), ev.get("object") or {}
                    if etype == "ERROR":
                        raise errors.ApiError(obj.get("code") or 500, obj.get("reason", ""), obj.get("message", ""))
                    rv = obj["metadata"]["resourceVersion"]
                    if etype == "BOOKMARK":
                        continue
                    obj.setdefault("apiVersion", rt.api_version(version))
                    obj.setdefault("kind", rt.kind)
                    self.apply(rt.key, etype, obj)
            return rv
        finally:
            resp.release_conn()


# --- the API ------------------------------------------------------------------------------------------------------
class RemoteApi:
    """api.Api's controller-facing write methods as requests to a real server."""

    def __init__(self, app):
        self.app = app
        self.client = app.client
        self.store = app.store
        self.admission_hooks = []   # served by the webhook endpoints (WebhookServer)
        self.delete_hooks = []
        self._orphans = set()       # only the emulator's GC reads it; kube-controller-manager's GC is used here

    @staticmethod
    def _query(opts, force=False):
        q = {}
        if opts is not None:
            if opts.dry_run:
                q["dryRun"] = "All"
            if opts.manager:
                q["fieldManager"] = opts.manager
            if opts.validation in ("Ignore", "Warn", "Strict"):
                q["fieldValidation"] = opts.validation
            if force or opts.force:
                q["force"] = "true"
        return q

    def _done(self, rtype, obj, opts):
        if obj and isinstance(obj, dict) and obj.get("metadata") and not (opts is not None and opts.dry_run):
            obj.setdefault("apiVersion", rtype.api_version(rtype.storage_version))
            obj.setdefault("kind", rtype.kind)
            if obj.get("kind") != "Status":
                self.store.apply(rtype.key, "MODIFIED", obj)
        return obj

    def _warnings(self, opts):
        return opts.warnings if opts is not None else None

    def get(self, rtype, version, ns, name):
        return self.client.call("GET", resource_path(rtype, version, ns, name))

    def create(self, rtype, version, ns, body, opts, subresource=None, managed_fields=None):
        obj = self.client.call("POST", resource_path(rtype, version, ns, sub=None), body, self._query(opts),
                               warnings=self._warnings(opts))
        return self._done(rtype, obj, opts)

    def update(self, rtype, version, ns, name, body, opts, subresource=None, _patch=None):
        obj = self.client.call("PUT", resource_path(rtype, version, ns, name, subresource), body,
                               self._query(opts), warnings=self._warnings(opts))
        return self._done(rtype, obj, opts)

    def patch(self, rtype, version, ns, name, content_type, patch, opts, subresource=None):
        obj = self.client.call("PATCH", resource_path(rtype, version, ns, name, subresource), patch,
                               self._query(opts), content_type=content_type, warnings=self._warnings(opts))
        return self._done(rtype, obj, opts)

    def apply(self, rtype, version, ns, name, body, opts, subresource=None):
        return self.patch(rtype, version, ns, name, "application/apply-patch+yaml", body, opts, subresource)

    def delete(self, rtype, version, ns, name, opts, options=None):
        body = dict(options or {}, kind="DeleteOptions", apiVersion="v1")
        if opts is not None and opts.dry_run:
            body["dryRun"] = ["All"]
        obj = self.client.call("DELETE", resource_path(rtype, version, ns, name), body,
                               warnings=self._warnings(opts))
        if isinstance(obj, dict) and (obj.get("metadata") or {}).get("deletionTimestamp"):
            self._done(rtype, obj, opts)   # held by a finalizer: the cache shows it terminating at once
        return obj

    def write_status(self, rtype, ns, name, mutate, manager):
        """Read-modify-write like api.Api.write_status: the cached object first, the live one after a 409."""
        key_ns = ns if rtype.namespaced else ""
        cur = self.store.get(rtype.key, key_ns, name)
        for _ in range(8):
            if cur is None:
                return None
            new = clone(cur)
            if mutate(new) is False:
                return cur
            sub = "status" if rtype.has_status() else None
            try:
                return self.update(rtype, rtype.storage_version, key_ns, name, new,
                                   Options(manager=manager, validation="Ignore"), sub)
            except errors.ApiError as exc:
                if exc.code == 404:
                    return None
                if exc.code != 409:
                    raise
            cur = self.store.refresh(rtype.key, key_ns, name)
        return None


# --- webhooks and the aggregated API --------------------------------------------------------------------------
def json_patch_ops(old, new, path=""):
    """RFC 6902 operations turning `old` into `new` (objects recursively, lists and scalars whole)."""
    if isinstance(old, dict) and isinstance(new, dict):
        ops = []
        for k in old:
            if k not in new:
                ops.append({"op": "remove", "path": path + "/" + _ptr(k)})
        for k, v in new.items():
            if k not in old:
                ops.append({"op": "add", "path": path + "/" + _ptr(k), "value": v})
            elif old[k] != v:
                ops.extend(json_patch_ops(old[k], v, path + "/" + _ptr(k)))
        return ops
    if old == new:
        return []
    return [{"op": "replace", "path": path, "value": new}] if path else [{"op": "replace", "path": "", "value": new}]


def _ptr(key):
    return str(key).replace("~", "~0").replace("/", "~1")


def _webhook_of(message):
    """The webhook name in an emulator denial 'admission webhook "X" denied the request: ...' and the rest."""
    prefix = 'admission webhook "'
    if message.startswith(prefix):
        name, sep, rest = message[len(prefix):].partition('" denied the request: ')
        if sep:
            return name, rest
    return None, message


# (webhook name, mutating?, rules) registered per controller set
VM_RULE = {"apiGroups": ["kubevirt.io"], "apiVersions": ["*"], "resources": ["virtualmachines"],
           "operations": ["CREATE", "UPDATE"], "scope": "Namespaced"}
VMI_CREATE_RULE = {"apiGroups": ["kubevirt.io"], "apiVersions": ["*"], "resources": ["virtualmachineinstances"],
                   "operations": ["CREATE"], "scope": "Namespaced"}
VMIM_CREATE_RULE = {"apiGroups": ["kubevirt.io"], "apiVersions": ["*"], "resources": ["virtualmachineinstancemigrations"],
                    "operations": ["CREATE"], "scope": "Namespaced"}
RESTORE_RULE = {"apiGroups": ["snapshot.kubevirt.io"], "apiVersions": ["v1beta1"], "resources": ["virtualmachinerestores"],
                "operations": ["CREATE", "UPDATE"], "scope": "Namespaced"}
WEBHOOKS = {
    "virt": [("virtualmachines-mutator.kubevirt.io", True, [VM_RULE]),
             ("virtualmachineinstances-mutator.kubevirt.io", True, [VMI_CREATE_RULE]),
             ("migrations-mutator.kubevirt.io", True, [VMIM_CREATE_RULE]),
             ("virtualmachine-validator.kubevirt.io", False, [VM_RULE]),
             ("migration-create-validator.kubevirt.io", False, [VMIM_CREATE_RULE]),
             ("virtualmachinerestore-validator.snapshot.kubevirt.io", False, [RESTORE_RULE])],
    "cdi": [("virtualmachineinstances-mutator.kubevirt.io", True, [VMI_CREATE_RULE])],
    "operators": [("kubevirt-validator.kubevirt.io", False, [
        {"apiGroups": ["kubevirt.io"], "apiVersions": ["*"], "resources": ["kubevirts"], "operations": ["DELETE"],
         "scope": "*"}]),
        ("cdi-validate.cdi.kubevirt.io", False, [
            {"apiGroups": ["cdi.kubevirt.io"], "apiVersions": ["*"], "resources": ["cdis"],
             "operations": ["DELETE"], "scope": "*"}])],
}


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "virt-api-remote/1"
    # The status line and headers, then the body, go out as two writes: with Nagle's algorithm the body waited for
    # the client's delayed ACK of the first (about 40 ms on Linux loopback) in every admission review.
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):
        if os.environ.get("KUBEAPI_REMOTE_DEBUG"):
            log("http: " + fmt % args)

    def _send(self, code, doc):
        data = json.dumps(doc).encode() if doc is not None else b""
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        return json.loads(raw) if raw.strip() else {}

    def do_GET(self):
        self._route("GET")

    def do_PUT(self):
        self._route("PUT")

    def do_POST(self):
        self._route("POST")

    def do_DELETE(self):
        self._route("DELETE")

    def _route(self, method):
        host = self.server.host
        url = urllib.parse.urlsplit(self.path)
        segs = [s for s in url.path.split("/") if s]
        query = urllib.parse.parse_qs(url.query)
        try:
            if method == "POST" and len(segs) == 3 and segs[0] == "admit":
                return self._send(200, host.admit(segs[1] == "mutate", segs[2], self._body()))
            if segs in (["healthz"], ["readyz"], ["livez"]):
                return self._send(200, {"status": "ok"})
            if segs == ["_emulator", "guest-ports"]:
                return self._send(200, host.guest_ports(method, self._body() if method != "GET" else {}))
            if segs == ["apis"]:
                return self._send(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                    discovery._group_entry(discovery.VIRT_SUB_GROUP, discovery.VIRT_SUB_VERSIONS)]})
            if segs[:2] == ["apis", discovery.VIRT_SUB_GROUP]:
                if len(segs) == 2:
                    return self._send(200, discovery.api_group(None, discovery.VIRT_SUB_GROUP))
                version = segs[2]
                if len(segs) == 3:
                    doc = discovery.resource_list(None, discovery.VIRT_SUB_GROUP, version)
                    if doc is None:
                        raise errors.not_found_path()
                    return self._send(200, doc)
                if len(segs) == 4 and segs[3] in ("version", "healthz"):
                    return self._send(200, {"gitVersion": "v1.9.0", "gitCommit": "79d34c17",
                                            "platform": "linux/amd64"})
                if len(segs) in (9, 10) and segs[3] == "namespaces" and segs[7] == "portforward" and \
                        version in discovery.VIRT_SUB_VERSIONS:
                    return host.portforward(self, method, segs[4], segs[5], segs[6], segs[8:])
                if len(segs) == 8 and segs[3] == "namespaces" and version in discovery.VIRT_SUB_VERSIONS:
                    ns, plural, name, action = segs[4], segs[5], segs[6], segs[7]
                    body = self._body() if method == "PUT" else {}
                    dry = "All" in (query.get("dryRun") or []) or "All" in ((body or {}).get("dryRun") or [])
                    code, out = host.subresource(method, ns, plural, name, action, body or {}, dry)
                    return self._send(code, out)
            raise errors.not_found_path()
        except errors.ApiError as exc:
            return self._send(exc.code, exc.status())
        except Exception as exc:   # a handler bug answers 500 instead of killing the thread
            log("%s %s: %r" % (method, self.path, exc))
            return self._send(500, errors.ApiError(500, "InternalError", repr(exc)).status())


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class WebhookServer:
    """One HTTPS endpoint for the aggregated subresource API and the admission webhooks."""

    def __init__(self, app, service=None):
        self.app = app
        self.ca = CertificateAuthority()
        # The aggregator verifies the serving certificate against <service>.<namespace>.svc, webhooks by URL host.
        hosts = ["localhost", "127.0.0.1"]
        if service:
            hosts += ["%s.%s.svc" % service, "%s.%s.svc.cluster.local" % service]
        cert, key = self.ca.issue("virt-api.remote", server_hosts=hosts)
        self._dir = tempfile.mkdtemp(prefix="kubeapi-remote-tls-")
        cpath, kpath = os.path.join(self._dir, "tls.crt"), os.path.join(self._dir, "tls.key")
        with open(cpath, "wb") as fh:
            fh.write(cert)
        with open(kpath, "wb") as fh:
            fh.write(key)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cpath, kpath)
        ctx.verify_mode = ssl.CERT_NONE   # the aggregator's proxy client cert is accepted unchecked
        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.httpd.host = self
        self.port = self.httpd.server_address[1]
        self._hook_lock = threading.Lock()
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="virt-api-remote", daemon=True)

    def start(self):
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()

    @property
    def ca_bundle(self):
        return base64.b64encode(self.ca.cert_pem).decode()

    def url(self, mutating, name):
        return "https://127.0.0.1:%d/admit/%s/%s" % (self.port, "mutate" if mutating else "validate", name)

    # --- virt-api subresources -------------------------------------------------------------------------------
    def subresource(self, method, ns, plural, name, action, body, dry):
        handler = self.app.subresource_handlers.get((plural, action))
        if handler is None:
            raise errors.not_found_path()
        verbs = discovery.VIRT_SUBRESOURCES.get(plural + "/" + action, ["update"])
        if (method == "PUT") != ("update" in verbs):
            raise errors.method_not_allowed()
        # The cache may lag behind what the caller just wrote: read the objects involved live first.
        for rkey in (VM, VMI):
            self.app.store.refresh(rkey, ns, name)
        code, out = handler(ns, name, body, dry)
        return code, out

    def portforward(self, request, method, ns, plural, name, rest):
        """virt-api's portforward: the guest dialled (portforward.dial: 404/409/400/500 Status answers), then the
        upgrade and the tunnel on this request's thread (kube-apiserver has authorised the request and relays it)."""
        handler = self.app.subresource_handlers.get((plural, "portforward"))
        if handler is None:
            raise errors.not_found_path()
        if method != "GET":
            raise errors.method_not_allowed()
        for rkey in (VM, VMI):
            self.app.store.refresh(rkey, ns, name)
        guest = handler(ns, name, rest[0], rest[1] if len(rest) > 1 else None)
        try:
            tunnel = websocket.upgrade(request, guest, self.app.stopping)
        except websocket.HandshakeError as exc:
            code, body, headers = exc.answer()
            request.send_response(code)
            for k, v in dict(headers, **{"Content-Length": str(len(body))}).items():
                request.send_header(k, v)
            request.end_headers()
            request.wfile.write(body)
            return
        tunnel.run()

    def guest_ports(self, method, spec):
        """The hook PUT/DELETE/GET /_emulator/guest-ports of the emulator (server.py), for this host's VMIs."""
        ports = self.app.guest_ports
        if method in ("PUT", "DELETE"):
            if not spec.get("namespace") or not spec.get("name") or not spec.get("port"):
                raise errors.bad_request("guest-ports: give namespace, name and port (and host, target_port)")
            if method == "DELETE":
                ports.unregister(spec["namespace"], spec["name"], spec["port"])
            else:
                vmi = self.app.store.refresh(VMI, spec["namespace"], spec["name"])
                if vmi is None:
                    raise errors.ApiError(404, "NotFound", "guest-ports: no VMI %s/%s" % (spec["namespace"], spec["name"]))
                ports.register(spec["namespace"], spec["name"], spec["port"], spec.get("host") or "127.0.0.1",
                               spec.get("target_port") or spec["port"], uid=vmi["metadata"]["uid"])
        elif method != "GET":
            raise errors.method_not_allowed()
        return {"items": ports.items()}

    # --- admission ---------------------------------------------------------------------------------------------
    def admit(self, mutating, webhook, review):
        req = review.get("request") or {}
        resp = {"uid": req.get("uid"), "allowed": True}
        out = {"apiVersion": review.get("apiVersion", "admission.k8s.io/v1"), "kind": "AdmissionReview",
               "response": resp}
        res = req.get("resource") or {}
        rtype = self.app.registry.get(res.get("group", ""), res.get("resource", ""))
        if rtype is None or req.get("subResource"):
            return out
        op = req.get("operation")
        old = req.get("oldObject") if op in ("UPDATE", "DELETE") else None
        warnings = []
        try:
            with self._hook_lock:
                if op == "DELETE":
                    if not mutating:
                        opts = Options(dry_run=bool(req.get("dryRun")))
                        for hook in list(self.app.api.delete_hooks):
                            hook(rtype, old, opts)
                    return out
                obj = req.get("object") or {}
                new = clone(obj)
                for hook in list(self.app.api.admission_hooks):
                    w = hook(rtype, new, old)
                    if w:
                        warnings.extend(w)
        except errors.ApiError as exc:
            named, message = _webhook_of(exc.message)
            if mutating and named and named != webhook:
                return out   # another (validating) webhook's denial: that webhook answers it
            resp["allowed"] = False
            resp["status"] = {"code": exc.code, "message": message, "reason": exc.reason}
            if exc.details is not None:
                resp["status"]["details"] = exc.details
            return out
        if mutating:
            ops = json_patch_ops(obj, new)
            if ops:
                resp["patchType"] = "JSONPatch"
                resp["patch"] = base64.b64encode(json.dumps(ops).encode()).decode()
        elif warnings:
            resp["warnings"] = warnings
        return out


# --- scheduler + kubelet for the pods kube-controller-manager creates -----------------------------------------
PODS = ("", "pods")


def _pod_node(pod):
    """The node a DaemonSet pod is pinned to (nodeAffinity matchFields metadata.name), if any."""
    aff = (((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution") or {}
    for term in aff.get("nodeSelectorTerms") or []:
        for f in term.get("matchFields") or []:
            if f.get("key") == "metadata.name" and f.get("values"):
                return f["values"][0]
    return None


def make_pod_simulator(app):
    """A Controller binding Pending pods to the fake nodes and reporting them Running and Ready (a container image
    whose registry contains "unreachable" stays Pending in ImagePullBackOff, as controllers/operator.py's rollout
    simulation has it), so that kube-controller-manager's Deployment/ReplicaSet/DaemonSet controllers see the
    operands roll out. Pods being deleted are removed at once (grace period 0), as a kubelet does once stopped."""
    from .api import now
    from .controllers import Controller
    from .controllers.operator import UNREACHABLE, split_image

    class PodSimulator(Controller):
        name = "kubelet"
        watches = (PODS, NODES)

        def setup(self):
            self._rr = 0
            self._ip = 0

        def reconcile(self, rkey, ns, name, etype, obj):
            if rkey == NODES:   # a (new) node: pods that found none can be scheduled now
                for pod in self.store.items(PODS):
                    if not (pod.get("spec") or {}).get("nodeName"):
                        self.reconcile(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"], "MODIFIED", pod)
                return
            if etype == "DELETED":
                return
            pod = self.store.get(PODS, ns, name)
            if pod is None:
                return
            rt = self.app.registry.get(*PODS)
            if pod["metadata"].get("deletionTimestamp"):
                try:
                    self.api.delete(rt, "v1", ns, name, Options(), {"gracePeriodSeconds": 0})
                except errors.ApiError:
                    pass
                return
            spec, st = pod.get("spec") or {}, pod.get("status") or {}
            if not spec.get("nodeName"):
                node = _pod_node(pod) or self._pick(spec)
                if node is None:
                    return
                body = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name, "namespace": ns},
                        "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
                try:
                    self.app.client.call("POST", resource_path(rt, "v1", ns, name, "binding"), body)
                except errors.ApiError as exc:
                    log("binding pod %s/%s: %s" % (ns, name, exc.message))
                return
            if st.get("phase") in ("Running", "Succeeded", "Failed") or st.get("startTime"):
                return
            self.after(self.step, self._start, ns, name, pod["metadata"]["uid"])

        def _pick(self, spec):
            selector = spec.get("nodeSelector") or {}
            nodes = [n["metadata"]["name"] for n in self.store.items(NODES) if all(
                (n["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())]
            if not nodes:
                return None
            self._rr += 1
            return nodes[self._rr % len(nodes)]

        def _start(self, ns, name, uid):
            pod = self.store.get(PODS, ns, name)
            if pod is None or pod["metadata"]["uid"] != uid or (pod.get("status") or {}).get("startTime"):
                return
            containers = (pod.get("spec") or {}).get("containers") or []
            broken = [c for c in containers if UNREACHABLE in split_image(c.get("image") or "")[0]]
            self._ip += 1
            ip = "10.244.%d.%d" % (100 + self._ip // 250, self._ip % 250 + 2)

            def mutate(o):
                st = o.setdefault("status", {})
                ok = "False" if broken else "True"
                st.update({"phase": "Pending" if broken else "Running", "startTime": now(), "podIP": ip,
                           "podIPs": [{"ip": ip}], "hostIP": "192.0.2.11"})   # qosClass: the server sets it
                st["conditions"] = [{"type": t, "status": s, "lastProbeTime": None, "lastTransitionTime": now()}
                                    for t, s in (("PodReadyToStartContainers", "True"), ("Initialized", "True"),
                                                 ("Ready", ok), ("ContainersReady", ok), ("PodScheduled", "True"))]
                statuses = []
                for c in containers:
                    bad = c in broken
                    statuses.append({"name": c.get("name"), "image": c.get("image"), "imageID": "",
                                     "ready": not bad, "restartCount": 0, "started": not bad,
                                     "state": {"waiting": {"reason": "ImagePullBackOff", "message":
                                                           'Back-off pulling image "%s"' % c.get("image")}}
                                     if bad else {"running": {"startedAt": now()}}})
                st["containerStatuses"] = statuses
            self.api.write_status(self.app.registry.get(*PODS), ns, name, mutate, "kubelet")

    return PodSimulator(app)


# --- the host -------------------------------------------------------------------------------------------------
class RemoteApp:
    """What controllers.Controller needs from emulator's App, backed by a real server."""

    def __init__(self, kubeconfig, timing="fast", context=None, workers=VIRT_WORKERS):
        self.client = Client(kubeconfig, context)
        self.timing = timing
        self.workers = workers
        self.registry = Registry()
        for rt in builtin_types():
            self.registry.add(rt)
        for group, kind, plural, namespaced in EXTRA_KINDS:   # kinds the emulator does not serve
            if self.registry.get(group, plural) is None:
                self.registry.add(ResourceType(group, ["v1"], kind, plural, namespaced=namespaced,
                                               schemas={"v1": PRESERVE}))
        self._registry_lock = threading.Lock()
        self._registry_checked = 0
        self.refresh_registry(force=True)
        self.store = RemoteStore(self)
        self.api = RemoteApi(self)
        self.subresource_handlers = {}
        self.guest_ports = GuestPorts()   # what a portforward reaches (test-registered ports; no real guests here)
        self.controllers = []
        self.realguests = None
        self.real_workload_controllers = False   # True: controllers/operator.py leaves rollout status to kcm
        self.guest_images = None
        self.stopping = threading.Event()
        self.server = None
        self.names = []
        self._registered = []   # (rtype key, ns, name) created here, deleted on stop
        self._leases = []

    def refresh_registry(self, force=False):
        """(Re)read the server's CRDs into the registry (at most every 5 s)."""
        with self._registry_lock:
            if not force and time.monotonic() - self._registry_checked < 5:
                return
            self._registry_checked = time.monotonic()
            try:
                crds = self.client.call("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
            except errors.ApiError as exc:
                log("listing CRDs: %s" % exc.message)
                return
            for crd in crds.get("items") or []:
                self.registry.add(type_from_crd(crd))

    def _crd_changed(self, rkey, event):
        etype, obj = event[0], event[1]
        if rkey == CRDS and etype != "DELETED" and obj.get("spec"):
            with self._registry_lock:
                self.registry.add(type_from_crd(obj))

    def admin(self, manager="virtfleet-remote"):
        return Options(manager=manager)

    # --- fake nodes: Node + Ready status (App.add_node) and a Lease kept renewed ---------------------------------
    def add_node(self, name, ip):
        from .app import App
        App.add_node(self, name, ip)
        # kube-apiserver's TaintNodesByCondition admission taints a new Node not-ready:NoSchedule; the node lifecycle
        # controller lifts it once Ready (it need not run here): lift it, or DaemonSets schedule onto no node.
        node = self.client.call("GET", "/api/v1/nodes/" + name)
        taints = (node.get("spec") or {}).get("taints") or []
        kept = [t for t in taints if t.get("key") != "node.kubernetes.io/not-ready"]
        if kept != taints:
            self.api.patch(self.registry.get(*NODES), "v1", "", name, "application/merge-patch+json",
                           {"spec": {"taints": kept or None}}, Options(manager="node-lifecycle-controller"))
        self._leases.append(name)
        self._renew_lease(name)

    def _renew_lease(self, name):
        rt = self.registry.get(*LEASES)
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name, "namespace": "kube-node-lease"},
                "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": stamp}}
        try:
            self.api.patch(rt, "v1", "kube-node-lease", name, "application/apply-patch+yaml", body,
                           Options(manager="kubelet", force=True))
        except errors.ApiError as exc:
            log("lease %s: %s" % (name, exc.message))

    def _heartbeat(self):
        while not self.stopping.wait(10):
            for name in list(self._leases):
                self._renew_lease(name)

    # --- start/stop ----------------------------------------------------------------------------------------------
    def start(self, names, nodes=2, namespace="kubevirt", wait=90):
        from .controllers import start_controllers  # noqa: F401 (keeps the import graph as the emulator's)
        self.names = list(names)
        controllers = []
        for n in names:
            if n == "virt":
                from .controllers.virt import VirtController
                from .controllers.webhooks import KubeVirtWebhooks
                from .controllers.snapshot import SnapshotController
                controllers += [VirtController(self, workers=self.workers), KubeVirtWebhooks(self), SnapshotController(self)]
            elif n == "cdi":
                from .controllers.cdi import CdiController
                controllers.append(CdiController(self))
            elif n == "operators":
                from .controllers.operator import OperatorController
                controllers.append(OperatorController(self))
                # kube-controller-manager rolls the operands out from pods that this host schedules and "runs"
                self.real_workload_controllers = True
                controllers.append(make_pod_simulator(self))
            else:
                raise SystemExit("kubeapi-remote: unknown controller %r (known: virt, cdi, operators)" % n)
        # Subscribe before the first lists, so the controllers see every existing object as ADDED (an informer's
        # initial list), then fill the caches of everything they watch.
        for c in controllers:
            c.start()
            self.controllers.append(c)
        # A CRD changed on the server (kubevirt_install applies the operators' CRDs) changes how its kind is written
        # (a status subresource or not): the registry follows the CRDs as they change.
        self.store.subscribe(self._crd_changed)
        watched = {rk for c in controllers for rk in c.watches} | {NODES, CRDS}
        for rk in sorted(watched):
            self.store.ensure(rk, wait=0)
        for rk in sorted(watched):
            self.store.ensure(rk)
        self.server = WebhookServer(self, (NAME + "-virt-api", namespace))
        self.server.start()
        self._ensure_namespace(namespace)
        self._ensure_namespace("kube-node-lease")
        if self.subresource_handlers:
            self._register_apiservice(namespace)
        self._register_webhooks()
        for i in range(1, nodes + 1):
            self.add_node("node%02d" % i, "192.0.2.%d" % (10 + i))
        threading.Thread(target=self._heartbeat, name="node-heartbeat", daemon=True).start()
        if self.subresource_handlers:
            self._wait_available(wait)
        return {"ready": True, "server": self.client.server, "port": self.server.port,
                "controllers": [c.name for c in self.controllers],
                "apiservices": ["%s.%s" % (v, discovery.VIRT_SUB_GROUP) for v in APISERVICE_VERSIONS]
                if self.subresource_handlers else [],
                "webhooks": sorted({w[0] for n in self.names for w in WEBHOOKS.get(n, ())}),
                "nodes": list(self._leases), "pid": os.getpid()}

    def _create_or_replace(self, rkey, ns, body):
        rt = self.registry.get(*rkey)
        name = body["metadata"]["name"]
        body["metadata"].setdefault("labels", {}).update(OWN_LABEL)
        try:
            self.api.create(rt, rt.storage_version, ns, body, Options(manager=NAME))
        except errors.ApiError as exc:
            if exc.code != 409:
                raise
            cur = self.client.call("GET", resource_path(rt, rt.storage_version, ns, name))
            body["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"]
            self.api.update(rt, rt.storage_version, ns, name, body, Options(manager=NAME))
        self._registered.append((rkey, ns, name))

    def _ensure_namespace(self, name):
        rt = self.registry.get("", "namespaces")
        try:
            self.api.create(rt, "v1", "", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
                            Options(manager=NAME))
        except errors.ApiError as exc:
            if exc.code != 409:
                raise

    def _register_apiservice(self, namespace):
        svc_name = self.server_service = NAME + "-virt-api"
        self._create_or_replace(("", "services"), namespace, {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": svc_name, "namespace": namespace},
            "spec": {"type": "ExternalName", "externalName": "localhost",
                     "ports": [{"name": "https", "port": self.server.port, "protocol": "TCP"}]}})
        for version in APISERVICE_VERSIONS:
            self._create_or_replace(("apiregistration.k8s.io", "apiservices"), "", {
                "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
                "metadata": {"name": "%s.%s" % (version, discovery.VIRT_SUB_GROUP)},
                "spec": {"group": discovery.VIRT_SUB_GROUP, "version": version, "caBundle": self.server.ca_bundle,
                         "service": {"namespace": namespace, "name": svc_name, "port": self.server.port},
                         "groupPriorityMinimum": 1000, "versionPriority": 15 if version == "v1" else 10}})

    def _register_webhooks(self):
        hooks = {}
        for n in self.names:
            for name, mutating, rules in WEBHOOKS.get(n, ()):
                entry = hooks.setdefault((name, mutating), [])
                entry.extend(r for r in rules if r not in entry)
        for mutating, kind, plural in ((True, "MutatingWebhookConfiguration", "mutatingwebhookconfigurations"),
                                       (False, "ValidatingWebhookConfiguration", "validatingwebhookconfigurations")):
            webhooks = []
            for (name, mut), rules in sorted(hooks.items()):
                if mut != mutating:
                    continue
                wh = {"name": name, "admissionReviewVersions": ["v1"], "sideEffects": "None",
                      "failurePolicy": "Fail", "timeoutSeconds": 10, "matchPolicy": "Equivalent",
                      "clientConfig": {"url": self.server.url(mutating, name), "caBundle": self.server.ca_bundle},
                      "rules": rules}
                if mutating:
                    wh["reinvocationPolicy"] = "Never"
                webhooks.append(wh)
            if webhooks:
                self._create_or_replace(("admissionregistration.k8s.io", plural), "", {
                    "apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
                    "metadata": {"name": NAME + "-kubevirt"}, "webhooks": webhooks})

    def _wait_available(self, timeout):
        deadline = time.monotonic() + timeout
        pending = {"%s.%s" % (v, discovery.VIRT_SUB_GROUP) for v in APISERVICE_VERSIONS}
        while pending:
            for name in sorted(pending):
                doc = self.client.call("GET", "/apis/apiregistration.k8s.io/v1/apiservices/" + name)
                if any(c.get("type") == "Available" and c.get("status") == "True"
                       for c in (doc.get("status") or {}).get("conditions") or []):
                    pending.discard(name)
            if not pending:
                return
            if time.monotonic() > deadline:
                raise SystemExit("kubeapi-remote: APIService %s not Available after %ss: %s" % (
                    ", ".join(sorted(pending)), timeout, (doc.get("status") or {}).get("conditions")))
            time.sleep(0.3)

    def stop(self, cleanup=True):
        self.stopping.set()
        for c in self.controllers:
            c.stop()
        if cleanup:
            for rkey, ns, name in reversed(self._registered):
                rt = self.registry.get(*rkey)
                try:
                    self.api.delete(rt, rt.storage_version, ns, name, Options())
                except errors.ApiError as exc:
                    if exc.code != 404:
                        log("cleanup %s %s: %s" % (rt.plural, name, exc.message))
            for name in self._leases:
                for rkey, ns in ((NODES, ""), (LEASES, "kube-node-lease")):
                    rt = self.registry.get(*rkey)
                    try:
                        self.api.delete(rt, "v1", ns, name, Options())
                    except errors.ApiError:
                        pass
        self.store.stop()
        if self.server is not None:
            self.server.stop()


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m tests.kubeapi.remote", description=__doc__.split("\n\n")[0])
    p.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"), required=not os.environ.get("KUBECONFIG"))
    p.add_argument("--context")
    p.add_argument("--controllers", default="virt", help="comma list of virt, cdi, operators")
    p.add_argument("--timing", default="fast", help="fast, normal or seconds per controller step")
    p.add_argument("--nodes", type=int, default=2, help="fake Ready nodes to create (0: none)")
    p.add_argument("--namespace", default="kubevirt", help="namespace of the APIService's ExternalName Service")
    p.add_argument("--keep", action="store_true", help="leave the registrations in place on exit")
    p.add_argument("--workers", type=int, default=VIRT_WORKERS, help="worker threads of the simulated virt-controller "
                   "(default %d)" % VIRT_WORKERS)
    args = p.parse_args(argv)
    names = [n.strip() for n in args.controllers.split(",") if n.strip() and n.strip() != "none"]
    app = RemoteApp(args.kubeconfig, args.timing, args.context, workers=args.workers)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    try:
        info = app.start(names, nodes=args.nodes, namespace=args.namespace)
        print(json.dumps(info), flush=True)
        while not done.wait(1):
            pass
    finally:
        app.stop(cleanup=not args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
