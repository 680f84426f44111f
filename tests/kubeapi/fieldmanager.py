"""managedFields bookkeeping and server-side apply, simplified from structured-merge-diff.

Field paths are tuples of fieldsV1 path elements ("f:spec", 'k:{"name":"eth0"}', 'v:"x"'). Ownership is
tracked per (manager, operation, subresource); apply merges maps, merges lists by their
x-kubernetes-list-type (map keys / set) or replaces them (atomic), reports conflicts with other managers
unless forced, and removes fields the same manager applied before but no longer applies.
"""
import json

from . import schema as schemamod
from .patch import MERGE_KEYS
from .util import clone

ITEM = object()   # the value of a list-map item node: never a conflict on its own


class ApplyConflict(Exception):
    def __init__(self, conflicts):
        super().__init__("conflict")
        self.conflicts = conflicts   # [(manager, api_version, path string)]


def _list_sem(schema, name):
    # A list typed by a CRD schema is atomic unless marked; built-in kinds (shallow schemas here) fall back to
    # their patchMergeKey, which is what their OpenAPI list-map keys are.
    if schema is not None and (schema.get("x-kubernetes-list-type") or schema.get("items") is not None):
        return schemamod.list_semantics(schema)
    key = MERGE_KEYS.get(name)
    if key:
        return "map", [key]
    return "atomic", None


def _item_key(item, keys):
    ident = {k: item.get(k) for k in keys if isinstance(item, dict) and k in item}
    return "k:" + json.dumps(ident, separators=(",", ":"), sort_keys=True)


def flatten(value, schema, prefix=(), name=None, out=None):
    """{path: leaf value} for every owned field in value."""
    if out is None:
        out = {}
    if isinstance(value, dict):
        if schema is not None and schema.get("x-kubernetes-map-type") == "atomic":
            out[prefix] = value
            return out
        if not value and prefix:
            out[prefix] = value
        for k, v in value.items():
            flatten(v, schemamod.child_schema(schema, k), prefix + ("f:" + k,), k, out)
    elif isinstance(value, list):
        sem, keys = _list_sem(schema, name)
        items_schema = (schema or {}).get("items")
        if sem == "map" and all(isinstance(i, dict) for i in value):
            if not value:
                out[prefix] = value
            for item in value:
                node = prefix + (_item_key(item, keys),)
                out[node] = ITEM
                flatten(item, items_schema, node, None, out)
        elif sem == "set":
            if not value:
                out[prefix] = value
            for item in value:
                out[prefix + ("v:" + json.dumps(item, separators=(",", ":")),)] = item
        else:
            out[prefix] = value
    else:
        out[prefix] = value
    return out


def object_fields(obj, rtype_schema, has_status_sub, subresource=None):
    """Owned fields of a whole object: labels/annotations/ownerReferences/finalizers + spec-like content."""
    meta = obj.get("metadata") or {}
    body = {}
    for k, v in obj.items():
        if k in ("apiVersion", "kind", "metadata"):
            continue
        if has_status_sub and ((k == "status") != (subresource == "status")):
            continue
        body[k] = v
    m = {k: meta[k] for k in ("labels", "annotations", "ownerReferences", "finalizers") if k in meta}
    if m:
        body["metadata"] = m
    return flatten(body, rtype_schema)


def to_fields_v1(paths):
    root = {}
    for path in sorted(paths):
        node = root
        for el in path:
            node = node.setdefault(el, {})
    # A node that is itself owned and has children gets ".": {}.
    for path in paths:
        node = root
        for el in path:
            node = node[el]
        if node and "." not in node:
            node["."] = {}
    return root


def from_fields_v1(tree, prefix=()):
    out = set()
    for k, v in tree.items():
        if k == ".":
            out.add(prefix)
        elif not v:
            out.add(prefix + (k,))
        else:
            out |= from_fields_v1(v, prefix + (k,))
    return out


def path_str(path):
    parts = []
    for el in path:
        kind, _, rest = el.partition(":")
        if kind == "f":
            parts.append("." + rest)
        elif kind == "k":
            parts.append("[" + ",".join("%s=%s" % (k, json.dumps(v)) for k, v in json.loads(rest).items()) + "]")
        else:
            parts.append("[=" + rest + "]")
    return "".join(parts)


def _entries(obj):
    return list((obj.get("metadata") or {}).get("managedFields") or [])


def _ident(entry):
    return (entry.get("manager"), entry.get("operation"), entry.get("subresource", ""))


