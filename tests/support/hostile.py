"""
Hostile Blink servers on loopback: they answer whatever a test scripts, byte by byte if need be.

A :class:`HostileServer` records every request it gets (method, target, headers, body) and answers
each with an :class:`Answer` chosen by the test: a redirect elsewhere, an answer trickled one byte at
a time, a compression bomb, a body without ``Content-Length``, any JSON at all. Both clients
(requests and aiohttp) talk to it like to Blink; ``127.0.0.2`` is "another host" (it is loopback too).
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import itertools
import json
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_blink import api, endpoints

#: Another host for redirects: loopback, but not the configured Blink's address.
OTHER_HOST = "127.0.0.2"


@dataclass(frozen=True)
class Request:
    """One request as the server read it; header names lower-cased."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes

    def carries(self, secret: str) -> bool:
        """Whether ``secret`` appears anywhere in the request (target, any header, body)."""
        text = f"{self.target}\n{self.headers!r}\n{self.body.decode('latin-1')}"
        return secret in text


@dataclass
class Answer:
    """
    What the server writes back.

    :param status: HTTP status.
    :param body: the body bytes (or ``chunks`` of it).
    :param headers: extra headers.
    :param content_length: send ``Content-Length`` (else the body ends when the server closes).
    :param interval: seconds between writing each byte (of the body, or with ``trickle_head`` of
        everything): a server that answers far slower than any sane read timeout.
    :param trickle_head: trickle the status line and headers too, not only the body.
    :param chunks: the body as pieces written one after another (for bodies too large to build).
    """

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_length: bool = True
    interval: float = 0.0
    trickle_head: bool = False
    chunks: Callable[[], Iterable[bytes]] | None = None

    def head(self) -> bytes:
        headers = {"Content-Type": "application/json", **self.headers}
        if self.content_length:
            headers.setdefault("Content-Length", str(len(self.body)))
        else:
            headers["Connection"] = "close"
        lines = [f"HTTP/1.1 {self.status} Hostile", *(f"{k}: {v}" for k, v in headers.items())]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def write(self, sock: socket.socket) -> None:
        head = self.head()
        if not self.interval and not self.chunks:
            sock.sendall(head + self.body)  # one write: no delayed-ACK pause between head and body
            return
        if self.trickle_head:
            _trickle(sock, head, self.interval)
        else:
            sock.sendall(head)
        for piece in self.chunks() if self.chunks else [self.body]:
            if self.interval:
                _trickle(sock, piece, self.interval)
            else:
                sock.sendall(piece)


def _trickle(sock: socket.socket, data: bytes, interval: float) -> None:
    for index in range(len(data)):
        sock.sendall(data[index : index + 1])
        time.sleep(interval)


def json_answer(value: Any, status: int = 200, **headers: str) -> Answer:
    """Any JSON value (well-formed or not what Blink would send) as the body."""
    return Answer(status, json.dumps(value).encode(), headers=dict(headers))


def redirect(status: int, location: str) -> Answer:
    """A redirect to ``location``, with a JSON body as some proxies send."""
    return Answer(status, b'{"moved": true}', headers={"Location": location})


def trickling(value: Any, *, interval: float, head: bool = False) -> Answer:
    """A valid answer, sent one byte every ``interval`` seconds (with ``head``: headers too)."""
    return Answer(200, json.dumps(value).encode(), interval=interval, trickle_head=head)


def compression_bomb(encoding: str, size: int, value: Any | None = None) -> Answer:
    """
    A small compressed answer that decompresses to ``size`` bytes of valid JSON.

    The JSON is ``value`` (an object) with a ``pad`` field of zeros making up the size, so a client
    that does not bound the decompressed size reads it as a fine answer.

    :param encoding: ``gzip``, ``deflate`` or ``br``.
    """
    prefix = json.dumps({**(value or {}), "pad": ""})[:-2].encode()  # ..., "pad": "
    plain_parts = itertools.chain([prefix], _zeros(size - len(prefix) - 2), [b'"}'])  # never all in memory
    if encoding == "br":
        import brotli  # only when the clients can decode it

        body = brotli.compress(b"".join(plain_parts))
    else:
        wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
        compressor = zlib.compressobj(9, zlib.DEFLATED, wbits)
        body = b"".join(compressor.compress(part) for part in plain_parts) + compressor.flush()
    return Answer(200, body, headers={"Content-Encoding": encoding})


def _zeros(size: int, piece: int = 1 << 20) -> Iterator[bytes]:
    while size > 0:
        yield b"0" * min(size, piece)
        size -= piece


def unbounded(prefix: bytes, size: int) -> Answer:
    """An answer of ``size`` bytes without ``Content-Length``: it ends when the server closes."""

    def chunks() -> Iterator[bytes]:
        yield prefix
        yield from _zeros(size - len(prefix))

    return Answer(200, content_length=False, chunks=chunks)


