"""Waiting with a deadline: every wait in the suite polls; nothing sleeps a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    what: str,
    probe: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.2,
    diagnose: Callable[[], str] | None = None,
) -> T:
    """Call ``probe`` until it returns something truthy; raise ``TimeoutError`` at the deadline.

    :param what: the awaited condition, for the error message.
    :param diagnose: called on timeout; its text is appended to the message (log tails, states).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            detail = f"\n{diagnose()}" if diagnose else ""
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}{detail}")
        time.sleep(interval)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
