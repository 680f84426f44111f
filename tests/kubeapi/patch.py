"""JSON merge patch (RFC 7386), JSON patch (RFC 6902) and a strategic merge patch good enough for kubectl."""
from .util import clone


class PatchError(ValueError):
    """A patch that cannot be applied; `code` is the HTTP status the real API returns."""

    def __init__(self, message, code=422):
        super().__init__(message)
        self.code = code


def merge_patch(target, patch):
    if not isinstance(patch, dict):
        return clone(patch)
    result = clone(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = merge_patch(result.get(k), v)
    return result


def _unescape(token):
    return token.replace("~1", "/").replace("~0", "~")


def _pointer(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError('json patch path %r must start with "/"' % path, 400)
    return [_unescape(t) for t in path[1:].split("/")]


def _walk(doc, tokens, path):
    cur = doc
    for t in tokens:
        if isinstance(cur, dict):
            if t not in cur:
                raise PatchError("doc is missing path: %s: missing value" % path)
            cur = cur[t]
        elif isinstance(cur, list):
            try:
                cur = cur[int(t)]
            except (ValueError, IndexError):
                raise PatchError("doc is missing path: %s: missing value" % path)
        else:
            raise PatchError("doc is missing path: %s: missing value" % path)
    return cur


def json_patch(doc, ops):
    if not isinstance(ops, list):
        raise PatchError("json: cannot unmarshal object into Go value of type jsonpatch.Patch", 400)
    doc = clone(doc)
    for op in ops:
        kind, path = op.get("op"), op.get("path", "")
        tokens = _pointer(path)
        if kind == "test":
            if _walk(doc, tokens, path) != op.get("value"):
                raise PatchError("the server rejected our request due to an error in our request")
            continue
        if kind in ("move", "copy"):
            src = _pointer(op.get("from", ""))
            value = clone(_walk(doc, src, op.get("from")))
            if kind == "move":
                doc = _remove(doc, src, op.get("from"))
            doc = _add(doc, tokens, value, path)
            continue
        if kind == "add":
            doc = _add(doc, tokens, clone(op.get("value")), path)
        elif kind == "remove":
            doc = _remove(doc, tokens, path)
        elif kind == "replace":
            _walk(doc, tokens, path)
            doc = _remove(doc, tokens, path)
            doc = _add(doc, tokens, clone(op.get("value")), path)
        else:
            raise PatchError("Unexpected kind: %s" % kind, 400)
    return doc


def _add(doc, tokens, value, path):
    if not tokens:
        return value
    parent = _walk(doc, tokens[:-1], path)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        else:
            try:
                idx = int(last)
            except ValueError:
                raise PatchError("doc is missing path: %s: missing value" % path)
            if idx < 0 or idx > len(parent):
                raise PatchError("add operation does not apply: doc is missing path: %s: missing value" % path)
            parent.insert(idx, value)
    else:
        raise PatchError("doc is missing path: %s: missing value" % path)
    return doc


def _remove(doc, tokens, path):
    parent = _walk(doc, tokens[:-1], path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError("doc is missing path: %s: missing value" % path)
        del parent[last]
    elif isinstance(parent, list):
        try:
            del parent[int(last)]
        except (ValueError, IndexError):
            raise PatchError("doc is missing path: %s: missing value" % path)
    return doc


# Merge keys of lists in built-in types (patchMergeKey); lists not named here are replaced atomically.
MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name", "volumes": "name",
    "volumeMounts": "mountPath", "env": "name", "ports": "containerPort", "imagePullSecrets": "name",
    "conditions": "type", "ownerReferences": "uid", "hostAliases": "ip", "tolerations": None,
    "secrets": "name", "volumeDevices": "devicePath", "addresses": "type",
}


def strategic_merge_patch(target, patch, key=None):
    """Strategic merge patch for built-in kinds: maps merge, lists with a known merge key merge by it."""
    if not isinstance(patch, dict):
        return clone(patch)
    if patch.get("$patch") == "replace":
        return {k: clone(v) for k, v in patch.items() if k != "$patch"}
    result = clone(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    for k, v in patch.items():
        if k.startswith("$") or k.startswith("$setElementOrder/") or k.startswith("$deleteFromPrimitiveList/"):
            if k.startswith("$deleteFromPrimitiveList/"):
                name = k.split("/", 1)[1]
                if isinstance(result.get(name), list):
                    result[name] = [x for x in result[name] if x not in v]
            continue
        if v is None:
            result.pop(k, None)
        elif isinstance(v, list) and MERGE_KEYS.get(k) and isinstance(result.get(k), list):
            result[k] = _merge_list(result[k], v, MERGE_KEYS[k])
        elif isinstance(v, dict):
            if v.get("$patch") == "delete":
                result.pop(k, None)
            else:
                result[k] = strategic_merge_patch(result.get(k), v, k)
        else:
            result[k] = clone(v)
    if retain is not None:
        for k in list(result.keys()):
            if k not in retain:
                del result[k]
    return result


def _merge_list(current, patch, mkey):
    out = [clone(x) for x in current]
    for item in patch:
        if not isinstance(item, dict) or mkey not in item:
            out.append(clone(item))
            continue
        idx = next((i for i, x in enumerate(out) if isinstance(x, dict) and x.get(mkey) == item[mkey]), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                out.pop(idx)
            continue
        if idx is None:
            out.append(strategic_merge_patch({}, item))
        else:
            out[idx] = strategic_merge_patch(out[idx], item)
    return out
