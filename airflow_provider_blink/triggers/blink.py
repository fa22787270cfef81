"""
BlinkExecutionTrigger: waits for a Blink execution to finish without holding a worker slot.

BlinkPlaybookTrigger: starts the playbook and waits, in place of the task (``start_from_trigger``).

Also how a task waits with it: :class:`ExecutionWatch` (a task's settings for the wait) and
:func:`build_trigger`, the one place they become a trigger, deferred to the triggerer or run in the
task's own process by :func:`wait_for_event`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
import uuid
from collections.abc import AsyncIterator, Collection, Mapping
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_blink.compat import AIRFLOW_V_3_0_PLUS, XCom
from airflow_provider_blink.connection_form import DEFAULT_CONN_ID
from airflow_provider_blink.endpoints import EXECUTE_FIELDS
from airflow_provider_blink.exceptions import (
    BlinkError,
    BlinkLookupIncomplete,
    BlinkPermanentError,
    BlinkStartUncertain,
)
from airflow_provider_blink.executions import (
    ExecutionOutcome,
    decide_outcome,
    execution_url,
    steps_table,
    summarize,
    waits_for_person,
)
from airflow_provider_blink.hooks.blink import BlinkAsyncClient, BlinkHook
from airflow_provider_blink.hooks.poller import ExecutionReader, ExecutionReading
from airflow_provider_blink.links.blink import EXECUTION_ID_KEY, EXECUTION_URL_KEY, BlinkExecutionLink
from airflow_provider_blink.tasks import (
    DEFAULT_ERROR_BUDGET,
    DEFAULT_PROGRESS_INTERVAL,
    FOLLOWED,
    GET_ONLY_FIELDS,
    START_KEY,
    ErrorBudget,
    EventStatus,
    PlaybookRequest,
    StateChanges,
    StepProgress,
    WaitEnds,
    aread_variable,
    awrite_variable,
    cancel_note,
    deadline_after,
    earlier_run,
    finished_event,
    variable_name,
)

__all__ = [
    "DEFAULT_ERROR_BUDGET",
    "BlinkExecutionTrigger",
    "BlinkPlaybookTrigger",
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
        if not self.cancel_on_kill or not self.execution_id:  # a start trigger may not have started one yet
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


# Starting in the triggerer ------------------------------------------------------------------------
# With ``start_from_trigger`` (Airflow 2.11 and 3.3+; docs/start-from-trigger.md) the scheduler defers
# the task straight to the triggerer: BlinkPlaybookTrigger starts the playbook, waits as
# BlinkExecutionTrigger does, and ends a successful task itself, so no worker runs it. Any other end
# resumes the task on a worker (the operator's ``resume_from_trigger``), which fails it as it would
# have failed in a worker.
# One try's trigger may run more than once: a triggerer dies, another runs the trigger again; or one
# stalls, loses the trigger to another and goes on, so two runs overlap. Before it sends the start, a
# run claims it: it records that a start is in flight, since when and by which run, and sends it only
# if its claim is still there a moment later (:meth:`BlinkPlaybookTrigger._claim`). After Blink's
# answer it records the execution's id. The record is the task instance's start record (tasks.StartRecord's
# format), always in its Variable ``blink_start.<dag>.<task>.<digest>``: a trigger can write no
# ``task_state_store``. A run of the trigger follows the execution its try recorded, or looks in
# Blink for the run of its try's start in flight (the same request since then), for up to
# :data:`START_LIMIT` after it was sent before it claims a start of its own; an earlier try's
# record counts as it does for a worker (``durable``, ``rerun_from_failure``). The record is read and
# written so that any error raises (the trigger fails, and the try with it, before anything is
# sent): a failed read never passes for "no record".


#: Seconds a run of the trigger waits, after claiming the start, before it reads the record back.
CLAIM_SETTLE = 1.0
#: Seconds a start may take, from its claim to Blink's answer: another run of the trigger waits for
#: it (its execution in Blink, or its id in the record) that long before it may start one itself.
START_LIMIT = 300.0


class StartRecordVariable:
    """A task instance's start record in its Variable, as a trigger reads and writes it (strictly)."""

    def __init__(self, ti: Any) -> None:
        self.key = variable_name(ti, START_KEY)

    async def load(self) -> dict[str, Any]:
        """The record; empty when there is none."""
        raw = await aread_variable(self.key)
        value = json.loads(raw) if raw else None
        return value if isinstance(value, dict) else {}

    async def save(self, record: Mapping[str, Any]) -> None:
        """Replace the record with ``record`` (plain JSON)."""
        await awrite_variable(self.key, json.dumps(dict(record)))


