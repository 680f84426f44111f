"""Server side of RFC 6455 WebSockets for the emulator: the handshake checks and a socket <-> WebSocket pump.

Written for virt-api's `portforward` subresource (portforward.py) and modelled on what KubeVirt v1.9.0 runs there
(github.com/kubevirt/kubevirt, tag v1.9.0):

* the handshake is gorilla/websocket v1.5.4's `Upgrader.Upgrade` (vendor/github.com/gorilla/websocket/server.go) as
  configured by client-go's `kvcorev1.NewUpgrader` (staging/src/kubevirt.io/client-go/kubevirt/typed/core/v1/
  websocket.go): subprotocol `plain.kubevirt.io` (subresources/constants.go `PlainStreamProtocolName`) chosen only
  when the client offers it (`selectSubprotocol`), any Origin accepted, no compression; the checks, their order, status
  codes and messages are `Upgrader.Upgrade`'s (`check_handshake`);
* the data path is pkg/virt-api/rest/streamer.go `NewWebsocketStreamer` / `Streamer.Handle`: guest bytes go out as
  binary messages (kvcorev1 `CopyTo` -> `binaryWriter`: one message per read of the guest socket, io.Copy's 32 KiB
  buffer, split by gorilla's 10 KiB write buffer (`WebsocketMessageBufferSize`) into a first frame and continuation
  frames); client binary messages are copied to the guest (`CopyFrom` -> `binaryReader`: text messages skipped, a
  Close frame ends the copy); `keepAliveClientStream` pings every second (payload "keep alive") and gives up when no
  pong arrived for a minute; the first direction to end closes both connections (`cleanupOnClosedContext`): when the
  guest closes, the client connection is closed without a Close frame (gorilla `Conn.Close` closes the network
  connection); a client Close frame is echoed first (gorilla's default close handler).

Protocol errors (unmasked client frame, reserved bits, bad control frame, continuation out of order, bad close code)
get a Close frame 1002 with gorilla's wording (conn.go `advanceFrame`) and end the tunnel, as gorilla's
`handleProtocolError` does.
"""
import base64
import hashlib
import http
import json
import select
import socket
import struct
import threading
import time
import traceback

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
PLAIN_PROTOCOL = "plain.kubevirt.io"

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
CLOSE_NORMAL, CLOSE_PROTOCOL_ERROR, CLOSE_NO_STATUS = 1000, 1002, 1005
# gorilla `isValidReceivedCloseCode`: these and 3000-4999 (not 1005, 1006, 1015)
VALID_CLOSE_CODES = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013}

# streamer.go: `keepAliveClientStream` pings every second and sets a one-minute read deadline that pongs renew.
KEEPALIVE_INTERVAL = 1.0
PONG_TIMEOUT = 60.0
# kvcorev1.WebsocketMessageBufferSize: gorilla flushes a frame each time its 10 KiB write buffer is full.
FRAME_PAYLOAD = 10240
# io.Copy's buffer: one binary message per read of the guest socket.
READ_SIZE = 32 * 1024
CHUNK = 64 * 1024

BAD_HANDSHAKE = "websocket: the client is not using the websocket protocol: "


class HandshakeError(Exception):
    """A request gorilla's Upgrader refuses: `answer()` is what virt-api sends then (see `upgrade`)."""

    def __init__(self, code, message, headers=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.headers = headers or {}

    def answer(self):
        """(status, body, headers): gorilla's `returnError` writes `http.Error(w, StatusText(code), code)` (text/plain,
        `Sec-Websocket-Version: 13`), then virt-api's `writeError(errors.NewBadRequest(err.Error()))` appends its JSON
        Status to the same body (the status line is already out)."""
        status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": self.message,
                  "reason": "BadRequest", "code": 400}
        body = (http.HTTPStatus(self.code).phrase + "\n").encode() + json.dumps(status, separators=(",", ":")).encode()
        headers = dict(self.headers, **{"Content-Type": "text/plain; charset=utf-8", "X-Content-Type-Options": "nosniff",
                                        "Sec-Websocket-Version": "13"})
        return self.code, body, headers


def _tokens(headers, name):
    out = []
    for value in headers.get_all(name) or []:
        out.extend(t.strip().lower() for t in value.split(","))
    return out


def accept_key(key):
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 4.2.2)."""
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def _valid_key(key):
    if not key:
        return False
    try:
        return len(base64.b64decode(key.strip(), validate=True)) == 16
    except ValueError:
        return False


def check_handshake(method, headers):
    """The subprotocol to answer with ("" for none), or HandshakeError as gorilla's `Upgrader.Upgrade` reports it."""
    if "upgrade" not in _tokens(headers, "Connection"):
        raise HandshakeError(400, BAD_HANDSHAKE + "'upgrade' token not found in 'Connection' header")
    if "websocket" not in _tokens(headers, "Upgrade"):
        raise HandshakeError(426, BAD_HANDSHAKE + "'websocket' token not found in 'Upgrade' header",
                             {"Upgrade": "websocket"})
    if method != "GET":
        raise HandshakeError(405, BAD_HANDSHAKE + "request method is not GET")
    if "13" not in _tokens(headers, "Sec-WebSocket-Version"):
        raise HandshakeError(400, "websocket: unsupported version: 13 not found in 'Sec-Websocket-Version' header")
    if not _valid_key(headers.get("Sec-WebSocket-Key")):
        raise HandshakeError(400, "websocket: not a websocket handshake: 'Sec-WebSocket-Key' header must be Base64 "
                                  "encoded value of 16-byte in length")
    offered = [p.strip() for v in headers.get_all("Sec-WebSocket-Protocol") or [] for p in v.split(",")]
    return PLAIN_PROTOCOL if PLAIN_PROTOCOL in offered else ""


