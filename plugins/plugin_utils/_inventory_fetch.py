# -*- coding: utf-8 -*-
# Copyright: virtfleet.kubevirt contributors
# Apache License 2.0 (see LICENSE or http://www.apache.org/licenses/LICENSE-2.0)
"""Fetch step of the inventory plugin: the few list calls one refresh needs.

Request budget: one paginated list per kind (VMIs, VMs, and Services/Nodes only when an address
strategy needs them), cluster-wide, so the cost does not grow with the number of VMs or
namespaces. Per-namespace lists are used only for the namespaces the user names, or as the
fallback when the token may not list a kind cluster-wide (403).

Objects are trimmed to what the populate step reads before they are kept or cached: no spec
beyond interface port names, so cloud-init user data and similar never reach the cache.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import gc
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from ansible.errors import AnsibleError

from ansible_collections.virtfleet.kubevirt.plugins.module_utils._errors import ApiError
from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _kinds

# Services and Nodes never take the user's VM label/field selectors.
_SELECTABLE = ("vmis", "vms")
_META_KEYS = ("name", "namespace", "uid", "labels", "annotations", "resourceVersion")


@contextmanager
def gc_paused():
    """Suspend the cyclic garbage collector while a refresh builds its data.

    Decoding and trimming 10,000s of API objects allocates millions of acyclic containers; each
    allocation burst triggers collections that re-walk everything already decoded, which made
    json.loads about 6x slower at 10,000 VMs. The decoded data is acyclic and lives on; any cycle
    made meanwhile (templating) is collected once the previous state is restored.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# Whether gc_freeze() ran in this process since the last gc_thaw(). gc.get_freeze_count() cannot tell: Python 3.12's
# collections move its immortal objects into the frozen generation (375 at start-up, before any gc.freeze()).
_FROZEN = [False]


def gc_freeze(collect=True):
    """Exempt every object of the process from later cyclic collections (``gc.freeze()``).

    After a refresh the process holds the inventory (10,000s of hosts and their variables) for the rest of
    its life; each full collection while ansible-core prints or uses it would walk all of it again.
    ``collect`` first frees the cycles that are garbage, so none is frozen: needed after gc_thaw() gave
    back a previous inventory, and after templating (compose, filters), which leaves cycles. A build
    without either makes none (measured: 0 objects freed), and the collection costs about 0.1 s at
    10,000 VMs, so it is skipped then.
    """
    if collect:
        gc.collect()
    gc.freeze()
    _FROZEN[0] = True


def gc_thaw():
    """Undo a previous gc_freeze(), so the inventory a refresh replaces can be collected; True if one had frozen it."""
    frozen, _FROZEN[0] = _FROZEN[0], False
    gc.unfreeze()
    return frozen


def compact(value, strings):
    """``value`` rebuilt with each string replaced by the equal one already in ``strings`` (added when new).

    A decoded object has its own copy of every key and value; 10,000 VMIs repeat the same keys, condition
    types, phases, OS names, images and timestamps, and the copies were half of what the inventory kept of
    them (about 60 MB of 120 MB at 10,000 VMIs). Strings are immutable, so sharing them changes nothing for
    the user; containers are not shared.
    """
    kind = type(value)
    if kind is str:
        return strings.setdefault(value, value)
    if kind is dict:
        return dict((strings.setdefault(k, k), compact(v, strings)) for k, v in value.items())
    if kind is list:
        return [compact(v, strings) for v in value]
    return value


def _trim_meta(obj, strings):
    meta = obj.get("metadata") or {}
    return compact(dict((k, meta[k]) for k in _META_KEYS if k in meta), strings)


def trim_vmi(obj, strings=None):
    strings = {} if strings is None else strings
    interfaces = (((obj.get("spec") or {}).get("domain") or {}).get("devices") or {}).get("interfaces") or []
    ports = [{"name": i.get("name"), "ports": [{"name": p.get("name"), "port": p.get("port")} for p in i.get("ports") or []]}
             for i in interfaces if i.get("ports")]
    out = {"metadata": _trim_meta(obj, strings), "status": compact(obj.get("status") or {}, strings)}
    if ports:
        out["spec"] = {"domain": {"devices": {"interfaces": compact(ports, strings)}}}
    return out


def trim_vm(obj, strings=None):
    strings = {} if strings is None else strings
    return {"metadata": _trim_meta(obj, strings), "status": compact(obj.get("status") or {}, strings)}


