"""Admission webhooks of a KubeVirt v1.9.0 cluster with kubemacpool, for VirtualMachines and their VMIs.

What a real cluster does on write, so that kubevirt_vm's idempotency is tested against it (KubeVirt functions are
cited as file:function of kubevirt/kubevirt at tag v1.9.0):

* virt-api's VM mutating webhook (vm-mutator.go:VMsMutator.Mutate): ``spec.template.spec.architecture`` and
  ``domain.machine.type`` when absent; on create only a random firmware ``uuid`` and ``serial`` and the template
  annotation ``kubevirt.io/pci-topology-version: v3``. It adds **no** disks or interfaces to the VM.
* kubemacpool: a ``macAddress`` for every interface without one (kept across updates, by interface name),
  and the annotation ``kubemacpool.io/transaction-timestamp`` on every write that changes the spec.
* virt-api's VM validating webhook (vms-admitter.go:VMsAdmitter.Admit): interfaces/networks/disks without their
  counterpart, runStrategy/running -> 422 naming the field; ``spec.running`` is accepted with a deprecation
  warning (not converted to a runStrategy).
* virt-api's VMI mutating webhook, on create (vmi-mutator.go:ApplyNewVMIMutations): a disk for every volume
  without one, ``disk: {}`` on disks without a target, the default pod network interface, machine type.

No webhook writes VM status: condition ``RestartRequired`` is virt-controller's (its VM status sync compares the
template with the ControllerRevision the VMI was started from, see virt.py), and a real kube-apiserver ignores status
in a webhook's patch of a main-resource update anyway.

The hooks run inside the API's write path (``Api.admission_hooks``), for dry runs too, like webhooks.
Written for the kubevirt_vm issue; wired in ``controllers/__init__.py`` next to the virt controller.
"""
import datetime
import itertools
import uuid

from .. import errors
from . import Controller

VM = ("kubevirt.io", "virtualmachines")
VMI = ("kubevirt.io", "virtualmachineinstances")
KUBEVIRTS = ("kubevirt.io", "kubevirts")
VMIM = ("kubevirt.io", "virtualmachineinstancemigrations")
# staging/src/kubevirt.io/api/core/v1/types.go: MigrationSelectorLabel, VirtualMachineInstanceMigrationFinalizer
MIGRATION_SELECTOR_LABEL = "kubevirt.io/vmi-name"
MIGRATION_FINALIZER = "kubevirt.io/migrationJobFinalize"
MIGRATION_VALIDATOR = "migration-create-validator.kubevirt.io"
RESTORE = ("snapshot.kubevirt.io", "virtualmachinerestores")
RESTORE_VALIDATOR = "virtualmachinerestore-validator.snapshot.kubevirt.io"
MAC_ANNOTATION = "kubemacpool.io/transaction-timestamp"
# staging/src/kubevirt.io/api/core/v1/types.go: PciTopologyVersionAnnotation, PciTopologyVersionV3
PCI_TOPOLOGY_ANNOTATION = "kubevirt.io/pci-topology-version"
# pkg/virt-api/webhooks/validating-webhook/admitters/vms-admitter.go: validRunStrategies (+ WaitAsReceiver behind a gate)
RUN_STRATEGIES = ("Halted", "Manual", "Always", "RerunOnFailure", "Once")
RUNNING_DEPRECATED = "spec.running is deprecated, please use spec.runStrategy instead."


def _deny(webhook, causes):
    """kube-apiserver's answer to a webhook's ToAdmissionResponse (pkg/util/webhooks/webhooks.go): the causes'
    messages joined by ", " (at most 10), reason Invalid, details with the causes only."""
    shown = causes[:10]
    message = ", ".join(c["message"] for c in shown)
    if len(causes) > 10:
        message += ", and %d more validation errors" % (len(causes) - 10)
    return errors.ApiError(422, "Invalid", 'admission webhook "%s" denied the request: %s' % (webhook, message),
                           {"causes": shown})


def _cause(reason, field, message):
    return {"reason": reason, "message": message, "field": field}


def feature_gates(store):
    """developerConfiguration.featureGates of the KubeVirt CR (virt-config's ClusterConfig), if one exists."""
    for kv in store.items(KUBEVIRTS):
        dev = ((kv.get("spec") or {}).get("configuration") or {}).get("developerConfiguration") or {}
        return set(dev.get("featureGates") or [])
    return set()