class HostileServer:
    """
    A threaded HTTP/1.1 server on loopback that answers each request with ``respond(request)``.

    :param respond: picks the answer for a request (a fixed :class:`Answer` works too).
    :param host: the loopback address to listen on (``OTHER_HOST`` for "another host").
    :param tls: a server-side TLS context: serve HTTPS.
    """

    def __init__(
        self,
        respond: Callable[[Request], Answer] | Answer,
        *,
        host: str = "127.0.0.1",
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.respond = respond if callable(respond) else (lambda _request: respond)
        self.host = host
        self.requests: list[Request] = []
        self._tls = tls
        self._sock = socket.create_server((host, 0))
        self.port = self._sock.getsockname()[1]
        self._closed = False
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        """Base URL (the origin), e.g. ``http://127.0.0.1:43210``."""
        return f"{'https' if self._tls else 'http'}://{self.host}:{self.port}"

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()

    def requests_carrying(self, secret: str) -> list[Request]:
        return [request for request in self.requests if request.carries(secret)]

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError, ssl.SSLError):
            if self._tls:
                conn = self._tls.wrap_socket(conn, server_side=True)
            with conn:
                reader = conn.makefile("rb")
                while not self._closed:
                    request = _read_request(reader)
                    if request is None:
                        return
                    self.requests.append(request)
                    answer = self.respond(request)
                    answer.write(conn)
                    if not answer.content_length:
                        return


def _read_request(reader: Any) -> Request | None:
    line = reader.readline(65536)
    if not line.strip():
        return None
    method, target, _ = line.decode("latin-1").split(" ", 2)
    headers: dict[str, str] = {}
    while (line := reader.readline(65536)) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = b""
    if "content-length" in headers:
        body = reader.read(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while (size := int(reader.readline().split(b";")[0], 16)) > 0:
            body += reader.read(size)
            reader.readline()
        reader.readline()
    return Request(method, target, headers, body)


@dataclass(frozen=True)
class SelfSigned:
    """A certificate for 127.0.0.1 that is its own CA: ``verify=str(cert)`` trusts it."""

    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context


def self_signed(folder: Path) -> SelfSigned:
    """Write a self-signed certificate (and key) for ``127.0.0.1`` into ``folder``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    pair = SelfSigned(folder / "cert.pem", folder / "key.pem")
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pair.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return pair


def blink_connection(url: str, key: str, workspace: str, **extra: Any) -> str:
    """A ``blink`` connection (as ``AIRFLOW_CONN_...`` JSON) to ``url``, failing fast unless ``extra`` says otherwise."""
    settings = {"workspace_id": workspace, "retry_limit": 0, "retry_delay": 0.01, "timeout": 5, **extra}
    return json.dumps({"conn_type": "blink", "host": url, "password": key, "extra": settings})


#: Example ids for the placeholders of the registry's paths (the workspace is the connection's).
EXAMPLE_IDS = {"playbook_id": "pb-1", "execution_id": "exec-1"}
#: Example arguments besides the ids, by endpoint.
EXAMPLE_ARGUMENTS: dict[str, dict[str, Any]] = {
    "execute": {"input_values": {"ip": "203.0.113.9"}},
    "list": {"limit": 10},
}
#: Every endpoint of the registry as the tests drive it: hook method and arguments (sync and async alike).
CALLS: dict[str, tuple[str, tuple[Any, ...], dict[str, Any]]] = {
    name: (
        endpoint.hook_methods[0],
        tuple(EXAMPLE_IDS[placeholder] for placeholder in endpoint.ids if placeholder != "workspace_id"),
        EXAMPLE_ARGUMENTS.get(name, {}),
    )
    for name, endpoint in endpoints.ENDPOINTS.items()
}


def call_hook(client: str, method: str, *args: Any, **kwargs: Any) -> Any:
    """
    Call a method of the public hook on ``blink_default``: ``client`` is ``sync`` (requests) or ``async`` (aiohttp).

    :param method: a method the hook and its async client both have, e.g. ``get_execution``.
    """
    import asyncio

    from airflow_provider_blink.hooks.blink import BlinkHook

    hook = BlinkHook()
    if client == "sync":
        return getattr(hook, method)(*args, **kwargs)

    async def call_async() -> Any:
        async with hook.async_client() as blink:
            return await getattr(blink, method)(*args, **kwargs)

    return asyncio.run(call_async())


def call_blink(client: str, name: str) -> Any:
    """Make one of the :data:`CALLS` through the public hook (see :func:`call_hook`)."""
    method, args, kwargs = CALLS[name]
    return call_hook(client, method, *args, **kwargs)


#: Plausible Blink answers (what a server that took the key would say), by endpoint.
BLINK_ANSWERS: dict[str, Any] = {
    "execute": {"execution_id": "stolen-run"},
    "cancel": "ok",
    "steps": {"total": 0, "results": []},
    "list": {"limit": 10, "offset": 0, "total": 0, "results": []},
    "get": {"id": "exec-1", "state_ui": "Completed", "finished_at": 1},
}


def blink_answers(request: Request) -> Answer:
    """A plausible Blink answer to any call in :data:`CALLS`."""
    path = urlsplit(request.target).path.removeprefix(api.API_PREFIX)  # a proxy is sent the whole URL
    endpoint = endpoints.endpoint_of(request.method, path)
    assert endpoint is not None, f"not an endpoint of the registry: {request.method} {request.target}"
    return json_answer(BLINK_ANSWERS[endpoint.name])
