"""BlinkExecutionSensor: pokes, defers and finishes from the trigger's event, against the emulator."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest

from airflow_provider_blink.compat import (
    AIRFLOW_V_3_0_PLUS,
    AirflowSensorTimeout,
    AirflowSkipException,
    PokeReturnValue,
    TaskDeferred,
)
from airflow_provider_blink.exceptions import BlinkConfigurationError, BlinkError, BlinkExecutionFailed
from airflow_provider_blink.sensors.blink import BlinkExecutionSensor
from airflow_provider_blink.testing import DEMO_WORKSPACE, ScriptedPlaybook
from airflow_provider_blink.triggers.blink import BlinkExecutionTrigger, wait_for_event

from support.emulator import start_directly as start
from support.emulator import url_of
from support.logs import Logged
from support.task_instance import RecordingTI, context_for


def sensor(execution_id: Any, **kwargs: Any) -> BlinkExecutionSensor:
    kwargs = {"task_id": "wait_for_execution", "poke_interval": 0.1, "timeout": 30, **kwargs}
    return BlinkExecutionSensor(execution_id=execution_id, **kwargs)


def deferred(task: BlinkExecutionSensor, context: Any = None) -> TaskDeferred:
    with pytest.raises(TaskDeferred) as raised:
        task.execute(context or context_for())
    return raised.value


class TestPoke:
    def test_false_while_running_then_the_execution_record_when_completed(self, emulator):
        execution_id = start(emulator, "slow")
        task = sensor(execution_id)

        assert task.poke(context_for()) is False

        emulator.finish(execution_id, "Completed")
        done = task.poke(context_for())

        assert isinstance(done, PokeReturnValue)
        assert done.is_done is True
        assert done.xcom_value is not None
        assert done.xcom_value["id"] == execution_id
        assert done.xcom_value["state_ui"] == "Completed"
        json.dumps(done.xcom_value)

    def test_publishes_the_execution_id_and_url_once_for_the_blink_link(self, emulator):
        execution_id = start(emulator, "slow")
        ti = RecordingTI()
        task = sensor(execution_id)

        task.poke(context_for(ti))
        task.poke(context_for(ti))

        url = url_of(emulator, "slow", execution_id)
        link_key = (
            [("_link_BlinkExecutionLink", url)] if AIRFLOW_V_3_0_PLUS else []
        )  # Airflow 3's UI reads it
        assert ti.pushes == [("execution_id", execution_id), ("execution_url", url), *link_key]

    def test_failed_execution_fails_with_blink_error_details(self, emulator):
        execution_id = start(emulator, "quick-fail")
        emulator.finish(execution_id, "Failed")

        with pytest.raises(BlinkExecutionFailed) as raised:
            sensor(execution_id).poke(context_for())

        message = str(raised.value)
        assert execution_id in message
        assert "step 'lookup' failed: upstream returned 500" in message
        assert url_of(emulator, "quick-fail", execution_id) in message

    def test_soft_fail_skips_on_a_failed_execution(self, emulator):
        execution_id = start(emulator, "slow")
        emulator.finish(execution_id, "Cancelled")

        with pytest.raises(AirflowSkipException, match=execution_id):
            sensor(execution_id, soft_fail=True).poke(context_for())

    def test_custom_success_states(self, emulator):
        execution_id = start(emulator, "slow")
        emulator.finish(execution_id, "Skipped")

        done = sensor(execution_id, success_states=["skipped"]).poke(context_for())

        assert isinstance(done, PokeReturnValue)
        assert done.xcom_value is not None
        assert done.xcom_value["state_ui"] == "Skipped"

    def test_workspace_id_overrides_the_connection(self, emulator):
        execution_id = start(emulator, "slow")

        with pytest.raises(BlinkError, match="404"):
            sensor(execution_id, workspace_id="other-workspace").poke(context_for())

        assert emulator.requests[-1].path == f"/api/v1/workspace/other-workspace/executions/{execution_id}"


class TestDeferrable:
    def test_defers_with_a_trigger_built_from_the_sensor(self, emulator):
        execution_id = start(emulator, "slow")
        task = sensor(
            execution_id,
            deferrable=True,
            timeout=120,
            poke_interval=0.5,
            workspace_id=DEMO_WORKSPACE,
            failure_states=["Failed"],
            error_budget=42,
        )

        ti = RecordingTI()
        defer = deferred(task, context_for(ti))

        trigger = defer.trigger
        assert isinstance(trigger, BlinkExecutionTrigger)
        assert ("execution_url", url_of(emulator, "slow", execution_id)) in ti.pushes, (
            "published before deferring"
        )
        assert defer.method_name == "execute_complete"
        assert defer.kwargs == {"end_time": trigger.end_time, "deferred_try": 1}
        assert trigger.execution_id == execution_id
        assert trigger.blink_conn_id == "blink_default"
        assert trigger.workspace_id == DEMO_WORKSPACE
        assert trigger.poll_interval == 0.5
        assert trigger.error_budget == 42
        assert trigger.end_time == pytest.approx(time.time() + 120, abs=5)
        assert trigger.failure_states == ["Failed"]
        assert trigger.success_states is None

    def test_already_finished_execution_returns_without_deferring(self, emulator):
        emulator.add_playbook(ScriptedPlaybook(id="instant", workspace_id=DEMO_WORKSPACE, duration=0))
        execution_id = start(emulator, "instant")

        record = sensor(execution_id, deferrable=True).execute(context_for())

        assert record["id"] == execution_id
        assert record["state_ui"] == "Completed"

    def test_success_event_returns_the_execution_record(self, emulator):
        execution_id = start(emulator, "quick-ok")
        task = sensor(execution_id, deferrable=True)

        record = task.execute_complete(context_for(), wait_for_event(deferred(task).trigger))

        assert record["id"] == execution_id
        assert record["state_ui"] == "Completed"

    def test_failed_event_fails_the_task(self, emulator):
        execution_id = start(emulator, "quick-fail")
        task = sensor(execution_id, deferrable=True)

        with pytest.raises(BlinkExecutionFailed, match="upstream returned 500"):
            task.execute_complete(context_for(), wait_for_event(deferred(task).trigger))

    @pytest.mark.parametrize(
        ("soft_fail", "error"),
        [(False, AirflowSensorTimeout), (True, AirflowSkipException)],
        ids=["fails", "soft-fail-skips"],
    )
    def test_timeout_event(self, emulator, soft_fail, error):
        execution_id = start(emulator, "slow")
        task = sensor(execution_id, deferrable=True, timeout=0.3, soft_fail=soft_fail)

        with pytest.raises(error, match=execution_id):
            task.execute_complete(context_for(), wait_for_event(deferred(task).trigger))

        assert emulator.execution(execution_id)["state_ui"] == "In Progress", "a sensor never cancels"

    def test_event_for_another_execution_is_refused(self, emulator):
        event = {"status": "success", "execution_id": "exec-2", "execution": {"id": "exec-2"}}

        with pytest.raises(BlinkError, match="expected 'exec-1'"):
            sensor("exec-1").execute_complete(context_for(), event)

    def test_a_retry_resumed_with_an_earlier_trys_event_watches_again(self, emulator):
        """Airflow 3.0 resumes a retry with the earlier try's event (apache/airflow#56704): it looks again."""
        execution_id = start(emulator, "slow")
        stale = {"status": "timeout", "execution_id": execution_id}

        with pytest.raises(TaskDeferred) as defer:
            sensor(execution_id, deferrable=True).execute_complete(
                context_for(RecordingTI(try_number=2)), stale, deferred_try=1
            )

        assert defer.value.trigger.execution_id == execution_id
        assert defer.value.kwargs == {"end_time": defer.value.trigger.end_time, "deferred_try": 2}


