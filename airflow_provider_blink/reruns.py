"""Which failed execution a retry re-runs (``rerun_from_failure``): durable state first, then RQL."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow_provider_blink import api
from airflow_provider_blink.states import ExecutionOutcome, decide_outcome

if TYPE_CHECKING:
    from airflow_provider_blink.hooks.blink import BlinkHook


def previous_failed_execution(
    hook: BlinkHook,
    context: Mapping[str, Any],
    *,
    playbook_id: str,
    workspace_id: str | None,
    body: Mapping[str, Any],
    store_key: str,
    success_states: Collection[str] | None = None,
    failure_states: Collection[str] | None = None,
) -> str | None:
    """
    The failed execution an earlier try of this task started, if any.

    Airflow 3.3+ keeps the id in ``task_state_store``. Without it (older Airflow, ``durable=False``)
    a retry looks in Blink: the newest failed execution of the playbook with the same inputs and
    event, created since the DAG run started.
    """

    def failed(execution: Mapping[str, Any]) -> bool:
        return decide_outcome(execution, success_states, failure_states) is ExecutionOutcome.FAILED

    store = context.get("task_state_store")
    stored = store.get(store_key) if store is not None else None
    if stored:
        execution = hook.get_execution(str(stored), workspace_id=workspace_id)
        return execution["id"] if failed(execution) else None
    ti = context.get("ti")
    started = getattr(context.get("dag_run"), "start_date", None)
    if getattr(ti, "try_number", 1) <= 1 or not isinstance(started, datetime):
        return None
    page = hook.list_executions(
        workspace_id=workspace_id,
        filter={"playbook_id": playbook_id, "created_at": {"$gte": int(started.timestamp() * 1000)}},
        sort=["-created_at"],
        limit=api.MAX_PAGE_SIZE,
    )
    return next(
        (e["id"] for e in page["results"] if api.same_request(body, e) and failed(e)),
        None,
    )
