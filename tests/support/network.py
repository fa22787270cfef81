"""Loopback networking for the tests: one TCP relay in front of a server, and a port nothing listens on."""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType


class TcpRelay:
    """
    Relay 127.0.0.1:<:attr:`port`> to ``target_port`` on loopback, counting client connections.

    Threads do the relaying, so sync and async clients alike can go through it. It can stop
    listening (:meth:`refuse`: new connections are refused, open ones dropped) and listen again on
    the same port (:meth:`listen`), as a server going down and coming back would.

    :ivar connections: client connections accepted in all.
    :ivar open: client connections open now.
    :ivar peak: the most client connections open at once.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.connections = 0
        self.open = 0
        self.peak = 0
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._server: socket.socket | None = None
        self.listen()

    def listen(self) -> None:
        """Listen on :attr:`port`: a free one the first time, the same one after :meth:`refuse`."""
        self._server = socket.create_server(("127.0.0.1", self.port))  # SO_REUSEADDR: the port again
        self.port = int(self._server.getsockname()[1])
        threading.Thread(target=self._accept, args=(self._server,), daemon=True).start()

    def refuse(self) -> None:
        """Close the listening socket and every open connection: new connections are refused."""
        server, self._server = self._server, None
        if server is not None:
            _close(server)  # shutdown first: a close alone would not wake the thread in accept()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            _close(sock)

    close = refuse

    def __enter__(self) -> TcpRelay:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                downstream, _ = server.accept()
            except OSError:  # refused or closed
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                _close(downstream)
                continue
            with self._lock:
                self.connections += 1
                self.open += 1
                self.peak = max(self.peak, self.open)
                self._sockets |= {downstream, upstream}
            threading.Thread(target=self._serve, args=(downstream, upstream), daemon=True).start()

    def _serve(self, downstream: socket.socket, upstream: socket.socket) -> None:
        back = threading.Thread(target=_pipe, args=(upstream, downstream), daemon=True)
        back.start()
        _pipe(downstream, upstream)  # ends when the client closes its side
        back.join()
        with self._lock:
            self.open -= 1
            self._sockets -= {downstream, upstream}
        _close(downstream)
        _close(upstream)


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
