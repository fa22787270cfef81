"""
Without ``task_state_store`` (Airflow before 3.3), a retry finds the execution an earlier try started.

The retry asks Blink for the playbook's runs since the DAG run started (less a minute of clock skew),
reads each with GET to compare inputs and event, and follows the one an earlier try started while it
runs or once it completed; a failed one is started anew (or re-run, ``rerun_from_failure``). When
it cannot tell which run is its own, it follows none. The same code runs on every line whenever the
context has no store, so these tests run everywhere; ``test_worker_crash`` kills real Airflow workers.
On Airflow 3.3 the same lookup covers a store left empty by a crash just after the start.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_blink.compat import AIRFLOW_V_3_3_PLUS
from airflow_provider_blink.operators.blink import BlinkExecutePlaybookOperator

from support.emulator import finishing, new_one, once_read, requests_to
from support.task_instance import RecordingTI, TaskStateStore, context_for

INPUTS = {"host": "laptop-0042"}


class DagRun:
    """The DAG run in a task's context: only its start matters here."""

    def __init__(self, start_date: datetime | None = None) -> None:
        self.start_date = start_date or datetime.now(timezone.utc) - timedelta(minutes=1)


def a_try(
    try_number: int, dag_run: DagRun | None = None, ti: RecordingTI | None = None, **kwargs: Any
) -> dict[str, Any]:
    """One try of the task: a fresh operator, a task instance at ``try_number``, no task_state_store."""
    context = context_for(ti or RecordingTI(try_number=try_number), dag_run=dag_run or DagRun())
    # timeout: a run nobody finishes fails the try (cancelled) instead of waiting an hour.
    kwargs = {"playbook_id": "until-finished", "input_values": INPUTS, "timeout": 30, **kwargs}
    return BlinkExecutePlaybookOperator(task_id="isolate", poll_interval=0.05, **kwargs).execute(context)


def start(emulator: Any, playbook_id: str = "until-finished", inputs: dict[str, Any] | None = None) -> str:
    """Start a run the way an earlier try did (same request), outside the try under test."""
    op = BlinkExecutePlaybookOperator(task_id="earlier", playbook_id=playbook_id)
    return op.hook.execute_playbook(playbook_id, input_values=INPUTS if inputs is None else inputs)


def starts(emulator: Any) -> int:
    return len(requests_to(emulator, "POST", "/execute"))


def test_a_retry_follows_the_running_execution_of_an_earlier_try(emulator):
    running = start(emulator)
    ti = RecordingTI(try_number=2)

    with finishing(emulator, once_read(emulator, running, reads=2)) as seen:
        result = a_try(2, ti=ti)

    assert seen == ["In Progress"], "the retry met the execution still running"
    assert (result["execution_id"], result["state_ui"]) == (running, "Completed")
    assert result["output"] == {"answer": 42}
    assert starts(emulator) == 1, "no second execution"
    assert ti.pushed["execution_id"] == running, "the link points at the followed run"


def test_a_retry_follows_a_completed_execution_without_running_it_again(emulator):
    done = start(emulator)
    emulator.finish(done)

    result = a_try(2)

    assert result["execution_id"] == done
    assert starts(emulator) == 1


@pytest.mark.parametrize("rerun_from_failure", [False, True], ids=["new-run", "rerun_from_failure"])
def test_a_retry_after_a_failed_execution_starts_another(emulator, rerun_from_failure):
    failed = start(emulator)
    emulator.finish(failed, "Failed")

    with finishing(emulator, new_one(emulator)):
        result = a_try(2, rerun_from_failure=rerun_from_failure)

    assert result["execution_id"] != failed
    assert starts(emulator) == 2
    assert emulator.execution(result["execution_id"])["past_exec_ref"] == (
        failed if rerun_from_failure else ""
    )


def test_the_first_try_does_not_look(emulator):
    start(emulator)

    with finishing(emulator, new_one(emulator)):
        a_try(1)

    assert starts(emulator) == 2
    assert not requests_to(emulator, "GET", "/executions"), "no list call on a first try"


@pytest.mark.parametrize(
    "other",
    [
        pytest.param({"inputs": {"host": "another-host"}}, id="other-inputs"),
        pytest.param({"playbook_id": "enrich-ioc", "inputs": INPUTS}, id="other-playbook"),
    ],
)
def test_a_run_of_another_request_is_never_followed(emulator, other):
    foreign = start(emulator, other.get("playbook_id", "until-finished"), other["inputs"])

    with finishing(emulator, new_one(emulator)):
        result = a_try(2)

    assert result["execution_id"] != foreign
    assert starts(emulator) == 2


