"""The sensor rides out Blink's transient errors for its error budget, in poke and reschedule mode alike.

A transient error (Blink down, 429, 5xx, after the hook's own retries) makes a poke return "not
yet"; the wait fails once Blink has kept failing for ``error_budget`` seconds, as a transient
failure (the task's retries apply), and at once on a permanent error (4xx), each saying which it
was. In reschedule mode every poke is a new run of the task instance: the streak is kept across
them (``task_state_store`` on Airflow 3.3+, a Variable before: :class:`.tasks.StreakStore`).
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

import pytest

from airflow_provider_blink.compat import AirflowFailException, AirflowSkipException, PokeReturnValue
from airflow_provider_blink.exceptions import BlinkError, BlinkPermanentError
from airflow_provider_blink.operators.blink import BlinkExecutePlaybookOperator
from airflow_provider_blink.sensors.blink import BlinkExecutionSensor
from airflow_provider_blink.tasks import STREAK_KEY
from airflow_provider_blink.testing import Fault

from support.dag_runs import register, reschedules, run, task_instance, xcom
from support.emulator import finished_once_read, requests_to
from support.emulator import start_directly as start
from support.outages import outage_once_waiting
from support.task_instance import RecordingTI, TaskStateStore, context_for

#: The hook's attempts per read with the tests' connection (``retry_limit`` 2).
ATTEMPTS = 3


def sensor(execution_id: str, **kwargs: Any) -> BlinkExecutionSensor:
    kwargs = {"task_id": "wait", "poke_interval": 0.1, "timeout": 30, **kwargs}
    return BlinkExecutionSensor(execution_id=execution_id, **kwargs)


def blink_down(emulator: Any, times: int | None = ATTEMPTS) -> None:
    """Blink answers 503 to the next ``times`` reads (one poke's attempts by default)."""
    emulator.inject(Fault("get", "status", status=503, times=times))


class TestPoke:
    def test_a_transient_error_is_ridden_out_and_the_next_answer_counts(self, emulator):
        execution_id = start(emulator, "slow")
        task = sensor(execution_id)
        blink_down(emulator)

        assert task.poke(context_for()) is False, "not yet: Blink failed, the budget is not spent"

        emulator.finish(execution_id, "Completed")
        done = task.poke(context_for())
        assert isinstance(done, PokeReturnValue)
        assert done.xcom_value is not None
        assert done.xcom_value["state_ui"] == "Completed"
        assert [r.status for r in requests_to(emulator, "GET", execution_id)] == [503] * ATTEMPTS + [200]

    def test_a_permanent_error_fails_at_once_without_task_retries_saying_so(self, emulator):
        execution_id = start(emulator, "slow")

        with pytest.raises(BlinkPermanentError) as raised:
            sensor(execution_id, workspace_id="other-workspace").poke(context_for())

        assert isinstance(raised.value, AirflowFailException)
        assert "failed with a permanent error (not retried)" in str(raised.value)
        assert "HTTP 404" in str(raised.value)
        assert len(requests_to(emulator, "GET", execution_id)) == 1

    def test_a_spent_budget_fails_as_transient_with_the_last_error(self, emulator):
        execution_id = start(emulator, "slow")
        task = sensor(execution_id, error_budget=0.3)
        blink_down(emulator, times=None)

        assert task.poke(context_for()) is False
        time.sleep(0.3)  # the streak outlasts the budget
        with pytest.raises(BlinkError) as raised:
            task.poke(context_for())

        assert not isinstance(raised.value, AirflowFailException), (
            "a transient outage keeps the task's retries"
        )
        message = str(raised.value)
        assert f"Blink kept failing for 0.3s while watching execution {execution_id!r}" in message
        assert "HTTP 503" in message, "the last error is quoted"
        assert "transient errors: the task's retries apply" in message

    def test_soft_fail_skips_when_the_budget_is_spent(self, emulator):
        execution_id = start(emulator, "slow")
        blink_down(emulator)

        with pytest.raises(AirflowSkipException, match="Blink kept failing"):
            sensor(execution_id, error_budget=0, soft_fail=True).poke(context_for())

    def test_a_long_retry_after_is_honoured_between_pokes(self, emulator, monkeypatch):
        # The one-call rule (retries.MAX_RETRY_AFTER, 120 s) scaled down to 0.2 s: a 5 s Retry-After
        # is longer than one call waits, and the wait honours it by not reading before then.
        monkeypatch.setattr("airflow_provider_blink.hooks.transport.MAX_RETRY_AFTER", 0.2)
        execution_id = start(emulator, "slow")
        task = sensor(execution_id)
        emulator.inject(Fault("get", "status", status=429, retry_after=5))

        assert task.poke(context_for()) is False
        assert task.poke(context_for()) is False

        assert [r.status for r in requests_to(emulator, "GET", execution_id)] == [429], (
            "one call, not retried, and no read before Blink's Retry-After"
        )

    def test_a_retry_after_past_the_budget_fails_as_transient(self, emulator, monkeypatch):
        monkeypatch.setattr("airflow_provider_blink.hooks.transport.MAX_RETRY_AFTER", 0.2)
        execution_id = start(emulator, "slow")
        emulator.inject(Fault("get", "status", status=429, retry_after=5))

        with pytest.raises(BlinkError) as raised:
            sensor(execution_id, error_budget=2).poke(context_for())

        assert not isinstance(raised.value, AirflowFailException)
        assert "Blink asked to wait 5s (Retry-After)" in str(raised.value)
        assert "past the wait's error budget" in str(raised.value)


class TestReschedule:
    """Each poke is a new run of the task: the streak lives in the store, kept with its try."""

    def test_a_streak_from_earlier_runs_counts_against_the_budget(self, emulator):
        execution_id = start(emulator, "slow")
        store = TaskStateStore(
            **{STREAK_KEY: {"failing_since": time.time() - 301, "not_before": 0, "try_number": 1}}
        )
        blink_down(emulator)

        with pytest.raises(BlinkError, match="Blink kept failing for 300s"):
            sensor(execution_id, mode="reschedule").poke(context_for(task_state_store=store))

        assert STREAK_KEY not in store.values, "the wait ended: nothing is left behind"

    def test_a_streak_of_an_earlier_try_is_not_this_trys(self, emulator):
        execution_id = start(emulator, "slow")
        store = TaskStateStore(
            **{STREAK_KEY: {"failing_since": time.time() - 301, "not_before": 0, "try_number": 1}}
        )
        blink_down(emulator)
        context = context_for(RecordingTI(try_number=2), task_state_store=store)

        assert sensor(execution_id, mode="reschedule").poke(context) is False

        assert store.values[STREAK_KEY]["try_number"] == 2
        assert store.values[STREAK_KEY]["failing_since"] > time.time() - 60, "a fresh streak"

    def test_an_answer_ends_the_streak(self, emulator):
        execution_id = start(emulator, "slow")
        store = TaskStateStore()
        blink_down(emulator)
        task = sensor(execution_id, mode="reschedule")

        assert task.poke(context_for(task_state_store=store)) is False
        assert STREAK_KEY in store.values
        assert task.poke(context_for(task_state_store=store)) is False  # Blink answers: still running

        assert STREAK_KEY not in store.values


# -- through real Airflow: dag.test() on every line ---------------------------------------------------


def sensor_dag(
    dag_id: str, failures: list[BaseException], playbook_id: str = "slow", **sensor_kwargs: Any
) -> Any:
    """Start a playbook (fire and forget), then wait for it with the sensor."""
    from airflow_provider_blink.compat import DAG

    with DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
        begin = BlinkExecutePlaybookOperator(
            task_id="start", playbook_id=playbook_id, wait_for_completion=False
        )
        begin >> BlinkExecutionSensor(
            task_id="wait",
            execution_id="{{ ti.xcom_pull(task_ids='start', key='execution_id') }}",
            deferrable=False,
            retry_delay=timedelta(0),
            on_failure_callback=lambda context: failures.append(context["exception"]),
            **{"poke_interval": 0.2, "timeout": 60, **sensor_kwargs},
        )
    register(dag)
    return dag


def streaks_left() -> list[str]:
    """Variables the sensor kept a streak in (Airflow before 3.3); none once a wait has ended."""
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session

    with create_session() as session:
        return [v.key for v in session.query(Variable).all() if v.key.startswith(STREAK_KEY)]


@pytest.mark.parametrize("mode", ["poke", "reschedule"])
def test_an_outage_within_the_budget_is_ridden_out(airflow_db, emulator, fresh_sensor_each_run, mode):
    failures: list[BaseException] = []
    dag = sensor_dag(f"blink_sensor_rides_out_{mode}", failures, "held", mode=mode, error_budget=30)
    # Read once (running), then a whole poke's attempts fail, then read once more (running), then done.
    outage = Fault("get", "status", status=503, times=ATTEMPTS)

    with (
        outage_once_waiting(emulator, outage),
        finished_once_read(emulator, {"held": ("Completed", None)}, 5),
    ):
        dag_run = run(dag)

    assert failures == []
    assert dag_run.state == "success"
    (execution,) = emulator.executions
    statuses = [r.status for r in requests_to(emulator, "GET", execution["id"])]
    assert statuses[: 2 + ATTEMPTS] == [200] + [503] * ATTEMPTS + [200], (
        "a poke met the outage and the wait went on"
    )
    assert xcom(dag_run, "wait")["state_ui"] == "Completed"
    assert streaks_left() == []


def test_the_budget_spans_reschedules(airflow_db, emulator, fresh_sensor_each_run):
    """
    Without the streak kept across runs, every run would see a first error and the wait would go
    on until the sensor's timeout (AirflowSensorTimeout); kept, it ends when the budget is spent.
    """
    failures: list[BaseException] = []
    dag = sensor_dag(
        "blink_sensor_budget_spans_reschedules", failures, mode="reschedule", error_budget=1.5, timeout=20
    )

    with outage_once_waiting(emulator):
        dag_run = run(dag)

    assert dag_run.state == "failed"
    (failure,) = failures
    assert isinstance(failure, BlinkError)
    assert not isinstance(failure, AirflowFailException), "a transient outage keeps the task's retries"
    assert "Blink kept failing for 1.5s" in str(failure)
    assert "HTTP 503" in str(failure)
    assert reschedules(dag_run, "wait") >= 2, (
        "the streak began in one run of the sensor and ended in a later one"
    )
    assert task_instance(dag_run, "wait").try_number == 1
    assert streaks_left() == []
