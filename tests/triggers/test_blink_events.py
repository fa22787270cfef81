"""BlinkExecutionEventTrigger: one event per finished execution, with a watermark that survives restarts."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from airflow_provider_blink.hooks.blink import BlinkHook
from airflow_provider_blink.testing import Fault
from airflow_provider_blink.triggers.blink_events import (
    WATERMARK_KEY,
    BlinkExecutionEventTrigger,
    Watermark,
)

from support.triggers import AssetStateStore, all_events


def watcher(store: AssetStateStore | None = None, **kwargs: Any) -> BlinkExecutionEventTrigger:
    trigger = BlinkExecutionEventTrigger(poll_interval=0.05, **kwargs)
    trigger.asset_state_store = store  # type: ignore[assignment]  # a stand-in for Airflow's accessors
    return trigger


async def collect(trigger: BlinkExecutionEventTrigger, count: int, timeout: float = 10.0) -> list[dict]:
    """The trigger's first ``count`` events (it runs forever, as watchers do), then stop it."""
    return await asyncio.wait_for(all_events(trigger, count), timeout)


def start(playbook_id: str) -> str:
    return BlinkHook().execute_playbook(playbook_id)


async def test_one_event_per_execution_that_finishes_after_the_watcher_starts(emulator):
    before = start("slow")
    emulator.finish(before)  # finished before the watcher started: not an event
    await asyncio.sleep(0.01)
    trigger = watcher()
    consumer = asyncio.create_task(collect(trigger, 3))
    await asyncio.sleep(0.2)
    ids = [start("slow") for _ in range(3)]
    for execution_id in ids:
        emulator.finish(execution_id)
        await asyncio.sleep(0.005)

    events = await consumer

    assert [e["execution_id"] for e in events] == ids
    assert all(e["playbook_id"] == "slow" and e["state_ui"] == "Completed" for e in events)
    assert all(e["finished_at"] >= e["started_at"] > 0 for e in events)


async def test_only_the_chosen_playbook_and_states(emulator):
    trigger = watcher(playbook_id="slow", states=["Failed"])
    consumer = asyncio.create_task(collect(trigger, 1))
    await asyncio.sleep(0.2)
    other_playbook = start("quick-fail")  # fails after 0.3 s, before the one we want
    await asyncio.sleep(0.5)
    assert emulator.execution(other_playbook)["state_ui"] == "Failed"
    completed, failed = start("slow"), start("slow")
    emulator.finish(completed)
    emulator.finish(failed, "Failed")

    [event] = await consumer

    assert event["execution_id"] == failed


async def test_a_restart_neither_repeats_nor_loses_events(emulator):
    store = AssetStateStore()
    first_id = start("slow")
    consumer = asyncio.create_task(collect(watcher(store), 1))
    await asyncio.sleep(0.2)
    emulator.finish(first_id)
    assert [e["execution_id"] for e in await consumer] == [first_id]

    # The triggerer is down while two more executions finish ...
    missed = [start("slow"), start("slow")]
    for execution_id in missed:
        emulator.finish(execution_id)
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.05)

    # ... and a new trigger instance, with the stored watermark, picks up exactly those.
    events = await collect(watcher(store), 2)

    assert [e["execution_id"] for e in events] == missed
    assert store.values[WATERMARK_KEY]["ids"] == [missed[-1]]


async def test_transient_list_errors_do_not_end_the_watch(emulator):
    trigger = watcher()
    consumer = asyncio.create_task(collect(trigger, 1))
    await asyncio.sleep(0.2)
    emulator.inject(Fault("list", "status", status=503, times=6))
    execution_id = start("slow")
    emulator.finish(execution_id)

    [event] = await consumer

    assert event["execution_id"] == execution_id
    assert sum(1 for r in emulator.requests if r.status == 503) == 6


async def test_a_permanent_error_ends_the_watch_loudly(emulator):
    trigger = watcher(workspace_id="no-such-workspace")

    with pytest.raises(Exception, match="404"):
        await collect(trigger, 1, timeout=5)


def test_watchers_of_the_same_query_share_one_stream():
    same = [BlinkExecutionEventTrigger(playbook_id="pb", states=s) for s in (["Completed"], ["Failed"])]
    other = BlinkExecutionEventTrigger(playbook_id="other")

    assert same[0].shared_stream_key() == same[1].shared_stream_key()
    assert other.shared_stream_key() != same[0].shared_stream_key()


def test_serialises_to_plain_settings():
    classpath, kwargs = BlinkExecutionEventTrigger(playbook_id="pb", states=["Completed"]).serialize()

    assert classpath == "airflow_provider_blink.triggers.blink_events.BlinkExecutionEventTrigger"
    assert BlinkExecutionEventTrigger(**kwargs).serialize() == (classpath, kwargs)


def test_the_watermark_stays_small():
    watermark = Watermark(0)
    now = int(time.time() * 1000)
    for i in range(1000):
        execution = {"id": f"e{i}", "finished_at": now + i // 10}
        assert watermark.admits(execution)
        watermark.advance(execution)

    assert len(watermark.ids) == 10, "only the executions at the latest instant are remembered"
    assert not watermark.admits({"id": "e999", "finished_at": now + 99})
    assert watermark.admits({"id": "new", "finished_at": now + 99})


async def test_executions_finishing_at_the_same_instant_are_each_fired_once_across_pages(emulator):
    """More ties than one page holds: Blink promises no order among ties, so paging needs a tiebreak."""
    ids = emulator.seed_executions("slow", 1005, finished_at=int(time.time() * 1000) - 1000)

    events = await collect(watcher(lookback=60), 1005, timeout=60)

    assert sorted(e["execution_id"] for e in events) == sorted(ids)


async def test_a_null_results_page_is_an_empty_page(emulator):
    emulator.null_results = True  # what a Go server sends for an empty list
    consumer = asyncio.create_task(collect(watcher(), 1))
    await asyncio.sleep(0.3)  # several polls over an empty workspace
    execution_id = start("slow")
    emulator.finish(execution_id)

    [event] = await consumer

    assert event["execution_id"] == execution_id