def default_volume_disks(tspec):
    """pkg/util/util.go:SetDefaultVolumeDisk: a disk named after every volume that has no disk or filesystem."""
    devices = tspec.setdefault("domain", {}).setdefault("devices", {})
    named = {d.get("name") for d in devices.get("disks") or []} | {f.get("name") for f in devices.get("filesystems") or []}
    missing = [v.get("name") for v in tspec.get("volumes") or [] if v.get("name") not in named]
    if missing:
        devices["disks"] = list(devices.get("disks") or []) + [{"name": n} for n in missing]


def default_network_interface(tspec):
    """pkg/network/vmispec/defaults.go:SetDefaultNetworkInterface with virt-config's defaults (DefaultNetworkInterface
    "bridge", PermitBridgeInterfaceOnPodNetwork true): only when neither networks nor interfaces are given."""
    devices = tspec.setdefault("domain", {}).setdefault("devices", {})
    if devices.get("autoattachPodInterface") is False or tspec.get("networks") or devices.get("interfaces"):
        return
    devices["interfaces"] = [{"name": "default", "bridge": {}}]    # api/core/v1/defaults.go:DefaultBridgeNetworkInterface
    tspec["networks"] = [{"name": "default", "pod": {}}]            # api/core/v1/defaults.go:DefaultPodNetwork


def supports_pcie_hotplug(tspec):
    """pkg/defaults/defaults.go:SupportsPCIeHotplug."""
    if tspec.get("architecture", "") not in ("amd64", "arm64", ""):
        return False
    mtype = ((tspec.get("domain") or {}).get("machine") or {}).get("type")
    return mtype is None or "q35" in mtype or mtype.startswith("virt")


def _matcher_causes(spec, old_spec, what):
    """pkg/instancetype/webhooks/vm/mutator.go: validate{Instancetype,Preference}Matcher and validateMatcherUpdate."""
    matcher, causes = spec.get(what), []
    if not isinstance(matcher, dict):
        return causes
    old = (old_spec or {}).get(what)
    if isinstance(old, dict) and old.get("revisionName") and matcher != old and \
            old.get("name") != matcher.get("name") and old.get("revisionName") == matcher.get("revisionName"):
        causes.append(_cause("FieldValueInvalid", "spec.%s.revisionName" % what,
                             "the Matcher Name has been updated without updating the RevisionName"))
        return causes
    label = "InstancetypeMatcher" if what == "instancetype" else "PreferenceMatcher"
    if not matcher.get("name") and not matcher.get("inferFromVolume"):
        causes.append(_cause("FieldValueNotFound", "spec." + what,
                             "Either Name or InferFromVolume should be provided within the " + label))
    if matcher.get("inferFromVolume"):
        for key, text in (("name", "Name"), ("kind", "Kind")):
            if matcher.get(key):
                causes.append(_cause("FieldValueNotSupported", "spec.%s.%s" % (what, key),
                                     "%s already set, should be cleared before setting inferFromVolume" % text))
    policy = matcher.get("inferFromVolumeFailurePolicy")
    if policy is not None and policy not in ("Ignore", "Reject"):
        causes.append(_cause("FieldValueInvalid", "spec.%s.inferFromVolumeFailurePolicy" % what,
                             "Invalid value '%s' for InferFromVolumeFailurePolicy" % policy))
    return causes


