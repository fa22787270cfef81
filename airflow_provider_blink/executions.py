"""
Blink execution states, the one function that decides what a state means, and what the provider reports.

- **States**: :func:`decide_outcome` (and :func:`outcome_of_state`) turn an execution's state into an
  :class:`ExecutionOutcome`; the operator, the sensor and the triggers all call them.
- **Reports**: a compact summary of an execution, its link in Blink's web UI, a failure message, and
  from its steps: the playbook's output, a table of the steps, and the step that failed.
"""

from __future__ import annotations

import enum
import json
import logging
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, urlencode

from airflow_provider_blink.exceptions import BlinkResponseError

log = logging.getLogger(__name__)


class ExecutionOutcome(str, enum.Enum):
    """What an execution's state means for the task waiting on it."""

    SUCCESS = "success"
    FAILED = "failed"
    RUNNING = "running"


#: The only state Blink's own client treats as success.
SUCCESS_STATES: frozenset[str] = frozenset({"completed"})
#: Final states that are not success.
FAILURE_STATES: frozenset[str] = frozenset(
    {"failed", "cancelled", "canceled", "timeout", "timed out", "stopped", "skipped"}
)
#: Known non-final states (``paused``/``pending`` usually wait for a person); others are logged once.
RUNNING_STATES: frozenset[str] = frozenset(
    {"in progress", "running", "pending", "paused", "queued", "waiting", "new", "created", "started"}
)
#: Running states that mean a step waits for a person, e.g. an approval (docs/blink-api-contract.md#observed-states).
WAITING_FOR_PERSON_STATES: frozenset[str] = frozenset({"pending", "paused"})

_unknown_states_seen: set[str] = set()


def normalize_state(state: str) -> str:
    """Compare states case-insensitively and ignore ``_``/``-``/space spelling differences."""
    return " ".join(state.replace("_", " ").replace("-", " ").split()).casefold()


def normalize_states(states: Collection[str] | None, default: frozenset[str]) -> frozenset[str]:
    """Normalize a user-supplied ``success_states``/``failure_states`` override (``None`` keeps the default)."""
    if states is None:
        return default
    if isinstance(states, str):
        states = [states]
    return frozenset(normalize_state(state) for state in states)


def execution_state(execution: Mapping[str, Any]) -> str:
    """
    Return the execution's state as Blink shows it: ``state_ui``, falling back to ``state``.

    :raises BlinkResponseError: if the payload carries neither as a non-empty string.
    """
    states = _states(execution)
    if not states:
        raise BlinkResponseError(
            f"Blink returned execution {execution.get('id', '<unknown id>')!r} without a state "
            f"(neither 'state_ui' nor 'state' is a non-empty string); keys present: {sorted(execution)[:20]}"
        )
    return states[0]


def _states(execution: Mapping[str, Any]) -> list[str]:
    """The usable ones of ``state_ui`` and ``state``, in that order."""
    values = (execution.get(field) for field in ("state_ui", "state"))
    return [value.strip() for value in values if isinstance(value, str) and value.strip()]


def waits_for_person(execution: Mapping[str, Any]) -> bool:
    """Whether the execution's state (``state_ui`` or ``state``) says a step waits for a person."""
    return any(normalize_state(state) in WAITING_FOR_PERSON_STATES for state in _states(execution))


def decide_outcome(
    execution: Mapping[str, Any],
    success_states: Collection[str] | None = None,
    failure_states: Collection[str] | None = None,
) -> ExecutionOutcome:
    """
    Decide whether an execution succeeded, failed or is still running.

    Operator, sensor and trigger all call this: ``state_ui`` decides, and ``state`` when ``state_ui``
    is a state this provider does not know (see :func:`outcome_of_state`).

    :param execution: the execution record from Blink.
    :param success_states: states that count as success (default ``Completed``).
    :param failure_states: states that count as failure (default Failed, Cancelled, Timeout,
        Timed out, Stopped, Skipped).
    """
    execution_state(execution)  # raises when there is no state at all
    state, *fallback = _states(execution)
    return outcome_of_state(
        state,
        success_states,
        failure_states,
        fallback=fallback[0] if fallback else None,
        execution_id=execution.get("id"),
    )


