"""Normalise what both collections produced and turn every difference into a ``plugin:area:path`` key."""
import json

ABSENT = "<absent>"
SERVER_OWNED = ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields", "selfLink")
# Values the emulator's webhooks and controllers set per object: compared for presence, not value.
VOLATILE_ANNOTATIONS = ("kubemacpool.io/transaction-timestamp",)
VOLATILE_LABELS = ("kubevirt.io/nodeName",)
# Result keys Ansible adds around every module result; not part of what kubevirt.core returns.
IGNORED_RESULT_KEYS = ("invocation", "warnings", "deprecations", "_ansible_no_log", "_ansible_verbose_always",
                       "_ansible_verbose_override", "exception", "module_stderr", "module_stdout")
LIFECYCLE = ("started", "stopped", "restarted")


def normalise_object(obj, ns):
    """`obj` (a VM or VMI) without server-owned fields and status, its namespace replaced by <ns>."""
    if not isinstance(obj, dict):
        return obj
    text = json.dumps(obj).replace('"%s"' % ns, '"<ns>"').replace("/namespaces/%s/" % ns, "/namespaces/<ns>/")
    obj = json.loads(text)
    obj.pop("status", None)
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        for key in SERVER_OWNED:
            meta.pop(key, None)
        for key in ("deletionTimestamp",):
            if key in meta:
                meta[key] = "<timestamp>"
        for ref in meta.get("ownerReferences") or []:
            if "uid" in ref:
                ref["uid"] = "<uid>"
        for key in VOLATILE_ANNOTATIONS:
            if key in (meta.get("annotations") or {}):
                meta["annotations"][key] = "<set>"
        for key in VOLATILE_LABELS:
            if key in (meta.get("labels") or {}):
                meta["labels"][key] = "<set>"
    _mask(obj)
    return obj


def _mask(node, parent=None):
    """MAC addresses (kubemacpool) and firmware UUIDs (derived from the namespace) differ per object."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "macAddress" and isinstance(value, str):
                node[key] = "<mac>"
            elif key in ("uuid", "serial") and parent == "firmware" and isinstance(value, str):
                node[key] = "<uuid>"
            else:
                _mask(value, key)
    elif isinstance(node, list):
        for item in node:
            _mask(item, parent)


def walk(ref, our, path=""):
    """Yield (path, ref value, our value) for every leaf that differs; lists of equal length item by item."""
    if isinstance(ref, dict) and isinstance(our, dict):
        for key in sorted(set(ref) | set(our)):
            sub = "%s.%s" % (path, key) if path else key
            if key not in ref:
                yield sub, ABSENT, our[key]
            elif key not in our:
                yield sub, ref[key], ABSENT
            else:
                yield from walk(ref[key], our[key], sub)
    elif isinstance(ref, list) and isinstance(our, list) and len(ref) == len(our):
        for i, (a, b) in enumerate(zip(ref, our)):
            yield from walk(a, b, "%s[%d]" % (path, i))
    elif ref != our:
        yield path, ref, our


def normalise_result(module, result, ns):
    """The part of a registered result kubevirt.core's contract covers, normalised for comparison."""
    out = {}
    for key, value in (result or {}).items():
        if key in IGNORED_RESULT_KEYS or key.startswith("_ansible"):
            continue
        if key == "duration":
            value = "<present>"
        elif key == "result" or key == "resources":
            value = [normalise_object(o, ns) for o in value] if isinstance(value, list) else normalise_object(value, ns)
        elif key == "diff" and isinstance(value, dict):
            value = dict((k, normalise_object(v, ns) if k in ("before", "after") else v) for k, v in value.items())
        out[key] = value
    out["failed"] = bool((result or {}).get("failed"))
    out["changed"] = bool((result or {}).get("changed"))
    return out


def unwrap(result):
    """kubevirt.core 2.3.0's kubevirt_vm returns ``result: {results: [{changed, method, result}]}`` for one VM
    (kubernetes.core's runner calls exit_json twice and kubevirt_vm keeps the second call's arguments); its
    documentation promises ``result`` = the object. Returns (result with the object in ``result``, wrapped?)."""
    inner = (result or {}).get("result")
    if isinstance(inner, dict) and set(inner) == {"results"} and isinstance(inner["results"], list) \
            and len(inner["results"]) == 1 and isinstance(inner["results"][0], dict):
        return dict(result, result=inner["results"][0].get("result")), True
    return result, False


