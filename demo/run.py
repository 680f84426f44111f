"""`make demo`: the main job, playbooks/site.yml, against the embedded Kubernetes API emulator.

1. Set-up: build (or reuse) the Debian 12 guest image with tests/guest/build_image.sh when this machine can
   (root, apt tools, QEMU); otherwise say why and simulate every guest.
2. Start the emulator with the simulated KubeVirt/CDI operators and virt-controller; VMs whose boot disk is
   quay.io/containerdisks/debian:12 boot as real QEMU guests: debian-1 is reachable over SSH through a NodePort
   Service on 127.0.0.1, debian-2 has no Service and is reached through the API server (the inventory's api_tunnel
   strategy: an ssh ProxyCommand that tunnels through the VMI portforward subresource).
3. Run site.yml: prepare nodes (none here: skipped), install KubeVirt + CDI from the local operator manifests,
   declare the 20-VM fleet of demo/fleet.yml in one task, creating its namespace (cloud-init carries a key
   generated for this run),
   configure the guests over SSH through the inventory plugin (demo/kubevirt.yml).
4. Print `ansible-inventory --graph`, which way each real guest was reached (vm_address_source, and the tunnels
   the API server carried), what the guests now contain, and a second site.yml run (changed=0).
5. Clean up: the emulator stops its QEMU guests, the temporary directory is removed.

Progress (demo/progress.py): every command's output is shown as it comes (the image tools' and the image build's go
to .build/guest-image-build.log), and whenever nothing was printed for 10 s a line "... still <step>: <elapsed>s,
<what it waits for>" says what runs: the last line of the image build log, the Ansible task, how many VMs of the
fleet are ready (one GET of the VM list per progress line) and the last console line of a real guest still booting.
"""
import inspect
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from demo.progress import Progress, run as run_command  # noqa: E402  pylint: disable=wrong-import-position
from tests.kubeapi.harness import Emulator, EmulatorError  # noqa: E402  pylint: disable=wrong-import-position

BIN = Path(sys.executable).parent
FIXTURES = REPO / "tests" / "fixtures" / "install"
GUEST_IMAGE = "quay.io/containerdisks/debian:12"
GUEST_IMAGE_DIR = REPO / ".build" / "guest-image"
GUEST_GROUP = "node_localnode"        # demo/kubevirt.yml: the real QEMU guests (the emulator's node for them)
PORTFORWARD = re.compile(r"/virtualmachineinstances/([^/]+)/portforward/")
FLEET = yaml.safe_load((REPO / "demo" / "fleet.yml").read_text())
INSTALL_VARS = [
    "-e", "kubevirt_manifest_path=%s" % (FIXTURES / "kubevirt-v1.9.0" / "kubevirt-operator.yaml"),
    "-e", "kubevirt_version=v1.9.0", "-e", "kubevirt_cdi=true",
    "-e", "kubevirt_cdi_manifest_path=%s" % (FIXTURES / "cdi-v1.66.0" / "cdi-operator.yaml"),
]
STARTED = time.monotonic()


def say(text):
    print("\n=== [%3ds] %s" % (time.monotonic() - STARTED, text), flush=True)


def run(cmd, env, cwd, step, watch=None):
    """Run a command, echoing its output (and progress lines while it is silent, see AnsibleProgress), and return
    that output."""
    print("$ " + " ".join(str(c) for c in cmd), flush=True)
    if watch is not None:
        watch.reset()
    rc, output = run_command(cmd, env=dict(env, PYTHONUNBUFFERED="1"), cwd=cwd, step=step,
                             detail=watch.detail if watch else None, on_line=watch.line if watch else None)
    if rc:
        raise SystemExit("demo step failed (exit %d): %s" % (rc, " ".join(str(c) for c in cmd)))
    return output


