"""Discovery documents (/api, /apis, group versions), /version and OpenAPI v3 built from the registry."""
import hashlib
import json

from .resources import version_priority

KUBE_VERSION = {"major": "1", "minor": "34", "gitVersion": "v1.34.0", "gitCommit": "kubeapi-emulator",
                "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24.0",
                "compiler": "gc", "platform": "linux/amd64"}

# The aggregated API served by virt-api (not a CRD): subresource name -> verbs.
VIRT_SUBRESOURCES = {
    "virtualmachines/start": ["update"], "virtualmachines/stop": ["update"], "virtualmachines/restart": ["update"],
    "virtualmachines/migrate": ["update"], "virtualmachineinstances/pause": ["update"],
    "virtualmachineinstances/unpause": ["update"], "virtualmachineinstances/console": ["get"],
    "virtualmachineinstances/vnc": ["get"], "virtualmachineinstances/guestosinfo": ["get"],
    "virtualmachineinstances/userlist": ["get"], "virtualmachineinstances/filesystemlist": ["get"],
    "virtualmachineinstances/portforward": ["get"], "virtualmachines/portforward": ["get"],
}
VIRT_SUB_GROUP = "subresources.kubevirt.io"
VIRT_SUB_VERSIONS = ["v1", "v1alpha3"]


def api_versions(host):
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}]}


def _group_entry(group, versions):
    versions = sorted(versions, key=version_priority)
    gvs = [{"groupVersion": group + "/" + v, "version": v} for v in versions]
    return {"name": group, "versions": gvs, "preferredVersion": gvs[0]}


def api_group_list(registry):
    groups = [_group_entry(g, vs) for g, vs in registry.groups().items() if g]
    groups.append(_group_entry(VIRT_SUB_GROUP, VIRT_SUB_VERSIONS))
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(registry, group):
    if group == VIRT_SUB_GROUP:
        return dict(_group_entry(group, VIRT_SUB_VERSIONS), kind="APIGroup", apiVersion="v1")
    vs = registry.groups().get(group)
    if not vs:
        return None
    return dict(_group_entry(group, vs), kind="APIGroup", apiVersion="v1")


def resource_list(registry, group, version):
    gv = group + "/" + version if group else version
    if group == VIRT_SUB_GROUP:
        if version not in VIRT_SUB_VERSIONS:
            return None
        res = [{"name": n, "singularName": "", "namespaced": True, "kind": "", "verbs": v}
               for n, v in sorted(VIRT_SUBRESOURCES.items())]
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": res}
    types = [rt for rt in registry.all() if rt.group == group and version in rt.versions]
    if not types:
        return None
    res = []
    for rt in sorted(types, key=lambda r: r.plural):
        entry = {"name": rt.plural, "singularName": rt.singular, "namespaced": rt.namespaced, "kind": rt.kind,
                 "verbs": rt.verbs,
                 "storageVersionHash": hashlib.sha256(("%s/%s" % rt.key).encode()).hexdigest()[:11]}
        if rt.short_names:
            entry["shortNames"] = rt.short_names
        if rt.categories:
            entry["categories"] = rt.categories
        res.append(entry)
        for sub in sorted(rt.subresources):
            res.append({"name": rt.plural + "/" + sub, "singularName": "", "namespaced": rt.namespaced,
                        "kind": "Scale" if sub == "scale" else rt.kind, "group": "autoscaling" if sub == "scale"
                        else None, "version": "v1" if sub == "scale" else None, "verbs": ["get", "patch", "update"]})
            res[-1] = {k: v for k, v in res[-1].items() if v is not None}
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": res}


def _schema_name(rt, version):
    parts = list(reversed(rt.group.split("."))) if rt.group else ["io", "k8s", "api", "core"]
    return ".".join(parts + [version, rt.kind])


QUERY_PARAMS = ["dryRun", "fieldManager", "fieldValidation", "force", "pretty"]


