"""A ``Retry-After`` longer than one call waits for, met while a task waits for its execution.

One call never waits longer than ``retries.MAX_RETRY_AFTER`` (120 s): it gives up at once. The
wait then honours it between its reads, as long as the next read still falls within the error
budget and before the deadline; otherwise it ends as a transient failure (the task's retries
apply), never as a permanent one. The 120 s are scaled down here to 0.2 s, so a Retry-After of a
second or two is "long".
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from airflow_provider_blink.testing import Fault
from airflow_provider_blink.triggers.blink import BlinkExecutionTrigger

from support.emulator import requests_to
from support.emulator import start_directly as start
from support.triggers import next_event

RETRY_AFTER = 1.5


@pytest.fixture(autouse=True)
def long_retry_after_is_short(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("airflow_provider_blink.hooks.transport.MAX_RETRY_AFTER", 0.2)


def trigger_for(execution_id: str, **settings: Any) -> BlinkExecutionTrigger:
    return BlinkExecutionTrigger(execution_id=execution_id, **{"poll_interval": 0.05, **settings})


async def test_a_long_retry_after_is_waited_for_then_the_wait_goes_on(emulator):
    execution_id = start(emulator, "quick-ok")  # completes 0.3 s after it starts
    emulator.inject(Fault("get", "status", status=429, retry_after=RETRY_AFTER))
    started = time.monotonic()

    event = await asyncio.wait_for(next_event(trigger_for(execution_id, error_budget=30)), timeout=30)

    assert event["status"] == "success"
    assert [r.status for r in requests_to(emulator, "GET", execution_id)] == [429, 200], (
        "no read before Blink's Retry-After, although the poll interval is 0.05 s"
    )
    assert time.monotonic() - started >= RETRY_AFTER


@pytest.mark.parametrize(
    ("settings", "past"),
    [
        ({"error_budget": 0.5}, "error budget"),
        ({"error_budget": 30, "end_time_in": 0.7}, "deadline"),
    ],
    ids=["past-the-error-budget", "past-the-deadline"],
)
async def test_a_retry_after_beyond_the_wait_ends_it_as_a_transient_failure(emulator, settings, past):
    execution_id = start(emulator, "slow")
    emulator.inject(Fault("get", "status", status=429, retry_after=RETRY_AFTER))
    end_time_in = settings.pop("end_time_in", None)
    end_time = None if end_time_in is None else time.time() + end_time_in

    event = await asyncio.wait_for(next_event(trigger_for(execution_id, end_time=end_time, **settings)), 30)

    assert event["status"] == "error"
    assert event["permanent"] is False, "the task's retries apply: Blink only asked for time"
    assert f"Blink asked to wait {RETRY_AFTER:g}s (Retry-After)" in event["message"]
    assert f"past the wait's {past}" in event["message"]
    assert "HTTP 429" in event["message"]
    assert [r.status for r in requests_to(emulator, "GET", execution_id)] == [429]