def switching_protocols(key, subprotocol):
    """The 101 answer, header for header as gorilla writes it."""
    lines = ["HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade",
             "Sec-WebSocket-Accept: " + accept_key(key.strip())]
    if subprotocol:
        lines.append("Sec-WebSocket-Protocol: " + subprotocol)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def upgrade(request, guest, stopping=None):
    """Switch `request` (a BaseHTTPRequestHandler) to a WebSocket carrying `guest` (a connected socket).

    Returns the Tunnel (not yet running: call `run()` on the request's thread) after the 101 went out, or raises
    HandshakeError (the guest socket closed) for a request that is no WebSocket handshake.
    """
    try:
        subprotocol = check_handshake(request.command, request.headers)
    except HandshakeError:
        guest.close()
        raise
    request.close_connection = True
    # Blocking: two threads read and write this (TLS) socket at once; with a timeout, Python retries OpenSSL calls on
    # want-read/want-write, and concurrent calls then occasionally saw a false EOF (test_portforward.Client).
    request.connection.settimeout(None)
    try:
        request.connection.sendall(switching_protocols(request.headers["Sec-WebSocket-Key"], subprotocol))
    except OSError:
        guest.close()
        raise
    return Tunnel(request.connection, request.rfile.read, guest, stopping)


def frame(opcode, payload=b"", fin=True):
    """One unmasked (server) frame; 7-bit, 16-bit or 64-bit payload length as the size requires."""
    head = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        return struct.pack("!BB", head, n) + payload
    if n < 65536:
        return struct.pack("!BBH", head, 126, n) + payload
    return struct.pack("!BBQ", head, 127, n) + payload


def message_frames(payload, size=FRAME_PAYLOAD):
    """A binary message as gorilla sends it: frames of at most `size` bytes, continuation frames after the first."""
    if len(payload) <= size:
        return frame(OP_BINARY, payload)
    parts = []
    for off in range(0, len(payload), size):
        part = payload[off:off + size]
        parts.append(frame(OP_BINARY if off == 0 else OP_CONT, part, fin=off + size >= len(payload)))
    return b"".join(parts)


def close_payload(code, reason=""):
    return b"" if code == CLOSE_NO_STATUS else struct.pack("!H", code) + reason.encode()


