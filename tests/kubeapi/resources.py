"""Resource type registry: built-in kinds plus every CustomResourceDefinition the emulator knows."""
import threading
from .util import clone

PRESERVE = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


def _obj(**props):
    """Schema of a built-in kind: known top-level fields, contents preserved (no deep schema for core kinds)."""
    properties = {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}}
    for name, typ in props.items():
        properties[name] = dict(PRESERVE) if typ == "object" else {"type": typ}
    return {"type": "object", "properties": properties}


class ResourceType:
    """One served resource (all its versions share storage; objects are stored once per group/plural)."""

    def __init__(self, group, versions, kind, plural, singular=None, namespaced=True, short_names=(),
                 categories=(), subresources=(), schemas=None, printer_columns=None, storage_version=None,
                 generation=True, list_kind=None, crd_name=None, verbs=None, deprecated=None):
        self.group = group
        self.versions = list(versions)
        self.kind = kind
        self.plural = plural
        self.singular = singular or kind.lower()
        self.namespaced = namespaced
        self.short_names = list(short_names)
        self.categories = list(categories)
        self.subresources = set(subresources)
        self.schemas = schemas or {}
        self.printer_columns = printer_columns or {}
        self.storage_version = storage_version or self.versions[0]
        self.generation = generation
        self.list_kind = list_kind or kind + "List"
        self.crd_name = crd_name
        self.verbs = verbs or ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
        self.deprecated = deprecated or {}

    @property
    def key(self):
        return (self.group, self.plural)

    @property
    def qualified(self):
        """`virtualmachines.kubevirt.io` / `pods`: the name the real API uses in error messages."""
        return self.plural + "." + self.group if self.group else self.plural

    @property
    def group_kind(self):
        return self.kind + "." + self.group if self.group else self.kind

    def api_version(self, version):
        return self.group + "/" + version if self.group else version

    def schema(self, version):
        return self.schemas.get(version) or self.schemas.get(self.storage_version)

    def has_status(self):
        return "status" in self.subresources


def _core(versions, kind, plural, group="", **kw):
    return ResourceType(group, versions, kind, plural, **kw)


def builtin_types():
    """Built-in kinds the collection (and kubectl) touch; schemas are shallow on purpose."""
    s = _obj
    types = [
        _core(["v1"], "Namespace", "namespaces", namespaced=False, short_names=["ns"], subresources=["status"],
              schemas={"v1": s(spec="object", status="object")}, generation=False),
        _core(["v1"], "Node", "nodes", namespaced=False, short_names=["no"], subresources=["status"],
              schemas={"v1": s(spec="object", status="object")}, generation=False),
        _core(["v1"], "Service", "services", short_names=["svc"], subresources=["status"], categories=["all"],
              schemas={"v1": s(spec="object", status="object")}, generation=False),
        _core(["v1"], "Pod", "pods", short_names=["po"], subresources=["status"], categories=["all"],
              schemas={"v1": s(spec="object", status="object")}),
        _core(["v1"], "Secret", "secrets", schemas={"v1": s(data="object", stringData="object", type="string",
                                                              immutable="boolean")}, generation=False),
        _core(["v1"], "ConfigMap", "configmaps", short_names=["cm"],
              schemas={"v1": s(data="object", binaryData="object", immutable="boolean")}, generation=False),
        _core(["v1"], "ServiceAccount", "serviceaccounts", short_names=["sa"],
              schemas={"v1": s(secrets="array", imagePullSecrets="array", automountServiceAccountToken="boolean")},
              generation=False),
        _core(["v1"], "PersistentVolumeClaim", "persistentvolumeclaims", short_names=["pvc"], subresources=["status"],
              schemas={"v1": s(spec="object", status="object")}, generation=False),
        _core(["v1"], "PersistentVolume", "persistentvolumes", short_names=["pv"], namespaced=False,
              subresources=["status"], schemas={"v1": s(spec="object", status="object")}, generation=False),
        _core(["v1"], "Event", "events", short_names=["ev"], schemas={"v1": PRESERVE}, generation=False),
        _core(["v1"], "Endpoints", "endpoints", short_names=["ep"], schemas={"v1": PRESERVE}, generation=False,
              list_kind="EndpointsList"),
        _core(["v1"], "ResourceQuota", "resourcequotas", short_names=["quota"], subresources=["status"],
              schemas={"v1": s(spec="object", status="object")}, generation=False),
        _core(["v1"], "LimitRange", "limitranges", short_names=["limits"], schemas={"v1": s(spec="object")},
              generation=False),
        _core(["v1"], "Deployment", "deployments", group="apps", short_names=["deploy"], categories=["all"],
              subresources=["status", "scale"], schemas={"v1": s(spec="object", status="object")}),
        _core(["v1"], "DaemonSet", "daemonsets", group="apps", short_names=["ds"], categories=["all"],
              subresources=["status"], schemas={"v1": s(spec="object", status="object")}),
        _core(["v1"], "StatefulSet", "statefulsets", group="apps", short_names=["sts"], categories=["all"],
              subresources=["status", "scale"], schemas={"v1": s(spec="object", status="object")}),
        _core(["v1"], "ReplicaSet", "replicasets", group="apps", short_names=["rs"], categories=["all"],
              subresources=["status", "scale"], schemas={"v1": s(spec="object", status="object")}),
        # Written by the simulated virt-controller: the VM spec a VMI was started from (controllers/virt.py).
        _core(["v1"], "ControllerRevision", "controllerrevisions", group="apps",
              schemas={"v1": s(data="object", revision="integer")}, generation=False),
        _core(["v1"], "Job", "jobs", group="batch", categories=["all"], subresources=["status"],
              schemas={"v1": s(spec="object", status="object")}),
        _core(["v1"], "CronJob", "cronjobs", group="batch", short_names=["cj"], categories=["all"],
              subresources=["status"], schemas={"v1": s(spec="object", status="object")}),
        _core(["v1"], "Role", "roles", group="rbac.authorization.k8s.io", schemas={"v1": s(rules="array")},
              generation=False),
        _core(["v1"], "RoleBinding", "rolebindings", group="rbac.authorization.k8s.io",
              schemas={"v1": s(subjects="array", roleRef="object")}, generation=False),
        _core(["v1"], "ClusterRole", "clusterroles", group="rbac.authorization.k8s.io", namespaced=False,
              schemas={"v1": s(rules="array", aggregationRule="object")}, generation=False),
        _core(["v1"], "ClusterRoleBinding", "clusterrolebindings", group="rbac.authorization.k8s.io",
              namespaced=False, schemas={"v1": s(subjects="array", roleRef="object")}, generation=False),
        _core(["v1"], "CustomResourceDefinition", "customresourcedefinitions", group="apiextensions.k8s.io",
              namespaced=False, short_names=["crd", "crds"], subresources=["status"],
              schemas={"v1": s(spec="object", status="object")}),
        _core(["v1"], "StorageClass", "storageclasses", group="storage.k8s.io", namespaced=False,
              short_names=["sc"], schemas={"v1": PRESERVE}, generation=False),
        _core(["v1"], "APIService", "apiservices", group="apiregistration.k8s.io", namespaced=False,
              subresources=["status"], schemas={"v1": s(spec="object", status="object")}),
        _core(["v1"], "NetworkPolicy", "networkpolicies", group="networking.k8s.io", short_names=["netpol"],
              schemas={"v1": s(spec="object")}),
        _core(["v1"], "Lease", "leases", group="coordination.k8s.io", schemas={"v1": s(spec="object")},
              generation=False),
        # Virtual (never stored) review resources for `kubectl auth can-i` / `kubectl auth whoami`.
        _core(["v1"], "SelfSubjectAccessReview", "selfsubjectaccessreviews", group="authorization.k8s.io",
              namespaced=False, schemas={"v1": s(spec="object", status="object")}, verbs=["create"]),
        _core(["v1"], "SelfSubjectReview", "selfsubjectreviews", group="authentication.k8s.io",
              namespaced=False, schemas={"v1": s(status="object")}, verbs=["create"]),
        _core(["v1"], "NetworkAttachmentDefinition", "network-attachment-definitions", group="k8s.cni.cncf.io",
              short_names=["net-attach-def"], schemas={"v1": s(spec="object")}, singular="network-attachment-definition"),
    ]
    return types