def changed_fields(before, after):
    """(before, after) reduced to the keys whose values differ, recursing into dicts; lists count whole. This is the
    form of kubevirt.core's ``diff`` (kubernetes.core's recursive diff); ours holds the whole objects."""
    left = dict((k, v) for k, v in before.items() if k not in after)
    right = dict((k, v) for k, v in after.items() if k not in before)
    for key in set(before) & set(after):
        a, b = before[key], after[key]
        if isinstance(a, dict) and isinstance(b, dict):
            sub = changed_fields(a, b)
            if sub[0] or sub[1]:
                left[key], right[key] = sub
        elif a != b:
            left[key], right[key] = a, b
    return left, right


def reduce_diff(ref, our):
    """Our whole-object ``diff`` in kubevirt.core's changed-fields form, when kubevirt.core returned one; the flag
    says whether the form was changed (one difference, listed in the table, instead of one per unchanged field)."""
    diff = (our or {}).get("diff")
    if "diff" not in (ref or {}) or not isinstance(diff, dict) or not diff.get("before") or not diff.get("after"):
        return our, False
    before, after = changed_fields(diff["before"], diff["after"])
    return dict(our, diff=dict(diff, before=before, after=after)), True


def changed_key(module, step):
    """The key of a ``changed`` difference: check mode predicts lifecycle actions on purpose, so a check-mode
    step's key names the mode and the state, e.g. ``kubevirt_vm:result:changed (check_mode, state=started)``."""
    if step["check"]:
        return "%s:result:changed (check_mode, state=%s)" % (module, step["args"].get("state", "present"))
    args = step["args"]
    if module == "kubevirt_vm" and args.get("state", "present") != "absent" and "running" not in args \
            and "run_strategy" not in args:
        # kubevirt.core writes spec.running: true on every such task (row running-default): a `changed` that
        # differs here has that cause, and the key says so instead of borrowing another row's explanation.
        return "%s:result:changed (state=%s, running not given)" % (module, args.get("state", "present"))
    return "%s:result:changed" % module


def result_differences(step, ref, our, ref_ns, our_ns):
    """(key, ref value, our value) for the result keys kubevirt.core returned that ours returns differently.

    kubevirt.core's wrapped ``result`` (see unwrap) is one difference, ``result.results``; the object inside it is
    then compared with ours like any other."""
    module = step["module"]
    ref, ref_wrapped = unwrap(ref)
    our, our_wrapped = unwrap(our)
    if ref_wrapped != our_wrapped:
        yield ("%s:result:result.results" % module, "[{changed, method, result: <the VM>}]" if ref_wrapped else ABSENT,
               "[{changed, method, result: <the VM>}]" if our_wrapped else ABSENT)
    our, reduced = reduce_diff(ref, our)
    if reduced:
        yield "%s:result:diff (whole objects)" % module, "changed fields", "whole objects"
    ref_n = normalise_result(module, ref, ref_ns)
    our_n = normalise_result(module, our, our_ns)
    # Ours may return more keys (a superset); only kubevirt.core's are compared.
    our_n = dict((k, v) for k, v in our_n.items() if k in ref_n)
    state = step["args"].get("state")
    for path, a, b in walk(ref_n, our_n):
        if path == "changed":
            yield changed_key(module, step), a, b
        elif path.startswith("result") and state in LIFECYCLE:
            # kubevirt.core returns the VM as its write before the action left it: not the same thing as the result
            # of a `present` write, so rows about writes (e.g. running-default) must not match it.
            yield "%s:result:%s (state=%s)" % (module, path, state), a, b
        else:
            yield "%s:result:%s" % (module, path), a, b


def vm_differences(ref_snap, our_snap, ref_ns, our_ns):
    """(key, ref value, our value) for the stored VirtualMachine after a step."""
    ref_obj = normalise_object((ref_snap or {}).get("object"), ref_ns)
    our_obj = normalise_object((our_snap or {}).get("object"), our_ns)
    if ref_obj is None or our_obj is None:
        if (ref_obj is None) != (our_obj is None):
            yield "kubevirt_vm:vm:", ref_obj or ABSENT, our_obj or ABSENT
        return
    for path, a, b in walk(ref_obj, our_obj):
        yield "kubevirt_vm:vm:%s" % path, a, b
