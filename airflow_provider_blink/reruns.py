"""
The execution an earlier try of a task started: durable state first, then Blink.

A retry uses it twice: ``rerun_from_failure`` re-runs it when it failed, and a retry on Airflow
without ``task_state_store`` follows it when it completed (a completed playbook is never run again
because of something that failed after it, e.g. reading its output).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow_provider_blink.procedures import BlinkLookupIncomplete, drive, matching_runs

if TYPE_CHECKING:
    from airflow_provider_blink.hooks.blink import BlinkHook


def previous_execution(
    hook: BlinkHook,
    context: Mapping[str, Any],
    *,
    playbook_id: str,
    workspace_id: str | None,
    body: Mapping[str, Any],
    store_key: str,
) -> dict[str, Any] | None:
    """
    The execution an earlier try of this task started, read with GET; ``None`` on a first try.

    Airflow 3.3+ keeps its id in ``task_state_store``. Without it (older Airflow, ``durable=False``)
    a retry looks in Blink: the newest run of the playbook with the same inputs and event, created
    since the DAG run started (:func:`~airflow_provider_blink.procedures.matching_runs`).
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
    since_ms = int(started.timestamp() * 1000)
    try:
        runs = drive(matching_runs(workspace, playbook_id, body, since_ms), hook.call)
    except BlinkLookupIncomplete as exc:
        hook.log.warning("Not looking further for an earlier try's execution: %s", exc)
        return None
    return runs[0] if runs else None
