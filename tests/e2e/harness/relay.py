"""A loopback TCP relay that records the HTTP requests passing through it, to tell processes apart.

Each Airflow process that talks to Blink (a triggerer, a Celery worker) gets its own relay in front
of the one emulator through its own ``blink_default`` connection, so every request Blink receives can
be attributed to the process that sent it, and timed. The relay forwards bytes unchanged in both
directions and reads request heads (``METHOD target HTTP/1.1`` and ``Content-Length``) from the
client's stream as they pass; it does not terminate TLS (the suite's emulator speaks plain HTTP).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import threading
import time
from collections.abc import Iterable
from urllib.parse import parse_qs

from e2e.harness.processes import LOOPBACK

#: The longest request head the relay reads before giving up on a stream (the relay keeps forwarding).
MAX_HEAD = 64 * 1024


@dataclasses.dataclass(frozen=True)
class SeenRequest:
    """One request that went through a relay: when (``time.monotonic()``), method and target."""

    at: float
    method: str
    target: str

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    def executions_read(self) -> set[str]:
        """
        The execution ids this request reads: a single ``GET .../executions/<id>``, or each ``id`` of a
        batched list call's RQL ``$or`` filter (the triggers' shared poller).
        """
        if self.method != "GET":
            return set()
        path, _, query = self.target.partition("?")
        if path.endswith("/executions"):
            try:
                alternatives = json.loads(parse_qs(query)["q"][0])["filter"]["$or"]
            except (KeyError, IndexError, ValueError, TypeError):
                return set()
            ids = [a.get("id") for a in alternatives if isinstance(a, dict)]
            ids = [i.get("$eq") if isinstance(i, dict) else i for i in ids]
            return {i for i in ids if isinstance(i, str)}
        head, _, last = path.rpartition("/executions/")
        return {last} if head and last and "/" not in last else set()


class RequestHeads:
    """Incremental reader of HTTP/1.1 request heads in a client's byte stream (bodies skipped)."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._skip = 0  # body bytes of the current request still to pass
        self.broken = False

    def feed(self, data: bytes) -> list[tuple[str, str]]:
        """Take the next bytes; return ``(method, target)`` of each request head they complete."""
        found: list[tuple[str, str]] = []
        if self.broken:
            return found
        self._buffer += data
        while True:
            if self._skip:
                dropped = min(self._skip, len(self._buffer))
                del self._buffer[:dropped]
                self._skip -= dropped
                if self._skip:
                    return found
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                self.broken = len(self._buffer) > MAX_HEAD
                return found
            head = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
            del self._buffer[: end + 4]
            method, target, _ = [*head[0].split(" ", 2), "", ""][:3]
            found.append((method, target))
            for line in head[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    self._skip = int(value.strip())


class RecordingRelay:
    """Forward ``127.0.0.1:<port>`` to ``target_port``, recording each request that passes.

    It serves on its own event loop in a daemon thread, so thousands of kept-alive connections cost
    no thread each. ``requests`` is a snapshot; ``connections`` counts the TCP connections accepted.

    :param name: whose requests these are (a component name), for reports.
    """

    def __init__(self, name: str, target_port: int) -> None:
        self.name = name
        self.target_port = target_port
        self.connections = 0
        self._seen: list[SeenRequest] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"relay-{name}", daemon=True)
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> RecordingRelay:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, LOOPBACK, 0, backlog=1024), self._loop
        )
        self._server = future.result(timeout=10)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    def stop(self) -> None:
        """Close the listener and every relayed connection, then end the loop's thread."""
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        await asyncio.wait(others, timeout=5) if others else None

    @property
    def requests(self) -> list[SeenRequest]:
        with self._lock:
            return list(self._seen)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(LOOPBACK, self.target_port)
        except OSError:
            writer.close()
            return
        heads = RequestHeads()
        self._writers.update((writer, up_writer))
        try:
            await asyncio.gather(
                self._pipe(reader, up_writer, heads),
                self._pipe(up_reader, writer, None),
                return_exceptions=True,
            )
        finally:
            for each in (writer, up_writer):
                self._writers.discard(each)
                each.close()

    async def _pipe(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, heads: RequestHeads | None
    ) -> None:
        try:
            while data := await source.read(65536):
                if heads is not None:
                    self._record(heads.feed(data))
                sink.write(data)
                await sink.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                if sink.can_write_eof():
                    sink.write_eof()
                else:
                    sink.close()

    def _record(self, heads: Iterable[tuple[str, str]]) -> None:
        now = time.monotonic()
        with self._lock:
            self._seen.extend(SeenRequest(now, method, target) for method, target in heads)
