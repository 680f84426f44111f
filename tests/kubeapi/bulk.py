"""Bulk-load hook for benchmarks and large tests: POST /_emulator/bulk {"objects": [...]}.

Creating 30,000 objects one HTTP request at a time costs minutes; this creates them in-process with the
admin identity (no schema validation), then writes each object's ``status`` through the status
subresource path when the kind has one, so the stored objects look exactly as if a controller had
written them. Objects that already exist are counted, not replaced. Hook calls are not request-logged.
"""
from .errors import ApiError


def load(emu, doc):
    created = existing = 0
    for obj in (doc or {}).get("objects") or []:
        rtype = emu.registry.by_kind(obj["apiVersion"], obj["kind"])
        version = obj["apiVersion"].rpartition("/")[2]
        ns = (obj.get("metadata") or {}).get("namespace", "") if rtype.namespaced else ""
        try:
            emu.api.create(rtype, version, ns, obj, emu.admin("bulk-loader"))
        except ApiError as exc:
            if exc.code != 409:
                raise
            existing += 1
            continue
        created += 1
        status = obj.get("status")
        if status is not None and rtype.has_status():
            emu.api.write_status(rtype, ns, obj["metadata"]["name"], lambda o, s=status: o.__setitem__("status", s),
                                 "bulk-loader")
    return {"created": created, "existing": existing}
