"""What a user's action or a crash does to a running Blink execution.

- ``test_mark_failed_cancels_execution``: marking a deferred operator task failed makes Airflow
  (3.3+) cancel its trigger as a user action and call ``on_kill()``; ``BlinkExecutionTrigger`` then
  cancels the execution the operator started.
- ``test_mark_failed_sensor_leaves_execution_alone``: a sensor only watches an execution someone else
  started; marking it failed must not cancel that execution.
- ``test_worker_crash_retry_reattaches``: when the worker running a (non-deferrable) task dies, the
  retry must reattach to the execution the first try started (Airflow 3.3's ``task_state_store`` /
  ``ResumableJobMixin``; before 3.3 the retry finds it in Blink) instead of running the playbook a
  second time.
- ``test_worker_crash_retry_without_durable_starts_its_own_run``: the same crash with
  ``durable=False``: the retry starts a run of its own.
- ``test_deferred_retry_without_durable_starts_its_own_run``: a deferred ``durable=False`` task whose
  first try fails while deferred (its run is cancelled in Blink) is retried: the retry starts its own
  run and defers again. Airflow 3.0 resumes such a retry with the earlier try's event
  (apache/airflow#56704); the operator starts over instead.

The ``older_lines`` ones run on Airflow 2.11 and 3.0 too (``BLINK_E2E_LINE=... scripts/e2e.sh``).
"""

from __future__ import annotations

import signal
from typing import Any

import psutil
import pytest
from e2e.harness.blink import BlinkApi
from e2e.harness.deployment import Deployment
from e2e.harness.runs import RUN_TIMEOUT, start_waiting_run, wait_cancelled_by_user
from e2e.harness.waiting import utcnow, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

#: Airflow gives a trigger's on_kill() 30 s ([triggerer] on_kill_timeout); allow the cancel a bit more.
CANCEL_DEADLINE = 45.0


def test_mark_failed_cancels_execution(deployment: Deployment, blink: BlinkApi) -> None:
    dag_id, task_id, playbook_id = "blink_e2e_deferred_wait", "wait_in_triggerer", "cancel-me"
    api = deployment.api
    run = start_waiting_run(deployment, blink, dag_id, task_id, playbook_id, "mark_failed")
    execution = run.execution
    assert execution["state_ui"] == "In Progress"

    api.set_task_state(dag_id, run.run_id, task_id, "failed")  # what "Mark as failed" in the UI does

    assert api.task_instance(dag_id, run.run_id, task_id)["state"] == "failed"
    # Airflow's part: the triggerer cancels the trigger as a user action and calls its on_kill().
    wait_cancelled_by_user(deployment, dag_id, run.run_id, task_id, timeout=CANCEL_DEADLINE)
    # The provider's part: cancel the execution in Blink.
    try:
        state = blink.wait_ended(execution["id"], timeout=CANCEL_DEADLINE, why="to leave 'In Progress'")
    except TimeoutError:
        pytest.fail(
            f"Blink execution {execution['id']} is still running {CANCEL_DEADLINE:g} s after its task was "
            "marked failed: BlinkExecutionTrigger does not cancel it in on_kill()"
        )
    assert state == "Cancelled"
    assert blink.execution(execution["id"])["cancel_reason"] == "cancelled via API"


def test_mark_failed_sensor_leaves_execution_alone(deployment: Deployment, blink: BlinkApi) -> None:
    dag_id, task_id, playbook_id = "blink_e2e_sensor_wait", "watch", "watched-only"
    run = start_waiting_run(deployment, blink, dag_id, task_id, playbook_id, "mark_sensor_failed")
    execution = run.execution

    deployment.api.set_task_state(dag_id, run.run_id, task_id, "failed")

    wait_cancelled_by_user(deployment, dag_id, run.run_id, task_id, timeout=CANCEL_DEADLINE)
    assert blink.execution(execution["id"])["state_ui"] == "In Progress", "too short a playbook for this test"
    final = blink.wait_ended(execution["id"], timeout=60, why="to finish by itself")
    assert final == "Completed", f"the sensor's kill ended an execution it did not start: {final}"


def crash_worker_mid_wait(
    deployment: Deployment, blink: BlinkApi, dag_id: str, task_id: str, playbook_id: str, *, durable: bool
) -> tuple[str, dict[str, Any]]:
    """Trigger ``dag_id`` to run ``playbook_id`` and SIGKILL the worker process of ``task_id`` once its
    Blink execution runs; returns the run id and that execution."""
    api = deployment.api
    run_id = api.trigger(
        dag_id, run_id=f"e2e__{playbook_id}__{utcnow():%H%M%S%f}", conf={"playbook_id": playbook_id}
    )

    def waiting_in_worker() -> list[psutil.Process] | None:
        ti = api.task_instance(dag_id, run_id, task_id)
        if ti["state"] != "running" or not blink.executions_for_run(playbook_id, run_id):
            return None
        # ResumableJobMixin (3.3+) stores the id right after Blink answers; a crash in that instant
        # (before the store write) cannot be recovered by any provider, so crash after it.
        if durable and deployment.has_task_state_store and not api.task_state(dag_id, run_id, task_id):
            return None
        return deployment.worker_crash_victims(ti) or None

    victims = wait_until(
        f"{task_id} to be running in a worker with its Blink execution started",
        waiting_in_worker,
        timeout=RUN_TIMEOUT,
        diagnose=lambda: api.describe_run(dag_id, run_id),
    )
    [first] = blink.executions_for_run(playbook_id, run_id)
    for proc in victims:  # the worker dies: no on_kill, no cleanup
        print(f"SIGKILL {proc.pid}: {' '.join(proc.cmdline())}")
        proc.send_signal(signal.SIGKILL)
    return run_id, first


