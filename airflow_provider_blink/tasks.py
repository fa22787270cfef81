"""
Below the operator, sensor and notifier: what they share (the trigger uses its events and error budget).

Its sections, in order:

- **Arguments**: checks of a task's arguments, at parse time and at run time.
- **The request**: :class:`PlaybookRequest`, the playbook and execute fields a task starts with.
- **Events**: the trigger's event, and the task's result (or error) from it.
- **Waiting**: when a task's wait ends (:func:`deadline`), what it logs, how it resumes from a deferral.
- **Steps**: the table of a run's steps a task logs when the run ends, and the steps as they go
  (``log_progress``).
- **Waiting for a person**: ``on_waiting_for_approval``, called once per run.
- **Error budget**: how a wait rides out Blink's errors (``error_budget``, a long ``Retry-After``).
- **Kept values**: where a task keeps a value for its task instance across runs and tries.
- **Error streaks**: where a sensor keeps its error streak between pokes, across reschedules.
- **Earlier tries**: what an earlier try did about starting the playbook (:class:`StartRecord`).

The trigger a task waits with, and :func:`~.triggers.blink.build_trigger`, live in :mod:`.triggers.blink`,
which imports this module (never the other way round).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_blink import api
from airflow_provider_blink.compat import AIRFLOW_V_3_0_PLUS, Variable, conf
from airflow_provider_blink.endpoints import EXECUTE_FIELDS
from airflow_provider_blink.exceptions import (
    BlinkConfigurationError,
    BlinkError,
    BlinkExecutionFailed,
    BlinkExecutionTimeout,
    BlinkLookupIncomplete,
    BlinkPermanentError,
)
from airflow_provider_blink.executions import (
    ExecutionOutcome,
    decide_outcome,
    execution_state,
    execution_url,
    failure_message,
    step_duration,
    step_error,
    steps_table,
    summarize,
    waits_for_person,
)

if TYPE_CHECKING:
    from airflow_provider_blink.hooks.blink import BlinkHook


# Arguments ----------------------------------------------------------------------------------------
# A DAG file's arguments are checked when it is parsed; what Airflow fills in later, at run time.
def filled_at_run_time(value: Any) -> bool:
    """Whether Airflow supplies ``value`` only at run time: an XComArg, a mapped argument, a template."""
    return hasattr(value, "resolve") or (isinstance(value, str) and "{{" in value)


def check_playbook_id(playbook_id: Any, *, parse_time: bool = False) -> None:
    """Reject a playbook id that is not a non-empty string (at parse time, XComArgs and templates pass)."""
    if parse_time and filled_at_run_time(playbook_id):
        return
    if not isinstance(playbook_id, str) or not playbook_id.strip():
        raise BlinkConfigurationError(
            f"playbook_id must be the playbook's id (a non-empty string), got {playbook_id!r}."
        )


def check_execute_field_at_parse_time(name: str, value: Any) -> None:
    """
    Check one execute field as a DAG file gives it (see :func:`.api.check_execute_field`).

    Values Airflow fills in at run time pass, also inside a dict; everything already known must be valid.
    """
    if value is None or filled_at_run_time(value):
        return
    api.check_execute_field(name, value, default=_filled_later)


def _filled_later(value: Any) -> Any:
    if filled_at_run_time(value):
        return None
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def check_poll_interval(poll_interval: Any, name: str = "poll_interval") -> float:
    """Reject a poll interval that is not a positive number (the sensor's is ``poke_interval``)."""
    if isinstance(poll_interval, bool) or not isinstance(poll_interval, int | float) or poll_interval <= 0:
        raise BlinkConfigurationError(f"{name} must be a positive number of seconds, got {poll_interval!r}.")
    return float(poll_interval)


def resolve_deferrable(deferrable: bool | None) -> bool:
    """``None`` means Airflow's ``[operators] default_deferrable``."""
    if deferrable is None:
        return conf.getboolean("operators", "default_deferrable", fallback=False)
    return deferrable


def worker_start_reason(task: Any) -> str | None:
    """
    Why a ``start_from_trigger`` task starts on a worker all the same; ``None`` when it starts in the triggerer.

    Only Airflow 2.11 and 3.3+ start a task in the triggerer, and only with what the triggerer can
    resolve there: no XComArg, and on 2.11 no template (docs/start-from-trigger.md).
    """
    from airflow_provider_blink.compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_3_PLUS, AIRFLOW_VERSION

    if AIRFLOW_V_3_0_PLUS and not AIRFLOW_V_3_3_PLUS:
        return (
            f"Airflow {AIRFLOW_VERSION} cannot start a task in the triggerer (3.1 and 3.2 ignore "
            "start_from_trigger, apache/airflow#66307; 3.0 renders no templates there, #53063)"
        )
    if getattr(task, "openlineage_inject_parent_job_info", False):
        return "openlineage_inject_parent_job_info needs the task's OpenLineage run, known on a worker only"
    fields = {name: getattr(task, name) for name in TEMPLATE_FIELDS}
    for name, value in fields.items():
        if _anywhere(value, lambda item: hasattr(item, "resolve")):
            return f"{name} comes from another task (an XComArg), which only a worker resolves"
    templated = [name for name, value in fields.items() if _anywhere(value, _is_template)]
    if not templated:
        return None
    if not AIRFLOW_V_3_3_PLUS:
        return (
            f"{templated[0]} is a template, and Airflow 2.11's triggerer renders none (apache/airflow#53063)"
        )
    dag = task.dag if task.has_dag() else None
    if dag is not None and (
        dag.user_defined_macros or dag.user_defined_filters or dag.render_template_as_native_obj
    ):
        return (
            f"{templated[0]} is a template, and Airflow 3.3's triggerer renders it without the DAG's "
            "user_defined_macros, user_defined_filters and render_template_as_native_obj"
        )
    for name in templated:
        if (
            EXECUTE_FIELDS.get(name) is not None
            and EXECUTE_FIELDS[name].types is Mapping
            and _is_template(fields[name])
        ):
            return f"{name} is one template for a dict, and Airflow 3.3's triggerer renders it to a string"
    return None


def _is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _anywhere(value: Any, test: Callable[[Any], bool]) -> bool:
    """Whether ``value``, or anything in it (dicts, lists), passes ``test``."""
    if test(value):
        return True
    if isinstance(value, Mapping):
        return any(_anywhere(item, test) for item in value.values())
    if isinstance(value, list | tuple):
        return any(_anywhere(item, test) for item in value)
    return False


# The request --------------------------------------------------------------------------------------
# The playbook and execute fields a task starts, spelled out once for the operator and the notifier.
#: The attributes of a task that starts a playbook which Airflow renders: the request and the workspace.
TEMPLATE_FIELDS: tuple[str, ...] = ("playbook_id", "workspace_id", *EXECUTE_FIELDS)
#: How the Airflow UI shows the rendered request fields: the objects as JSON.
TEMPLATE_FIELDS_RENDERERS: dict[str, str] = {
    name: "json" for name, spec in EXECUTE_FIELDS.items() if spec.types is Mapping
}


@dataclasses.dataclass(frozen=True)
class PlaybookRequest:
    """
    What starting a playbook takes: the playbook's id and the execute fields.

    A task keeps each field as an attribute of its own, where Airflow renders templates (see
    :class:`StartsPlaybook`): :meth:`set_on` puts them there, :meth:`of` reads them back.

    :param playbook_id: the playbook to run (its id, not its name).
    :param fields: the execute fields by name (:data:`.endpoints.EXECUTE_FIELDS`); ``None`` ones are not sent.
    """

    playbook_id: Any
    fields: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.fields) - set(EXECUTE_FIELDS))
        if unknown:
            raise TypeError(f"not execute fields: {', '.join(unknown)}")

    @classmethod
    def from_arguments(cls, arguments: Mapping[str, Any]) -> PlaybookRequest:
        """
        The request from a task's ``__init__`` arguments (its ``locals()``): ``playbook_id`` and each execute field.

        A task must take every field of the registry as an argument of the same name (a missing one is a
        ``KeyError`` here): adding a field to the registry and to the task's arguments is all it takes.
        """
        return cls(arguments["playbook_id"], {name: arguments[name] for name in EXECUTE_FIELDS})

    @classmethod
    def of(cls, task: StartsPlaybook) -> PlaybookRequest:
        """The request in a task's attributes (rendered, when the task runs)."""
        return cls(task.playbook_id, {name: getattr(task, name) for name in EXECUTE_FIELDS})

    def set_on(self, task: StartsPlaybook) -> None:
        """Give ``task`` one attribute per field (``None`` for a field not given)."""
        task.playbook_id = self.playbook_id
        for name in EXECUTE_FIELDS:
            setattr(task, name, self.fields.get(name))

    def check_at_parse_time(self) -> None:
        """Check a DAG file's arguments: values filled in at run time (XComArgs, templates) pass."""
        check_playbook_id(self.playbook_id, parse_time=True)
        for name, value in self.fields.items():
            check_execute_field_at_parse_time(name, value)

    def body(self) -> dict[str, Any]:
        """Check the request as it runs and return the execute body (fields left ``None`` are not sent)."""
        check_playbook_id(self.playbook_id)
        return api.execute_body(**self.fields)


