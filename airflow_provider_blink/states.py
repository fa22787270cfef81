"""Blink execution states and the one function that decides what an execution's state means."""

from __future__ import annotations

import enum
import logging
from collections.abc import Collection, Mapping
from typing import Any

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
    for field in ("state_ui", "state"):
        value = execution.get(field)
        if isinstance(value, str) and value.strip():
            return value.strip()
    raise BlinkResponseError(
        f"Blink returned execution {execution.get('id', '<unknown id>')!r} without a state "
        f"(neither 'state_ui' nor 'state' is a non-empty string); keys present: {sorted(execution)[:20]}"
    )


def decide_outcome(
    execution: Mapping[str, Any],
    success_states: Collection[str] | None = None,
    failure_states: Collection[str] | None = None,
) -> ExecutionOutcome:
    """
    Decide whether an execution succeeded, failed or is still running.

    Operator, sensor and trigger all call this. Unknown states count as still running and are
    logged once per process, so a new Blink state never fails a task by surprise.

    :param execution: the execution record from Blink.
    :param success_states: states that count as success (default ``Completed``).
    :param failure_states: states that count as failure (default Failed, Cancelled, Timeout,
        Timed out, Stopped, Skipped).
    """
    state = normalize_state(execution_state(execution))
    if state in normalize_states(success_states, SUCCESS_STATES):
        return ExecutionOutcome.SUCCESS
    if state in normalize_states(failure_states, FAILURE_STATES):
        return ExecutionOutcome.FAILED
    if state not in RUNNING_STATES and state not in _unknown_states_seen:
        _unknown_states_seen.add(state)
        log.warning(
            "Blink execution %s is in state %r, which this provider does not know; treating it as still "
            "running. Pass success_states/failure_states if it is final.",
            execution.get("id"),
            state,
        )
    return ExecutionOutcome.RUNNING
