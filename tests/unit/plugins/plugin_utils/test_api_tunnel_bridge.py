"""The API tunnel bridge (plugins/plugin_utils/_api_tunnel.py run by ssh): its WebSocket against a small virt-api
written here (RFC 6455 by hand: handshake, masked client frames, fragmented server messages, pings, close), the
pump between stdio and the socket, and the one-sentence errors for every answer virt-api gives before the upgrade."""
import base64
import hashlib
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ansible_collections.virtfleet.kubevirt.plugins.plugin_utils import _api_tunnel as tunnel

TOKEN = "bridge-secret-token-42"
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
PF = "/apis/subresources.kubevirt.io/v1/namespaces/%s/virtualmachineinstances/%s/portforward/%d"
VMI = "/apis/kubevirt.io/v1/namespaces/%s/virtualmachineinstances/%s"
INSTALLED = Path(tunnel.__file__)


# --- a tiny virt-api -----------------------------------------------------------------------------------------
def recv_exact(conn, size):
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise EOFError("peer closed")
        data += chunk
    return data


def read_head(conn):
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        byte = conn.recv(1)
        if not byte:
            raise EOFError("peer closed")
        head += byte
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if line:
            key, value = line.split(":", 1)
            headers.setdefault(key.strip().lower(), []).append(value.strip())
    return method, path, headers


def read_frame(conn):
    """(fin, opcode, payload, masked) of one frame."""
    first, second = recv_exact(conn, 2)
    length = second & 0x7F
    if length == 126:
        length = struct.unpack("!H", recv_exact(conn, 2))[0]
    elif length == 127:
        length = struct.unpack("!Q", recv_exact(conn, 8))[0]
    mask = recv_exact(conn, 4) if second & 0x80 else None
    payload = recv_exact(conn, length)
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bool(first & 0x80), first & 0x0F, payload, mask is not None


def send_frame(conn, opcode, payload=b"", fin=True):
    header = bytes([(0x80 if fin else 0) | opcode])
    if len(payload) < 126:
        header += bytes([len(payload)])
    elif len(payload) < 65536:
        header += bytes([126]) + struct.pack("!H", len(payload))
    else:
        header += bytes([127]) + struct.pack("!Q", len(payload))
    conn.sendall(header + payload)


def answer(conn, status, doc, reason="Error"):
    body = json.dumps(doc).encode()
    conn.sendall(b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                 % (status, reason.encode(), len(body)) + body)


def status_doc(code, reason, message, details=None):
    doc = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
           "reason": reason, "code": code}
    if details:
        doc["details"] = details
    return doc


class VirtApi:
    """Serves the portforward subresource with ``tunnel`` (a function of the upgraded connection) or answers it
    with ``refuse`` = (status, Status doc); GET of a VMI answers ``vmi_phase``. Records every request."""

    def __init__(self, tunnel_fn=None, refuse=None, vmi_phase="Running", paused=False):
        self.tunnel_fn = tunnel_fn
        self.refuse = refuse
        self.vmi_phase = vmi_phase
        self.paused = paused
        self.requests = []
        self.frames = []          # (fin, opcode, payload length, masked) of every client frame
        self.pongs = []
        self.closed_by_client = threading.Event()
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(8)
        self.port = self.srv.getsockname()[1]
        self.url = "http://127.0.0.1:%d" % self.port
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        try:
            method, path, headers = read_head(conn)
            self.requests.append((method, path, headers))
            if "/portforward/" not in path:
                conditions = [{"type": "Paused", "status": "True"}] if self.paused else []
                vmi = {"kind": "VirtualMachineInstance", "status": {"phase": self.vmi_phase, "conditions": conditions}}
                answer(conn, 200, vmi, "OK")
            elif self.refuse:
                answer(conn, self.refuse[0], self.refuse[1])
            else:
                key = headers["sec-websocket-key"][0].encode()
                accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
                conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                             b"Sec-WebSocket-Accept: " + accept + b"\r\nSec-WebSocket-Protocol: plain.kubevirt.io\r\n\r\n")
                self.tunnel_fn(self, conn)
        except (EOFError, OSError):
            pass
        finally:
            conn.close()

    def next_data(self, conn):
        """The next data frame's payload (answering nothing itself); None after a close frame."""
        while True:
            fin, opcode, payload, masked = read_frame(conn)
            self.frames.append((fin, opcode, len(payload), masked))
            if opcode == 0x8:
                self.closed_by_client.set()
                send_frame(conn, 0x8, payload[:2])
                return None
            if opcode == 0xA:
                self.pongs.append(payload)
                continue
            return payload

    def close(self):
        self.srv.close()


