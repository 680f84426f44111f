"""The emulated VM admission webhooks (controllers/webhooks.py) and virt-controller's RestartRequired
(controllers/virt.py), through plain HTTP."""

VMS = "/apis/kubevirt.io/v1/namespaces/%s/virtualmachines"
VMIS = "/apis/kubevirt.io/v1/namespaces/%s/virtualmachineinstances"
REVISIONS = "/apis/apps/v1/namespaces/%s/controllerrevisions"
SUB = "/apis/subresources.kubevirt.io/v1/namespaces/%s/%s/%s/%s"


def vm(name, **tspec):
    base = {"domain": {"devices": {"disks": [{"name": "root", "disk": {"bus": "virtio"}}],
                                   "interfaces": [{"name": "default", "masquerade": {}}]}},
            "networks": [{"name": "default", "pod": {}}],
            "volumes": [{"name": "root", "containerDisk": {"image": "img"}},
                        {"name": "scratch", "emptyDisk": {"capacity": "1Gi"}}]}
    base.update(tspec)
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": name},
            "spec": {"runStrategy": "Halted", "template": {"spec": base}}}


def apply(kubeapi, ns, obj, dry_run=False):
    q = "?fieldManager=test&force=true" + ("&dryRun=All" if dry_run else "")
    return kubeapi.http("PATCH", VMS % ns + "/" + obj["metadata"]["name"] + q, obj,
                        content_type="application/apply-patch+yaml")


def observed(obj):
    return obj is not None and (obj["metadata"].get("annotations") or {}).get("kubevirt.io/latest-observed-api-version")


def conditions(obj):
    """{type: (status, message)} of a VM's status conditions."""
    conds = ((obj or {}).get("status") or {}).get("conditions") or []
    return {c["type"]: (c["status"], c.get("message")) for c in conds}


def denial(body):
    return body["message"], [(c["field"], c["message"]) for c in body["details"]["causes"]]


