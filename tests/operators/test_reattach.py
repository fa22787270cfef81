"""
A retry uses what its earlier tries recorded about their start, and looks in Blink only when it must.

Each try records, before it sends the start, that a start is in flight, and after Blink's answer the
execution's id, or that Blink refused (nothing started): in ``task_state_store`` on Airflow 3.3+, in
an Airflow Variable before (``test_worker_crash`` runs real workers on each line). Here the context
holds a store on every line, standing for either. A retry follows the recorded execution while it
runs or once it completed; looks in Blink only for a start in flight with no known outcome (the
runs of the same request created since that start was sent, less a minute of clock skew, each read
with GET and checked); and starts afresh when no start was sent or Blink refused it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from airflow_provider_blink import tasks
from airflow_provider_blink.compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_3_PLUS
from airflow_provider_blink.exceptions import BlinkError
from airflow_provider_blink.operators.blink import BlinkExecutePlaybookOperator
from airflow_provider_blink.testing import Fault

from support.emulator import finishing, new_one, once_read, requests_to, start_directly
from support.task_instance import (
    RecordingTI,
    TaskStateStore,
    context_for,
    earlier_try_sent_a_start,
    earlier_try_started,
)
from support.triggers import AirflowChannel

INPUTS = {"host": "laptop-0042"}


def a_try(
    try_number: int, store: TaskStateStore | None = None, ti: RecordingTI | None = None, **kwargs: Any
) -> dict[str, Any]:
    """One try of the task: a fresh operator and task instance, the task instance's ``store``."""
    context = context_for(
        ti or RecordingTI(try_number=try_number), task_state_store=store or TaskStateStore()
    )
    # timeout: a run nobody finishes fails the try (cancelled) instead of waiting an hour.
    kwargs = {"playbook_id": "until-finished", "input_values": INPUTS, "timeout": 30, **kwargs}
    return BlinkExecutePlaybookOperator(task_id="isolate", poll_interval=0.05, **kwargs).execute(context)


def start(emulator: Any, playbook_id: str = "until-finished", inputs: dict[str, Any] | None = None) -> str:
    """Start a run with the task's request (or ``inputs``), outside the try under test."""
    return start_directly(emulator, playbook_id, {"input_values": INPUTS if inputs is None else inputs})


def starts(emulator: Any) -> int:
    return len(requests_to(emulator, "POST", "/execute"))


def lookups(emulator: Any) -> int:
    return len(requests_to(emulator, "GET", "/executions"))


def sent_at(monkeypatch: pytest.MonkeyPatch, store: TaskStateStore, seconds_from_now: float) -> None:
    """An earlier try sent its start ``seconds_from_now`` (by Airflow's clock) and died before the answer."""
    now = time.time()
    with monkeypatch.context() as patched:
        patched.setattr(tasks.time, "time", lambda: now + seconds_from_now)
        earlier_try_sent_a_start(store)