class AnsibleProgress:
    """What an Ansible run is doing, for the progress lines: the task its output names last and the hosts of the
    play not done with it yet; during the fleet's declare task, how many VMs are ready (a GET of the VM list, counted
    in reads) and the last console line of each real guest that is not ready yet."""

    PLAY = re.compile(r"^PLAY \[(.*)\]")
    TASK = re.compile(r"^TASK \[(.*)\]")
    HOST = re.compile(r"^(?:ok|changed|skipping|failed|fatal|unreachable): \[([^\]]+)\]")

    def __init__(self, emu, real_guests):
        self.emu = emu
        self.real_guests = real_guests
        self.reads = 0
        self.reset()

    def reset(self):
        self.task, self.hosts, self.play_hosts = None, set(), set()

    def line(self, text):
        play, task, host = self.PLAY.match(text), self.TASK.match(text), self.HOST.match(text)
        if play:
            self.task, self.hosts, self.play_hosts = None, set(), set()
        elif task:
            self.task, self.hosts = task.group(1), set()
        elif host and self.task:
            self.hosts.add(host.group(1))
            self.play_hosts.add(host.group(1))

    def detail(self):
        if self.task is None:
            return "starting"
        text = "in TASK [%s]" % self.task
        if self.task.startswith("Declare the VMs"):     # one task on localhost: what it waits for is the fleet
            return text + "; " + self.fleet()
        waiting = sorted(self.play_hosts - self.hosts)
        if waiting:
            text += ", waiting for %s" % ", ".join(waiting)
            # inventory names: <namespace>-<vm> (the inventory plugin's default)
            if any(host == "%s-%s" % (FLEET["fleet_namespace"], vm) for host in waiting for vm in self.real_guests):
                text += " (QEMU guests under TCG emulation: a task over SSH takes 10-40 s)"
        elif self.hosts:
            text += ", done on %s" % ", ".join(sorted(self.hosts))
        return text

    def fleet(self):
        ns = FLEET["fleet_namespace"]
        self.reads += 1
        status, doc, _ = self.emu.http("GET", "/apis/kubevirt.io/v1/namespaces/%s/virtualmachines" % ns)
        if status != 200:
            return "VM list: HTTP %s" % status
        vms = doc.get("items") or []
        to_run = [vm for vm in vms if (vm["spec"].get("runStrategy") or
                                       ("Always" if vm["spec"].get("running") else "Halted")) != "Halted"]
        waiting = [vm for vm in to_run if not (vm.get("status") or {}).get("ready")]
        text = "%d of %d VMs to run are ready (%d of %d declared)" % (
            len(to_run) - len(waiting), len(to_run), len(vms), len(FLEET["fleet_vms"]))
        if waiting:
            text += "; waiting for " + ", ".join(self.waiting_for(vm) for vm in waiting[:4])
            text += ", ..." if len(waiting) > 4 else ""
        return text

    def waiting_for(self, vm):
        name = vm["metadata"]["name"]
        text = "%s (%s" % (name, (vm.get("status") or {}).get("printableStatus") or "no status yet")
        if name in self.real_guests:
            pattern = "%s_%s_*/console.log" % (vm["metadata"]["namespace"], name)
            consoles = sorted((self.emu.workdir / "guests").glob(pattern), key=lambda path: path.stat().st_mtime)
            last = last_line(consoles[-1], 50) if consoles else ""
            text += ", QEMU guest booting%s" % (": " + last if last else "")
        return text + ")"


