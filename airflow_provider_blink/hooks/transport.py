"""
How one Blink API call travels: sent, bounded, retried and logged; sync and async side by side.

Read top to bottom:

1. Which failures are retried (:func:`is_transient` and the rest): the one rule every retry layer
   uses (the layers: docs/retry-layers.md).
2. How a call is retried (:class:`RetryPolicy`): attempts, waits, the log line.
3. Calling with retries: :func:`call_with_retries` (sync) and :func:`acall_with_retries` (async).
4. Sending one attempt, bounded in time and size: :func:`send` (requests) and :func:`asend` (aiohttp),
   reading the body through :class:`AnswerBody`.
5. Sessions: one ``requests.Session`` per hook, with a deadline on each attempt (:func:`new_sync_session`);
   aiohttp sessions, private or shared by the triggers of one event loop (:class:`SharedSession`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http.client
import io
import logging
import socket
import threading
import time
import weakref
import zlib
from collections.abc import Awaitable, Callable, Hashable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import requests
import tenacity
import urllib3.connection
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from requests.utils import get_environ_proxies, select_proxy

from airflow_provider_blink import api
from airflow_provider_blink.exceptions import (
    BlinkApiError,
    BlinkClientError,
    BlinkConfigurationError,
    BlinkError,
    BlinkPermanentError,
    BlinkResponseError,
    BlinkStartUncertain,
    BlinkTransportError,
    redact,
)

if TYPE_CHECKING:
    import aiohttp

    from airflow_provider_blink.hooks.connection import BlinkConnectionConfig

# -- 1. Which failures are retried -----------------------------------------------------------------

#: A ``Retry-After`` longer than this is not waited for within one call: the call fails at once and
#: says so. A task waiting for an execution may still honour it between its reads (``tasks.ErrorBudget``).
MAX_RETRY_AFTER = 120.0

# Statuses that mean Blink did not act on the request, so even a non-idempotent POST may repeat.
_NOT_PROCESSED_STATUSES = frozenset({429, 503})


def is_transient(exc: BaseException, *, idempotent: bool) -> bool:
    """
    Say whether a failed call may succeed later, however long Blink asks to wait first.

    Transport faults, 429 and 5xx are transient. A call that is not idempotent (starting a
    playbook) is transient only when Blink surely did not act on it: nothing was sent (refused,
    DNS, TLS handshake), or Blink answered 429/503. Other 4xx are permanent.
    """
    if isinstance(exc, BlinkTransportError):
        return idempotent or not exc.request_sent
    if isinstance(exc, BlinkApiError):
        if exc.status in _NOT_PROCESSED_STATUSES:
            return True
        return idempotent and exc.status >= 500
    return False


def requested_wait(exc: BaseException | None) -> float | None:
    """Seconds Blink asked to wait before trying again (its ``Retry-After``), if it said."""
    return exc.retry_after if isinstance(exc, BlinkApiError) else None


def asks_to_slow_down(exc: BaseException) -> bool:
    """Whether Blink asked for fewer requests: a 429, or any error answer with a ``Retry-After``."""
    return isinstance(exc, BlinkApiError) and (exc.status == 429 or exc.retry_after is not None)


def is_retryable(exc: BaseException, *, idempotent: bool) -> bool:
    """
    Say whether one call repeats after it failed with ``exc``.

    A transient failure (:func:`is_transient`) repeats, unless Blink asked to wait longer than
    :data:`MAX_RETRY_AFTER`: then the call gives up at once rather than hold its caller that long.
    """
    wait = requested_wait(exc)
    return is_transient(exc, idempotent=idempotent) and (wait is None or wait <= MAX_RETRY_AFTER)


def is_ambiguous(exc: BaseException) -> bool:
    """Whether a failed call may or may not have taken effect (it timed out, or the answer was lost)."""
    return is_retryable(exc, idempotent=True) and not is_retryable(exc, idempotent=False)


def start_refused(exc: BaseException) -> bool:
    """
    Whether a start that failed with ``exc`` (after the hook's retries and lookups) surely started nothing.

    So it is when the request never left (it could not be built or sent), or Blink answered that it
    did not act on it (429, 503) or refused it (4xx); any other failure (a lost answer, a 5xx, a
    lookup that failed) leaves it open.
    """
    if isinstance(exc, BlinkStartUncertain):
        return False
    refusals = (BlinkClientError, BlinkConfigurationError)
    return is_transient(exc, idempotent=False) or isinstance(exc, refusals)


#: Added to the error of a call that is not idempotent and failed without showing whether Blink acted.
MAY_HAVE_REACHED_BLINK = (
    "The request may have reached Blink (the playbook may have started), so it was not repeated: "
    "check the playbook's runs in Blink before running it again."
)
#: Added to the last error of a start that kept failing ambiguously and whose run was not found.
NOT_FOUND_AFTER_AMBIGUOUS = (
    "The request may have reached Blink, but no execution it started was found when looked for: "
    "check the playbook's runs in Blink before running it again."
)


def explain_not_retried(exc: BaseException, *, idempotent: bool, looked_up: bool = False) -> None:
    """Say in ``exc`` that a non-idempotent call may have reached Blink, when its failure leaves that open."""
    if not idempotent and is_ambiguous(exc):
        note = NOT_FOUND_AFTER_AMBIGUOUS if looked_up else MAY_HAVE_REACHED_BLINK
        exc.args = (f"{exc.args[0] if exc.args else exc} {note}", *exc.args[1:])


def lookup_failed(failure: object, lookup_error: BlinkError) -> BlinkError:
    """The error for an ambiguous start whose run could not be looked for (``lookup_error``)."""
    if isinstance(lookup_error, BlinkPermanentError) and not isinstance(lookup_error, BlinkApiError):
        return lookup_error  # the lookup answered: several identical runs, none to pick
    return BlinkStartUncertain(
        f"{failure} Looking for the run it may have started failed: {lookup_error} {MAY_HAVE_REACHED_BLINK}"
    )


# -- 2. How a call is retried ----------------------------------------------------------------------


class _WaitHonouringRetryAfter(tenacity.wait.wait_base):
    """Exponential backoff with full jitter, or Blink's ``Retry-After`` when it sends one."""

    def __init__(self, initial: float, maximum: float) -> None:
        self._backoff = tenacity.wait_random_exponential(multiplier=initial, max=maximum)

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        wait = requested_wait(exc)
        return float(self._backoff(retry_state)) if wait is None else wait


@dataclass(frozen=True)
class RetryPolicy:
    """
    How often and how patiently a Blink call is retried (connection extras ``retry_limit``, ``retry_delay``).

    :param max_retries: retries after the first attempt (0 disables retrying).
    :param initial_delay: base of the exponential backoff, in seconds (the first wait is up to this).
    :param max_delay: cap of one backoff wait, in seconds.
    """

    max_retries: int = 5
    initial_delay: float = 1.0
    max_delay: float = 30.0

    def tenacity_kwargs(
        self,
        *,
        idempotent: bool,
        log: logging.Logger | Any,
        retry_when: Callable[[BaseException], bool] | None = None,
    ) -> dict[str, Any]:
        """
        Arguments for ``tenacity.Retrying``/``AsyncRetrying``: which failures repeat, the waits, the log.

        :param retry_when: narrows the rule: a failure it would retry is retried only if this says so too.
        """

        def retries(exc: BaseException) -> bool:
            return is_retryable(exc, idempotent=idempotent) and (retry_when is None or retry_when(exc))

        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning(
                "Blink call failed (attempt %d of %d), retrying in %.1fs: %s",
                state.attempt_number,
                self.max_retries + 1,
                state.upcoming_sleep,
                exc,
            )

        return {
            "retry": tenacity.retry_if_exception(retries),
            "wait": _WaitHonouringRetryAfter(self.initial_delay, self.max_delay),
            "stop": tenacity.stop_after_attempt(self.max_retries + 1),
            "before_sleep": before_sleep,
            "reraise": True,
        }


# -- 3. Calling with retries -----------------------------------------------------------------------


class _Failures:
    """
    What the failed attempts of one call have shown: the last failure, whether any was ambiguous.

    :param call: the call, for its idempotency.
    :param api_key: redacted from each failure before anything logs it.
    """

    def __init__(self, call: api.ApiCall[Any], api_key: str) -> None:
        self.call = call
        self.api_key = api_key
        self.last: BlinkError | None = None
        self.count = 0
        self.ambiguous = False  # then a lookup (``recover``) runs before the next attempt
        self.looked_up = False

    def add(self, exc: BlinkError) -> None:
        redact(exc, self.api_key)
        self.last = exc
        self.count += 1
        self.ambiguous = self.ambiguous or is_ambiguous(exc)

    def looks_up_before_giving_up(self, exc: BlinkError) -> bool:
        """Whether to look once more for what the attempts did, after the last one failed with ``exc``."""
        return exc is self.last and self.ambiguous and self.count > 1

    def given_up(self, exc: BlinkError) -> BlinkError:
        """The error a call ends with, saying whether it may have reached Blink."""
        if not isinstance(exc, BlinkStartUncertain):
            explain_not_retried(exc, idempotent=self.call.idempotent, looked_up=self.looked_up)
        return exc


def call_with_retries(
    call: api.ApiCall[Any],
    config: BlinkConnectionConfig,
    log: logging.Logger | Any,
    send: Callable[[api.ApiCall[Any]], Any],
    recover: Callable[[], Any] | None = None,
) -> Any:
    """
    Send ``call`` until it succeeds or the connection's :class:`RetryPolicy` gives up; sync.

    When a call that is not idempotent (a start) failed ambiguously, ``recover`` looks for what that
    attempt did before the call is sent again, and once more before giving up; what it finds is the
    result. A lookup that fails ends the call with both errors (:func:`lookup_failed`).
    """
    failures = _Failures(call, config.api_key)
    try:
        return send(call)  # most calls succeed at once: no retry machinery is built for them
    except BlinkError as exc:
        failures.add(exc)
        first = exc
    idempotent = call.idempotent or recover is not None
    try:
        for attempt in tenacity.Retrying(**config.retry.tenacity_kwargs(idempotent=idempotent, log=log)):
            with attempt:
                if attempt.retry_state.attempt_number == 1:
                    raise first  # the attempt made above: the policy decides on it like any other
                if (
                    recover is not None
                    and failures.ambiguous
                    and (found := _look_up(recover, failures)) is not None
                ):
                    return found
                try:
                    return send(call)
                except BlinkError as exc:
                    failures.add(exc)
                    raise
    except BlinkError as exc:
        if (
            recover is not None
            and failures.looks_up_before_giving_up(exc)
            and (found := _look_up(recover, failures)) is not None
        ):
            return found
        raise failures.given_up(exc) from None
    raise AssertionError("unreachable: tenacity returns or raises")  # pragma: no cover


async def acall_with_retries(
    call: api.ApiCall[Any],
    config: BlinkConnectionConfig,
    log: logging.Logger | Any,
    send: Callable[[api.ApiCall[Any]], Awaitable[Any]],
    recover: Callable[[], Awaitable[Any]] | None = None,
    retry_when: Callable[[BaseException], bool] | None = None,
) -> Any:
    """
    Async :func:`call_with_retries`.

    :param retry_when: narrows the policy (see :meth:`RetryPolicy.tenacity_kwargs`); the caller handles
        the failures it does not retry (the poller reads a failed list call's executions with GETs).
    """
    failures = _Failures(call, config.api_key)
    try:
        return await send(call)  # most calls succeed at once: no retry machinery is built for them
    except BlinkError as exc:
        failures.add(exc)
        first = exc
    idempotent = call.idempotent or recover is not None
    kwargs = config.retry.tenacity_kwargs(idempotent=idempotent, log=log, retry_when=retry_when)
    try:
        async for attempt in tenacity.AsyncRetrying(**kwargs):
            with attempt:
                if attempt.retry_state.attempt_number == 1:
                    raise first  # the attempt made above: the policy decides on it like any other
                if (
                    recover is not None
                    and failures.ambiguous
                    and (found := await _alook_up(recover, failures)) is not None
                ):
                    return found
                try:
                    return await send(call)
                except BlinkError as exc:
                    failures.add(exc)
                    raise
    except BlinkError as exc:
        if (
            recover is not None
            and failures.looks_up_before_giving_up(exc)
            and (found := await _alook_up(recover, failures)) is not None
        ):
            return found
        raise failures.given_up(exc) from None
    raise AssertionError("unreachable: tenacity returns or raises")  # pragma: no cover


def _look_up(recover: Callable[[], Any], failures: _Failures) -> Any:
    failures.looked_up = True
    try:
        return recover()
    except BlinkError as lookup_error:
        raise lookup_failed(failures.last, lookup_error) from None


async def _alook_up(recover: Callable[[], Awaitable[Any]], failures: _Failures) -> Any:
    failures.looked_up = True
    try:
        return await recover()
    except BlinkError as lookup_error:
        raise lookup_failed(failures.last, lookup_error) from None


# -- 4. Sending one attempt ------------------------------------------------------------------------

#: What the clients ask for: the encodings :class:`AnswerBody` decodes within the cap.
ACCEPT_ENCODING = "gzip, deflate"
#: Bytes read off the wire at a time.
CHUNK_BYTES = 64 * 1024
#: Most bytes one decompression step produces.
_PIECE_BYTES = 1024 * 1024


class AnswerBody:
    """
    Collect one answer's body chunk by chunk, within the call's ``answer_limit`` after decompression.

    Decompressed as it arrives (gzip, deflate), refused once it exceeds the call's
    :attr:`.api.ApiCall.answer_limit`, and read in time linear in its size (one growing buffer).

    :param call: the call answered, for messages.
    :param status: the answer's HTTP status, for messages.
    :param encoding: its ``Content-Encoding`` (``None``/``identity``: not compressed).
    :raises BlinkResponseError: an encoding this provider did not ask for.
    """

    def __init__(self, call: api.ApiCall[Any], status: int, encoding: str | None) -> None:
        self._call = call
        self._status = status
        self._data = bytearray()
        self._encoding = (encoding or "identity").strip().lower()
        if self._encoding not in ("identity", "gzip", "x-gzip", "deflate"):
            raise BlinkResponseError(
                f"Blink answered {call.what} (HTTP {status}) with Content-Encoding {encoding!r}, "
                f"which was not asked for ({ACCEPT_ENCODING})."
            )
        self._decoder: Any = None
        self._limit = call.answer_limit

    @property
    def plain(self) -> bool:
        """Whether the answer is not compressed (its ``Content-Length`` is its size)."""
        return self._encoding == "identity"

    def feed(self, chunk: bytes) -> None:
        """Add the next chunk as it came off the wire."""
        if self._encoding == "identity":
            self._append(chunk)
            return
        try:
            while chunk:
                if self._decoder is None or self._decoder.eof:  # the first (or next gzip) member
                    self._decoder = self._new_decoder(chunk)
                # Output in pieces, never past the cap (+1 to notice going over it): memory stays
                # at the cap, however far the chunk would expand.
                room = self._limit + 1 - len(self._data)
                self._append(self._decoder.decompress(chunk, min(room, _PIECE_BYTES)))
                chunk = self._decoder.unconsumed_tail or self._decoder.unused_data
        except zlib.error as exc:
            raise BlinkResponseError(
                f"Blink's answer to {self._call.what} (HTTP {self._status}) is not valid "
                f"{self._encoding} data: {exc}"
            ) from None

    def done(self) -> bytes:
        """The whole (decompressed) body."""
        return bytes(self._data)

    def _new_decoder(self, first: bytes) -> Any:
        if self._encoding != "deflate":
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        # "deflate" should be zlib-wrapped; some servers send raw deflate (the header tells them apart).
        wrapped = len(first) >= 2 and first[0] & 0x0F == 8 and (first[0] << 8 | first[1]) % 31 == 0
        return zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)

    def _append(self, data: bytes) -> None:
        self._data += data
        if len(self._data) > self._limit:
            raise api.answer_too_large(self._call, self._status)