def test_a_run_started_before_the_dag_run_is_not_followed(emulator):
    earlier = start(emulator)
    dag_run = DagRun(datetime.now(timezone.utc) + timedelta(minutes=2))  # beyond the clock-skew allowance

    with finishing(emulator, new_one(emulator)):
        result = a_try(2, dag_run=dag_run)

    assert result["execution_id"] != earlier


def test_a_run_blink_dates_just_before_the_dag_run_is_followed(emulator):
    """Blink's clock runs behind Airflow's: up to a minute is allowed for."""
    running = start(emulator)
    dag_run = DagRun(datetime.now(timezone.utc) + timedelta(seconds=30))

    with finishing(emulator, once_read(emulator, running, reads=2)):
        result = a_try(2, dag_run=dag_run)

    assert result["execution_id"] == running
    assert starts(emulator) == 1


@pytest.mark.parametrize("second_state", ["In Progress", "Completed"], ids=["both-running", "one-completed"])
def test_with_two_identical_runs_a_retry_follows_neither_and_warns(emulator, caplog, capsys, second_state):
    first, second = start(emulator), start(emulator)
    if second_state == "Completed":
        emulator.finish(second)
    caplog.set_level(logging.WARNING)

    with finishing(emulator, new_one(emulator)):
        result = a_try(2)

    assert result["execution_id"] not in (first, second), "neither may be this task's"
    assert starts(emulator) == 3
    logged = [r.getMessage() for r in caplog.records] + capsys.readouterr().out.splitlines()
    assert any("cannot tell which one an earlier try started" in line and first in line for line in logged), (
        logged
    )


def test_a_newer_failed_run_makes_an_older_running_one_ambiguous(emulator):
    """Had the older run been this task's, the earlier try would have followed it, not started the newer."""
    older, newer = start(emulator), start(emulator)
    emulator.finish(newer, "Failed")

    with finishing(emulator, new_one(emulator)):
        result = a_try(2)

    assert result["execution_id"] not in (older, newer)


def test_with_more_runs_than_it_reads_a_retry_follows_none_and_warns(emulator, caplog, capsys):
    """An identical run among the older, unread ones could be this task's, and the one it read someone else's."""
    emulator.seed_executions("until-finished", 25)  # other inputs, over the last day
    running = start(emulator)
    caplog.set_level(logging.WARNING)

    with finishing(emulator, new_one(emulator)):
        result = a_try(2, dag_run=DagRun(datetime.now(timezone.utc) - timedelta(days=2)))

    assert result["execution_id"] != running
    logged = [r.getMessage() for r in caplog.records] + capsys.readouterr().out.splitlines()
    assert any("26 runs of playbook 'until-finished'" in line for line in logged), logged


def test_durable_false_always_starts_a_new_run(emulator, recwarn):
    running = start(emulator)

    with finishing(emulator, new_one(emulator)):
        result = a_try(2, durable=False)

    assert result["execution_id"] != running
    assert starts(emulator) == 2
    assert not [w for w in recwarn if "durable" in str(w.message)], "durable has an effect on every line"


def test_fire_and_forget_does_not_look(emulator):
    start(emulator)

    a_try(2, wait_for_completion=False)

    assert starts(emulator) == 2
    assert not requests_to(emulator, "GET", "/executions")


@pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="task_state_store arrived in Airflow 3.3")
class TestAnEmptyTaskStateStore:
    """Airflow 3.3: the worker died after Blink answered the start, before the id reached the store."""

    def test_a_retry_follows_the_running_execution(self, emulator):
        running = start(emulator)
        store = TaskStateStore()
        context = context_for(RecordingTI(try_number=2), dag_run=DagRun(), task_state_store=store)
        op = BlinkExecutePlaybookOperator(
            task_id="isolate",
            playbook_id="until-finished",
            input_values=INPUTS,
            poll_interval=0.05,
            timeout=30,
        )

        with finishing(emulator, once_read(emulator, running, reads=2)) as seen:
            result = op.execute(context)

        assert seen == ["In Progress"]
        assert result["execution_id"] == running
        assert store.values[op.external_id_key] == running, "kept for the next retry"
        assert starts(emulator) == 1

    def test_a_completed_one_is_run_again(self, emulator):
        """What ``[state_store] clear_on_success`` asks for: a cleared task runs its playbook again."""
        done = start(emulator)
        emulator.finish(done)
        context = context_for(RecordingTI(try_number=2), dag_run=DagRun(), task_state_store=TaskStateStore())

        with finishing(emulator, new_one(emulator)):
            result = BlinkExecutePlaybookOperator(
                task_id="isolate",
                playbook_id="until-finished",
                input_values=INPUTS,
                poll_interval=0.05,
                timeout=30,
            ).execute(context)

        assert result["execution_id"] != done
        assert starts(emulator) == 2