def last_line(path, width=70):
    """The last non-empty line of a log or console file, without terminal escapes, at most `width` characters."""
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, handle.seek(0, 2) - 4096))
            tail = handle.read().decode(errors="replace")
    except OSError:
        return ""
    lines = [re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|[\x00-\x1f]", "", line).strip() for line in re.split(r"[\r\n]", tail)]
    lines = [line for line in lines if line]
    return (lines[-1][:width - 3] + "...") if lines and len(lines[-1]) > width else (lines[-1] if lines else "")


def guest_image():
    """The guest image directory, or None and the reason why every guest is simulated."""
    if os.environ.get("VIRTFLEET_DEMO_REAL_GUESTS", "1") == "0":
        return None, "VIRTFLEET_DEMO_REAL_GUESTS=0 asks for simulated guests only"
    if "guest_images" not in inspect.signature(Emulator.__init__).parameters:
        return None, "this checkout's emulator cannot boot real guests (no guest_images support)"
    log = REPO / ".build" / "guest-image-build.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    steps = (("install the image tools", "install_deps.sh", "checking/installing the image tools (apt)"),
             ("build the guest image", "build_image.sh", "building the guest image (mmdebstrap, debvm)"))
    for step, script, doing in steps:
        args = ["bash", str(REPO / "tests" / "guest" / script)]
        if script == "build_image.sh":
            args.append(str(GUEST_IMAGE_DIR))
            print("Debian 12 guest image in %s: built on the first run (a few minutes), reused afterwards (log %s)"
                  % (GUEST_IMAGE_DIR, log), flush=True)
        with open(log, "a") as out:
            def logged(line, out=out):
                out.write(line)
                out.flush()
            rc, _ = run_command(args, cwd=REPO, step=doing, echo=False, on_line=logged,
                                detail=lambda: "log: " + (last_line(log) or "(nothing yet)"))
        if not rc and script == "build_image.sh":
            print(log.read_text(errors="replace").strip().splitlines()[-1], flush=True)
        if rc:
            tail = log.read_text(errors="replace").strip().splitlines()[-3:]
            why = "could not %s (%s exit %d%s)" % (step, script, rc, ": " + " / ".join(tail) if tail else "")
            if os.geteuid() != 0:
                why += "; run `make demo` as root to install the tools and boot real guests"
            return None, why
    return GUEST_IMAGE_DIR, None


