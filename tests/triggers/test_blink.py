"""BlinkExecutionTrigger: serialises without secrets, polls the emulator, yields exactly one event."""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import os
import time
from typing import Any

import pytest

# Imported here, not inside the trigger's first run: an import would count as a slow callback.
import airflow_provider_blink.hooks.blink  # noqa: F401
from airflow_provider_blink.tasks import EVENT_STATUSES
from airflow_provider_blink.testing import BlinkEmulator, Fault
from airflow_provider_blink.triggers.blink import BlinkExecutionTrigger

from support.connections import connection_json
from support.emulator import finishing
from support.emulator import start_directly as start
from support.logs import Logged
from support.network import TcpRelay
from support.triggers import all_events

CLASSPATH = "airflow_provider_blink.triggers.blink.BlinkExecutionTrigger"
EVENT_KEYS = {"status", "execution_id", "execution", "message", "permanent"}


def trigger_for(execution_id: str, **settings: Any) -> BlinkExecutionTrigger:
    return BlinkExecutionTrigger(execution_id=execution_id, **{"poll_interval": 0.1, **settings})


async def only_event(trigger: BlinkExecutionTrigger) -> dict[str, Any]:
    events = await asyncio.wait_for(all_events(trigger), timeout=30)
    assert len(events) == 1, events
    event = events[0]
    assert set(event) == EVENT_KEYS
    assert event["status"] in EVENT_STATUSES
    assert event["execution_id"] == trigger.execution_id
    json.dumps(event)  # events travel through the metadata database
    return event


def gets(emulator: BlinkEmulator) -> list[Any]:
    return [r for r in emulator.requests if r.method == "GET" and "/executions/" in r.path]


class TestSerialization:
    SETTINGS: dict[str, Any] = {
        "execution_id": "exec-1",
        "blink_conn_id": "blink_prod",
        "workspace_id": "ws-9",
        "poll_interval": 7.5,
        "end_time": 1_900_000_000.25,
        "success_states": ["Completed", "Done"],
        "failure_states": ["Failed"],
        "error_budget": 42.0,
        "cancel_on_kill": True,
        "log_progress": True,
        "progress_interval": 30.0,
        "stop_for_approval": True,
    }

    def test_round_trip_rebuilds_an_equal_trigger(self):
        classpath, kwargs = BlinkExecutionTrigger(**self.SETTINGS).serialize()

        assert classpath == CLASSPATH
        module_name, class_name = classpath.rsplit(".", 1)
        cls = getattr(importlib.import_module(module_name), class_name)
        assert cls is BlinkExecutionTrigger
        assert kwargs == self.SETTINGS
        assert cls(**kwargs).serialize() == (classpath, kwargs)

    def test_kwargs_are_plain_json(self):
        _, kwargs = BlinkExecutionTrigger(execution_id="e", success_states=("Completed",)).serialize()

        assert json.loads(json.dumps(kwargs)) == kwargs

    async def test_no_secret_is_serialised_even_after_running(self, emulator):
        trigger = trigger_for(start(emulator, "quick-ok"))
        await only_event(trigger)

        serialised = json.dumps(trigger.serialize())
        assert emulator.api_key not in serialised
        assert emulator.api_key not in repr(trigger)
        assert emulator.api_key not in json.dumps(vars(trigger), default=repr)


@pytest.mark.parametrize(
    ("read_took", "pause"),
    [(0.0, 10.0), (0.4, 9.6), (3.0, 7.0), (6.0, 5.0), (30.0, 5.0)],
    ids=["instant", "joined-a-round", "slow-answer", "slower", "slower-than-the-interval"],
)
def test_the_next_read_is_due_one_interval_after_the_last_began(read_took, pause):
    trigger = trigger_for("exec-1", poll_interval=10.0)

    assert trigger._next_pause(read_took) == pytest.approx(pause)


