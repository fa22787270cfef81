"""
The execution an earlier try of a task started: durable state first, then Blink.

A retry uses it twice: ``rerun_from_failure`` re-runs it when it failed, and a retry on Airflow
without ``task_state_store`` (before 3.3) follows it when it still runs or completed, instead of
starting a second run after a worker crash (a completed playbook is never run again because of
something that failed after it, e.g. reading its output).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow_provider_blink.procedures import CLOCK_SKEW_MS, BlinkLookupIncomplete, drive, matching_runs
from airflow_provider_blink.states import ExecutionOutcome, decide_outcome

if TYPE_CHECKING:
    from airflow_provider_blink.hooks.blink import BlinkHook

#: Outcomes of an earlier try's execution that a retry follows rather than starting another.
FOLLOWED = frozenset({ExecutionOutcome.RUNNING, ExecutionOutcome.SUCCESS})


def followed_outcomes(context: Mapping[str, Any], store_key: str) -> frozenset[ExecutionOutcome]:
    """
    Which outcomes of an earlier try's execution, found in Blink, a durable retry follows.

    - No ``task_state_store`` (Airflow before 3.3): a running or completed one.
    - The store holds an id (3.3+): none; the resumable-job logic decided with that id (it reconnected,
      or the stored run failed and a new one starts).
    - The store is empty (3.3+): a running one. The worker died between Blink's answer and the store
      write, the gap ``ResumableJobMixin`` documents. A completed one is not followed: with
      ``[state_store] clear_on_success`` a cleared task runs its playbook again.
    """
    store = context.get("task_state_store")
    if store is None:
        return FOLLOWED
    if store.get(store_key):
        return frozenset()
    return frozenset({ExecutionOutcome.RUNNING})


def previous_execution(
    hook: BlinkHook,
    context: Mapping[str, Any],
    *,
    playbook_id: str,
    workspace_id: str | None,
    body: Mapping[str, Any],
    store_key: str,
    success_states: Collection[str] | None = None,
    failure_states: Collection[str] | None = None,
) -> dict[str, Any] | None:
    """
    The execution an earlier try of this task started, read with GET; ``None`` on a first try.

    Airflow 3.3+ keeps its id in ``task_state_store``. Without it (older Airflow, ``durable=False``)
    a retry looks in Blink: the runs of the playbook with the same inputs and event created since the
    DAG run started, less :data:`~.procedures.CLOCK_SKEW_MS` for the clocks of Airflow and Blink
    (:func:`~airflow_provider_blink.procedures.matching_runs`), and :func:`earlier_run` picks one.
    Airflow before 3.3 gives a task no record of its earlier tries' start; the DAG run's start precedes
    them all.
    """
    store = context.get("task_state_store")
    stored = store.get(store_key) if store is not None else None
    if stored:
        return hook.get_execution(str(stored), workspace_id=workspace_id)
    ti = context.get("ti")
    started = getattr(context.get("dag_run"), "start_date", None)
    if getattr(ti, "try_number", 1) <= 1 or not isinstance(started, datetime):
        return None
    workspace = hook.config.workspace(workspace_id)
    since_ms = int(started.timestamp() * 1000) - CLOCK_SKEW_MS
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
            "%d executions of playbook %s with the same inputs and event started since the DAG run began "
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
    Which of ``runs`` (same inputs and event, newest first) an earlier try started, or ``None`` if unsure.

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
