"""Real guests behind the emulator: VMIs whose boot disk names a mapped image run as QEMU TCG guests.

`--guest-image IMAGE=DIR` maps a container image (a containerDisk `image`, or a DataVolume's
`source.registry.url` without `docker://`) to a local Debian image dir built by tests/guest/build_image.sh.
When the virt controller moves such a VMI to Running it calls `launch()`: QEMU boots the image with
-snapshot (the cached image stays pristine) and a vfat `cidata` seed disk holding the VM's cloudInitNoCloud
user data, meta data and network config, so the SSH key in the VM spec is what lets Ansible in.

What the API shows (tests/kubeapi/README.md, "controllers" row; this docstring is the full contract):
- Real-guest VMIs are scheduled on Node `localnode` (InternalIP 127.0.0.1), simulated ones never are. A live
  migration (virt.py) may move a real guest's VMI to any other Ready, schedulable node: only its `nodeName` changes,
  the QEMU process keeps running (same pid, same boot), so the guest stays reachable through the portforward
  subresource (the API tunnel) and the NodePort proxy on 127.0.0.1. A simulated node's InternalIP (192.0.2.x) is not
  routable on this machine, so an inventory's node_port address of a real guest that moved there is not reachable;
  api_tunnel is. LiveMigratable is what virt.py computes for the spec (a containerDisk + cloudInitNoCloud guest is
  migratable).
- Phase Running once QEMU runs (the domain is up); condition Ready stays False (reason GuestNotReady) until
  the guest's SSH port sends its banner, as a tcpSocket readiness probe on port 22 would. No guest agent:
  no AgentConnected condition, empty guestOSInfo, interfaces reported by the "domain".
- Each real-guest VM gets a Service `<vm>-ssh` (NodePort, selector vm.kubevirt.io/name=<vm>, port 22 "ssh"),
  owned by the VM (standing in for the user's `virtctl expose`), unless the VM has the label
  `kubeapi-emulator/ssh-service: none` (a guest with no Service at all, reached only through the API server's
  portforward; a Service that exists already is left alone). A small kube-proxy listens on 127.0.0.1:<nodePort> for every NodePort Service and forwards
  to the QEMU user-net hostfwd port of a ready real guest its selector matches; NodePort Services created
  without nodePort get one allocated (30000-32767, free on 127.0.0.1).
- The VMI `portforward` subresource (virt-api's WebSocket tunnel, server.py/portforward.py) reaches guest port 22
  through the same hostfwd port: `guest_address()` names it once the guest is ready (SSH banner) and registers it
  in `app.guest_ports`, the lookup every portforward dials; it is removed when QEMU stops. Other guest ports have no
  forward, so a portforward to them is refused (500 `dialing VM: ... connection refused`, as virt-api answers).
- Deleting the VMI (VM stop, VM delete, namespace delete) kills the QEMU process group; a guest that powers
  itself off ends its VMI as Succeeded (Failed when QEMU dies with an error).
"""
import base64
import ctypes
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

from .. import errors
from ..api import Options, now
from . import Controller

VM = ("kubevirt.io", "virtualmachines")
VMI = ("kubevirt.io", "virtualmachineinstances")
SERVICES = ("", "services")
SECRETS = ("", "secrets")
DATAVOLUMES = ("cdi.kubevirt.io", "datavolumes")
NODE_NAME = "localnode"
NODE_IP = "127.0.0.1"
MEM_DEFAULT, MEM_MIN, MEM_MAX = 512, 384, 1024     # MiB; 2-core CI machines run several guests at once
READY_TIMEOUT = 900
NODE_PORT_RANGE = (30000, 32767)
SSH_PORT = 22
NAME_LABEL = "vm.kubevirt.io/name"
# A VM labelled NO_SERVICE_LABEL=none gets no `<vm>-ssh` Service (see the module docstring).
NO_SERVICE_LABEL = "kubeapi-emulator/ssh-service"
TOOLS = ("qemu-system-x86_64", "mkfs.vfat", "mcopy")
UNITS = {"": 1, "k": 1000, "M": 1000 ** 2, "G": 1000 ** 3, "T": 1000 ** 4,
         "Ki": 1024, "Mi": 1024 ** 2, "Gi": 1024 ** 3, "Ti": 1024 ** 4}


def _which(tool):
    return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")


