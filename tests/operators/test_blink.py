"""BlinkExecutePlaybookOperator, run against the Blink emulator with a small, honest task context."""

from __future__ import annotations

import datetime
import json
import logging
import threading
import time
from typing import Any

import pytest

from airflow_provider_blink.compat import AirflowFailException, TaskDeferred
from airflow_provider_blink.exceptions import (
    BlinkConfigurationError,
    BlinkError,
    BlinkExecutionFailed,
    BlinkExecutionTimeout,
    BlinkNotFoundError,
    BlinkPermanentError,
)
from airflow_provider_blink.operators.blink import BlinkExecutePlaybookOperator
from airflow_provider_blink.testing import DEMO_WORKSPACE, BlinkEmulator, ScriptedPlaybook
from airflow_provider_blink.triggers.blink import BlinkExecutionTrigger, wait_for_event

from support.emulator import start_directly as start
from support.emulator import url_of
from support.logs import times_logged
from support.task_instance import RecordingTI, context_for, run_to_the_end

SUMMARY_TIMINGS = ("created_at", "started_at", "finished_at", "duration")


def operator(**kwargs: Any) -> BlinkExecutePlaybookOperator:
    kwargs = {"task_id": "run_playbook", "playbook_id": "quick-ok", "poll_interval": 0.1, **kwargs}
    return BlinkExecutePlaybookOperator(**kwargs)


def posts(emulator: BlinkEmulator) -> list[Any]:
    return [r for r in emulator.requests if r.method == "POST"]


class TestWaitsForTheExecution:
    def test_pushes_the_execution_id_and_url_before_waiting(self, emulator):
        ti = RecordingTI(emulator)

        operator().execute(context_for(ti))

        (execution,) = emulator.executions
        assert ti.pushed["execution_id"] == execution["id"]
        assert ti.pushed["execution_url"] == url_of(emulator, "quick-ok", execution["id"])
        assert ti.states_at_push["execution_id"] == ["In Progress"]
        assert ti.states_at_push["execution_url"] == ["In Progress"]

    def test_returns_a_json_serialisable_summary(self, emulator):
        summary = operator(input_values={"ioc": "203.0.113.7"}).execute(context_for())

        (execution,) = emulator.executions
        assert json.loads(json.dumps(summary)) == summary
        assert summary["execution_id"] == execution["id"]
        assert summary["playbook_id"] == "quick-ok"
        assert summary["state_ui"] == "Completed"
        assert summary["execution_url"] == url_of(emulator, "quick-ok", execution["id"])
        assert all(summary[field] is not None for field in SUMMARY_TIMINGS)
        assert "inputs" not in summary, "the summary leaves out the (possibly large) inputs"
        assert execution["inputs"] == {"ioc": "203.0.113.7"}

    def test_summary_carries_the_playbook_output_read_from_the_steps(self, emulator):
        summary = operator().execute(context_for())

        assert summary["output"] == {"answer": 42}
        assert any(r.path.endswith(f"/executions/{summary['execution_id']}/steps") for r in emulator.requests)

    def test_include_output_and_log_steps_false_skip_the_steps_call(self, emulator):
        summary = operator(include_output=False, log_steps=False).execute(context_for())

        assert summary["output"] is None
        assert not any(r.path.endswith("/steps") for r in emulator.requests)

    def test_sends_the_execute_body_blink_documents(self, emulator):
        operator(
            input_values={"host": "laptop-1"},
            event={"alert": "A-1"},
            runner="edge-runners",
            trigger_type="airflow",
            callback={"url": "https://hooks.example/blink", "method": "POST"},
            wait_for_completion=False,
        ).execute(context_for())

        (request,) = posts(emulator)
        assert request.path == f"/api/v1/workspace/{DEMO_WORKSPACE}/playbooks/quick-ok/execute"
        assert request.body == {
            "input_values": {"host": "laptop-1"},
            "event": {"alert": "A-1"},
            "runner": "edge-runners",
            "trigger_type": "airflow",
            "callback": {"url": "https://hooks.example/blink", "method": "POST"},
        }

    def test_workspace_id_overrides_the_connection(self, emulator):
        with pytest.raises(BlinkNotFoundError, match="workspace"):
            operator(workspace_id="other-workspace").execute(context_for())

        (request,) = emulator.requests
        assert request.path.startswith("/api/v1/workspace/other-workspace/")

    def test_already_finished_execution_completes_without_deferring(self, emulator):
        emulator.add_playbook(ScriptedPlaybook(id="instant", workspace_id=DEMO_WORKSPACE, duration=0))

        summary = operator(playbook_id="instant", deferrable=True).execute(context_for())

        assert summary["state_ui"] == "Completed"

    def test_failed_execution_fails_the_task_with_the_facts(self, emulator):
        with pytest.raises(BlinkExecutionFailed) as raised:
            operator(playbook_id="quick-fail").execute(context_for())

        (execution,) = emulator.executions
        message = str(raised.value)
        assert execution["id"] in message
        assert "'Failed'" in message
        assert "step 'lookup' failed: upstream returned 500" in message
        assert "STEP_FAILED" in message
        assert url_of(emulator, "quick-fail", execution["id"]) in message

    @pytest.mark.parametrize("deferrable", [False, True], ids=["in-process", "deferred"])
    def test_timeout_cancels_the_execution_and_fails(self, emulator, deferrable):
        op = operator(playbook_id="slow", timeout=0.5, deferrable=deferrable)
        context = context_for()

        with pytest.raises(BlinkExecutionTimeout) as raised:
            run_to_the_end(op, context)

        (execution,) = emulator.executions
        assert emulator.execution(execution["id"])["state_ui"] == "Cancelled"
        assert execution["id"] in str(raised.value)
        assert "cancelled it" in str(raised.value)
        assert [r.path.rsplit("/", 1)[-1] for r in posts(emulator)] == ["execute", "cancel"]

    def test_execution_cancelled_in_blink_fails_the_task(self, emulator):
        ti = RecordingTI()
        op = operator(playbook_id="slow", deferrable=True)
        with pytest.raises(TaskDeferred) as deferred:
            op.execute(context_for(ti))
        emulator.finish(ti.pushed["execution_id"], "Cancelled")

        with pytest.raises(BlinkExecutionFailed, match="Cancelled"):
            op.execute_complete(
                context_for(ti), wait_for_event(deferred.value.trigger), **(deferred.value.kwargs or {})
            )


