"""
What an earlier try of a task did about starting its playbook, and the execution it started.

Each try that starts a playbook keeps a record (:class:`StartRecord`) where the task keeps values
for its task instance (:mod:`.tasks.kept`: ``task_state_store`` on Airflow 3.3+, an Airflow Variable
before): before it sends the start, that a start is in flight and since when; after Blink's answer,
the execution's id, or that Blink refused the start (nothing started). A retry, or a cleared task, then
(:func:`previous_execution`):

- uses the recorded execution (it follows one that runs or completed, and starts anew, or re-runs it
  with ``rerun_from_failure``, when it failed);
- looks in Blink only when a start was in flight with no known outcome (the worker died between
  sending it and recording Blink's answer): for a run of the same request created since that start
  was sent, less :data:`~.procedures.CLOCK_SKEW_MS`;
- starts afresh when no earlier try sent a start, or Blink refused it.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_blink.exceptions import BlinkLookupIncomplete
from airflow_provider_blink.hooks.blink import CLOCK_SKEW_MS, drive, matching_runs
from airflow_provider_blink.states import ExecutionOutcome, decide_outcome
from airflow_provider_blink.tasks.kept import KeptValue

if TYPE_CHECKING:
    from airflow_provider_blink.hooks.blink import BlinkHook

#: Outcomes of an earlier try's execution that a retry follows rather than starting another.
FOLLOWED = frozenset({ExecutionOutcome.RUNNING, ExecutionOutcome.SUCCESS})
#: The key of the record in ``task_state_store``, and its Variable's prefix before Airflow 3.3.
KEY = "blink_start"


class StartRecord:
    """
    What this task instance's tries did about starting the playbook, kept across tries (see the module docstring).

    The record holds ``execution_id`` (the last execution a try started or followed) and, while a
    start is in flight, ``sent_at_ms`` (when it was sent, epoch milliseconds).

    :param context: the task's context.
    """

    def __init__(self, context: Any) -> None:
        self._kept = KeptValue(context, KEY)
        self._try_number = getattr(context["ti"], "try_number", None)
        earlier = self._kept.load()
        self._earlier: dict[str, Any] = earlier if isinstance(earlier, dict) else {}

    @property
    def execution_id(self) -> str | None:
        """The execution an earlier try started (or followed), if any."""
        execution_id = self._earlier.get("execution_id")
        return str(execution_id) if execution_id else None

    @property
    def in_flight_since_ms(self) -> int | None:
        """When an earlier try sent a start whose outcome it never recorded; ``None`` if none did."""
        sent = self._earlier.get("sent_at_ms")
        return sent if isinstance(sent, int) and not isinstance(sent, bool) else None

    def sending(self) -> None:
        """Record, before the start is sent, that it is in flight."""
        self._save(execution_id=self.execution_id, sent_at_ms=int(time.time() * 1000))

    def started(self, execution_id: str) -> None:
        """Record the execution this try started, or follows."""
        self._save(execution_id=execution_id)

    def refused(self) -> None:
        """Record that Blink refused this try's start: nothing started."""
        self._save(execution_id=self.execution_id)

    def _save(self, **record: Any) -> None:
        self._earlier = {**record, "try_number": self._try_number}
        self._kept.save(self._earlier)


def previous_execution(
    hook: BlinkHook,
    record: StartRecord,
    *,
    playbook_id: str,
    workspace_id: str | None,
    body: dict[str, Any],
    success_states: Collection[str] | None = None,
    failure_states: Collection[str] | None = None,
) -> dict[str, Any] | None:
    """
    The execution an earlier try of this task started, read with GET; ``None`` when no earlier try started one.

    A start in flight with no known outcome is looked for in Blink: the runs of the same request
    created since it was sent, less :data:`~.procedures.CLOCK_SKEW_MS` for the clocks of Airflow and
    Blink (:func:`~airflow_provider_blink.hooks.blink.matching_runs`), and :func:`earlier_run` picks
    one. When none is found (or none can be told apart), the execution recorded before it counts.
    """
    since_ms = record.in_flight_since_ms
    if since_ms is not None:
        found = _in_flight_run(
            hook, playbook_id, workspace_id, body, since_ms - CLOCK_SKEW_MS, success_states, failure_states
        )
        if found is not None:
            return found
    if record.execution_id:
        return hook.get_execution(record.execution_id, workspace_id=workspace_id)
    return None


def _in_flight_run(
    hook: BlinkHook,
    playbook_id: str,
    workspace_id: str | None,
    body: dict[str, Any],
    since_ms: int,
    success_states: Collection[str] | None,
    failure_states: Collection[str] | None,
) -> dict[str, Any] | None:
    """The run an earlier try's start, whose answer never came, made (see :func:`previous_execution`)."""
    workspace = hook.config.workspace(workspace_id)
    try:
        runs = drive(matching_runs(workspace, playbook_id, body, since_ms, exhaustive=True), hook.call)
    except BlinkLookupIncomplete as exc:
        hook.log.warning(
            "Cannot tell which execution an earlier try started (%s); this try starts a new one.", exc
        )
        return None
    chosen = earlier_run(runs, success_states, failure_states)
    if chosen is None and runs:
        hook.log.warning(
            "%d executions of playbook %s with the same request started since an earlier try sent its start "
            "(%s), several of them running or completed: cannot tell which one an earlier try started, so "
            "this try follows none of them and starts a new one. Check them in Blink.",
            len(runs),
            playbook_id,
            ", ".join(f"{run['id']} ({run.get('state_ui')})" for run in runs[:10]),
        )
    return chosen


def earlier_run(
    runs: Sequence[dict[str, Any]],
    success_states: Collection[str] | None = None,
    failure_states: Collection[str] | None = None,
) -> dict[str, Any] | None:
    """
    Which of ``runs`` (same request, newest first) an earlier try started, or ``None`` if unsure.

    A run a retry would follow (still running, or completed) is taken only when it is the one such
    run and the newest: another one that could be followed may be someone else's (another DAG run,
    another tool, a person), and following it would hand this task a result it did not ask for. Then
    the retry starts a new run, as Airflow's retries do (the caller warns, naming the candidates).
    With none to follow, the newest run (failed) is returned, for ``rerun_from_failure``.
    """
    followable = [run for run in runs if decide_outcome(run, success_states, failure_states) in FOLLOWED]
    if not followable or (len(followable) == 1 and followable[0] is runs[0]):
        return runs[0] if runs else None
    return None