def outcome_of_state(
    state: str,
    success_states: Collection[str] | None = None,
    failure_states: Collection[str] | None = None,
    *,
    fallback: str | None = None,
    execution_id: Any = None,
) -> ExecutionOutcome:
    """
    Decide what an execution's state means: the one place a state becomes an outcome.

    When neither ``state`` nor ``fallback`` is a known state, the execution counts as still running
    and that is logged once per process, so a new Blink state never fails a task by surprise.

    :param state: the state as Blink shows it (``state_ui``).
    :param success_states: states that count as success (default ``Completed``).
    :param failure_states: states that count as failure.
    :param fallback: the state that decides when ``state`` is unknown (Blink's ``state``).
    :param execution_id: the execution's id, for the log.
    """
    success = normalize_states(success_states, SUCCESS_STATES)
    failure = normalize_states(failure_states, FAILURE_STATES)
    unknown = []
    for value in (state, fallback):
        if value is None:
            continue
        normalized = normalize_state(value)
        if normalized in success:
            return ExecutionOutcome.SUCCESS
        if normalized in failure:
            return ExecutionOutcome.FAILED
        if normalized in RUNNING_STATES:
            return ExecutionOutcome.RUNNING
        unknown.append(normalized)
    key = " / ".join(unknown)
    if key not in _unknown_states_seen:
        _unknown_states_seen.add(key)
        log.warning(
            "Blink execution %s is in state %s, which this provider does not know; treating it as still "
            "running. Pass success_states/failure_states if it is final.",
            execution_id,
            " / ".join(repr(state) for state in unknown),
        )
    return ExecutionOutcome.RUNNING


SUMMARY_FIELDS = (
    "id",
    "playbook_id",
    "playbook_name",
    "workspace_id",
    "display_name",
    "execution_number",
    "state",
    "state_ui",
    "created_at",
    "started_at",
    "finished_at",
    "duration",
    "net_runtime_ms",
    "error_details",
    "cancel_reason",
)


def execution_url(blink_url: str, workspace_id: str, playbook_id: str | None, execution_id: str) -> str:
    """
    Link to the execution in Blink's web UI.

    Blink documents no per-execution page; this opens the playbook editor, whose Run Log tab
    lists the playbook's executions, with the execution id in the query.
    """
    query = urlencode({"execution_id": execution_id})
    if not playbook_id:
        return f"{blink_url}/workspace/{quote(workspace_id, safe='')}?{query}"
    return f"{blink_url}/workspace/{quote(workspace_id, safe='')}/workflow/{quote(playbook_id, safe='')}/edit?{query}"