class TestDeferrable:
    def test_defers_with_the_task_settings(self, emulator):
        ti = RecordingTI()
        op = operator(
            timeout=30,
            deferrable=True,
            poll_interval=0.2,
            success_states=["Completed", "Done"],
            failure_states=["Failed"],
            workspace_id=DEMO_WORKSPACE,
            error_budget=42,
        )

        with pytest.raises(TaskDeferred) as deferred:
            op.execute(context_for(ti))

        trigger = deferred.value.trigger
        assert isinstance(trigger, BlinkExecutionTrigger)
        assert deferred.value.method_name == "execute_complete"
        assert deferred.value.kwargs == {
            "execution_id": ti.pushed["execution_id"],
            "end_time": trigger.end_time,
            "deferred_try": 1,
        }
        assert trigger.execution_id == ti.pushed["execution_id"]
        assert trigger.blink_conn_id == "blink_default"
        assert trigger.workspace_id == DEMO_WORKSPACE
        assert trigger.poll_interval == 0.2
        assert trigger.error_budget == 42
        assert trigger.end_time == pytest.approx(time.time() + 30, abs=5)
        assert trigger.success_states == ["Completed", "Done"]
        assert trigger.failure_states == ["Failed"]
        assert ti.pushed["execution_url"] == url_of(emulator, "quick-ok", ti.pushed["execution_id"])

    def test_a_retry_resumed_with_an_earlier_trys_event_starts_over(self, emulator):
        """Airflow 3.0 resumes a retry with the failed try's event (apache/airflow#56704): it runs anew."""
        failed = start(emulator, "quick-fail")
        ti = RecordingTI(try_number=2)
        stale = {"status": "failed", "execution_id": failed, "state_ui": "Failed"}

        with pytest.raises(TaskDeferred) as deferred:
            operator(deferrable=True).execute_complete(context_for(ti), stale, failed, deferred_try=1)

        (_, started) = [e["id"] for e in emulator.executions]
        assert deferred.value.kwargs == {"execution_id": started, "end_time": None, "deferred_try": 2}

    def test_no_timeout_means_no_deadline(self, emulator):
        with pytest.raises(TaskDeferred) as deferred:
            operator(deferrable=True).execute(context_for())

        assert deferred.value.trigger.end_time is None

    def test_the_triggers_event_completes_the_task(self, emulator):
        ti = RecordingTI()
        op = operator(deferrable=True)
        with pytest.raises(TaskDeferred) as deferred:
            op.execute(context_for(ti))

        event = wait_for_event(deferred.value.trigger)
        summary = op.execute_complete(context_for(ti), event, **(deferred.value.kwargs or {}))

        assert event["status"] == "success"
        assert summary["execution_id"] == ti.pushed["execution_id"]
        assert summary["state_ui"] == "Completed"
        assert summary["execution_url"] == ti.pushed["execution_url"]
        json.dumps(summary)

    def test_deferred_and_in_process_waits_return_the_same_summary(self, emulator):
        in_process = operator().execute(context_for())
        op = operator(deferrable=True)
        with pytest.raises(TaskDeferred) as deferred:
            op.execute(context_for())
        deferred_summary = op.execute_complete(
            context_for(), wait_for_event(deferred.value.trigger), **(deferred.value.kwargs or {})
        )

        ignore = {
            "id",
            "execution_id",
            "execution_url",
            "execution_number",
            "display_name",
            *SUMMARY_TIMINGS,
            "net_runtime_ms",
        }
        assert {k: v for k, v in in_process.items() if k not in ignore} == {
            k: v for k, v in deferred_summary.items() if k not in ignore
        }
        assert set(in_process) == set(deferred_summary)


