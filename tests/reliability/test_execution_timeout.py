"""A wait ends itself just before the task's ``execution_timeout`` and cancels the execution it started.

Airflow fails a deferred task at ``execution_timeout`` through the trigger's timeout, and nobody
cancels the Blink run; a task waiting in a worker is killed by a signal. So the wait's deadline is
the earlier of ``timeout=`` and ``execution_timeout`` (less a margin: a tenth of it, at most 30 s),
counted from the try's start as Airflow counts it, and absolute: a triggerer restart keeps it.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_blink.compat import TaskDeferred
from airflow_provider_blink.exceptions import BlinkExecutionTimeout
from airflow_provider_blink.operators.blink import BlinkExecutePlaybookOperator
from airflow_provider_blink.sensors.blink import BlinkExecutionSensor
from airflow_provider_blink.tasks import deadline
from airflow_provider_blink.triggers.blink import BlinkExecutionTrigger

from support.dag_runs import register, run, task_instance
from support.emulator import requests_to, start_directly
from support.task_instance import RecordingTI, context_for
from support.triggers import next_event

NOW = 1_900_000_000.0


class StartedTI(RecordingTI):
    """A task instance whose try started ``ago`` seconds before :data:`NOW`."""

    def __init__(self, ago: float) -> None:
        super().__init__()
        self.start_date = datetime.fromtimestamp(NOW - ago, tz=timezone.utc)


@pytest.mark.parametrize(
    ("timeout", "execution_timeout", "started_ago", "expected"),
    [
        (None, None, 0, None),
        (60, None, 0, NOW + 60),
        (None, timedelta(minutes=10), 0, NOW + 600 - 30),
        (None, timedelta(seconds=10), 4, NOW + 10 - 1 - 4),
        (60, timedelta(minutes=10), 0, NOW + 60),
        (600, timedelta(minutes=5), 100, NOW + 300 - 30 - 100),
    ],
    ids=[
        "neither",
        "timeout",
        "execution-timeout-less-30s",
        "small-execution-timeout-less-a-tenth-since-the-try-started",
        "timeout-first",
        "execution-timeout-first",
    ],
)
def test_the_deadline_is_the_earlier_limit(monkeypatch, timeout, execution_timeout, started_ago, expected):
    monkeypatch.setattr("airflow_provider_blink.tasks.time.time", lambda: NOW)

    assert deadline(context_for(StartedTI(started_ago)), timeout, execution_timeout) == expected


def test_a_triggerer_restart_keeps_the_absolute_deadline_and_still_cancels(emulator):
    op = BlinkExecutePlaybookOperator(
        task_id="run_playbook",
        playbook_id="slow",
        poll_interval=0.1,
        deferrable=True,
        execution_timeout=timedelta(seconds=5),
    )
    ti = RecordingTI()
    ti.start_date = datetime.now(timezone.utc) - timedelta(seconds=3)  # type: ignore[attr-defined]
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context_for(ti))
    first = deferred.value.trigger
    assert first.end_time == pytest.approx(ti.start_date.timestamp() + 5 - 0.5)  # type: ignore[attr-defined]

    time.sleep(0.3)  # the triggerer restarts: the trigger is rebuilt from its serialised kwargs
    _, kwargs = first.serialize()
    rebuilt = BlinkExecutionTrigger(**kwargs)
    assert rebuilt.end_time == first.end_time, "the deadline did not move with the restart"

    event = await_event(rebuilt)

    (execution,) = emulator.executions
    assert event["status"] == "timeout"
    assert time.time() >= first.end_time
    assert emulator.execution(execution["id"])["state_ui"] == "Cancelled"
    assert [r.status for r in requests_to(emulator, "POST", "/cancel")] == [200]
    with pytest.raises(BlinkExecutionTimeout, match=r"cancelled it \(execution_timeout=0:00:05\)"):
        op.execute_complete(context_for(ti), event, execution_id=execution["id"])


def test_the_sensor_defers_with_the_same_deadline_and_never_cancels(emulator):
    sensor = BlinkExecutionSensor(
        task_id="wait",
        execution_id=start_directly(emulator, "slow"),
        deferrable=True,
        timeout=600,
        execution_timeout=timedelta(seconds=50),
    )
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(context_for())

    trigger = deferred.value.trigger
    assert trigger.end_time == pytest.approx(time.time() + 50 - 5, abs=5)
    assert trigger.cancel_on_kill is False, "the sensor only watches"


def await_event(trigger: BlinkExecutionTrigger) -> dict[str, Any]:
    return asyncio.run(next_event(trigger))


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferred", "in-worker"])
def test_execution_timeout_cancels_the_execution_through_real_airflow(airflow_db, emulator, deferrable):
    from airflow_provider_blink.compat import DAG

    failures: list[BaseException] = []
    with DAG(
        f"blink_execution_timeout_{deferrable}", schedule=None, start_date=datetime(2026, 1, 1), catchup=False
    ) as dag:
        BlinkExecutePlaybookOperator(
            task_id="run_playbook",
            playbook_id="slow",
            poll_interval=0.2,
            deferrable=deferrable,
            execution_timeout=timedelta(seconds=8),
            on_failure_callback=lambda context: failures.append(context["exception"]),
        )
    register(dag)

    dag_run = run(dag)

    assert dag_run.state == "failed"
    assert task_instance(dag_run, "run_playbook").state == "failed"
    (execution,) = emulator.executions
    assert emulator.execution(execution["id"])["state_ui"] == "Cancelled"
    (failure,) = failures
    assert isinstance(failure, BlinkExecutionTimeout), "the wait ended itself, before Airflow's timeout"
    assert execution["id"] in str(failure)
    assert "cancelled it (execution_timeout=0:00:08)" in str(failure)
    assert [r.status for r in requests_to(emulator, "POST", "/cancel")] == [200]
