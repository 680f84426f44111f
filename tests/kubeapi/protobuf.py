"""Decode the Kubernetes protobuf request bodies `kubectl create <generator>` sends for simple built-in kinds.

kubectl's typed clients (create namespace/configmap/secret/serviceaccount) POST
`application/vnd.kubernetes.protobuf`: the 4-byte magic "k8s\\0" followed by a runtime.Unknown message
whose `raw` field is the object. Only the kinds below are mapped (field numbers from k8s.io/api generated.proto);
others are refused with 415 like a server that does not speak protobuf for them. Responses are always JSON
(kubectl also accepts JSON).
"""
import base64
import struct

MAGIC = b"k8s\x00"

TIME = "time"
# message -> {field number: (json name, type)}; type: string/int/bool/bytes/time/msg:X/map/mapbytes/list/listmsg:X
MESSAGES = {
    "Unknown": {1: ("typeMeta", "msg:TypeMeta"), 2: ("raw", "rawbytes"), 3: ("contentEncoding", "string"),
                4: ("contentType", "string")},
    "TypeMeta": {1: ("apiVersion", "string"), 2: ("kind", "string")},
    "ObjectMeta": {1: ("name", "string"), 2: ("generateName", "string"), 3: ("namespace", "string"),
                   4: ("selfLink", "string"), 5: ("uid", "string"), 6: ("resourceVersion", "string"),
                   7: ("generation", "int"), 8: ("creationTimestamp", TIME), 9: ("deletionTimestamp", TIME),
                   10: ("deletionGracePeriodSeconds", "int"), 11: ("labels", "map"), 12: ("annotations", "map"),
                   13: ("ownerReferences", "listmsg:OwnerReference"), 14: ("finalizers", "list")},
    "OwnerReference": {1: ("kind", "string"), 3: ("name", "string"), 4: ("uid", "string"),
                       5: ("apiVersion", "string"), 6: ("controller", "bool"), 7: ("blockOwnerDeletion", "bool")},
    "ObjectReference": {1: ("kind", "string"), 2: ("namespace", "string"), 3: ("name", "string"),
                        4: ("uid", "string"), 5: ("apiVersion", "string"), 6: ("resourceVersion", "string"),
                        7: ("fieldPath", "string")},
    "LocalObjectReference": {1: ("name", "string")},
    "Namespace": {1: ("metadata", "msg:ObjectMeta"), 2: ("spec", "msg:NamespaceSpec")},
    "NamespaceSpec": {1: ("finalizers", "list")},
    "ConfigMap": {1: ("metadata", "msg:ObjectMeta"), 2: ("data", "map"), 3: ("binaryData", "mapbytes"),
                  4: ("immutable", "bool")},
    "Secret": {1: ("metadata", "msg:ObjectMeta"), 2: ("data", "mapbytes"), 3: ("type", "string"),
               4: ("stringData", "map"), 5: ("immutable", "bool")},
    "ServiceAccount": {1: ("metadata", "msg:ObjectMeta"), 2: ("secrets", "listmsg:ObjectReference"),
                       3: ("imagePullSecrets", "listmsg:LocalObjectReference"),
                       4: ("automountServiceAccountToken", "bool")},
    "Time": {1: ("seconds", "int"), 2: ("nanos", "int")},
    "SelfSubjectAccessReview": {1: ("metadata", "msg:ObjectMeta"), 2: ("spec", "msg:SelfSubjectAccessReviewSpec")},
    "SelfSubjectAccessReviewSpec": {1: ("resourceAttributes", "msg:ResourceAttributes")},
    "ResourceAttributes": {1: ("namespace", "string"), 2: ("verb", "string"), 3: ("group", "string"),
                           4: ("version", "string"), 5: ("resource", "string"), 6: ("subresource", "string"),
                           7: ("name", "string")},
    "SelfSubjectReview": {1: ("metadata", "msg:ObjectMeta")},
}
KINDS = {("", "Namespace"), ("", "ConfigMap"), ("", "Secret"), ("", "ServiceAccount"),
         ("authorization.k8s.io", "SelfSubjectAccessReview"), ("authentication.k8s.io", "SelfSubjectReview")}


class ProtobufError(ValueError):
    pass


def _varint(buf, pos):
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ProtobufError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf):
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        num, wire = key >> 3, key & 7
        if wire == 0:
            val, pos = _varint(buf, pos)
        elif wire == 2:
            n, pos = _varint(buf, pos)
            val = buf[pos:pos + n]
            pos += n
        elif wire == 1:
            val = struct.unpack("<q", buf[pos:pos + 8])[0]
            pos += 8
        elif wire == 5:
            val = struct.unpack("<i", buf[pos:pos + 4])[0]
            pos += 4
        else:
            raise ProtobufError("unsupported wire type %d" % wire)
        yield num, val


def _time(buf):
    import time
    t = decode_message(buf, "Time")
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t.get("seconds", 0)))


def decode_message(buf, name):
    spec = MESSAGES[name]
    out = {}
    for num, val in _fields(bytes(buf)):
        if num not in spec:
            continue
        key, typ = spec[num]
        if typ == "string":
            if val:   # Go's omitempty: proto2 writes empty optional strings, JSON leaves them out
                out[key] = val.decode()
        elif typ == "rawbytes":
            out[key] = bytes(val)
        elif typ == "int":
            out[key] = val - (1 << 64) if val >= 1 << 63 else val
        elif typ == "bool":
            out[key] = bool(val)
        elif typ == TIME:
            out[key] = _time(val)
        elif typ.startswith("msg:"):
            out[key] = decode_message(val, typ[4:])
        elif typ in ("map", "mapbytes"):
            entry = dict(_fields(bytes(val)))
            k = entry.get(1, b"").decode()
            v = entry.get(2, b"")
            out.setdefault(key, {})[k] = base64.b64encode(v).decode() if typ == "mapbytes" else v.decode()
        elif typ == "list":
            out.setdefault(key, []).append(val.decode())
        elif typ.startswith("listmsg:"):
            out.setdefault(key, []).append(decode_message(val, typ[8:]))
    return out


def decode(body, rtype):
    """The JSON-shaped object in a protobuf request body for `rtype`; raises ProtobufError if unsupported."""
    if not body.startswith(MAGIC):
        raise ProtobufError("missing protobuf magic prefix")
    if (rtype.group, rtype.kind) not in KINDS:
        raise ProtobufError("protobuf bodies are not supported for %s" % rtype.kind)
    unknown = decode_message(body[len(MAGIC):], "Unknown")
    obj = decode_message(unknown.get("raw", b""), rtype.kind)
    tm = unknown.get("typeMeta") or {}
    obj["apiVersion"] = tm.get("apiVersion") or rtype.api_version(rtype.versions[0])
    obj["kind"] = tm.get("kind") or rtype.kind
    return obj
