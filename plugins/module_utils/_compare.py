# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet.kubevirt contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure functions: desired vs live VirtualMachine (idempotency), diff before/after, hidden fields.

Two update modes
----------------
By default (kubevirt.core's semantics) an update writes only the fields the task gives, as a JSON merge patch:
everything else on the VM stays, whoever set it. ``patch_body`` builds that patch from the desired object and the
live one, and ``differences`` decides, without a request, whether it would change anything. No annotation is
added. With ``full_ownership`` the module owns the whole declaration, as described next.

How the module knows what it owns (full_ownership)
--------------------------------------------------
Writes are server-side apply requests with field manager ``virtfleet.kubevirt``. The API server records
which fields that manager set and removes a field the manager set before but no longer sends, so a field
the user drops from their options disappears from the VM while fields other actors own (webhooks,
controllers, kubectl) stay.

To decide *without a request* whether an apply is needed, the module also writes the annotation
``virtfleet.kubevirt/applied-digest``: a digest of exactly what it applied. A re-run is a no-op when

* every field the module would apply already has that value on the live object (``satisfies``), where live
  may carry more (MAC addresses from kubemacpool, firmware UUID, machine type, default disks, annotations),
  and
* the live digest equals the digest of the new desired object, i.e. the user's options did not change
  since the last apply (a dropped field changes the digest even though live still "satisfies" the rest).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import hashlib
import json

from ansible_collections.virtfleet.kubevirt.plugins.module_utils import _fields

FIELD_MANAGER = "virtfleet.kubevirt"
DIGEST_ANNOTATION = "virtfleet.kubevirt/applied-digest"
DEFAULT_HIDDEN_FIELDS = ["metadata.annotations[kubemacpool.io/transaction-timestamp]", "metadata.managedFields"]


class HiddenFieldError(ValueError):
    """A hidden_fields entry that cannot be parsed."""


def parse_field_path(text):
    """`a.b[c.d].e[0]` -> ['a', 'b', 'c.d', 'e', 0] (kubernetes.core hidden_fields syntax).

    Used to reject a malformed hidden_fields entry up front; removal itself is `_fields.hide_fields`.
    """
    parts = []
    buf = ""
    i = 0
    while i < len(text):
        char = text[i]
        if char == ".":
            if buf:
                parts.append(buf)
            buf = ""
        elif char == "[":
            if buf:
                parts.append(buf)
            buf = ""
            end = text.find("]", i)
            if end < 0:
                raise HiddenFieldError("hidden_fields entry %r has an unclosed '['." % text)
            key = text[i + 1:end]
            parts.append(int(key) if key.isdigit() else key)
            i = end
        else:
            buf += char
        i += 1
    if buf:
        parts.append(buf)
    if not parts:
        raise HiddenFieldError("hidden_fields entry %r is empty." % text)
    return parts


def hide_fields(obj, hidden_fields):
    """A copy of `obj` without the hidden fields (missing paths are ignored)."""
    if obj is None:
        return None
    return _fields.hide_fields(copy.deepcopy(obj), list(hidden_fields or ()))


def _named(items):
    return (isinstance(items, list) and items and all(isinstance(i, dict) and isinstance(i.get("name"), str) for i in items))


def differences(desired, live, path="", extra_ok=True, omitted_zero=False):
    """Paths where `live` does not satisfy `desired` (empty list: nothing to change).

    Dicts: every desired key must be satisfied; live may have more keys. Lists of named objects (disks,
    interfaces, volumes, networks, ...): each desired element must be satisfied by the live element of the
    same name, in the same relative order; live may hold more elements (a webhook's default disk) unless
    ``extra_ok`` is false, as for a JSON merge patch, which replaces a list whole. Other lists: same length,
    element by element. An empty desired dict is satisfied by any dict. With ``omitted_zero`` (built-in kinds) a
    desired zero value (false, 0, "") is satisfied by its absence: the server does not store it.
    """
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return [path or "."]
        out = []
        for key, value in desired.items():
            sub = "%s.%s" % (path, key) if path else key
            if key not in live:
                if value is None or (omitted_zero and _zero(value)):
                    continue
                out.append(sub)
                continue
            out.extend(differences(value, live[key], sub, extra_ok, omitted_zero))
        return out
    if isinstance(desired, list):
        if not isinstance(live, list):
            return [path]
        if _named(desired) and _named(live):
            if not extra_ok and [i["name"] for i in desired] != [i["name"] for i in live]:
                return [path]
            index = {item["name"]: pos for pos, item in enumerate(live)}
            out = []
            last = -1
            for item in desired:
                sub = "%s[%s]" % (path, item["name"])
                pos = index.get(item["name"])
                if pos is None or pos < last:
                    out.append(sub)
                    continue
                last = pos
                out.extend(differences(item, live[pos], sub, extra_ok, omitted_zero))
            return out
        if len(desired) != len(live):
            return [path]
        out = []
        for pos, (want, have) in enumerate(zip(desired, live)):
            out.extend(differences(want, have, "%s[%d]" % (path, pos), extra_ok, omitted_zero))
        return out
    if isinstance(desired, bool) != isinstance(live, bool):
        return [path]
    if desired != live:
        # The API stores what it was sent, but YAML users write 2 where the server echoes 2.0 and vice versa.
        if isinstance(desired, (int, float)) and isinstance(live, (int, float)) and not isinstance(desired, bool) \
                and not isinstance(live, bool) and float(desired) == float(live):
            return []
        return [path]
    return []


def _zero(value):
    return value is False or value == "" or (isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0)


def digest(manifest):
    """Stable digest of what the module applies (without its own digest annotation)."""
    body = copy.deepcopy(manifest)
    annotations = (body.get("metadata") or {}).get("annotations")
    if annotations:
        annotations.pop(DIGEST_ANNOTATION, None)
        if not annotations:
            body["metadata"].pop("annotations")
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def with_digest(manifest, value):
    out = copy.deepcopy(manifest)
    out.setdefault("metadata", {}).setdefault("annotations", {})[DIGEST_ANNOTATION] = value
    return out


def needs_apply(desired, live, hidden_fields=None, omitted_zero=False):
    """(needed, reasons): does `live` (or its absence) require applying `desired` (which carries its digest)?"""
    if live is None:
        return True, ["does not exist"]
    want = hide_fields(desired, hidden_fields)
    have = hide_fields(live, hidden_fields)
    for obj in (want, have):
        obj.pop("status", None)
    diffs = differences(want, have, omitted_zero=omitted_zero)
    return bool(diffs), diffs


def diff(before, after, hidden_fields=None):
    """The `diff` return value: before/after objects with hidden fields removed."""
    return {
        "before": hide_fields(before, hidden_fields) if before is not None else {},
        "after": hide_fields(after, hidden_fields) if after is not None else {},
    }


def template_changed(before, after):
    """True when the VMI template differs: such a change reaches a running VM only through a restart."""
    tb = ((before or {}).get("spec") or {}).get("template")
    ta = ((after or {}).get("spec") or {}).get("template")
    return tb != ta


def condition(obj, ctype):
    """The status condition of type `ctype` of `obj`, or None."""
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == ctype:
            return cond
    return None


def condition_is(obj, ctype, status, reason=None):
    """Is the condition `ctype` there with `status` (compared case-insensitively) and, if given, `reason`?"""
    cond = condition(obj, ctype)
    if cond is None or str(cond.get("status")).lower() != str(status).lower():
        return False
    return reason is None or cond.get("reason") == reason


def is_true(obj, ctype):
    return condition_is(obj, ctype, "True")


# Fields the API server changes on every write: not a change of the object.
_VOLATILE_META = ("resourceVersion", "generation", "managedFields")


def _without_volatile(obj):
    out = copy.deepcopy(obj or {})
    meta = out.get("metadata") or {}
    for key in _VOLATILE_META:
        meta.pop(key, None)
    return out


def changed_between(before, after, hidden_fields=None):
    """Did a write change the object? (kubevirt.core's test: anything but resourceVersion and generation differs;
    hidden fields are ignored, as in every comparison of this module)."""
    return hide_fields(_without_volatile(before), hidden_fields) != hide_fields(_without_volatile(after), hidden_fields)


def _get_path(obj, path):
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _element_name(item, name_key):
    return _get_path(item, name_key) if isinstance(item, dict) else None


def merge_by_name(want, have, name_key):
    """`have` with each element of `want` put in by name: an element that already satisfies it stays as it is
    (with what others added, such as a MAC address), a different one is replaced, a new one is appended."""
    out = copy.deepcopy(have)
    index = dict((_element_name(item, name_key), pos) for pos, item in enumerate(out))
    for item in want:
        pos = index.get(_element_name(item, name_key))
        if pos is None:
            index[_element_name(item, name_key)] = len(out)
            out.append(copy.deepcopy(item))
        elif differences(item, out[pos]):
            out[pos] = copy.deepcopy(item)
    return out


def patch_body(desired, live, named_lists=()):
    """The JSON merge patch that writes what `desired` gives onto `live` and nothing else.

    `named_lists` (``(path, name_key)`` pairs) are lists the task builds element by element: they are merged into
    the live list by name, because a JSON merge patch would otherwise replace the whole list and drop the
    elements the task did not name. KubeVirt rejects ``running`` and ``runStrategy`` together, so the one the
    task sets removes the other (a ``null`` in a merge patch deletes the field).
    """
    body = copy.deepcopy(desired)
    for path, name_key in named_lists:
        want = _get_path(body, path)
        have = _get_path(live, path)
        if isinstance(want, list) and isinstance(have, list):
            _get_path(body, path[:-1])[path[-1]] = merge_by_name(want, have, name_key)
    spec, live_spec = body.get("spec") or {}, (live or {}).get("spec") or {}
    for field, other in (("running", "runStrategy"), ("runStrategy", "running")):
        if spec.get(field) is not None and other in live_spec:
            spec[other] = None
    return body
