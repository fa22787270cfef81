"""The trigger rides out a Blink outage, gives up cleanly when its budget is spent, and keeps its deadline.

Time is scaled down, keeping the ratios that matter. At production settings (``poll_interval`` 10 s,
``retry_limit`` 5, ``retry_delay`` 1 s, waits capped at 30 s, ``error_budget`` 300 s) a deferred task
tolerates up to 300 s of back-to-back failures, so a one-minute outage spends a fifth of the
budget. Here an outage of :data:`OUTAGE` = 2 s against an ``error_budget`` of 10 s keeps that fifth,
with ``poll_interval`` 0.05 s and ``retry_delay`` 0.01 s (``retry_limit`` 2): the trigger polls some
forty times through the outage where production would poll six, which is the harsher case. The
outage is done twice: Blink answering 503 to every read, and Blink refusing connections (a TCP
forwarder in front of the emulator closes its listening socket, then listens again on the same port).

Every test here also watches the event loop: asyncio's debug mode with ``slow_callback_duration``
= 50 ms, plus a guard that catches any blocking call (``time.sleep``, ``requests``, a blocking
connect) made on the loop's thread. A test fails on any blocking call, and on any callback that
held the loop for :data:`STALL` = 200 ms or more: the trigger must never block the triggerer's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from airflow_provider_blink.exceptions import BlinkApiError, BlinkTransportError
from airflow_provider_blink.hooks.blink import BlinkAsyncClient, BlinkHook
from airflow_provider_blink.testing import BlinkEmulator, Fault
from airflow_provider_blink.triggers.blink import BlinkExecutionTrigger

from support.connections import connection_json
from support.emulator import requests_to
from support.network import TcpRelay, closed_port
from support.triggers import all_events
from support.waiting import wait_for

#: Scaled-down production settings (see the module docstring).
OUTAGE = 2.0
ERROR_BUDGET = 10.0
POLL = 0.05
#: Slack for a busy machine on top of a behaviour's own bound.
#: A Blink that hangs: reads never answer within any bound the tests wait for.
HANG = 120.0
#: A callback holding the event loop this long is a stall, whatever the machine's load. asyncio
#: reports every callback over 50 ms, but on a loaded two-core machine a process starved of CPU
#: shows 50-100 ms callbacks now and then; a blocked loop (a sync request, a ``time.sleep``) is
#: caught by the blocking-call guard at any length.
STALL = 0.2


@dataclass
class LoopWatch:
    """What :func:`watching_the_loop` saw: blocking calls made on the loop, and slow callbacks."""

    blocking: list[str] = field(default_factory=list)
    slow: list[tuple[float, str]] = field(default_factory=list)

    @property
    def stalls(self) -> list[tuple[float, str]]:
        """Callbacks that held the loop for :data:`STALL` or more."""
        return [(seconds, message) for seconds, message in self.slow if seconds >= STALL]


@contextlib.contextmanager
def watching_the_loop(caplog: pytest.LogCaptureFixture) -> Iterator[LoopWatch]:
    """
    Run the block with asyncio's debug mode (``slow_callback_duration`` 50 ms) and a guard that
    records any blocking call (``time.sleep``, ``requests``, a blocking connect) made on the loop's
    thread; a blocking call is caught however short it is. The garbage collector is paused: a full
    collection of this test process's large heap (Airflow, the emulator) would show as a slow
    callback of whichever task it interrupted.
    """
    loop = asyncio.get_running_loop()
    loop_thread = threading.get_ident()
    watch = LoopWatch()

    def guarded(name: str, original: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() == loop_thread:
                watch.blocking.append(name)
            return original(*args, **kwargs)

        return call

    caplog.set_level(logging.WARNING, logger="asyncio")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(time, "sleep", guarded("time.sleep", time.sleep))
        patch.setattr(requests.Session, "request", guarded("requests", requests.Session.request))
        patch.setattr(
            socket, "create_connection", guarded("socket.create_connection", socket.create_connection)
        )
        gc.collect()  # a full collection of the test process's heap is no stall of the trigger's
        gc.disable()
        loop.set_debug(True)
        loop.slow_callback_duration = 0.05
        try:
            yield watch
        finally:
            loop.set_debug(False)
            gc.enable()
    for record in caplog.records:
        took = re.search(r" took ([0-9.]+) seconds$", record.getMessage())
        if record.name == "asyncio" and took:
            watch.slow.append((float(took.group(1)), record.getMessage()))


class Attempts:
    """Every HTTP attempt the async client makes, with its time and outcome."""

    def __init__(self) -> None:
        self.log: list[tuple[float, str]] = []

    def outcome(self, exc: BaseException | None) -> str:
        if exc is None:
            return "ok"
        if isinstance(exc, BlinkTransportError):
            return "transport" if exc.request_sent else "refused"
        if isinstance(exc, BlinkApiError):
            return str(exc.status)
        return type(exc).__name__

    def between(self, start: float, end: float, outcome: str) -> list[float]:
        return [at for at, seen in self.log if start <= at <= end and seen == outcome]


@pytest.fixture
def attempts(monkeypatch) -> Attempts:
    record = Attempts()
    send = BlinkAsyncClient._send

    async def recording_send(self: BlinkAsyncClient, call: Any) -> Any:
        try:
            result = await send(self, call)
        except Exception as exc:
            record.log.append((time.monotonic(), record.outcome(exc)))
            raise
        record.log.append((time.monotonic(), "ok"))
        return result

    monkeypatch.setattr(BlinkAsyncClient, "_send", recording_send)
    return record


def trigger_for(execution_id: str, **settings: Any) -> BlinkExecutionTrigger:
    return BlinkExecutionTrigger(
        execution_id=execution_id, **{"poll_interval": POLL, "error_budget": ERROR_BUDGET, **settings}
    )


async def polled(emu: BlinkEmulator, execution_id: str, times: int = 3) -> None:
    """Return once the emulator has answered ``times`` reads of the execution (the trigger is polling)."""
    await asyncio.to_thread(
        wait_for, lambda: len([r for r in requests_to(emu, "GET", execution_id) if r.status == 200]) >= times
    )


@pytest.fixture
def forwarder(emulator, monkeypatch) -> Iterator[TcpRelay]:
    """A relay to the emulator, as connection ``blink_forwarded``."""
    with TcpRelay(emulator.port) as relay:
        monkeypatch.setenv("AIRFLOW_CONN_BLINK_FORWARDED", connection_json(f"http://127.0.0.1:{relay.port}"))
        yield relay


def start_slow_run() -> str:
    return BlinkHook().execute_playbook("slow")


# -- a minute of outage, scaled down -------------------------------------------------------------------


async def ride_out_an_outage(
    emulator: BlinkEmulator,
    caplog: pytest.LogCaptureFixture,
    *,
    down: Callable[[], None],
    up: Callable[[], None],
    conn_id: str = "blink_default",
) -> tuple[float, float]:
    """
    Watch a slow run through an outage of :data:`OUTAGE` seconds and check the trigger rode it out.

    ``down()`` starts the outage; halfway through, the run finishes in Blink (Blink goes on while
    its API is down); ``up()`` ends it. The trigger must neither block nor hold the loop, and must
    report the finished run once Blink is back. Returns when the outage started and ended.
    """
    execution_id = start_slow_run()
    with watching_the_loop(caplog) as watch:
        watching = asyncio.create_task(all_events(trigger_for(execution_id, blink_conn_id=conn_id)))
        await polled(emulator, execution_id)

        down()
        outage_start = time.monotonic()
        await asyncio.sleep(OUTAGE / 2)
        emulator.finish(execution_id, "Completed")  # Blink goes on while the API is down
        await asyncio.sleep(OUTAGE / 2)
        outage_end = time.monotonic()
        assert not watching.done(), "the trigger is still waiting out the outage"
        up()

        events = await asyncio.wait_for(watching, timeout=10)

    assert watch.blocking == [], "the trigger made a blocking call on the event loop"
    assert watch.stalls == [], "the trigger held the event loop"
    (event,) = events
    assert event["status"] == "success"
    assert event["execution"]["state_ui"] == "Completed"
    return outage_start, outage_end


async def test_survives_an_outage_of_5xx_and_reports_the_run_that_finished_meanwhile(
    emulator, attempts, caplog
):
    outage_start, outage_end = await ride_out_an_outage(
        emulator,
        caplog,
        down=lambda: emulator.inject(Fault("get", "status", status=503, times=None)),
        up=emulator.clear_faults,
    )

    failures = attempts.between(outage_start, outage_end, "503")
    assert len(failures) >= 20, "the trigger kept polling through the outage"
    assert max(failures) > outage_end - 0.5, "... until its very end"
    [execution] = emulator.executions
    assert len([r for r in requests_to(emulator, "GET", execution["id"]) if r.status == 503]) == len(
        attempts.between(0, time.monotonic(), "503")
    )


async def test_survives_an_outage_of_refused_connections(emulator, forwarder, attempts, caplog):
    accepted_before: list[int] = []

    def back_on_the_same_address() -> None:
        accepted_before.append(forwarder.connections)
        forwarder.listen()

    outage_start, outage_end = await ride_out_an_outage(
        emulator, caplog, down=forwarder.refuse, up=back_on_the_same_address, conn_id="blink_forwarded"
    )

    refused = attempts.between(outage_start, outage_end, "refused")
    assert len(refused) >= 20, "the trigger kept polling through the outage"
    assert max(refused) > outage_end - 0.5, "... until its very end"
    assert forwarder.connections > accepted_before[0], "it reconnected after the outage"


# -- the budget is spent: one error event, not a crash ------------------------------------------------


@pytest.mark.parametrize("outage", ["refused", "dropped", "503"])
async def test_a_spent_error_budget_yields_one_clear_error_event(emulator, monkeypatch, caplog, outage):
    execution_id = start_slow_run()
    if outage == "refused":
        monkeypatch.setenv("AIRFLOW_CONN_BLINK_DOWN", connection_json(f"http://127.0.0.1:{closed_port()}"))
    else:
        monkeypatch.setenv("AIRFLOW_CONN_BLINK_DOWN", connection_json(emulator.url))
        kind = "close_before" if outage == "dropped" else "status"
        emulator.inject(Fault("get", kind, status=503 if outage == "503" else None, times=None))
    started = time.monotonic()

    with watching_the_loop(caplog) as watch:
        events = await asyncio.wait_for(
            all_events(trigger_for(execution_id, blink_conn_id="blink_down", error_budget=0.5)),
            timeout=HANG / 2,
        )

    elapsed = time.monotonic() - started
    assert watch.blocking == []
    assert watch.stalls == []
    (event,) = events
    assert event["status"] == "error"
    assert event["permanent"] is False
    assert event["execution_id"] == execution_id
    assert event["message"].startswith(
        f"Blink kept failing for 0.5s while watching execution {execution_id!r}; last error: "
    )
    last_error = {
        "refused": "Blink did not answer GET",
        "dropped": "Blink did not answer GET",
        "503": "HTTP 503",
    }
    assert last_error[outage] in event["message"]
    json.dumps(event)
    # It gives up once the budget is spent, not before; that it gives up at all is bounded by the
    # wait_for above (loosely: a busy machine must not fail this test).
    assert elapsed >= 0.5
    assert emulator.execution(execution_id)["state_ui"] == "In Progress", "giving up watching cancels nothing"


# -- the deadline holds whatever Blink does ---------------------------------------------------------


@pytest.mark.parametrize("blink", ["hangs", "5xx", "refuses"])
async def test_the_deadline_is_honoured_within_one_poll_interval(emulator, monkeypatch, caplog, blink):
    execution_id = start_slow_run()
    if blink == "hangs":
        emulator.inject(Fault("get", "slow", delay=HANG, times=None))
    elif blink == "5xx":
        emulator.inject(Fault("get", "status", status=500, times=None))
    else:
        monkeypatch.setenv("AIRFLOW_CONN_BLINK_DEFAULT", connection_json(f"http://127.0.0.1:{closed_port()}"))
    poll_interval = 0.2
    end_time = time.time() + 0.5

    with watching_the_loop(caplog) as watch:
        events = await asyncio.wait_for(
            all_events(trigger_for(execution_id, poll_interval=poll_interval, end_time=end_time)),
            timeout=HANG / 2,
        )

    finished = time.time()
    assert watch.blocking == []
    assert watch.stalls == []
    (event,) = events
    assert event["status"] == "timeout", event["message"]
    assert execution_id in event["message"]
    # Far below the hanging read, far above a busy machine's scheduling noise: no timed assertion.
    assert end_time <= finished < end_time + poll_interval + HANG / 4
    assert emulator.execution(execution_id)["state_ui"] == "In Progress"


def test_module_settings_keep_the_production_ratio():
    from airflow_provider_blink.triggers.blink import DEFAULT_ERROR_BUDGET

    assert OUTAGE / ERROR_BUDGET == 60 / DEFAULT_ERROR_BUDGET