class TestFireAndForget:
    def test_returns_at_once_after_one_request(self, emulator):
        ti = RecordingTI()

        result = operator(playbook_id="slow", wait_for_completion=False).execute(context_for(ti))

        (execution,) = emulator.executions
        assert result == {
            "execution_id": execution["id"],
            "execution_url": url_of(emulator, "slow", execution["id"]),
        }
        assert ti.pushed["execution_id"] == execution["id"]
        assert len(emulator.requests) == 1
        assert emulator.execution(execution["id"])["state_ui"] == "In Progress"

    def test_on_kill_leaves_a_fire_and_forget_execution_running(self, emulator):
        op = operator(playbook_id="slow", wait_for_completion=False)
        op.execute(context_for())

        op.on_kill()

        (execution,) = emulator.executions
        assert emulator.execution(execution["id"])["state_ui"] == "In Progress"


class TestRunSync:
    def test_returns_the_playbook_output(self, emulator):
        result = operator(run_sync=True, timeout=10).execute(context_for())

        assert result["output"] == {"answer": 42}
        assert result["state_ui"] == "Completed"
        json.dumps(result)
        (request,) = emulator.requests
        assert request.query == {"run_sync": "true", "timeout": "10"}

    def test_failing_playbook_fails_the_task_naming_the_execution(self, emulator):
        with pytest.raises(BlinkExecutionFailed) as raised:
            operator(playbook_id="quick-fail", run_sync=True).execute(context_for())

        (execution,) = emulator.executions
        assert execution["id"] in str(raised.value)
        assert "step 'lookup' failed" in str(raised.value)
        assert url_of(emulator, "quick-fail", execution["id"]) in str(raised.value)

    def test_is_never_deferrable(self, emulator, monkeypatch):
        monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "true")

        assert operator(run_sync=True).deferrable is False


def test_on_kill_cancels_the_running_execution(emulator):
    # Airflow calls on_kill from a signal handler while execute() waits; here a second thread plays
    # that part, as soon as the execution exists, and the task runs in the main thread as it would.
    ti = RecordingTI()
    op = operator(playbook_id="slow")

    def kill_once_started() -> None:
        deadline = time.monotonic() + 10
        while "execution_id" not in ti.pushed and time.monotonic() < deadline:
            time.sleep(0.01)
        op.on_kill()

    killer = threading.Thread(target=kill_once_started, daemon=True)
    killer.start()
    with pytest.raises(BlinkExecutionFailed) as raised:
        op.execute(context_for(ti))
    killer.join(timeout=10)

    execution_id = ti.pushed["execution_id"]
    assert emulator.execution(execution_id)["state_ui"] == "Cancelled"
    assert execution_id in str(raised.value)
    assert "Cancelled" in str(raised.value)


def test_on_kill_before_anything_started_sends_nothing(emulator):
    operator().on_kill()

    assert emulator.requests == []


