"""What Blink did, in the task log as Airflow serves it, on every line the suite runs (``older_lines``).

One run of ``blink_e2e_steps`` waits in the triggerer for two multi-step playbooks at once, with
``log_progress`` (a read of the steps every 2 s at most): ``triage-alert`` completes its 4 steps,
``failing-step`` fails at its step 2 (8 s each here, the steps sharing them). Each task's log shows
the trigger's lines as each step started and ended, the steps table at the end with Blink's times, and
a failure's exception names the failing step.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from e2e.harness.blink import BlinkApi
from e2e.harness.deployment import Deployment
from e2e.harness.runs import STEPS_DAG, RunObservation, logged_steps, step_progress, untimed

pytestmark = [pytest.mark.e2e, pytest.mark.older_lines, pytest.mark.timeout(600)]


def test_completed_run_logs_its_steps_as_they_go_and_at_the_end(
    deployment: Deployment, blink: BlinkApi, steps_run: RunObservation
) -> None:
    records, execution_id = _task_log(deployment, blink, steps_run, "triage", "success", "Completed")

    steps = blink.steps(execution_id)
    assert logged_steps(records, execution_id) == [
        [f"step_{k}", "completed", _utc(step["started_at"]), "2.0s"] for k, step in enumerate(steps, 1)
    ]
    assert len(steps) == 4
    _assert_progress_from_the_trigger(deployment, steps_run, "triage", records, execution_id, "2.0s")


def test_failed_run_logs_its_steps_and_names_the_failing_one(
    deployment: Deployment, blink: BlinkApi, steps_run: RunObservation
) -> None:
    records, execution_id = _task_log(deployment, blink, steps_run, "fail_at_step_2", "failed", "Failed")

    first, second = blink.steps(execution_id)  # no step after the failing one
    assert logged_steps(records, execution_id) == [
        ["step_1", "completed", _utc(first["started_at"]), "4.0s"],
        ["step_2", "failed", _utc(second["started_at"]), "4.0s", "step 2: SIEM returned 500"],
    ]
    failures = deployment.api.failure_messages(records)
    assert any(
        message.startswith(
            f"BlinkExecutionFailed: Blink execution {execution_id!r} of playbook 'failing-step'"
        )
        and "Failing step: step_2: step 2: SIEM returned 500." in message
        for message in failures
    ), failures
    _assert_progress_from_the_trigger(deployment, steps_run, "fail_at_step_2", records, execution_id, "4.0s")


def _task_log(
    deployment: Deployment,
    blink: BlinkApi,
    run: RunObservation,
    task_id: str,
    task_state: str,
    blink_state: str,
) -> tuple[list[dict[str, Any]], str]:
    """The task's first try's log as Airflow serves it, and its execution, once both ended as expected."""
    assert run.states[(task_id, -1)][-1] == task_state, deployment.api.describe_run(STEPS_DAG, run.run_id)
    # It waited in a triggerer while Blink ran the playbook.
    assert (task_id, -1) in run.deferrals, run.states
    assert run.deferrals[(task_id, -1)].proves_no_worker_waited, run.deferrals[(task_id, -1)]
    execution_id = run.xcom(task_id, "execution_id")
    assert blink.execution(execution_id)["state_ui"] == blink_state
    return deployment.api.task_log_records(STEPS_DAG, run.run_id, task_id, 1), execution_id


def _assert_progress_from_the_trigger(
    deployment: Deployment,
    run: RunObservation,
    task_id: str,
    records: list[dict[str, Any]],
    execution_id: str,
    step_took: str,
) -> None:
    """The trigger logged step 1 as it started and ended, once each, and its lines are in the task's log."""
    written = [r for lines in deployment.trigger_logs(STEPS_DAG, run.run_id, task_id).values() for r in lines]
    progress = step_progress(written, execution_id)
    assert progress[0].startswith("step_1 started ("), progress
    assert progress.count(f"step_1 ended: completed after {step_took}") == 1, progress
    assert len(progress) == len(set(progress)), progress
    # Airflow serves the trigger's lines with the task's, and they are all the progress the log shows.
    served = [untimed(r) for r in records]
    assert all(untimed(r) in served for r in written if step_progress([r], execution_id)), progress
    assert step_progress(records, execution_id) == progress


def _utc(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