class TestAStartInFlight:
    """The earlier try sent its start and died before Blink's answer: the retry looks in Blink."""

    def test_a_retry_follows_the_run_it_made(self, emulator):
        store = TaskStateStore()
        earlier_try_sent_a_start(store)
        running = start(emulator)
        ti = RecordingTI(try_number=2)

        with finishing(emulator, once_read(emulator, running, reads=2)) as seen:
            result = a_try(2, store, ti=ti)

        assert seen == ["In Progress"], "the retry met the execution still running"
        assert (result["execution_id"], result["state_ui"]) == (running, "Completed")
        assert result["output"] == {"answer": 42}
        assert starts(emulator) == 1, "no second execution"
        assert lookups(emulator) == 1
        assert ti.pushed["execution_id"] == running, "the link points at the followed run"

    def test_a_completed_run_it_made_is_followed_on_every_line(self, emulator):
        store = TaskStateStore()
        earlier_try_sent_a_start(store)
        done = start(emulator)
        emulator.finish(done)

        result = a_try(2, store)

        assert result["execution_id"] == done
        assert starts(emulator) == 1

    def test_the_run_found_is_recorded_for_the_next_retry(self, emulator):
        store = TaskStateStore()
        earlier_try_sent_a_start(store)
        done = start(emulator)
        emulator.finish(done)
        a_try(2, store)

        result = a_try(3, store)

        assert result["execution_id"] == done
        assert lookups(emulator) == 1, "the third try follows the recorded id"

    @pytest.mark.parametrize(
        "other",
        [
            pytest.param({"inputs": {"host": "another-host"}}, id="other-inputs"),
            pytest.param({"playbook_id": "enrich-ioc", "inputs": INPUTS}, id="other-playbook"),
        ],
    )
    def test_a_run_of_another_request_is_never_followed(self, emulator, other):
        store = TaskStateStore()
        earlier_try_sent_a_start(store)
        foreign = start(emulator, other.get("playbook_id", "until-finished"), other["inputs"])

        with finishing(emulator, new_one(emulator)):
            result = a_try(2, store)

        assert result["execution_id"] != foreign
        assert starts(emulator) == 2

    def test_a_run_created_before_the_start_was_sent_is_not_followed(self, emulator, monkeypatch):
        earlier = start(emulator)
        store = TaskStateStore()
        sent_at(monkeypatch, store, 120)  # beyond the clock-skew allowance

        with finishing(emulator, new_one(emulator)):
            result = a_try(2, store)

        assert result["execution_id"] != earlier

    def test_a_run_blink_dates_just_before_the_start_was_sent_is_followed(self, emulator, monkeypatch):
        """Blink's clock runs behind Airflow's: up to a minute is allowed for."""
        running = start(emulator)
        store = TaskStateStore()
        sent_at(monkeypatch, store, 30)

        with finishing(emulator, once_read(emulator, running, reads=2)):
            result = a_try(2, store)

        assert result["execution_id"] == running
        assert starts(emulator) == 1

    @pytest.mark.parametrize(
        "second_state", ["In Progress", "Completed"], ids=["both-running", "one-completed"]
    )
    def test_with_two_identical_runs_a_retry_follows_neither_and_warns(
        self, emulator, caplog, capsys, second_state
    ):
        store = TaskStateStore()
        earlier_try_sent_a_start(store)
        first, second = start(emulator), start(emulator)
        if second_state == "Completed":
            emulator.finish(second)
        caplog.set_level(logging.WARNING)

        with finishing(emulator, new_one(emulator)):
            result = a_try(2, store)

        assert result["execution_id"] not in (first, second), "neither may be this task's"
        assert starts(emulator) == 3
        logged = [r.getMessage() for r in caplog.records] + capsys.readouterr().out.splitlines()
        assert any(
            "cannot tell which one an earlier try started" in line and first in line for line in logged
        ), logged

    def test_a_newer_failed_run_makes_an_older_running_one_ambiguous(self, emulator):
        """Had the older run been this task's, the earlier try would have followed it, not started the newer."""
        store = TaskStateStore()
        earlier_try_sent_a_start(store)
        older, newer = start(emulator), start(emulator)
        emulator.finish(newer, "Failed")

        with finishing(emulator, new_one(emulator)):
            result = a_try(2, store)

        assert result["execution_id"] not in (older, newer)

    def test_with_more_runs_than_it_reads_a_retry_follows_none_and_warns(
        self, emulator, caplog, capsys, monkeypatch
    ):
        """An identical run among the older, unread ones could be this task's, and the one it read someone else's."""
        emulator.seed_executions("until-finished", 25)  # other inputs, over the last day
        store = TaskStateStore()
        sent_at(monkeypatch, store, -2 * 86_400)
        running = start(emulator)
        caplog.set_level(logging.WARNING)

        with finishing(emulator, new_one(emulator)):
            result = a_try(2, store)

        assert result["execution_id"] != running
        logged = [r.getMessage() for r in caplog.records] + capsys.readouterr().out.splitlines()
        assert any("26 runs of playbook 'until-finished'" in line for line in logged), logged


