"""A TCP forwarder on loopback that counts the connections clients open through it."""

from __future__ import annotations

import contextlib
import socket
import threading


class CountingProxy:
    """Forward 127.0.0.1:<port> to ``target_port``, counting connections: in all, open now, at most."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.connections = 0
        self.open = 0
        self.peak = 0
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                downstream, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self.connections += 1
                self.open += 1
                self.peak = max(self.peak, self.open)
                self._sockets += [downstream, upstream]
            threading.Thread(target=self._serve, args=(downstream, upstream), daemon=True).start()

    def _serve(self, downstream: socket.socket, upstream: socket.socket) -> None:
        back = threading.Thread(target=self._pipe, args=(upstream, downstream), daemon=True)
        back.start()
        self._pipe(downstream, upstream)  # ends when the client closes its side
        back.join()
        with self._lock:
            self.open -= 1
        for sock in (downstream, upstream):
            sock.close()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._server.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()