class StartsPlaybook:
    """
    A task that starts a playbook (the operator, the notifier): the request's fields are its attributes.

    Airflow renders them and the workspace (:data:`TEMPLATE_FIELDS`) before the task runs; the
    execute fields are set by :meth:`PlaybookRequest.set_on`, one attribute per field of the registry.
    """

    playbook_id: str
    workspace_id: str | None

    if TYPE_CHECKING:

        @property
        def hook(self) -> BlinkHook: ...  # the task's (cached) hook

    def playbook_request(self) -> PlaybookRequest:
        """The request in this task's attributes (rendered, once the task runs)."""
        return PlaybookRequest.of(self)

    def _url(self, execution_id: str) -> str:
        """The execution's link in Blink's web UI (logged when it starts, pushed for the "Blink" link)."""
        config = self.hook.config
        return execution_url(config.url, config.workspace(self.workspace_id), self.playbook_id, execution_id)


# Events -------------------------------------------------------------------------------------------
# The event a wait for an execution ends with, and the task's result (or error) from it.
#: ``waiting``: the run waits for a person and the task asked to hear of it (``on_waiting_for_approval``);
#: the task calls its callback and waits on. The others end the wait.
EventStatus = Literal["success", "failed", "timeout", "error", "waiting"]
EVENT_STATUSES: frozenset[str] = frozenset({"success", "failed", "timeout", "error", "waiting"})
#: Summary fields of the single GET's record that a list item lacks (docs/blink-api-contract.md#documented-list).
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


