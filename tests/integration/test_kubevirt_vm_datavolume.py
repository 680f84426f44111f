"""kubevirt_vm boot disks from DataVolumes, against an emulator that also runs the simulated CDI."""
import uuid

import pytest

from tests.integration.test_kubevirt_vm import play, vm_task

DVS = "/apis/cdi.kubevirt.io/v1beta1/namespaces/%s/datavolumes"


@pytest.fixture(scope="module")
def cdi_kubeapi(tmp_path_factory):
    from tests.conftest import start_emulator
    emu = start_emulator(tmp_path_factory, "kubeapi-cdi", tls=True, controllers=("virt", "cdi"), timing="fast")
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def env(cdi_kubeapi):
    from tests.conftest import kubeapi_env
    return kubeapi_env(cdi_kubeapi)


@pytest.fixture
def ns(cdi_kubeapi):
    name = "dv-" + uuid.uuid4().hex[:8]
    cdi_kubeapi.apply_object({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


def test_vm_from_imported_data_volume_waits_for_import_then_ready(cdi_kubeapi, env, tmp_path, ns):
    r = play(env, tmp_path, [
        vm_task("create", name="db", namespace=ns, memory="1Gi", wait=True, wait_timeout=60,
                boot_disk={"url": "https://images.example.org/fedora.qcow2", "size": "5Gi", "storage_class": "local"}),
        vm_task("again", name="db", namespace=ns, memory="1Gi",
                boot_disk={"url": "https://images.example.org/fedora.qcow2", "size": "5Gi", "storage_class": "local"}),
    ])
    assert r["create"]["changed"] and r["create"]["result"]["status"]["ready"] is True
    dv = cdi_kubeapi.get_object(DVS % ns + "/db-rootdisk")
    assert dv["status"]["phase"] == "Succeeded" and dv["status"]["progress"] == "100.0%"
    assert dv["spec"]["source"] == {"http": {"url": "https://images.example.org/fedora.qcow2"}}
    assert dv["metadata"]["ownerReferences"][0]["name"] == "db"
    vm = r["create"]["result"]
    assert vm["spec"]["template"]["spec"]["volumes"][0] == {"name": "rootdisk", "dataVolume": {"name": "db-rootdisk"}}
    assert r["again"]["changed"] is False


def test_clone_boot_disk_and_a_failing_import_named_in_the_timeout(cdi_kubeapi, env, tmp_path, ns):
    r = play(env, tmp_path, [vm_task(
        "fleet", ignore_errors=True, namespace=ns, memory="1Gi", wait=True, wait_timeout=10,
        vms=[{"name": "clone", "boot_disk": {"clone_from": {"name": "golden", "namespace": "images"}}},
             {"name": "broken", "boot_disk": {"url": "https://images.example.org/notfound.qcow2", "size": "5Gi"}}])])
    res = r["fleet"]
    assert res["failed"]
    by_name = {x["name"]: x for x in res["results"]}
    assert by_name["clone"]["result"]["status"]["ready"] is True
    assert cdi_kubeapi.get_object(DVS % ns + "/clone-rootdisk")["spec"]["source"] == {
        "pvc": {"name": "golden", "namespace": "images"}}
    msg = res["msg"]
    assert "waiting for 1 of 2 VMs" in msg and "%s/broken" % ns in msg
    assert "DataVolume broken-rootdisk: ImportInProgress" in msg and "404" in msg
