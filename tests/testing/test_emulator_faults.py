"""Injected faults: what the client sees, and whether the request was still processed."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import aiohttp
import pytest
import requests

from airflow_provider_blink.testing import Fault


def outcome(call):
    """Run ``call`` and describe what the client saw: a status code or the exception class."""
    try:
        return call()
    except requests.RequestException as exc:
        return exc


@pytest.mark.parametrize(
    ("fault", "status", "content_type", "executions"),
    [
        (Fault("execute", "status", status=503), 503, "application/json", 0),
        (Fault("execute", "status", status=500), 500, "application/json", 0),
        (Fault("execute", "status", status=429, retry_after=2), 429, "application/json", 0),
        (Fault("execute", "status_after", status=502), 502, "application/json", 1),
        (Fault("execute", "html"), 502, "text/html", 0),
        (Fault("execute", "html", status=504), 504, "text/html", 0),
        (Fault("execute", "malformed_json"), 200, "application/json", 1),
        (Fault("execute", "empty"), 200, None, 1),
        (Fault("execute", "slow", delay=0.3), 200, "application/json", 1),
        (Fault("execute", "slow_after", delay=0.3), 200, "application/json", 1),
        (Fault("*", "status", status=503), 503, "application/json", 0),
    ],
    ids=[
        "status-503",
        "status-500",
        "status-429-retry-after",
        "status-after-502",
        "html-default-502",
        "html-504",
        "malformed-json",
        "empty",
        "slow",
        "slow-after",
        "wildcard",
    ],
)
def test_execute_fault_responses(emu, api, fault, status, content_type, executions):
    emu.inject(fault)
    started = time.monotonic()

    response = api.execute("pb-fast")

    assert response.status_code == status
    if content_type:
        assert response.headers["Content-Type"].startswith(content_type)
    assert len(emu.executions) == executions
    assert emu.requests[-1].status == status
    if fault.kind in ("status", "status_after"):
        assert response.json()["status"] == status
        assert ("Retry-After" in response.headers) == (fault.retry_after is not None)
    if fault.retry_after is not None:
        assert response.headers["Retry-After"] == "2"
    if fault.kind == "malformed_json":
        with pytest.raises(ValueError):  # noqa: PT011 -- any JSON decoding error
            response.json()
    if fault.kind == "empty":
        assert response.content == b""
    if fault.kind == "html":
        assert response.text.startswith("<html>")
    if fault.kind in ("slow", "slow_after"):
        assert time.monotonic() - started >= 0.3


@pytest.mark.parametrize(
    ("kind", "executions"),
    [("close_before", 0), ("close_after", 1)],
    ids=["close-before-not-processed", "close-after-processed"],
)
def test_closed_connection_is_a_connection_error(emu, api, kind, executions):
    emu.inject(Fault("execute", kind))

    seen = outcome(lambda: api.execute("pb-fast", {"input_values": {"a": 1}}))

    assert isinstance(seen, requests.ConnectionError | requests.exceptions.ChunkedEncodingError), seen
    assert len(emu.executions) == executions
    assert emu.requests[-1].status == 0
    assert api.execute("pb-fast").status_code == 200  # the next request is served again


@pytest.mark.parametrize("kind", ["close_before", "close_after"], ids=["before", "after"])
def test_closed_connection_sends_no_bytes(emu, kind):
    emu.inject(Fault("get", kind))
    host, port = "127.0.0.1", emu.port
    request = (
        f"GET /api/v1/workspace/ws-1/executions/x HTTP/1.1\r\nHost: {host}\r\n"
        f"BLINK-API-KEY: {emu.api_key}\r\n\r\n"
    )
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(request.encode())
        try:
            received = sock.recv(65536)
        except ConnectionResetError:
            received = b""
    assert received == b""


async def test_closed_connection_with_aiohttp(emu):
    emu.inject(Fault("execute", "close_after"))
    async with aiohttp.ClientSession(headers={"BLINK-API-KEY": emu.api_key}) as session:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await session.post(f"{emu.url}/api/v1/workspace/ws-1/playbooks/pb-fast/execute")
    assert len(emu.executions) == 1


async def test_slow_fault_does_not_block_other_requests(emu):
    emu.inject(Fault("list", "slow", delay=1.0))
    base = f"{emu.url}/api/v1/workspace/ws-1"
    async with aiohttp.ClientSession(headers={"BLINK-API-KEY": emu.api_key}) as session:
        slow = asyncio.ensure_future(session.get(f"{base}/executions"))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        async with session.get(f"{base}/executions") as fast:
            assert fast.status == 200
        assert time.monotonic() - started < 0.5
        assert (await slow).status == 200


def test_status_after_on_cancel_still_cancels(emu, api):
    execution_id = api.start("pb-slow")
    emu.inject(Fault("cancel", "status_after", status=502))

    response = api.request("POST", f"/executions/{execution_id}/cancel")

    assert response.status_code == 502
    assert emu.execution(execution_id)["state_ui"] == "Cancelled"


def test_times_counts_matching_requests(emu, api):
    emu.inject(Fault("execute", "status", times=2, status=503))
    statuses = [api.execute("pb-fast").status_code for _ in range(3)]
    assert statuses == [503, 503, 200]


def test_times_none_lasts_until_cleared(emu, api):
    emu.inject(Fault("list", "status", times=None, status=500))
    assert [api.list().status_code for _ in range(4)] == [500] * 4

    emu.clear_faults()

    assert api.list().status_code == 200


def test_faults_are_fifo_per_endpoint(emu, api):
    emu.inject(Fault("execute", "status", status=500))
    emu.inject(Fault("list", "status", status=429))
    emu.inject(Fault("execute", "status", status=503))

    assert api.list().status_code == 429
    assert [api.execute("pb-fast").status_code for _ in range(3)] == [500, 503, 200]


def test_fault_for_another_endpoint_does_not_apply(emu, api):
    emu.inject(Fault("steps", "status", status=500))
    assert api.execute("pb-fast").status_code == 200
    assert len(emu.requests) == 1


def test_faults_apply_after_auth(emu, api, api_for):
    emu.inject(Fault("execute", "status", status=503))

    assert api_for("wrong-key").execute("pb-fast").status_code == 401
    assert api.execute("pb-fast").status_code == 503
    assert api.execute("pb-fast").status_code == 200


@pytest.mark.parametrize(
    ("endpoint", "method", "path"),
    [
        ("get", "GET", "/executions/{id}"),
        ("list", "GET", "/executions"),
        ("cancel", "POST", "/executions/{id}/cancel"),
        ("steps", "GET", "/executions/{id}/steps"),
    ],
    ids=["get", "list", "cancel", "steps"],
)
def test_each_endpoint_can_be_faulted(emu, api, endpoint, method, path):
    execution_id = api.start("pb-slow")
    emu.inject(Fault(endpoint, "html", status=503))

    response = api.request(method, path.format(id=execution_id))

    assert (response.status_code, response.headers["Content-Type"].split(";")[0]) == (503, "text/html")


def test_faulted_requests_are_recorded_without_the_key(emu, api):
    emu.inject(Fault("execute", "close_before"))
    emu.inject(Fault("execute", "status", status=503))
    outcome(lambda: api.execute("pb-fast"))
    api.execute("pb-fast")

    assert [r.status for r in emu.requests] == [0, 503]
    assert emu.api_key not in json.dumps([r.headers for r in emu.requests])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"endpoint": "outputs", "kind": "status", "status": 500},
        {"endpoint": "get", "kind": "explode"},
        {"endpoint": "get", "kind": "status"},
        {"endpoint": "get", "kind": "status_after"},
        {"endpoint": "get", "kind": "status", "status": 42},
        {"endpoint": "get", "kind": "empty", "times": 0},
        {"endpoint": "get", "kind": "slow", "delay": -1},
    ],
    ids=["endpoint", "kind", "status-missing", "status-after-missing", "status-invalid", "times-0", "delay"],
)
def test_invalid_faults_are_rejected(kwargs):
    with pytest.raises(ValueError):  # noqa: PT011 -- the message names the argument
        Fault(**kwargs)


def test_slow_after_starts_the_run_before_a_client_gives_up(emu):
    emu.inject(Fault("execute", "slow_after", delay=2.0))
    url = f"{emu.url}/api/v1/workspace/ws-1/playbooks/pb-fast/execute"
    with pytest.raises(requests.ReadTimeout):
        requests.post(url, headers={"BLINK-API-KEY": emu.api_key}, timeout=0.3)
    assert len(emu.executions) == 1
