"""Who cancels a Blink execution, when, and when nobody must: each path ends by reading the emulator.

* Deferred mode, the task's ``timeout`` passes: the trigger yields a ``timeout`` event (it never
  cancels anything itself) and ``execute_complete``, back in a worker, cancels the execution.
* A user kills a deferred task (mark failed/success, clear): Airflow 3.3+ calls the trigger's
  ``on_kill``, which cancels what the operator started and leaves alone what a sensor only watches.
* A triggerer shuts down or hands the trigger to another triggerer: Airflow cancels the trigger's
  task and calls ``cleanup()``, never ``on_kill``; the execution goes on, and the next trigger
  built from the serialised kwargs picks it up.
* Cancelling an execution that has already finished: Blink answers 400, which is "nothing to
  cancel", reported quietly.

The sync-mode ``on_kill`` (the worker cancels) is tested in tests/operators/test_blink.py.

Airflow 2.11 has no trigger ``on_kill``: its triggerer never calls it, so there a user who marks a
deferred task failed leaves the execution running in Blink. The tests that call ``on_kill``
directly run on both versions (the method is the provider's); the test that goes through Airflow's
own ``TriggerRunner.run_trigger`` runs only on Airflow 3.3+.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

import pytest

from airflow_provider_blink.compat import TaskDeferred
from airflow_provider_blink.exceptions import BlinkExecutionTimeout
from airflow_provider_blink.operators.blink import BlinkExecutePlaybookOperator
from airflow_provider_blink.sensors.blink import BlinkExecutionSensor
from airflow_provider_blink.testing import BlinkEmulator, Fault
from airflow_provider_blink.triggers.blink import BlinkExecutionTrigger

from support.clients import Client
from support.emulator import requests_to
from support.task_instance import context_for
from support.triggers import next_event
from support.waiting import wait_for

POLL = 0.1
AIRFLOW_3_3 = tuple(int(part) for part in version("apache-airflow").split(".")[:2]) >= (3, 3)


@dataclass
class Deferred:
    """An operator task that has started its execution and deferred."""

    op: BlinkExecutePlaybookOperator
    context: Any
    trigger: BlinkExecutionTrigger
    execution_id: str

    def complete(self, event: dict[str, Any]) -> Any:
        """Resume the task in a worker with the trigger's event, as Airflow does."""
        return self.op.execute_complete(self.context, event, execution_id=self.execution_id)


def deferred_operator(**kwargs: Any) -> Deferred:
    """Run the operator's ``execute`` (start the playbook, check it once) up to its deferral."""
    op = BlinkExecutePlaybookOperator(
        task_id="run_playbook", **{"playbook_id": "slow", "poll_interval": POLL, "deferrable": True, **kwargs}
    )
    ctx = context_for()
    with pytest.raises(TaskDeferred) as raised:
        op.execute(ctx)
    deferral = raised.value
    assert deferral.method_name == "execute_complete"
    assert isinstance(deferral.trigger, BlinkExecutionTrigger)
    assert deferral.kwargs is not None
    return Deferred(op, ctx, deferral.trigger, deferral.kwargs["execution_id"])


def sensor_trigger(execution_id: str) -> BlinkExecutionTrigger:
    sensor = BlinkExecutionSensor(
        task_id="wait", execution_id=execution_id, poke_interval=POLL, deferrable=True
    )
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(context_for())
    return deferred.value.trigger


def logged_to_stdlib(trigger: BlinkExecutionTrigger) -> BlinkExecutionTrigger:
    """Send the trigger's log to a standard logger, so ``caplog`` sees it (Airflow 3 logs via structlog)."""
    trigger._log = logging.getLogger("blink.test.trigger")  # type: ignore[assignment]
    return trigger


def cancels(emu: BlinkEmulator) -> list[Any]:
    return requests_to(emu, "POST", "/cancel")