class TestConfiguration:
    @pytest.mark.parametrize("execution_id", ["", "   ", None], ids=["empty", "blank", "none"])
    @pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
    def test_missing_execution_id_is_a_configuration_error(self, emulator, execution_id, deferrable):
        task = sensor(execution_id, deferrable=deferrable)

        with pytest.raises(BlinkConfigurationError, match="execution_id"):
            task.poke(context_for()) if not deferrable else task.execute(context_for())

        assert emulator.requests == []

    def test_zero_poke_interval_is_refused_by_its_name(self):
        with pytest.raises(BlinkConfigurationError, match="poke_interval"):
            sensor("exec-1", poke_interval=0)

    @pytest.mark.parametrize(
        ("setting", "expected"), [("true", True), ("false", False)], ids=["config-true", "config-false"]
    )
    def test_deferrable_follows_operators_default_deferrable(self, monkeypatch, setting, expected):
        monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", setting)

        assert sensor("exec-1").deferrable is expected

    def test_execution_id_and_workspace_are_templated(self):
        assert {"execution_id", "workspace_id"} <= set(BlinkExecutionSensor.template_fields)


class TestLogs:
    def test_poke_mode_logs_the_execution_it_waits_on_and_each_state_change(self, emulator, caplog, capfd):
        caplog.set_level(logging.INFO)
        execution_id = start(emulator, "slow")
        task = sensor(execution_id)

        assert task.poke(context_for()) is False
        assert task.poke(context_for()) is False
        emulator.finish(execution_id, "Completed")
        task.poke(context_for())

        logged = Logged(caplog, capfd)
        url = url_of(emulator, "slow", execution_id)
        assert logged.count(f"Waiting for Blink execution {execution_id} of playbook slow: {url}") == 1
        assert logged.count(f"Blink execution {execution_id} is In Progress") == 1, "logged as it changes"
        assert logged.count(f"Blink execution {execution_id} is Completed") == 1

    def test_each_rescheduled_run_logs_the_execution_and_the_state_it_finds(self, emulator, caplog, capfd):
        caplog.set_level(logging.INFO)
        execution_id = start(emulator, "slow")

        for _run in range(2):  # each run of a rescheduled sensor is a new task process
            assert sensor(execution_id, mode="reschedule").poke(context_for()) is False

        logged = Logged(caplog, capfd)
        url = url_of(emulator, "slow", execution_id)
        assert logged.count(f"Waiting for Blink execution {execution_id} of playbook slow: {url}") == 2
        assert logged.count(f"Blink execution {execution_id} is In Progress") == 2
