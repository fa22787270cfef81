"""Run a trigger as the triggerer would, in the test's own event loop.

For a synchronous test, the package's own in-process wait does the same:
:func:`airflow_provider_blink.triggers.blink.wait_for_event`.
"""

from __future__ import annotations

import contextlib
from typing import Any

from airflow.triggers.base import BaseTrigger


async def next_event(trigger: BaseTrigger) -> dict[str, Any]:
    """The trigger's first event payload; the trigger is closed after it, as the triggerer closes it."""
    async with contextlib.aclosing(trigger.run()) as events:  # type: ignore[type-var]
        async for event in events:
            return dict(event.payload)
    raise AssertionError("the trigger yielded no event")


async def all_events(trigger: BaseTrigger, count: int | None = None) -> list[dict[str, Any]]:
    """
    Every event payload the trigger yields until it ends, then close it.

    :param count: stop after this many events instead (for a trigger that runs forever, as watchers do).
    """
    payloads: list[dict[str, Any]] = []
    async with contextlib.aclosing(trigger.run()) as events:  # type: ignore[type-var]
        async for event in events:
            payloads.append(dict(event.payload))
            if len(payloads) == count:
                break
    return payloads


class AssetStateStore:
    """What the triggerer injects for a watched asset (Airflow 3.3+): an async key/value store."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    async def aget(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    async def aset(self, key: str, value: Any) -> None:
        self.values[key] = value
