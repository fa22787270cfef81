"""
BlinkExecutionTrigger: waits for a Blink execution to finish without holding a worker slot.

Also how a task waits with it: :class:`ExecutionWatch` (a task's settings for the wait) and
:func:`build_trigger`, the one place they become a trigger, deferred to the triggerer or run in the
task's own process by :func:`wait_for_event`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Collection
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_blink.connection_form import DEFAULT_CONN_ID
from airflow_provider_blink.exceptions import BlinkError
from airflow_provider_blink.executions import (
    ExecutionOutcome,
    decide_outcome,
    execution_url,
    summarize,
    waits_for_person,
)
from airflow_provider_blink.hooks.blink import BlinkAsyncClient, BlinkHook
from airflow_provider_blink.hooks.poller import ExecutionReader, ExecutionReading
from airflow_provider_blink.tasks import (
    DEFAULT_ERROR_BUDGET,
    DEFAULT_PROGRESS_INTERVAL,
    ErrorBudget,
    EventStatus,
    StateChanges,
    StepProgress,
    WaitEnds,
    cancel_note,
    finished_event,
)

__all__ = [
    "DEFAULT_ERROR_BUDGET",
    "BlinkExecutionTrigger",
    "ExecutionWatch",
    "build_trigger",
    "wait_for_event",
]


class BlinkExecutionTrigger(BaseTrigger):
    """
    Poll a Blink execution until it finishes, the deadline passes, or Blink fails for good.

    Yields exactly one event: ``{"status": "success"|"failed"|"timeout"|"error", "execution_id",
    "execution" (the summary of the last record read, or None: never its inputs, event or step
    data, as Airflow keeps the event in its database; read in a batch, a list item's, without
    ``playbook_name``, ``display_name`` and ``duration``, which the tasks then read themselves),
    "message", "permanent"}``; with ``stop_for_approval``, ``"waiting"`` when the run waits for a
    person. Serialises ids, the connection id and plain settings only; the API
    key is read from the connection in :meth:`run`.

    :param execution_id: the execution to watch.
    :param blink_conn_id: the Airflow connection to Blink.
    :param workspace_id: overrides the connection's workspace.
    :param poll_interval: seconds between polls.
    :param end_time: absolute deadline (Unix time in seconds); ``None`` waits indefinitely.
    :param success_states: states that count as success (see :func:`.executions.decide_outcome`).
    :param failure_states: states that count as failure.
    :param error_budget: seconds of consecutive transient errors tolerated before giving up
        (see :class:`.tasks.ErrorBudget`; a ``Retry-After`` within it and the deadline is waited for).
    :param cancel_on_kill: the task started the execution: cancel it when the deadline passes, and
        when a user kills the deferred task (mark failed/success, clear; Airflow 3.3+). The
        operator sets it; the sensor, which only watches, does not. Never on a triggerer restart.
    :param log_progress: log each step as it starts and ends, from a read of the steps at most
        once per ``progress_interval`` seconds.
    :param progress_interval: seconds between two reads of the steps.
    :param stop_for_approval: end the wait with a ``"waiting"`` event when the run waits for a person
        (``Pending``/``Paused``), so the task calls its ``on_waiting_for_approval`` on a worker.
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
        log_progress: bool = False,
        progress_interval: float = DEFAULT_PROGRESS_INTERVAL,
        stop_for_approval: bool = False,
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
        self.log_progress = log_progress
        self.progress_interval = progress_interval
        self.stop_for_approval = stop_for_approval

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
                "log_progress": self.log_progress,
                "progress_interval": self.progress_interval,
                "stop_for_approval": self.stop_for_approval,
            },
        )

    def __repr__(self) -> str:
        return f"<BlinkExecutionTrigger execution_id={self.execution_id!r} conn={self.blink_conn_id!r}>"

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            async with (
                BlinkHook(self.blink_conn_id).async_client(shared=True) as client,
                ExecutionReading(client, self.workspace_id) as reader,
            ):
                event = await self._watch(reader, client)
                if event["status"] == "timeout" and self.cancel_on_kill:
                    event["message"] += f"; {await self._cancel(client)}"
        except BlinkError as exc:  # the connection itself is unusable (no key, bad URL ...)
            event = self._event("error", None, str(exc), permanent=True)
        yield TriggerEvent(event)

    async def _watch(self, reader: ExecutionReader, client: BlinkAsyncClient) -> dict[str, Any]:
        # The task checked the execution just before deferring, so the first poll waits an interval:
        # no wasted request, and no event in the instant after deferral (apache/airflow#72716).
        self.log.info(
            "Waiting for Blink execution %s to finish (a read every %gs)",
            self.execution_id,
            self.poll_interval,
        )
        execution: dict[str, Any] | None = None
        budget = ErrorBudget(self.error_budget)
        states = StateChanges()
        progress = StepProgress(self.progress_interval) if self.log_progress else None
        link: str | None = None
        pause = self.poll_interval
        polled = False
        while True:
            remaining = self._remaining()
            if polled and remaining is not None and remaining <= 0:
                return self._deadline_passed(execution)
            await asyncio.sleep(pause if remaining is None else max(0.0, min(pause, remaining)))
            pause, polled, started = self.poll_interval, True, time.monotonic()
            try:
                execution = await asyncio.wait_for(
                    reader.read(self.execution_id, self._finished, interval=self.poll_interval),
                    self._read_timeout(),
                )
                outcome = decide_outcome(execution, self.success_states, self.failure_states)
                budget.read_succeeded()
            except asyncio.TimeoutError:  # the deadline passed while Blink was slow to answer
                return self._deadline_passed(execution)
            except BlinkError as exc:
                verdict = budget.after_error(exc, self.execution_id, self.end_time)
                if isinstance(verdict, WaitEnds):
                    return self._event("error", execution, verdict.message, permanent=verdict.permanent)
                pause = max(pause, verdict)  # Blink's Retry-After, when longer than the interval
                self.log.warning(
                    "Could not read Blink execution %s, will try again: %s", self.execution_id, exc
                )
            else:
                link = link or self._url(client, execution)  # once per wait: the hot path stays as it was
                states.seen(execution, self.log, link)
                if outcome is not ExecutionOutcome.RUNNING:
                    return finished_event(execution, outcome)
                if self.stop_for_approval and waits_for_person(execution):
                    return self._event(
                        "waiting", execution, f"Execution {self.execution_id!r} waits for a person"
                    )
                if progress is not None and progress.due():
                    await self._log_progress(client, progress)
                pause = self._next_pause(time.monotonic() - started)

    async def _log_progress(self, client: BlinkAsyncClient, progress: StepProgress) -> None:
        """
        Read the steps and log what changed; never for longer than an interval, and never ending the wait.

        A failed read is logged and counted like any other: the next one waits ``progress_interval``
        from when this one ended, so two reads never reach Blink closer together than that.
        """
        try:
            steps = await asyncio.wait_for(
                client.get_execution_steps(self.execution_id, workspace_id=self.workspace_id),
                self.poll_interval,
            )
        except (BlinkError, asyncio.TimeoutError) as exc:
            self.log.warning(
                "Could not read the steps of Blink execution %s (log_progress): %s",
                self.execution_id,
                exc or "no answer within the poll interval",
            )
            return
        finally:
            progress.read()
        progress.update(self.execution_id, steps, self.log)

    def _url(self, client: BlinkAsyncClient, execution: dict[str, Any]) -> str:
        """The execution's link in Blink's web UI."""
        config = client.config
        return execution_url(
            config.url, config.workspace(self.workspace_id), execution.get("playbook_id"), self.execution_id
        )

    def _next_pause(self, read_took: float) -> float:
        """
        Wait after a read that found the execution running: the next is due one interval after it began.

        So a read that waited for its round, or a slow answer, does not stretch the interval (reads of
        one round stay in step), but never less than half an interval after an answer: a Blink slower
        than the interval is not read back to back.
        """
        return max(self.poll_interval - read_took, self.poll_interval / 2)

    def _finished(self, execution: dict[str, Any]) -> bool:
        return (
            decide_outcome(execution, self.success_states, self.failure_states)
            is not ExecutionOutcome.RUNNING
        )

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

    async def _cancel(self, client: BlinkAsyncClient) -> str:
        """Cancel the execution the deadline passed for; say how it went (never hiding the timeout)."""
        try:
            cancelled: bool | BlinkError = await client.cancel_execution(
                self.execution_id, workspace_id=self.workspace_id
            )
        except BlinkError as exc:
            cancelled = exc
        return cancel_note(cancelled)

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
            "execution": None if execution is None else summarize(execution),
            "message": message,
            "permanent": permanent,
        }


