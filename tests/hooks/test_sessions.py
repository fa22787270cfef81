"""Triggers in one event loop share one pooled session per connection, and leave nothing behind."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_blink.hooks.blink import BlinkHook
from airflow_provider_blink.hooks.transport import CONNECTION_LIMIT, shared_session_count
from airflow_provider_blink.triggers.blink import BlinkExecutionTrigger

from support.connections import connection_json
from support.network import TcpRelay
from support.triggers import next_event
from support.waiting import wait_until


@pytest.fixture
def proxy(emulator, monkeypatch) -> Iterator[TcpRelay]:
    """``blink_default`` and ``blink_other`` both reach the emulator through a counting forwarder."""
    counting = TcpRelay(emulator.port)
    conn = connection_json(f"http://127.0.0.1:{counting.port}")
    monkeypatch.setenv("AIRFLOW_CONN_BLINK_DEFAULT", conn)
    monkeypatch.setenv("AIRFLOW_CONN_BLINK_OTHER", conn)
    yield counting
    counting.close()


def start_executions(emulator, playbook_id: str, count: int) -> list[str]:
    hook = BlinkHook()
    return [hook.execute_playbook(playbook_id) for _ in range(count)]


async def test_triggers_on_one_connection_share_one_bounded_pool(emulator, proxy):
    loop_problems: list[dict[str, Any]] = []  # aiohttp reports unclosed sessions to the loop's handler
    asyncio.get_running_loop().set_exception_handler(lambda _loop, context: loop_problems.append(context))
    execution_ids = start_executions(emulator, "quick-ok", 300)
    triggers = [BlinkExecutionTrigger(execution_id=e, poll_interval=0.05) for e in execution_ids]
    sessions_seen: set[int] = set()

    async def watch_pool() -> None:
        while True:
            sessions_seen.add(shared_session_count())
            await asyncio.sleep(0.01)

    watcher = asyncio.create_task(watch_pool())
    events = await asyncio.gather(*(next_event(t) for t in triggers))
    watcher.cancel()

    assert [e["status"] for e in events] == ["success"] * 300
    assert sessions_seen <= {0, 1}, "one shared session for every trigger of the connection"
    assert 1 in sessions_seen
    assert shared_session_count() == 0, "released when the last trigger ended"
    assert proxy.peak <= CONNECTION_LIMIT
    assert proxy.connections < len(emulator.requests) / 5, "connections are reused across polls"
    await wait_until(lambda: proxy.open == 0)
    gc.collect()
    assert not [p for p in loop_problems if "Unclosed" in str(p.get("message"))]


async def test_cancelled_triggers_release_the_pool(emulator, proxy):
    execution_ids = start_executions(emulator, "slow", 20)
    tasks = [
        asyncio.create_task(next_event(BlinkExecutionTrigger(execution_id=e, poll_interval=0.05)))
        for e in execution_ids
    ]
    await wait_until(lambda: len(emulator.requests) >= 20 + 40)  # every trigger polled at least twice
    assert shared_session_count() == 1

    for task in tasks:  # what the triggerer does on shutdown or when a task is cleared
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)

    assert shared_session_count() == 0
    await wait_until(lambda: proxy.open == 0)
    assert all(emulator.execution(e)["state_ui"] == "In Progress" for e in execution_ids), "nothing cancelled"


async def test_each_connection_id_has_its_own_pool(emulator, proxy):
    [first, second] = start_executions(emulator, "slow", 2)
    tasks = [
        asyncio.create_task(next_event(BlinkExecutionTrigger(execution_id=first, poll_interval=0.05))),
        asyncio.create_task(
            next_event(
                BlinkExecutionTrigger(execution_id=second, blink_conn_id="blink_other", poll_interval=0.05)
            )
        ),
    ]
    await wait_until(lambda: len(emulator.requests) >= 2 + 2)

    assert shared_session_count() == 2

    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert shared_session_count() == 0


async def test_a_rotated_key_gets_a_new_pool(emulator, proxy, monkeypatch):
    [execution_id] = start_executions(emulator, "slow", 1)
    hook = BlinkHook()
    async with hook.async_client(shared=True) as before:
        rotated = connection_json(f"http://127.0.0.1:{proxy.port}", key="rotated-key-0123456789")
        monkeypatch.setenv("AIRFLOW_CONN_BLINK_DEFAULT", rotated)
        async with BlinkHook().async_client(shared=True) as after:
            assert after._session is not before._session
            assert shared_session_count() == 2
        await before.get_execution(execution_id)  # the old pool still serves its users
    assert before._session.closed
    assert after._session.closed


async def test_a_private_client_does_not_touch_the_pool(emulator, proxy):
    async with BlinkHook().async_client() as client:
        await client.list_executions(limit=1)
        assert shared_session_count() == 0
    assert client._session.closed