def echo_fragmented(api, conn):
    """virt-api's way: each chunk back as one message split in frames (gorilla's 10 KiB write buffer); a ping first."""
    send_frame(conn, 0x9, b"keep alive")
    while True:
        data = api.next_data(conn)
        if data is None:
            return
        parts = [data[i:i + 10240] for i in range(0, len(data), 10240)] or [b""]
        for index, part in enumerate(parts):
            send_frame(conn, 0x2 if index == 0 else 0x0, part, fin=index == len(parts) - 1)


@pytest.fixture
def auth_file(tmp_path):
    return tunnel.write_auth_file({"api_key": TOKEN}, str(tmp_path / "auth"))


class Bridge:
    """tunnel.run() in a thread with pipes for stdin/stdout."""

    def __init__(self, argv, environ=None):
        self.stdin_r, self.stdin_w = os.pipe()
        self.stdout_r, self.stdout_w = os.pipe()
        self.rc = None
        self.thread = threading.Thread(target=self._run, args=(argv, environ or {}), daemon=True)
        self.thread.start()

    def _run(self, argv, environ):
        self.rc = tunnel.run(argv, self.stdin_r, self.stdout_w, environ=environ)
        os.close(self.stdout_w)

    def send(self, data):
        view = memoryview(data)
        while view:
            view = view[os.write(self.stdin_w, view):]

    def read(self, size, timeout=20):
        data = b""
        deadline = time.monotonic() + timeout
        while len(data) < size and time.monotonic() < deadline:
            chunk = os.read(self.stdout_r, 65536)
            if not chunk:
                break
            data += chunk
        return data

    def close_stdin(self):
        os.close(self.stdin_w)

    def wait(self, timeout=20):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the bridge did not end"
        return self.rc


def argv(api, auth_file, name="web", port=22, *extra):
    return ["--namespace", "prod", "--name", name, "--port", str(port), "--host", api.url, "--auth-file", auth_file] + list(extra)


# --- the pump --------------------------------------------------------------------------------------------------
def test_bytes_both_ways_binary_frames_bearer_token_and_subprotocol(auth_file):
    api = VirtApi(echo_fragmented)
    try:
        bridge = Bridge(argv(api, auth_file))
        payload = os.urandom(1024 * 1024 + 17)
        writer = threading.Thread(target=bridge.send, args=(payload,), daemon=True)
        writer.start()
        assert bridge.read(len(payload)) == payload
        bridge.close_stdin()
        assert bridge.wait() == 0
        method, path, headers = api.requests[0]
        assert (method, path) == ("GET", PF % ("prod", "web", 22))
        assert headers["authorization"] == ["Bearer " + TOKEN]
        assert headers["sec-websocket-protocol"] == ["plain.kubevirt.io"]
        assert headers["upgrade"] == ["websocket"] and "origin" not in headers
        data = [f for f in api.frames if f[1] in (0x0, 0x1, 0x2)]
        assert data and all(f[1] == 0x2 and f[0] and f[3] for f in data), "client data must be masked binary frames"
        assert sum(f[2] for f in data) == len(payload)
        assert api.pongs == [b"keep alive"], "the server's ping was not answered"
        assert api.closed_by_client.is_set(), "stdin EOF must send a close frame"
    finally:
        api.close()