def summarize(execution: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON-serialisable facts a downstream task needs (not the inputs or the event)."""
    summary = {field: execution[field] for field in SUMMARY_FIELDS if field in execution}
    summary["execution_id"] = execution.get("id")
    return summary


def failure_message(
    execution: Mapping[str, Any], url: str | None = None, steps: Sequence[Mapping[str, Any]] = ()
) -> str:
    """Say which execution ended how, with Blink's error details, the step that failed and where to look."""
    details = execution.get("error_details") or {}
    text = f"Blink execution {execution.get('id')!r} of playbook {execution.get('playbook_id')!r} ended in state {execution_state(execution)!r}"
    if isinstance(details, Mapping) and details:
        text += ": " + "; ".join(f"{key}={value}" for key, value in details.items())
    if execution.get("cancel_reason"):
        text += f" (cancel reason: {execution['cancel_reason']})"
    failed = failing_step(steps)
    if failed is not None:
        error = step_error(failed)
        text += f". Failing step: {_cell(failed.get('step_id'))}" + (f": {error}" if error else "")
    if url:
        text += f". See {url}"
    return text


def playbook_output(steps: Sequence[Mapping[str, Any]], step_id: str | None = None) -> Any:
    """
    The playbook's output as its steps report it.

    Blink documents no "playbook output" in an execution's steps (docs/blink-api-contract.md#observed-steps); the assumption:
    the output is the ``output_data`` of the step that finished last (ties: the later in the list),
    unless ``step_id`` names the step to take it from. Blink types ``output_data`` as a string; JSON
    in it is decoded. ``None`` when that step has no output (or no step has any).

    :param step_id: take the output of the step with this ``step_id``.
    """
    if step_id is not None:
        chosen = [step for step in steps if step.get("step_id") == step_id]
    else:
        chosen = [step for step in steps if step.get("output_data") not in (None, "")]
    if not chosen or chosen[-1].get("output_data") in (None, ""):
        return None
    last = max(reversed(chosen), key=lambda step: step.get("finished_at") or 0)
    data = last["output_data"]
    if isinstance(data, str):
        try:
            return json.loads(data)
        except (ValueError, RecursionError):  # not JSON, or nested too deep to decode: the text itself
            return data
    return data


# Steps --------------------------------------------------------------------------------------------
# What a task logs of a run's steps (docs/blink-api-contract.md#observed-steps: ``step_id``, ``state``,
# ``error_data``, ``started_at``, ``finished_at`` in epoch milliseconds; no step names). Blink types
# none of them in a document: a field of another type shows as ``-``.
#: The table lists at most this many steps (the rest are counted); an error shows at most this many characters.
STEPS_SHOWN = 200
STEP_ERROR_CHARS = 300


def step_error(step: Mapping[str, Any]) -> str:
    """
    A step's error on one line: ``error_data``'s ``message`` when it is a JSON object that has one, else its text.

    Cut at :data:`STEP_ERROR_CHARS`; ``""`` when the step has none.
    """
    data = step.get("error_data")
    if isinstance(data, str):
        try:
            decoded = json.loads(data)
        except (ValueError, RecursionError):
            decoded = data
        data = decoded
    if isinstance(data, Mapping) and isinstance(data.get("message"), str):
        data = data["message"]
    if data in (None, "", {}, []):
        return ""
    text = " ".join((data if isinstance(data, str) else json.dumps(data, default=str)).split())
    return text if len(text) <= STEP_ERROR_CHARS else text[: STEP_ERROR_CHARS - 3] + "..."


def failing_step(steps: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The step that failed: the last one with an error, else the last one in a failure state; ``None`` if none."""
    with_error = [step for step in steps if step_error(step)]
    if with_error:
        return with_error[-1]
    failed = [
        step
        for step in steps
        if isinstance(step.get("state"), str) and normalize_state(step["state"]) in FAILURE_STATES
    ]
    return failed[-1] if failed else None


def steps_table(steps: Sequence[Mapping[str, Any]]) -> str:
    """The steps as a text table: step id, state, start (UTC), duration, and a failed step's error."""
    header = ("step", "state", "started (UTC)", "duration", "error")
    rows = [header] + [
        (
            _cell(step.get("step_id")),
            _cell(step.get("state")),
            _moment(step.get("started_at")),
            step_duration(step),
            step_error(step),
        )
        for step in steps[:STEPS_SHOWN]
    ]
    widths = [
        *(max(len(row[column]) for row in rows) for column in range(4)),
        0,
    ]  # the error: as long as it is
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    if len(steps) > STEPS_SHOWN:
        lines.append(f"... and {len(steps) - STEPS_SHOWN} more steps")
    return "\n".join(lines)


def step_duration(step: Mapping[str, Any]) -> str:
    """How long a finished step took (``1.5s``); ``-`` while it runs or when Blink gives no times."""
    started, finished = _epoch_ms(step.get("started_at")), _epoch_ms(step.get("finished_at"))
    if started is None or finished is None or finished < started:
        return "-"
    return f"{(finished - started) / 1000:.1f}s"


def _epoch_ms(value: Any) -> int | None:
    """An epoch-milliseconds time; ``None`` for 0 (not yet) or anything that is not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return int(value)


def _moment(value: Any) -> str:
    ms = _epoch_ms(value)
    if ms is None:
        return "-"
    try:
        return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, OSError, ValueError):  # beyond the calendar
        return "-"


def _cell(value: Any) -> str:
    """A step's id or state on one line, cut at 80 characters; ``-`` when it is not text."""
    text = " ".join(value.split())[:80] if isinstance(value, str) else ""
    return text or "-"
