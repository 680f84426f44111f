"""Simulated virt-controller/virt-handler and the virt-api subresources (start/stop/restart/migrate/pause).

VM: runStrategy (or legacy spec.running) decides whether a VMI should exist; VM status mirrors the VMI
(printableStatus, ready, created, Ready condition). VMI: Pending -> Scheduling -> Scheduled -> Running, one
step per timer tick, then interfaces with IPs, node name, guest OS info; deletion goes through Succeeded.
State changes are timer-driven and deterministic (node round-robin, IPs and MACs from counters).
Like KubeVirt v1.9.0's virt-controller it first stamps the observed API version annotations on every VM and VMI it
syncs, persists a legacy firmware UUID into a VM template without one, and builds the VMI with a disk per volume.
RestartRequired as virt-controller computes it (vm.go): starting a VMI records the VM spec it starts from in a
ControllerRevision ``revision-start-vm-<vm uid>-<generation>`` named by the VMI's ``status.virtualMachineRevisionName``;
every VM status sync with an active VMI compares the VM's template spec with that record and sets or removes
``RestartRequired`` in the same status write as ``observedGeneration`` (no live updates are simulated: any template
spec change needs a restart). A new VMI clears it.
The VM admission checks (runStrategy, running) are in webhooks.py.
"""
import functools
import itertools
import uuid

from .. import errors
from ..api import Options, now
from . import Controller
from ..util import clone

VM = ("kubevirt.io", "virtualmachines")
VMI = ("kubevirt.io", "virtualmachineinstances")
VMIM = ("kubevirt.io", "virtualmachineinstancemigrations")
NODES = ("", "nodes")
CONTROLLER_REVISIONS = ("apps", "controllerrevisions")
FINALIZER = "kubevirt.io/virtualMachineControllerFinalize"
# staging/src/kubevirt.io/api/core/v1/types.go: ControllerAPI{Latest,Storage}VersionObservedAnnotation; the values
# are register.go's ApiLatestVersion and ApiStorageVersion ("v1" both in v1.9.0).
OBSERVED_API_VERSIONS = {"kubevirt.io/latest-observed-api-version": "v1", "kubevirt.io/storage-observed-api-version": "v1"}
# pkg/virt-controller/watch/vm/firmware.go: magicUUID, the namespace of CalculateLegacyUUID
LEGACY_FIRMWARE_NS = uuid.UUID("6a1a24a1-4061-4607-8bf4-a3963d0c5895")
# pkg/virt-controller/watch/vm/vm.go:syncRestartRequired, the message of setRestartRequired for a template change
RESTART_MESSAGE = "a non-live-updatable field was changed in the template spec"
NEXT_PHASE = {"": "Pending", "Pending": "Scheduling", "Scheduling": "Scheduled", "Scheduled": "Running"}
GUESTS = {
    "fedora": {"id": "fedora", "name": "Fedora Linux", "prettyName": "Fedora Linux 41 (Cloud Edition)",
               "version": "41 (Cloud Edition)", "versionId": "41", "kernelRelease": "6.11.4-301.fc41.x86_64"},
    "cirros": {"id": "cirros", "name": "CirrOS", "prettyName": "CirrOS 0.6.2", "version": "0.6.2",
               "versionId": "0.6.2", "kernelRelease": "5.15.0-71-generic"},
    "alpine": {"id": "alpine", "name": "Alpine Linux", "prettyName": "Alpine Linux v3.20", "version": "3.20.3",
               "versionId": "3.20.3", "kernelRelease": "6.6.58-0-virt"},
    "ubuntu": {"id": "ubuntu", "name": "Ubuntu", "prettyName": "Ubuntu 24.04.1 LTS", "version": "24.04.1 LTS "
               "(Noble Numbat)", "versionId": "24.04", "kernelRelease": "6.8.0-48-generic"},
    "debian": {"id": "debian", "name": "Debian GNU/Linux", "prettyName": "Debian GNU/Linux 13 (trixie)",
               "version": "13 (trixie)", "versionId": "13", "kernelRelease": "6.12.9-amd64"},
}


def run_strategy(vm):
    spec = vm.get("spec") or {}
    if spec.get("runStrategy"):
        return spec["runStrategy"]
    return "Always" if spec.get("running") else "Halted"


def legacy_firmware_uuid(name):
    """pkg/virt-controller/watch/vm/firmware.go:CalculateLegacyUUID: SHA1 (v5) UUID of the VM name."""
    return str(uuid.uuid5(LEGACY_FIRMWARE_NS, name))


def vm_revision_name(vm_uid, generation):
    """pkg/virt-controller/watch/vm/vm.go:getVMRevisionName: ``revision-start-vm-<vm uid>-<generation>``."""
    return "revision-start-vm-%s-%d" % (vm_uid, generation)


def _cond(ctype, status, reason="", message=""):
    c = {"type": ctype, "status": status, "lastProbeTime": None, "lastTransitionTime": now()}
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    return c