def ssh_key(directory):
    """A fresh ed25519 key pair for this run: (private key path, public key line)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = directory / "id_ed25519"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                          serialization.NoEncryption()))
    private.chmod(0o600)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private, public.decode() + " virtfleet-demo"


def start_emulator(tmp, image_dir):
    kwargs = {"guest_images": {GUEST_IMAGE: str(image_dir)}} if image_dir else {}
    emu = Emulator(tmp / "kubeapi", controllers=("virt", "cdi", "operators"), timing="fast", **kwargs)
    try:
        with sys.stdout.step("starting the Kubernetes API emulator"):
            return emu.start(), image_dir
    except EmulatorError:
        if not image_dir:
            raise
        log = (tmp / "kubeapi" / "kubeapi.log").read_text(errors="replace").strip().splitlines()[-2:]
        print("The emulator refused the real guests (%s); every guest is simulated." % " / ".join(log), flush=True)
        emu = Emulator(tmp / "kubeapi-simulated", controllers=("virt", "cdi", "operators"), timing="fast")
        with sys.stdout.step("starting the Kubernetes API emulator (simulated guests only)"):
            return emu.start(), None


def recap_changed(output):
    return {host: int(changed) for host, changed in re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", output, re.M)}


def tunnels(emu, since=None):
    """{VMI name: number of portforward tunnels (WebSocket upgrades answered 101)} in the request log."""
    found = {}
    for entry in emu.requests(since=since):
        match = PORTFORWARD.search(entry["path"])
        if match and entry.get("status") == 101:
            found[match.group(1)] = found.get(match.group(1), 0) + 1
    return found


def describe_tunnels(found):
    return ", ".join("%s: %d" % item for item in sorted(found.items())) or "none"


def main():
    Progress.install()
    say("Set-up")
    image_dir, why = guest_image()
    if image_dir:
        print("Real guests: the 2 VMs of image %s boot with QEMU from %s" % (GUEST_IMAGE, image_dir))
    else:
        print("NOTE: %s.\nNOTE: every guest is simulated, so configure_guests.yml finds no guest to log into." % why)

    tmp = Path(tempfile.mkdtemp(prefix="virtfleet-demo-"))
    emu = None
    try:
        key, public_key = ssh_key(tmp)
        emu, image_dir = start_emulator(tmp, image_dir)
        print("Kubernetes API emulator on %s (kubeconfig %s)" % (emu.url, emu.kubeconfig), flush=True)

        inventory = tmp / "inventory"
        inventory.mkdir()
        shutil.copy(REPO / "demo" / "kubevirt.yml", inventory / "kubevirt.yml")
        env = emu.env()
        env.update({
            "ANSIBLE_COLLECTIONS_PATH": str(REPO / ".build" / "collections"),
            "ANSIBLE_LOCAL_TEMP": str(tmp / "ansible-tmp"),
            "ANSIBLE_PRIVATE_KEY_FILE": str(key),
            # Each guest makes its host keys at first boot; 127.0.0.1:<nodePort> differs per guest and per run.
            "ANSIBLE_HOST_KEY_CHECKING": "False",
            "ANSIBLE_SSH_ARGS": "-o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile=/dev/null",
            "ANSIBLE_PIPELINING": "True", "ANSIBLE_TIMEOUT": "30",
            "ANSIBLE_LOCALHOST_WARNING": "False", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False",
            "ANSIBLE_DEPRECATION_WARNINGS": "False", "ANSIBLE_RETRY_FILES_ENABLED": "False",
        })
        site = [BIN / "ansible-playbook", "-i", inventory, *INSTALL_VARS, "-e", "@%s" % (REPO / "demo" / "fleet.yml"),
                "-e", '{"fleet_ssh_authorized_keys": ["%s"]}' % public_key,
                "-e", "configure_guests_hosts=%s" % GUEST_GROUP, REPO / "playbooks" / "site.yml"]

        real_guests = {vm["name"] for vm in FLEET["fleet_vms"] if image_dir and vm.get("image") == GUEST_IMAGE}
        watch = AnsibleProgress(emu, real_guests)
        say("site.yml: prepare nodes -> install KubeVirt + CDI -> declare 20 VMs -> configure the guests")
        run(site, env, tmp, "site.yml", watch)

        say("The running VMs, as the inventory plugin lists them")
        run([BIN / "ansible-inventory", "-i", inventory, "--graph"], env, tmp, "ansible-inventory --graph")
        print("address_api_tunnel: running VMs without a Service, reached through the API server (the simulated ones "
              "have no SSH server behind it, so only %s is configured)." % GUEST_GROUP, flush=True)

        if image_dir:
            say("How Ansible reached the real guests (vm_address_source)")
            run([BIN / "ansible", "-i", inventory, GUEST_GROUP, "-m", "ansible.builtin.debug", "-a",
                 "msg=\"{{ vm_address_source }}: ssh {{ ansible_user }}@{{ ansible_host }} -p {{ ansible_port }}, "
                 "{{ 'through the Kubernetes API server (VMI portforward; ssh ProxyCommand: the collection bridge "
                 "_api_tunnel.py)' if vm_address_source == 'api_tunnel' else 'a NodePort Service on the node' }}\""],
                env, tmp, "ansible (how the real guests are reached; no SSH)")
            print("Tunnels the API server carried so far (VMI portforward, WebSocket upgrades answered 101), per VMI: "
                  "%s." % describe_tunnels(tunnels(emu)), flush=True)
            say("What configure_guests.yml left in the real guests (over SSH)")
            run([BIN / "ansible", "-i", inventory, GUEST_GROUP, "-m", "ansible.builtin.shell", "-a",
                 "echo hostname=$(hostname); cat /etc/virtfleet-managed; dpkg-query -W openssh-server"], env, tmp,
                "ansible (a shell command in the real guests over SSH)")

        say("site.yml again: nothing to change")
        mark = emu.mark()
        out = run(site, env, tmp, "site.yml (second run)", watch)
        changed = recap_changed(out)
        print("Second run: changed=%s per host (%s)" % (sum(changed.values()), ", ".join(
            "%s=%d" % item for item in sorted(changed.items()))))
        if any(changed.values()):
            raise SystemExit("demo: the second site.yml run changed something")
        if image_dir:
            print("Tunnels opened in the second run, per VMI: %s (ssh's ControlPersist keeps a host's connection, and "
                  "with it its tunnel, open for 60 s after its last task)." % describe_tunnels(tunnels(emu, mark)))
        print("\n%d HTTP requests reached the API in the whole demo%s." % (
            len(emu.requests()) - watch.reads,
            " (not counting the %d GETs of the progress lines)" % watch.reads if watch.reads else ""))
    finally:
        say("Clean-up")
        if emu is not None:
            with sys.stdout.step("stopping the emulator and its guests"):
                emu.stop()
            print("Emulator stopped%s." % (" (with it, the QEMU guests)" if image_dir else ""))
        shutil.rmtree(tmp, ignore_errors=True)
        print("Removed %s. Demo took %ds." % (tmp, time.monotonic() - STARTED), flush=True)


if __name__ == "__main__":
    main()
