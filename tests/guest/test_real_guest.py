"""The emulator's real-guest backend: VMs whose containerDisk is mapped boot as QEMU TCG guests.

Two real VMs boot together (user data inline / from a Secret) next to a simulated one. Each is reached with
the key from its own cloud-init user data through the `<vm>-ssh` NodePort Service on the 127.0.0.1 node; a key
the VM spec does not name is refused. A user's NodePort Service without nodePort gets one and is proxied too. A guest that powers off is restarted
(new VMI, new QEMU). Stopping one VM and deleting the other must end their QEMU processes.
"""
import base64
import time
import uuid

import pytest

from tests.guest.guest import BOOT_TIMEOUT, IMAGE, boot_seconds, build_image, keypair, ssh, wait_gone
from tests.kubeapi.harness import qemu_pids
from tests.summary import record

pytestmark = pytest.mark.timeout(BOOT_TIMEOUT + 600)


# The emu fixture (tests/conftest.py); the image is built (or the module skipped) when the fixture starts.
EMULATOR = {"name": "realguest", "controllers": ("virt",), "guest_images": lambda: {IMAGE: build_image()}}


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
    stranger = keypair(tmp_path, "stranger")[0]
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
    emu.wait_for(vm_path(ns, "simulated"), lambda o: (o or {}).get("status", {}).get("ready"), timeout=30)
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

    for guest, seconds in sorted(boot_seconds(emu.workdir / "guests").items()):
        record("real guests", "%s: SSH up %.0fs after QEMU start (two guests booting at once)" % (guest, seconds))
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

    # A NodePort Service of the user's, without nodePort: one is allocated and the proxy serves it too.
    emu.apply_object({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "alpha-admin", "namespace": ns},
                      "spec": {"type": "NodePort", "selector": {"app": "realguest-test", "vm.kubevirt.io/name": "alpha"},
                               "ports": [{"name": "admin", "port": 2222, "targetPort": 22}]}})
    admin = emu.wait_for("/api/v1/namespaces/%s/services/alpha-admin" % ns,
                         lambda o: o["spec"]["ports"][0].get("nodePort"), timeout=10)
    admin_port = admin["spec"]["ports"][0]["nodePort"]
    assert admin_port not in ports.values() and 30000 <= admin_port <= 32767
    out = ssh(key_a, "alice", admin_port, "hostname")
    assert out.returncode == 0 and out.stdout.strip() == "alpha", out.stderr

    # A guest that powers itself off ends its VMI (Succeeded); runStrategy Always starts a new VMI and QEMU.
    pids = {d.split("_")[1]: pid for d, pid in qemu_pids(emu.workdir / "guests").items()}
    old_uid = emu.get_object(vm_path(ns, "beta", "virtualmachineinstances"))["metadata"]["uid"]
    ssh(key_b, "bob", ports["beta"], "sudo systemctl poweroff")
    assert wait_gone(pids["beta"], timeout=300), "QEMU of beta still runs after the guest powered off"
    emu.wait_for(vm_path(ns, "beta", "virtualmachineinstances"),
                 lambda o: o is not None and o["metadata"]["uid"] != old_uid and o["status"].get("phase") == "Running",
                 timeout=60)
    restarted = {d.split("_")[1]: pid for d, pid in qemu_pids(emu.workdir / "guests").items()}
    assert set(restarted) == {"alpha", "beta"} and restarted["beta"] != pids["beta"]
    pids = restarted

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