def _not_answered(
    call: api.ApiCall[Any], config: BlinkConnectionConfig, exc: BaseException, *, sent: bool
) -> BlinkTransportError:
    """
    The error for an attempt Blink did not answer; ``sent=False``: nothing reached Blink.

    When nothing was sent (refused, DNS, TLS handshake, connect timeout) the message says what to check.
    """
    message = f"Blink did not answer {call.what}: {type(exc).__name__}: {exc or 'timed out'}"
    if not sent:
        assumed = " (its host has no scheme: https:// was assumed)" if config.scheme_assumed else ""
        message += (
            f". Nothing was sent. Check connection {config.conn_id!r}: its Blink URL {config.url}{assumed}, "
            "the proxy and TLS settings, and that Blink is reachable from this machine."
        )
    return BlinkTransportError(message, request_sent=sent)


def send(session: requests.Session, config: BlinkConnectionConfig, call: api.ApiCall[Any]) -> Any:
    """
    One attempt of ``call`` with requests: connect, headers and body within one deadline; redirects refused.

    :returns: the call's result; raises the provider exception that describes the failure.
    """
    timeout = call.timeout or config.timeout
    try:
        # requests' own timeouts bound each socket read: a server trickling its answer would hold the
        # call for ever without the deadline, which bounds connect, headers and body together.
        with (
            attempt_deadline(timeout),
            session.request(
                call.method,
                f"{config.api_url}{call.path}",
                params=call.params,
                json=call.body,
                timeout=(min(timeout, config.timeout), timeout),
                stream=True,
                allow_redirects=False,  # the key goes to the configured Blink only
            ) as response,
        ):
            body = AnswerBody(call, response.status_code, response.headers.get("Content-Encoding"))
            for chunk in response.raw.stream(CHUNK_BYTES, decode_content=False):
                body.feed(chunk)
    except (requests.ConnectionError, requests.Timeout, urllib3.exceptions.ReadTimeoutError) as exc:
        raise _not_answered(call, config, exc, sent=not _nothing_sent(exc)) from None
    except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:  # e.g. broke off mid-body
        raise BlinkTransportError(
            f"Blink's answer to {call.what} broke off: {type(exc).__name__}: {exc}"
        ) from None
    text = api.decode(body.done(), response.encoding)
    return api.parse_answer(call, response.status_code, text, response.headers)


