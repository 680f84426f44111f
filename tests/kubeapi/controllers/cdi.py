"""Simulated CDI for VMs with dataVolumeTemplates: DataVolume creation and phases.

* For every VM with ``spec.dataVolumeTemplates`` the DataVolumes are created (owned by the VM), as
  virt-controller does.
* A DataVolume walks its phases, one per timer step: import (http/registry/s3/...) Pending -> ImportScheduled
  -> ImportInProgress (progress 0 -> 50 -> 100 %) -> Succeeded; clone (pvc/snapshot) CloneScheduled ->
  CloneInProgress -> Succeeded; blank -> Succeeded. Conditions Bound/Ready/Running follow, ``claimName`` is set.
  A source URL containing ``notfound`` stays ImportInProgress with Running=False, reason Error, like CDI's
  importer pod retrying a 404.
* A VM's VMI is only created once all its DataVolumes succeeded (virt-controller waits for them): an
  admission hook refuses the VMI until then, and the VM is nudged (a status condition
  ``DataVolumesReady``) when the last one succeeds so that the VM controller tries again.

Written for the kubevirt_vm issue (DataVolume boot disks).
"""
from .. import errors
from ..api import Options, now
from . import Controller
from ..util import clone

VM = ("kubevirt.io", "virtualmachines")
VMI = ("kubevirt.io", "virtualmachineinstances")
DV = ("cdi.kubevirt.io", "datavolumes")
IMPORT = ["Pending", "ImportScheduled", "ImportInProgress", "ImportInProgress", "ImportInProgress", "Succeeded"]
CLONE = ["Pending", "CloneScheduled", "CloneInProgress", "Succeeded"]
PROGRESS = {2: "0.00%", 3: "50.00%", 4: "100.0%"}


def _cond(ctype, status, reason="", message=""):
    return {"type": ctype, "status": status, "lastHeartbeatTime": now(), "lastTransitionTime": now(),
            "reason": reason, "message": message}


def _plan(dv):
    source = (dv.get("spec") or {}).get("source") or {}
    if "blank" in source or not source:
        return ["Succeeded"]
    if "pvc" in source or "snapshot" in source:
        return CLONE
    return IMPORT


def _broken(dv):
    source = (dv.get("spec") or {}).get("source") or {}
    for kind in ("http", "registry", "s3", "gcs"):
        if "notfound" in str((source.get(kind) or {}).get("url", "")):
            return True
    return False


