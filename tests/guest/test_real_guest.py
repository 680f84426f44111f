"""The emulator's real-guest backend: VMs whose containerDisk is mapped boot as QEMU TCG guests.

Two real VMs boot together (user data inline / from a Secret) next to a simulated one. Each is reached with
the key from its own cloud-init user data through the `<vm>-ssh` NodePort Service on the 127.0.0.1 node; a key
the VM spec does not name is refused. Stopping one VM and deleting the other must end their QEMU processes.
"""
import base64
import time
import uuid

import pytest

from tests.guest.guest import BOOT_TIMEOUT, IMAGE, build_image, keypair, qemu_pids, ssh, wait_gone
from tests.kubeapi.harness import Emulator

pytestmark = pytest.mark.timeout(BOOT_TIMEOUT + 600)


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    image_dir = build_image()
    emulator = Emulator(tmp_path_factory.mktemp("realguest"), controllers=("virt",), guest_images={IMAGE: image_dir})
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


def user_data(user, pubkey):
    return "\n".join(["#cloud-config", "users:", "  - name: %s" % user, "    shell: /bin/bash",
                      "    sudo: ALL=(ALL) NOPASSWD:ALL", "    ssh_authorized_keys:", "      - %s" % pubkey,
                      "write_files:", "  - path: /etc/virtfleet-seed", "    content: seeded-by-cloud-init", ""])


def vm(ns, name, image, cloud_init, memory="2Gi"):
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"runStrategy": "Always", "template": {
                "metadata": {"labels": {"app": "realguest-test"}},
                "spec": {"domain": {"memory": {"guest": memory}, "devices": {"disks": [
                    {"name": "root", "disk": {"bus": "virtio"}},
                    {"name": "cloudinit", "disk": {"bus": "virtio"}}]}},
                    "volumes": [{"name": "root", "containerDisk": {"image": image}},
                                {"name": "cloudinit", "cloudInitNoCloud": cloud_init}]}}}}


def vm_path(ns, name, kind="virtualmachines"):
    return "/apis/kubevirt.io/v1/namespaces/%s/%s/%s" % (ns, kind, name)


def ready_condition(obj):
    return next((c for c in ((obj or {}).get("status") or {}).get("conditions") or [] if c["type"] == "Ready"), {})


