"""meta.k8s.io/v1 Table responses (what `kubectl get` asks for), from CRD printer columns."""
import calendar
import re
import time

_FILTER = re.compile(r"^\[\?\(@\.([\w.]+)\s*==\s*['\"]([^'\"]*)['\"]\)\]")


def jsonpath(obj, expr):
    """A subset of JSONPath used by printer columns: .a.b, .a[0].b, .a[?(@.k=='v')].b"""
    cur = [obj]
    rest = expr.strip()
    if rest.startswith("{") and rest.endswith("}"):
        rest = rest[1:-1]
    while rest:
        if rest.startswith("."):
            m = re.match(r"^\.([\w-]+)", rest)
            if not m:
                return None
            key = m.group(1)
            cur = [c.get(key) for c in cur if isinstance(c, dict) and key in c]
            rest = rest[m.end():]
        elif rest.startswith("[?"):
            m = _FILTER.match(rest)
            if not m:
                return None
            path, want = m.group(1).split("."), m.group(2)
            nxt = []
            for c in cur:
                for item in c if isinstance(c, list) else []:
                    v = item
                    for p in path:
                        v = v.get(p) if isinstance(v, dict) else None
                    if v is not None and str(v) == want:
                        nxt.append(item)
            cur = nxt
            rest = rest[m.end():]
        elif rest.startswith("["):
            m = re.match(r"^\[(\d+|\*)\]", rest)
            if not m:
                return None
            if m.group(1) == "*":
                cur = [x for c in cur if isinstance(c, list) for x in c]
            else:
                i = int(m.group(1))
                cur = [c[i] for c in cur if isinstance(c, list) and len(c) > i]
            rest = rest[m.end():]
        else:
            return None
    if not cur:
        return None
    return cur[0] if len(cur) == 1 else cur


def age(ts):
    if not ts:
        return "<unknown>"
    try:
        secs = int(time.time() - calendar.timegm(time.strptime(ts, "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return "<invalid>"
    secs = max(secs, 0)
    if secs < 120:
        return "%ds" % secs
    if secs < 3600 * 2:
        return "%dm" % (secs // 60)
    if secs < 86400 * 2:
        return "%dh" % (secs // 3600)
    return "%dd" % (secs // 86400)


_BUILTIN_COLUMNS = {
    ("", "namespaces"): [{"name": "Status", "type": "string", "jsonPath": ".status.phase"}],
    ("", "nodes"): [{"name": "Status", "type": "string",
                     "jsonPath": ".status.conditions[?(@.type=='Ready')].status"}],
    ("", "pods"): [{"name": "Status", "type": "string", "jsonPath": ".status.phase"}],
    ("", "secrets"): [{"name": "Type", "type": "string", "jsonPath": ".type"}],
    ("", "services"): [{"name": "Type", "type": "string", "jsonPath": ".spec.type"},
                       {"name": "Cluster-IP", "type": "string", "jsonPath": ".spec.clusterIP"}],
}


def columns_for(rtype, version):
    if rtype.crd_name:
        cols = list(rtype.printer_columns.get(version) or [])
        if not cols:
            cols = [{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]
        return cols
    return _BUILTIN_COLUMNS.get(rtype.key, []) + [
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]


def _cell(obj, col):
    val = jsonpath(obj, col["jsonPath"])
    if col.get("type") == "date":
        return age(val) if isinstance(val, str) else "<unknown>"
    if val is None:
        return None
    if isinstance(val, (dict, list)):
        import json
        return json.dumps(val, separators=(",", ":"))
    if isinstance(val, bool):
        return "true" if val else "false"
    return val


def to_table(rtype, version, objs, list_meta=None):
    cols = columns_for(rtype, version)
    defs = [{"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a "
             "namespace.", "priority": 0}]
    for c in cols:
        defs.append({"name": c["name"], "type": "string" if c.get("type") == "date" else c.get("type", "string"),
                     "format": c.get("format", ""), "description": c.get("description", ""),
                     "priority": c.get("priority", 0)})
    rows = []
    for o in objs:
        rows.append({"cells": [o["metadata"]["name"]] + [_cell(o, c) for c in cols],
                     "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                "metadata": o["metadata"]}})
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta or {},
            "columnDefinitions": defs, "rows": rows}