def execution_from_event(
    event: Any, execution_id: str | None, url: str | None, steps: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """
    Return the finished execution from a success event; raise what any other event stands for.

    :param steps: the run's steps, if read: a failure names the step that failed.
    :raises BlinkExecutionFailed: the execution ended in a failure state.
    :raises BlinkExecutionTimeout: the deadline passed first.
    :raises BlinkPermanentError: Blink refused the watch for good (e.g. 401/404).
    :raises BlinkError: Blink stayed unreachable beyond the trigger's error budget.
    """
    event = read_event(event, execution_id)
    if event["status"] == "success":
        return event["execution"]
    if event["status"] == "failed":
        raise BlinkExecutionFailed(failure_message(event["execution"], url, steps))
    if event["status"] == "timeout":
        raise BlinkExecutionTimeout(event["message"])
    if event["status"] == "waiting":
        raise BlinkError(f"Unexpected event from BlinkExecutionTrigger: {event['message']}, not finished")
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


# Waiting ------------------------------------------------------------------------------------------
# When a task's wait ends, what it logs of the execution's states, and how it resumes from a deferral.
#: A wait ends itself this share of ``execution_timeout`` before it (at most :data:`MAX_MARGIN`), so it
#: cancels the execution and fails with its own error before Airflow times the task out.
MARGIN_SHARE = 0.1
MAX_MARGIN = 30.0


def deadline(context: Any, timeout: float | None, execution_timeout: timedelta | None) -> float | None:
    """
    When a task's wait ends (Unix time): ``timeout`` from now, or just before ``execution_timeout``.

    Whichever is first; ``execution_timeout`` counts from the try's start, as Airflow counts it.
    Absolute, so a trigger keeps it across triggerer restarts; ``None`` waits indefinitely.
    """
    now = time.time()
    ends = [] if timeout is None else [now + timeout]
    if execution_timeout is not None:
        ti = context.get("ti") if hasattr(context, "get") else None
        started = getattr(ti, "start_date", None)
        start = started.timestamp() if started is not None else now
        ends.append(deadline_after(start, execution_timeout.total_seconds()))
    return min(ends, default=None)


def deadline_after(start: float, execution_timeout: float) -> float:
    """When a wait ends for a try that started at ``start`` (Unix time): just before its ``execution_timeout``."""
    return start + execution_timeout - min(MAX_MARGIN, MARGIN_SHARE * execution_timeout)


class StateChanges:
    """
    Logs an execution's state the first time a wait reads it and each time it changes.

    One per wait and process: the sensor's pokes in one process (in ``reschedule`` mode each run
    starts afresh and logs the state it finds), one run of the trigger.
    """

    def __init__(self) -> None:
        self._last: str | None = None

    def seen(self, execution: Mapping[str, Any], log: Any, url: str | None = None) -> None:
        """
        Log to ``log`` the state of ``execution``, just read, unless it is the one logged last.

        A state that means a step waits for a person says so, with the run's link (``url``).
        """
        state = execution_state(execution)
        if state == self._last:
            return
        self._last = state
        if waits_for_person(execution):
            log.info(
                "Blink execution %s is %s: a step waits for a person (an approval or an input) in Blink: %s",
                execution.get("id"),
                state,
                url,
            )
        else:
            log.info("Blink execution %s is %s", execution.get("id"), state)


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


# Steps --------------------------------------------------------------------------------------------
# When a run ends, the task reads its steps once (with the output, from the same read) and logs them
# as one table. While it waits, a task that asked (``log_progress``) logs each step as it starts and
# ends, from a read of the steps at most once per ``progress_interval``: never per poll.
#: Seconds between two reads of a waiting run's steps (``progress_interval``) by default.
DEFAULT_PROGRESS_INTERVAL = 60.0
#: The key of a sensor's progress in ``task_state_store`` (its Variable's prefix before 3.3), between reschedules.
PROGRESS_KEY = "blink_step_progress"


def steps_at_end(
    hook: BlinkHook, execution_id: str, workspace_id: str | None, log: Any, *, table: bool = True
) -> list[dict[str, Any]] | BlinkError:
    """
    Read a finished run's steps, and log them as one table (``table``, a task's ``log_steps``).

    :returns: the steps, or the error (logged) when they cannot be read.
    """
    try:
        steps = hook.get_execution_steps(execution_id, workspace_id=workspace_id)
    except BlinkError as exc:
        log.warning("Could not read the steps of Blink execution %s: %s", execution_id, exc)
        return exc
    if table:
        log.info("Steps of Blink execution %s (%d):\n%s", execution_id, len(steps), steps_table(steps))
    return steps


def check_progress_interval(progress_interval: Any) -> float:
    """Reject a ``progress_interval`` that is not a positive number of seconds."""
    return check_poll_interval(progress_interval, "progress_interval")


class StepProgress:
    """
    Logs each step of a waiting run as it starts and as it ends, from reads at most one per ``interval``.

    :param interval: seconds between two reads of the steps (``progress_interval``).
    :param kept: what :meth:`kept` returned, in an earlier process (a sensor's reschedule).
    """

    def __init__(self, interval: float, kept: Mapping[str, Any] | None = None) -> None:
        self.interval = interval
        kept = kept if isinstance(kept, Mapping) else {}
        read_at = kept.get("read_at")
        self._read_at: float | None = read_at if isinstance(read_at, int | float) else None
        steps = kept.get("steps")
        self._seen: dict[str, str] = dict(steps) if isinstance(steps, Mapping) else {}

    def due(self, now: float | None = None) -> bool:
        """Whether the steps may be read again: the first time, then ``interval`` after the last read."""
        now = time.time() if now is None else now
        return self._read_at is None or now - self._read_at >= self.interval

    def read(self, now: float | None = None) -> None:
        """Count a read of the steps as it ends (also a failed one: the interval holds either way)."""
        self._read_at = time.time() if now is None else now

    def update(self, execution_id: str, steps: Sequence[Mapping[str, Any]], log: Any) -> None:
        """Log the steps that started or ended since the last read."""
        for step in steps:
            step_id = step.get("step_id")
            if not isinstance(step_id, str):
                continue
            ended = step_duration(step) != "-"
            before = self._seen.get(step_id)
            if before is None:
                log.info("Blink execution %s: step %s started (%s)", execution_id, step_id, step.get("state"))
            if ended and before != "ended":
                error = step_error(step)
                log.info(
                    "Blink execution %s: step %s ended: %s after %s%s",
                    execution_id,
                    step_id,
                    step.get("state"),
                    step_duration(step),
                    f": {error}" if error else "",
                )
            self._seen[step_id] = "ended" if ended else "started"

    def kept(self) -> dict[str, Any]:
        """Plain JSON to carry the progress into the next process (:class:`KeptValue`)."""
        return {"read_at": self._read_at, "steps": dict(self._seen)}


# Waiting for a person -----------------------------------------------------------------------------
# A run whose state says a step waits for a person (``Pending``, ``Paused``) is still running: the
# wait and its deadline go on. A task's ``on_waiting_for_approval`` (a notifier, or any callable
# taking the context) is called once per run, on a worker: a deferred task's trigger ends its wait
# with a ``waiting`` event, the task calls the callback and defers again. Which run it was called for
# is kept (Kept values, below) before it is called, so a triggerer restart, a reschedule or a retry
# never calls it twice for one run.
#: The key of the run the callback was called for in ``task_state_store`` (its Variable's prefix before 3.3).
APPROVAL_KEY = "blink_waiting_for_approval"
#: What ``on_waiting_for_approval`` may be: one callable taking the context, or a list of them.
ApprovalCallbacks = Callable[[Any], Any] | Sequence[Callable[[Any], Any]] | None


def check_approval_callbacks(callbacks: Any) -> list[Callable[[Any], Any]]:
    """``on_waiting_for_approval`` as a list of callables; a clear error for anything else."""
    listed = (
        [] if callbacks is None else list(callbacks) if isinstance(callbacks, list | tuple) else [callbacks]
    )
    for callback in listed:
        if not callable(callback):
            raise BlinkConfigurationError(
                "on_waiting_for_approval must be a callable taking the task's context (e.g. a notifier "
                f"such as SlackNotifier(...)) or a list of them, got {callback!r}."
            )
    return listed


def approval_pending(callbacks: Sequence[Callable[[Any], Any]], context: Any, execution_id: str) -> bool:
    """Whether the wait must stop when the run waits for a person: there are callbacks, not yet called for it."""
    return bool(callbacks) and KeptValue(context, APPROVAL_KEY).load() != execution_id


def call_approval_callbacks(
    callbacks: Sequence[Callable[[Any], Any]],
    context: Any,
    execution: Mapping[str, Any],
    url: str | None,
    log: Any,
) -> None:
    """
    Call the callbacks for a run that waits for a person, once per run (recorded before the call).

    Each gets the task's context with ``blink_execution`` (the run's summary) and ``blink_execution_url``
    added, so a notifier's template can use them. A callback that raises is logged; the wait goes on.
    """
    kept = KeptValue(context, APPROVAL_KEY)
    execution_id = execution.get("id")
    if not callbacks or kept.load() == execution_id:
        return
    kept.save(execution_id)
    log.info(
        "Blink execution %s waits for a person (%s): calling on_waiting_for_approval. See %s",
        execution_id,
        execution.get("state_ui") or execution.get("state"),
        url,
    )
    called = {**context, "blink_execution": dict(execution), "blink_execution_url": url}
    for callback in callbacks:
        try:
            callback(called)
        except Exception:
            log.exception("on_waiting_for_approval %r failed for Blink execution %s", callback, execution_id)


# Error budget -------------------------------------------------------------------------------------
# How a wait for an execution rides out Blink's errors: one rule for the trigger and the sensor.
# A read that fails for good (a 4xx, an answer this provider cannot read) ends the wait at once. A
# transient one (Blink down, 429, 5xx) is tolerated for ``error_budget`` seconds of back-to-back
# failures; a ``Retry-After`` is honoured, however long, when the next read it allows still falls
# within the budget and before the deadline. The budget spent, or a ``Retry-After`` beyond it, ends
# the wait as a transient failure: the task's retries apply.
#: Seconds of back-to-back transient failures (Blink down, 5xx) a wait rides out.
DEFAULT_ERROR_BUDGET = 300.0


def check_error_budget(error_budget: object) -> float:
    """Reject an ``error_budget`` that is not a number of seconds >= 0."""
    if isinstance(error_budget, bool) or not isinstance(error_budget, int | float) or not error_budget >= 0:
        raise BlinkConfigurationError(
            f"error_budget must be a number of seconds >= 0 (how long a wait rides out Blink's "
            f"transient errors; default {DEFAULT_ERROR_BUDGET:g}), got {error_budget!r}."
        )
    return float(error_budget)


@dataclasses.dataclass(frozen=True)
class WaitEnds:
    """
    The failure that ends a wait, and whether it is permanent (no task retry can fix it).

    :param message: says which it was: a permanent error, or transient ones past the budget or deadline.
    :param permanent: the task fails without spending its retries.
    """

    message: str
    permanent: bool


class ErrorBudget:
    """
    The error streak of one wait: when it began, and the verdict on each failed read.

    :param seconds: back-to-back transient failures tolerated, in seconds.
    :param failing_since: when the current streak began (Unix time), e.g. kept across reschedules.
    """

    def __init__(self, seconds: float, failing_since: float | None = None) -> None:
        self.seconds = seconds
        self.failing_since = failing_since

    def read_succeeded(self) -> None:
        """Blink answered: the streak is over."""
        self.failing_since = None

    def after_error(
        self, exc: BaseException, execution_id: str, deadline: float | None, now: float | None = None
    ) -> float | WaitEnds:
        """
        Record a failed read of ``execution_id``; the seconds to wait before the next, or how the wait ends.

        The wait is 0 (the usual interval) unless Blink sent a ``Retry-After``.

        :param deadline: when the wait ends anyway (Unix time), or ``None``.
        """
        from airflow_provider_blink.hooks.transport import is_transient, requested_wait  # not at DAG parse

        now = time.time() if now is None else now
        if not is_transient(exc, idempotent=True):
            return WaitEnds(
                f"Reading execution {execution_id!r} failed with a permanent error (not retried): {exc}",
                permanent=True,
            )
        if self.failing_since is None:
            self.failing_since = now
        budget_ends = self.failing_since + self.seconds
        if now >= budget_ends:
            return WaitEnds(
                f"Blink kept failing for {self.seconds:g}s while watching execution {execution_id!r}; "
                f"last error: {exc} (transient errors: the task's retries apply)",
                permanent=False,
            )
        wait = requested_wait(exc) or 0.0
        past = "error budget" if now + wait > budget_ends else "deadline"
        if wait and (now + wait > budget_ends or (deadline is not None and now + wait > deadline)):
            return WaitEnds(
                f"Blink asked to wait {wait:g}s (Retry-After) before reading execution {execution_id!r} "
                f"again, past the wait's {past} (error_budget={self.seconds:g}s); last error: {exc} "
                "(a transient error: the task's retries apply)",
                permanent=False,
            )
        return wait


# Kept values --------------------------------------------------------------------------------------
# A value a task keeps for its task instance across runs and tries: where, on each Airflow line.
# - Airflow 3.3+: ``task_state_store``, the store Airflow keeps for a task instance across its runs.
# - Before 3.3 (or a context without the store): an Airflow Variable named after the task instance
#   (``<key>.<dag>.<task>.<digest>``, letters, digits, ``_.-`` only: Airflow 3.0's execution API takes
#   no ``/`` in a key). XCom does not survive: Airflow clears a task instance's XCom at the start of
#   every run that does not resume from a deferral (2.11: ``TaskInstance._run_raw_task``; 3.x:
#   ``xcom_keys_to_clear`` of the run's context), and a retry or a reschedule is such a run.
# Reading a Variable with Airflow's ``Variable.get`` cannot tell "none" from "could not read": 2.11
# and the Task SDK from 3.1 answer ``None`` (the default) for a failed read as well, and the SDK before
# 3.3 only logs a failed write. A value whose loss could start a playbook twice is read and written
# here instead: through the metadata database on 2.11, through the task's (or triggerer's) channel to
# Airflow on 3.x, where "not found" is an answer of its own and any other failure raises.
VARIABLE_DESCRIPTION = (
    "airflow-provider-blink: what this task instance's tries did about starting the playbook"
)


def read_variable(key: str) -> str | None:
    """A Variable's value; ``None`` when there is none. Any failure to read it raises."""
    if AIRFLOW_V_3_0_PLUS:
        from airflow.sdk.execution_time import task_runner
        from airflow.sdk.execution_time.comms import GetVariable

        return _variable_answer(key, task_runner.SUPERVISOR_COMMS.send(GetVariable(key=key)))
    return _read_variable_row(key)


def write_variable(key: str, value: str) -> None:
    """Set a Variable; any failure raises."""
    if AIRFLOW_V_3_0_PLUS:
        from airflow.sdk.execution_time import task_runner
        from airflow.sdk.execution_time.comms import PutVariable

        task_runner.SUPERVISOR_COMMS.send(PutVariable(key=key, value=value, description=VARIABLE_DESCRIPTION))
    else:
        from airflow.models.variable import Variable as VariableRow

        VariableRow.set(key, value, description=VARIABLE_DESCRIPTION)


async def aread_variable(key: str) -> str | None:
    """:func:`read_variable`, from a trigger (the triggerer's event loop)."""
    if AIRFLOW_V_3_0_PLUS:
        from airflow.sdk.execution_time import task_runner
        from airflow.sdk.execution_time.comms import GetVariable

        return _variable_answer(key, await task_runner.SUPERVISOR_COMMS.asend(GetVariable(key=key)))
    from asgiref.sync import sync_to_async

    return await sync_to_async(_read_variable_row)(key)


async def awrite_variable(key: str, value: str) -> None:
    """:func:`write_variable`, from a trigger (the triggerer's event loop)."""
    if AIRFLOW_V_3_0_PLUS:
        from airflow.sdk.execution_time import task_runner
        from airflow.sdk.execution_time.comms import PutVariable

        await task_runner.SUPERVISOR_COMMS.asend(
            PutVariable(key=key, value=value, description=VARIABLE_DESCRIPTION)
        )
    else:
        from asgiref.sync import sync_to_async

        await sync_to_async(write_variable)(key, value)


def _variable_answer(key: str, answer: Any) -> str | None:
    """Airflow 3's answer to ``GetVariable``: the value, ``None`` for "not found", else an error."""
    from airflow.sdk.exceptions import ErrorType
    from airflow.sdk.execution_time.comms import ErrorResponse, VariableResult

    if isinstance(answer, VariableResult):
        return answer.value
    if isinstance(answer, ErrorResponse) and answer.error == ErrorType.VARIABLE_NOT_FOUND:
        return None
    raise BlinkError(f"Could not read Airflow Variable {key!r}: {answer!r}")


def _read_variable_row(key: str) -> str | None:
    """Airflow 2.11: the Variable's row, read from the metadata database."""
    from airflow.models.variable import Variable as VariableRow
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        row = session.scalar(select(VariableRow).where(VariableRow.key == key))
        return None if row is None else row.val


def variable_name(ti: Any, key: str) -> str:
    """The Variable keeping ``key`` for the task instance ``ti`` (see Kept values, above)."""
    identity = f"{ti.dag_id}/{ti.run_id}/{ti.task_id}/{getattr(ti, 'map_index', -1)}"
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]  # the run and map index too

    def readable(name: str) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:80]

    return f"{key}.{readable(ti.dag_id)}.{readable(ti.task_id)}.{digest}"