def record_update(old, new, manager, api_version, now, rtype_schema, has_status_sub, subresource=None):
    """managedFields of `new` after a create/update/patch by `manager` (operation Update)."""
    new_fields = object_fields(new, rtype_schema, has_status_sub, subresource)
    old_fields = object_fields(old, rtype_schema, has_status_sub, subresource) if old else {}
    changed = {p for p, v in new_fields.items() if p not in old_fields or old_fields[p] != v}
    removed = set(old_fields) - set(new_fields)
    entries = []
    mine = None
    ident = (manager, "Update", subresource or "")
    for e in _entries(old or {}):
        paths = from_fields_v1(e.get("fieldsV1") or {})
        if _ident(e) == ident:
            mine = paths - removed
            continue
        paths = {p for p in paths if p not in changed and p not in removed}
        if paths:
            e = dict(e, fieldsV1=to_fields_v1(paths))
            entries.append(e)
    mine = (mine or set()) | changed
    if mine:
        e = {"manager": manager, "operation": "Update", "apiVersion": api_version, "time": now,
             "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(mine)}
        if subresource:
            e["subresource"] = subresource
        entries.append(e)
    return entries


def _merge(current, applied, schema, name=None):
    if isinstance(applied, dict) and isinstance(current, dict):
        if schema is not None and schema.get("x-kubernetes-map-type") == "atomic":
            return clone(applied)
        out = clone(current)
        for k, v in applied.items():
            out[k] = _merge(current.get(k), v, schemamod.child_schema(schema, k), k)
        return out
    if isinstance(applied, list) and isinstance(current, list):
        sem, keys = _list_sem(schema, name)
        items_schema = (schema or {}).get("items")
        if sem == "map":
            out = [clone(x) for x in current]
            index = {_item_key(x, keys): i for i, x in enumerate(out) if isinstance(x, dict)}
            for item in applied:
                k = _item_key(item, keys)
                if k in index:
                    out[index[k]] = _merge(out[index[k]], item, items_schema)
                else:
                    index[k] = len(out)
                    out.append(clone(item))
            return out
        if sem == "set":
            out = [clone(x) for x in current]
            for item in applied:
                if item not in out:
                    out.append(clone(item))
            return out
    return clone(applied)


def _delete_path(obj, path):
    """Remove the value at a field path; returns True when something was removed."""
    parent, el = obj, None
    for i, el in enumerate(path):
        last = i == len(path) - 1
        kind, _, rest = el.partition(":")
        if kind == "f":
            if not isinstance(parent, dict) or rest not in parent:
                return False
            if last:
                del parent[rest]
                return True
            parent = parent[rest]
        else:
            if not isinstance(parent, list):
                return False
            idx = None
            for j, item in enumerate(parent):
                if kind == "k" and isinstance(item, dict) and all(item.get(k) == v for k, v in json.loads(rest).items()):
                    idx = j
                elif kind == "v" and item == json.loads(rest):
                    idx = j
                if idx is not None:
                    break
            if idx is None:
                return False
            if last:
                del parent[idx]
                return True
            parent = parent[idx]
    return False


def apply(current, applied, manager, force, api_version, now, rtype_schema, has_status_sub, subresource=None):
    """Return the new object (with managedFields) for a server-side apply of `applied` onto `current`."""
    current = current or {}
    a_fields = object_fields(applied, rtype_schema, has_status_sub, subresource)
    c_fields = object_fields(current, rtype_schema, has_status_sub, subresource) if current else {}
    ident = (manager, "Apply", subresource or "")
    entries = []
    previous = set()
    conflicts = []
    for e in _entries(current):
        paths = from_fields_v1(e.get("fieldsV1") or {})
        if _ident(e) == ident:
            previous = paths
            continue
        if e.get("manager") == manager or (e.get("subresource", "") != (subresource or "")):
            entries.append((e, paths))
            continue
        clash = {p for p in paths & set(a_fields) if p in c_fields and c_fields[p] != a_fields[p]
                 and a_fields[p] is not ITEM}
        if clash and not force:
            conflicts.extend((e.get("manager"), e.get("apiVersion"), path_str(p)) for p in sorted(clash))
        entries.append((e, paths - clash if force else paths))
    if conflicts:
        raise ApplyConflict(conflicts)
    body = {k: v for k, v in applied.items() if k not in ("apiVersion", "kind", "metadata")}
    if has_status_sub:
        body = {k: v for k, v in body.items() if (k == "status") == (subresource == "status")}
    meta_applied = {k: v for k, v in (applied.get("metadata") or {}).items()
                    if k in ("labels", "annotations", "ownerReferences", "finalizers")}
    result = clone(current) if current else {}
    for k, v in body.items():
        result[k] = _merge(result.get(k), v, schemamod.child_schema(rtype_schema, k), k)
    meta = result.setdefault("metadata", {})
    for k, v in meta_applied.items():
        meta[k] = _merge(meta.get(k), v, None, k)
    others = set()
    for _, paths in entries:
        others |= paths
    deleted = []
    for p in sorted(previous - set(a_fields), key=len):
        # Parents first: a removed list item or map goes as a whole unless another manager owns something in it.
        if any(p[:len(d)] == d for d in deleted) or any(o[:len(p)] == p for o in others):
            continue
        if p in a_fields or any(a[:len(p)] == p for a in a_fields):
            continue
        if _delete_path(result, p):
            deleted.append(p)
    new_entries = [e if paths == from_fields_v1(e.get("fieldsV1") or {}) else dict(e, fieldsV1=to_fields_v1(paths))
                   for e, paths in entries if paths]
    mine = {"manager": manager, "operation": "Apply", "apiVersion": api_version, "time": now,
            "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(set(a_fields))}
    if subresource:
        mine["subresource"] = subresource
    new_entries.append(mine)
    meta["managedFields"] = new_entries
    return result


def conflict_message(conflicts):
    n = len(conflicts)
    lines = ['conflict with "%s"%s: %s' % (m, " using " + v if v else "", p) for m, v, p in conflicts]
    if n == 1:
        return "Apply failed with 1 conflict: " + lines[0]
    return "Apply failed with %d conflicts: %s" % (n, "\n".join(lines))
