"""virt-api's `portforward` subresource: which guest port a tunnel reaches, and the errors virt-api gives first.

KubeVirt v1.9.0 (github.com/kubevirt/kubevirt, tag v1.9.0) serves
`GET /apis/subresources.kubevirt.io/{v1,v1alpha3}/namespaces/NS/virtualmachineinstances/NAME/portforward/PORT[/PROTOCOL]`
and the same under `virtualmachines/NAME` (pkg/virt-api/api.go, `composeSubresources`: routes `vmi-PortForward`,
`vmi-PortForwardWithProtocol`, `vm-PortForward`, `vm-PortForwardWithProtocol`). kube-apiserver authorises the
aggregated request first (verb `get` on `virtualmachineinstances/portforward` in `subresources.kubevirt.io`; virt-api's
own SubjectAccessReview in rest/authorizer.go `addNamespacedResourceAttributes` drops the port and protocol from the
subresource the same way), then `PortForwardRequestHandler` (rest/portforward.go) runs `Streamer.Handle`
(rest/streamer.go), which dials the guest BEFORE upgrading the connection, so every failure below is an ordinary
Status answer (rest/subresource.go `writeError`), never a closed WebSocket:

* `FetchVirtualMachineInstance`: VMI missing -> 404 `virtualmachineinstance.kubevirt.io "NAME" not found`
  (`FetchVirtualMachineInstanceForVM` for the VM route: VM missing -> 404 `virtualmachine.kubevirt.io ...`, VM without
  a created VMI -> 409 `... virtualmachine.kubevirt.io "NAME": VMI is not started`);
* `validateVMIForPortForward`: Paused condition -> 409 `Operation cannot be fulfilled on virtualmachineinstance.
  kubevirt.io "NAME": VMI is paused`;
* `netDial.DialUnderlying` (rest/dialers.go): `getTargetInterfaceIP` takes `status.interfaces[0].ipAddress`; no
  interfaces yet (a VMI that is not running: Pending, Scheduling, Scheduled) -> 400 `no network interfaces are
  present`. virt-api does not look at the phase: it dials `ip:port` with `net.Dial(protocol, addr)` from its own pod,
  and a refused or unreachable port is 500 `Internal error occurred: dialing VM: dial tcp IP:PORT: connect:
  connection refused` (`k8serrors.NewInternalError(fmt.Errorf("dialing VM: %w", err))`).

What the emulator dials instead of the pod network: `GuestPorts`, one map (namespace, VMI name, port) -> (host,
port). Real QEMU guests (controllers/realguest.py) register guest port 22 -> their user-net hostfwd port on
127.0.0.1 once sshd answers, and remove it when QEMU stops; the test hook `PUT /_emulator/guest-ports` registers any
TCP server as a VMI's port (tests/kubeapi/test_portforward.py uses an echo server). A port nobody registered is
closed (connection refused), as is every port of a simulated VMI. A VMI that has ended (Succeeded/Failed: its pod is
gone, the IP in its stale status answers nothing) gets `connect: no route to host`, what a dial to a released pod IP
on the node's bridge returns. Only tcp is emulated: `udp` is answered 500 `dialing VM: dial udp ...: the emulator
forwards tcp only` (virt-api would forward datagrams).
"""
import socket
import threading

from . import errors
from .controllers.virt import _virt_not_found, _vm_conflict, _vmi_conflict

VM = ("kubevirt.io", "virtualmachines")
VMI = ("kubevirt.io", "virtualmachineinstances")
DIAL_TIMEOUT = 10