class KeptValue:
    """
    One plain-JSON value kept under ``key`` for the task instance of ``context`` (see Kept values, above).

    :param context: the task's context (its ``ti``, and ``task_state_store`` on Airflow 3.3+).
    :param key: the value's key in ``task_state_store``, and its Variable's prefix.
    :param strict: a Variable is read and written so that any failure raises (:func:`read_variable`):
        for a value whose loss could start a playbook twice. Else a failed read is "nothing kept".
    """

    def __init__(self, context: Any, key: str, *, strict: bool = False) -> None:
        self._ti = context["ti"]
        self._store = context.get("task_state_store")
        self._key = key
        self._strict = strict

    @property
    def _variable(self) -> str:
        return variable_name(self._ti, self._key)

    def load(self) -> Any:
        """The value kept, or ``None``."""
        if self._store is not None:
            return self._store.get(self._key)
        if self._strict:
            raw = read_variable(self._variable)
            return None if raw is None else json.loads(raw)
        return Variable.get(self._variable, None, deserialize_json=True)

    def save(self, value: Any) -> None:
        """Keep ``value`` (plain JSON), replacing what was kept."""
        if self._store is not None:
            self._store.set(self._key, value)
        elif self._strict:
            write_variable(self._variable, json.dumps(value))
        else:
            Variable.set(self._variable, value, serialize_json=True)

    def forget(self) -> None:
        """Drop the value kept."""
        if self._store is not None:
            self._store.delete(self._key)
        else:
            Variable.delete(self._variable)