def _nothing_sent(exc: Exception) -> bool:
    """Whether requests failed before anything was sent: connecting (refused, DNS, timeout) or the TLS handshake."""
    if isinstance(exc, requests.ConnectTimeout | requests.exceptions.SSLError):
        return True
    reason: Any = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)
    return isinstance(reason, urllib3.exceptions.NewConnectionError | urllib3.exceptions.NameResolutionError)


@dataclass(frozen=True)
class AioSettings:
    """What each aiohttp request of one client carries, worked out once per client (not per request)."""

    ssl: Any
    proxy: str | None
    timeout: aiohttp.ClientTimeout


def aio_settings(config: BlinkConnectionConfig) -> AioSettings:
    """The :class:`AioSettings` of a connection: TLS, the proxy, and a total bound on each attempt."""
    import aiohttp

    return AioSettings(
        ssl=config.verify if isinstance(config.verify, bool) else _ssl_context(config.verify),
        proxy=select_proxy(config.api_url, proxies_for(config)),
        # total: connect, headers and body together (a server trickling its answer cannot hold a call).
        timeout=aiohttp.ClientTimeout(total=config.timeout, sock_connect=config.timeout),
    )


@functools.lru_cache(maxsize=8)
def _ssl_context(cafile: str) -> Any:
    import ssl

    return ssl.create_default_context(cafile=cafile)


