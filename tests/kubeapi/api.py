"""API semantics on top of the store: create/get/list/update/patch/apply/delete/watch with the validation,
resourceVersion/generation, dryRun, preconditions and error bodies of kube-apiserver.

The HTTP layer (server.py) and the simulated controllers both go through this class.
"""
import base64
import bisect
import json
import random
import threading
import time
import uuid

from . import errors, fieldmanager, schema as schemamod, selectors
from .patch import PatchError, json_patch, merge_patch, strategic_merge_patch
from .resources import type_from_crd
from .util import clone

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
APPLY_PATCH_CBOR = "application/apply-patch+cbor"


def now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Options:
    """Per-request options parsed from the query string."""

    def __init__(self, dry_run=False, validation="Warn", manager=None, force=False, user="admin", trusted=False):
        self.dry_run = dry_run
        # In-process loaders (seeding, the bulk hook) skip ObjectMeta label/annotation checks.
        self.trusted = trusted
        self.validation = validation
        self.manager = manager
        self.force = force
        self.user = user
        self.warnings = []


class Api:
    def __init__(self, registry, store):
        self.registry = registry
        self.store = store
        self._rand = random.Random(7)
        self._ip_lock = threading.Lock()
        self._next_cluster_ip = 1
        # NodePort -> (namespace, name) of the Service that took it; entries are checked against the store when
        # read (see _allocate_node_ports), so deletes and changes need no bookkeeping here.
        self._node_port_owners = {}
        # Admission webhooks registered by controllers: hook(rtype, obj, old) may mutate obj or raise ApiError,
        # and may return a list of warnings (an AdmissionResponse's `warnings`, sent as Warning headers).
        # Called under the store lock for creates, updates, patches and applies (dry runs too), not for /status.
        self.admission_hooks = []
        self._orphans = set()   # uids deleted with propagationPolicy Orphan: GC strips ownerRefs instead
        # Validating webhooks on DELETE (e.g. virt-operator's uninstall guard): hook(rtype, obj, opts) may raise.
        self.delete_hooks = []

    # --- helpers -----------------------------------------------------------------------------------------
    def serve(self, rtype, version, obj):
        """The stored object as seen through `version` (all versions share one schema-compatible storage)."""
        api_version = rtype.api_version(version)
        if obj.get("apiVersion") == api_version:
            return obj
        out = dict(obj)
        out["apiVersion"] = api_version
        return out

    def _require_namespace(self, rtype, ns, name=None, creating=False):
        if not rtype.namespaced:
            return
        nsobj = self.store.get(("", "namespaces"), "", ns)
        if nsobj is None:
            raise errors.namespace_not_found(ns)
        if creating and nsobj["metadata"].get("deletionTimestamp"):
            raise errors.ApiError(403, "Forbidden", '%s "%s" is forbidden: unable to create new content in '
                                  'namespace %s because it is being terminated' % (rtype.qualified, name or "", ns),
                                  {"name": name or "", "group": rtype.group, "kind": rtype.plural,
                                   "causes": [{"reason": "NamespaceTerminating", "message": "namespace %s is "
                                               "being terminated" % ns, "field": "metadata.namespace"}]})

    def _validate(self, rtype, version, obj, opts, name, patching=None):
        """Schema-validate, default and prune obj in place; raise 400 (strict) or 422 (invalid)."""
        res = schemamod.Validator(prune=True).run(obj, rtype.schema(version))
        if res.unknown:
            if opts.validation == "Strict":
                fields = ", ".join('unknown field "%s"' % f for f in res.unknown)
                if patching == "apply":
                    msg = ".%s: field not declared in schema" % res.unknown[0]
                elif patching:
                    msg = "strict decoding error: " + fields
                else:
                    msg = '%s in version "%s" cannot be handled as a %s: strict decoding error: %s' % (
                        rtype.kind, version, rtype.kind, fields)
                raise errors.bad_request(msg)
            if opts.validation != "Ignore":
                opts.warnings.extend('unknown field "%s"' % f for f in res.unknown)
        causes = list(res.errors)
        meta = obj.get("metadata") or {}
        if meta.get("name") and rtype.group == "rbac.authorization.k8s.io":
            # RBAC objects only need a valid path segment ("kubevirt.io:operator" is a real ClusterRole name).
            if meta["name"] in (".", "..") or "/" in meta["name"] or "%" in meta["name"]:
                causes.append({"reason": "FieldValueInvalid", "field": "metadata.name",
                               "message": 'Invalid value: "%s": may not contain \'/\' or \'%%\'' % meta["name"]})
        elif meta.get("name"):
            causes.extend(schemamod.validate_name(meta["name"], label=rtype.key == ("", "namespaces")))
        if not opts.trusted:
            causes.extend(schemamod.validate_metadata(meta))
        if causes:
            raise errors.invalid(rtype, name, causes)

    def _admit(self, rtype, new, old, subresource, opts):
        if subresource:
            return
        for hook in list(self.admission_hooks):
            warnings = hook(rtype, new, old)
            if warnings:
                opts.warnings.extend(warnings)

    def _check_body(self, rtype, version, body, ns):
        if not isinstance(body, dict):
            raise errors.bad_request("the object provided is unrecognized (must be of type %s)" % rtype.kind)
        if rtype.crd_name:
            # Custom resources are decoded as unstructured objects: kind and apiVersion are required
            # (built-in kinds take them from the URL).
            for key, label in (("kind", "Kind"), ("apiVersion", "apiVersion")):
                if not body.get(key):
                    raise errors.bad_request("Object '%s' is missing in '%s'" % (
                        label, json.dumps(body, separators=(",", ":"))))
        body.setdefault("apiVersion", rtype.api_version(version))
        body.setdefault("kind", rtype.kind)
        if body["kind"] != rtype.kind or body["apiVersion"] not in [rtype.api_version(v) for v in rtype.versions]:
            raise errors.bad_request("the API version in the data (%s) does not match the expected API version "
                                     "(%s)" % (body["apiVersion"], rtype.api_version(version))
                                     if body["kind"] == rtype.kind else
                                     "the kind in the data (%s) does not match the expected kind (%s)" % (
                                         body["kind"], rtype.kind))
        body["apiVersion"] = rtype.api_version(version)
        meta = body.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        if rtype.namespaced:
            if meta.get("namespace") and meta["namespace"] != ns:
                raise errors.bad_request("the namespace of the provided object does not match the namespace sent "
                                         "on the request")
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)

    def _spec_changed(self, rtype, old, new):
        skip = {"metadata", "apiVersion", "kind"}
        if rtype.has_status():
            skip.add("status")
        strip = lambda o: {k: v for k, v in o.items() if k not in skip}  # noqa: E731
        return strip(old) != strip(new)

    def _finish(self, rtype, obj, old=None):
        """Kind-specific normalisation done by the real registry strategies (``old``: the stored object, on updates)."""
        key = rtype.key
        for field in OMITTED_ZERO.get(key, ()):
            # A Go field with `omitempty` and its zero value is not stored: it reads back absent.
            if field in obj and obj[field] in (False, 0, "", None) and not isinstance(obj[field], float):
                del obj[field]
        if key == ("", "secrets"):
            sd = obj.pop("stringData", None)
            if sd:
                data = obj.setdefault("data", {})
                for k, v in sd.items():
                    data[k] = base64.b64encode(str(v).encode()).decode()
            obj.setdefault("type", "Opaque")
        elif key == ("", "namespaces"):
            meta = obj["metadata"]
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
            obj.setdefault("status", {}).setdefault("phase", "Active")
        elif key == ("", "services"):
            spec = obj.setdefault("spec", {})
            spec.setdefault("type", "ClusterIP")
            if spec.get("clusterIP") is None and spec["type"] != "ExternalName":
                with self._ip_lock:
                    n = self._next_cluster_ip
                    self._next_cluster_ip += 1
                spec["clusterIP"] = "10.96.%d.%d" % (n // 250, n % 250 + 1)
                spec["clusterIPs"] = [spec["clusterIP"]]
            spec.setdefault("sessionAffinity", "None")
            if spec["type"] in ("NodePort", "LoadBalancer"):
                self._allocate_node_ports(rtype, obj)
            # ServiceStatus.LoadBalancer is a non-pointer struct: the API server always serves it, empty until set.
            if not isinstance(obj.get("status"), dict):
                obj["status"] = {}
            obj["status"].setdefault("loadBalancer", {})
        elif key == ("", "pods"):
            self._pod_qos_class(rtype, obj, old)
        elif key in (("admissionregistration.k8s.io", "validatingwebhookconfigurations"),
                     ("admissionregistration.k8s.io", "mutatingwebhookconfigurations")):
            # pkg/apis/admissionregistration/validation: v1 requires both of these on every webhook
            causes = []
            for i, hook in enumerate(obj.get("webhooks") or []):
                if not isinstance(hook, dict):
                    continue
                if hook.get("sideEffects") not in ("None", "NoneOnDryRun"):
                    causes.append({"reason": "FieldValueRequired", "field": "webhooks[%d].sideEffects" % i,
                                   "message": "Required value: must specify one of None, NoneOnDryRun"})
                if not hook.get("admissionReviewVersions"):
                    causes.append({"reason": "FieldValueRequired",
                                   "field": "webhooks[%d].admissionReviewVersions" % i,
                                   "message": "Required value: must specify one of v1, v1beta1"})
            if causes:
                raise errors.invalid(rtype, obj["metadata"].get("name"), causes)
        elif key == ("", "serviceaccounts"):
            pass

    @staticmethod
    def _pod_qos_class(rtype, obj, old):
        """pkg/apis/core/helper/qos: the server sets status.qosClass from the containers' requests and limits on
        create, and refuses to change it afterwards (422 "field is immutable")."""
        status = obj.get("status") if isinstance(obj.get("status"), dict) else {}
        if old is not None:
            stored = (old.get("status") or {}).get("qosClass")
            if status.get("qosClass") not in (None, stored):
                raise errors.invalid(rtype, obj["metadata"].get("name"), [{
                    "reason": "FieldValueInvalid", "field": "status.qosClass",
                    "message": 'Invalid value: "%s": field is immutable' % status["qosClass"]}])
            if stored:
                obj.setdefault("status", {})["qosClass"] = stored
            return
        requests, limits, guaranteed = False, False, True
        for c in ((obj.get("spec") or {}).get("containers") or []):
            res = c.get("resources") or {} if isinstance(c, dict) else {}
            req, lim = res.get("requests") or {}, res.get("limits") or {}
            requests, limits = requests or bool(req), limits or bool(lim)
            for name in ("cpu", "memory"):
                if not lim.get(name) or req.get(name, lim.get(name)) != lim.get(name):
                    guaranteed = False
        qos = "BestEffort" if not (requests or limits) else "Guaranteed" if guaranteed else "Burstable"
        obj.setdefault("status", {})["qosClass"] = qos

    NODE_PORTS = (30000, 32767)

    def _allocate_node_ports(self, rtype, obj):
        """As kube-apiserver's service registry: a NodePort is unique in the cluster (422 "provided port is already
        allocated"), and one is allocated from 30000-32767 for a port that names none.

        The owners of the node ports are indexed (port -> (namespace, name)) and an entry is checked against the
        store when it is read, so an entry left by a deleted or changed Service (or a write refused later) is dropped
        then: one Service write costs O(its ports), not O(all Services) (a bulk load of 10,000 was quadratic)."""
        meta = obj["metadata"]
        me = (meta.get("namespace"), meta.get("name"))
        owners = self._node_port_owners

        def taken(port):
            owner = owners.get(port)
            if owner is None or owner == me:
                return False
            svc = self.store.get(rtype.key, owner[0], owner[1])
            if svc is not None and any(isinstance(p, dict) and p.get("nodePort") == port
                                       for p in (svc.get("spec") or {}).get("ports") or []):
                return True
            del owners[port]
            return False

        with self.store.lock:
            if not owners:
                for svc in self.store.items(rtype.key, None):
                    for p in (svc.get("spec") or {}).get("ports") or []:
                        if isinstance(p, dict) and p.get("nodePort"):
                            owners.setdefault(p["nodePort"], (svc["metadata"].get("namespace"), svc["metadata"]["name"]))
            causes = []
            ports = obj["spec"].get("ports") or []
            mine = set()
            for i, port in enumerate(ports):
                if not isinstance(port, dict) or not port.get("nodePort"):
                    continue
                if port["nodePort"] in mine or taken(port["nodePort"]):
                    causes.append({"reason": "FieldValueInvalid", "field": "spec.ports[%d].nodePort" % i,
                                   "message": "Invalid value: %s: provided port is already allocated"
                                   % port["nodePort"]})
                mine.add(port["nodePort"])
            if causes:
                raise errors.invalid(rtype, meta.get("name"), causes)
            for port in ports:
                if isinstance(port, dict) and not port.get("nodePort"):
                    port["nodePort"] = next(n for n in range(self.NODE_PORTS[0], self.NODE_PORTS[1] + 1)
                                            if n not in mine and not taken(n))
                    mine.add(port["nodePort"])
            for port in mine:
                owners[port] = me

    def _manager(self, opts, default="unknown"):
        return opts.manager or default

    # --- reads -------------------------------------------------------------------------------------------
    def get(self, rtype, version, ns, name):
        obj = self.store.get(rtype.key, ns if rtype.namespaced else "", name)
        if obj is None:
            raise errors.not_found(rtype, name)
        return self.serve(rtype, version, obj)

    def list(self, rtype, version, ns, label_selector=None, field_selector=None, limit=None, cont=None):
        try:
            lreqs = selectors.parse_label_selector(label_selector)
            freqs = selectors.parse_field_selector(field_selector, rtype)
        except selectors.SelectorError as exc:
            raise errors.bad_request(str(exc))
        start = None
        with self.store.lock:
            rv = self.store.rv
            items = self.store.items(rtype.key, ns if rtype.namespaced and ns else None)
        if cont:
            try:
                tok = json.loads(base64.urlsafe_b64decode(cont + "=" * (-len(cont) % 4)).decode())
                start = (tok["start"][0], tok["start"][1])
                rv = tok.get("rv", rv)
            except (ValueError, KeyError, TypeError, IndexError):
                raise errors.bad_request("continue key is not valid: invalid continue token")
            keys = [(o["metadata"].get("namespace") or "", o["metadata"]["name"]) for o in items]
            items = items[bisect.bisect_right(keys, start):]
        out = []
        more = False
        remaining = 0
        for o in items:
            if lreqs and not selectors.match_labels(lreqs, o["metadata"].get("labels")):
                continue
            if freqs and not selectors.match_fields(freqs, o):
                continue
            if limit and len(out) >= limit:
                more = True
                remaining += 1
                continue
            out.append(o)
        meta = {"resourceVersion": str(rv)}
        if more:
            last = out[-1]["metadata"]
            tok = {"v": "meta.k8s.io/v1", "rv": rv, "start": [last.get("namespace") or "", last["name"]]}
            meta["continue"] = base64.urlsafe_b64encode(json.dumps(tok).encode()).decode().rstrip("=")
            if not lreqs and not freqs:
                meta["remainingItemCount"] = remaining
        api_version = rtype.api_version(version)
        if rtype.crd_name:
            out = [self.serve(rtype, version, o) for o in out]
        else:
            # The real API omits kind/apiVersion on items of built-in lists.
            out = [{k: v for k, v in o.items() if k not in ("kind", "apiVersion")} for o in out]
        return {"kind": rtype.list_kind, "apiVersion": api_version, "metadata": meta, "items": out}

    # --- writes ------------------------------------------------------------------------------------------
    def create(self, rtype, version, ns, body, opts, subresource=None, managed_fields=None):
        body = clone(body)
        self._check_body(rtype, version, body, ns)
        meta = body["metadata"]
        if not meta.get("name"):
            if meta.get("generateName"):
                suffix = "".join(self._rand.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
                meta["name"] = meta["generateName"] + suffix
            else:
                raise errors.invalid(rtype, "", [{"reason": "FieldValueRequired", "field": "metadata.name",
                                                  "message": "Required value: name or generateName is required"}])
        name = meta["name"]
        self._require_namespace(rtype, ns, name, creating=True)
        if rtype.has_status():
            body.pop("status", None)
        self._validate(rtype, version, body, opts, name)
        self._admit(rtype, body, None, None, opts)
        self._finish(rtype, body)
        for k in ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp", "generation", "selfLink"):
            meta.pop(k, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now()
        if rtype.generation:
            meta["generation"] = 1
        if managed_fields is not None:   # server-side apply creating the object: its Apply entry
            meta["managedFields"] = managed_fields
        else:
            meta["managedFields"] = fieldmanager.record_update(
                None, body, self._manager(opts), body["apiVersion"], now(), rtype.schema(version),
                rtype.has_status())
        if rtype.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
            self._crd_status(body)
        with self.store.lock:
            if self.store.get(rtype.key, ns if rtype.namespaced else "", name) is not None:
                raise errors.already_exists(rtype, name)
            if opts.dry_run:
                meta["resourceVersion"] = ""
                return self.serve(rtype, version, body)
            meta["resourceVersion"] = str(self.store.next_rv())
            body["apiVersion"] = rtype.api_version(rtype.storage_version)
            self.store.put(rtype.key, body, "ADDED")
            if rtype.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
                self.registry.add(type_from_crd(body))
        return self.serve(rtype, version, body)

    def _crd_status(self, crd):
        names = crd["spec"]["names"]
        accepted = dict(names)
        accepted.setdefault("singular", names["kind"].lower())
        accepted.setdefault("listKind", names["kind"] + "List")
        t = now()
        crd["status"] = {
            "acceptedNames": accepted,
            "storedVersions": [v["name"] for v in crd["spec"]["versions"] if v.get("storage")],
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                 "message": "no conflicts found", "lastTransitionTime": t},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                 "message": "the initial names have been accepted", "lastTransitionTime": t},
            ]}

    def _named_body(self, rtype, version, body, ns, name):
        """A checked copy of a PUT/apply body whose metadata.name is the one on the URL."""
        body = clone(body)
        self._check_body(rtype, version, body, ns)
        meta = body["metadata"]
        if meta.get("name") and meta["name"] != name:
            raise errors.bad_request("the name of the object (%s) does not match the name on the URL (%s)" % (
                meta["name"], name))
        meta["name"] = name
        return body

    def update(self, rtype, version, ns, name, body, opts, subresource=None, _patch=None):
        """PUT (or the tail of a PATCH): optimistic concurrency on metadata.resourceVersion."""
        body = self._named_body(rtype, version, body, ns, name)
        meta = body["metadata"]
        key_ns = ns if rtype.namespaced else ""
        with self.store.lock:
            old = self.store.get(rtype.key, key_ns, name)
            if old is None:
                raise errors.not_found(rtype, name)
            rv = meta.get("resourceVersion")
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise errors.conflict(rtype, name)
            if not rv and rtype.crd_name and _patch is None:
                raise errors.invalid(rtype, name, [{"reason": "FieldValueInvalid", "field": "metadata.resourceVersion",
                                                    "message": "Invalid value: 0x0: must be specified for an update"}])
            new = self._merge_update(rtype, old, body, subresource)
            self._validate(rtype, version, new, opts, name, patching=_patch)
            self._admit(rtype, new, old, subresource, opts)
            self._finish(rtype, new, old)
            return self._commit(rtype, version, old, new, opts, subresource)

    def _merge_update(self, rtype, old, body, subresource):
        """Apply the status-subresource split and keep server-owned metadata from the stored object."""
        if rtype.has_status():
            if subresource == "status":
                new = clone(old)
                if "status" in body:
                    new["status"] = body["status"]
                else:
                    new.pop("status", None)
                # Metadata changes through /status are ignored except labels/annotations (real behaviour
                # keeps them too); keep it simple and take them from the body.
                for k in ("labels", "annotations"):
                    if k in body["metadata"]:
                        new["metadata"][k] = body["metadata"][k]
                return new
            new = clone(body)
            if "status" in old:
                new["status"] = clone(old["status"])
            else:
                new.pop("status", None)
        else:
            new = clone(body)
        meta, ometa = new["metadata"], old["metadata"]
        for k in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"):
            if k in ometa:
                meta[k] = ometa[k]
            else:
                meta.pop(k, None)
        if "managedFields" not in meta and "managedFields" in ometa:
            meta["managedFields"] = ometa["managedFields"]
        return new

    def _commit(self, rtype, version, old, new, opts, subresource, manager_entries=None):
        """Finish an update: generation, managedFields, no-op detection, finalizer-driven removal."""
        meta = new["metadata"]
        if rtype.generation and self._spec_changed(rtype, old, new):
            meta["generation"] = old["metadata"].get("generation", 1) + 1
        if manager_entries is None:
            meta["managedFields"] = fieldmanager.record_update(
                old, new, self._manager(opts), rtype.api_version(version), now(), rtype.schema(version),
                rtype.has_status(), subresource)
        meta["resourceVersion"] = old["metadata"]["resourceVersion"]
        new["apiVersion"] = old["apiVersion"]
        if _same(old, new):
            return self.serve(rtype, version, old)
        if opts.dry_run:
            return self.serve(rtype, version, new)
        with self.store.lock:
            meta["resourceVersion"] = str(self.store.next_rv())
            if meta.get("deletionTimestamp") and not meta.get("finalizers"):
                self.store.remove(rtype.key, new)
                self._after_delete(rtype, new)
            else:
                self.store.put(rtype.key, new, "MODIFIED")
        return self.serve(rtype, version, new)

    def patch(self, rtype, version, ns, name, content_type, patch, opts, subresource=None):
        ctype = (content_type or "").split(";")[0].strip()
        if ctype in (APPLY_PATCH, APPLY_PATCH_CBOR):
            return self.apply(rtype, version, ns, name, patch, opts, subresource)
        accepted = [JSON_PATCH, MERGE_PATCH, APPLY_PATCH, APPLY_PATCH_CBOR]
        if not rtype.crd_name:
            accepted.insert(2, STRATEGIC_PATCH)
        if ctype not in accepted:
            raise errors.unsupported_media(ctype, accepted)
        key_ns = ns if rtype.namespaced else ""
        with self.store.lock:
            old = self.store.get(rtype.key, key_ns, name)
            if old is None:
                raise errors.not_found(rtype, name)
            current = self.serve(rtype, version, old)
            try:
                if ctype == JSON_PATCH:
                    new = json_patch(current, patch)
                elif ctype == MERGE_PATCH:
                    if not isinstance(patch, dict):
                        raise PatchError("json: cannot unmarshal into Go value of type map[string]interface {}", 400)
                    new = merge_patch(current, patch)
                else:
                    new = strategic_merge_patch(current, patch)
            except PatchError as exc:
                if exc.code == 400:
                    raise errors.bad_request(str(exc))
                raise errors.ApiError(422, "Invalid", str(exc), None)
            if not isinstance(new, dict):
                raise errors.bad_request("patched object is not an object")
            nmeta = new.setdefault("metadata", {})
            # A resourceVersion in a patch is a precondition; otherwise the patch applies to the current state.
            if nmeta.get("resourceVersion") != old["metadata"]["resourceVersion"] and \
                    (patch_sets_rv(ctype, patch)):
                raise errors.conflict(rtype, name)
            nmeta["resourceVersion"] = old["metadata"]["resourceVersion"]
            for k in ("name", "namespace", "uid"):
                if k in old["metadata"] and nmeta.get(k) != old["metadata"][k]:
                    if k == "uid" and nmeta.get(k):
                        raise errors.conflict(rtype, name, "Precondition failed: UID in precondition: %s, UID in "
                                              "object meta: %s" % (nmeta.get(k), old["metadata"][k]))
                    nmeta[k] = old["metadata"][k]
            return self.update(rtype, version, ns, name, new, opts, subresource, _patch=ctype)

    def apply(self, rtype, version, ns, name, body, opts, subresource=None):
        if not isinstance(body, dict):
            raise errors.bad_request("error decoding YAML: the apply patch must be an object")
        if not opts.manager:
            raise errors.bad_request("PATCH requests must have a fieldManager parameter for apply: fieldManager is "
                                     "required for apply requests")
        if not body.get("apiVersion") or not body.get("kind"):
            raise errors.bad_request('invalid object type: /, Kind=' if not body.get("kind") else
                                     "apiVersion must be set")
        body = self._named_body(rtype, version, body, ns, name)
        # Validate the applied configuration itself so strict/unknown-field handling matches.
        probe = clone(body)
        self._validate_partial(rtype, version, probe, opts, name, ns if rtype.namespaced else None)
        body = probe
        key_ns = ns if rtype.namespaced else ""
        sch = rtype.schema(version)
        with self.store.lock:
            old = self.store.get(rtype.key, key_ns, name)
            if old is None:
                if subresource:
                    raise errors.not_found(rtype, name)
                merged = fieldmanager.apply(None, body, opts.manager, False, rtype.api_version(version), now(), sch,
                                            rtype.has_status(), subresource)
                merged["apiVersion"] = body["apiVersion"]
                merged["kind"] = body["kind"]
                merged["metadata"]["name"] = name
                if rtype.namespaced:
                    merged["metadata"]["namespace"] = ns
                entries = merged["metadata"]["managedFields"]
                inner = Options(opts.dry_run, "Ignore", opts.manager, user=opts.user)
                created = self.create(rtype, version, ns, merged, inner, managed_fields=entries)
                opts.warnings.extend(inner.warnings)   # admission warnings
                return created
            try:
                merged = fieldmanager.apply(self.serve(rtype, version, old), body, opts.manager, opts.force,
                                            rtype.api_version(version), now(), sch, rtype.has_status(), subresource)
            except fieldmanager.ApplyConflict as exc:
                causes = [{"reason": "FieldManagerConflict", "message": 'conflict with "%s"%s' % (
                    m, " using " + v if v else ""), "field": p} for m, v, p in exc.conflicts]
                raise errors.ApiError(409, "Conflict", fieldmanager.conflict_message(exc.conflicts),
                                      {"causes": causes})
            new = self._merge_update(rtype, old, merged, subresource)
            new["metadata"]["managedFields"] = merged["metadata"]["managedFields"]
            self._validate(rtype, version, new, Options(validation="Ignore", trusted=opts.trusted), name)
            self._admit(rtype, new, old, subresource, opts)
            self._finish(rtype, new, old)
            return self._commit(rtype, version, old, new, opts, subresource, manager_entries=True)

    def _validate_partial(self, rtype, version, obj, opts, name, ns=None):
        """Apply configurations are partial: check unknown fields and types, not `required`.

        kube-apiserver (v1.32) converts an apply configuration to a typed object before any validation: an unknown
        field or a wrong type fails there, with a 500 "failed to create typed patch object" whatever the
        fieldValidation level (seen on realk8s; an upstream bug, the emulator copies it).
        """
        res = schemamod.Validator(prune=True).run(obj, _without_required(rtype.schema(version)))
        typed = [".%s: field not declared in schema" % res.unknown[0]] if res.unknown else []
        typed += [".%s: expected %s, got &value.valueUnstructured{Value:%s}" % (
            e["field"], _expected(e["message"]), json.dumps(_at(obj, e["field"])))
            for e in res.errors if e["reason"] == "FieldValueTypeInvalid"]
        if typed:
            raise errors.ApiError(500, "InternalError", "failed to create typed patch object (%s%s; %s, Kind=%s): %s" % (
                "%s/" % ns if ns else "", name, rtype.api_version(version), rtype.kind, typed[0]))
        if res.errors:
            raise errors.invalid(rtype, name, res.errors)

    def delete(self, rtype, version, ns, name, opts, options=None):
        options = options or {}
        key_ns = ns if rtype.namespaced else ""
        with self.store.lock:
            old = self.store.get(rtype.key, key_ns, name)
            if old is None:
                raise errors.not_found(rtype, name)
            pre = options.get("preconditions") or {}
            if pre.get("uid") and pre["uid"] != old["metadata"]["uid"]:
                raise errors.conflict(rtype, name, "Precondition failed: UID in precondition: %s, UID in object "
                                      "meta: %s" % (pre["uid"], old["metadata"]["uid"]))
            if pre.get("resourceVersion") and pre["resourceVersion"] != old["metadata"]["resourceVersion"]:
                raise errors.conflict(rtype, name, "Precondition failed: ResourceVersion in precondition: %s, "
                                      "ResourceVersion in object meta: %s" % (
                                          pre["resourceVersion"], old["metadata"]["resourceVersion"]))
            for hook in list(self.delete_hooks):
                hook(rtype, old, opts)
            new = clone(old)
            meta = new["metadata"]
            orphan = options.get("propagationPolicy") == "Orphan" or options.get("orphanDependents") is True
            if rtype.key == ("", "namespaces"):
                if not meta.get("deletionTimestamp"):
                    meta["deletionTimestamp"] = now()
                    meta["deletionGracePeriodSeconds"] = 0
                    new.setdefault("status", {})["phase"] = "Terminating"
                    if opts.dry_run:
                        return self.serve(rtype, version, new)
                    meta["resourceVersion"] = str(self.store.next_rv())
                    self.store.put(rtype.key, new, "MODIFIED")
                return self.serve(rtype, version, new)
            foreground = options.get("propagationPolicy") == "Foreground"
            if foreground and "foregroundDeletion" not in (meta.get("finalizers") or []) and \
                    not meta.get("deletionTimestamp"):
                # The garbage collector deletes the dependents, then drops this finalizer (controllers/gc.py).
                meta.setdefault("finalizers", []).append("foregroundDeletion")
            if meta.get("finalizers"):
                if not meta.get("deletionTimestamp"):
                    meta["deletionTimestamp"] = now()
                    meta["deletionGracePeriodSeconds"] = 0
                    if opts.dry_run:
                        return self.serve(rtype, version, new)
                    meta["resourceVersion"] = str(self.store.next_rv())
                    self.store.put(rtype.key, new, "MODIFIED")
                return self.serve(rtype, version, new)
            if opts.dry_run:
                return self.serve(rtype, version, old)
            meta["resourceVersion"] = str(self.store.next_rv())
            self.store.remove(rtype.key, new)
            self._after_delete(rtype, new, orphan=orphan)
            return self.serve(rtype, version, new)

    def _after_delete(self, rtype, obj, orphan=False):
        if rtype.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
            spec = obj["spec"]
            self.registry.remove((spec["group"], spec["names"]["plural"]))
        if orphan:
            self._orphans.add(obj["metadata"]["uid"])

    def delete_collection(self, rtype, version, ns, opts, label_selector=None, field_selector=None, options=None):
        listed = self.list(rtype, version, ns, label_selector, field_selector)
        for item in listed["items"]:
            try:
                self.delete(rtype, version, item["metadata"].get("namespace") or "", item["metadata"]["name"], opts,
                            options)
            except errors.ApiError as exc:
                if exc.code != 404:
                    raise
        listed["items"] = [self.serve(rtype, version, dict(i, kind=rtype.kind)) for i in listed["items"]]
        return listed

    # --- internal client for controllers -------------------------------------------------------------------
    def write_status(self, rtype, ns, name, mutate, manager):
        """Read-modify-write helper for controllers: mutate(obj) edits a copy; retried on conflict."""
        for _ in range(5):
            cur = self.store.get(rtype.key, ns if rtype.namespaced else "", name)
            if cur is None:
                return None
            new = clone(cur)
            if mutate(new) is False:
                return cur
            try:
                sub = "status" if rtype.has_status() else None
                return self.update(rtype, rtype.storage_version, ns, name, new, Options(
                    manager=manager, validation="Ignore", trusted=True), sub)
            except errors.ApiError as exc:
                if exc.code != 409:
                    raise
        return None