def trim_service(obj, strings=None):
    """What the load_balancer and node_port strategies read of a Service, None for the Services they never use
    (types other than LoadBalancer and NodePort, no selector, no port: most Services of a cluster)."""
    strings = {} if strings is None else strings
    spec = obj.get("spec") or {}
    if spec.get("type") not in ("LoadBalancer", "NodePort") or not spec.get("selector") or not spec.get("ports"):
        return None
    meta = obj.get("metadata") or {}
    ports = [dict((k, p[k]) for k in ("port", "targetPort", "nodePort", "protocol") if k in p) for p in spec["ports"]]
    out = {"metadata": {"name": meta.get("name"), "namespace": meta.get("namespace")},
           "spec": compact({"type": spec["type"], "selector": spec["selector"], "ports": ports}, strings)}
    ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress")
    if ingress:
        out["status"] = {"loadBalancer": {"ingress": compact(ingress, strings)}}
    return compact(out, strings)


def trim_node(obj, strings=None):
    return {"metadata": {"name": (obj.get("metadata") or {}).get("name")},
            "status": {"addresses": (obj.get("status") or {}).get("addresses") or []}}


class ClusterFetcher(object):
    """Lists what one connection needs; ``api`` is an _api.Api-like object (list/get raising ApiError)."""

    def __init__(self, conn, api, warn):
        self.conn = conn
        self.api = api
        self.warn = warn
        self._namespaces = None
        self._namespaces_lock = threading.Lock()
        # One string table for the whole refresh (all kinds; dict.setdefault is atomic, the lists run in threads).
        self._strings = {}
        vmi_kind = _kinds.VMI.with_api_version(conn.api_version)
        self.kinds = [("vmis", vmi_kind, trim_vmi), ("vms", _kinds.VM.with_api_version(conn.api_version), trim_vm)]
        if conn.address.needs_services:
            self.kinds.append(("services", _kinds.SERVICE, trim_service))

    def _list(self, kind, namespace, selectable, trim=None):
        """The trimmed items: each object is trimmed as soon as it is decoded, so whole objects (spec, managedFields)
        of a page are never all held at once."""
        strings = self._strings
        each = None if trim is None else (lambda obj: trim(obj, strings))
        items, _version = self.api.list(kind, namespace=namespace, limit=self.conn.page_size,
                                        label_selectors=self.conn.label_selector if selectable else None,
                                        field_selectors=self.conn.field_selector if selectable else None, each=each)
        # A trim function returns None for an object nothing reads (Services no strategy can use).
        return items if each is None else [item for item in items if item is not None]

    def _all_namespaces(self, kind):
        # Kinds are listed concurrently; several may fall back at once but the namespaces are listed once.
        with self._namespaces_lock:
            return self._namespaces_locked(kind)

    def _namespaces_locked(self, kind):
        if self._namespaces is None:
            items = None
            try:
                items = self._list(_kinds.NAMESPACE, None, False, lambda n, _strings: (n.get("metadata") or {}).get("name"))
            except ApiError as exc:
                if exc.status != 403:
                    raise
            if items is None:
                raise AnsibleError(
                    "%sThe credentials may neither list %s in all namespaces nor list namespaces (403 Forbidden); set the "
                    "namespaces option to the namespaces they may read." % (self._label(), kind.describe()))
            self._namespaces = items
        return self._namespaces

    def _label(self):
        return "Cluster connection %s: " % (self.conn.name or self.conn.index) if self.conn.index is not None else ""

    def list_kind(self, key, kind, trim):
        """Return (trimmed items, namespaces the credentials may not read for this kind)."""
        selectable = key in _SELECTABLE
        if not self.conn.namespaces:
            try:
                return self._list(kind, None, selectable, trim), set()
            except ApiError as exc:
                if exc.status != 403:
                    raise
            namespaces = self._all_namespaces(kind)
        else:
            namespaces = self.conn.namespaces
        items, forbidden = [], set()
        for namespace in namespaces:
            try:
                items.extend(self._list(kind, namespace, selectable, trim))
            except ApiError as exc:
                if exc.status != 403:
                    raise
                forbidden.add(namespace)
        return items, forbidden

    def _list_kinds(self):
        """Run list_kind for every kind concurrently; return one callable per kind giving its result or raising its error.

        With 10,000s of objects a list page takes the API server about as long to build as it takes here to
        decode and trim, so overlapping the kinds' requests hides most of the server's time. The requests
        (and their retries) are the same as one after the other; the caller takes the outcomes in kind
        order, so errors are reported as a sequential fetch would report them.
        """
        with ThreadPoolExecutor(max_workers=len(self.kinds)) as pool:
            futures = [pool.submit(self.list_kind, key, kind, trim) for key, kind, trim in self.kinds]
        return [future.result for future in futures]

    def fetch(self):
        """Return the cluster's data dict for the populate step (and the cache)."""
        data = {"vmis": [], "vms": [], "services": [], "nodes": [], "cluster_domain": None, "skipped_namespaces": []}
        forbidden = {}
        for (key, kind, _trim), outcome in zip(self.kinds, self._list_kinds()):
            try:
                data[key], denied = outcome()
            except ApiError as exc:
                if exc.status != 404 or key == "services":
                    raise
                # A list of a collection never 404s when its API is served: KubeVirt (or that version) is missing.
                raise AnsibleError("%sThe API server does not serve %s (404): install KubeVirt, or set api_version to a "
                                   "version it serves." % (self._label(), kind.api_version))
            for namespace in denied:
                forbidden.setdefault(namespace, []).append(kind.plural)
        no_services = sorted(ns for ns, plurals in forbidden.items() if plurals == [_kinds.SERVICE.plural])
        if no_services:
            # The VMs there are still readable: list them, addressed without Services (one warning for all).
            for namespace in no_services:
                del forbidden[namespace]
            self.warn("%sThe credentials may not list services in namespace(s) %s (403 Forbidden): their VMs are listed "
                      "without Service addresses (the load_balancer and node_port strategies do not apply there); grant "
                      "read access to services to use them." % (self._label(), ", ".join(no_services)))
        if forbidden:
            self._report_forbidden(forbidden)
            skip = set(forbidden)
            for key, _kind, _trim in self.kinds:
                data[key] = [o for o in data[key] if o["metadata"].get("namespace") not in skip]
            data["skipped_namespaces"] = sorted(skip)
        if self.conn.address.needs_nodes:
            data["nodes"] = self._nodes()
        if self.conn.needs_base_domain_lookup:
            data["cluster_domain"] = self._cluster_domain()
        return data

    def _report_forbidden(self, forbidden):
        names = sorted(forbidden)
        if self.conn.fail_on_forbidden:
            raise AnsibleError(
                "%sThe credentials may not list %s in namespace(s) %s (403 Forbidden); grant read access, remove them "
                "from namespaces, or set fail_on_forbidden=false to skip them with a warning." % (
                    self._label(), " and ".join(sorted(set(p for v in forbidden.values() for p in v))), ", ".join(names)))
        for namespace in names:
            self.warn("%sSkipping namespace %s: the credentials may not list %s there (403 Forbidden)." % (
                self._label(), namespace, " and ".join(forbidden[namespace])))

    def _nodes(self):
        try:
            return self._list(_kinds.NODE, None, False, trim_node)
        except ApiError as exc:
            if exc.status != 403:
                raise
            self.warn("%sThe credentials may not list nodes (403 Forbidden), so node_address_types other than "
                      "NodeName cannot be used; NodePort hosts fall back to the next address strategy." % self._label())
            return []

    def _cluster_domain(self):
        # OpenShift publishes the cluster's base domain in config.openshift.io/v1 DNS "cluster"; elsewhere 404.
        dns = _kinds.Kind("config.openshift.io", "v1", "dnses", "DNS", namespaced=False)
        try:
            obj = self.api.get(dns, "cluster")
        except ApiError as exc:
            if exc.status in (401, 403, 404):
                return None
            raise
        return ((obj or {}).get("spec") or {}).get("baseDomain")


def guest_hostname_getter(get_api, known):
    """Callback for the guest_agent_hostname strategy: one GET per VMI that reaches it, memoised in ``known``.

    ``known`` is stored with the fetched data, so an inventory cache hit costs no request; ``get_api``
    opens the connection only when a request is really needed.
    """
    def get(vmi):
        meta = vmi["metadata"]
        key = "%s/%s" % (meta["namespace"], meta["name"])
        if key not in known:
            try:
                info = get_api().subresource(_kinds.VMI_SUBRESOURCE, meta["name"], "guestosinfo", namespace=meta["namespace"],
                                             method="GET", idempotent=True)
                known[key] = (info or {}).get("hostname") or None
            except ApiError:
                # No agent connected (virt-api answers 4xx/5xx) means no name from it; the next strategy decides.
                known[key] = None
        return known[key]
    return get
