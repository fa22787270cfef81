"""The Blink connection: the one place each field of an Airflow ``blink`` connection is read."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import unicodedata
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_blink import __version__, api
from airflow_provider_blink.compat import BaseHook, Connection, mask_secret
from airflow_provider_blink.connection_form import CONN_TYPE, DEFAULT_BLINK_URL, DEFAULT_CONN_ID
from airflow_provider_blink.exceptions import BlinkConfigurationError
from airflow_provider_blink.hooks.transport import ACCEPT_ENCODING, RetryPolicy

DEFAULT_TIMEOUT = 30.0
USER_AGENT = f"airflow-provider-blink/{__version__}"


@dataclass(frozen=True)
class BlinkConnectionConfig:
    """
    Everything the clients need from an Airflow connection, read once (see :func:`read_connection`).

    :param conn_id: the Airflow connection id, for messages.
    :param url: the Blink URL, e.g. ``https://app.blinkops.com`` (UI links start here).
    :param api_key: the API key; never shown in ``repr``.
    :param workspace_id: the default workspace, if the connection sets one.
    :param timeout: per-request timeout in seconds.
    :param verify: TLS verification: ``True``, ``False`` or a CA bundle path.
    :param proxies: requests-style proxies, e.g. ``{"https": "http://proxy:3128"}``.
    :param retry: how failed calls are retried.
    :param batch_reads: whether triggers in one event loop read their executions together through
        the list endpoint (extra ``batch_reads``, default true; false: one GET per execution).
    :param scheme_assumed: the host had no scheme (and the connection no http/https schema): ``https://``
        was assumed, which messages about an unreachable Blink say.
    """

    conn_id: str
    url: str
    api_key: str = field(repr=False)
    workspace_id: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    verify: bool | str = True
    proxies: dict[str, str] | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    batch_reads: bool = True
    scheme_assumed: bool = False

    @property
    def api_url(self) -> str:
        return f"{self.url}{api.API_PREFIX}"

    @property
    def headers(self) -> dict[str, str]:
        return {
            "BLINK-API-KEY": self.api_key,
            "Accept": "application/json",
            "Accept-Encoding": ACCEPT_ENCODING,
            "User-Agent": USER_AGENT,
        }

    @property
    def pool_key(self) -> tuple[Any, ...]:
        """Settings that must match for two users to share one HTTP session."""
        proxies = tuple(sorted((self.proxies or {}).items()))
        return (self.conn_id, self.url, self.api_key, self.timeout, self.verify, proxies)

    def workspace(self, override: str | None = None) -> str:
        """The workspace a call goes to: the task's override (even an empty one), else the connection's default."""
        workspace_id = self.workspace_id if override is None else override
        if workspace_id is None:
            raise BlinkConfigurationError(
                f"No Blink workspace: set 'Workspace ID' on connection {self.conn_id!r} "
                "(extra field 'workspace_id') or pass workspace_id= to the task."
            )
        return workspace_id


def _scheme_assumed(host: str | None, schema: str | None) -> bool:
    """Whether a host without a scheme, and no http/https schema, leaves ``https://`` to be assumed."""
    return "://" not in (host or DEFAULT_BLINK_URL) and schema not in ("http", "https")


def _blink_url(conn_id: str, host: str | None, schema: str | None, port: int | None) -> str:
    raw = (host or DEFAULT_BLINK_URL).strip()
    if "://" not in raw:
        raw = f"{schema if schema in ('http', 'https') else 'https'}://{raw}"
    try:
        parts = urlsplit(raw)
        has_port = parts.port is not None
    except ValueError as exc:
        raise BlinkConfigurationError(
            f"Connection {conn_id!r}: Blink URL {raw!r} is not valid ({exc})."
        ) from None
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.query
        or parts.fragment
        or any(char.isspace() for char in parts.netloc)
    ):
        raise BlinkConfigurationError(
            f"Connection {conn_id!r}: Blink URL {raw!r} is not a valid http(s) URL; "
            f"set 'Blink URL' to e.g. {DEFAULT_BLINK_URL} or https://<tenant>.app.blinkops.com."
        )
    path = parts.path.rstrip("/")
    path = path.removesuffix(api.API_PREFIX)
    netloc = parts.netloc if has_port or not port else f"{parts.netloc}:{port}"
    return f"{parts.scheme}://{netloc}{path}"


