"""aiohttp sessions for Blink: private ones, and shared ones that triggers in one event loop pool."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp

if TYPE_CHECKING:
    from airflow_provider_blink.hooks.connection import BlinkConnectionConfig

#: Most TCP connections one session opens to Blink, however many triggers share it.
CONNECTION_LIMIT = 100


def new_session(config: BlinkConnectionConfig) -> aiohttp.ClientSession:
    """A session carrying the connection's key and timeouts, keeping at most CONNECTION_LIMIT connections."""
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
