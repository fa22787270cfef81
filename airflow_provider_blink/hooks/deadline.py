"""
A total bound on each synchronous attempt: connect, headers and body within one deadline.

requests' timeouts bound each socket read, so a server sending one byte every second holds a call
for ever. Here every read of an answer (status line, headers, body) waits at most until the
attempt's deadline, set by :func:`attempt_deadline` around the request: the session mounts
:class:`DeadlineAdapter`, whose connections read answers through :class:`_DeadlineResponse`.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import urllib3.connection
from requests.adapters import HTTPAdapter

_attempt = threading.local()


@contextlib.contextmanager
def attempt_deadline(seconds: float) -> Iterator[None]:
    """Answers read in this thread within the block must arrive within ``seconds`` from now."""
    _attempt.deadline = time.monotonic() + seconds
    try:
        yield
    finally:
        _attempt.deadline = None


class _DeadlineReader(io.RawIOBase):
    """A socket's reads, each waiting no longer than what is left until the deadline."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self._sock = sock
        # A file of the socket, as http.client would take: it keeps the socket open while the
        # answer is read, even when the connection closes its end (an answer without a length).
        self._file = sock.makefile("rb", buffering=0)
        self._deadline = deadline
        self._per_read = sock.gettimeout()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the answer did not arrive within the connection's timeout")
        self._sock.settimeout(left if self._per_read is None else min(left, self._per_read))
        return self._file.readinto(buffer)

    def close(self) -> None:
        self._file.close()
        super().close()


class _DeadlineSocket:
    """What ``http.client`` reads an answer through (it only calls ``makefile``)."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self._sock, self._deadline))


class _DeadlineResponse(http.client.HTTPResponse):
    def __init__(self, sock: Any, *args: Any, **kwargs: Any) -> None:
        deadline: float | None = getattr(_attempt, "deadline", None)
        reader: Any = sock if deadline is None else _DeadlineSocket(sock, deadline)
        super().__init__(reader, *args, **kwargs)


class _HTTPConnection(urllib3.connection.HTTPConnection):
    response_class = _DeadlineResponse


class _HTTPSConnection(urllib3.connection.HTTPSConnection):
    response_class = _DeadlineResponse


_WITH_DEADLINE: dict[type, type] = {
    urllib3.connection.HTTPConnection: _HTTPConnection,
    urllib3.connection.HTTPSConnection: _HTTPSConnection,
}


class DeadlineAdapter(HTTPAdapter):
    """requests' adapter whose connections honour :func:`attempt_deadline` (direct or via a proxy)."""

    def get_connection_with_tls_context(self, *args: Any, **kwargs: Any) -> Any:
        pool: Any = super().get_connection_with_tls_context(*args, **kwargs)
        pool.ConnectionCls = _WITH_DEADLINE.get(pool.ConnectionCls, pool.ConnectionCls)
        return pool
