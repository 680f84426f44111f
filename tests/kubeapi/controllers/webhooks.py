"""Admission webhooks of a KubeVirt cluster with kubemacpool, for VirtualMachines, plus RestartRequired.

What a real cluster does to a VM on write, so that kubevirt_vm's idempotency is tested against it:

* virt-api's mutating webhook (vm-mutator): ``spec.template.spec.architecture`` and
  ``spec.template.spec.domain.machine.type`` when absent.
* virt-controller persists a firmware UUID into the VM template (``domain.firmware.uuid``), once.
* kubemacpool: a ``macAddress`` for every interface without one (kept across updates, by interface name),
  and the annotation ``kubemacpool.io/transaction-timestamp`` on every write that changes the spec.
* A default disk for every volume without one. KubeVirt itself adds it on the VMI; some platforms'
  webhooks put it on the VM, which is the harder case for a module comparing desired and live.
* virt-api's validating webhook (vms-admitter): ``running`` and ``runStrategy`` together, disks or
  interfaces without a matching volume or network -> 422 naming the field.
* RestartRequired: a template change on a VM whose VMI runs sets condition ``RestartRequired=True``; the
  next VMI (restart) clears it.

The hooks run inside the API's write path (``Api.admission_hooks``), for dry runs too, like webhooks.
Written for the kubevirt_vm issue; wired in ``controllers/__init__.py`` next to the virt controller.
"""
import datetime
import itertools
import uuid

from .. import errors
from ..api import now
from . import Controller

VM = ("kubevirt.io", "virtualmachines")
VMI = ("kubevirt.io", "virtualmachineinstances")
MAC_ANNOTATION = "kubemacpool.io/transaction-timestamp"
FIRMWARE_NS = uuid.UUID("6a1a24a1-4061-5d5f-9b6a-000000000000")
RESTART_MESSAGE = "a non-live-updatable field was changed in the template spec"


def _denied(name, field, message):
    return errors.ApiError(422, "Invalid", 'admission webhook "virtualmachine-validator.kubevirt.io" denied the '
                           'request: %s' % message,
                           {"name": name, "group": "kubevirt.io", "kind": "VirtualMachine",
                            "causes": [{"reason": "FieldValueInvalid", "message": message, "field": field}]})


def validate(vm):
    """The checks of vms-admitter the module's users hit most; raises a 422 naming the field."""
    name = vm["metadata"].get("name", "")
    spec = vm.get("spec") or {}
    if spec.get("running") is not None and spec.get("runStrategy"):
        raise _denied(name, "spec.running", "spec.running and spec.runStrategy are mutually exclusive: Running and "
                                            "RunStrategy are mutually exclusive. Note that Running is deprecated, "
                                            "please use RunStrategy instead")
    tspec = (spec.get("template") or {}).get("spec") or {}
    volumes = {v.get("name") for v in tspec.get("volumes") or []}
    devices = (tspec.get("domain") or {}).get("devices") or {}
    for i, disk in enumerate(devices.get("disks") or []):
        if disk.get("name") not in volumes:
            field = "spec.template.spec.domain.devices.disks[%d].name" % i
            raise _denied(name, field, "%s '%s' not found." % (field, disk.get("name")))
    networks = {n.get("name") for n in tspec.get("networks") or []}
    for i, iface in enumerate(devices.get("interfaces") or []):
        if iface.get("name") not in networks:
            field = "spec.template.spec.domain.devices.interfaces[%d].name" % i
            raise _denied(name, field, "%s '%s' not found." % (field, iface.get("name")))


class KubeVirtWebhooks(Controller):
    name = "kubevirt-webhooks"
    watches = (VMI,)

    def setup(self):
        self._macs = itertools.count(1)
        self.api.admission_hooks.append(self.admit)

    def _next_mac(self):
        n = next(self._macs)
        return "02:%02x:%02x:%02x:%02x:%02x" % (0x5a, (n >> 24) & 0xff, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff)

    # --- admission (called under the store lock by the API, for creates, updates, patches and applies) -------
    def admit(self, rtype, obj, old):
        if rtype.key != VM:
            return
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        if old is not None and old.get("spec") == spec:
            return      # a status or metadata-only write: the webhooks do not see /status, nothing to do
        validate(obj)
        tspec = spec.setdefault("template", {}).setdefault("spec", {})
        old_tspec = (((old or {}).get("spec") or {}).get("template") or {}).get("spec") or {}
        domain = tspec.setdefault("domain", {})
        tspec.setdefault("architecture", "amd64")
        domain.setdefault("machine", {}).setdefault("type", "q35")
        firmware = domain.setdefault("firmware", {})
        if not firmware.get("uuid"):
            firmware["uuid"] = ((old_tspec.get("domain") or {}).get("firmware") or {}).get("uuid") or str(
                uuid.uuid5(FIRMWARE_NS, "%s/%s" % (obj["metadata"].get("namespace"), obj["metadata"].get("name"))))
        devices = domain.setdefault("devices", {})
        old_macs = {i.get("name"): i.get("macAddress") for i in
                    ((old_tspec.get("domain") or {}).get("devices") or {}).get("interfaces") or []}
        for iface in devices.get("interfaces") or []:
            if not iface.get("macAddress"):
                iface["macAddress"] = old_macs.get(iface.get("name")) or self._next_mac()
        disks = devices.get("disks")
        named = {d.get("name") for d in disks or []}
        missing = [v["name"] for v in tspec.get("volumes") or [] if v.get("name") not in named]
        if missing:
            devices["disks"] = list(disks or []) + [{"name": n, "disk": {"bus": "virtio"}} for n in missing]
        if old is None or old.get("spec") != spec:
            stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            obj["metadata"].setdefault("annotations", {})[MAC_ANNOTATION] = stamp
        if old is not None and (old.get("spec") or {}).get("template") != spec.get("template"):
            meta = obj["metadata"]
            vmi = self.store.get(VMI, meta.get("namespace"), meta.get("name"))
            active = vmi is not None and not vmi["metadata"].get("deletionTimestamp") and \
                (vmi.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
            if active:
                conds = obj.setdefault("status", {}).setdefault("conditions", [])
                conds[:] = [c for c in conds if c.get("type") != "RestartRequired"]
                conds.append({"type": "RestartRequired", "status": "True", "lastProbeTime": None,
                              "lastTransitionTime": now(), "message": RESTART_MESSAGE})

    # --- a new VMI runs the current template: RestartRequired no longer applies -----------------------------
    def reconcile(self, rkey, ns, name, etype, obj):
        if rkey != VMI or etype != "ADDED":
            return
        vm_type = self.app.registry.get(*VM)

        def clear(o):
            conds = (o.get("status") or {}).get("conditions") or []
            kept = [c for c in conds if c.get("type") != "RestartRequired"]
            if len(kept) == len(conds):
                return False
            o["status"]["conditions"] = kept
        self.api.write_status(vm_type, ns, name, clear, "virt-controller")