async def asend(
    session: aiohttp.ClientSession,
    config: BlinkConnectionConfig,
    settings: AioSettings,
    call: api.ApiCall[Any],
) -> Any:
    """Async :func:`send`, with aiohttp."""
    import aiohttp

    timeout = settings.timeout
    if call.timeout:
        timeout = aiohttp.ClientTimeout(total=call.timeout, sock_connect=config.timeout)
    try:
        async with session.request(
            call.method,
            f"{config.api_url}{call.path}",
            params=call.params,
            json=call.body,
            ssl=settings.ssl,
            proxy=settings.proxy,
            timeout=timeout,
            allow_redirects=False,  # the key goes to the configured Blink only
        ) as response:
            status, headers = response.status, response.headers
            body = AnswerBody(call, status, headers.get("Content-Encoding"))
            if body.plain and response.content_length is not None:
                if response.content_length > call.answer_limit:  # refused unread
                    raise api.answer_too_large(call, status)
                body.feed(await response.read())
            else:
                async for chunk in response.content.iter_chunked(CHUNK_BYTES):
                    body.feed(chunk)
            text = api.decode(body.done(), response.charset)
    except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:  # incl. TLS handshake
        raise _not_answered(call, config, exc, sent=False) from None
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise _not_answered(call, config, exc, sent=True) from None
    return api.parse_answer(call, status, text, headers)