def _set_cond(conds, new):
    for i, c in enumerate(conds):
        if c.get("type") == new["type"]:
            if c.get("status") == new["status"] and c.get("reason") == new.get("reason"):
                return
            conds[i] = new
            return
    conds.append(new)


def _virt_not_found(resource, name):
    """virt-api reports missing objects with the singular resource (v1.Resource("virtualmachine"))."""
    return errors.ApiError(404, "NotFound", '%s.kubevirt.io "%s" not found' % (resource, name),
                           {"name": name, "group": "kubevirt.io", "kind": resource})


def _vm_conflict(name, message):
    return errors.ApiError(409, "Conflict", 'Operation cannot be fulfilled on virtualmachine.kubevirt.io "%s": %s'
                           % (name, message), {"name": name, "group": "kubevirt.io", "kind": "virtualmachine"})


def _vmi_conflict(name, message):
    return errors.ApiError(409, "Conflict", 'Operation cannot be fulfilled on virtualmachineinstance.kubevirt.io '
                           '"%s": %s' % (name, message), {"name": name, "group": "kubevirt.io",
                                                          "kind": "virtualmachineinstance"})


class VirtController(Controller):
    name = "virt-controller"
    watches = (VM, VMI, NODES, VMIM)

    def setup(self):
        self._ip = itertools.count(10)
        self._node_rr = itertools.count(0)
        self._pending = set()
        self._create_failed = set()
        handlers = self.app.subresource_handlers
        handlers[("virtualmachines", "start")] = self.sub_start
        handlers[("virtualmachines", "stop")] = self.sub_stop
        handlers[("virtualmachines", "restart")] = self.sub_restart
        handlers[("virtualmachines", "migrate")] = self.sub_migrate
        handlers[("virtualmachineinstances", "pause")] = self.sub_pause
        handlers[("virtualmachineinstances", "unpause")] = self.sub_unpause
        handlers[("virtualmachineinstances", "guestosinfo")] = self.sub_guestosinfo
        # portforward is a WebSocket (server.py `_portforward`): its handler dials the guest (portforward.py).
        from ..portforward import dial
        handlers[("virtualmachineinstances", "portforward")] = functools.partial(dial, self.app)
        handlers[("virtualmachines", "portforward")] = functools.partial(dial, self.app, via_vm=True)

    def _rt(self, key):
        return self.app.registry.get(*key)

    def _opts(self, manager="virt-controller"):
        return Options(validation="Ignore", manager=manager)

    # --- event dispatch ----------------------------------------------------------------------------------
    def shard_key(self, rkey, ns, obj):
        """A VM and its VMI share a name, so one worker handles both; a migration goes to the worker of its VMI,
        which it writes."""
        if rkey == VMIM:
            return ns, (obj.get("spec") or {}).get("vmiName") or obj["metadata"]["name"]
        return ns, obj["metadata"]["name"]

    def reconcile(self, rkey, ns, name, etype, obj):
        if rkey == VMIM:
            if etype != "DELETED":
                self.sync_migration(ns, name)
            return
        if rkey == VM:
            self.sync_vm(ns, name)
        elif rkey == VMI:
            self.sync_vmi(ns, name)
            if self.store.get(VM, ns, name) is not None:
                self.sync_vm(ns, name)

    def _later(self, key, fn, *args):
        """Schedule one pending step per key (ns, name, what)."""
        if key in self._pending:
            return
        self._pending.add(key)

        def run():
            self._pending.discard(key)
            fn(*args)
        self.after(self.step, run)

    # --- VM ----------------------------------------------------------------------------------------------
    def sync_vm(self, ns, name):
        vm = self.store.get(VM, ns, name)
        if vm is None:
            return
        # pkg/virt-controller/watch/vm/vm.go:Controller.execute: "this must be first step in execution" -- if
        # controller.ObservedLatestApiVersionAnnotation is false, SetLatestApiVersionAnnotation and Update the VM,
        # then return (the update's event syncs again). Deleting VMs too: execute checks before anything else.
        if self._observe_api_version(VM, vm):
            return
        if vm["metadata"].get("deletionTimestamp"):
            return
        if self._sync_firmware(vm):
            return
        strategy = run_strategy(vm)
        vmi = self.store.get(VMI, ns, name)
        status = vm.get("status") or {}
        requests = status.get("stateChangeRequests") or []
        if requests:
            self._handle_state_requests(vm, vmi, requests)
            return
        want = strategy in ("Always", "RerunOnFailure") or (strategy == "Once" and not status.get("created"))
        if strategy == "RerunOnFailure" and vmi is not None and (vmi.get("status") or {}).get("phase") == "Succeeded":
            want = False
        if strategy in ("Manual", "Once"):
            want = vmi is not None and not vmi["metadata"].get("deletionTimestamp") or (
                strategy == "Once" and not status.get("created") and vmi is None)
        if want and vmi is None:
            # The status write below records the new VMI (created, RestartRequired cleared): one status update per
            # sync, as vm.go's updateStatus does.
            self._create_vmi(vm, write_status=False)
        elif not want and vmi is not None and strategy in ("Halted",) and not vmi["metadata"].get("deletionTimestamp"):
            self._delete_vmi(ns, name)
        elif want and vmi is not None and vmi["metadata"].get("deletionTimestamp") is None and \
                (vmi.get("status") or {}).get("phase") in ("Succeeded", "Failed") and strategy == "Always":
            self._delete_vmi(ns, name)
        self._update_vm_status(ns, name)

    def _observe_api_version(self, key, obj):
        """pkg/controller/controller.go:ObservedLatestApiVersionAnnotation / SetLatestApiVersionAnnotation, written
        with a plain Update (PUT) of the whole object, as vm.go and vmi.go execute() do: admission runs, the
        resourceVersion moves, the generation does not (no spec change). True when it wrote (or tried)."""
        annotations = obj["metadata"].get("annotations") or {}
        if annotations.get("kubevirt.io/latest-observed-api-version") == "v1":
            return False
        body = clone(obj)
        body["metadata"].setdefault("annotations", {}).update(OBSERVED_API_VERSIONS)
        try:
            self.api.update(self._rt(key), "v1", obj["metadata"]["namespace"], obj["metadata"]["name"], body,
                            self._opts())
        except errors.ApiError:
            pass    # e.g. a conflict with a newer write: that write's event brings the VM back here
        return True

    def _sync_firmware(self, vm):
        """pkg/virt-controller/watch/vm/firmware.go:FirmwareController.Sync: a VM template without a firmware UUID
        (the VM mutator only sets one on create) gets CalculateLegacyUUID(name) through a JSON patch (test + add of
        /spec/template/spec/domain/firmware). True when it patched."""
        tspec = ((vm.get("spec") or {}).get("template") or {}).get("spec") or {}
        firmware = (tspec.get("domain") or {}).get("firmware")
        if (firmware or {}).get("uuid"):
            return False
        new = dict(firmware or {}, uuid=legacy_firmware_uuid(vm["metadata"]["name"]))
        ops = [{"op": "add", "path": "/spec/template/spec/domain/firmware", "value": new}]
        if firmware is not None:
            ops.insert(0, {"op": "test", "path": "/spec/template/spec/domain/firmware", "value": firmware})
        if "domain" not in tspec:   # only a hand-written stored object lacks it (the mutator always sets it)
            return False
        try:
            self.api.patch(self._rt(VM), "v1", vm["metadata"]["namespace"], vm["metadata"]["name"],
                           "application/json-patch+json", ops, self._opts())
        except errors.ApiError:
            pass
        return True

    def _handle_state_requests(self, vm, vmi, requests):
        ns, name = vm["metadata"]["namespace"], vm["metadata"]["name"]
        first = requests[0]
        if first.get("action") == "Stop":
            if vmi is not None:
                if not vmi["metadata"].get("deletionTimestamp"):
                    self._delete_vmi(ns, name)
                self._update_vm_status(ns, name)
                return
        elif first.get("action") == "Start":
            if vmi is not None:
                if vmi["metadata"].get("deletionTimestamp"):
                    return   # wait for the old VMI to go away first
            else:
                self._create_vmi(vm)

        def pop(o):
            reqs = (o.get("status") or {}).get("stateChangeRequests") or []
            if not reqs:
                return False
            o["status"]["stateChangeRequests"] = reqs[1:] or None
            if not reqs[1:]:
                del o["status"]["stateChangeRequests"]
        self.api.write_status(self._rt(VM), ns, name, pop, "virt-controller")

    def _create_vmi(self, vm, write_status=True):
        meta = vm["metadata"]
        tmpl = (vm.get("spec") or {}).get("template") or {}
        tmeta = tmpl.get("metadata") or {}
        labels = dict(tmeta.get("labels") or {})
        vmi = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
               "metadata": {"name": meta["name"], "namespace": meta["namespace"], "labels": labels,
                            "annotations": dict(tmeta.get("annotations") or {}),
                            "finalizers": [FINALIZER],
                            "ownerReferences": [{"apiVersion": vm["apiVersion"], "kind": "VirtualMachine",
                                                 "name": meta["name"], "uid": meta["uid"], "controller": True,
                                                 "blockOwnerDeletion": True}]},
               "spec": clone(tmpl.get("spec") or {})}
        # pkg/virt-controller/watch/vm/vm.go:SetupVMIFromVM: setupStableFirmwareUUID (the template's UUID, else
        # CalculateLegacyUUID) and util.SetDefaultVolumeDisk (a bare {name} disk per volume without one; the VMI
        # mutating webhook then gives it `disk: {}`, see webhooks.py:mutate_new_vmi).
        domain = vmi["spec"].setdefault("domain", {})
        firmware = domain.setdefault("firmware", {})
        firmware["uuid"] = firmware.get("uuid") or legacy_firmware_uuid(meta["name"])
        devices = domain.setdefault("devices", {})
        named = {d.get("name") for d in devices.get("disks") or []} | {
            f.get("name") for f in devices.get("filesystems") or []}
        missing = [v.get("name") for v in vmi["spec"].get("volumes") or [] if v.get("name") not in named]
        if missing:
            devices["disks"] = list(devices.get("disks") or []) + [{"name": n} for n in missing]
        if not vmi["metadata"]["annotations"]:
            del vmi["metadata"]["annotations"]
        # vm.go:startVMI: createVMRevision, then vmi.Status.VirtualMachineRevisionName (the VMI kind has no /status
        # subresource: a create keeps its status).
        revision = self._create_vm_revision(vm)
        if revision is None:
            return
        vmi["status"] = {"virtualMachineRevisionName": revision}
        try:
            self.api.create(self._rt(VMI), "v1", meta["namespace"], vmi, self._opts())
        except errors.ApiError as exc:
            if exc.reason != "AlreadyExists":
                # Refused (e.g. by an admission hook while DataVolumes are not ready): no status write, or
                # the VM would flip-flop and wake this controller forever; the next VM event retries.
                if meta["uid"] not in self._create_failed:
                    self._create_failed.add(meta["uid"])
                    print("kubeapi: virt-controller could not create VMI %s/%s: %s" % (
                        meta["namespace"], meta["name"], exc.message), flush=True)
                return
        if not write_status:
            return

        def created(o):
            st = o.setdefault("status", {})
            st["created"] = True
            # vm.go:startVMI -> cleanupRestartRequired: the new VMI runs the current template.
            conds = st.get("conditions") or []
            if any(c.get("type") == "RestartRequired" for c in conds):
                st["conditions"] = [c for c in conds if c.get("type") != "RestartRequired"]
        self.api.write_status(self._rt(VM), meta["namespace"], meta["name"], created, "virt-controller")

    def _create_vm_revision(self, vm):
        """vm.go:createVMRevision: the ControllerRevision a VMI is started from, ``revision-start-vm-<uid>-<gen>``
        (data ``{"spec": <the VM's spec>}``, revision = the VM's generation, controller ownerReference to the VM);
        deleteOlderVMRevision first deletes the VM's revisions of other generations and keeps (reuses) the one of
        this generation. Returns its name, None when it could not be written (no VMI is created then)."""
        meta = vm["metadata"]
        ns, gen = meta["namespace"], meta.get("generation", 1)
        name = vm_revision_name(meta["uid"], gen)
        prefix = "revision-start-vm-%s-" % meta["uid"]
        rt = self._rt(CONTROLLER_REVISIONS)
        exists = False
        try:
            for cr in self.store.items(CONTROLLER_REVISIONS, ns):
                if not cr["metadata"]["name"].startswith(prefix):
                    continue
                if cr.get("revision") == gen:
                    exists = True
                    continue
                try:
                    self.api.delete(rt, "v1", ns, cr["metadata"]["name"], self._opts())
                except errors.ApiError as exc:
                    if exc.code != 404:
                        raise
            if not exists:
                # KubeVirt Creates it; here a server-side apply creates it, so that the API server serializes
                # `data` (a RawExtension, stored as sent) itself: compact with sorted keys, as KubeVirt's
                # json.Marshal of a map does. A Create would keep this client's json.dumps bytes, and as `data` is
                # immutable, kube-controller-manager's garbage collector could then never patch the revision to
                # orphan it (its patch re-serializes `data`: "field is immutable").
                self.api.apply(rt, "v1", ns, name, {
                    "apiVersion": "apps/v1", "kind": "ControllerRevision",
                    "metadata": {"name": name, "namespace": ns, "ownerReferences": [{
                        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
                        "name": meta["name"], "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}]},
                    "data": {"spec": clone(vm.get("spec") or {})}, "revision": gen}, self._opts())
        except errors.ApiError as exc:
            if exc.reason != "AlreadyExists":
                if meta["uid"] not in self._create_failed:
                    self._create_failed.add(meta["uid"])
                    print("kubeapi: virt-controller could not write ControllerRevision %s/%s: %s" % (
                        ns, name, exc.message), flush=True)
                return None
        return name

    def _started_template_spec(self, vmi):
        """The template spec the VMI was started from: its ControllerRevision's ``data.spec.template.spec``
        (vm.go:sync -> getLastVMRevisionSpec); None without a record (then RestartRequired is left as it is)."""
        name = ((vmi or {}).get("status") or {}).get("virtualMachineRevisionName")
        if not name:
            return None
        cr = self.store.get(CONTROLLER_REVISIONS, vmi["metadata"]["namespace"], name)
        if cr is None:
            return None
        return ((((cr.get("data") or {}).get("spec") or {}).get("template") or {}).get("spec")) or {}

    @staticmethod
    def _sync_restart_required(conds, vm, vmi, started):
        """vm.go:syncRestartRequired without live updates (no LiveUpdate rollout strategy, no hotplug): the VM's
        template spec against the one the VMI started from, a firmware UUID change neutralized when the VMI already
        runs with the VM's UUID (the firmware synchronizer persisting it). Sets ``RestartRequired=True`` when they
        differ, removes the condition when they do not."""
        current = ((vm.get("spec") or {}).get("template") or {}).get("spec") or {}
        last = clone(started)
        vmi_uuid = ((((vmi.get("spec") or {}).get("domain") or {}).get("firmware")) or {}).get("uuid")
        vm_uuid = (((current.get("domain") or {}).get("firmware")) or {}).get("uuid")
        if vmi_uuid and vmi_uuid == vm_uuid and isinstance(last.get("domain"), dict):
            last["domain"]["firmware"] = dict(last["domain"].get("firmware") or {}, uuid=vm_uuid)
        if last != current:
            _set_cond(conds, _cond("RestartRequired", "True", message=RESTART_MESSAGE))
        else:
            conds[:] = [c for c in conds if c.get("type") != "RestartRequired"]

    def _delete_vmi(self, ns, name):
        try:
            self.api.delete(self._rt(VMI), "v1", ns, name, self._opts())
        except errors.ApiError:
            pass

    def _update_vm_status(self, ns, name):
        vm = self.store.get(VM, ns, name)
        if vm is None:
            return
        vmi = self.store.get(VMI, ns, name)
        strategy = run_strategy(vm)
        started = self._started_template_spec(vmi)

        def mutate(o):
            st = o.setdefault("status", {})
            before = clone(st)
            conds = st.setdefault("conditions", [])
            vst = (vmi or {}).get("status") or {}
            phase = vst.get("phase", "")
            if vmi is None:
                st["printableStatus"] = "Stopped"
                st["ready"] = False
                st["created"] = False
                _set_cond(conds, _cond("Ready", "False", "VMINotExists", "VMI does not exist"))
                conds[:] = [c for c in conds if c["type"] in ("Ready", "Failure", "RestartRequired")]
            else:
                st["created"] = True
                deleting = bool(vmi["metadata"].get("deletionTimestamp"))
                paused = any(c.get("type") == "Paused" and c.get("status") == "True"
                             for c in vst.get("conditions") or [])
                if deleting or (strategy == "Halted" and phase != "Succeeded"):
                    st["printableStatus"] = "Stopping"
                elif phase == "Running":
                    st["printableStatus"] = "Paused" if paused else "Running"
                elif phase in ("Succeeded", "Failed"):
                    st["printableStatus"] = "Stopped" if phase == "Succeeded" else "CrashLoopBackOff"
                elif phase in ("", "Pending", "Scheduling", "Scheduled"):
                    st["printableStatus"] = "Starting" if phase else "Provisioning"
                ready = phase == "Running" and not deleting and any(
                    c.get("type") == "Ready" and c.get("status") == "True" for c in vst.get("conditions") or [])
                st["ready"] = ready
                if ready:
                    _set_cond(conds, _cond("Ready", "True"))
                else:
                    _set_cond(conds, _cond("Ready", "False", "GuestNotRunning" if phase else "PodNotExists",
                                           "Guest VM is not reported as running"))
                for c in vst.get("conditions") or []:
                    if c.get("type") not in ("Ready", "Failure", "RestartRequired"):
                        _set_cond(conds, clone(c))
                if not paused:
                    conds[:] = [c for c in conds if c["type"] != "Paused"]
                # vm.go:sync -> syncRestartRequired, written with observedGeneration by updateStatus. Only for an
                # active VMI: a stopping or finished one is about to be replaced (the next VMI clears it).
                if started is not None and not deleting and phase not in ("Succeeded", "Failed"):
                    self._sync_restart_required(conds, o, vmi, started)
            st["runStrategy"] = strategy
            gen = o["metadata"].get("generation", 1)
            st["desiredGeneration"] = gen
            st["observedGeneration"] = gen
            if st == before:
                return False
        self.api.write_status(self._rt(VM), ns, name, mutate, "virt-controller")

    # --- VMI ---------------------------------------------------------------------------------------------
    def sync_vmi(self, ns, name):
        vmi = self.store.get(VMI, ns, name)
        if vmi is None:
            return
        # pkg/virt-controller/watch/vmi/vmi.go:Controller.execute does the same first step as the VM controller.
        if self._observe_api_version(VMI, vmi):
            return
        uid = vmi["metadata"]["uid"]
        phase = (vmi.get("status") or {}).get("phase", "")
        if vmi["metadata"].get("deletionTimestamp"):
            if phase in ("Succeeded", "Failed"):
                self._later((ns, name, "final"), self._finalize, ns, name, uid)
            else:
                self._later((ns, name, "stop"), self._set_phase, ns, name, uid, "Succeeded")
            return
        nxt = NEXT_PHASE.get(phase)
        if nxt == "Pending":
            self._set_phase(ns, name, uid, "Pending")
        elif nxt:
            self._later((ns, name, nxt), self._set_phase, ns, name, uid, nxt)

    def _pick_node(self, vmi):
        nodes = [n for n in self.store.items(NODES) if any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (n.get("status") or {}).get("conditions") or [])
            and not (n.get("spec") or {}).get("unschedulable")]
        if getattr(self.app, "realguests", None) is not None:   # real guests run on the 127.0.0.1 node only
            nodes = self.app.realguests.filter_nodes(vmi, nodes)
        selector = (vmi.get("spec") or {}).get("nodeSelector") or {}
        nodes = [n for n in nodes if all((n["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())]
        if not nodes:
            return None
        return nodes[next(self._node_rr) % len(nodes)]

    def _set_phase(self, ns, name, uid, phase):
        vmi = self.store.get(VMI, ns, name)
        if vmi is None or vmi["metadata"]["uid"] != uid:
            return
        extra = {}
        if phase == "Scheduled":
            node = self._pick_node(vmi)
            if node is None:
                def unschedulable(o):
                    _set_cond(o.setdefault("status", {}).setdefault("conditions", []), _cond(
                        "PodScheduled", "False", "Unschedulable", "0/%d nodes are available" % len(
                            self.store.items(NODES))))
                self.api.write_status(self._rt(VMI), ns, name, unschedulable, "virt-controller")
                self._later((ns, name, "Scheduled"), self._set_phase, ns, name, uid, "Scheduled")
                return
            extra["node"] = node["metadata"]["name"]
        real = None
        if phase == "Running" and getattr(self.app, "realguests", None) is not None and \
                self.app.realguests.handles(vmi):
            real = self.app.realguests.launch(vmi)   # boots QEMU; returns the status it adds (realguest.py)
        if phase == "Running":
            n = next(self._ip)
            extra["ip"] = "10.244.%d.%d" % (n // 250, n % 250 + 2)
            extra["mac"] = "02:00:00:%02x:%02x:%02x" % ((n >> 16) & 255, (n >> 8) & 255, n & 255)

        def mutate(o):
            st = o.setdefault("status", {})
            st["phase"] = phase
            st.setdefault("phaseTransitionTimestamps", []).append({"phase": phase,
                                                                   "phaseTransitionTimestamp": now()})
            conds = st.setdefault("conditions", [])
            if phase == "Pending":
                if FINALIZER not in (o["metadata"].get("finalizers") or []):
                    o["metadata"].setdefault("finalizers", []).append(FINALIZER)
                st.setdefault("guestOSInfo", {})
                st["qosClass"] = "Burstable"
            elif phase == "Scheduling":
                _set_cond(conds, _cond("Ready", "False", "GuestNotRunning", "Guest VM is not reported as running"))
            elif phase == "Scheduled":
                st["nodeName"] = extra["node"]
                o["metadata"].setdefault("labels", {})["kubevirt.io/nodeName"] = extra["node"]
                st["activePods"] = {o["metadata"]["uid"][:8] + "-pod": extra["node"]}
                conds[:] = [c for c in conds if c.get("type") != "PodScheduled"]
            elif phase == "Running":
                st["interfaces"] = self._interfaces(o, extra["ip"], extra["mac"])
                st["guestOSInfo"] = self._guest_os(o)
                st["launcherContainerImageVersion"] = "quay.io/kubevirt/virt-launcher:v1.9.0"
                st["migrationMethod"] = "BlockMigration"
                st["migrationTransport"] = "Unix"
                _set_cond(conds, _cond("Ready", "True"))
                _set_cond(conds, _cond("LiveMigratable", "True"))
                _set_cond(conds, _cond("AgentConnected", "True"))
                if (o.get("spec") or {}).get("startStrategy") == "Paused":
                    _set_cond(conds, _cond("Paused", "True", "PausedStartStrategy",
                                           "VMI was started in paused state"))
            elif phase == "Succeeded":
                _set_cond(conds, _cond("Ready", "False", "PodTerminating", "virt-launcher pod is terminating"))
                conds[:] = [c for c in conds if c.get("type") not in ("AgentConnected", "Paused")]
            if real is not None:
                real(o)
        self.api.write_status(self._rt(VMI), ns, name, mutate, "virt-handler")

    def _interfaces(self, vmi, ip, mac):
        devices = (((vmi.get("spec") or {}).get("domain") or {}).get("devices") or {})
        ifaces = devices.get("interfaces")
        networks = (vmi.get("spec") or {}).get("networks")
        if ifaces is None and networks is None:
            ifaces = [{"name": "default"}]
        ifaces = ifaces or []
        out = []
        for i, iface in enumerate(ifaces):
            entry = {"name": iface.get("name"), "interfaceName": "eth%d" % i,
                     "mac": iface.get("macAddress") or mac[:-2] + "%02x" % ((int(mac[-2:], 16) + i * 16) % 256),
                     "infoSource": "domain, guest-agent", "queueCount": 1, "linkState": "up"}
            if i == 0:
                entry["ipAddress"] = ip
                entry["ipAddresses"] = [ip]
                entry["podInterfaceName"] = "eth0"
            out.append(entry)
        return out

    def _guest_os(self, vmi):
        text = str((vmi.get("spec") or {}).get("volumes") or "").lower() + vmi["metadata"]["name"].lower()
        for key in ("fedora", "cirros", "alpine", "ubuntu", "debian"):
            if key in text:
                return dict(GUESTS[key])
        return dict(GUESTS["fedora"])

    def _finalize(self, ns, name, uid):
        vmi = self.store.get(VMI, ns, name)
        if vmi is None or vmi["metadata"]["uid"] != uid:
            return

        def drop(o):
            o["metadata"]["finalizers"] = [f for f in o["metadata"].get("finalizers") or [] if f != FINALIZER]
        self.api.write_status(self._rt(VMI), ns, name, drop, "virt-controller")

    # --- migrations ----------------------------------------------------------------------------------------
    MIGRATION_PHASES = ["Pending", "Scheduling", "Scheduled", "PreparingTarget", "TargetReady", "Running",
                        "Succeeded"]

    def sync_migration(self, ns, name):
        mig = self.store.get(VMIM, ns, name)
        if mig is None or mig["metadata"].get("deletionTimestamp"):
            return
        phase = (mig.get("status") or {}).get("phase", "")
        if phase in ("Succeeded", "Failed"):
            return
        vmi = self.store.get(VMI, ns, (mig.get("spec") or {}).get("vmiName", ""))
        if vmi is None or (vmi.get("status") or {}).get("phase") != "Running":
            self._set_migration_phase(ns, name, mig["metadata"]["uid"], "Failed")
            return
        nxt = self.MIGRATION_PHASES[self.MIGRATION_PHASES.index(phase) + 1] if phase else "Pending"
        if nxt == "Pending":
            self._set_migration_phase(ns, name, mig["metadata"]["uid"], nxt)
        else:
            self._later((ns, name, "vmim-" + nxt), self._set_migration_phase, ns, name, mig["metadata"]["uid"], nxt)

    def _set_migration_phase(self, ns, name, uid, phase):
        mig = self.store.get(VMIM, ns, name)
        if mig is None or mig["metadata"]["uid"] != uid:
            return
        vmi_name = (mig.get("spec") or {}).get("vmiName", "")
        vmi = self.store.get(VMI, ns, vmi_name)
        source = ((vmi or {}).get("status") or {}).get("nodeName")
        target = None
        if phase == "Succeeded" and vmi is not None:
            candidates = [n for n in self.store.items(NODES) if n["metadata"]["name"] != source and not
                          (n.get("spec") or {}).get("unschedulable")]
            if not candidates:
                phase = "Failed"
            else:
                target = candidates[next(self._node_rr) % len(candidates)]["metadata"]["name"]

        if target is not None:
            # The VMI moves before the migration reports Succeeded, as clients read it in that order.
            def move(o):
                st = o.setdefault("status", {})
                st["nodeName"] = target
                o["metadata"].setdefault("labels", {})["kubevirt.io/nodeName"] = target
                st["migrationState"] = {"completed": True, "sourceNode": source, "targetNode": target,
                                        "migrationUid": uid, "startTimestamp": now(), "endTimestamp": now(),
                                        "mode": "PreCopy"}
            self.api.write_status(self._rt(VMI), ns, vmi_name, move, "virt-handler")

        def mutate(o):
            st = o.setdefault("status", {})
            st["phase"] = phase
            st.setdefault("phaseTransitionTimestamps", []).append({"phase": phase,
                                                                   "phaseTransitionTimestamp": now()})
            if phase == "Failed" and not st.get("migrationState"):
                st["migrationState"] = {"failed": True, "completed": True, "failureReason":
                                        "VMI is not running or no other node is schedulable"}
        self.api.write_status(self._rt(VMIM), ns, name, mutate, "virt-controller")

    # --- subresources (virt-api) -------------------------------------------------------------------------
    def _get_vm(self, ns, name):
        vm = self.store.get(VM, ns, name)
        if vm is None:
            raise _virt_not_found("virtualmachine", name)
        return vm

    def _running_vmi(self, ns, name):
        vmi = self.store.get(VMI, ns, name)
        if vmi is None or vmi["metadata"].get("deletionTimestamp") or \
                (vmi.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return None
        return vmi

    def _patch_spec(self, vm, dry, **changes):
        if dry:
            return
        ops = [{"op": "test", "path": "/metadata/resourceVersion", "value": vm["metadata"]["resourceVersion"]}]
        spec = vm.get("spec") or {}
        for k, v in changes.items():
            ops.append({"op": "replace" if k in spec else "add", "path": "/spec/" + k, "value": v})
        self.api.patch(self._rt(VM), "v1", vm["metadata"]["namespace"], vm["metadata"]["name"],
                       "application/json-patch+json", ops, self._opts("virt-api"))

    def _state_request(self, vm, dry, *reqs):
        if dry:
            return

        def add(o):
            st = o.setdefault("status", {})
            st["stateChangeRequests"] = (st.get("stateChangeRequests") or []) + list(reqs)
        self.api.write_status(self._rt(VM), vm["metadata"]["namespace"], vm["metadata"]["name"], add, "virt-api")

    def _flip_running(self, vm, dry, running):
        if "running" in (vm.get("spec") or {}) and not (vm.get("spec") or {}).get("runStrategy"):
            self._patch_spec(vm, dry, running=running)
        else:
            self._patch_spec(vm, dry, runStrategy="Always" if running else "Halted")

    def sub_start(self, ns, name, body, dry):
        vm = self._get_vm(ns, name)
        strategy = run_strategy(vm)
        vmi = self._running_vmi(ns, name)
        if strategy in ("Always", "Once"):
            raise _vm_conflict(name, "%s does not support manual start requests" % strategy)
        if vmi is not None:
            raise _vm_conflict(name, "VM is already running")
        if strategy == "Halted":
            self._flip_running(vm, dry, True)
        else:
            self._state_request(vm, dry, {"action": "Start"})
        return 202, None

    def sub_stop(self, ns, name, body, dry):
        vm = self._get_vm(ns, name)
        strategy = run_strategy(vm)
        vmi = self.store.get(VMI, ns, name)
        if strategy == "Halted" and body.get("gracePeriod") is None:
            raise _vm_conflict(name, "VM is not running")
        if vmi is None and strategy in ("Manual", "RerunOnFailure"):
            raise _vm_conflict(name, "VM is not running")
        if strategy in ("Always", "Once"):
            self._flip_running(vm, dry, False)
        elif strategy in ("Manual", "RerunOnFailure"):
            self._state_request(vm, dry, {"action": "Stop", "uid": vmi["metadata"]["uid"]})
        elif vmi is not None and not dry:
            self._delete_vmi(ns, name)
        return 202, None

    def sub_restart(self, ns, name, body, dry):
        vm = self._get_vm(ns, name)
        strategy = run_strategy(vm)
        if strategy in ("Halted", "Once"):
            raise _vm_conflict(name, "RunStategy %s does not support manual restart requests" % strategy)
        if body.get("gracePeriodSeconds") not in (None, 0):
            raise errors.bad_request("For force restart, only gracePeriod=0 is supported for now")
        vmi = self._running_vmi(ns, name)
        if vmi is None:
            raise _vm_conflict(name, "VM is not running")
        if dry:
            return 202, None
        if strategy == "Manual":
            self._state_request(vm, dry, {"action": "Stop", "uid": vmi["metadata"]["uid"]}, {"action": "Start"})
        else:
            self._delete_vmi(ns, name)
        return 202, None

    def sub_migrate(self, ns, name, body, dry):
        self._get_vm(ns, name)
        vmi = self._running_vmi(ns, name)
        if vmi is None or (vmi.get("status") or {}).get("phase") != "Running":
            raise _vm_conflict(name, "VM is not running")
        if not dry:
            mig = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstanceMigration",
                   "metadata": {"generateName": "kubevirt-migrate-vm-", "namespace": ns},
                   "spec": {"vmiName": name}}
            if body.get("addedNodeSelector"):
                mig["spec"]["addedNodeSelector"] = body["addedNodeSelector"]
            self.api.create(self._rt(VMIM), "v1", ns, mig, self._opts("virt-api"))
        return 202, None

    def _get_vmi(self, ns, name):
        vmi = self.store.get(VMI, ns, name)
        if vmi is None:
            raise _virt_not_found("virtualmachineinstance", name)
        return vmi

    def _paused(self, vmi):
        return any(c.get("type") == "Paused" and c.get("status") == "True"
                   for c in (vmi.get("status") or {}).get("conditions") or [])

    def sub_pause(self, ns, name, body, dry):
        vmi = self._get_vmi(ns, name)
        if (vmi.get("status") or {}).get("phase") != "Running":
            raise _vmi_conflict(name, "VMI is not running")
        if self._paused(vmi):
            raise _vmi_conflict(name, "VMI is already paused")
        if not dry:
            def pause(o):
                _set_cond(o["status"].setdefault("conditions", []), _cond("Paused", "True", "PausedByUser",
                                                                          "VMI was paused by user"))
            self.api.write_status(self._rt(VMI), ns, name, pause, "virt-handler")
        return 200, None

    def sub_unpause(self, ns, name, body, dry):
        vmi = self._get_vmi(ns, name)
        if not self._paused(vmi):
            raise _vmi_conflict(name, "VMI is not paused")
        if not dry:
            def unpause(o):
                o["status"]["conditions"] = [c for c in o["status"].get("conditions") or [] if c["type"] != "Paused"]
            self.api.write_status(self._rt(VMI), ns, name, unpause, "virt-handler")
        return 200, None

    def sub_guestosinfo(self, ns, name, body, dry):
        vmi = self._get_vmi(ns, name)
        if (vmi.get("status") or {}).get("phase") != "Running":
            raise _vmi_conflict(name, "VMI is not running")
        return 200, {"guestAgentVersion": "9.0.0", "hostname": name, "os": vmi["status"].get("guestOSInfo", {}),
                     "timezone": "UTC, 0"}
