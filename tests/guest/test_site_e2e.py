"""site.yml end to end (issues 7 and 19, "Must show"): one real Debian 12 guest with NO Service, configured through
the API server; the rest of the fleet simulated.

The emulator runs the simulated operators, CDI and virt controllers and boots VMs of the image
quay.io/containerdisks/debian:12 as QEMU TCG guests. site.yml installs KubeVirt + CDI, declares the fleet
(declare_vms.yml waits until the VMs are Ready: for the real guest, until its SSH port answers) and runs
configure_guests.yml through the inventory plugin (playbooks/inventory/kubevirt.yml: a NodePort Service on the
node's InternalIP, else api_tunnel). The real guest's VM carries the emulator's label kubeapi-emulator/ssh-service=none,
so the namespace has no Service at all and the inventory gives it the api_tunnel strategy: ansible-core's ssh
connection runs the collection's bridge as its ProxyCommand, which reaches the guest's port 22 through the VMI
portforward subresource (a WebSocket through the API server). configure_guests_hosts is the keyed group
node_localnode, the emulator's node of real guests (the simulated VMs are api_tunnel hosts too, with no SSH server
behind them). The play sets the host name and writes the managed-by file with become (a template: a file copy
over the tunnel); what it changed is read back over our own ssh through the inventory's ProxyCommand, the request
log shows the tunnels (WebSocket upgrades, 101) and that only the real guest was tunnelled to, and a second site.yml
run must report changed=0 for every host. Last, a NodePort Service added by hand (`virtctl expose`) takes over:
node_port stays before api_tunnel.
"""
import json
import re
import shlex
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

from tests.guest.guest import BOOT_TIMEOUT, IMAGE, boot_seconds, build_image, keypair, ssh, wait_gone
from tests.integration.test_kubevirt_install import CDI166, KV190
from tests.kubeapi.harness import qemu_pids
from tests.summary import record

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "playbooks"
SIMULATED_IMAGE = "quay.io/containerdisks/fedora:41"
GROUP = "node_localnode"         # keyed group of vmi_node_name: the emulator's node of real QEMU guests
NO_SERVICE = {"kubeapi-emulator/ssh-service": "none"}   # the emulator creates no <vm>-ssh Service for this VM
INSTALL = {"kubevirt_manifest_path": KV190, "kubevirt_version": "v1.9.0", "kubevirt_cdi": True,
           "kubevirt_cdi_manifest_path": CDI166, "kubevirt_wait_timeout": 120}

pytestmark = pytest.mark.timeout(BOOT_TIMEOUT + 1500)


# The emu fixture (tests/conftest.py); the image is built (or the module skipped) when the fixture starts.
EMULATOR = {"name": "site-e2e", "controllers": ("virt", "cdi", "operators"),
            "guest_images": lambda: {IMAGE: build_image()}}


def recaps(output):
    found = re.findall(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", output, re.M)
    return {host: dict(zip(("ok", "changed", "unreachable", "failed"), map(int, nums))) for host, *nums in found}


def site(emu, tmp_path, inventory, key, extra):
    (tmp_path / "vars.json").write_text(json.dumps(extra))
    env = emu.env()
    env.update({
        "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
        "ANSIBLE_PRIVATE_KEY_FILE": str(key),
        # The guest makes its host keys at first boot and 127.0.0.1:<nodePort> is new every run.
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_SSH_ARGS": "-o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile=/dev/null",
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(tmp_path / "cp"), "ANSIBLE_TIMEOUT": "60",
        "ANSIBLE_LOCALHOST_WARNING": "False", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False",
        "ANSIBLE_RETRY_FILES_ENABLED": "False"})
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory),
           "-e", "@%s" % (tmp_path / "vars.json"), str(PLAYBOOKS / "site.yml")]
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=str(tmp_path), env=env, capture_output=True, text=True, check=False,
                          timeout=BOOT_TIMEOUT + 600, stdin=subprocess.DEVNULL)
    out = proc.stdout + proc.stderr
    (tmp_path / ("site-%d.log" % int(start))).write_text(out)
    record("real guests", "site.yml (one real guest, API tunnel): rc=%d in %.0fs" % (proc.returncode, time.monotonic() - start))
    return proc.returncode, out