def _number(conn_id: str, extra: Mapping[str, Any], name: str, default: float, minimum: float) -> float:
    value = extra.get(name, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not number >= minimum:
        raise BlinkConfigurationError(
            f"Connection {conn_id!r}: extra {name!r} must be a number >= {minimum}, got {value!r}."
        )
    return number


_SPELLINGS = {
    "true": True,
    "yes": True,
    "on": True,
    "1": True,
    "false": False,
    "no": False,
    "off": False,
    "0": False,
}


def _flag(value: Any) -> bool | None:
    """A boolean extra as JSON or a string spells it; ``None`` if it is neither."""
    if isinstance(value, bool):
        return value
    return _SPELLINGS.get(value.strip().lower()) if isinstance(value, str) else None


def _verify(conn_id: str, value: Any) -> bool | str:
    """``verify``: true, false, or the path of an existing CA bundle; nothing else (fail closed)."""
    flag = _flag(value)
    if flag is not None:
        return flag
    if isinstance(value, str) and value.strip() and os.path.exists(value.strip()):
        return value.strip()
    raise BlinkConfigurationError(
        f"Connection {conn_id!r}: extra 'verify' must be true, false or the path of an existing CA "
        f"bundle, got {value!r}."
    )


def _boolean(conn_id: str, extra: Mapping[str, Any], name: str, default: bool) -> bool:
    """A true/false extra, or a clear error naming it."""
    value = extra.get(name, default)
    flag = _flag(value)
    if flag is None:
        raise BlinkConfigurationError(
            f"Connection {conn_id!r}: extra {name!r} must be true or false, got {value!r}."
        )
    return flag


def _allow_insecure_http(conn_id: str, url: str, extra: Mapping[str, Any]) -> None:
    """Refuse plain ``http://`` to a host that is not loopback unless the connection allows it."""
    allowed = _boolean(conn_id, extra, "allow_insecure_http", False)
    parts = urlsplit(url)
    if parts.scheme != "http" or allowed or _is_loopback(parts.hostname or ""):
        return
    raise BlinkConfigurationError(
        f"Connection {conn_id!r}: Blink URL {url} is plain http:// to a host that is not loopback: the "
        "API key and the playbooks' inputs would cross the network in cleartext. Use https://, or set "
        "extra 'allow_insecure_http': true if the network path to that host is trusted."
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _api_key(conn_id: str, password: str | None) -> str:
    """The key without surrounding whitespace (a secrets file's newline); control characters inside are refused."""
    key = (password or "").strip()
    if not key:
        raise BlinkConfigurationError(
            f"Connection {conn_id!r} has no Blink API key: put it in the 'API Key' (password) field."
        )
    mask_secret(key)
    if password != key:
        mask_secret(password)
    if any(unicodedata.category(char) == "Cc" for char in key):
        raise BlinkConfigurationError(
            f"Connection {conn_id!r}: the API Key (password) has a control character (such as a line "
            "break) inside it; paste the key again."
        )
    return key


def warn_if_unverified(config: BlinkConnectionConfig, log: logging.Logger | Any) -> None:
    """Say once per hook or client (not per call) that the connection turned TLS verification off."""
    if config.verify is False and config.url.startswith("https://"):
        log.warning(
            "TLS certificate verification is off for Blink connection %r (extra 'verify': false): "
            "whoever sits on the network path can read the API key. Set 'verify' to true or to a CA bundle path.",
            config.conn_id,
        )


def read_connection(conn: Connection) -> BlinkConnectionConfig:
    """Read a ``blink`` connection: the one place each field and its default are interpreted."""
    conn_id = conn.conn_id or DEFAULT_CONN_ID
    api_key = _api_key(conn_id, conn.password)
    extra = conn.extra_dejson
    proxies = extra.get("proxies")
    if proxies is not None and not isinstance(proxies, dict):
        raise BlinkConfigurationError(
            f'Connection {conn_id!r}: extra \'proxies\' must be an object like {{"https": "http://proxy:3128"}}.'
        )
    workspace_id = extra.get("workspace_id") or extra.get(f"extra__{CONN_TYPE}__workspace_id")
    url = _blink_url(conn_id, conn.host, conn.schema, conn.port)
    _allow_insecure_http(conn_id, url, extra)
    return BlinkConnectionConfig(
        conn_id=conn_id,
        url=url,
        api_key=api_key,
        workspace_id=str(workspace_id).strip() if workspace_id else None,
        timeout=_number(conn_id, extra, "timeout", DEFAULT_TIMEOUT, 0.001),
        verify=_verify(conn_id, extra.get("verify", True)),
        proxies=proxies,
        retry=RetryPolicy(
            max_retries=int(_number(conn_id, extra, "retry_limit", RetryPolicy.max_retries, 0)),
            initial_delay=_number(conn_id, extra, "retry_delay", RetryPolicy.initial_delay, 0),
        ),
        batch_reads=_boolean(conn_id, extra, "batch_reads", True),
        scheme_assumed=_scheme_assumed(conn.host, conn.schema),
    )


async def aread_connection(conn_id: str) -> BlinkConnectionConfig:
    """
    Read a ``blink`` connection without blocking the event loop.

    Concurrent readers of one connection in one loop (a triggerer starting many triggers) share
    the read in flight instead of queueing one look-up each; nothing is kept once it returns.
    """
    in_flight = _READS_IN_FLIGHT.setdefault(asyncio.get_running_loop(), {})
    read = in_flight.get(conn_id)
    if read is None:
        read = asyncio.ensure_future(_read_and_mask(conn_id))
        in_flight[conn_id] = read
        read.add_done_callback(lambda _: in_flight.pop(conn_id, None))
    config: BlinkConnectionConfig = await asyncio.shield(read)
    return config


async def _read_and_mask(conn_id: str) -> BlinkConnectionConfig:
    """
    Read the connection, then :func:`read_connection` in a worker thread: it masks the key.

    In Airflow 3.0's triggerer ``mask_secret`` is a synchronous call to the supervisor that raises on
    the event loop; from the thread ``sync_to_async`` runs it in, it reaches the supervisor.
    """
    from asgiref.sync import sync_to_async

    connection = await get_async_connection(conn_id)
    return await sync_to_async(read_connection)(connection)


_READS_IN_FLIGHT: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Future[Any]]] = (
    weakref.WeakKeyDictionary()
)


async def get_async_connection(conn_id: str) -> Connection:
    """
    Read an Airflow connection from a trigger without blocking its event loop.

    Airflow 3.3.2 masks a connection's secrets asynchronously (``Connection.aextra_dejson`` came with
    it); before, ``BaseHook.aget_connection`` masks them with a synchronous call to the supervisor that
    fails while another call is in flight on the loop, and 2.11 has no ``aget_connection``: there the
    synchronous read runs in a worker thread.
    """
    if hasattr(Connection, "aextra_dejson"):
        return await BaseHook.aget_connection(conn_id=conn_id)
    from asgiref.sync import sync_to_async

    return await sync_to_async(BaseHook.get_connection)(conn_id=conn_id)