class GuestPorts:
    """(namespace, VMI name, guest port) -> (host, port, VMI uid or None): where a guest's TCP port is reached."""

    def __init__(self):
        self._lock = threading.Lock()
        self._map = {}

    def register(self, ns, name, port, host, target_port, uid=None):
        with self._lock:
            self._map[(ns, name, int(port))] = (host, int(target_port), uid)

    def unregister(self, ns, name, port, uid=None):
        """Remove the entry; with `uid`, only if it was registered for that VMI (a newer VMI keeps its own)."""
        with self._lock:
            cur = self._map.get((ns, name, int(port)))
            if cur is not None and (uid is None or cur[2] == uid):
                del self._map[(ns, name, int(port))]

    def address(self, ns, name, port, uid=None):
        """(host, port) for guest port `port` of VMI ns/name (the VMI with `uid`), or None: nothing listens there."""
        with self._lock:
            cur = self._map.get((ns, name, int(port)))
        if cur is None or (uid is not None and cur[2] is not None and cur[2] != uid):
            return None
        return cur[0], cur[1]

    def items(self):
        with self._lock:
            return [{"namespace": k[0], "name": k[1], "port": k[2], "host": v[0], "target_port": v[1], "uid": v[2]}
                    for k, v in sorted(self._map.items())]


def _internal(cause):
    """k8serrors.NewInternalError(err): 500, message "Internal error occurred: " + err, err as the one cause."""
    return errors.ApiError(500, "InternalError", "Internal error occurred: " + cause, {"causes": [{"message": cause}]})


def _dial_error(protocol, ip, port, why):
    addr = "[%s]:%s" % (ip, port) if ":" in ip else "%s:%s" % (ip, port)
    return _internal("dialing VM: dial %s %s: %s" % (protocol, addr, why))


def fetch_vmi(store, ns, name, via_vm=False):
    """The VMI, as `FetchVirtualMachineInstance` (or `FetchVirtualMachineInstanceForVM`) finds it, or ApiError."""
    if via_vm:
        vm = store.get(VM, ns, name)
        if vm is None:
            raise _virt_not_found("virtualmachine", name)
        if not (vm.get("status") or {}).get("created"):
            raise _vm_conflict(name, "VMI is not started")
        vmi = store.get(VMI, ns, name)
        if vmi is None:
            raise _virt_not_found("virtualmachineinstance", name)
        if not any(r.get("uid") == vm["metadata"]["uid"] for r in vmi["metadata"].get("ownerReferences") or []):
            raise _internal("unable to retrieve vmi [%s] for vm: <nil>" % name)
        return vmi
    vmi = store.get(VMI, ns, name)
    if vmi is None:
        raise _virt_not_found("virtualmachineinstance", name)
    return vmi


def dial(app, ns, name, port, protocol=None, via_vm=False):
    """A connected socket to guest port `port` of VMI ns/name, or the ApiError virt-api answers (see the docstring)."""
    vmi = fetch_vmi(app.store, ns, name, via_vm)
    status = vmi.get("status") or {}
    if any(c.get("type") == "Paused" and c.get("status") == "True" for c in status.get("conditions") or []):
        raise _vmi_conflict(name, "VMI is paused")
    interfaces = status.get("interfaces") or []
    if not interfaces:
        raise errors.bad_request("no network interfaces are present")
    ip = interfaces[0].get("ipAddress") or ""
    if not port:
        raise errors.bad_request("port must not be empty")
    protocol = protocol or "tcp"
    if protocol not in ("tcp", "tcp4", "tcp6"):
        if protocol in ("udp", "udp4", "udp6"):
            raise _dial_error(protocol, ip, port, "the emulator forwards tcp only")
        raise _internal("dialing VM: dial %s: unknown network %s" % (protocol, protocol))
    if not port.isdigit():
        raise _internal("dialing VM: dial %s: lookup %s/%s: unknown port" % (protocol, protocol, port))
    number = int(port)
    if number > 65535:
        raise _internal("dialing VM: dial %s: address %s: invalid port" % (protocol, port))
    if status.get("phase") in ("Succeeded", "Failed"):
        raise _dial_error(protocol, ip, port, "connect: no route to host")
    target = app.guest_ports.address(ns, name, number, vmi["metadata"].get("uid"))
    if target is None:
        raise _dial_error(protocol, ip, port, "connect: connection refused")
    try:
        sock = socket.create_connection(target, timeout=DIAL_TIMEOUT)
    except socket.timeout:
        raise _dial_error(protocol, ip, port, "connect: connection timed out")
    except OSError as exc:
        raise _dial_error(protocol, ip, port, "connect: " + (exc.strerror or str(exc)).lower())
    sock.settimeout(None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)    # as Go's net.Dial
    return sock