class TestARecordedExecution:
    """Blink answered the earlier try's start: the retry knows its execution by id and never looks."""

    def test_a_retry_follows_the_running_execution(self, emulator):
        running = start(emulator)
        store = TaskStateStore()
        earlier_try_started(store, running)

        with finishing(emulator, once_read(emulator, running, reads=2)) as seen:
            result = a_try(2, store)

        assert seen == ["In Progress"]
        assert result["execution_id"] == running
        assert starts(emulator) == 1
        assert lookups(emulator) == 0

    def test_a_cleared_task_whose_run_completed_returns_its_result(self, emulator):
        store = TaskStateStore()
        first = a_try(1, store, playbook_id="quick-ok")

        again = a_try(2, store, playbook_id="quick-ok")

        assert again["execution_id"] == first["execution_id"]
        assert again["output"] == {"answer": 42}
        assert starts(emulator) == 1
        assert lookups(emulator) == 0

    @pytest.mark.parametrize("rerun_from_failure", [False, True], ids=["new-run", "rerun_from_failure"])
    def test_a_retry_after_a_failed_execution_starts_another(self, emulator, rerun_from_failure):
        failed = start(emulator)
        emulator.finish(failed, "Failed")
        store = TaskStateStore()
        earlier_try_started(store, failed)

        with finishing(emulator, new_one(emulator)):
            result = a_try(2, store, rerun_from_failure=rerun_from_failure)

        assert result["execution_id"] != failed
        assert starts(emulator) == 2
        assert emulator.execution(result["execution_id"])["past_exec_ref"] == (
            failed if rerun_from_failure else ""
        )


class TestNothingStarted:
    """No earlier start was sent, or Blink refused it: the retry starts afresh, whatever else runs."""

    def test_after_a_refused_start_a_retry_never_adopts_another_clients_run(self, emulator):
        store = TaskStateStore()
        emulator.inject(Fault("execute", "status", status=503, times=None))  # Blink did not act on it
        with pytest.raises(BlinkError, match="503"):
            a_try(1, store)
        emulator.clear_faults()
        someone_elses = start(emulator)  # the same playbook and inputs, meanwhile

        with finishing(emulator, new_one(emulator)):
            result = a_try(2, store)

        assert result["execution_id"] != someone_elses
        assert len(emulator.executions) == 2, "one execution for each client"
        assert lookups(emulator) == 0, "nothing to look for"

    def test_a_retry_whose_earlier_try_sent_no_start_never_adopts_another_clients_run(self, emulator):
        someone_elses = start(emulator)

        with finishing(emulator, new_one(emulator)):
            result = a_try(2, TaskStateStore())

        assert result["execution_id"] != someone_elses
        assert starts(emulator) == 2
        assert lookups(emulator) == 0

    def test_the_first_try_does_not_look(self, emulator):
        start(emulator)

        with finishing(emulator, new_one(emulator)):
            a_try(1)

        assert starts(emulator) == 2
        assert lookups(emulator) == 0, "no list call on a first try"


def test_durable_false_always_starts_a_new_run(emulator, recwarn):
    store = TaskStateStore()
    earlier_try_sent_a_start(store)
    running = start(emulator)

    with finishing(emulator, new_one(emulator)):
        result = a_try(2, store, durable=False)

    assert result["execution_id"] != running
    assert starts(emulator) == 2
    assert not [w for w in recwarn if "durable" in str(w.message)], "durable has an effect on every line"


def test_fire_and_forget_does_not_look(emulator):
    store = TaskStateStore()
    earlier_try_sent_a_start(store)
    start(emulator)

    a_try(2, store, wait_for_completion=False)

    assert starts(emulator) == 2
    assert lookups(emulator) == 0


@pytest.mark.skipif(
    not AIRFLOW_V_3_0_PLUS or AIRFLOW_V_3_3_PLUS,
    reason="a worker keeps its start record in a Variable read through Airflow's channel on 3.0-3.2 only",
)
def test_a_start_record_that_cannot_be_read_stops_the_try_before_it_starts(
    emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Airflow 3.1+'s ``Variable.get`` answers "none" for a failed read: a retry would start a second run."""
    from airflow.sdk.exceptions import AirflowRuntimeError

    AirflowChannel(monkeypatch, failing=frozenset({"GetVariable"}))
    task = BlinkExecutePlaybookOperator(
        task_id="blink", playbook_id="quick-ok", input_values=INPUTS, deferrable=False, poll_interval=0.1
    )
    ti: Any = RecordingTI(try_number=2)
    ti.dag_id, ti.run_id, ti.task_id = "blink_dag", "manual__1", "blink"
    with pytest.raises(AirflowRuntimeError):
        task.execute(context_for(ti, task_state_store=None))
    assert starts(emulator) == 0