def test_guest_closing_the_connection_ends_the_bridge_cleanly(auth_file):
    def greet_and_drop(api, conn):  # virt-api drops the connection without a close frame when the guest closes
        send_frame(conn, 0x2, b"SSH-2.0-OpenSSH_9.2\r\n")

    api = VirtApi(greet_and_drop)
    try:
        bridge = Bridge(argv(api, auth_file))
        assert bridge.read(100) == b"SSH-2.0-OpenSSH_9.2\r\n"
        assert bridge.wait() == 0
    finally:
        api.close()


def test_server_close_frame_ends_the_bridge_and_text_frames_are_passed_on(auth_file):
    def text_then_close(api, conn):
        send_frame(conn, 0x1, b"hi")
        send_frame(conn, 0x8, struct.pack("!H", 1000))
        api.next_data(conn)

    api = VirtApi(text_then_close)
    try:
        bridge = Bridge(argv(api, auth_file))
        assert bridge.read(100) == b"hi"
        assert bridge.wait() == 0
    finally:
        api.close()


def test_a_reset_is_the_end_of_the_tunnel_not_an_error(auth_file, capsys):
    """virt-api closing while our bytes are unread makes the kernel reset the connection: ssh sees the end anyway."""
    def reset(api, conn):
        send_frame(conn, 0x2, b"last words")
        api.next_data(conn)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close() sends RST

    api = VirtApi(reset)
    try:
        bridge = Bridge(argv(api, auth_file))
        assert bridge.read(10) == b"last words"
        bridge.send(b"unread")
        assert bridge.wait() == 0
        assert capsys.readouterr().err == ""
    finally:
        api.close()


def test_a_frame_that_breaks_the_protocol_is_an_error(auth_file, capsys):
    def bad_opcode(api, conn):
        conn.sendall(bytes([0x83, 0]))  # FIN + reserved opcode 3
        time.sleep(1)

    api = VirtApi(bad_opcode)
    try:
        bridge = Bridge(argv(api, auth_file))
        assert bridge.wait() == 255
        assert capsys.readouterr().err == ("The API tunnel to VMI prod/web ended: the tunnel connection broke "
                                           "(WebSocketProtocolException: Invalid opcode 3).\n")
    finally:
        api.close()


def test_stdin_end_lingers_for_the_answer(auth_file):
    """stdin ends right after a request (printf ... | bridge): the close frame goes out and the answer still arrives."""
    def slow_answer(api, conn):
        data = api.next_data(conn)
        time.sleep(0.3)
        send_frame(conn, 0x2, data.upper())
        api.next_data(conn)

    api = VirtApi(slow_answer)
    try:
        bridge = Bridge(argv(api, auth_file))
        bridge.send(b"ping")
        time.sleep(0.1)
        bridge.close_stdin()
        assert bridge.read(4) == b"PING"
        assert bridge.wait() == 0
    finally:
        api.close()


# --- errors before the upgrade -----------------------------------------------------------------------------------
FORBIDDEN = status_doc(403, "Forbidden", 'virtualmachineinstances.subresources.kubevirt.io "web" is forbidden: User '
                       '"system:serviceaccount:awx:inventory" cannot get resource "virtualmachineinstances/portforward" '
                       'in API group "subresources.kubevirt.io" in the namespace "prod"')