async def polled(emu: BlinkEmulator, execution_id: str, times: int = 3) -> None:
    """Return once the trigger has read the execution ``times`` times (it is in its polling loop)."""
    await asyncio.to_thread(wait_for, lambda: len(requests_to(emu, "GET", execution_id)) >= times)


def state(emu: BlinkEmulator, execution_id: str) -> str:
    return str(emu.execution(execution_id)["state_ui"])


# -- the deferred task's timeout ---------------------------------------------------------------------


async def test_deferred_timeout_cancels_in_the_trigger_and_the_worker_reports_it(emulator):
    deferred = deferred_operator(timeout=0.5)
    execution_id, trigger = deferred.execution_id, deferred.trigger

    event = await next_event(trigger)

    assert event["status"] == "timeout"
    assert trigger.end_time is not None
    assert time.time() < trigger.end_time + POLL + 1.0, "the deadline was honoured"
    assert state(emulator, execution_id) == "Cancelled", "the trigger cancels at the deadline, on every line"
    assert [r.status for r in cancels(emulator)] == [200]
    assert event["message"].endswith("; cancelled it")

    with pytest.raises(BlinkExecutionTimeout) as raised:
        deferred.complete(event)

    assert [r.status for r in cancels(emulator)] == [200], "the worker does not cancel again"
    assert execution_id in str(raised.value)
    assert "did not finish before the deadline; cancelled it (timeout=0.5s)." in str(raised.value)


async def test_deferred_timeout_when_the_execution_finished_meanwhile_is_reported_quietly(emulator):
    # "Completed" is no final state for this task, so it ends in Blink while the task waits on.
    deferred = deferred_operator(timeout=0.5, success_states=["Done"], failure_states=["Failed"])
    execution_id = deferred.execution_id
    emulator.finish(execution_id, "Completed")

    event = await next_event(deferred.trigger)
    assert event["status"] == "timeout"
    with pytest.raises(BlinkExecutionTimeout) as raised:
        deferred.complete(event)

    assert "it had already finished when we tried to cancel it" in str(raised.value)
    assert state(emulator, execution_id) == "Completed", "a finished run is not rewritten"
    assert [r.status for r in cancels(emulator)] == [400]


# -- a user kills the deferred task: the trigger's on_kill -----------------------------------------


async def test_on_kill_of_the_operators_trigger_cancels_the_execution(emulator, caplog):
    caplog.set_level(logging.INFO)
    deferred = deferred_operator()
    execution_id = deferred.execution_id
    trigger = logged_to_stdlib(deferred.trigger)
    assert trigger.cancel_on_kill is True

    await trigger.on_kill()

    assert state(emulator, execution_id) == "Cancelled"
    assert [r.status for r in cancels(emulator)] == [200]
    assert f"Blink execution {execution_id} cancelled" in caplog.text


async def test_on_kill_of_the_sensors_trigger_leaves_the_execution_running(emulator):
    execution_id = Client("sync")("execute_playbook", "slow")
    trigger = sensor_trigger(execution_id)
    assert trigger.cancel_on_kill is False

    await trigger.on_kill()

    assert state(emulator, execution_id) == "In Progress", "the sensor only watches someone else's run"
    assert cancels(emulator) == []


async def test_on_kill_rides_out_a_transient_fault(emulator):
    deferred = deferred_operator()
    execution_id = deferred.execution_id
    emulator.inject(Fault("cancel", "status", status=503))

    await deferred.trigger.on_kill()

    assert state(emulator, execution_id) == "Cancelled"
    assert [r.status for r in cancels(emulator)] == [503, 200]


@pytest.mark.parametrize("final_state", ["Completed", "Failed"])
async def test_on_kill_after_the_execution_finished_logs_and_does_not_raise(emulator, caplog, final_state):
    caplog.set_level(logging.INFO)
    deferred = deferred_operator()
    execution_id = deferred.execution_id
    emulator.finish(execution_id, final_state)

    await logged_to_stdlib(deferred.trigger).on_kill()

    assert state(emulator, execution_id) == final_state
    assert [r.status for r in cancels(emulator)] == [400]
    assert f"Blink execution {execution_id} had already finished" in caplog.text