@dataclasses.dataclass(frozen=True)
class ExecutionWatch:
    """
    How a task watches an execution: through which connection, how often, and which states end it how.

    :param blink_conn_id: the Airflow connection to Blink.
    :param workspace_id: overrides the connection's workspace.
    :param poll_interval: seconds between polls.
    :param success_states: states that count as success (see :func:`.executions.decide_outcome`).
    :param failure_states: states that count as failure.
    :param error_budget: seconds of back-to-back transient errors the wait rides out (:class:`.tasks.ErrorBudget`).
    :param log_progress: log each step as it starts and ends (:class:`.tasks.StepProgress`).
    :param progress_interval: seconds between two reads of the steps.
    """

    blink_conn_id: str
    workspace_id: str | None
    poll_interval: float
    success_states: Collection[str] | None = None
    failure_states: Collection[str] | None = None
    error_budget: float = DEFAULT_ERROR_BUDGET
    log_progress: bool = False
    progress_interval: float = DEFAULT_PROGRESS_INTERVAL

    @classmethod
    def of(cls, task: Any, poll_interval: float) -> ExecutionWatch:
        """
        The watch a task's own settings describe, so operator, sensor and notifier read them alike.

        :param task: has ``blink_conn_id`` and ``workspace_id``, and may have ``success_states``,
            ``failure_states``, ``error_budget``, ``log_progress`` and ``progress_interval`` (the
            notifier has none of these: the defaults).
        :param poll_interval: the task's interval (the sensor's is ``poke_interval``).
        """
        return cls(
            task.blink_conn_id,
            task.workspace_id,
            float(poll_interval),
            getattr(task, "success_states", None),
            getattr(task, "failure_states", None),
            getattr(task, "error_budget", DEFAULT_ERROR_BUDGET),
            getattr(task, "log_progress", False),
            getattr(task, "progress_interval", DEFAULT_PROGRESS_INTERVAL),
        )