# -- 5. Sessions -----------------------------------------------------------------------------------

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


class _DeadlineAdapter(HTTPAdapter):
    """requests' adapter whose connections honour :func:`attempt_deadline` (direct or via a proxy)."""

    def get_connection_with_tls_context(self, *args: Any, **kwargs: Any) -> Any:
        pool: Any = super().get_connection_with_tls_context(*args, **kwargs)
        pool.ConnectionCls = _WITH_DEADLINE.get(pool.ConnectionCls, pool.ConnectionCls)
        return pool


def proxies_for(config: BlinkConnectionConfig) -> dict[str, str]:
    """
    The proxies to reach Blink through, worked out once per client (not per request).

    The connection's ``proxies`` if it sets them, else the environment's (``HTTPS_PROXY``,
    ``HTTP_PROXY``, ``ALL_PROXY``, honouring ``NO_PROXY``), as requests reads them.
    """
    if config.proxies is not None:
        return config.proxies
    return dict(get_environ_proxies(config.url))


def new_sync_session(config: BlinkConnectionConfig) -> requests.Session:
    """
    A keep-alive ``requests.Session`` for one hook, its settings worked out once.

    No environment look-up per call (``trust_env`` off; the proxies come from :func:`.proxies_for`),
    and every attempt bounded as a whole (:func:`attempt_deadline`).
    """
    session = requests.Session()
    session.trust_env = False
    session.headers.update(config.headers)
    session.verify = config.verify
    session.proxies = proxies_for(config)
    adapter = _DeadlineAdapter()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


