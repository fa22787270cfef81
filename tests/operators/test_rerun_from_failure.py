"""``rerun_from_failure``: a retry asks Blink to re-run the execution the failed try started."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_blink.exceptions import BlinkExecutionFailed
from airflow_provider_blink.operators.blink import BlinkExecutePlaybookOperator
from airflow_provider_blink.testing import DEMO_WORKSPACE, Outcome, ScriptedPlaybook

from support.task_instance import RecordingTI, TaskStateStore, context_for, earlier_try_sent_a_start

FLAKY = ScriptedPlaybook(
    id="flaky",
    name="Fails once",
    workspace_id=DEMO_WORKSPACE,
    outcomes=[
        Outcome(0.2, "Failed", error_details={"message": "step 'isolate' timed out"}),
        Outcome(0.2, "Completed", output={"isolated": True}),
    ],
)


def a_try(try_number: int, store: TaskStateStore | None = None, **kwargs: Any) -> dict[str, Any]:
    """One try; ``store``: where the task instance keeps its record (a fresh one: another task instance)."""
    context = context_for(RecordingTI(try_number=try_number), task_state_store=store or TaskStateStore())
    kwargs = {"playbook_id": "flaky", "input_values": {"host": "h-1"}, "rerun_from_failure": True, **kwargs}
    return BlinkExecutePlaybookOperator(task_id="isolate", poll_interval=0.05, **kwargs).execute(context)


@pytest.fixture
def flaky(emulator):
    emulator.add_playbook(FLAKY)
    return emulator


def test_a_retry_reruns_the_failed_execution_its_earlier_try_recorded(flaky):
    store = TaskStateStore()
    with pytest.raises(BlinkExecutionFailed):
        a_try(1, store)
    failed = flaky.executions[0]["id"]

    result = a_try(2, store)

    assert result["state_ui"] == "Completed"
    assert [e["past_exec_ref"] for e in flaky.executions] == ["", failed]
    assert len([r for r in flaky.requests if r.path.endswith("/executions")]) == 0, "no RQL look-up needed"


def test_a_retry_reruns_the_failed_run_a_start_in_flight_made(flaky):
    """The earlier try died before Blink's answer: the retry finds the run in Blink, and re-runs it."""
    store = TaskStateStore()
    earlier_try_sent_a_start(store)
    failed = BlinkExecutePlaybookOperator(task_id="x", playbook_id="flaky").hook.execute_playbook(
        "flaky", input_values={"host": "h-1"}
    )
    flaky.finish(failed, "Failed")

    a_try(2, store)

    assert flaky.executions[1]["past_exec_ref"] == failed


def test_the_first_try_starts_from_scratch(flaky):
    with pytest.raises(BlinkExecutionFailed):
        a_try(1)

    assert flaky.executions[0]["past_exec_ref"] == ""


def test_a_failed_run_with_other_inputs_is_not_rerun(flaky):
    with pytest.raises(BlinkExecutionFailed):
        a_try(1, input_values={"host": "other"})

    a_try(2)

    assert flaky.executions[1]["past_exec_ref"] == ""


def test_without_the_option_a_retry_starts_from_scratch(flaky):
    with pytest.raises(BlinkExecutionFailed):
        a_try(1, rerun_from_failure=False)

    a_try(2, rerun_from_failure=False)

    assert flaky.executions[1]["past_exec_ref"] == ""


def test_an_explicit_past_exec_ref_wins(flaky):
    with pytest.raises(BlinkExecutionFailed):
        a_try(1)

    a_try(2, past_exec_ref="chosen-by-user")

    assert flaky.executions[1]["past_exec_ref"] == "chosen-by-user"