class CdiController(Controller):
    name = "cdi-controller"
    watches = (VM, DV)

    def setup(self):
        self._pending = set()
        self.api.admission_hooks.append(self.admit)

    def _rt(self, key):
        return self.app.registry.get(*key)

    def _opts(self):
        return Options(validation="Ignore", manager="virt-controller")

    # --- VMIs wait for their DataVolumes ---------------------------------------------------------------------
    def _waiting_for(self, ns, vm):
        out = []
        for tmpl in (vm.get("spec") or {}).get("dataVolumeTemplates") or []:
            name = (tmpl.get("metadata") or {}).get("name")
            dv = self.store.get(DV, ns, name)
            phase = ((dv or {}).get("status") or {}).get("phase")
            if phase != "Succeeded":
                out.append("%s (%s)" % (name, phase or "not created"))
        return out

    def admit(self, rtype, obj, old):
        if rtype.key != VMI or old is not None:
            return
        meta = obj["metadata"]
        vm = self.store.get(VM, meta.get("namespace"), meta.get("name"))
        if vm is None:
            return
        waiting = self._waiting_for(meta.get("namespace"), vm)
        if waiting:
            raise errors.ApiError(409, "Conflict", "waiting for DataVolumes %s" % ", ".join(waiting),
                                  {"name": meta.get("name"), "group": "kubevirt.io", "kind": "virtualmachineinstances"})

    # --- reconcile -------------------------------------------------------------------------------------------
    def reconcile(self, rkey, ns, name, etype, obj):
        if rkey == VM and etype != "DELETED":
            self._ensure_dvs(ns, obj)
        elif rkey == DV and etype != "DELETED":
            self._advance_later(ns, name)

    def _ensure_dvs(self, ns, vm):
        if vm["metadata"].get("deletionTimestamp"):
            return
        for tmpl in (vm.get("spec") or {}).get("dataVolumeTemplates") or []:
            tmeta = tmpl.get("metadata") or {}
            name = tmeta.get("name")
            if not name or self.store.get(DV, ns, name) is not None:
                continue
            dv = {"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume",
                  "metadata": {"name": name, "namespace": ns, "labels": dict(tmeta.get("labels") or {}),
                               "ownerReferences": [{"apiVersion": vm.get("apiVersion", "kubevirt.io/v1"),
                                                    "kind": "VirtualMachine", "name": vm["metadata"]["name"],
                                                    "uid": vm["metadata"]["uid"], "controller": True,
                                                    "blockOwnerDeletion": True}]},
                  "spec": clone(tmpl.get("spec") or {})}
            if not dv["metadata"]["labels"]:
                del dv["metadata"]["labels"]
            try:
                self.api.create(self._rt(DV), "v1beta1", ns, dv, self._opts())
            except errors.ApiError as exc:
                if exc.code != 409:
                    print("kubeapi: cdi could not create DataVolume %s/%s: %s" % (ns, name, exc.message), flush=True)

    def _advance_later(self, ns, name):
        key = (ns, name)
        if key in self._pending:
            return
        self._pending.add(key)

        def run():
            self._pending.discard(key)
            self._advance(ns, name)
        self.after(self.step, run)

    def _advance(self, ns, name):
        dv = self.store.get(DV, ns, name)
        if dv is None or dv["metadata"].get("deletionTimestamp"):
            return
        plan = _plan(dv)
        step = self._step_of(dv, plan)
        if plan[max(step, 0)] == "Succeeded" and step >= 0:
            return
        if _broken(dv) and step + 1 >= 2:
            self._set(ns, name, plan, 2, broken=True)     # the importer keeps failing: no further step
            return
        self._set(ns, name, plan, step + 1)

    @staticmethod
    def _step_of(dv, plan):
        status = dv.get("status") or {}
        phase = status.get("phase")
        if not phase or phase not in plan:
            return -1
        if phase == "ImportInProgress":
            for i, value in PROGRESS.items():
                if status.get("progress") == value:
                    return i
            return 2
        return plan.index(phase)

    def _set(self, ns, name, plan, step, broken=False):
        step = min(step, len(plan) - 1)
        phase = plan[step]

        def mutate(o):
            st = o.setdefault("status", {})
            before = clone(st)
            st["phase"] = phase
            st["claimName"] = name
            if phase == "Succeeded":
                st["progress"] = "100.0%"
            else:
                st["progress"] = PROGRESS.get(step, "N/A") if plan is IMPORT else "N/A"
            st["restartCount"] = 1 if broken else 0
            bound = step >= 1 or phase == "Succeeded"
            if broken:
                running = _cond("Running", "False", "Error", "Unable to connect to http data source: expected status "
                                "code 200, got 404. Status: 404 Not Found")
            elif phase == "Succeeded":
                running = _cond("Running", "False", "Completed", "Import Complete")
            else:
                running = _cond("Running", "True" if phase.endswith("InProgress") else "False", "Pod is running"
                                if phase.endswith("InProgress") else "", "")
            conds = [_cond("Bound", "True" if bound else "False", "Bound" if bound else "Pending",
                           "PVC %s %s" % (name, "Bound" if bound else "Pending")),
                     _cond("Ready", "True" if phase == "Succeeded" else "False", "", ""),
                     running]
            old = [(c["type"], c["status"], c.get("reason")) for c in before.get("conditions") or []]
            if old != [(c["type"], c["status"], c.get("reason")) for c in conds]:
                st["conditions"] = conds
            if st == before:
                return False
        self.api.write_status(self._rt(DV), ns, name, mutate, "cdi-controller")
        if phase == "Succeeded":
            self._nudge_owner(ns, name)

    def _nudge_owner(self, ns, dv_name):
        dv = self.store.get(DV, ns, dv_name)
        for ref in (dv or {}).get("metadata", {}).get("ownerReferences") or []:
            if ref.get("kind") != "VirtualMachine":
                continue
            vm = self.store.get(VM, ns, ref.get("name"))
            if vm is None or self._waiting_for(ns, vm):
                continue

            def mark(o):
                conds = o.setdefault("status", {}).setdefault("conditions", [])
                if any(c.get("type") == "DataVolumesReady" for c in conds):
                    return False
                conds.append({"type": "DataVolumesReady", "status": "True", "lastProbeTime": None,
                              "lastTransitionTime": now(), "reason": "AllDVsReady",
                              "message": "All of the VMI's DVs are bound and ready"})
            self.api.write_status(self._rt(VM), ns, ref["name"], mark, "virt-controller")