def type_from_crd(crd):
    """Build a ResourceType from a CustomResourceDefinition object (apiextensions.k8s.io/v1)."""
    spec = crd["spec"]
    names = spec["names"]
    served = [v for v in spec["versions"] if v.get("served", True)]
    # Discovery lists versions by priority; the storage version is what kubectl prefers when ambiguous.
    storage = next((v["name"] for v in spec["versions"] if v.get("storage")), served[0]["name"])
    versions = [storage] + [v["name"] for v in served if v["name"] != storage]
    subresources = set()
    schemas, columns, deprecated = {}, {}, {}
    for v in served:
        subresources.update((v.get("subresources") or {}).keys())
        schemas[v["name"]] = clone((v.get("schema") or {}).get("openAPIV3Schema") or PRESERVE)
        columns[v["name"]] = v.get("additionalPrinterColumns") or []
        if v.get("deprecated"):
            deprecated[v["name"]] = v.get("deprecationWarning") or (
                "%s/%s %s is deprecated" % (spec["group"], v["name"], names["kind"]))
    return ResourceType(spec["group"], versions, names["kind"], names["plural"], singular=names.get("singular"),
                        namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                        short_names=names.get("shortNames") or (), categories=names.get("categories") or (),
                        subresources=subresources, schemas=schemas, printer_columns=columns,
                        storage_version=storage, list_kind=names.get("listKind"), crd_name=crd["metadata"]["name"],
                        deprecated=deprecated)


class Registry:
    """Thread-safe lookup of resource types by (group, plural), by (group, version, plural) and by kind."""

    def __init__(self):
        self._lock = threading.RLock()
        self._types = {}

    def add(self, rtype):
        with self._lock:
            self._types[rtype.key] = rtype

    def remove(self, key):
        with self._lock:
            self._types.pop(key, None)

    def get(self, group, plural):
        return self._types.get((group, plural))

    def lookup(self, group, version, plural):
        rt = self._types.get((group, plural))
        if rt is not None and version in rt.versions:
            return rt
        return None

    def by_kind(self, api_version, kind):
        group, _, version = api_version.rpartition("/")
        for rt in list(self._types.values()):
            if rt.group == group and rt.kind == kind and version in rt.versions:
                return rt
        return None

    def all(self):
        return list(self._types.values())

    def groups(self):
        """{group: [versions]} with a stable order (core first, then alphabetical)."""
        out = {}
        for rt in sorted(self.all(), key=lambda r: (r.group != "", r.group)):
            vs = out.setdefault(rt.group, [])
            for v in rt.versions:
                if v not in vs:
                    vs.append(v)
        for group, vs in out.items():
            vs.sort(key=version_priority)
        return out


def version_priority(v):
    """Kubernetes version ordering: GA > beta > alpha, higher numbers first."""
    import re
    m = re.match(r"^v(\d+)(?:(alpha|beta)(\d+))?$", v)
    if not m:
        return (3, 0, 0, v)
    major, level, minor = int(m.group(1)), m.group(2), int(m.group(3) or 0)
    rank = {None: 0, "beta": 1, "alpha": 2}[level]
    return (rank, -major, -minor, v)