@pytest.mark.parametrize("refuse, phase, paused, expected", [
    ((403, FORBIDDEN), "Running", False,
     "forbidden: system:serviceaccount:awx:inventory may not get virtualmachineinstances/portforward in prod (grant verb "
     "get on subresources.kubevirt.io virtualmachineinstances/portforward)."),
    ((404, status_doc(404, "NotFound", 'virtualmachineinstance.kubevirt.io "web" not found',
                      {"name": "web", "group": "kubevirt.io", "kind": "virtualmachineinstance"})), "Running", False,
     "VMI prod/web not found (404): the VM is not running or has another name (the tunnel needs a running "
     "VirtualMachineInstance)."),
    ((404, status_doc(404, "NotFound", "the server could not find the requested resource")), "Running", False,
     "The API server {url} does not serve the KubeVirt subresource API subresources.kubevirt.io (404): install KubeVirt, "
     "or check that virt-api runs and its APIService is available."),
    ((400, status_doc(400, "BadRequest", "no network interfaces are present")), "Scheduling", False,
     "VMI prod/web is not running (phase Scheduling): start the VM, or wait until it runs."),
    ((500, status_doc(500, "InternalError", "Internal error occurred: dialing VM: dial tcp 10.244.9.9:22: connect: no "
                                            "route to host")), "Succeeded", False,
     "VMI prod/web is not running (phase Succeeded): start the VM, or wait until it runs."),
    ((409, status_doc(409, "Conflict", 'Operation cannot be fulfilled on virtualmachineinstance.kubevirt.io "web": VMI is '
                                       'paused')), "Running", True,
     "VMI prod/web is paused: unpause it (virtctl unpause vmi web -n prod) to connect."),
    ((500, status_doc(500, "InternalError", "Internal error occurred: dialing VM: dial tcp 10.244.0.12:22: connect: "
                                            "connection refused")), "Running", False,
     "nothing listens on port 22 in VMI prod/web (start the SSH server in the guest, or set ssh_port / the annotation "
     "virtfleet.kubevirt/ssh-port to the port it listens on)."),
    ((500, status_doc(500, "InternalError", "Internal error occurred: dialing VM: dial tcp 10.244.0.12:22: i/o timeout")),
     "Running", False,
     "virt-api cannot reach port 22 of VMI prod/web (server: Internal error occurred: dialing VM: dial tcp "
     "10.244.0.12:22: i/o timeout)."),
    ((503, status_doc(503, "ServiceUnavailable", "service unavailable")), "Running", False,
     "The KubeVirt subresource API is unavailable (503 from {url}): check that virt-api runs and the APIService "
     "v1.subresources.kubevirt.io is available (server: service unavailable)."),
    ((401, status_doc(401, "Unauthorized", "Unauthorized")), "Running", False,
     "The API server at {url} rejected the credentials (401 Unauthorized): check api_key, or the user of the kubeconfig "
     "context (kubeconfig / context), or refresh an expired token."),
], ids=["403", "404-vmi", "404-api", "400-not-running", "500-ended", "409-paused", "500-closed-port", "500-timeout",
        "503", "401"])
def test_each_refusal_is_one_sentence_and_exit_255(auth_file, capsys, refuse, phase, paused, expected):
    api = VirtApi(refuse=refuse, vmi_phase=phase, paused=paused)
    try:
        bridge = Bridge(argv(api, auth_file))
        assert bridge.wait() == tunnel.EXIT_ERROR == 255
        err = capsys.readouterr().err
        assert err == expected.format(url=api.url) + "\n"
        assert TOKEN not in err
    finally:
        api.close()


def test_api_server_unreachable(auth_file, capsys):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = "http://127.0.0.1:%d" % sock.getsockname()[1]
    sock.close()
    assert tunnel.run(["--namespace", "n", "--name", "v", "--port", "22", "--host", url, "--auth-file", auth_file],
                      environ={}) == 255
    assert capsys.readouterr().err == ("Cannot connect to the API server at %s (connection refused): check host / the "
                                       "kubeconfig server URL and that the API server is running.\n" % url)


