"""The event a wait for an execution ends with, and the task's result (or error) from it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_blink.exceptions import (
    BlinkError,
    BlinkExecutionFailed,
    BlinkExecutionTimeout,
    BlinkPermanentError,
)
from airflow_provider_blink.executions import failure_message, summarize
from airflow_provider_blink.states import ExecutionOutcome

if TYPE_CHECKING:
    from airflow_provider_blink.hooks.blink import BlinkHook

EventStatus = Literal["success", "failed", "timeout", "error"]
EVENT_STATUSES: frozenset[str] = frozenset({"success", "failed", "timeout", "error"})
#: Summary fields of the single GET's record that a list item lacks (NOTES.md, "List"; seeds 003, 004).
GET_ONLY_FIELDS = ("playbook_name", "display_name", "duration")


def finished_event(execution: dict[str, Any], outcome: ExecutionOutcome) -> dict[str, Any]:
    """
    The event for an execution that reached a final state (from the trigger, or read by the task).

    Airflow keeps the event in its database: it carries the execution's summary (ids, state,
    timings, error details), never its inputs, event or step data.
    """
    return {
        "status": outcome.value,
        "execution_id": execution["id"],
        "execution": summarize(execution),
        "message": f"Execution {execution['id']!r} {outcome.value}",
        "permanent": False,
    }


def cancel_note(cancelled: bool | BlinkError) -> str:
    """
    How cancelling an execution after its deadline went, for the timeout's message.

    :param cancelled: what the cancel returned (``False``: it had already finished), or its error.
    """
    if isinstance(cancelled, BlinkError):
        return f"cancelling it failed: {cancelled}"
    if cancelled:
        return "cancelled it"
    return "it had already finished when we tried to cancel it (Blink: not running)"


def read_event(event: Any, execution_id: str | None) -> dict[str, Any]:
    """
    Check an event from :class:`.BlinkExecutionTrigger` before acting on it.

    :raises BlinkError: if the event is not one the trigger yields, or is for another execution.
    """
    if (
        not isinstance(event, dict)
        or event.get("status") not in EVENT_STATUSES
        or not isinstance(event.get("execution_id"), str)
    ):
        raise BlinkError(f"Unexpected event from BlinkExecutionTrigger: {event!r}")
    if execution_id is not None and event["execution_id"] != execution_id:
        raise BlinkError(
            f"BlinkExecutionTrigger reported on execution {event['execution_id']!r}, expected {execution_id!r}"
        )
    return event


def execution_from_event(event: Any, execution_id: str | None, url: str | None) -> dict[str, Any]:
    """
    Return the finished execution from a success event; raise what any other event stands for.

    :raises BlinkExecutionFailed: the execution ended in a failure state.
    :raises BlinkExecutionTimeout: the deadline passed first.
    :raises BlinkPermanentError: Blink refused the watch for good (e.g. 401/404).
    :raises BlinkError: Blink stayed unreachable beyond the trigger's error budget.
    """
    event = read_event(event, execution_id)
    if event["status"] == "success":
        return event["execution"]
    if event["status"] == "failed":
        raise BlinkExecutionFailed(failure_message(event["execution"], url))
    if event["status"] == "timeout":
        raise BlinkExecutionTimeout(event["message"])
    raise (BlinkPermanentError if event.get("permanent") else BlinkError)(event["message"])


def whole_summary(
    execution: dict[str, Any], hook: BlinkHook, workspace_id: str | None, log: Any
) -> dict[str, Any]:
    """
    The finished execution's summary as the single GET has it, for the task's result.

    The trigger's batched reads end with a list item, which lacks :data:`GET_ONLY_FIELDS`; the task
    reads them with the single GET, in the worker, so a burst of finishing runs costs the triggerer
    no request. The rest (the state the wait decided on) is kept. If that read fails, the summary
    is kept as it is, with a warning.
    """
    if all(field in execution for field in GET_ONLY_FIELDS):
        return execution
    try:
        record = hook.get_execution(execution["id"], workspace_id=workspace_id)
        return {**execution, **{field: record[field] for field in GET_ONLY_FIELDS if field in record}}
    except BlinkError as exc:
        log.warning(
            "Could not read Blink execution %s in full, its result lacks %s: %s",
            execution["id"],
            ", ".join(f for f in GET_ONLY_FIELDS if f not in execution),
            exc,
        )
        return execution
