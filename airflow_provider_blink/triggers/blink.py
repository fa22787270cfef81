"""BlinkExecutionTrigger: waits for a Blink execution to finish without holding a worker slot."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Collection
from typing import Any, Literal, Protocol

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_blink.connection_form import DEFAULT_CONN_ID
from airflow_provider_blink.exceptions import (
    BlinkError,
    BlinkExecutionFailed,
    BlinkExecutionTimeout,
    BlinkPermanentError,
)
from airflow_provider_blink.executions import failure_message
from airflow_provider_blink.hooks.blink import BlinkAsyncClient, BlinkHook
from airflow_provider_blink.retries import is_retryable
from airflow_provider_blink.states import ExecutionOutcome, decide_outcome

EventStatus = Literal["success", "failed", "timeout", "error"]
EVENT_STATUSES: frozenset[str] = frozenset({"success", "failed", "timeout", "error"})
#: Seconds of back-to-back transient failures (Blink down, 5xx) the trigger rides out.
DEFAULT_ERROR_BUDGET = 300.0


class BlinkExecutionTrigger(BaseTrigger):
    """
    Poll a Blink execution until it finishes, the deadline passes, or Blink fails for good.

    Yields exactly one event: ``{"status": "success"|"failed"|"timeout"|"error", "execution_id",
    "execution" (the last record read, or None), "message", "permanent"}``. Serialises ids,
    the connection id and plain settings only; the API key is read from the connection in
    :meth:`run`.

    :param execution_id: the execution to watch.
    :param blink_conn_id: the Airflow connection to Blink.
    :param workspace_id: overrides the connection's workspace.
    :param poll_interval: seconds between polls.
    :param end_time: absolute deadline (Unix time in seconds); ``None`` waits indefinitely.
    :param success_states: states that count as success (see :mod:`.states`).
    :param failure_states: states that count as failure.
    :param error_budget: seconds of consecutive transient errors tolerated before giving up.
    :param cancel_on_kill: cancel the execution when a user kills the deferred task (mark
        failed/success, clear; Airflow 3.3+). The operator, which started the run, sets it; the
        sensor, which only watches, does not. Never on a triggerer restart.
    """

    def __init__(
        self,
        *,
        execution_id: str,
        blink_conn_id: str = DEFAULT_CONN_ID,
        workspace_id: str | None = None,
        poll_interval: float = 10.0,
        end_time: float | None = None,
        success_states: Collection[str] | None = None,
        failure_states: Collection[str] | None = None,
        error_budget: float = DEFAULT_ERROR_BUDGET,
        cancel_on_kill: bool = False,
    ) -> None:
        super().__init__()
        self.execution_id = execution_id
        self.blink_conn_id = blink_conn_id
        self.workspace_id = workspace_id
        self.poll_interval = poll_interval
        self.end_time = end_time
        self.success_states = list(success_states) if success_states is not None else None
        self.failure_states = list(failure_states) if failure_states is not None else None
        self.error_budget = error_budget
        self.cancel_on_kill = cancel_on_kill

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "airflow_provider_blink.triggers.blink.BlinkExecutionTrigger",
            {
                "execution_id": self.execution_id,
                "blink_conn_id": self.blink_conn_id,
                "workspace_id": self.workspace_id,
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
                "success_states": self.success_states,
                "failure_states": self.failure_states,
                "error_budget": self.error_budget,
                "cancel_on_kill": self.cancel_on_kill,
            },
        )

    def __repr__(self) -> str:
        return f"<BlinkExecutionTrigger execution_id={self.execution_id!r} conn={self.blink_conn_id!r}>"

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            async with BlinkHook(self.blink_conn_id).async_client(shared=True) as client:
                event = await self._watch(client)
        except BlinkError as exc:  # the connection itself is unusable (no key, bad URL ...)
            event = self._event("error", None, str(exc), permanent=True)
        yield TriggerEvent(event)

    async def _watch(self, client: BlinkAsyncClient) -> dict[str, Any]:
        # The task checked the execution just before deferring, so the first poll waits an interval:
        # no wasted request, and no event in the instant after deferral (apache/airflow#72716).
        execution: dict[str, Any] | None = None
        failing_since: float | None = None
        polled = False
        while True:
            remaining = self._remaining()
            if polled and remaining is not None and remaining <= 0:
                return self._deadline_passed(execution)
            await asyncio.sleep(
                self.poll_interval if remaining is None else max(0.0, min(self.poll_interval, remaining))
            )
            polled = True
            try:
                execution = await asyncio.wait_for(
                    client.get_execution(self.execution_id, workspace_id=self.workspace_id),
                    self._read_timeout(),
                )
                outcome = decide_outcome(execution, self.success_states, self.failure_states)
                failing_since = None
            except asyncio.TimeoutError:  # the deadline passed while Blink was slow to answer
                return self._deadline_passed(execution)
            except BlinkError as exc:
                if not is_retryable(exc, idempotent=True):
                    return self._event("error", execution, str(exc), permanent=True)
                failing_since = failing_since or time.time()
                if time.time() - failing_since >= self.error_budget:
                    return self._event(
                        "error",
                        execution,
                        f"Blink kept failing for {self.error_budget:g}s while watching execution "
                        f"{self.execution_id!r}; last error: {exc}",
                        permanent=False,
                    )
                self.log.warning(
                    "Could not read Blink execution %s, will try again: %s", self.execution_id, exc
                )
            else:
                if outcome is not ExecutionOutcome.RUNNING:
                    return finished_event(execution, outcome)

    def _remaining(self) -> float | None:
        return None if self.end_time is None else self.end_time - time.time()

    def _read_timeout(self) -> float | None:
        """A read may run past the deadline by one poll interval, so a finish just in time still counts."""
        remaining = self._remaining()
        return None if remaining is None else max(remaining, 0.0) + self.poll_interval

    def _deadline_passed(self, execution: dict[str, Any] | None) -> dict[str, Any]:
        return self._event(
            "timeout", execution, f"Execution {self.execution_id!r} did not finish before the deadline"
        )

    async def on_kill(self) -> None:
        """Cancel the execution when a user kills the deferred task (Airflow 3.3+ calls this only then)."""
        if not self.cancel_on_kill:
            return
        async with BlinkHook(self.blink_conn_id).async_client() as client:
            cancelled = await client.cancel_execution(self.execution_id, workspace_id=self.workspace_id)
        self.log.info(
            "Deferred task killed: Blink execution %s %s",
            self.execution_id,
            "cancelled" if cancelled else "had already finished",
        )

    def _event(
        self, status: EventStatus, execution: dict[str, Any] | None, message: str, *, permanent: bool = False
    ) -> dict[str, Any]:
        return {
            "status": status,
            "execution_id": self.execution_id,
            "execution": execution,
            "message": message,
            "permanent": permanent,
        }


def finished_event(execution: dict[str, Any], outcome: ExecutionOutcome) -> dict[str, Any]:
    """The event for an execution that reached a final state (also used without a trigger)."""
    return {
        "status": outcome.value,
        "execution_id": execution["id"],
        "execution": execution,
        "message": f"Execution {execution['id']!r} {outcome.value}",
        "permanent": False,
    }


def read_event(event: Any, execution_id: str | None) -> dict[str, Any]:
    """
    Check an event from :class:`BlinkExecutionTrigger` before acting on it.

    :raises BlinkError: if the event is not one this trigger yields, or is for another execution.
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