def check_setup(images):
    """Refuse to start with a clear message when a tool or an image file is missing."""
    missing = [t for t in TOOLS if not _which(t)]
    if missing:
        raise SystemExit("kubeapi: --guest-image needs %s: run tests/guest/install_deps.sh as root" % ", ".join(missing))
    for image, path in images.items():
        for fname in ("rootfs.ext4", "vmlinuz", "initrd.img", "label"):
            if not (Path(path) / fname).is_file():
                raise SystemExit("kubeapi: --guest-image %s=%s: %s is missing; build it with "
                                 "tests/guest/build_image.sh %s" % (image, path, fname, path))


def parse_mib(quantity):
    """A Kubernetes memory quantity in MiB (None when absent or unparsable)."""
    if quantity is None:
        return None
    text = str(quantity).strip()
    for suffix in sorted(UNITS, key=len, reverse=True):
        if suffix and text.endswith(suffix):
            number, unit = text[:-len(suffix)], UNITS[suffix]
            break
    else:
        number, unit = text, 1
    try:
        return int(float(number) * unit / (1024 ** 2))
    except ValueError:
        return None


def guest_memory_mib(spec):
    domain = spec.get("domain") or {}
    resources = domain.get("resources") or {}
    for q in ((domain.get("memory") or {}).get("guest"), (resources.get("requests") or {}).get("memory"),
              (resources.get("limits") or {}).get("memory")):
        mib = parse_mib(q)
        if mib:
            return max(MEM_MIN, min(MEM_MAX, mib))
    return MEM_DEFAULT


def boot_volume(spec):
    """The volume of the boot disk: lowest bootOrder, else the first disk, else the first volume."""
    volumes = {v.get("name"): v for v in spec.get("volumes") or []}
    disks = [d for d in ((spec.get("domain") or {}).get("devices") or {}).get("disks") or [] if d.get("name") in volumes]
    if disks:
        ordered = sorted(disks, key=lambda d: d.get("bootOrder") or 10 ** 6)
        return volumes[ordered[0]["name"]]
    vols = [v for v in spec.get("volumes") or [] if "cloudInitNoCloud" not in v and "cloudInitConfigDrive" not in v]
    return vols[0] if vols else None


def _normalize_image(ref):
    ref = (ref or "").strip()
    return ref[len("docker://"):] if ref.startswith("docker://") else ref


def _secret_value(store, ns, ref, keys):
    secret = store.get(SECRETS, ns, (ref or {}).get("name", ""))
    if secret is None:
        return None
    data = secret.get("data") or {}
    for key in keys:
        if key in data:
            return base64.b64decode(data[key]).decode(errors="replace")
    return None


def cloud_init_seed(spec, store, ns):
    """(user_data, network_data) from the cloudInitNoCloud volume, or (None, None)."""
    for vol in spec.get("volumes") or []:
        ci = vol.get("cloudInitNoCloud")
        if ci is None:
            continue
        user = ci.get("userData")
        if user is None and ci.get("userDataBase64"):
            user = base64.b64decode(ci["userDataBase64"]).decode(errors="replace")
        if user is None and ci.get("secretRef"):
            user = _secret_value(store, ns, ci["secretRef"], ("userdata", "userData"))
        net = ci.get("networkData")
        if net is None and ci.get("networkDataBase64"):
            net = base64.b64decode(ci["networkDataBase64"]).decode(errors="replace")
        if net is None and ci.get("networkDataSecretRef"):
            net = _secret_value(store, ns, ci["networkDataSecretRef"], ("networkdata", "networkData"))
        return user, net
    return None, None


def _port_is_free(port):
    with socket.socket() as sock:
        try:
            sock.bind((NODE_IP, port))
        except OSError:
            return False
    return True


def _free_port():
    with socket.socket() as sock:
        sock.bind((NODE_IP, 0))
        return sock.getsockname()[1]


_LIBC = ctypes.CDLL(None, use_errno=True)


def _die_with_parent():
    # QEMU must not outlive an emulator killed with SIGKILL (PR_SET_PDEATHSIG = 1). It fires when the forking
    # thread ends: that is the virt-controller thread, which lives as long as the emulator.
    _LIBC.prctl(1, signal.SIGKILL, 0, 0, 0)


class Guest:
    """One QEMU process backing one VMI (by uid)."""

    def __init__(self, vmi, image_dir, workdir):
        meta = vmi["metadata"]
        self.ns, self.name, self.uid = meta["namespace"], meta["name"], meta["uid"]
        self.image_dir = Path(image_dir)
        self.dir = Path(workdir) / ("%s_%s_%s" % (self.ns, self.name, self.uid[:8]))
        self.console = self.dir / "console.log"
        self.port = None
        self.proc = None
        self.started = None
        self.ready_after = None
        self.stopping = False


