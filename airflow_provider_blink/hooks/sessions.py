"""aiohttp sessions for Blink: private ones, and shared ones that triggers in one event loop pool."""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator, Hashable
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


@contextlib.asynccontextmanager
async def shared_session(config: BlinkConnectionConfig) -> AsyncIterator[aiohttp.ClientSession]:
    """
    Use the event loop's session for this connection, opening it for the first user.

    Users of the same connection settings in one loop share one session (and its connection
    pool); the last one to leave, normally or by cancellation, closes it. Changed settings (a
    rotated key) get a new session while the old one drains.
    """
    per_loop = _SHARED.setdefault(asyncio.get_running_loop(), {})
    key = config.pool_key
    entry = per_loop.get(key)
    if entry is None or entry.session.closed:
        entry = per_loop[key] = _Shared(new_session(config))
    entry.users += 1
    try:
        yield entry.session
    finally:
        entry.users -= 1
        if entry.users == 0:
            if per_loop.get(key) is entry:
                del per_loop[key]
            await entry.session.close()


def shared_session_count() -> int:
    """Open shared sessions in the running event loop (for tests and diagnostics)."""
    return len(_SHARED.get(asyncio.get_running_loop(), {}))