class TestRejectsBadArguments:
    @pytest.mark.parametrize(
        "input_values",
        [
            {"ips": {"203.0.113.7"}},
            {"since": datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)},
            {"obj": object()},
            ["not", "a", "dict"],
        ],
        ids=["set", "datetime", "object", "list"],
    )
    def test_input_values_that_are_not_a_json_object_fail_before_any_request(self, emulator, input_values):
        with pytest.raises(BlinkConfigurationError, match="input_values"):
            operator(input_values=input_values).execute(context_for())

        assert emulator.requests == []

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"playbook_id": ""},
            {"playbook_id": "   "},
            {"run_sync": True, "deferrable": True},
            {"timeout": 0},
            {"timeout": -5},
            {"timeout": "60"},
        ],
        ids=[
            "empty-playbook",
            "blank-playbook",
            "run-sync-deferrable",
            "timeout-0",
            "timeout-negative",
            "timeout-str",
        ],
    )
    def test_inconsistent_arguments_fail_at_construction(self, kwargs):
        with pytest.raises(BlinkConfigurationError):
            operator(**kwargs)

    @pytest.mark.parametrize(
        "poll_interval", [0, -1, "5", None, True], ids=["zero", "negative", "str", "none", "bool"]
    )
    def test_poll_interval_must_be_a_positive_number(self, poll_interval):
        with pytest.raises(BlinkConfigurationError, match="poll_interval"):
            operator(poll_interval=poll_interval)

    def test_configuration_errors_fail_without_retries(self):
        assert issubclass(BlinkConfigurationError, AirflowFailException)


class TestDefaults:
    @pytest.mark.parametrize(
        ("setting", "expected"),
        [("true", True), ("false", False), (None, False)],
        ids=["config-true", "config-false", "config-unset"],
    )
    def test_deferrable_follows_operators_default_deferrable(self, monkeypatch, setting, expected):
        if setting is None:
            monkeypatch.delenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", raising=False)
        else:
            monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", setting)

        assert operator().deferrable is expected

    def test_explicit_deferrable_wins_over_the_config(self, monkeypatch):
        monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "true")

        assert operator(deferrable=False).deferrable is False

    @pytest.mark.parametrize(
        "field",
        ["playbook_id", "workspace_id", "input_values", "event", "runner", "callback"],
    )
    def test_documented_fields_are_templated(self, field):
        assert field in BlinkExecutePlaybookOperator.template_fields

    def test_the_blink_link_is_offered(self):
        assert [link.name for link in BlinkExecutePlaybookOperator.operator_extra_links] == ["Blink"]


class TestExecuteCompleteValidatesTheEvent:
    @pytest.mark.parametrize(
        "event",
        [
            None,
            "success",
            {},
            {"status": "success"},
            {"status": "finished", "execution_id": "exec-1"},
            {"status": "success", "execution_id": 42},
        ],
        ids=["none", "string", "empty", "no-execution-id", "unknown-status", "non-string-id"],
    )
    def test_malformed_event_is_refused(self, emulator, event):
        with pytest.raises(BlinkError, match="Unexpected event"):
            operator().execute_complete(context_for(), event, "exec-1")

    def test_event_for_another_execution_is_refused(self, emulator):
        event = {"status": "success", "execution_id": "exec-2", "execution": {"id": "exec-2"}}

        with pytest.raises(BlinkError, match=r"'exec-2', expected 'exec-1'"):
            operator().execute_complete(context_for(), event, "exec-1")

    @pytest.mark.parametrize(
        ("permanent", "error"),
        [(True, BlinkPermanentError), (False, BlinkError)],
        ids=["permanent", "transient"],
    )
    def test_error_event_raises_with_its_message(self, emulator, permanent, error):
        event = {
            "status": "error",
            "execution_id": "exec-1",
            "execution": None,
            "message": "Blink kept failing",
            "permanent": permanent,
        }

        with pytest.raises(error, match="Blink kept failing") as raised:
            operator().execute_complete(context_for(), event, "exec-1")

        assert isinstance(raised.value, AirflowFailException) is permanent


class TestLogs:
    @pytest.mark.parametrize("wait_for_completion", [True, False], ids=["waiting", "fire-and-forget"])
    def test_the_start_logs_the_executions_url(self, emulator, caplog, capfd, wait_for_completion):
        caplog.set_level(logging.INFO)

        operator(playbook_id="quick-ok", wait_for_completion=wait_for_completion).execute(context_for())

        (execution,) = emulator.executions
        url = url_of(emulator, "quick-ok", execution["id"])
        started = f"Started Blink execution {execution['id']} of playbook quick-ok: {url}"
        assert times_logged(caplog, capfd, started) == 1