class RealGuests(Controller):
    """Launches/stops the QEMU guests, keeps the `<vm>-ssh` Services and runs the NodePort proxy."""

    name = "real-guests"
    watches = (VM, VMI, SERVICES)

    def __init__(self, app, images, workdir):
        super().__init__(app)
        self.images = {_normalize_image(k): str(Path(v).resolve()) for k, v in images.items()}
        self.workdir = Path(workdir)
        self.guests = {}                 # VMI uid -> Guest
        self.lock = threading.RLock()
        self.listeners = {}              # nodePort -> (socket, (ns, service name))
        self._allocated = set()

    def setup(self):
        check_setup(self.images)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.app.add_node(NODE_NAME, NODE_IP)
        for svc in self.store.items(SERVICES):
            self._sync_service(svc["metadata"]["namespace"], svc["metadata"]["name"])

    def stop(self):
        super().stop()
        with self.lock:
            guests = list(self.guests.values())
            listeners = list(self.listeners.values())
            self.listeners.clear()
        for guest in guests:
            self._kill(guest)
        for sock, _ in listeners:
            sock.close()

    # --- which VMs are real -----------------------------------------------------------------------------
    def image_for(self, spec, ns):
        vol = boot_volume(spec or {})
        if vol is None:
            return None
        if vol.get("containerDisk"):
            return self.images.get(_normalize_image(vol["containerDisk"].get("image")))
        if vol.get("dataVolume"):
            dv = self.store.get(DATAVOLUMES, ns, vol["dataVolume"].get("name", ""))
            url = ((((dv or {}).get("spec") or {}).get("source") or {}).get("registry") or {}).get("url")
            return self.images.get(_normalize_image(url)) if url else None
        return None

    def handles(self, vmi):
        return self.image_for(vmi.get("spec"), vmi["metadata"]["namespace"]) is not None

    def filter_nodes(self, vmi, nodes):
        """Nodes a VMI may be placed on: real guests start on NODE_NAME, simulated VMIs never go there. A VMI that
        already has a node is being migrated (virt.py:_migration_targets): a real guest may go to any node then, as its
        QEMU process stays where it is."""
        real = self.handles(vmi)
        if real and ((vmi.get("status") or {}).get("nodeName")):
            return list(nodes)
        return [n for n in nodes if (n["metadata"]["name"] == NODE_NAME) == real]

    # --- QEMU lifecycle ---------------------------------------------------------------------------------
    def launch(self, vmi):
        """Boot the guest; returns a status mutation for the Running write (called by the virt controller)."""
        spec = vmi.get("spec") or {}
        meta = vmi["metadata"]
        image_dir = self.image_for(spec, meta["namespace"])
        with self.lock:
            old = self.guests.get(meta["uid"])
        if old is not None and old.proc.poll() is None:
            return self._running_status(old)
        guest = Guest(vmi, image_dir, self.workdir)
        try:
            self._start_qemu(guest, vmi)
        except (OSError, subprocess.CalledProcessError) as exc:
            print("kubeapi: real guest %s/%s did not start: %s" % (guest.ns, guest.name, exc), flush=True)
            reason = str(exc)[:500]

            def failed(o):
                o["status"]["phase"] = "Failed"
                o["status"]["reason"] = "GuestStartFailed"
                for c in o["status"].get("conditions") or []:
                    if c.get("type") == "Ready":
                        c.update(status="False", reason="GuestStartFailed", message=reason)
            return failed
        with self.lock:
            self.guests[guest.uid] = guest
        threading.Thread(target=self._watch, args=(guest,), name="guest-" + guest.name, daemon=True).start()
        return self._running_status(guest)

    def _running_status(self, guest):
        def mutate(o):
            st = o["status"]
            o["metadata"].setdefault("labels", {})[NAME_LABEL] = guest.name
            st["guestOSInfo"] = {}
            for iface in st.get("interfaces") or []:
                iface["infoSource"] = "domain"
            conds = [c for c in st.get("conditions") or [] if c.get("type") != "AgentConnected"]
            for c in conds:
                if c.get("type") == "Ready" and guest.ready_after is None:
                    c.update(status="False", reason="GuestNotReady",
                             message="waiting for the guest's SSH port (real QEMU guest, see %s)" % guest.console)
            st["conditions"] = conds
        return mutate

    def _seed(self, guest, vmi):
        spec = vmi.get("spec") or {}
        user, net = cloud_init_seed(spec, self.store, guest.ns)
        files = {"meta-data": json.dumps({"instance-id": "%s.%s" % (guest.name, guest.ns),
                                          "local-hostname": spec.get("hostname") or guest.name}) + "\n",
                 "user-data": user if user is not None else "#cloud-config\n{}\n"}
        if net:
            files["network-config"] = net
        for fname, text in files.items():
            (guest.dir / fname).write_text(text)
        seed = guest.dir / "seed.img"
        subprocess.run(["truncate", "-s", "4M", str(seed)], check=True)
        subprocess.run([_which("mkfs.vfat"), "-n", "CIDATA", str(seed)], check=True, capture_output=True)
        for fname in files:
            subprocess.run([_which("mcopy"), "-o", "-i", str(seed), str(guest.dir / fname), "::/" + fname],
                           check=True, capture_output=True)
        return seed

    def _start_qemu(self, guest, vmi):
        guest.dir.mkdir(parents=True, exist_ok=True)
        seed = self._seed(guest, vmi)
        guest.port = _free_port()
        image = guest.image_dir
        label = (image / "label").read_text().strip()
        argv = [_which("qemu-system-x86_64"), "-name", "%s/%s" % (guest.ns, guest.name), "-uuid", guest.uid,
                "-accel", "tcg", "-cpu", "max", "-smp", "1", "-m", str(guest_memory_mib(vmi.get("spec") or {})),
                "-nographic", "-monitor", "none", "-serial", "file:%s" % guest.console,
                "-kernel", str(image / "vmlinuz"), "-initrd", str(image / "initrd.img"),
                "-append", "root=LABEL=%s rw console=ttyS0" % label,
                "-drive", "media=disk,format=raw,if=virtio,cache=unsafe,file=%s" % (image / "rootfs.ext4"),
                "-drive", "media=disk,format=raw,if=virtio,readonly=on,file=%s" % seed,
                "-snapshot",
                "-netdev", "user,id=net0,hostfwd=tcp:%s:%d-:%d" % (NODE_IP, guest.port, SSH_PORT),
                "-device", "virtio-net-pci,netdev=net0", "-device", "virtio-rng-pci"]
        with open(guest.dir / "qemu.log", "wb") as log:
            guest.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True, preexec_fn=_die_with_parent)
        guest.started = time.monotonic()
        (guest.dir / "pid").write_text(str(guest.proc.pid))
        print("kubeapi: real guest %s/%s: QEMU pid %d, ssh hostfwd 127.0.0.1:%d, console %s"
              % (guest.ns, guest.name, guest.proc.pid, guest.port, guest.console), flush=True)

    def _watch(self, guest):
        """Readiness (SSH banner), then wait for QEMU to end; report what ended it."""
        while guest.proc.poll() is None and not guest.stopping and guest.ready_after is None:
            if time.monotonic() - guest.started > READY_TIMEOUT:
                print("kubeapi: real guest %s/%s: no SSH banner after %ds; see %s"
                      % (guest.ns, guest.name, READY_TIMEOUT, guest.console), flush=True)
                break
            if self._banner(guest.port):
                guest.ready_after = time.monotonic() - guest.started
                (guest.dir / "ready_after").write_text("%.1f\n" % guest.ready_after)
                print("kubeapi: real guest %s/%s ready (SSH) after %.1fs" % (guest.ns, guest.name, guest.ready_after),
                      flush=True)
                self._write_vmi(guest, self._ready)
                self.app.guest_ports.register(guest.ns, guest.name, SSH_PORT, NODE_IP, guest.port, uid=guest.uid)
                break
            time.sleep(1)
        rc = guest.proc.wait()
        self.app.guest_ports.unregister(guest.ns, guest.name, SSH_PORT, uid=guest.uid)
        if not guest.stopping:
            phase = "Succeeded" if rc == 0 else "Failed"
            print("kubeapi: real guest %s/%s: QEMU exited (%s): VMI %s" % (guest.ns, guest.name, rc, phase), flush=True)
            self._write_vmi(guest, lambda o: self._ended(o, phase))
        with self.lock:
            if self.guests.get(guest.uid) is guest:
                del self.guests[guest.uid]

    @staticmethod
    def _banner(port):
        try:
            with socket.create_connection((NODE_IP, port), timeout=5) as sock:
                sock.settimeout(5)
                return sock.recv(64).startswith(b"SSH-")
        except OSError:
            return False

    @staticmethod
    def _ready(o):
        for c in (o.get("status") or {}).get("conditions") or []:
            if c.get("type") == "Ready":
                c.update(status="True", lastTransitionTime=now())
                c.pop("reason", None)
                c.pop("message", None)

    @staticmethod
    def _ended(o, phase):
        st = o.setdefault("status", {})
        if st.get("phase") in ("Succeeded", "Failed"):
            return False
        st["phase"] = phase
        st.setdefault("phaseTransitionTimestamps", []).append({"phase": phase, "phaseTransitionTimestamp": now()})
        for c in st.get("conditions") or []:
            if c.get("type") == "Ready":
                c.update(status="False", reason="GuestNotRunning", message="the QEMU guest has shut down")

    def _write_vmi(self, guest, mutate):
        def guarded(o):
            if o["metadata"].get("uid") != guest.uid or o["metadata"].get("deletionTimestamp"):
                return False
            return mutate(o)
        self.api.write_status(self.app.registry.get(*VMI), guest.ns, guest.name, guarded, "virt-handler")

    def guest_address(self, ns, name, port):
        """(host, port) reaching guest port `port` of VMI ns/name: its QEMU hostfwd for port 22 once the guest is ready;
        None when that VMI is not a real running guest or the port has no forward."""
        if int(port) != SSH_PORT:
            return None
        vmi = self.store.get(VMI, ns, name)
        with self.lock:
            guest = self.guests.get(vmi["metadata"]["uid"]) if vmi is not None else None
        if guest is None or guest.stopping or guest.ready_after is None or guest.proc.poll() is not None:
            return None
        return NODE_IP, guest.port

    def _kill(self, guest):
        guest.stopping = True
        self.app.guest_ports.unregister(guest.ns, guest.name, SSH_PORT, uid=guest.uid)
        proc = guest.proc
        if proc is None or proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        print("kubeapi: real guest %s/%s: QEMU pid %d stopped" % (guest.ns, guest.name, proc.pid), flush=True)

    # --- events -----------------------------------------------------------------------------------------
    def reconcile(self, rkey, ns, name, etype, obj):
        if rkey == VMI:
            if etype == "DELETED" or obj["metadata"].get("deletionTimestamp"):
                with self.lock:
                    guest = self.guests.get(obj["metadata"]["uid"])
                if guest is not None and not guest.stopping:
                    self._kill(guest)
        elif rkey == VM:
            if etype != "DELETED" and not obj["metadata"].get("deletionTimestamp"):
                spec = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
                if self.image_for(spec, ns) is not None and \
                        (obj["metadata"].get("labels") or {}).get(NO_SERVICE_LABEL) != "none":
                    self._ensure_ssh_service(obj)
        elif rkey == SERVICES:
            self._sync_service(ns, name)

    def _ensure_ssh_service(self, vm):
        meta = vm["metadata"]
        name = "%s-ssh" % meta["name"]
        if self.store.get(SERVICES, meta["namespace"], name) is not None:
            return
        svc = {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": name, "namespace": meta["namespace"],
                            "labels": {"app.kubernetes.io/managed-by": "kubeapi-emulator", NAME_LABEL: meta["name"]},
                            "ownerReferences": [{"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
                                                 "name": meta["name"], "uid": meta["uid"]}]},
               "spec": {"type": "NodePort", "selector": {NAME_LABEL: meta["name"]},
                        "ports": [{"name": "ssh", "protocol": "TCP", "port": SSH_PORT, "targetPort": SSH_PORT,
                                   "nodePort": self._allocate_node_port()}]}}
        try:
            self.api.create(self.app.registry.get(*SERVICES), "v1", meta["namespace"], svc,
                            Options(validation="Ignore", manager="kubeapi-realguests"))
        except errors.ApiError as exc:   # e.g. the namespace is terminating; the next VM event retries
            print("kubeapi: real guests: could not create Service %s/%s: %s" % (meta["namespace"], name, exc),
                  flush=True)

    # --- NodePort allocation and proxy ("kube-proxy") ---------------------------------------------------
    def _allocate_node_port(self):
        used = {p.get("nodePort") for s in self.store.items(SERVICES) for p in (s.get("spec") or {}).get("ports") or []}
        candidates = list(range(NODE_PORT_RANGE[0], NODE_PORT_RANGE[1] + 1))
        random.shuffle(candidates)
        for port in candidates:
            if port not in used and port not in self._allocated and _port_is_free(port):
                self._allocated.add(port)
                return port
        raise RuntimeError("no free node port in %d-%d" % NODE_PORT_RANGE)

    def _sync_service(self, ns, name):
        svc = self.store.get(SERVICES, ns, name)
        spec = (svc or {}).get("spec") or {}
        if svc is not None and spec.get("type") in ("NodePort", "LoadBalancer") and \
                any(p.get("nodePort") is None for p in spec.get("ports") or []):
            # The API server allocates node ports at create time; here it happens one event later.
            new = json.loads(json.dumps(svc))
            for p in new["spec"].get("ports") or []:
                if p.get("nodePort") is None:
                    p["nodePort"] = self._allocate_node_port()
            try:
                self.api.update(self.app.registry.get(*SERVICES), "v1", ns, name, new,
                                Options(manager="kube-apiserver", validation="Ignore", trusted=True))
            except errors.ApiError as exc:   # changed meanwhile: its event brings us back here
                if exc.code != 409:
                    raise
            return
        wanted = set()
        if svc is not None and spec.get("type") in ("NodePort", "LoadBalancer"):
            wanted = {p["nodePort"] for p in spec.get("ports") or [] if p.get("nodePort")}
        with self.lock:
            for port, (sock, owner) in list(self.listeners.items()):
                if owner == (ns, name) and port not in wanted:
                    sock.close()
                    del self.listeners[port]
            for port in wanted:
                if port in self.listeners:
                    continue
                sock = socket.socket()
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind((NODE_IP, port))
                except OSError as exc:
                    print("kubeapi: kube-proxy: cannot listen on %s:%d for Service %s/%s: %s"
                          % (NODE_IP, port, ns, name, exc), flush=True)
                    sock.close()
                    continue
                sock.listen(16)
                self.listeners[port] = (sock, (ns, name))
                threading.Thread(target=self._accept, args=(sock, ns, name, port), daemon=True,
                                 name="kube-proxy-%d" % port).start()

    def _accept(self, sock, ns, name, port):
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return    # closed: Service gone or emulator stopping
            threading.Thread(target=self._forward, args=(conn, ns, name, port), daemon=True).start()

    def _backend(self, ns, name, node_port):
        """hostfwd port of a ready real guest behind the Service's node port, or None (no endpoints)."""
        svc = self.store.get(SERVICES, ns, name)
        if svc is None:
            return None
        spec = svc.get("spec") or {}
        entry = next((p for p in spec.get("ports") or [] if p.get("nodePort") == node_port), None)
        selector = spec.get("selector") or {}
        if entry is None or not selector:
            return None
        with self.lock:
            guests = [g for g in self.guests.values() if g.ns == ns and g.ready_after is not None and not g.stopping]
        for guest in sorted(guests, key=lambda g: g.name):
            vmi = self.store.get(VMI, ns, guest.name)
            if vmi is None or vmi["metadata"]["uid"] != guest.uid:
                continue
            # virt-launcher pod labels: the VMI's labels plus these.
            labels = dict(vmi["metadata"].get("labels") or {}, **{
                "kubevirt.io": "virt-launcher", "kubevirt.io/created-by": guest.uid, NAME_LABEL: guest.name})
            if any(labels.get(k) != v for k, v in selector.items()):
                continue
            target = entry.get("targetPort", entry.get("port"))
            if isinstance(target, str) and not target.isdigit():
                named = {p.get("name"): p.get("port") for i in ((vmi["spec"].get("domain") or {}).get("devices") or {})
                         .get("interfaces") or [] for p in i.get("ports") or []}
                target = named.get(target)
            if target is not None and int(target) == SSH_PORT:
                return guest.port
        return None

    def _forward(self, conn, ns, name, node_port):
        port = self._backend(ns, name, node_port)
        if port is None:
            conn.close()
            return
        try:
            upstream = socket.create_connection((NODE_IP, port), timeout=10)
        except OSError:
            conn.close()
            return
        upstream.settimeout(None)

        def pipe(src, dst):
            try:
                while True:
                    data = src.recv(65536)
                    if not data:
                        break
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
        back = threading.Thread(target=pipe, args=(upstream, conn), daemon=True)
        back.start()
        pipe(conn, upstream)
        back.join()
        conn.close()
        upstream.close()