def _same(a, b):
    strip = lambda o: {k: v for k, v in o.items() if k != "metadata"}  # noqa: E731
    ma = {k: v for k, v in a["metadata"].items() if k not in ("managedFields", "resourceVersion")}
    mb = {k: v for k, v in b["metadata"].items() if k not in ("managedFields", "resourceVersion")}
    return strip(a) == strip(b) and ma == mb


_PARTIAL = {}


# Top-level fields of built-in kinds declared `omitempty` in the Go API types whose zero value the server drops
# (seen on realk8s: PriorityClass `globalDefault: false` reads back absent). Only those our manifests carry.
OMITTED_ZERO = {("scheduling.k8s.io", "priorityclasses"): ("globalDefault",)}


def _expected(message):
    """The type a schema error names ("... in body must be of type string: ...") as kube-apiserver words it."""
    marker = "must be of type "
    return message.split(marker, 1)[1].split(":", 1)[0] if marker in message else "another type"


def _at(obj, field):
    """The value at a dotted field path (list indexes as [n]); None when absent."""
    cur = obj
    for part in field.replace("]", "").replace("[", ".").split("."):
        if isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        elif isinstance(cur, dict):
            cur = cur.get(part)
        else:
            return None
    return cur


def _without_required(schema):
    """The schema minus `required` (cached: CRD schemas are large)."""
    key = id(schema)
    hit = _PARTIAL.get(key)
    if hit is not None and hit[0] is schema:
        return hit[1]
    out = _strip_required(schema)
    _PARTIAL[key] = (schema, out)
    return out


def _strip_required(schema):
    if isinstance(schema, dict):
        return {k: _strip_required(v) for k, v in schema.items() if k != "required"}
    if isinstance(schema, list):
        return [_strip_required(v) for v in schema]
    return schema


def patch_sets_rv(ctype, patch):
    if ctype == JSON_PATCH:
        return any(isinstance(op, dict) and op.get("path") == "/metadata/resourceVersion" and op.get("op") != "test"
                   for op in patch or [])
    return isinstance(patch, dict) and isinstance(patch.get("metadata"), dict) and \
        patch["metadata"].get("resourceVersion") is not None