def test_not_a_websocket_server(auth_file, capsys):
    """Something answers 200 to the upgrade (a proxy that does not pass upgrades): a sentence, not a traceback."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def plain_http():
        conn, _ = srv.accept()
        read_head(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        conn.close()

    threading.Thread(target=plain_http, daemon=True).start()
    url = "http://127.0.0.1:%d" % srv.getsockname()[1]
    try:
        assert tunnel.run(["--namespace", "n", "--name", "v", "--port", "22", "--host", url, "--auth-file", auth_file],
                          environ={}) == 255
    finally:
        srv.close()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("The API server answered 200 to GET %s" % (PF % ("n", "v", 22)))


# --- the auth file, argv and configuration errors -------------------------------------------------------------------
def test_auth_file_readable_by_others_is_refused(tmp_path, auth_file, capsys):
    os.chmod(auth_file, 0o640)
    assert tunnel.run(["--namespace", "n", "--name", "v", "--port", "22", "--auth-file", auth_file], environ={}) == 255
    assert capsys.readouterr().err == (
        "The API tunnel auth file %s is refused because only its owner may read it: it must be mode 0600 and owned by "
        "uid %d (it is mode 0640, owned by uid %d).\n" % (auth_file, os.geteuid(), os.geteuid()))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the file to another user")
def test_auth_file_of_another_user_is_refused(auth_file, capsys):
    os.chown(auth_file, 4242, -1)
    assert tunnel.run(["--namespace", "n", "--name", "v", "--port", "22", "--auth-file", auth_file], environ={}) == 255
    assert "owned by uid 0 (it is mode 0600, owned by uid 4242)" in capsys.readouterr().err


@pytest.mark.parametrize("content, expected", [
    (b"not json", "is not a JSON object of connection options"),
    (b'["api_key"]', "is not a JSON object of connection options"),
    (b'{"api_token": "x"}', "has the unknown option api_token"),
])
def test_bad_auth_file_content(tmp_path, capsys, content, expected):
    path = tmp_path / "auth.json"
    path.write_bytes(content)
    os.chmod(path, 0o600)
    assert tunnel.run(["--namespace", "n", "--name", "v", "--port", "22", "--auth-file", str(path)], environ={}) == 255
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1


def test_missing_auth_file(tmp_path, capsys):
    path = tmp_path / "gone.json"
    assert tunnel.run(["--namespace", "n", "--name", "v", "--port", "22", "--auth-file", str(path)], environ={}) == 255
    assert capsys.readouterr().err == ("Cannot read the API tunnel auth file %s (No such file or directory): refresh the "
                                       "inventory, which writes it.\n" % path)


@pytest.mark.parametrize("args, expected", [
    (["--namespace", "n", "--name", "v"], "the following arguments are required: --port"),
    (["--namespace", "n", "--name", "v", "--port", "%p"], "argument --port: invalid int value: '%p'"),
    (["--namespace", "n", "--name", "v", "--port", "22", "--api-key", "x"], "unrecognized arguments: --api-key x"),
])
def test_bad_arguments_are_one_sentence(capsys, args, expected):
    assert tunnel.run(args, environ={}) == 255
    assert capsys.readouterr().err == (
        "Bad API tunnel bridge arguments (%s): it is run by ssh as the ProxyCommand the inventory plugin "
        "virtfleet.kubevirt.kubevirt writes; refresh the inventory.\n" % expected)


def test_port_out_of_range(capsys):
    assert tunnel.run(["--namespace", "n", "--name", "v", "--port", "70000"], environ={}) == 255
    assert capsys.readouterr().err == "--port must be a TCP port between 1 and 65535, got 70000: set ssh_port or ansible_port.\n"


def test_no_connection_configured_is_the_clients_sentence(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert tunnel.run(["--namespace", "n", "--name", "v", "--port", "22"], environ={}) == 255
    assert capsys.readouterr().err.startswith("No Kubernetes connection is configured: set kubeconfig")


def test_missing_websocket_client(auth_file, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "websocket", None)  # import websocket raises ImportError
    assert tunnel.run(["--namespace", "n", "--name", "v", "--port", "22", "--host", "http://x", "--auth-file", auth_file],
                      environ={}) == 255
    assert capsys.readouterr().err.startswith("The websocket-client Python library is required for the api_tunnel address "
                                              "strategy on the controller: pip install websocket-client (")


def test_too_old_websocket_client(auth_file, capsys, monkeypatch):
    import websocket
    monkeypatch.setattr(websocket, "__version__", "1.2.3")  # Debian 12's python3-websocket: no Status body on refusals
    assert tunnel.run(["--namespace", "n", "--name", "v", "--port", "22", "--host", "http://x", "--auth-file", auth_file],
                      environ={}) == 255
    assert capsys.readouterr().err == ("websocket-client 1.2.3 is too old for the api_tunnel address strategy: pip install "
                                       "'websocket-client>=1.5.2' on the controller.\n")


def test_socks_proxy_is_refused_with_a_sentence(auth_file, capsys):
    assert tunnel.run(["--namespace", "n", "--name", "v", "--port", "22", "--host", "http://10.9.9.9:6443",
                       "--proxy", "socks5://proxy:1080", "--auth-file", auth_file], environ={}) == 255
    assert capsys.readouterr().err == (
        "The API tunnel reaches the API server through http:// proxies only, and proxy is socks5://proxy: set proxy "
        "(K8S_AUTH_PROXY, or the kubeconfig proxy-url) to an http:// proxy, or no_proxy to bypass it.\n")


def test_http_proxy_connect_with_credentials_from_the_auth_file(tmp_path):
    """proxy http://user:pass@host (a secret, so in the auth file): CONNECT with Proxy-Authorization, then the tunnel."""
    api = VirtApi(echo_fragmented)
    seen = []
    proxy = socket.socket()
    proxy.bind(("127.0.0.1", 0))
    proxy.listen(2)

    def relay(a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def serve():
        conn, _ = proxy.accept()
        method, target, headers = read_head(conn)
        seen.append((method, target, headers))
        upstream = socket.create_connection(("127.0.0.1", api.port))
        conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        threading.Thread(target=relay, args=(upstream, conn), daemon=True).start()
        relay(conn, upstream)

    threading.Thread(target=serve, daemon=True).start()
    auth = tunnel.write_auth_file({"api_key": TOKEN, "proxy": "http://bob:s%%40cret@127.0.0.1:%d" % proxy.getsockname()[1]},
                                  str(tmp_path / "auth"))
    try:
        bridge = Bridge(["--namespace", "prod", "--name", "web", "--port", "22", "--host", api.url, "--auth-file", auth])
        bridge.send(b"through the proxy")
        assert bridge.read(17) == b"through the proxy"
        bridge.close_stdin()
        assert bridge.wait() == 0
    finally:
        api.close()
        proxy.close()
    method, target, headers = seen[0]
    assert (method, target) == ("CONNECT", "127.0.0.1:%d" % api.port)
    assert headers["proxy-authorization"] == ["Basic " + base64.b64encode(b"bob:s@cret").decode()]
    assert "authorization" not in headers, "the API token must not go to the proxy"


# --- run as a script, the way ssh runs it --------------------------------------------------------------------------
def test_script_imports_the_collection_from_its_own_tree(auth_file):
    """No ANSIBLE_COLLECTIONS_PATH, no PYTHONPATH, another working directory: the file finds module_utils itself."""
    api = VirtApi(echo_fragmented)
    env = dict((k, v) for k, v in os.environ.items() if k not in ("PYTHONPATH", "ANSIBLE_COLLECTIONS_PATH"))
    try:
        proc = subprocess.run([sys.executable, str(INSTALLED), "--namespace", "prod", "--name", "web", "--port", "22",
                               "--host", api.url, "--auth-file", auth_file], input=b"hello", capture_output=True,
                              cwd="/", env=env, timeout=60)
    finally:
        api.close()
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"hello", b"")


def test_script_outside_a_collection_tree_says_so(tmp_path):
    copy = tmp_path / "_api_tunnel.py"
    copy.write_text(INSTALLED.read_text())
    proc = subprocess.run([sys.executable, str(copy), "--namespace", "n", "--name", "v", "--port", "22"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 255
    assert proc.stderr == ("The API tunnel bridge %s must be run from an installed collection (.../ansible_collections/"
                           "virtfleet/kubevirt/plugins/plugin_utils/): install virtfleet.kubevirt with ansible-galaxy.\n"
                           % copy)


def test_collections_root():
    root = tunnel.collections_root("/x/y/ansible_collections/virtfleet/kubevirt/plugins/plugin_utils/_api_tunnel.py")
    assert root == "/x/y"
    assert tunnel.collections_root("/x/plugins/plugin_utils/_api_tunnel.py") is None
