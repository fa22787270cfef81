"""BlinkNotifier: Airflow callbacks start a Blink playbook, and never hide the task's own outcome."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

import pytest

from airflow_provider_blink.exceptions import BlinkConfigurationError
from airflow_provider_blink.notifications.blink import BlinkNotifier, airflow_inputs

from support.connections import connection_json
from support.dag_runs import register, run, task_instance
from support.emulator import url_of


def failing_task(x: int) -> None:
    raise ValueError(f"disk full on node {x}")


def dag_with_notifier(dag_id: str, notifier: BlinkNotifier, **callbacks: Any) -> Any:
    from airflow_provider_blink.compat import DAG, task

    with DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
        hooks: dict[str, Any] = dict.fromkeys(callbacks, notifier)
        task(task_id="load_table", **hooks)(failing_task)(7)
    return dag


def test_a_failed_task_starts_exactly_one_run_with_the_airflow_context(airflow_db, emulator):
    notifier = BlinkNotifier(playbook_id="isolate-host", input_values={"severity": "{{ dag.dag_id }}-high"})
    dag = dag_with_notifier("blink_notifier_on_failure", notifier, on_failure_callback=True)
    register(dag)

    dag_run = run(dag)

    assert dag_run.state == "failed", "the notifier does not change the task's outcome"
    assert task_instance(dag_run, "load_table").state == "failed"
    (execution,) = emulator.executions
    assert execution["playbook_id"] == "isolate-host"
    inputs = execution["inputs"]
    assert inputs["dag_id"] == "blink_notifier_on_failure"
    assert inputs["task_id"] == "load_table"
    assert inputs["run_id"] == dag_run.run_id
    assert inputs["try_number"] == 1
    assert inputs["exception"] == "ValueError: disk full on node 7"
    assert "blink_notifier_on_failure" in inputs["log_url"]
    assert "load_table" in inputs["log_url"]
    assert inputs["severity"] == "blink_notifier_on_failure-high", "input_values are templated"


def logged(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> str:
    """Log text on either Airflow line (Airflow 3 logs through structlog to stdout, 2.x to caplog)."""
    out, err = capfd.readouterr()
    return caplog.text + out + err


def test_an_unreachable_blink_is_logged_and_never_masks_the_failure(emulator, monkeypatch, caplog, capfd):
    # nothing listens on the discard port
    monkeypatch.setenv("AIRFLOW_CONN_BLINK_DEFAULT", connection_json("http://127.0.0.1:9"))
    notifier = BlinkNotifier(playbook_id="isolate-host")

    with caplog.at_level(logging.ERROR):
        notifier.notify({"run_id": "r1", "exception": ValueError("boom")})

    text = logged(caplog, capfd)
    assert emulator.executions == []
    assert "BlinkNotifier could not run playbook isolate-host" in text
    assert "refused" in text


def test_waiting_logs_the_outcome_and_still_does_not_raise(emulator, caplog, capfd):
    notifier = BlinkNotifier(playbook_id="quick-fail", wait_for_completion=True, poll_interval=0.05)

    with caplog.at_level(logging.INFO):
        notifier.notify({"run_id": "r1"})

    (execution,) = emulator.executions
    assert emulator.execution(execution["id"])["state_ui"] == "Failed"
    assert "ended in state 'Failed'" in logged(caplog, capfd)


def test_only_your_inputs_when_asked(emulator):
    BlinkNotifier(playbook_id="quick-ok", input_values={"a": 1}, include_airflow_context=False).notify(
        {"run_id": "r"}
    )

    assert emulator.executions[0]["inputs"] == {"a": 1}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"playbook_id": ""}, "playbook_id"),
        ({"playbook_id": "pb", "input_values": {"when": {1, 2}}}, "input_values"),
        ({"playbook_id": "pb", "poll_interval": 0}, "poll_interval"),
    ],
    ids=["empty-playbook", "not-json-inputs", "zero-poll-interval"],
)
def test_bad_arguments_fail_when_the_dag_is_parsed(kwargs, message):
    with pytest.raises(BlinkConfigurationError, match=message):
        BlinkNotifier(**kwargs)


def test_airflow_inputs_from_a_dag_level_callback_context():
    class DagRun:
        dag_id = "d"
        run_id = "manual__1"
        state = "failed"

    inputs = airflow_inputs({"dag_run": DagRun(), "reason": "task_failure"})

    assert inputs["dag_id"] == "d"
    assert inputs["run_id"] == "manual__1"
    assert inputs["task_id"] is None
    assert json.loads(json.dumps(inputs)) == inputs


@pytest.mark.parametrize(
    ("map_index", "suffix"), [(-1, "/tasks/t?try_number=2"), (0, "/tasks/t/mapped/0?try_number=2")]
)
def test_the_log_url_is_built_where_the_task_instance_has_none(map_index, suffix):
    """Airflow 3.0's task instance has no ``log_url``: the UI's log page of the try is built (as 3.1+ does)."""

    class TaskInstanceWithoutLogUrl:
        dag_id, run_id, task_id, try_number = "d", "manual__2026-01-01T00:00:00+00:00", "t", 2

    ti = TaskInstanceWithoutLogUrl()
    ti.map_index = map_index  # type: ignore[attr-defined]

    url = airflow_inputs({"ti": ti})["log_url"]

    assert url.endswith(f"/dags/d/runs/manual__2026-01-01T00%3A00%3A00%2B00%3A00{suffix}")


def test_the_start_logs_the_executions_url(emulator, caplog, capfd):
    with caplog.at_level(logging.INFO):
        BlinkNotifier(playbook_id="isolate-host").notify({"run_id": "r1"})

    (execution,) = emulator.executions
    assert f"execution {execution['id']}, {url_of(emulator, 'isolate-host', execution['id'])}" in logged(
        caplog, capfd
    )