def unmask(data, key, offset=0):
    """XOR `data` with the 4-byte mask `key`, starting at byte `offset` of the payload."""
    if not data:
        return data
    shift = offset % 4
    rolled = key[shift:] + key[:shift]
    n = len(data)
    stream = (rolled * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")


class ProtocolError(Exception):
    """A client frame gorilla refuses; the text is its reason (conn.go `advanceFrame`)."""


class Tunnel:
    """Pump between an upgraded client connection and a connected TCP socket, for the life of the tunnel.

    `read_exact(n)` reads exactly n bytes from the client (fewer only at EOF: the HTTP handler's buffered rfile, so
    bytes already read with the request headers are not lost); `client` is the client socket (plain or TLS), written
    under a lock by both threads. `run()` is called on the HTTP handler thread and returns when the tunnel has ended;
    the guest -> client direction and the keep-alive pings run on a second (daemon) thread. `stats` holds the bytes
    each way and what ended the tunnel: "guest" (the guest closed), "client-close" (Close frame), "client" (the
    client connection ended), "keepalive" (no pong for PONG_TIMEOUT), "protocol-error", "server-stop", "error".
    """

    def __init__(self, client, read_exact, guest, stopping=None):
        self.client = client
        self.read_exact = read_exact
        self.guest = guest
        self.stopping = stopping
        self._wlock = threading.Lock()       # writes to the client (both threads)
        self._state = threading.Lock()       # the end, once (never held during I/O)
        self._done = threading.Event()
        self.last_pong = time.monotonic()
        self.stats = {"to_guest": 0, "from_guest": 0, "ended_by": None}

    # --- ending ------------------------------------------------------------------------------------------
    def end(self, why, last=None):
        """End the tunnel once: send `last` (a Close frame) if given, close the guest connection, shut the client
        connection down (no Close frame otherwise, as virt-api). Never waits long: a write stuck on a client that
        does not read costs the Close frame (after a second), not the end (server shutdown relies on that)."""
        with self._state:
            if self._done.is_set():
                return
            self._done.set()
            self.stats["ended_by"] = why
        if last is not None and self._wlock.acquire(timeout=1.0):
            try:
                self.client.sendall(last)
            except OSError:
                pass
            finally:
                self._wlock.release()
        for sock in (self.guest, self.client):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        try:
            self.guest.close()
        except OSError:
            pass

    @property
    def ended(self):
        return self._done.is_set()

    def _send(self, data):
        with self._wlock:
            if self._done.is_set():
                raise OSError("tunnel ended")
            self.client.sendall(data)

    # --- guest -> client (second thread) ----------------------------------------------------------------
    def _from_guest(self):
        next_ping = time.monotonic() + KEEPALIVE_INTERVAL
        try:
            while not self._done.is_set():
                try:
                    ready, _, _ = select.select([self.guest], [], [], max(0.0, next_ping - time.monotonic()))
                    data = self.guest.recv(READ_SIZE) if ready else None
                except (OSError, ValueError):    # ValueError: the socket was closed meanwhile (fd -1)
                    return self.end("guest")
                if data == b"":
                    return self.end("guest")
                if data:
                    self._send(message_frames(data))
                    self.stats["from_guest"] += len(data)
                now = time.monotonic()
                if self.stopping is not None and self.stopping.is_set():
                    return self.end("server-stop")
                if now >= next_ping:
                    if now - self.last_pong > PONG_TIMEOUT:
                        return self.end("keepalive")
                    self._send(frame(OP_PING, b"keep alive"))
                    next_ping = now + KEEPALIVE_INTERVAL
        except OSError:
            self.end("client")

    # --- client -> guest (the HTTP handler's thread) ----------------------------------------------------
    def run(self):
        pump = threading.Thread(target=self._from_guest, name="portforward-from-guest", daemon=True)
        pump.start()
        try:
            self._from_client()
        except ProtocolError as exc:    # gorilla `handleProtocolError`: a Close 1002 with the reason, at most 125 bytes
            self.end("protocol-error", frame(OP_CLOSE, close_payload(CLOSE_PROTOCOL_ERROR, str(exc))[:125]))
        except (OSError, EOFError):
            self.end("client")
        except Exception:   # an emulator bug: on stderr, and the tunnel ends
            traceback.print_exc()
            self.end("error")
        finally:
            pump.join(KEEPALIVE_INTERVAL * 3)
        return self.stats

    def _read(self, n):
        data = self.read_exact(n) if n else b""
        if len(data) < n:
            raise EOFError
        return data

    def _from_client(self):
        """gorilla `Conn.advanceFrame` (vendor/github.com/gorilla/websocket/conn.go) and kvcorev1 `binaryReader`."""
        final = True             # gorilla's readFinal: the last data frame had FIN
        kind = None              # opcode of the message the data frames belong to
        while not self._done.is_set():
            b0, b1 = self._read(2)
            fin, opcode, masked, length = bool(b0 & 0x80), b0 & 0x0F, b1 & 0x80, b1 & 0x7F
            problems = ["RSV%d set" % i for i, bit in ((1, 0x40), (2, 0x20), (3, 0x10)) if b0 & bit]
            if opcode in (OP_CLOSE, OP_PING, OP_PONG):
                if length > 125:
                    problems.append("len > 125 for control")
                if not fin:
                    problems.append("FIN not set on control")
            elif opcode in (OP_TEXT, OP_BINARY):
                if not final:
                    problems.append("data before FIN")
                final, kind = fin, opcode
            elif opcode == OP_CONT:
                if final:
                    problems.append("continuation after FIN")
                final = fin
            else:
                problems.append("bad opcode %d" % opcode)
            if not masked:
                problems.append("bad MASK")
            if problems:
                raise ProtocolError(", ".join(problems))
            if length == 126:
                length = struct.unpack("!H", self._read(2))[0]
            elif length == 127:
                length = struct.unpack("!Q", self._read(8))[0]
                if length >> 63:
                    return self.end("protocol-error")     # gorilla: ErrReadLimit, no Close frame
            key = self._read(4)
            if opcode in (OP_CLOSE, OP_PING, OP_PONG):
                payload = unmask(self._read(length), key)
                if opcode == OP_PING:
                    self._send(frame(OP_PONG, payload))
                elif opcode == OP_PONG:
                    self.last_pong = time.monotonic()
                else:
                    code = CLOSE_NO_STATUS
                    if len(payload) >= 2:
                        code = struct.unpack("!H", payload[:2])[0]
                        if code not in VALID_CLOSE_CODES and not 3000 <= code <= 4999:
                            raise ProtocolError("bad close code %d" % code)
                        try:
                            payload[2:].decode("utf-8")
                        except UnicodeDecodeError:
                            raise ProtocolError("invalid utf8 payload in close frame")
                    # gorilla's default close handler echoes the code; then the copy ends and both sides close.
                    return self.end("client-close", frame(OP_CLOSE, close_payload(code)))
                continue
            offset = 0
            while offset < length:      # stream the payload: a 64-bit length is never held in memory at once
                part = unmask(self._read(min(CHUNK, length - offset)), key, offset)
                offset += len(part)
                if kind == OP_BINARY:   # binaryReader skips text messages
                    try:
                        self.guest.sendall(part)
                    except OSError:
                        return self.end("guest")
                    self.stats["to_guest"] += len(part)