def validate(vm, gates=frozenset()):
    """The checks of vms-admitter.go:VMsAdmitter.Admit the module's users hit most; raises a 422 naming the field.

    Like Admit, it checks a copy with SetDefaultVirtualMachineInstanceSpec applied (so a volume without a disk or a
    template without networks is fine). Order as in ValidateVirtualMachineSpec: template spec
    (network/admitter/validator.go:Validator.Validate, then vmi-create-admitter.go:validateBootOrder), then
    validateRunStrategy. Returns the warnings of Admit."""
    spec = vm.get("spec") or {}
    tspec = (spec.get("template") or {}).get("spec") or {}
    devices = (tspec.get("domain") or {}).get("devices") or {}
    interfaces = devices.get("interfaces") or []
    networks = tspec.get("networks") or []
    if not networks and not interfaces and devices.get("autoattachPodInterface") is not False:
        interfaces = networks = [{"name": "default"}]    # SetDefaultNetworkInterface on the copy
    causes = []
    iface_names = {i.get("name") for i in interfaces}
    for i, net in enumerate(networks):    # network/admitter/netiface.go:validateNetworksAssignedToInterfaces
        if net.get("name") not in iface_names:
            field = "spec.template.spec.networks[%d].name" % i
            causes.append(_cause("FieldValueRequired", field, "%s '%s' not found." % (field, net.get("name"))))
    net_names = {n.get("name") for n in networks}
    for i, iface in enumerate(interfaces):    # network/admitter/netiface.go:validateInterfacesAssignedToNetworks
        if iface.get("name") not in net_names:
            field = "spec.template.spec.domain.devices.interfaces[%d].name" % i
            causes.append(_cause("FieldValueInvalid", field, "%s '%s' not found." % (field, iface.get("name"))))
    volumes = {v.get("name") for v in tspec.get("volumes") or []}
    for i, disk in enumerate(devices.get("disks") or []):    # vmi-create-admitter.go:validateBootOrder
        if disk.get("name") in volumes:
            continue
        field = "spec.template.spec.domain.devices.disks[%d].name" % i
        if "cdrom" not in disk:
            # The message spells the path with "Name" (field.Child(..., "Name")), the field with "name".
            causes.append(_cause("FieldValueInvalid", field, "%s '%s' not found." % (field[:-4] + "Name", disk.get("name"))))
        elif "DeclarativeHotplugVolumes" not in gates:
            causes.append(_cause("FieldValueInvalid", field, "DeclarativeHotplugVolumes feature gate not enabled, "
                                                             "cannot define an empty CD-ROM disk"))
    # vms-admitter.go:validateRunStrategy
    running, strategy = spec.get("running"), spec.get("runStrategy")
    if running is not None and strategy is not None:
        causes.append(_cause("FieldValueInvalid", "spec.running", "Running and RunStrategy are mutually exclusive. "
                                                                  "Note that Running is deprecated, please use "
                                                                  "RunStrategy instead"))
    if running is None and strategy is None:
        causes.append(_cause("FieldValueInvalid", "spec.running", "RunStrategy must be specified"))
    if strategy is not None:
        if strategy == "WaitAsReceiver":
            if "DecentralizedLiveMigration" not in gates:
                causes.append(_cause("FieldValueInvalid", "spec.runStrategy",
                                     "Invalid RunStrategy (WaitAsReceiver), DecentralizedLiveMigration feature gate "
                                     "is not enabled in kubevirt resource"))
        elif strategy not in RUN_STRATEGIES:
            causes.append(_cause("FieldValueInvalid", "spec.runStrategy", "Invalid RunStrategy (%s)" % strategy))
    if causes:
        raise _deny("virtualmachine-validator.kubevirt.io", causes)
    # vms-admitter.go:VMsAdmitter.Admit: spec.running is accepted, with this warning (and left as it is).
    return [RUNNING_DEPRECATED] if running is not None else []