def wait_for_event(trigger: BlinkExecutionTrigger) -> dict[str, Any]:
    """Run the trigger in this process until its event: the same wait, without deferring."""

    async def first_event() -> dict[str, Any]:
        async with contextlib.aclosing(trigger.run()) as events:  # type: ignore[type-var]
            async for event in events:
                return event.payload
        raise BlinkError("BlinkExecutionTrigger ended without an event")

    return asyncio.run(first_event())


class WatchesExecution(Protocol):
    """What a task waiting on an execution carries (the operator and the sensor both do)."""

    blink_conn_id: str
    workspace_id: str | None
    poll_interval: float
    success_states: Collection[str] | None
    failure_states: Collection[str] | None


def build_trigger(
    task: WatchesExecution, execution_id: str, timeout: float | None, *, cancel_on_kill: bool
) -> BlinkExecutionTrigger:
    """The one place a task's settings become a trigger, so operator and sensor cannot drift apart."""
    return BlinkExecutionTrigger(
        execution_id=execution_id,
        blink_conn_id=task.blink_conn_id,
        workspace_id=task.workspace_id,
        poll_interval=task.poll_interval,
        end_time=None if timeout is None else time.time() + timeout,
        success_states=task.success_states,
        failure_states=task.failure_states,
        cancel_on_kill=cancel_on_kill,
    )


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