class TestEvents:
    async def test_success_carries_the_execution_record(self, emulator):
        execution_id = start(emulator, "quick-ok")

        event = await only_event(trigger_for(execution_id))

        assert event["status"] == "success"
        assert event["permanent"] is False
        assert event["execution"]["id"] == execution_id
        assert event["execution"]["state_ui"] == "Completed"
        assert event["execution"]["playbook_id"] == "quick-ok"
        assert len(gets(emulator)) >= 2, "0.3 s run polled every 0.1 s: seen running at least once"

    async def test_failed_execution_yields_failed_with_blink_error_details(self, emulator):
        execution_id = start(emulator, "quick-fail")

        event = await only_event(trigger_for(execution_id))

        assert event["status"] == "failed"
        assert event["execution"]["state_ui"] == "Failed"
        assert event["execution"]["error_details"]["error_code"] == "STEP_FAILED"

    async def test_deadline_yields_timeout_about_one_poll_after_it(self, emulator):
        execution_id = start(emulator, "slow")
        end_time = time.time() + 0.5

        event = await only_event(trigger_for(execution_id, poll_interval=0.2, end_time=end_time))

        assert event["status"] == "timeout"
        assert execution_id in event["message"]
        assert event["execution"]["state_ui"] == "In Progress"
        assert end_time <= time.time() < end_time + 0.2 + 2.0  # generous: never sleeps past the deadline
        assert emulator.execution(execution_id)["state_ui"] == "In Progress", "the trigger never cancels"

    async def test_deadline_already_passed_still_reads_the_execution_once(self, emulator):
        execution_id = start(emulator, "slow")

        event = await only_event(trigger_for(execution_id, end_time=time.time() - 10))

        assert event["status"] == "timeout"
        assert len(gets(emulator)) == 1

    async def test_unknown_execution_is_a_permanent_error(self, emulator):
        event = await only_event(trigger_for("no-such-execution"))

        assert event["status"] == "error"
        assert event["permanent"] is True
        assert event["execution"] is None
        assert "404" in event["message"]
        assert len(gets(emulator)) == 1, "a 404 is not retried"

    async def test_unusable_connection_is_a_permanent_error(self, emulator, monkeypatch):
        conn = json.loads(os.environ["AIRFLOW_CONN_BLINK_DEFAULT"])
        monkeypatch.setenv("AIRFLOW_CONN_BLINK_NOKEY", json.dumps({**conn, "password": None}))

        event = await only_event(trigger_for("exec-1", blink_conn_id="blink_nokey"))

        assert event["status"] == "error"
        assert event["permanent"] is True
        assert "API key" in event["message"]
        assert emulator.requests == []

    async def test_transient_errors_are_ridden_out(self, emulator):
        execution_id = start(emulator, "quick-ok")
        emulator.inject(Fault("get", "status", times=3, status=503))

        event = await only_event(trigger_for(execution_id))

        assert event["status"] == "success"
        assert [r.status for r in gets(emulator)][:3] == [503, 503, 503]
        assert gets(emulator)[-1].status == 200

    async def test_persistent_errors_spend_the_error_budget(self, emulator):
        execution_id = start(emulator, "slow")
        emulator.inject(Fault("get", "status", times=None, status=503))
        started = time.monotonic()

        event = await only_event(trigger_for(execution_id, error_budget=0.5))

        assert event["status"] == "error"
        assert event["permanent"] is False
        assert 0.5 <= time.monotonic() - started < 10
        assert execution_id in event["message"]
        assert "0.5s" in event["message"], "the message states the budget that was spent"
        assert "503" in event["message"], "the message quotes the last error"

    @pytest.mark.parametrize(
        ("playbook_id", "settings", "status"),
        [
            ("quick-fail", {"success_states": ["FAILED"]}, "success"),
            ("quick-ok", {"success_states": ["Done"], "failure_states": ["completed"]}, "failed"),
            ("quick-ok", {"success_states": ["Done"]}, "timeout"),
            ("quick-fail", {"failure_states": ["Cancelled"]}, "timeout"),
        ],
        ids=[
            "failed-counted-as-success-case-insensitively",
            "completed-counted-as-failure",
            "completed-not-final-when-not-listed",
            "failed-not-final-when-not-listed",
        ],
    )
    async def test_custom_states_decide_the_outcome(self, emulator, playbook_id, settings, status):
        execution_id = start(emulator, playbook_id)

        event = await only_event(trigger_for(execution_id, end_time=time.time() + 1.0, **settings))

        assert event["status"] == status
        assert event["execution"]["state_ui"] == ("Completed" if playbook_id == "quick-ok" else "Failed")


async def test_one_http_connection_serves_every_poll(emulator, monkeypatch):
    execution_id = start(emulator, "quick-ok")
    with TcpRelay(emulator.port) as proxy:
        monkeypatch.setenv("AIRFLOW_CONN_BLINK_PROXIED", connection_json(f"http://127.0.0.1:{proxy.port}"))

        event = await only_event(trigger_for(execution_id, blink_conn_id="blink_proxied", poll_interval=0.05))

    assert event["status"] == "success"
    polls = len(gets(emulator))
    assert polls >= 4
    assert proxy.connections == 1, f"{proxy.connections} connections for {polls} polls"


async def test_never_blocks_the_event_loop(emulator, caplog):
    execution_id = start(emulator, "quick-ok")
    loop = asyncio.get_running_loop()
    loop.set_debug(True)
    loop.slow_callback_duration = 0.05
    caplog.set_level(logging.WARNING, logger="asyncio")
    try:
        event = await only_event(trigger_for(execution_id, poll_interval=0.05))
    finally:
        loop.set_debug(False)

    assert event["status"] == "success"
    slow = [r.getMessage() for r in caplog.records if r.name == "asyncio" and "took" in r.getMessage()]
    assert slow == []


async def test_logs_the_execution_it_waits_on_and_each_state_change(emulator, caplog, capfd):
    caplog.set_level(logging.INFO)
    execution_id = start(emulator, "slow")

    with finishing(emulator, lambda: execution_id if len(gets(emulator)) >= 2 else None):
        event = await only_event(trigger_for(execution_id))

    assert event["status"] == "success"
    logged = Logged(caplog, capfd)
    assert logged.count(f"Waiting for Blink execution {execution_id} to finish") == 1
    assert logged.count(f"Blink execution {execution_id} is In Progress") == 1, "logged as it changes"
    assert logged.count(f"Blink execution {execution_id} is Completed") == 1
