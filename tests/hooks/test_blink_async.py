"""BlinkHook, asynchronous: ``async with hook.async_client()`` makes the same calls, awaited.

Failures, retries and the error classes are in ``tests/test_retries.py`` (one table for both clients).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import aiohttp
import pytest

from airflow_provider_blink.exceptions import BlinkBadRequestError, BlinkNotFoundError, BlinkServerError
from airflow_provider_blink.hooks.blink import USER_AGENT, BlinkAsyncClient, BlinkHook
from airflow_provider_blink.hooks.transport import asks_to_slow_down
from airflow_provider_blink.testing import Fault

from support.connections import connection_json
from support.emulator import EXECUTE_BODY, WORKSPACE
from support.network import TcpRelay


async def test_execute_playbook_sends_every_body_field(emulator):
    async with BlinkHook().async_client() as client:
        execution_id = await client.execute_playbook("quick-ok", **EXECUTE_BODY)

    [request] = emulator.requests
    assert request.path == f"/api/v1/workspace/{WORKSPACE}/playbooks/quick-ok/execute"
    assert request.body == EXECUTE_BODY
    record = emulator.execution(execution_id)
    assert (record["inputs"], record["event"], record["runner_group_id"]) == (
        EXECUTE_BODY["input_values"],
        EXECUTE_BODY["event"],
        "runner-group-eu",
    )
    assert (record["trigger_type"], record["past_exec_ref"]) == ("airflow", "exec-0")


async def test_fields_left_none_are_not_sent(emulator):
    async with BlinkHook().async_client() as client:
        await client.execute_playbook("quick-ok", event={"a": 1}, input_values=None, callback=None)

    assert emulator.requests[0].body == {"event": {"a": 1}}


async def test_run_playbook_sync(emulator):
    async with BlinkHook().async_client() as client:
        output = await client.run_playbook_sync("quick-ok", timeout=10)
        with pytest.raises(BlinkBadRequestError) as info:
            await client.run_playbook_sync("quick-fail")

    assert output == {"answer": 42}
    assert [r.query for r in emulator.requests] == [
        {"run_sync": "true", "timeout": "10"},
        {"run_sync": "true"},
    ]
    assert info.value.details == "step 'lookup' failed: upstream returned 500"


async def test_get_and_list_executions(emulator):
    emulator.seed_executions("quick-fail", 2, state="Failed")
    [ok_id] = emulator.seed_executions("quick-ok", 1)

    async with BlinkHook().async_client() as client:
        execution = await client.get_execution(ok_id)
        page = await client.list_executions(
            filter={"state_ui": {"$neq": "Failed"}}, sort=["-started_at"], limit=5, offset=0, select=["id"]
        )

    assert execution["id"] == ok_id
    assert execution["state_ui"] == "Completed"
    assert json.loads(emulator.requests[1].query["q"]) == {
        "filter": {"state_ui": {"$neq": "Failed"}},
        "sort": ["-started_at"],
        "limit": 5,
        "offset": 0,
        "select": ["id"],
    }
    assert page["results"] == [{"id": ok_id}]
    assert page["total"] == 1


async def test_retry_when_narrows_which_failures_a_call_retries(emulator):
    emulator.inject(Fault("list", "status", status=429, retry_after=0.01, times=1))
    emulator.inject(Fault("list", "status", status=500, times=None))
    async with BlinkHook().async_client() as client:
        with pytest.raises(BlinkServerError):
            await client.list_executions(retry_when=asks_to_slow_down)
        with pytest.raises(BlinkServerError):
            await client.list_executions()

    statuses = [r.status for r in emulator.requests]
    assert statuses == [429, 500, 500, 500, 500], "429 retried, 500 not; then the policy's 3 attempts"


async def test_iter_executions_walks_every_page_once(emulator):
    seeded = emulator.seed_executions("quick-ok", 2500)

    async with BlinkHook().async_client() as client:
        ids = [execution["id"] async for execution in client.iter_executions(page_size=1000)]

    assert ids == seeded
    assert [json.loads(r.query["q"])["offset"] for r in emulator.requests] == [0, 1000, 2000]


async def test_cancel_execution(emulator):
    [finished_id] = emulator.seed_executions("quick-ok", 1)

    async with BlinkHook().async_client() as client:
        running_id = await client.execute_playbook("slow")
        cancelled = await client.cancel_execution(running_id)
        already_finished = await client.cancel_execution(finished_id)
        with pytest.raises(BlinkNotFoundError):
            await client.cancel_execution("no-such-execution")

    assert cancelled is True
    assert already_finished is False
    assert emulator.execution(running_id)["state_ui"] == "Cancelled"
    assert emulator.execution(finished_id)["state_ui"] == "Completed"


async def test_every_request_carries_the_key_and_names_the_provider(emulator):
    async with BlinkHook().async_client() as client:
        execution_id = await client.execute_playbook("quick-ok")
        await client.get_execution(execution_id)
        await client.list_executions(limit=1)

    assert len(emulator.requests) == 3
    for request in emulator.requests:
        assert request.headers["BLINK-API-KEY"] == "***"  # sent (the emulator redacts it in its log)
        assert request.headers["User-Agent"] == USER_AGENT
        assert request.status == 200


async def test_client_reads_the_same_connection_as_the_hook(emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_BLINK_DEFAULT", connection_json(emulator, timeout=7, retry_limit=4))
    hook = BlinkHook()

    async with hook.async_client() as client:
        assert isinstance(client, BlinkAsyncClient)
        assert client.config == hook.config
        assert client.config.timeout == 7
        assert client.config.retry.max_retries == 4


# -- one session, one connection ------------------------------------------------------------------


@pytest.fixture
def proxy(emulator, monkeypatch) -> Iterator[TcpRelay]:
    """``blink_default`` pointing at a connection-counting proxy in front of the emulator."""
    counting = TcpRelay(emulator.port)
    monkeypatch.setenv("AIRFLOW_CONN_BLINK_DEFAULT", connection_json(f"http://127.0.0.1:{counting.port}"))
    yield counting
    counting.close()


async def test_one_session_and_one_tcp_connection_per_client(emulator, proxy, monkeypatch):
    sessions: list[aiohttp.ClientSession] = []
    real_session = aiohttp.ClientSession

    def recording_session(*args, **kwargs) -> aiohttp.ClientSession:
        sessions.append(session := real_session(*args, **kwargs))
        return session

    monkeypatch.setattr(aiohttp, "ClientSession", recording_session)

    async with BlinkHook().async_client() as client:
        execution_id = await client.execute_playbook("quick-ok")
        for _ in range(8):
            await client.get_execution(execution_id)
        await client.list_executions(limit=5)

    assert len(emulator.requests) == 10
    assert proxy.connections == 1
    [session] = sessions
    assert session.closed  # released when the context ends


async def test_each_client_context_has_its_own_session(emulator, proxy):
    hook = BlinkHook()

    async with hook.async_client() as first:
        await first.list_executions(limit=1)
    async with hook.async_client() as second:
        await second.list_executions(limit=1)

    assert first._session is not second._session
    assert first._session.closed
    assert proxy.connections == 2