def build_trigger(
    watch: ExecutionWatch,
    execution_id: str,
    end_time: float | None,
    *,
    cancel_on_kill: bool,
    stop_for_approval: bool = False,
) -> BlinkExecutionTrigger:
    """
    The one place a task's settings become a trigger, so operator, sensor and notifier cannot drift apart.

    :param end_time: the absolute deadline (:func:`.tasks.deadline`); ``None`` waits indefinitely.
    :param cancel_on_kill: the task started the execution: cancel it at the deadline, and when a user
        kills the deferred task.
    :param stop_for_approval: end the wait when the run waits for a person (``on_waiting_for_approval``).
    """
    return BlinkExecutionTrigger(
        execution_id=execution_id,
        end_time=end_time,
        cancel_on_kill=cancel_on_kill,
        stop_for_approval=stop_for_approval,
        **{field.name: getattr(watch, field.name) for field in dataclasses.fields(watch)},
    )


def wait_for_event(trigger: BlinkExecutionTrigger) -> dict[str, Any]:
    """Run the trigger in this process until its event: the same wait, without deferring."""

    async def first_event() -> dict[str, Any]:
        async with contextlib.aclosing(trigger.run()) as events:  # type: ignore[type-var]
            async for event in events:
                return event.payload
        raise BlinkError("BlinkExecutionTrigger ended without an event")

    return asyncio.run(first_event())