class KubeVirtWebhooks(Controller):
    name = "kubevirt-webhooks"
    watches = ()    # admission only; RestartRequired (set by a template change, cleared by a new VMI) is in virt.py

    def setup(self):
        self._macs = itertools.count(1)
        self.api.admission_hooks.append(self.admit)

    def _next_mac(self):
        n = next(self._macs)
        return "02:%02x:%02x:%02x:%02x:%02x" % (0x5a, (n >> 24) & 0xff, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff)

    # --- admission (called under the store lock by the API, for creates, updates, patches and applies) -------
    def admit(self, rtype, obj, old):
        if rtype.key == RESTORE:
            self.admit_restore(obj, old)
            return None
        if rtype.key == VMIM and old is None:
            self.admit_new_migration(obj)
            return None
        if rtype.key == VMI and old is None:
            self.mutate_new_vmi(obj)
            return None
        if rtype.key != VM:
            return None
        spec = obj.get("spec")
        if not isinstance(spec, dict) or obj["metadata"].get("deletionTimestamp"):
            return None     # vm-mutator.go / vms-admitter.go: a VM being deleted is allowed as it is
        old_spec = (old or {}).get("spec") or {}
        self.mutate_vm(obj, old)
        warnings = validate(obj, feature_gates(self.store))
        if old is not None and old_spec == spec:
            return warnings     # metadata-only write: no kubemacpool transaction
        tspec = spec["template"]["spec"]
        old_tspec = (old_spec.get("template") or {}).get("spec") or {}
        devices = tspec["domain"].setdefault("devices", {})
        old_macs = {i.get("name"): i.get("macAddress") for i in
                    ((old_tspec.get("domain") or {}).get("devices") or {}).get("interfaces") or []}
        for iface in devices.get("interfaces") or []:
            if not iface.get("macAddress"):
                iface["macAddress"] = old_macs.get(iface.get("name")) or self._next_mac()
        if old is None or old_spec != spec:
            stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            obj["metadata"].setdefault("annotations", {})[MAC_ANNOTATION] = stamp
        return warnings

    def mutate_vm(self, obj, old):
        """vm-mutator.go:VMsMutator.Mutate (instancetype matchers, firmware on create, SetVirtualMachineDefaults,
        PCI topology annotation on create). Nothing else: no default disks (those are added to the VMI)."""
        spec = obj["spec"]
        old_spec = (old or {}).get("spec")
        causes = _matcher_causes(spec, old_spec, "instancetype") + _matcher_causes(spec, old_spec, "preference")
        if causes:
            raise _deny("virtualmachines-mutator.kubevirt.io", causes)
        template = spec.setdefault("template", {})
        tspec = template.setdefault("spec", {})
        domain = tspec.setdefault("domain", {})
        if old is None:
            # vm-mutator.go:setFirmwareDefaultsIfEmpty: random UUID and serial, on create only (on update a
            # missing UUID is put back by virt-controller's firmware synchronizer, see virt.py).
            firmware = domain.setdefault("firmware", {})
            firmware["uuid"] = firmware.get("uuid") or str(uuid.uuid4())
            firmware["serial"] = firmware.get("serial") or str(uuid.uuid4())
        # pkg/defaults/defaults.go:SetVirtualMachineDefaults -> setDefaultArchitecture (ArchitectureConfiguration
        # .DefaultArchitecture, amd64 here), setVMDefaultMachineType (GetMachineType(amd64) = q35).
        tspec["architecture"] = tspec.get("architecture") or "amd64"
        machine = domain.setdefault("machine", {})
        machine["type"] = machine.get("type") or "q35"
        # The webhook's patch replaces /spec with the Go struct's JSON: DomainSpec.Devices (no omitempty) and
        # .Resources (a struct: omitempty does not drop it) are always there (api/core/v1/schema.go:DomainSpec).
        domain.setdefault("devices", {})
        domain.setdefault("resources", {})
        if old is None and supports_pcie_hotplug(tspec):
            # vm-mutator.go:Mutate -> vmi-mutator.go:setDefaultPciTopologyVersion on the template metadata.
            tmeta = template.setdefault("metadata", {})
            tmeta.setdefault("annotations", {}).setdefault(PCI_TOPOLOGY_ANNOTATION, "v3")

    def mutate_new_vmi(self, vmi):
        """vmi-mutator.go:VMIsMutator.Mutate on create -> ApplyNewVMIMutations -> defaults.go:
        SetDefaultVirtualMachineInstance, the parts a module can see: SetDefaultVirtualMachineInstanceSpec
        (architecture, machine type, SetDefaultNetworkInterface, util.SetDefaultVolumeDisk), then
        api/core/v1/defaults.go:setDefaults_Disk (SetDefaults_DiskDevice: `disk: {}` when no disk/cdrom/lun), and
        the PCI topology annotation."""
        spec = vmi.setdefault("spec", {})
        domain = spec.setdefault("domain", {})
        spec["architecture"] = spec.get("architecture") or "amd64"
        machine = domain.setdefault("machine", {})
        machine["type"] = machine.get("type") or "q35"
        default_network_interface(spec)
        default_volume_disks(spec)
        for disk in domain["devices"].get("disks") or []:
            if "disk" not in disk and "cdrom" not in disk and "lun" not in disk:
                disk["disk"] = {}
        if supports_pcie_hotplug(spec):
            vmi.setdefault("metadata", {}).setdefault("annotations", {}).setdefault(PCI_TOPOLOGY_ANNOTATION, "v3")

    # --- migrations ------------------------------------------------------------------------------------------
    def admit_new_migration(self, mig):
        """virt-api on a VirtualMachineInstanceMigration create: the mutator
        (mutators/migration-create-mutator.go: addMigrationSelectorLabel, addMigrationFinalizer), then the validator
        (admitters/migration-create-admitter.go:MigrationCreateAdmitter.Admit): the VMI exists, is not final, is
        migratable (isMigratable: its LiveMigratable condition is not False) and has no migration in flight
        (ensureNoMigrationConflict, by the selector label). Errors are ToAdmissionResponseError's: 400, the message."""
        meta = mig.setdefault("metadata", {})
        ns = meta.get("namespace")
        vmi_name = (mig.get("spec") or {}).get("vmiName") or ""
        meta.setdefault("labels", {})[MIGRATION_SELECTOR_LABEL] = vmi_name
        if MIGRATION_FINALIZER not in (meta.get("finalizers") or []):
            meta["finalizers"] = list(meta.get("finalizers") or []) + [MIGRATION_FINALIZER]
        vmi = self.store.get(VMI, ns, vmi_name)
        if vmi is None:
            raise _migration_denied('the VMI "%s/%s" does not exist' % (ns, vmi_name))
        if (vmi.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            raise _migration_denied("Cannot migrate VMI in finalized state.")
        for cond in (vmi.get("status") or {}).get("conditions") or []:
            if cond.get("type") == "LiveMigratable" and cond.get("status") == "False":
                raise _migration_denied("Cannot migrate VMI, Reason: %s, Message: %s"
                                        % (cond.get("reason", ""), cond.get("message", "")))
        for other in self.store.items(VMIM, ns):
            if (other["metadata"].get("labels") or {}).get(MIGRATION_SELECTOR_LABEL) != vmi_name:
                continue
            if (other.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            raise _migration_denied("in-flight migration detected. Active migration job (%s) is currently already in "
                                    "progress for VMI %s." % (other["metadata"]["uid"], vmi_name))

    # --- restores --------------------------------------------------------------------------------------------
    def admit_restore(self, restore, old):
        """pkg/storage/admitters/vmrestore.go:VMRestoreAdmitter.Admit, the parts a module meets: on create the target's
        apiGroup and kind, and no other restore of the same target that is not complete (a failed one counts too:
        ``Status.Complete`` is not true); on update an unchanged spec. ToAdmissionResponse: 422 with the causes."""
        spec = restore.get("spec") or {}
        target = spec.get("target") or {}
        if old is not None:
            if (old.get("spec") or {}) != spec:
                raise _deny(RESTORE_VALIDATOR, [_cause("FieldValueInvalid", "spec", "spec in immutable after creation")])
            return
        causes = []
        if not target.get("apiGroup"):
            causes.append(_cause("FieldValueInvalid", "spec.target.apiGroup", "missing apiGroup"))
        elif target.get("apiGroup") != "kubevirt.io":
            causes.append(_cause("FieldValueInvalid", "spec.target.apiGroup", "invalid apiGroup"))
        elif target.get("kind") != "VirtualMachine":
            causes.append(_cause("FieldValueInvalid", "spec.target.kind", "invalid kind"))
        # Any restore, even one of the same name (the webhook runs before the API server's AlreadyExists check).
        for other in self.store.items(RESTORE, (restore.get("metadata") or {}).get("namespace")):
            if (other.get("spec") or {}).get("target") == target and (other.get("status") or {}).get("complete") is not True:
                causes.append(_cause("FieldValueInvalid", "spec.target",
                                     'VirtualMachineRestore "%s" in progress' % other["metadata"]["name"]))
        if causes:
            raise _deny(RESTORE_VALIDATOR, causes)


def _migration_denied(message):
    """kube-apiserver's answer to a webhook's ToAdmissionResponseError (code 400, the error as the message)."""
    return errors.ApiError(400, "BadRequest", 'admission webhook "%s" denied the request: %s'
                           % (MIGRATION_VALIDATOR, message))