def host_vars(emu, inventory, host):
    env = emu.env()
    env.update({"ANSIBLE_INVENTORY_UNPARSED_WARNING": "False"})
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-inventory"), "-i", str(inventory), "--host", host],
                          env=env, capture_output=True, text=True, check=False, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def tunnels(emu, since=None):
    """The portforward requests of the request log: [(namespace, VMI, port, status, tunnel stats)]."""
    found = []
    for entry in emu.requests(since=since):
        match = re.search(r"/namespaces/([^/]+)/virtualmachineinstances/([^/]+)/portforward/(\d+)", entry["path"])
        if match:
            found.append(match.groups() + (entry["status"], entry.get("tunnel") or {}))
    return found


def test_site_configures_the_real_guest_through_the_api_tunnel_and_second_run_changes_nothing(emu, tmp_path):
    ns = "e2e-" + uuid.uuid4().hex[:6]      # created by declare_vms.yml (fleet_create_namespaces defaults to true)
    key, pub = keypair(tmp_path, "fleet")
    source = yaml.safe_load((PLAYBOOKS / "inventory" / "kubevirt.yml").read_text())
    source["namespaces"] = [ns]
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    (inventory / "kubevirt.yml").write_text(yaml.safe_dump(source))
    extra = dict(INSTALL, fleet_namespace=ns, fleet_image=SIMULATED_IMAGE, fleet_user="debian",
                 fleet_ssh_authorized_keys=[pub], fleet_labels={"fleet": "e2e"},
                 fleet_sizes={"tiny": {"cpu": 1, "memory": "512Mi"}}, fleet_default_size="tiny",
                 fleet_wait_timeout=BOOT_TIMEOUT, configure_guests_hosts=GROUP,
                 fleet_vms=[{"name": "guest", "image": IMAGE, "labels": dict(NO_SERVICE, app="real")},
                            {"name": "sim-1", "labels": {"app": "sim"}},
                            {"name": "sim-2", "labels": {"app": "sim"}},
                            {"name": "sim-off", "running": False}])
    host = "%s-guest" % ns

    mark = emu.mark()
    rc, out = site(emu, tmp_path, inventory, key, extra)
    assert rc == 0, out[-6000:]
    recap = recaps(out)
    assert recap[host]["changed"] >= 2 and recap[host]["unreachable"] == 0 and recap[host]["failed"] == 0, out
    assert "Configured 1 of 1 running VM(s)." in out, out[-4000:]
    assert "reached at guest.%s.api-tunnel:22 (api_tunnel) as debian" % ns in out, out[-4000:]
    print("\n".join(line for line in out.splitlines() if re.match(r"^(PLAY RECAP|\S+\s+: ok=)", line)))
    # Only the real guest is a QEMU process; the simulated ones run on the simulated nodes.
    assert [d.split("_")[1] for d in qemu_pids(emu.workdir / "guests")] == ["guest"]
    for name in ("sim-1", "sim-2"):
        vmi = emu.get_object("/apis/kubevirt.io/v1/namespaces/%s/virtualmachineinstances/%s" % (ns, name))
        assert vmi["status"]["phase"] == "Running" and vmi["status"]["nodeName"] in ("node01", "node02")
    assert emu.get_object("/apis/kubevirt.io/v1/namespaces/%s/virtualmachineinstances/sim-off" % ns) is None

    for guest, seconds in boot_seconds(emu.workdir / "guests").items():
        record("real guests", "%s: SSH up %.0fs after QEMU start (site.yml)" % (guest, seconds))

    # No Service at all in the namespace: the inventory tunnels through the API server.
    assert emu.get_object("/api/v1/namespaces/%s/services" % ns)["items"] == []
    hvars = host_vars(emu, inventory, host)
    assert (hvars["vm_address_source"], hvars["ansible_host"], hvars["ansible_port"]) == \
        ("api_tunnel", "guest.%s.api-tunnel" % ns, 22), hvars
    # The request log: WebSocket upgrades (101) of the guest's portforward to port 22, as the kubeconfig's user;
    # the modules and the template went through them; no tunnel to any other VM (the group left them out).
    first = tunnels(emu, mark)
    assert first and all(t[:4] == (ns, "guest", "22", 101) for t in first), first
    assert sum(t[4].get("to_guest", 0) for t in first) > 50000, first
    record("real guests", "site.yml run 1: %d tunnel(s) through the API server, %d bytes to the guest, %d back"
           % (len(first), sum(t[4].get("to_guest", 0) for t in first), sum(t[4].get("from_guest", 0) for t in first)))

    # Our own SSH session through the inventory's ProxyCommand (ssh runs the bridge with the environment's
    # credentials), with the key of the fleet file.
    through = shlex.split(hvars["ansible_ssh_common_args"])
    result = ssh(key, "debian", 22, "hostname; echo ---; cat /etc/hostname; echo ---; cat /etc/virtfleet-managed; "
                 "echo ---; stat -c '%U %G %a' /etc/virtfleet-managed", host=hvars["ansible_host"], options=through,
                 env=emu.env())
    assert result.returncode == 0, result.stderr
    live_name, file_name, managed, perms = [part.strip() for part in result.stdout.split("---")]
    assert live_name == host and file_name == host
    vm = emu.get_object("/apis/kubevirt.io/v1/namespaces/%s/virtualmachines/guest" % ns)
    assert "inventory_hostname: %s" % host in managed and "hostname: %s" % host in managed
    assert "vm_uid: %s" % vm["metadata"]["uid"] in managed
    assert json.loads(re.search(r"^vm_labels: (.*)$", managed, re.M).group(1)) == dict(NO_SERVICE, app="real", fleet="e2e")
    assert perms == "root root 644"

    mark = emu.mark()
    rc, out = site(emu, tmp_path, inventory, key, extra)
    assert rc == 0, out[-6000:]
    recap = recaps(out)
    assert host in recap and "localhost" in recap, out[-4000:]
    assert {h: r["changed"] for h, r in recap.items()} == {h: 0 for h in recap}, out[-6000:]
    assert all(r["unreachable"] == 0 and r["failed"] == 0 for r in recap.values()), out[-6000:]
    assert "reached at guest.%s.api-tunnel:22 (api_tunnel) as debian" % ns in out, out[-4000:]
    print("\n".join(line for line in out.splitlines() if re.match(r"^(PLAY RECAP|\S+\s+: ok=)", line)))
    # ControlPersist may still hold run 1's tunnel open; any new one is the guest's again.
    assert all(t[:4] == (ns, "guest", "22", 101) for t in tunnels(emu, mark))

    # A NodePort Service added by hand (virtctl expose vm guest --type NodePort --port 22) takes over: node_port comes
    # before api_tunnel in the inventory source, and our ssh reaches the guest through it.
    emu.apply_object({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "guest-ssh", "namespace": ns},
                      "spec": {"type": "NodePort", "selector": {"vm.kubevirt.io/name": "guest"},
                               "ports": [{"name": "ssh", "port": 22, "targetPort": 22}]}})
    svc = emu.wait_for("/api/v1/namespaces/%s/services/guest-ssh" % ns,
                       lambda o: o["spec"]["ports"][0].get("nodePort"), timeout=10)
    node_port = svc["spec"]["ports"][0]["nodePort"]
    hvars = host_vars(emu, inventory, host)
    assert (hvars["vm_address_source"], hvars["ansible_host"], hvars["ansible_port"]) == ("node_port", "127.0.0.1", node_port)
    assert "ansible_ssh_common_args" not in hvars, hvars
    result = ssh(key, "debian", node_port, "hostname")
    assert result.returncode == 0 and result.stdout.strip() == host, result.stderr

    pids = list(qemu_pids(emu.workdir / "guests").values())
    assert len(pids) == 1, pids
    pid = pids[0]
    emu.delete_object("/apis/kubevirt.io/v1/namespaces/%s/virtualmachines/guest" % ns)
    assert wait_gone(pid), "QEMU of the deleted VM still runs"