def test_vm_mutator_defaults_macs_and_no_default_disks(kubeapi, ns):
    status, first, _ = apply(kubeapi, ns, vm("a"))
    assert status == 201
    t = first["spec"]["template"]["spec"]
    mac = t["domain"]["devices"]["interfaces"][0]["macAddress"]
    assert mac.startswith("02:") and t["architecture"] == "amd64" and t["domain"]["machine"]["type"] == "q35"
    # vm-mutator.go:setFirmwareDefaultsIfEmpty (create), setDefaultPciTopologyVersion on the template metadata
    assert t["domain"]["firmware"]["uuid"] and t["domain"]["firmware"]["serial"]
    assert first["spec"]["template"]["metadata"]["annotations"] == {"kubevirt.io/pci-topology-version": "v3"}
    assert t["domain"]["resources"] == {}
    # KubeVirt's VM mutator adds no disk for the volume `scratch` (SetDefaultVolumeDisk runs on the VMI only).
    assert t["domain"]["devices"]["disks"] == [{"name": "root", "disk": {"bus": "virtio"}}]
    assert "kubemacpool.io/transaction-timestamp" in first["metadata"]["annotations"]
    before = kubeapi.wait_for(VMS % ns + "/a", observed)
    status, again, _ = apply(kubeapi, ns, vm("a"))
    assert status == 200
    # The same apply again is a no-op: no new generation, no new kubemacpool transaction timestamp.
    assert again["metadata"]["generation"] == before["metadata"]["generation"] == 1
    assert again["metadata"]["annotations"] == before["metadata"]["annotations"]
    assert again["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert again["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"][0]["macAddress"] == mac
    assert again["spec"]["template"]["spec"]["domain"]["firmware"] == t["domain"]["firmware"]


def test_vmi_gets_the_default_disks_and_interface(kubeapi, ns):
    running = vm("v")
    running["spec"]["runStrategy"] = "Always"
    del running["spec"]["template"]["spec"]["networks"]
    del running["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"]
    apply(kubeapi, ns, running)
    vmi = kubeapi.wait_for(VMIS % ns + "/v", lambda o: o is not None)
    devices = vmi["spec"]["domain"]["devices"]
    # vm.go:SetupVMIFromVM -> util.SetDefaultVolumeDisk, then vmi-mutator (SetDefaults_DiskDevice): `disk: {}`
    assert devices["disks"] == [{"name": "root", "disk": {"bus": "virtio"}}, {"name": "scratch", "disk": {}}]
    # vmispec/defaults.go:SetDefaultNetworkInterface (bridge on the pod network)
    assert devices["interfaces"] == [{"name": "default", "bridge": {}}]
    assert vmi["spec"]["networks"] == [{"name": "default", "pod": {}}]
    assert vmi["metadata"]["annotations"]["kubevirt.io/pci-topology-version"] == "v3"
    live = kubeapi.get_object(VMS % ns + "/v")
    assert [d["name"] for d in live["spec"]["template"]["spec"]["domain"]["devices"]["disks"]] == ["root"]
    assert "interfaces" not in live["spec"]["template"]["spec"]["domain"]["devices"]
    assert vmi["spec"]["domain"]["firmware"]["uuid"] == live["spec"]["template"]["spec"]["domain"]["firmware"]["uuid"]


def test_virt_controller_stamps_observed_api_versions(kubeapi, ns):
    status, created, _ = apply(kubeapi, ns, vm("o"))
    assert status == 201 and not observed(created)
    live = kubeapi.wait_for(VMS % ns + "/o", observed)
    ann = live["metadata"]["annotations"]
    assert ann["kubevirt.io/latest-observed-api-version"] == "v1"
    assert ann["kubevirt.io/storage-observed-api-version"] == "v1"
    # A metadata update through the API: new resourceVersion, same generation, no new kubemacpool transaction.
    assert int(live["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    assert live["metadata"]["generation"] == 1
    assert ann["kubemacpool.io/transaction-timestamp"] == created["metadata"]["annotations"]["kubemacpool.io/transaction-timestamp"]
    on = vm("p")
    on["spec"]["runStrategy"] = "Always"
    apply(kubeapi, ns, on)
    vmi = kubeapi.wait_for(VMIS % ns + "/p", observed)
    assert vmi["metadata"]["annotations"]["kubevirt.io/storage-observed-api-version"] == "v1"


def test_running_is_accepted_with_a_deprecation_warning(kubeapi, ns):
    legacy = vm("l")
    del legacy["spec"]["runStrategy"]
    legacy["spec"]["running"] = True
    status, body, headers = apply(kubeapi, ns, legacy)
    assert status == 201
    assert any("spec.running is deprecated, please use spec.runStrategy instead." in w
               for w in headers.get_all("Warning") or [])
    # Not converted: spec.running stays, no runStrategy appears; virt-controller runs it (Always).
    assert body["spec"]["running"] is True and "runStrategy" not in body["spec"]
    kubeapi.wait_for(VMIS % ns + "/l", lambda o: o is not None)
    assert "runStrategy" not in kubeapi.get_object(VMS % ns + "/l")["spec"]
    status, _, headers = apply(kubeapi, ns, vm("m"))
    assert status == 201 and not headers.get_all("Warning")


def test_run_strategy_validation(kubeapi, ns):
    neither = vm("n")
    del neither["spec"]["runStrategy"]
    status, body, _ = apply(kubeapi, ns, neither, dry_run=True)
    assert status == 422 and denial(body) == (
        'admission webhook "virtualmachine-validator.kubevirt.io" denied the request: RunStrategy must be specified',
        [("spec.running", "RunStrategy must be specified")])
    both = vm("c")
    both["spec"]["running"] = False
    status, body, _ = apply(kubeapi, ns, both)
    message = "Running and RunStrategy are mutually exclusive. Note that Running is deprecated, please use RunStrategy instead"
    assert status == 422 and denial(body) == (
        'admission webhook "virtualmachine-validator.kubevirt.io" denied the request: ' + message,
        [("spec.running", message)])
    receiver = vm("w")
    receiver["spec"]["runStrategy"] = "WaitAsReceiver"
    status, body, _ = apply(kubeapi, ns, receiver, dry_run=True)
    assert status == 422 and denial(body)[1] == [("spec.runStrategy", "Invalid RunStrategy (WaitAsReceiver), "
                                                  "DecentralizedLiveMigration feature gate is not enabled in kubevirt resource")]


def test_validation_names_the_field(kubeapi, ns):
    bad = vm("b")
    bad["spec"]["template"]["spec"]["domain"]["devices"]["disks"].append({"name": "ghost", "disk": {}})
    bad["spec"]["template"]["spec"]["networks"].append({"name": "lonely", "multus": {"networkName": "x"}})
    status, body, _ = apply(kubeapi, ns, bad, dry_run=True)
    assert status == 422 and denial(body)[1] == [
        ("spec.template.spec.networks[1].name", "spec.template.spec.networks[1].name 'lonely' not found."),
        ("spec.template.spec.domain.devices.disks[1].name",
         "spec.template.spec.domain.devices.disks[1].Name 'ghost' not found.")]


def test_instancetype_matcher_needs_a_name_or_inference(kubeapi, ns):
    bad = vm("i")
    bad["spec"]["instancetype"] = {"kind": "VirtualMachineClusterInstancetype"}
    status, body, _ = apply(kubeapi, ns, bad, dry_run=True)
    assert status == 422 and denial(body) == (
        'admission webhook "virtualmachines-mutator.kubevirt.io" denied the request: Either Name or InferFromVolume '
        'should be provided within the InstancetypeMatcher',
        [("spec.instancetype", "Either Name or InferFromVolume should be provided within the InstancetypeMatcher")])


def test_firmware_uuid_dropped_on_update_comes_back_as_the_legacy_uuid(kubeapi, ns):
    status, created, _ = apply(kubeapi, ns, vm("f"))
    random_uuid = created["spec"]["template"]["spec"]["domain"]["firmware"]["uuid"]
    status, body, _ = kubeapi.http("PATCH", VMS % ns + "/f", {"spec": {"template": {"spec": {"domain": {
        "firmware": None}}}}}, content_type="application/merge-patch+json")
    assert status == 200
    # The VM mutator sets a firmware UUID on create only; virt-controller's firmware.go:FirmwareController.Sync
    # then patches CalculateLegacyUUID(name) in: uuid5(6a1a24a1-4061-4607-8bf4-a3963d0c5895, "f").
    live = kubeapi.wait_for(VMS % ns + "/f", lambda o: (o["spec"]["template"]["spec"]["domain"].get("firmware") or {})
                            .get("uuid"))
    assert live["spec"]["template"]["spec"]["domain"]["firmware"] == {"uuid": "e05fdb73-9eb4-513f-858c-c3f95dd66c3f"}
    assert random_uuid != "e05fdb73-9eb4-513f-858c-c3f95dd66c3f"


def test_restart_required_comes_from_the_controllers_status_sync(kubeapi, ns):
    """Not written at admission (a real API server ignores a webhook's status on a main-resource update): the VMI
    records the VM spec it started from in a ControllerRevision, and virt-controller's VM status sync compares the
    template with it, setting RestartRequired in the write that sets observedGeneration; a new VMI clears it."""
    running = vm("r")
    running["spec"]["runStrategy"] = "Always"
    status, created, _ = apply(kubeapi, ns, running)
    assert status == 201
    uid = created["metadata"]["uid"]
    vmi = kubeapi.wait_for(VMIS % ns + "/r", lambda o: o and (o.get("status") or {}).get("virtualMachineRevisionName"),
                           timeout=60)
    started = kubeapi.wait_for(VMS % ns + "/r", lambda o: (o.get("status") or {}).get("observedGeneration") ==
                               o["metadata"]["generation"], timeout=60)
    gen = started["metadata"]["generation"]
    revision = "revision-start-vm-%s-%d" % (uid, gen)    # vm.go:getVMRevisionName
    assert vmi["status"]["virtualMachineRevisionName"] == revision
    cr = kubeapi.get_object(REVISIONS % ns + "/" + revision)
    assert cr["revision"] == gen and cr["data"]["spec"]["template"] == started["spec"]["template"]
    assert [(o["kind"], o["uid"], o.get("controller")) for o in cr["metadata"]["ownerReferences"]] == [
        ("VirtualMachine", uid, True)]
    assert "RestartRequired" not in conditions(started)

    running["spec"]["template"]["spec"]["domain"]["cpu"] = {"cores": 2}
    status, body, _ = apply(kubeapi, ns, running)
    assert status == 200 and body["metadata"]["generation"] > gen
    # The write itself carries no verdict: the controller has not seen the new generation yet.
    assert "RestartRequired" not in conditions(body) and body["status"]["observedGeneration"] == gen
    live = kubeapi.wait_for(VMS % ns + "/r", lambda o: "RestartRequired" in conditions(o), timeout=60)
    assert conditions(live)["RestartRequired"] == ("True",
                                                   "a non-live-updatable field was changed in the template spec")
    assert live["status"]["observedGeneration"] == live["metadata"]["generation"] == body["metadata"]["generation"]
    assert kubeapi.get_object(VMIS % ns + "/r")["metadata"]["uid"] == vmi["metadata"]["uid"]

    status, _, _ = kubeapi.http("PUT", SUB % (ns, "virtualmachines", "r", "restart"), {})
    assert status == 202
    new_revision = "revision-start-vm-%s-%d" % (uid, live["metadata"]["generation"])
    new_vmi = kubeapi.wait_for(VMIS % ns + "/r", lambda o: o and o["metadata"]["uid"] != vmi["metadata"]["uid"],
                               timeout=90)
    assert new_vmi["status"]["virtualMachineRevisionName"] == new_revision
    assert new_vmi["spec"]["domain"]["cpu"]["cores"] == 2
    after = kubeapi.wait_for(VMS % ns + "/r", lambda o: "RestartRequired" not in conditions(o), timeout=60)
    assert after["status"]["observedGeneration"] == after["metadata"]["generation"]
    # deleteOlderVMRevision: only the revision of the running generation is kept.
    assert kubeapi.get_object(REVISIONS % ns + "/" + revision) is None
    assert kubeapi.get_object(REVISIONS % ns + "/" + new_revision)["revision"] == live["metadata"]["generation"]
    # Owned by the VM: the garbage collector removes it with the VM.
    assert kubeapi.http("DELETE", VMS % ns + "/r")[0] == 200
    kubeapi.wait_for(REVISIONS % ns + "/" + new_revision, lambda o: o is None, timeout=90)