def test_real_guests_boot_with_their_cloud_init_and_stop_with_their_vm(emu, tmp_path):
    ns = "rg-" + uuid.uuid4().hex[:6]
    emu.apply_object({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    key_a, pub_a = keypair(tmp_path, "a")
    key_b, pub_b = keypair(tmp_path, "b")
    stranger, _ = keypair(tmp_path, "stranger")
    emu.apply_object({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "b-userdata", "namespace": ns},
                      "data": {"userdata": base64.b64encode(user_data("bob", pub_b).encode()).decode()}})
    start = time.monotonic()
    emu.apply_object(vm(ns, "alpha", IMAGE, {"userData": user_data("alice", pub_a)}))
    emu.apply_object(vm(ns, "beta", IMAGE, {"secretRef": {"name": "b-userdata"}}, memory="256Mi"))
    emu.apply_object(vm(ns, "simulated", "quay.io/containerdisks/fedora:41", {"userData": user_data("x", pub_a)}))

    # Phase Running as soon as QEMU runs, but not Ready before the guest's SSH port answers.
    vmi = emu.wait_for(vm_path(ns, "alpha", "virtualmachineinstances"),
                       lambda o: (o or {}).get("status", {}).get("phase") == "Running", timeout=60)
    assert vmi["status"]["nodeName"] == "localnode"
    assert ready_condition(vmi)["status"] == "False" and ready_condition(vmi)["reason"] == "GuestNotReady"
    assert vmi["metadata"]["labels"]["vm.kubevirt.io/name"] == "alpha"
    sim = emu.wait_for(vm_path(ns, "simulated"), lambda o: (o or {}).get("status", {}).get("ready"), timeout=30)
    sim_vmi = emu.get_object(vm_path(ns, "simulated", "virtualmachineinstances"))
    assert sim_vmi["status"]["nodeName"] != "localnode"
    assert emu.get_object("/api/v1/namespaces/%s/services/simulated-ssh" % ns) is None
    assert sorted(d.split("_")[1] for d in qemu_pids(emu.workdir / "guests")) == ["alpha", "beta"]

    node = emu.get_object("/api/v1/nodes/localnode")
    assert {"type": "InternalIP", "address": "127.0.0.1"} in node["status"]["addresses"]
    for name in ("alpha", "beta"):
        emu.wait_for(vm_path(ns, name), lambda o: (o or {}).get("status", {}).get("ready") is True,
                     timeout=BOOT_TIMEOUT, interval=1)
        print("%s ready after %.0fs (both booting at once)" % (name, time.monotonic() - start))

    ports = {}
    for name in ("alpha", "beta"):
        svc = emu.get_object("/api/v1/namespaces/%s/services/%s-ssh" % (ns, name))
        assert svc["spec"]["type"] == "NodePort" and svc["spec"]["selector"] == {"vm.kubevirt.io/name": name}
        (port,) = svc["spec"]["ports"]
        assert port["name"] == "ssh" and port["port"] == 22 and 30000 <= port["nodePort"] <= 32767
        ports[name] = port["nodePort"]

    out = ssh(key_a, "alice", ports["alpha"], "hostname; id -un; echo $(cat /etc/virtfleet-seed); sudo -n id -u; nproc; "
              "awk '/MemTotal/ {print $2}' /proc/meminfo")
    assert out.returncode == 0, out.stderr
    hostname, user, seed, root_uid, cpus, mem_kib = out.stdout.split()
    assert (hostname, user, seed, root_uid, cpus) == ("alpha", "alice", "seeded-by-cloud-init", "0", "1")
    assert 900 * 1024 < int(mem_kib) <= 1024 * 1024     # 2Gi asked, capped at 1 GiB
    # The image is clean for cloud-init: every module of the boot succeeded (no missing tools, no locale errors).
    out = ssh(key_a, "alice", ports["alpha"], "cloud-init status --wait --long", timeout=300)
    assert out.returncode == 0 and "status: done" in out.stdout, out.stdout + out.stderr
    out = ssh(key_b, "bob", ports["beta"], "hostname; id -un")
    assert out.returncode == 0 and out.stdout.split() == ["beta", "bob"], out.stderr
    # Nothing but the VM's own user data lets anyone in: another key, root, or the other VM's key.
    assert ssh(stranger, "alice", ports["alpha"], "true").returncode == 255
    assert ssh(key_a, "root", ports["alpha"], "true").returncode == 255
    assert ssh(key_a, "alice", ports["beta"], "true").returncode == 255

    pids = {d.split("_")[1]: pid for d, pid in qemu_pids(emu.workdir / "guests").items()}
    # runStrategy Halted stops alpha's QEMU; deleting beta's VM stops beta's QEMU and removes its Service.
    emu.apply_object({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
                      "metadata": {"name": "alpha", "namespace": ns}, "spec": {"runStrategy": "Halted"}},
                     field_manager="test-stop")
    emu.delete_object(vm_path(ns, "beta"))
    assert wait_gone(pids["alpha"]), "QEMU of alpha still runs after runStrategy Halted"
    assert wait_gone(pids["beta"]), "QEMU of beta still runs after its VM was deleted"
    emu.wait_for(vm_path(ns, "alpha"), lambda o: o["status"].get("printableStatus") == "Stopped", timeout=30)
    emu.wait_for("/api/v1/namespaces/%s/services/beta-ssh" % ns, lambda o: o is None, timeout=30)
    assert ssh(key_a, "alice", ports["alpha"], "true", timeout=30).returncode == 255
    assert qemu_pids(emu.workdir / "guests") == {}
    consoles = sorted((emu.workdir / "guests").glob("%s_alpha_*/console.log" % ns))
    assert consoles and "cloud-init" in consoles[0].read_text(errors="replace")
