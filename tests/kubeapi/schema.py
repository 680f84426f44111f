"""A small structural-schema validator with pruning and defaulting, shaped like apiextensions-apiserver.

It covers what CRD structural schemas use: type, properties, additionalProperties, items, required, enum,
nullable, default, x-kubernetes-int-or-string, x-kubernetes-preserve-unknown-fields,
x-kubernetes-embedded-resource, x-kubernetes-list-type (set/map duplicates), minimum/maximum, lengths, pattern.
CEL rules (x-kubernetes-validations) and formats are not evaluated.
"""
import copy
import json
import re

OBJECT_META_FIELDS = {
    "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation", "creationTimestamp",
    "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations", "ownerReferences", "finalizers",
    "managedFields",
}
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                 "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
                 "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
             "and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
             "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')")


def fmt_value(value):
    """Render a value the way k8s.io/apimachinery field errors do."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(json.dumps(value, separators=(",", ":")))


def type_name(value):
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def _type_ok(value, typ):
    if typ == "object":
        return isinstance(value, dict)
    if typ == "array":
        return isinstance(value, list)
    if typ == "string":
        return isinstance(value, str)
    if typ == "boolean":
        return isinstance(value, bool)
    if typ == "integer":
        return isinstance(value, int) and not isinstance(value, bool) or (
            isinstance(value, float) and value.is_integer())
    if typ == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return True


class Result:
    def __init__(self):
        self.errors = []      # dicts {reason, field, message}: details.causes of a 422
        self.unknown = []     # field paths like "spec.foo" or "spec.list[0].bar"

    def error(self, reason, field, message):
        self.errors.append({"reason": reason, "field": field, "message": message})


def _join(path, name):
    return path + "." + name if path else name


class Validator:
    """Validate, default and prune one object in place against a structural schema."""

    def __init__(self, prune=True):
        self.prune = prune

    def run(self, obj, schema):
        res = Result()
        if not isinstance(obj, dict):
            res.error("FieldValueTypeInvalid", "", "Invalid value: %s: must be an object" % fmt_value(obj))
            return res
        self._object(obj, schema or {}, "", res, root=True)
        return res

    def _node(self, value, schema, path, res):
        """Validate `value`; returns False when the caller should drop the value (a null not allowed)."""
        if value is None:
            if schema.get("nullable"):
                return True
            return False
        if schema.get("x-kubernetes-int-or-string"):
            if not isinstance(value, (int, str)) or isinstance(value, bool):
                res.error("FieldValueTypeInvalid", path, "Invalid value: %s: %s in body must be of type "
                          "integer,string: %s" % (fmt_value(type_name(value)), path, fmt_value(type_name(value))))
            self._scalar_checks(value, schema, path, res)
            return True
        typ = schema.get("type")
        if typ and not _type_ok(value, typ):
            res.error("FieldValueTypeInvalid", path, "Invalid value: %s: %s in body must be of type %s: %s" % (
                fmt_value(type_name(value)), path, typ, fmt_value(type_name(value))))
            return True
        if isinstance(value, dict):
            self._object(value, schema, path, res)
        elif isinstance(value, list):
            self._array(value, schema, path, res)
        else:
            self._scalar_checks(value, schema, path, res)
        if "enum" in schema and value not in schema["enum"]:
            res.error("FieldValueNotSupported", path, "Unsupported value: %s: supported values: %s" % (
                fmt_value(value), ", ".join(fmt_value(v) for v in schema["enum"])))
        return True

    def _scalar_checks(self, value, schema, path, res):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if "minimum" in schema and value < schema["minimum"]:
                res.error("FieldValueInvalid", path, "Invalid value: %s: %s in body should be greater than or "
                          "equal to %s" % (fmt_value(value), path, schema["minimum"]))
            if "maximum" in schema and value > schema["maximum"]:
                res.error("FieldValueInvalid", path, "Invalid value: %s: %s in body should be less than or "
                          "equal to %s" % (fmt_value(value), path, schema["maximum"]))
        if isinstance(value, str):
            if "maxLength" in schema and len(value) > schema["maxLength"]:
                res.error("FieldValueTooLong", path, "Too long: may not be more than %d bytes" % schema["maxLength"])
            if "minLength" in schema and len(value) < schema["minLength"]:
                res.error("FieldValueInvalid", path, "Invalid value: %s: %s in body should be at least %d chars "
                          "long" % (fmt_value(value), path, schema["minLength"]))
            pattern = schema.get("pattern")
            if pattern:
                try:
                    ok = re.search(pattern, value) is not None
                except re.error:
                    ok = True
                if not ok:
                    res.error("FieldValueInvalid", path, "Invalid value: %s: %s in body should match '%s'" % (
                        fmt_value(value), path, pattern))

    def _object(self, obj, schema, path, res, root=False):
        props = schema.get("properties")
        addl = schema.get("additionalProperties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields")
        embedded = schema.get("x-kubernetes-embedded-resource") or root
        for key in list(obj.keys()):
            sub = path and _join(path, key) or key
            if embedded and key in ("apiVersion", "kind"):
                if not isinstance(obj[key], str):
                    res.error("FieldValueTypeInvalid", sub, "Invalid value: %s: %s in body must be of type string"
                              % (fmt_value(type_name(obj[key])), sub))
                continue
            if embedded and key == "metadata":
                self._metadata(obj[key], sub, res, root)
                continue
            if props is not None and key in props:
                child = props[key]
            elif isinstance(addl, dict):
                child = addl
            elif addl is True or preserve:
                continue
            elif props is None and addl is None and not schema.get("type"):
                continue
            else:
                res.unknown.append(sub)
                if self.prune:
                    del obj[key]
                continue
            if not self._node(obj[key], child, sub, res):
                del obj[key]
        if props:
            for key, child in props.items():
                if key not in obj and "default" in child:
                    obj[key] = copy.deepcopy(child["default"])
        for key in schema.get("required") or []:
            if key not in obj:
                res.error("FieldValueRequired", _join(path, key), "Required value")

    def _metadata(self, meta, path, res, root):
        if not isinstance(meta, dict):
            res.error("FieldValueTypeInvalid", path, "Invalid value: %s: %s in body must be of type object" % (
                fmt_value(type_name(meta)), path))
            return
        for key in list(meta.keys()):
            if key not in OBJECT_META_FIELDS:
                res.unknown.append(_join(path, key))
                if self.prune:
                    del meta[key]
        if not root:
            return
        for key in ("labels", "annotations"):
            val = meta.get(key)
            if val is None:
                continue
            if not isinstance(val, dict):
                res.error("FieldValueTypeInvalid", _join(path, key), "Invalid value: %s: must be a map of strings"
                          % fmt_value(type_name(val)))
                continue
            for k, v in val.items():
                if not isinstance(v, str):
                    res.error("FieldValueTypeInvalid", "%s.%s.%s" % (path, key, k),
                              "Invalid value: %s: must be a string" % fmt_value(type_name(v)))

    def _array(self, arr, schema, path, res):
        items = schema.get("items") or {}
        keep = []
        for i, item in enumerate(arr):
            if self._node(item, items, "%s[%d]" % (path, i), res):
                keep.append(item)
        if len(keep) != len(arr):
            arr[:] = keep
        if "maxItems" in schema and len(arr) > schema["maxItems"]:
            res.error("FieldValueTooMany", path, "Too many: %d: must have at most %d items" % (
                len(arr), schema["maxItems"]))
        if "minItems" in schema and len(arr) < schema["minItems"]:
            res.error("FieldValueInvalid", path, "Invalid value: %d: %s in body should have at least %d items" % (
                len(arr), path, schema["minItems"]))
        ltype = schema.get("x-kubernetes-list-type")
        if ltype == "map":
            keys = schema.get("x-kubernetes-list-map-keys") or []
            seen = set()
            for i, item in enumerate(arr):
                if not isinstance(item, dict):
                    continue
                k = tuple(json.dumps(item.get(key), sort_keys=True) for key in keys)
                if k in seen:
                    ident = {key: item.get(key) for key in keys}
                    res.error("FieldValueDuplicate", "%s[%d]" % (path, i), "Duplicate value: %s" % (
                        json.dumps(ident, separators=(",", ":"), sort_keys=True)))
                seen.add(k)
        elif ltype == "set":
            seen = set()
            for i, item in enumerate(arr):
                k = json.dumps(item, sort_keys=True)
                if k in seen:
                    res.error("FieldValueDuplicate", "%s[%d]" % (path, i), "Duplicate value: %s" % fmt_value(item))
                seen.add(k)


def validate_name(name, path="metadata.name", label=False):
    """Errors for an invalid object name (RFC 1123 subdomain, or label for namespaces)."""
    if label:
        if not DNS_LABEL.match(name) or len(name) > 63:
            return [{"reason": "FieldValueInvalid", "field": path,
                     "message": "Invalid value: %s: %s" % (fmt_value(name), LABEL_MSG)}]
        return []
    if not DNS_SUBDOMAIN.match(name) or len(name) > 253:
        return [{"reason": "FieldValueInvalid", "field": path,
                 "message": "Invalid value: %s: %s" % (fmt_value(name), SUBDOMAIN_MSG)}]
    return []


LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
                   "and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or "
                   "'12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")
NAME_PART_MSG = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
                 "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
                 "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
ANNOTATIONS_MAX = 256 * 1024


def _key_errors(key, path):
    prefix, _, name = key.rpartition("/")
    out = []
    if prefix and (not DNS_SUBDOMAIN.match(prefix) or len(prefix) > 253):
        out.append("prefix part " + SUBDOMAIN_MSG)
    if not name or not QUALIFIED_NAME.match(name):
        out.append(NAME_PART_MSG)
    elif len(name) > 63:
        out.append("name part must be no more than 63 characters")
    return [{"reason": "FieldValueInvalid", "field": path, "message": "Invalid value: %s: %s" % (fmt_value(key), m)}
            for m in out]


def validate_metadata(meta):
    """ObjectMeta checks of the real apiserver: label keys/values, annotation keys and total size."""
    causes = []
    for k, v in ((meta or {}).get("labels") or {}).items():
        causes.extend(_key_errors(k, "metadata.labels"))
        if isinstance(v, str):
            if len(v) > 63:
                causes.append({"reason": "FieldValueInvalid", "field": "metadata.labels", "message":
                               "Invalid value: %s: must be no more than 63 characters" % fmt_value(v)})
            elif not LABEL_VALUE.match(v):
                causes.append({"reason": "FieldValueInvalid", "field": "metadata.labels",
                               "message": "Invalid value: %s: %s" % (fmt_value(v), LABEL_VALUE_MSG)})
    annotations = (meta or {}).get("annotations") or {}
    for k in annotations:
        causes.extend(_key_errors(k, "metadata.annotations"))
    size = sum(len(k) + len(v if isinstance(v, str) else "") for k, v in annotations.items())
    if size > ANNOTATIONS_MAX:
        causes.append({"reason": "FieldValueTooLong", "field": "metadata.annotations",
                       "message": "Too long: may not be more than %d bytes" % ANNOTATIONS_MAX})
    return causes


def list_semantics(schema):
    """('map', keys) / ('set', None) / ('atomic', None) for an array schema; used by server-side apply."""
    ltype = (schema or {}).get("x-kubernetes-list-type")
    if ltype == "map":
        return "map", list(schema.get("x-kubernetes-list-map-keys") or [])
    if ltype == "set":
        return "set", None
    return "atomic", None


def child_schema(schema, key):
    """The schema for `key` inside an object schema (None when unknown)."""
    if not schema:
        return None
    props = schema.get("properties")
    if props and key in props:
        return props[key]
    addl = schema.get("additionalProperties")
    if isinstance(addl, dict):
        return addl
    return None
