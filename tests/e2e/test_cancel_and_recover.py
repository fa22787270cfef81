"""What a user's action or a crash does to a running Blink execution.

- ``test_mark_failed_cancels_execution``: marking a deferred operator task failed makes Airflow
  (3.3+) cancel its trigger as a user action and call ``on_kill()``; ``BlinkExecutionTrigger`` then
  cancels the execution the operator started.
- ``test_mark_failed_sensor_leaves_execution_alone``: a sensor only watches an execution someone else
  started; marking it failed must not cancel that execution.
- ``test_worker_crash_retry_reattaches``: when the worker running a (non-deferrable) task dies, the
  retry must reattach to the execution the first try started (Airflow 3.3's ``task_state_store`` /
  ``ResumableJobMixin``) instead of running the playbook a second time. Fails until the operator
  does that.
"""

from __future__ import annotations

import signal
from typing import Any

import psutil
import pytest
from e2e.harness.blink import BlinkApi
from e2e.harness.deployment import Deployment
from e2e.harness.processes import task_runners
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


def test_worker_crash_retry_reattaches(deployment: Deployment, blink: BlinkApi) -> None:
    dag_id, task_id, playbook_id = "blink_e2e_worker_wait", "wait_in_worker", "crash-wait"
    api = deployment.api
    run_id = api.trigger(
        dag_id, run_id=f"e2e__worker_crash__{utcnow():%H%M%S%f}", conf={"playbook_id": playbook_id}
    )

    def waiting_in_worker() -> tuple[dict[str, Any], list[psutil.Process]] | None:
        ti = api.task_instance(dag_id, run_id, task_id)
        if ti["state"] != "running" or not blink.executions_for_run(playbook_id, run_id):
            return None
        # ResumableJobMixin stores the id right after Blink answers; a crash in that instant
        # (before the store write) cannot be recovered by any provider, so crash after it.
        if not api.task_state(dag_id, run_id, task_id):
            return None
        runners = task_runners(ti["id"])
        return (ti, runners) if runners else None

    ti, runners = wait_until(
        f"{task_id} to be running in a worker with its Blink execution started",
        waiting_in_worker,
        timeout=RUN_TIMEOUT,
        diagnose=lambda: api.describe_run(dag_id, run_id),
    )
    [first] = blink.executions_for_run(playbook_id, run_id)
    for proc in runners:  # the worker dies: no on_kill, no cleanup
        print(f"SIGKILL {proc.pid}: {' '.join(proc.cmdline())}")
        proc.send_signal(signal.SIGKILL)

    final = api.wait_for_run(dag_id, run_id, timeout=RUN_TIMEOUT)
    ti = api.task_instance(dag_id, run_id, task_id)
    assert ti["try_number"] == 2, f"the crash should have cost one try: {api.describe_run(dag_id, run_id)}"
    assert final == "success", api.describe_run(dag_id, run_id)
    executions = blink.executions_for_run(playbook_id, run_id)
    assert [e["id"] for e in executions] == [first["id"]], (
        f"the retry started {len(executions) - 1} new Blink execution(s) instead of reattaching to "
        f"{first['id']}: {[(e['id'], e['state_ui']) for e in executions]}"
    )
