"""The trigger a task waits for an execution with: deferred to the triggerer, or run in process."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from airflow_provider_blink.exceptions import BlinkError
from airflow_provider_blink.tasks.budget import DEFAULT_ERROR_BUDGET
from airflow_provider_blink.triggers.blink import BlinkExecutionTrigger

#: A wait ends itself this share of ``execution_timeout`` before it (at most :data:`MAX_MARGIN`), so it
#: cancels the execution and fails with its own error before Airflow times the task out.
MARGIN_SHARE = 0.1
MAX_MARGIN = 30.0


@dataclass(frozen=True)
class ExecutionWatch:
    """
    How a task watches an execution: through which connection, how often, and which states end it how.

    :param blink_conn_id: the Airflow connection to Blink.
    :param workspace_id: overrides the connection's workspace.
    :param poll_interval: seconds between polls.
    :param success_states: states that count as success (see :mod:`.states`).
    :param failure_states: states that count as failure.
    :param error_budget: seconds of back-to-back transient errors the wait rides out (:mod:`.budget`).
    """

    blink_conn_id: str
    workspace_id: str | None
    poll_interval: float
    success_states: Collection[str] | None = None
    failure_states: Collection[str] | None = None
    error_budget: float = DEFAULT_ERROR_BUDGET


def deadline(context: Any, timeout: float | None, execution_timeout: timedelta | None) -> float | None:
    """
    When a task's wait ends (Unix time): ``timeout`` from now, or just before ``execution_timeout``.

    Whichever is first; ``execution_timeout`` counts from the try's start, as Airflow counts it.
    Absolute, so a trigger keeps it across triggerer restarts; ``None`` waits indefinitely.
    """
    now = time.time()
    ends = [] if timeout is None else [now + timeout]
    if execution_timeout is not None:
        seconds = execution_timeout.total_seconds()
        ti = context.get("ti") if hasattr(context, "get") else None
        started = getattr(ti, "start_date", None)
        start = started.timestamp() if started is not None else now
        ends.append(start + seconds - min(MAX_MARGIN, MARGIN_SHARE * seconds))
    return min(ends, default=None)


def build_trigger(
    watch: ExecutionWatch, execution_id: str, end_time: float | None, *, cancel_on_kill: bool
) -> BlinkExecutionTrigger:
    """
    The one place a task's settings become a trigger, so operator, sensor and notifier cannot drift apart.

    :param end_time: the absolute deadline (:func:`deadline`); ``None`` waits indefinitely.
    :param cancel_on_kill: the task started the execution: cancel it at the deadline, and when a user
        kills the deferred task.
    """
    return BlinkExecutionTrigger(
        execution_id=execution_id,
        blink_conn_id=watch.blink_conn_id,
        workspace_id=watch.workspace_id,
        poll_interval=watch.poll_interval,
        end_time=end_time,
        success_states=watch.success_states,
        failure_states=watch.failure_states,
        error_budget=watch.error_budget,
        cancel_on_kill=cancel_on_kill,
    )


def deferred_in(context: Any) -> dict[str, Any]:
    """What a task defers with besides its own kwargs: the try that deferred (see :func:`resumed_late`)."""
    return {"deferred_try": context["ti"].try_number}


def resumed_late(context: Any, deferred_try: int | None, log: Any) -> bool:
    """
    Whether Airflow resumed this try with the event of an earlier try's deferral.

    Airflow 3.0 carries a deferred try's ``next_method``/``next_kwargs`` into its retry
    (apache/airflow#56704, fixed in 3.1): the retry would finish from the earlier try's event instead
    of starting over, so a failed playbook would never run again. Logged when it happens.
    """
    late = deferred_try is not None and context["ti"].try_number != deferred_try
    if late:
        log.warning("Resumed with the event of try %s (an Airflow 3.0 bug): starting over", deferred_try)
    return late


def wait_for_event(trigger: BlinkExecutionTrigger) -> dict[str, Any]:
    """Run the trigger in this process until its event: the same wait, without deferring."""

    async def first_event() -> dict[str, Any]:
        async with contextlib.aclosing(trigger.run()) as events:  # type: ignore[type-var]
            async for event in events:
                return event.payload
        raise BlinkError("BlinkExecutionTrigger ended without an event")

    return asyncio.run(first_event())