#: Most TCP connections one aiohttp session opens to Blink, however many triggers share it.
CONNECTION_LIMIT = 100


def new_session(config: BlinkConnectionConfig) -> aiohttp.ClientSession:
    """An aiohttp session carrying the connection's key and timeouts, keeping at most CONNECTION_LIMIT connections."""
    import aiohttp

    return aiohttp.ClientSession(
        headers=config.headers,
        timeout=aiohttp.ClientTimeout(total=config.timeout, sock_connect=config.timeout),
        connector=aiohttp.TCPConnector(limit=CONNECTION_LIMIT),
        # Answers are decompressed by AnswerBody, within the answer cap (aiohttp's would not be).
        auto_decompress=False,
        # No trust_env: the proxy (the connection's, else the environment's) is worked out once per
        # client and passed per request; trust_env would read ~/.netrc in a thread on every request.
        trust_env=False,
    )


@dataclass
class _Shared:
    session: aiohttp.ClientSession
    users: int = 0


_SHARED: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Hashable, _Shared]] = (
    weakref.WeakKeyDictionary()
)


class SharedSession:
    """
    Use the event loop's session for this connection, opening it for the first user.

    Users of the same connection settings in one loop share one session (and its connection
    pool); the last one to leave, normally or by cancellation, closes it. Changed settings (a
    rotated key) get a new session while the old one drains. A class rather than a generator:
    thousands of triggers each hold one for as long as they wait.
    """

    __slots__ = ("_config", "_entry", "_per_loop")

    def __init__(self, config: BlinkConnectionConfig) -> None:
        self._config = config

    async def __aenter__(self) -> aiohttp.ClientSession:
        per_loop = self._per_loop = _SHARED.setdefault(asyncio.get_running_loop(), {})
        key = self._config.pool_key
        entry = per_loop.get(key)
        if entry is None or entry.session.closed:
            entry = per_loop[key] = _Shared(new_session(self._config))
        entry.users += 1
        self._entry = entry
        return entry.session

    async def __aexit__(self, *exc_info: object) -> None:
        entry, per_loop, key = self._entry, self._per_loop, self._config.pool_key
        entry.users -= 1
        if entry.users == 0:
            if per_loop.get(key) is entry:
                del per_loop[key]
            await entry.session.close()


def shared_session_count() -> int:
    """Open shared sessions in the running event loop (for tests and diagnostics)."""
    return len(_SHARED.get(asyncio.get_running_loop(), {}))