# -- a triggerer restart: cancelled and cleaned up, never on_kill ------------------------------------


async def test_a_triggerer_restart_leaves_the_execution_running_and_the_next_trigger_resumes(emulator):
    deferred = deferred_operator()
    execution_id = deferred.execution_id
    trigger = deferred.trigger
    classpath, kwargs = trigger.serialize()

    # What a triggerer does to its triggers on shutdown or redistribution: cancel, then clean up.
    running = asyncio.create_task(next_event(trigger))
    await polled(emulator, execution_id)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    await trigger.cleanup()

    assert state(emulator, execution_id) == "In Progress"
    assert cancels(emulator) == []

    # Another triggerer builds the trigger again from what the database holds.
    assert classpath == "airflow_provider_blink.triggers.blink.BlinkExecutionTrigger"
    resumed = BlinkExecutionTrigger(**kwargs)
    waiting = asyncio.create_task(next_event(resumed))
    await asyncio.sleep(3 * POLL)
    assert not waiting.done()
    emulator.finish(execution_id, "Completed")
    event = await asyncio.wait_for(waiting, timeout=10)

    assert event["status"] == "success"
    assert event["execution_id"] == execution_id
    assert event["execution"]["state_ui"] == "Completed"
    assert cancels(emulator) == []
    assert len(emulator.executions) == 1


@pytest.mark.skipif(not AIRFLOW_3_3, reason="Airflow < 3.3 never calls a trigger's on_kill")
@pytest.mark.parametrize(
    ("user_action", "built_by", "final_state"),
    [
        (True, "operator", "Cancelled"),
        (True, "sensor", "In Progress"),
        (False, "operator", "In Progress"),
    ],
    ids=["user-kills-operator-task", "user-kills-sensor-task", "triggerer-shuts-down"],
)
async def test_airflows_trigger_runner_calls_on_kill_only_for_a_user_action(
    emulator, monkeypatch, user_action, built_by, final_state
):
    from airflow.jobs.triggerer_job_runner import _USER_ACTION_CANCEL_MSG, TriggerRunner

    monkeypatch.setenv("AIRFLOW_DISABLE_GREENBACK_PORTAL", "true")
    deferred = deferred_operator()
    execution_id = deferred.execution_id
    trigger = deferred.trigger if built_by == "operator" else sensor_trigger(execution_id)
    runner = TriggerRunner()
    task = asyncio.create_task(runner.run_trigger(1, trigger))
    runner.triggers[1] = {"task": task, "is_watcher": False, "name": repr(trigger), "events": 0}
    await polled(emulator, execution_id)

    if user_action:
        task.cancel(_USER_ACTION_CANCEL_MSG)  # what cancel_triggers() sends for mark failed/success, clear
    else:
        task.cancel()  # what a triggerer shutting down does
    with pytest.raises(asyncio.CancelledError):
        await task

    assert state(emulator, execution_id) == final_state
    assert len(cancels(emulator)) == (1 if final_state == "Cancelled" else 0)
    assert list(runner.events) == [], "a killed trigger fires no event"


# -- the hook: cancelling what has already finished ---------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("final_state", ["Completed", "Failed", "Cancelled"])
def test_cancelling_a_finished_execution_answers_false_and_changes_nothing(emulator, mode, final_state):
    [execution_id] = emulator.seed_executions("quick-ok", 1, state=final_state)

    assert Client(mode)("cancel_execution", execution_id) is False

    assert state(emulator, execution_id) == final_state
    assert [r.status for r in cancels(emulator)] == [400], "not retried"


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_cancelling_twice_is_harmless(emulator, mode):
    execution_id = Client("sync")("execute_playbook", "slow")

    assert Client(mode)("cancel_execution", execution_id) is True
    assert Client(mode)("cancel_execution", execution_id) is False

    assert state(emulator, execution_id) == "Cancelled"
    assert [r.status for r in cancels(emulator)] == [200, 400]