# Error streaks ------------------------------------------------------------------------------------
# Where a sensor keeps its error streak between pokes, so a reschedule does not reset its error budget.
# In ``poke`` mode every poke of a try runs in one process: the sensor keeps the streak itself. In
# ``reschedule`` mode each poke is a new run of the task instance, and the streak (when it began, and
# until when Blink asked to wait) must survive it: it is a kept value (Kept values, above), before
# Airflow 3.3 a Variable named ``blink_wait_error_streak.<dag>.<task>.<digest>``. Reschedule records
# carry only times, and a 3.x task can read only the first one's start date. The Variable exists only
# while Blink is failing: it is deleted as soon as a read succeeds or the wait ends. A streak is kept
# with the try it belongs to, so a new try starts with a fresh budget.
#: The key of the streak in ``task_state_store``, and its Variable's prefix before Airflow 3.3.
STREAK_KEY = "blink_wait_error_streak"


class StreakStore:
    """
    The streak of one task instance's wait, kept across reschedules (see Error streaks, above).

    :param context: the task's context (its ``ti``, and ``task_state_store`` on Airflow 3.3+).
    """

    def __init__(self, context: Any) -> None:
        self._ti = context["ti"]
        self._kept = KeptValue(context, STREAK_KEY)

    def load(self) -> dict[str, Any] | None:
        """The streak of this try, if Blink was failing at its last poke."""
        value = self._kept.load()
        if isinstance(value, dict) and value.get("try_number") == self._ti.try_number:
            return value
        return None

    def save(self, streak: dict[str, Any]) -> None:
        """Keep ``streak`` (plain JSON) for this try's next poke."""
        self._kept.save({**streak, "try_number": self._ti.try_number})

    def forget(self) -> None:
        """The streak is over: Blink answered, or the wait ended."""
        self._kept.forget()