def _params(names):
    return [{"name": n, "in": "query", "schema": {"type": "boolean" if n == "force" else "string"},
             "uniqueItems": True} for n in names]


def _strip_for_openapi(schema):
    return schema


def openapi_v3_index(registry):
    paths = {}
    for gv in sorted(_group_versions(registry)):
        paths[gv] = {"serverRelativeURL": "/openapi/v3/%s?hash=%s" % (gv, _gv_hash(registry, gv))}
    return {"paths": paths}


def _group_versions(registry):
    out = set()
    for rt in registry.all():
        for v in rt.versions:
            out.add("api/" + v if not rt.group else "apis/%s/%s" % (rt.group, v))
    return out


def _gv_hash(registry, gv):
    kinds = sorted("%s:%s" % (rt.kind, len(json.dumps(rt.schemas, sort_keys=True)))
                   for rt in registry.all() if _gv_of(rt, gv))
    return hashlib.sha512(("|".join(kinds)).encode()).hexdigest()[:32].upper()


def _gv_of(rt, gv):
    for v in rt.versions:
        if gv == ("api/" + v if not rt.group else "apis/%s/%s" % (rt.group, v)):
            return v
    return None


def openapi_v3_doc(registry, gv):
    """OpenAPI v3 for one group version: enough for kubectl's fieldValidation/dryRun checks and explain."""
    paths, schemas = {}, {}
    found = False
    for rt in registry.all():
        version = _gv_of(rt, gv)
        if version is None:
            continue
        found = True
        sname = _schema_name(rt, version)
        gvk = [{"group": rt.group, "version": version, "kind": rt.kind}]
        body = dict(rt.schema(version) or {"type": "object"})
        body["x-kubernetes-group-version-kind"] = gvk
        schemas[sname] = body
        lname = sname + "List"
        schemas[lname] = {"type": "object", "properties": {"items": {"type": "array", "items": {
            "$ref": "#/components/schemas/" + sname}}, "apiVersion": {"type": "string"}, "kind": {"type": "string"},
            "metadata": {"type": "object"}}, "required": ["items"],
            "x-kubernetes-group-version-kind": [dict(gvk[0], kind=rt.list_kind)]}
        ref = {"$ref": "#/components/schemas/" + sname}
        content = {"application/json": {"schema": ref}}
        base = "/" + gv + ("/namespaces/{namespace}/" if rt.namespaced else "/") + rt.plural

        def op(action, params, with_body=False, extra_types=()):
            o = {"operationId": action + rt.kind, "tags": [gv], "parameters": _params(params),
                 "responses": {"200": {"description": "OK", "content": content}},
                 "x-kubernetes-action": action, "x-kubernetes-group-version-kind": gvk[0]}
            if with_body:
                types = {"application/json": {"schema": ref}}
                for t in extra_types:
                    types[t] = {"schema": {"type": "object"}}
                o["requestBody"] = {"content": types, "required": True}
            return o
        paths[base] = {"get": op("list", ["labelSelector", "fieldSelector", "limit", "continue", "watch"]),
                       "post": op("post", ["dryRun", "fieldManager", "fieldValidation"], True)}
        item = {"get": op("get", []), "put": op("put", ["dryRun", "fieldManager", "fieldValidation"], True),
                "patch": op("patch", QUERY_PARAMS, True, ("application/json-patch+json",
                                                          "application/merge-patch+json",
                                                          "application/apply-patch+yaml")),
                "delete": op("delete", ["dryRun", "gracePeriodSeconds", "propagationPolicy"])}
        paths[base + "/{name}"] = item
        for sub in rt.subresources:
            if sub == "status":
                paths[base + "/{name}/status"] = {k: item[k] for k in ("get", "put", "patch")}
    if not found:
        return None
    schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"] = {"type": "object"}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": KUBE_VERSION["gitVersion"]},
            "paths": paths, "components": {"schemas": schemas}}
