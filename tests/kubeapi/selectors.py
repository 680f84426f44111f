"""Label and field selectors with the parsing rules and error messages of k8s.io/apimachinery."""
import re

_REQ = re.compile(
    r"^\s*(?P<neg>!)?\s*(?P<key>[A-Za-z0-9./_-]+)\s*"
    r"(?:(?P<op>==|=|!=|\s+in\s+|\s+notin\s+)\s*(?P<val>\([^)]*\)|[A-Za-z0-9._-]*))?\s*$")

# Field selectors the real apiserver accepts for built-in kinds, beyond metadata.name/metadata.namespace.
BUILTIN_FIELDS = {
    ("", "pods"): {"spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
                   "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName"},
    ("", "nodes"): {"spec.unschedulable"},
    ("", "secrets"): {"type"},
    ("", "namespaces"): {"status.phase"},
    ("", "events"): {"involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
                     "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
                     "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type"},
    ("", "persistentvolumeclaims"): {"spec.volumeName"},
    ("apps", "replicasets"): {"status.replicas"},
    ("batch", "jobs"): {"status.successful"},
}


class SelectorError(ValueError):
    pass


def _split_top(text):
    """Split on commas that are not inside parentheses."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p for p in parts if p.strip()]


def parse_label_selector(text):
    """Return a list of (key, op, values) requirements; op in =, !=, in, notin, exists, !exists."""
    reqs = []
    if not text or not text.strip():
        return reqs
    for part in _split_top(text):
        m = _REQ.match(part)
        if not m:
            raise SelectorError("unable to parse requirement: found '%s', expected: identifier" % part.strip())
        key, op, val = m.group("key"), (m.group("op") or "").strip(), m.group("val")
        if m.group("neg"):
            if op:
                raise SelectorError("unable to parse requirement: invalid selector %r" % part.strip())
            reqs.append((key, "!exists", None))
        elif not op:
            reqs.append((key, "exists", None))
        elif op in ("=", "=="):
            reqs.append((key, "=", {val or ""}))
        elif op == "!=":
            reqs.append((key, "!=", {val or ""}))
        else:
            if not (val and val.startswith("(")):
                raise SelectorError("unable to parse requirement: found '%s', expected: '('" % (val or ""))
            values = {v.strip() for v in val[1:-1].split(",")}  # an empty value is a legal label value
            reqs.append((key, op, values))
    return reqs


def match_labels(reqs, labels):
    labels = labels or {}
    for key, op, values in reqs:
        present = key in labels
        if op == "exists" and not present:
            return False
        if op == "!exists" and present:
            return False
        if op in ("=", "in") and (not present or labels[key] not in values):
            return False
        if op in ("!=", "notin") and present and labels[key] in values:
            return False
    return True


def selector_from_dict(sel):
    """A metav1.LabelSelector ({matchLabels, matchExpressions}) as requirements."""
    reqs = []
    for k, v in (sel or {}).get("matchLabels", {}).items():
        reqs.append((k, "=", {v}))
    for expr in (sel or {}).get("matchExpressions", []) or []:
        op = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}[expr["operator"]]
        reqs.append((expr["key"], op, set(expr.get("values") or [])))
    return reqs


def parse_field_selector(text, rtype):
    """Return [(path, op, value)]; unsupported fields raise SelectorError with the real message."""
    reqs = []
    if not text or not text.strip():
        return reqs
    allowed = {"metadata.name", "metadata.namespace"} | BUILTIN_FIELDS.get(rtype.key, set())
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        m = re.match(r"^([^=!]+)(==|=|!=)(.*)$", part)
        if not m:
            raise SelectorError("invalid selector: '%s'; can't understand '%s'" % (text, part))
        path, op, val = m.group(1).strip(), m.group(2), m.group(3).strip()
        if path not in allowed:
            if rtype.crd_name:
                raise SelectorError('"%s" is not a known field selector: only "metadata.name", '
                                    '"metadata.namespace"' % path)
            raise SelectorError("field label not supported: %s" % path)
        reqs.append((path, "!=" if op == "!=" else "=", val))
    return reqs


def _field_value(obj, path):
    cur = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def match_fields(reqs, obj):
    for path, op, val in reqs:
        actual = _field_value(obj, path)
        if op == "=" and actual != val:
            return False
        if op == "!=" and actual == val:
            return False
    return True