class LocalStreak:
    """The streak of a wait whose pokes all run in this process (``poke`` mode): kept in memory."""

    def __init__(self) -> None:
        self._streak: dict[str, Any] | None = None

    def load(self) -> dict[str, Any] | None:
        """The streak, if Blink was failing at the last poke."""
        return self._streak

    def save(self, streak: dict[str, Any]) -> None:
        """Keep ``streak`` for the next poke."""
        self._streak = dict(streak)

    def forget(self) -> None:
        """The streak is over."""
        self._streak = None


# Earlier tries ------------------------------------------------------------------------------------
# What an earlier try of a task did about starting its playbook, and the execution it started.
# Each try that starts a playbook keeps a record (:class:`StartRecord`, a kept value): before it sends
# the start, that a start is in flight and since when; after Blink's answer, the execution's id, or
# that Blink refused the start (nothing started). A retry, or a cleared task, then
# (:func:`previous_execution`):
# - uses the recorded execution (it follows one that runs or completed, and starts anew, or re-runs it
#   with ``rerun_from_failure``, when it failed);
# - looks in Blink only when a start was in flight with no known outcome (the worker died between
#   sending it and recording Blink's answer): for a run of the same request created since that start
#   was sent, less a minute for the clocks of Airflow and Blink;
# - starts afresh when no earlier try sent a start, or Blink refused it.
#: Outcomes of an earlier try's execution that a retry follows rather than starting another.
FOLLOWED = frozenset({ExecutionOutcome.RUNNING, ExecutionOutcome.SUCCESS})
#: The key of the record in ``task_state_store``, and its Variable's prefix before Airflow 3.3.
START_KEY = "blink_start"


class StartRecord:
    """
    What this task instance's tries did about starting the playbook, kept across tries (see Earlier tries, above).

    The record holds ``execution_id`` (the last execution a try started or followed) and, while a
    start is in flight, ``sent_at_ms`` (when it was sent, epoch milliseconds).

    :param context: the task's context.
    """

    def __init__(self, context: Any) -> None:
        self._kept = KeptValue(context, START_KEY, strict=True)
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
    created since it was sent (:meth:`.BlinkHook.runs_of_request`), and :func:`earlier_run` picks one. When none is found (or none can be told apart), the execution recorded before it counts.
    """
    since_ms = record.in_flight_since_ms
    if since_ms is not None:
        found = _in_flight_run(
            hook, playbook_id, workspace_id, body, since_ms, success_states, failure_states
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
    try:
        runs = hook.runs_of_request(playbook_id, body, since_ms, workspace_id=workspace_id)
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
