# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet.kubevirt contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""VirtualMachineSnapshots (snapshot.kubevirt.io/v1beta1): the pure parts shared by the snapshot modules (and the
restore module's "newest ready snapshot of a VM").
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


def source_vm(snapshot):
    """Name of the VirtualMachine a snapshot was taken of (``spec.source``), or None for another source kind."""
    source = (snapshot.get("spec") or {}).get("source") or {}
    if source.get("kind", "VirtualMachine") != "VirtualMachine":
        return None
    return source.get("name")


def _age_key(snapshot):
    # RFC 3339 timestamps in UTC ("...Z") sort as strings; the name breaks ties of one second.
    meta = snapshot.get("metadata") or {}
    status = snapshot.get("status") or {}
    return (meta.get("creationTimestamp") or "", status.get("creationTime") or "", meta.get("name") or "")


def newest_first(snapshots):
    """The snapshots sorted newest first (by metadata.creationTimestamp, then status.creationTime, then name)."""
    return sorted(snapshots, key=_age_key, reverse=True)


def snapshots_by_vm(items):
    """``(namespace, vm name) -> [snapshots]`` newest first; snapshots of another source kind are left out."""
    out = {}
    for snap in items:
        vm = source_vm(snap)
        if not vm:
            continue
        namespace = (snap.get("metadata") or {}).get("namespace") or ""
        out.setdefault((namespace, vm), []).append(snap)
    for key in out:
        out[key] = newest_first(out[key])
    return out


def is_ready(snapshot):
    return bool((snapshot.get("status") or {}).get("readyToUse"))


def newest_ready(snapshots):
    """The newest snapshot that is ready to use (and not being deleted) among ``snapshots``, or None."""
    for snap in newest_first(snapshots):
        if is_ready(snap) and not (snap.get("metadata") or {}).get("deletionTimestamp"):
            return snap
    return None
