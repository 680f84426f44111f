"""A TCP server standing in for a guest port, shared by the tunnel tests (emulator, bridge, secrets) and nothing else."""
import socket
import threading


class TcpGuest:
    """A TCP server standing in for the guest: echo (default) or a custom per-connection function; counts connections,
    ``ended`` is set when an echo connection saw EOF from the tunnel."""

    def __init__(self, handler=None):
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(16)
        self.port = self.srv.getsockname()[1]
        self.handler = handler or self.echo
        self.ended = threading.Event()   # set when a connection saw EOF from the tunnel
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self.handler, args=(conn,), daemon=True).start()

    def echo(self, conn):
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                conn.sendall(data)
        except OSError:
            pass
        self.ended.set()
        conn.close()

    def close(self):
        try:
            self.srv.shutdown(socket.SHUT_RDWR)    # wakes the accept() (a bare close leaves the port listening)
        except OSError:
            pass
        self.srv.close()
