"""virt-api's `portforward` subresource in the emulator: the WebSocket tunnel to a VMI's port (issue #19).

The client here is written from RFC 6455 in this file (a raw socket, TLS from `ssl`), not with the emulator's own
framing code, so the two check each other; websocket-client (the library the collection's bridge uses) is checked
too. Guests are TCP servers of the test registered as the VMI's port through `/_emulator/guest-ports`, the lookup
real QEMU guests fill for port 22 (portforward.py `GuestPorts`). What is asserted is what KubeVirt v1.9.0's virt-api
does (sources cited in tests/kubeapi/portforward.py and websocket.py).
"""
import base64
import hashlib
import json
import os
import socket
import ssl
import struct
import threading
import time
import urllib.parse

import pytest

from .tcpguest import TcpGuest
from .test_client import vm_body

PF = "/apis/subresources.kubevirt.io/v1/namespaces/%s/virtualmachineinstances/%s/portforward/%s"
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@pytest.fixture(autouse=True)
def _needs_hooks():
    if os.environ.get("VIRTFLEET_TEST_KUBECONFIG"):
        pytest.skip("VIRTFLEET_TEST_KUBECONFIG: these tests register test guests through the emulator's hooks")


# --- a WebSocket client from RFC 6455 --------------------------------------------------------------------
class Client:
    """Opening handshake, masked client frames with 7/16/64-bit lengths, frame reader; pings are answered."""

    def __init__(self, base_url, path, token, ca_file=None, protocols=("plain.kubevirt.io",), extra=None,
                 method="GET", upgrade=True):
        url = urllib.parse.urlsplit(base_url)
        sock = socket.create_connection((url.hostname, url.port), timeout=30)
        if url.scheme == "https":
            sock = ssl.create_default_context(cafile=str(ca_file)).wrap_socket(sock, server_hostname=url.hostname)
        self.sock = sock
        self.key = base64.b64encode(os.urandom(16)).decode()
        lines = ["%s %s HTTP/1.1" % (method, path), "Host: %s" % url.netloc, "Authorization: Bearer %s" % token]
        if upgrade:
            lines += ["Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Version: 13",
                      "Sec-WebSocket-Key: " + self.key]
        if protocols:
            lines.append("Sec-WebSocket-Protocol: " + ", ".join(protocols))
        lines += list(extra or [])
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("connection closed during the handshake: %r" % self.buf)
            self.buf += data
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        status_line, *header_lines = head.decode().split("\r\n")
        self.status = int(status_line.split()[1])
        self.headers = {}
        for line in header_lines:
            k, _, v = line.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        self.body = b""
        if self.status != 101:
            n = int(self.headers.get("content-length", "0"))
            while len(self.buf) < n:
                self.buf += sock.recv(65536)
            self.body = self.buf[:n]
        # Blocking from now on: a reader thread and a writer thread share this TLS socket, and with a timeout (a
        # non-blocking socket under the hood, each call retried on want-read/want-write) a read ended as a false EOF
        # now and then (3 in 40 1 MB echoes; none in 80 once blocking, none with one thread and a timeout) - most
        # likely the two threads' calls mixing up the SSL object's shared retry state.
        sock.settimeout(None)
        self.pings = []
        self.wlock = threading.Lock()

    def status_doc(self):
        return json.loads(self.body)

    def send(self, opcode, payload=b"", fin=True, masked=True, rsv=0):
        head = bytes([(0x80 if fin else 0) | rsv | opcode])
        n = len(payload)
        bit = 0x80 if masked else 0
        if n < 126:
            head += bytes([bit | n])
        elif n < 65536:
            head += bytes([bit | 126]) + struct.pack("!H", n)
        else:
            head += bytes([bit | 127]) + struct.pack("!Q", n)
        if masked:
            key = os.urandom(4)
            stream = (key * (n // 4 + 1))[:n]
            payload = (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big") if n else b""
            head += key
        with self.wlock:
            self.sock.sendall(head + payload)

    def _exact(self, n):
        while len(self.buf) < n:
            data = self.sock.recv(262144)
            if not data:
                raise EOFError("connection closed")
            self.buf += data
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def frame(self):
        """(fin, opcode, payload) of the next server frame; server frames must not be masked."""
        b0, b1 = self._exact(2)
        assert not b1 & 0x80, "a server frame is masked"
        assert not b0 & 0x70, "reserved bits set"
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._exact(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._exact(8))[0]
        return bool(b0 & 0x80), b0 & 0x0F, self._exact(n)

    def data(self, stats=None):
        """The next binary message's bytes (continuations joined); pings answered and recorded; None on Close."""
        parts, kind = [], None
        while True:
            fin, op, payload = self.frame()
            if op == 9:
                self.pings.append(payload)
                self.send(10, payload)
                continue
            if op == 8:
                self.close_payload = payload
                return None
            if stats is not None:
                stats.append((op, len(payload), fin))
            if op in (1, 2):
                assert kind is None, "a new message before the last one ended"
                kind = op
            else:
                assert op == 0 and kind is not None, "unexpected opcode %d" % op
            parts.append(payload)
            if fin:
                if kind == 2:
                    return b"".join(parts)
                parts, kind = [], None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def accept_of(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


@pytest.fixture
def running_vmi(kubeapi, ns):
    """A Running simulated VMI `vm1` in `ns` (VM runStrategy Always)."""
    status, doc, _ = kubeapi.http("POST", "/apis/kubevirt.io/v1/namespaces/%s/virtualmachines" % ns,
                                  dict(vm_body("vm1", "Always"), metadata={"name": "vm1", "namespace": ns}))
    assert status == 201, doc
    kubeapi.wait_for("/apis/kubevirt.io/v1/namespaces/%s/virtualmachineinstances/vm1" % ns,
                     lambda o: o and (o.get("status") or {}).get("phase") == "Running", timeout=20)
    return "vm1"


@pytest.fixture
def echo_guest(kubeapi, ns, running_vmi):
    guest = TcpGuest()
    kubeapi._hook("PUT", "guest-ports", {"namespace": ns, "name": running_vmi, "port": 22, "target_port": guest.port})
    yield guest
    guest.close()


def connect(kubeapi, ns, name="vm1", port=22, token=None, **kw):
    return Client(kubeapi.url, PF % (ns, name, port), token or kubeapi.admin_token, kubeapi.ca_file, **kw)


def log_entry(kubeapi, mark, ns, name="vm1", port=22):
    path = PF % (ns, name, port)
    entries = [e for e in kubeapi.requests(since=mark) if e["path"] == path]
    assert len(entries) == 1, entries
    return entries[0]


def echo_1mb(ws):
    """1 MB out in frames of every length class (7-bit, 16-bit, 64-bit lengths, frames > 65535 bytes, a message
    fragmented into three frames) while reading the echo; returns the (opcode, length, fin) of the frames back."""
    data = os.urandom(1 << 20)
    got, stats = [], []

    def reader():
        total = 0
        while total < len(data):
            chunk = ws.data(stats)
            assert chunk is not None
            got.append(chunk)
            total += len(chunk)
    th = threading.Thread(target=reader)
    th.start()
    off = 0
    for size in (1, 125, 126, 65535, 65536, 200000):
        ws.send(2, data[off:off + size])
        off += size
    # one message in three frames: binary FIN=0, continuation (100000 bytes), continuation FIN=1
    ws.send(2, data[off:off + 1000], fin=False)
    ws.send(0, data[off + 1000:off + 101000], fin=False)
    ws.send(0, data[off + 101000:off + 102000], fin=True)
    off += 102000
    while off < len(data):
        ws.send(2, data[off:off + 70000])
        off += 70000
    th.join(60)
    assert not th.is_alive(), "the echo did not come back"
    assert b"".join(got) == data
    return stats


def wait_until(fn, timeout=10, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail("timed out waiting for " + what)


# --- the tunnel ------------------------------------------------------------------------------------------
def test_handshake_and_1mb_echo_both_ways(kubeapi, ns, echo_guest):
    """101 with the accept key and plain.kubevirt.io; 1 MB out in frames of every length class (7-bit, 16-bit,
    64-bit, frames > 65535 bytes, a fragmented message) and the same 1 MB back in virt-api's framing."""
    mark = kubeapi.mark()
    ws = connect(kubeapi, ns)
    try:
        assert ws.status == 101, ws.body
        assert ws.headers["upgrade"].lower() == "websocket" and ws.headers["connection"].lower() == "upgrade"
        assert ws.headers["sec-websocket-accept"] == accept_of(ws.key)
        assert ws.headers["sec-websocket-protocol"] == "plain.kubevirt.io"
        stats = echo_1mb(ws)
        # virt-api's framing (kvcorev1 binaryWriter through gorilla's 10 KiB buffer): binary frames of <= 10240
        # bytes, bigger reads of the guest continued in continuation frames.
        assert max(size for _, size, _ in stats) <= 10240
        assert {op for op, _, _ in stats} <= {0, 2} and any(op == 0 for op, _, _ in stats)
    finally:
        ws.close()
    entry = wait_until(lambda: (lambda e: e if e["tunnel"]["ended_by"] else None)(log_entry(kubeapi, mark, ns)),
                       what="the tunnel's end in the request log")
    assert entry["status"] == 101 and entry["verb"] == "get" and entry["user"] == "admin"
    assert entry["tunnel"] == {"to_guest": 1 << 20, "from_guest": 1 << 20, "ended_by": "client"}


def test_keepalive_ping_pong_text_and_close(kubeapi, ns, echo_guest):
    """Server pings each second ("keep alive"); client pings get pongs; text messages are not forwarded; a Close
    frame is echoed with its code and the guest connection is closed."""
    mark = kubeapi.mark()
    ws = connect(kubeapi, ns)
    assert ws.status == 101
    try:
        ws.send(9, b"are you there")
        ws.send(1, b"text is ignored")
        ws.send(2, b"binary")
        seen = []
        while True:
            fin, op, payload = ws.frame()
            seen.append((op, payload))
            if op == 2:
                break
        assert (10, b"are you there") in seen
        assert payload == b"binary"
        start = time.monotonic()
        while True:
            fin, op, payload = ws.frame()
            if op == 9:
                break
        assert payload == b"keep alive" and time.monotonic() - start < 2.5
        ws.send(8, struct.pack("!H", 1000) + b"bye")
        while True:
            fin, op, payload = ws.frame()
            if op == 8:
                break
        assert payload == struct.pack("!H", 1000)
        with pytest.raises((EOFError, ConnectionResetError)):
            ws.frame()
        assert echo_guest.ended.wait(5), "the guest connection was not closed"
    finally:
        ws.close()
    entry = wait_until(lambda: (lambda e: e if e["tunnel"]["ended_by"] else None)(log_entry(kubeapi, mark, ns)),
                       what="the tunnel's end")
    assert entry["tunnel"]["ended_by"] == "client-close" and entry["tunnel"]["to_guest"] == 6


def test_guest_closing_ends_the_connection_without_close_frame(kubeapi, ns, running_vmi):
    """virt-api closes the client connection when the guest closes (no Close frame)."""
    def banner_then_close(conn):
        conn.sendall(b"SSH-2.0-test\r\n")
        conn.close()
    guest = TcpGuest(banner_then_close)
    kubeapi._hook("PUT", "guest-ports", {"namespace": ns, "name": running_vmi, "port": 2222, "target_port": guest.port})
    mark = kubeapi.mark()
    ws = connect(kubeapi, ns, port=2222)
    try:
        assert ws.status == 101
        assert ws.data() == b"SSH-2.0-test\r\n"
        with pytest.raises((EOFError, ConnectionResetError)):
            while True:
                fin, op, payload = ws.frame()
                assert op == 9, "only keep-alive pings may come before the end, got opcode %d" % op
    finally:
        ws.close()
        guest.close()
    entry = wait_until(lambda: (lambda e: e if e["tunnel"]["ended_by"] else None)(log_entry(kubeapi, mark, ns, port=2222)),
                       what="the tunnel's end")
    assert entry["tunnel"] == {"to_guest": 0, "from_guest": 14, "ended_by": "guest"}


def test_protocol_errors_close_with_1002(kubeapi, ns, echo_guest):
    """Frames gorilla refuses get a Close 1002 with its reason, and the tunnel ends."""
    cases = [({"masked": False}, b"bad MASK"), ({"rsv": 0x40}, b"RSV1 set"), ({"opcode": 0}, b"continuation after FIN"),
             ({"opcode": 9, "fin": False}, b"FIN not set on control"), ({"opcode": 5}, b"bad opcode 5"),
             ({"opcode": 8, "payload": struct.pack("!H", 1005)}, b"bad close code 1005")]
    for options, reason in cases:
        options = dict(options)
        ws = connect(kubeapi, ns)
        try:
            assert ws.status == 101
            ws.send(options.pop("opcode", 2), options.pop("payload", b"x"), **options)
            while True:
                fin, op, payload = ws.frame()
                if op == 8:
                    break
            assert payload == struct.pack("!H", 1002) + reason
            with pytest.raises((EOFError, ConnectionResetError)):
                ws.frame()
        finally:
            ws.close()


def test_no_subprotocol_offered_still_upgrades_without_the_header(kubeapi, ns, echo_guest):
    ws = connect(kubeapi, ns, protocols=())
    try:
        assert ws.status == 101 and "sec-websocket-protocol" not in ws.headers
        ws.send(2, b"ping")
        assert ws.data() == b"ping"
    finally:
        ws.close()


def test_websocket_client_library(kubeapi, ns, echo_guest):
    """websocket-client (a dependency of kubernetes, used by the collection's bridge) negotiates plain.kubevirt.io,
    echoes 300 KB, answers the keep-alive pings, sees the guest's close as the connection closing (no Close frame)
    and a Status body on a refused upgrade."""
    import websocket
    url = kubeapi.url.replace("https://", "wss://") + PF % (ns, "vm1", 22)
    options = dict(header=["Authorization: Bearer " + kubeapi.admin_token], subprotocols=["plain.kubevirt.io"],
                   sslopt={"ca_certs": str(kubeapi.ca_file)})
    ws = websocket.create_connection(url, **options)
    try:
        assert ws.getsubprotocol() == "plain.kubevirt.io"
        data = os.urandom(300000)
        ws.send_binary(data)
        got = b""
        while len(got) < len(data):
            opcode, chunk = ws.recv_data()
            assert opcode == websocket.ABNF.OPCODE_BINARY
            got += chunk
        assert got == data
        time.sleep(1.5)     # keep-alive pings arrive meanwhile; recv answers them
        ws.send_binary(b"still here")
        assert ws.recv_data()[1] == b"still here"
    finally:
        ws.close()

    def bye(conn):
        conn.sendall(b"bye")
        conn.close()
    guest = TcpGuest(bye)
    kubeapi._hook("PUT", "guest-ports", {"namespace": ns, "name": "vm1", "port": 2022, "target_port": guest.port})
    ws = websocket.create_connection(kubeapi.url.replace("https://", "wss://") + PF % (ns, "vm1", 2022), **options)
    try:
        assert ws.recv_data() == (websocket.ABNF.OPCODE_BINARY, b"bye")
        with pytest.raises(websocket.WebSocketConnectionClosedException):
            while True:
                ws.recv_data()
    finally:
        ws.close()
        guest.close()
    with pytest.raises(websocket.WebSocketBadStatusException) as exc:
        websocket.create_connection(kubeapi.url.replace("https://", "wss://") + PF % (ns, "nope", 22),
                                    header=["Authorization: Bearer " + kubeapi.admin_token],
                                    subprotocols=["plain.kubevirt.io"], sslopt={"ca_certs": str(kubeapi.ca_file)})
    assert exc.value.status_code == 404
    assert json.loads(exc.value.resp_body)["message"] == 'virtualmachineinstance.kubevirt.io "nope" not found'


# --- errors before the upgrade (virt-api's answers) ------------------------------------------------------
def test_rbac_needs_get_on_virtualmachineinstances_portforward(kubeapi, ns, echo_guest):
    kubeapi.add_token("pf-no", namespaces=[ns], verbs=["get", "list", "watch"],
                      resources=["virtualmachineinstances/console", "virtualmachineinstances/vnc"])
    kubeapi.add_token("pf-yes", namespaces=[ns], verbs=["get"], resources=["virtualmachineinstances/portforward"])
    mark = kubeapi.mark()
    ws = connect(kubeapi, ns, token="pf-no")
    ws.close()
    assert ws.status == 403
    doc = ws.status_doc()
    assert doc["reason"] == "Forbidden" and doc["code"] == 403
    assert doc["message"] == ('virtualmachineinstances.subresources.kubevirt.io "vm1" is forbidden: User "pf-no" cannot '
                              'get resource "virtualmachineinstances/portforward" in API group "subresources.kubevirt.io" '
                              'in the namespace "%s"' % ns)
    assert echo_guest.connections == 0, "a forbidden request reached the guest"
    assert log_entry(kubeapi, mark, ns)["status"] == 403
    ws = connect(kubeapi, ns, token="pf-yes")
    try:
        assert ws.status == 101
        ws.send(2, b"allowed")
        assert ws.data() == b"allowed"
    finally:
        ws.close()
    ws = connect(kubeapi, ns, token="no-such-token")
    ws.close()
    assert ws.status == 401 and ws.status_doc()["reason"] == "Unauthorized"


def test_vmi_missing_is_404(kubeapi, ns):
    ws = connect(kubeapi, ns, name="ghost")
    ws.close()
    assert ws.status == 404
    doc = ws.status_doc()
    assert doc["message"] == 'virtualmachineinstance.kubevirt.io "ghost" not found'
    assert doc["details"] == {"name": "ghost", "group": "kubevirt.io", "kind": "virtualmachineinstance"}


def test_vmi_not_running_yet_is_400_no_interfaces(kubeapi, ns):
    """A VMI that cannot be scheduled (no node matches) has no status.interfaces: virt-api cannot pick an IP."""
    status, doc, _ = kubeapi.http("POST", "/apis/kubevirt.io/v1/namespaces/%s/virtualmachineinstances" % ns, {
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance", "metadata": {"name": "pending"},
        "spec": {"nodeSelector": {"no-such-label": "x"}, "domain": {"devices": {}, "memory": {"guest": "128Mi"}}}})
    assert status == 201, doc
    kubeapi.wait_for("/apis/kubevirt.io/v1/namespaces/%s/virtualmachineinstances/pending" % ns,
                     lambda o: o and (o.get("status") or {}).get("phase") == "Scheduling", timeout=20)
    ws = connect(kubeapi, ns, name="pending")
    ws.close()
    assert ws.status == 400
    assert ws.status_doc()["message"] == "no network interfaces are present"
    assert ws.status_doc()["reason"] == "BadRequest"


def test_vmi_ended_and_paused(kubeapi, ns, running_vmi):
    base = "/apis/kubevirt.io/v1/namespaces/%s/virtualmachineinstances" % ns
    ip = kubeapi.get_object(base + "/vm1")["status"]["interfaces"][0]["ipAddress"]
    status, doc, _ = kubeapi.http("PUT", "/apis/subresources.kubevirt.io/v1/namespaces/%s/virtualmachineinstances/vm1/"
                                         "pause" % ns, {})
    assert status == 200, doc
    ws = connect(kubeapi, ns)
    ws.close()
    assert ws.status == 409
    assert ws.status_doc()["message"] == ('Operation cannot be fulfilled on virtualmachineinstance.kubevirt.io "vm1": '
                                          'VMI is paused')
    kubeapi._hook("POST", "bulk", {"objects": [{
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance", "metadata": {"name": "done", "namespace": ns},
        "spec": {"domain": {"devices": {}}},
        "status": {"phase": "Succeeded", "interfaces": [{"name": "default", "ipAddress": "10.244.9.9"}]}}]})
    ws = connect(kubeapi, ns, name="done")
    ws.close()
    assert ws.status == 500
    assert ws.status_doc()["message"] == ("Internal error occurred: dialing VM: dial tcp 10.244.9.9:22: connect: "
                                          "no route to host")
    assert ip


def test_closed_port_is_500_before_the_upgrade(kubeapi, ns, echo_guest):
    """Nothing registered on port 23 of the VMI: virt-api's dial fails, so the answer is a Status, not a 101."""
    ip = kubeapi.get_object("/apis/kubevirt.io/v1/namespaces/%s/virtualmachineinstances/vm1" % ns)["status"][
        "interfaces"][0]["ipAddress"]
    ws = connect(kubeapi, ns, port=23)
    ws.close()
    assert ws.status == 500
    doc = ws.status_doc()
    assert doc["reason"] == "InternalError"
    assert doc["message"] == "Internal error occurred: dialing VM: dial tcp %s:23: connect: connection refused" % ip
    # a registered port whose server has gone away: refused too (a real dial, not a table lookup)
    dead = TcpGuest()
    kubeapi._hook("PUT", "guest-ports", {"namespace": ns, "name": "vm1", "port": 24, "target_port": dead.port})
    dead.close()
    ws = connect(kubeapi, ns, port=24)
    ws.close()
    assert ws.status == 500 and ws.status_doc()["message"].endswith(":24: connect: connection refused")


def test_not_a_websocket_handshake(kubeapi, ns, echo_guest):
    """After the dial, gorilla's Upgrade refuses: 400 text/plain 'Bad Request' followed by virt-api's Status."""
    ws = connect(kubeapi, ns, upgrade=False)
    ws.close()
    assert ws.status == 400 and ws.headers["content-type"].startswith("text/plain")
    first, _, rest = ws.body.partition(b"\n")
    assert first == b"Bad Request"
    assert json.loads(rest)["message"] == ("websocket: the client is not using the websocket protocol: 'upgrade' token "
                                           "not found in 'Connection' header")
    ws = connect(kubeapi, ns, upgrade=False, extra=["Connection: Upgrade", "Upgrade: websocket",
                                                    "Sec-WebSocket-Version: 8", "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA=="])
    ws.close()
    assert ws.status == 400 and b"unsupported version: 13 not found" in ws.body
    ws = connect(kubeapi, ns, method="POST")
    ws.close()
    assert ws.status == 405


def test_fault_injection_breaks_the_upgrade(kubeapi, ns, echo_guest):
    mark = kubeapi.mark()
    kubeapi.set_faults(rate=1.0, statuses=(500,), path_regex="/portforward/")
    try:
        ws = connect(kubeapi, ns)
        ws.close()
        assert ws.status == 500 and ws.status_doc()["details"]["causes"] == [{"message": "injected fault"}]
        kubeapi.set_faults(rate=1.0, statuses=(), reset=True, path_regex="/portforward/")
        with pytest.raises((ConnectionError, OSError)):
            connect(kubeapi, ns)
    finally:
        kubeapi.clear_faults()
    entries = [e for e in kubeapi.requests(since=mark) if e["path"] == PF % (ns, "vm1", 22)]
    assert [e["fault"] for e in entries] == ["500", "reset"]
    assert echo_guest.connections == 0


def test_vm_route_reaches_the_vms_vmi(kubeapi, ns, echo_guest):
    path = "/apis/subresources.kubevirt.io/v1/namespaces/%s/virtualmachines/vm1/portforward/22/tcp" % ns
    ws = Client(kubeapi.url, path, kubeapi.admin_token, kubeapi.ca_file)
    try:
        assert ws.status == 101
        ws.send(2, b"via the VM")
        assert ws.data() == b"via the VM"
    finally:
        ws.close()
    ws = Client(kubeapi.url, path.replace("/vm1/", "/novm/"), kubeapi.admin_token, kubeapi.ca_file)
    ws.close()
    assert ws.status == 404 and ws.status_doc()["message"] == 'virtualmachine.kubevirt.io "novm" not found'


# --- shutdown and keep-alive timeout ---------------------------------------------------------------------
def test_server_stops_with_a_tunnel_open(tmp_path_factory):
    """SIGTERM with an open tunnel: the emulator exits promptly and the client sees its connection end."""
    from tests.conftest import start_emulator
    emu = start_emulator(tmp_path_factory, "pf-stop", needs_hooks=True, tls=True, controllers=("virt",))
    guest = TcpGuest()
    try:
        status, doc, _ = emu.http("POST", "/apis/kubevirt.io/v1/namespaces/default/virtualmachines",
                                  dict(vm_body("vm1", "Always"), metadata={"name": "vm1", "namespace": "default"}))
        assert status == 201, doc
        emu.wait_for("/apis/kubevirt.io/v1/namespaces/default/virtualmachineinstances/vm1",
                     lambda o: o and (o.get("status") or {}).get("phase") == "Running", timeout=20)
        emu._hook("PUT", "guest-ports", {"namespace": "default", "name": "vm1", "port": 22, "target_port": guest.port})
        ws = Client(emu.url, PF % ("default", "vm1", 22), emu.admin_token, emu.ca_file)
        assert ws.status == 101
        ws.send(2, b"hello")
        assert ws.data() == b"hello"
        start = time.monotonic()
        emu.stop()
        assert emu.proc.returncode == 0, "the emulator did not exit cleanly (status %s)" % emu.proc.returncode
        assert time.monotonic() - start < 5
        with pytest.raises((EOFError, OSError)):
            while True:
                ws.frame()
        ws.close()
        assert guest.ended.wait(5), "the guest connection stayed open"
    finally:
        emu.stop()
        guest.close()


def test_tunnel_ends_when_pongs_stop(monkeypatch):
    """keepAliveClientStream: no pong within the timeout ends the tunnel (here 0.3 s instead of a minute)."""
    from tests.kubeapi import websocket as ws_mod
    monkeypatch.setattr(ws_mod, "KEEPALIVE_INTERVAL", 0.1)
    monkeypatch.setattr(ws_mod, "PONG_TIMEOUT", 0.3)
    client, server_side = socket.socketpair()
    guest, guest_peer = socket.socketpair()
    reader = server_side.makefile("rb")
    tunnel = ws_mod.Tunnel(server_side, reader.read, guest)
    th = threading.Thread(target=tunnel.run, daemon=True)
    th.start()
    th.join(5)
    assert not th.is_alive()
    assert tunnel.stats["ended_by"] == "keepalive"
    pings = client.recv(65536)
    assert pings.startswith(b"\x89\x0akeep alive")
    assert guest_peer.recv(10) == b""
    for s in (client, server_side, guest_peer):
        s.close()


# --- the realk8s tier: kube-apiserver's aggregator and our proxy relay the upgrade ----------------------------
def _realk8s():
    from tests.kubeapi import realserver
    return realserver.available() and any((realserver.realk8s_dir() / "bin" / b).is_file()
                                          for b in ("kube-apiserver", "kube-apiserver.xz"))


@pytest.mark.skipif(not _realk8s(), reason="realk8s not found (set VIRTFLEET_REALK8S)")
def test_realk8s_portforward_through_kube_apiserver_and_the_proxy(tmp_path_factory):
    """realk8s (kube-apiserver v1.32) + tests/kubeapi/remote.py serving virt-api behind its APIService + our proxy:
    kube-apiserver authorises the upgrade with real RBAC and relays it to the aggregated API, the proxy relays it too;
    the tunnel, the framing and the errors are the same as on the emulator."""
    from tests.kubeapi.realserver import RealServer
    import websocket
    server = RealServer(tmp_path_factory.mktemp("pf-real"), controllers=("virt",))
    server.start()
    guest = TcpGuest()
    ns = "pf-real"
    try:
        server.apply_object({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        status, doc, _ = server.http("POST", "/apis/kubevirt.io/v1/namespaces/%s/virtualmachines" % ns,
                                     dict(vm_body("vm1", "Always"), metadata={"name": "vm1", "namespace": ns}))
        assert status == 201, doc
        server.wait_for("/apis/kubevirt.io/v1/namespaces/%s/virtualmachineinstances/vm1" % ns,
                        lambda o: o and (o.get("status") or {}).get("phase") == "Running", timeout=60)
        server._hook("PUT", "guest-ports", {"namespace": ns, "name": "vm1", "port": 22, "target_port": guest.port})
        mark = server.mark()
        ws = connect(server, ns)
        try:
            assert ws.status == 101, ws.body
            assert ws.headers["sec-websocket-accept"] == accept_of(ws.key)
            assert ws.headers["sec-websocket-protocol"] == "plain.kubevirt.io"
            stats = echo_1mb(ws)
            assert max(size for _, size, _ in stats) <= 10240
            start = time.monotonic()
            while ws.frame()[1] != 9:
                pass
            assert time.monotonic() - start < 2.5
            ws.send(8, struct.pack("!H", 1000))
            while True:
                fin, op, payload = ws.frame()
                if op == 8:
                    break
            assert payload == struct.pack("!H", 1000)
        finally:
            ws.close()
        assert [e["status"] for e in server.requests(since=mark) if e["path"] == PF % (ns, "vm1", 22)] == [101]
        # RBAC by kube-apiserver itself: the same 403 as the emulator's
        server.add_token("pf-no", namespaces=[ns], verbs=["get", "list"], resources=["virtualmachineinstances/console"])
        server.add_token("pf-yes", namespaces=[ns], verbs=["get"], resources=["virtualmachineinstances/portforward"])
        ws = connect(server, ns, token="pf-no")
        ws.close()
        assert ws.status == 403
        assert ws.status_doc()["message"] == (
            'virtualmachineinstances.subresources.kubevirt.io "vm1" is forbidden: User "pf-no" cannot get resource '
            '"virtualmachineinstances/portforward" in API group "subresources.kubevirt.io" in the namespace "%s"' % ns)
        ws = connect(server, ns, token="pf-yes")
        try:
            assert ws.status == 101, ws.body
            ws.send(2, b"least privilege")
            assert ws.data() == b"least privilege"
        finally:
            ws.close()
        # virt-api's answers pass kube-apiserver unchanged
        ws = connect(server, ns, name="ghost")
        ws.close()
        assert ws.status == 404 and ws.status_doc()["message"] == 'virtualmachineinstance.kubevirt.io "ghost" not found'
        ws = connect(server, ns, port=23)
        ws.close()
        assert ws.status == 500 and ws.status_doc()["message"].endswith(":23: connect: connection refused")
        # websocket-client, as the collection's bridge uses it
        client = websocket.create_connection(server.url.replace("https://", "wss://") + PF % (ns, "vm1", 22),
                                             header=["Authorization: Bearer " + server.admin_token],
                                             subprotocols=["plain.kubevirt.io"], sslopt={"ca_certs": str(server.ca_file)})
        try:
            assert client.getsubprotocol() == "plain.kubevirt.io"
            client.send_binary(b"x" * 100000)
            got = b""
            while len(got) < 100000:
                got += client.recv_data()[1]
            assert got == b"x" * 100000
        finally:
            client.close()
    finally:
        guest.close()
        server.stop()