class BlinkPlaybookTrigger(BlinkExecutionTrigger):
    """
    Start a playbook and wait for its execution, in place of the task (``start_from_trigger``).

    It follows the execution this try (or, by ``durable``, an earlier try) recorded, else starts one
    (see Starting in the triggerer, above); waits as :class:`BlinkExecutionTrigger` does, cancelling
    the execution at the deadline; and when it succeeds ends the task with a ``TaskSuccessEvent``, with
    the XComs the task would push: ``execution_id``, ``execution_url``, the summary as ``return_value``
    and, on Airflow 3, the "Blink" link's (there pushed before the event, as a task pushes them). Any other end yields the wait's event with
    ``try_number`` and ``end_time``: the task resumes on a worker and fails as it would have.

    The request's kwargs carry the operator's template-field names (``playbook_id``, ``workspace_id``,
    the execute fields), kept untouched here: Airflow 3.3's triggerer renders them before :meth:`run`.

    :param playbook_id: the playbook to run.
    :param wait_timeout: the operator's ``timeout`` (seconds; ``None``: no limit).
    :param execution_timeout: the task's ``execution_timeout`` in seconds: the wait ends just before it.
    :param durable: a try follows the execution an earlier try started, while it runs or once it completed.
    :param rerun_from_failure: a try after an earlier try's failed execution re-runs it (``past_exec_ref``).
    :param include_output: the summary carries the playbook's output, from the steps.
    :param require_output: an output that cannot be read fails the task (on a worker).
    :param output_step_id: the step to take the output from (default: the last to finish).
    :param log_steps: log the steps as a table when the run ends.
    :param request_and_watch: the execute fields (:data:`.endpoints.EXECUTE_FIELDS`), and
        :class:`BlinkExecutionTrigger`'s kwargs but ``execution_id``, ``end_time`` and ``cancel_on_kill``.
    """

    def __init__(
        self,
        *,
        playbook_id: str,
        wait_timeout: float | None = None,
        execution_timeout: float | None = None,
        durable: bool = True,
        rerun_from_failure: bool = False,
        include_output: bool = True,
        require_output: bool = False,
        output_step_id: str | None = None,
        log_steps: bool = True,
        **request_and_watch: Any,
    ) -> None:
        fields = {name: request_and_watch.pop(name, None) for name in EXECUTE_FIELDS}
        super().__init__(execution_id="", cancel_on_kill=True, **request_and_watch)
        self.playbook_id = playbook_id
        for name, value in fields.items():
            setattr(self, name, value)
        self.wait_timeout = wait_timeout
        self.execution_timeout = execution_timeout
        self.durable = durable
        self.rerun_from_failure = rerun_from_failure
        self.include_output = include_output
        self.require_output = require_output
        self.output_step_id = output_step_id
        self.log_steps = log_steps

    def serialize(self) -> tuple[str, dict[str, Any]]:
        _, watch = super().serialize()
        for name in ("execution_id", "end_time", "cancel_on_kill"):
            del watch[name]
        return (
            "airflow_provider_blink.triggers.blink.BlinkPlaybookTrigger",
            {
                **watch,
                "playbook_id": self.playbook_id,
                **{name: getattr(self, name) for name in EXECUTE_FIELDS},
                "wait_timeout": self.wait_timeout,
                "execution_timeout": self.execution_timeout,
                "durable": self.durable,
                "rerun_from_failure": self.rerun_from_failure,
                "include_output": self.include_output,
                "require_output": self.require_output,
                "output_step_id": self.output_step_id,
                "log_steps": self.log_steps,
            },
        )

    def __repr__(self) -> str:
        return f"<BlinkPlaybookTrigger playbook_id={self.playbook_id!r} conn={self.blink_conn_id!r}>"

    async def run(self) -> AsyncIterator[TriggerEvent]:
        ti: Any = self.task_instance  # set by the triggerer before it runs the trigger
        self._starter = uuid.uuid4().hex  # tells this run's claim on the start from another run's
        record = StartRecordVariable(ti)
        kept = await record.load()  # before anything is sent: an error fails the trigger, not a start
        try_number = ti.try_number
        self.end_time = self._deadline(kept, try_number)
        ended: TriggerEvent | None = None
        try:
            async with (
                BlinkHook(self.blink_conn_id).async_client(shared=True) as client,
                ExecutionReading(client, self.workspace_id) as reader,
            ):
                execution = await self._start_or_follow(client, record, kept, try_number)
                outcome = None if execution is None else decide_outcome(execution, *self._states())
                if execution is not None and outcome is not ExecutionOutcome.RUNNING:
                    event = finished_event(execution, outcome)  # type: ignore[arg-type]
                else:
                    event = await self._watch(reader, client)
                if event["status"] == "timeout":
                    event["message"] += f"; {await self._cancel(client)}"
                if event["status"] == "success":
                    ended = await self._task_success(client, event)
        except BlinkError as exc:  # the start failed, or the connection is unusable: as it would on a worker
            event = self._event("error", None, str(exc), permanent=isinstance(exc, BlinkPermanentError))
        yield ended or TriggerEvent(
            {
                **event,
                "execution_id": self.execution_id or None,
                "try_number": try_number,
                "end_time": self.end_time,
            }
        )

    def _states(self) -> tuple[Collection[str] | None, Collection[str] | None]:
        return self.success_states, self.failure_states

    def _deadline(self, kept: Mapping[str, Any], try_number: int) -> float | None:
        """The try's deadline: as its first run of the trigger set it, else ``wait_timeout`` from now, before Airflow's."""
        if kept.get("try_number") == try_number and "end_time" in kept:
            return kept["end_time"]
        now = time.time()
        ends = [] if self.wait_timeout is None else [now + self.wait_timeout]
        if self.execution_timeout is not None:
            # Airflow's own timeout of the deferred task: the trigger's (3.x), the task instance's (2.11).
            airflow_ends = getattr(self, "timeout_after", None) or getattr(
                self.task_instance, "trigger_timeout", None
            )
            start = now if airflow_ends is None else airflow_ends.timestamp() - self.execution_timeout
            ends.append(deadline_after(start, self.execution_timeout))
        return min(ends, default=None)

    async def _start_or_follow(
        self, client: BlinkAsyncClient, record: StartRecordVariable, kept: Mapping[str, Any], try_number: int
    ) -> dict[str, Any] | None:
        """The execution this run of the trigger follows (read), or ``None`` when it just started one."""
        request = PlaybookRequest(self.playbook_id, {n: getattr(self, n) for n in EXECUTE_FIELDS}).body()
        waiting = False
        while True:
            body = dict(request)
            same_try = kept.get("try_number") == try_number
            recorded = kept.get("execution_id") or None
            sent_at = kept.get("sent_at_ms")
            if same_try and recorded and sent_at is None:
                self.log.info(
                    "Following Blink execution %s, which this try started (the trigger runs again)", recorded
                )
                execution = await client.get_execution(recorded, workspace_id=self.workspace_id)
                return await self._follow(client, record, execution, try_number)
            if same_try and kept.get("past_exec_ref"):
                body["past_exec_ref"] = kept["past_exec_ref"]
            previous = None if sent_at is None else await self._in_flight_run(client, body, sent_at)
            if same_try and previous is not None:
                self.log.info(
                    "Following Blink execution %s, which this try's start in flight created", previous["id"]
                )
                return await self._follow(client, record, previous, try_number)
            if same_try and sent_at is not None and time.time() * 1000 < sent_at + START_LIMIT * 1000:
                if not waiting:
                    waiting = True
                    self.log.info(
                        "A start of this try is in flight (another run of this trigger may still be making "
                        "it): waiting for its execution, at most until %gs after it was sent",
                        START_LIMIT,
                    )
                await asyncio.sleep(self.poll_interval)
                kept = await record.load()
                continue
            if not same_try and previous is None and recorded:
                previous = await client.get_execution(recorded, workspace_id=self.workspace_id)
            if not same_try and previous is not None:
                outcome = decide_outcome(previous, *self._states())
                if self.durable and outcome in FOLLOWED:
                    self.log.info(
                        "Blink execution %s of an earlier try is %s; following it instead of starting another",
                        previous["id"],
                        previous.get("state_ui"),
                    )
                    return await self._follow(client, record, previous, try_number)
                if (
                    self.rerun_from_failure
                    and outcome is ExecutionOutcome.FAILED
                    and "past_exec_ref" not in body
                ):
                    self.log.info("Re-running failed Blink execution %s (rerun_from_failure)", previous["id"])
                    body["past_exec_ref"] = previous["id"]
            claimed = await self._claim(record, body, recorded, try_number)
            if claimed is None:
                await self._start(client, record, body, recorded, try_number)
                return None
            kept = claimed

    async def _claim(
        self, record: StartRecordVariable, body: Mapping[str, Any], recorded: str | None, try_number: int
    ) -> dict[str, Any] | None:
        """
        Record that this run's start is in flight; ``None`` when it may send it, else the record that won.

        Two runs of the trigger for one try (a triggerer that stalled, lost the trigger and went on) may
        both find no record. Each writes its claim, waits :data:`CLAIM_SETTLE` and reads the record back:
        the run whose claim is still there sends the start; the other waits for that start's execution.
        """
        claim = {
            "execution_id": recorded,
            "try_number": try_number,
            "end_time": self.end_time,
            "sent_at_ms": int(time.time() * 1000),
            "starter": self._starter,
            **({"past_exec_ref": body["past_exec_ref"]} if "past_exec_ref" in body else {}),
        }
        await record.save(claim)
        await asyncio.sleep(CLAIM_SETTLE)
        kept = await record.load()
        return None if kept.get("starter") == self._starter else kept

    async def _in_flight_run(
        self, client: BlinkAsyncClient, body: Mapping[str, Any], sent_at_ms: int
    ) -> dict[str, Any] | None:
        """The run a start in flight created, as :func:`.tasks.previous_execution` finds it; ``None`` if unsure."""
        try:
            runs = await client.runs_of_request(
                self.playbook_id, body, sent_at_ms, workspace_id=self.workspace_id
            )
        except BlinkLookupIncomplete as exc:
            self.log.warning(
                "Cannot tell which execution the start in flight created (%s); following none of them.", exc
            )
            return None
        chosen = earlier_run(runs, *self._states())
        if chosen is None and runs:
            self.log.warning(
                "%d executions of playbook %s with the same request started since the start in flight: cannot "
                "tell which one it created, so none is followed. Check them in Blink: %s",
                len(runs),
                self.playbook_id,
                ", ".join(str(run["id"]) for run in runs[:10]),
            )
        return chosen

    async def _follow(
        self,
        client: BlinkAsyncClient,
        record: StartRecordVariable,
        execution: dict[str, Any],
        try_number: int,
    ) -> dict[str, Any]:
        self.execution_id = str(execution["id"])
        await record.save(
            {"execution_id": self.execution_id, "try_number": try_number, "end_time": self.end_time}
        )
        self.log.info("Blink execution %s: %s", self.execution_id, self._link(client))
        return execution

    async def _start(
        self,
        client: BlinkAsyncClient,
        record: StartRecordVariable,
        body: dict[str, Any],
        recorded: str | None,
        try_number: int,
    ) -> None:
        """Send the start this run claimed (:meth:`_claim`), then record what became of it."""
        from airflow_provider_blink.hooks.transport import start_refused

        kept = {"execution_id": recorded, "try_number": try_number, "end_time": self.end_time}
        try:
            self.execution_id = await asyncio.wait_for(
                client.execute_playbook(self.playbook_id, workspace_id=self.workspace_id, **body),
                START_LIMIT - CLAIM_SETTLE,
            )
        except asyncio.TimeoutError:  # another run of the trigger waits no longer than this for it
            raise BlinkStartUncertain(
                f"Blink did not answer the start of playbook {self.playbook_id!r} within {START_LIMIT:g}s; "
                "it may have started (a retry looks for it)"
            ) from None
        except BlinkError as exc:
            if start_refused(exc):  # nothing started: a run of the trigger again may start
                await record.save(kept)
            raise
        await record.save({**kept, "execution_id": self.execution_id})
        self.log.info(
            "Started Blink execution %s of playbook %s: %s",
            self.execution_id,
            self.playbook_id,
            self._link(client),
        )

    def _link(self, client: BlinkAsyncClient) -> str:
        return self._url(client, {"playbook_id": self.playbook_id})

    async def _task_success(self, client: BlinkAsyncClient, event: dict[str, Any]) -> TriggerEvent | None:
        """
        The event that ends the task with the summary the operator would return; ``None`` leaves it to a worker.

        The steps are read once (the table, the output), and the summary's fields a list item lacks with
        one GET. An output that cannot be read with ``require_output`` is the worker's to fail.
        """
        from airflow.triggers.base import TaskSuccessEvent

        from airflow_provider_blink.executions import playbook_output

        execution_id, url = self.execution_id, self._link(client)
        steps: list[dict[str, Any]] | BlinkError = []
        if self.log_steps or self.include_output:
            try:
                steps = await client.get_execution_steps(execution_id, workspace_id=self.workspace_id)
            except BlinkError as exc:
                self.log.warning("Could not read the steps of Blink execution %s: %s", execution_id, exc)
                steps = exc
            else:
                if self.log_steps:
                    self.log.info(
                        "Steps of Blink execution %s (%d):\n%s", execution_id, len(steps), steps_table(steps)
                    )
        if isinstance(steps, BlinkError) and self.include_output and self.require_output:
            return None
        execution = event["execution"]
        if not all(field in execution for field in GET_ONLY_FIELDS):
            try:
                record = await client.get_execution(execution_id, workspace_id=self.workspace_id)
                execution = {**execution, **{f: record[f] for f in GET_ONLY_FIELDS if f in record}}
            except BlinkError as exc:
                self.log.warning("Could not read Blink execution %s in full: %s", execution_id, exc)
        output = None
        if self.include_output and isinstance(steps, BlinkError):
            self.log.warning(
                "Blink execution %r completed, but its output could not be read. The task succeeds with output "
                "None (require_output=False).",
                execution_id,
            )
        elif self.include_output:
            output = playbook_output(steps, self.output_step_id)  # type: ignore[arg-type]
        self.log.info("Blink execution %s finished: %s", execution_id, execution.get("state_ui"))
        xcoms: dict[str, Any] = {
            EXECUTION_ID_KEY: execution_id,
            EXECUTION_URL_KEY: url,
            "return_value": {**summarize(execution), "execution_url": url, "output": output},
        }
        link = BlinkExecutionLink()
        if hasattr(link, "xcom_key"):  # Airflow 3's UI reads the link from its own key (links/blink.py)
            xcoms[link.xcom_key] = url
        if not AIRFLOW_V_3_0_PLUS:
            return TaskSuccessEvent(xcoms=xcoms)
        # Airflow 3 stores an event's XComs serialised once more than a task's own, and a downstream
        # task would pull a JSON string: push them as the task would, through the triggerer's channel.
        ti: Any = self.task_instance
        identity = {
            "dag_id": ti.dag_id,
            "task_id": ti.task_id,
            "run_id": ti.run_id,
            "map_index": ti.map_index,
        }
        for key, value in xcoms.items():
            await XCom.aset(key=key, value=value, **identity)
        return TaskSuccessEvent()