def finished_on_try_2(deployment: Deployment, dag_id: str, run_id: str, task_id: str) -> None:
    api = deployment.api
    final = api.wait_for_run(dag_id, run_id, timeout=RUN_TIMEOUT)
    ti = api.task_instance(dag_id, run_id, task_id)
    assert ti["try_number"] == 2, f"the first try should have failed: {api.describe_run(dag_id, run_id)}"
    assert final == "success", api.describe_run(dag_id, run_id)


@pytest.mark.older_lines
def test_worker_crash_retry_reattaches(deployment: Deployment, blink: BlinkApi) -> None:
    dag_id, task_id, playbook_id = "blink_e2e_worker_wait", "wait_in_worker", "crash-wait"
    run_id, first = crash_worker_mid_wait(deployment, blink, dag_id, task_id, playbook_id, durable=True)

    finished_on_try_2(deployment, dag_id, run_id, task_id)
    executions = blink.executions_for_run(playbook_id, run_id)
    assert [e["id"] for e in executions] == [first["id"]], (
        f"the retry started {len(executions) - 1} new Blink execution(s) instead of reattaching to "
        f"{first['id']}: {[(e['id'], e['state_ui']) for e in executions]}"
    )
    assert deployment.api.xcom(dag_id, run_id, task_id, "execution_id") == first["id"]
    if not deployment.has_task_state_store:  # the retry found it in Blink, still running
        log = deployment.api.task_log(dag_id, run_id, task_id, 2)
        assert f"Blink execution {first['id']} of an earlier try is In Progress; following it" in log, log


@pytest.mark.older_lines
def test_worker_crash_retry_without_durable_starts_its_own_run(
    deployment: Deployment, blink: BlinkApi
) -> None:
    dag_id, task_id, playbook_id = "blink_e2e_worker_wait_fresh", "wait_in_worker", "crash-wait-fresh"
    run_id, first = crash_worker_mid_wait(deployment, blink, dag_id, task_id, playbook_id, durable=False)

    finished_on_try_2(deployment, dag_id, run_id, task_id)
    executions = blink.executions_for_run(playbook_id, run_id)
    assert len(executions) == 2, f"durable=False: the retry should start its own run: {executions}"
    assert executions[0]["id"] == first["id"]
    second = executions[1]
    assert second["state_ui"] == "Completed"
    assert deployment.api.xcom(dag_id, run_id, task_id, "execution_id") == second["id"]


@pytest.mark.older_lines
def test_deferred_retry_without_durable_starts_its_own_run(deployment: Deployment, blink: BlinkApi) -> None:
    dag_id, task_id, playbook_id = "blink_e2e_deferred_retry", "wait_in_triggerer", "retry-deferred"
    api = deployment.api
    run = start_waiting_run(deployment, blink, dag_id, task_id, playbook_id, "deferred_retry")
    first = run.execution

    blink.cancel(first["id"])  # someone cancels it in Blink: the first try fails while deferred

    def deferred_again() -> dict[str, Any] | None:
        ti = api.task_instance(dag_id, run.run_id, task_id)
        if ti["state"] in ("failed", "success"):
            raise AssertionError(f"{task_id} ended {ti['state']} without deferring again")
        return ti if ti["try_number"] == 2 and ti["state"] == "deferred" and ti.get("triggerer_job") else None

    wait_until(
        f"{task_id} to be retried and deferred again",
        deferred_again,
        timeout=RUN_TIMEOUT,
        interval=0.2,
        diagnose=lambda: api.describe_run(dag_id, run.run_id),
    )
    executions = blink.executions_for_run(playbook_id, run.run_id)
    assert [e["id"] for e in executions][:1] == [first["id"]]
    assert len(executions) == 2, f"the retry should wait for a run of its own: {executions}"
    second = executions[1]
    assert second["state_ui"] == "In Progress", "the retry deferred for a run that had already ended"

    finished_on_try_2(deployment, dag_id, run.run_id, task_id)
    assert [e["state_ui"] for e in blink.executions_for_run(playbook_id, run.run_id)] == [
        "Cancelled",
        "Completed",
    ]
    assert api.xcom(dag_id, run.run_id, task_id, "execution_id") == second["id"]
    if deployment.resumes_retry_with_earlier_event:  # the bug was there, and the operator started over
        log = api.task_log(dag_id, run.run_id, task_id, 2)
        assert "Resumed with the event of try 1 (an Airflow 3.0 bug): starting over" in log, log
