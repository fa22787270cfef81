"""The one function that decides whether a Blink execution succeeded, failed or is still running."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_blink import executions
from airflow_provider_blink.exceptions import BlinkResponseError
from airflow_provider_blink.executions import (
    ExecutionOutcome,
    decide_outcome,
    execution_state,
    normalize_state,
)

SUCCESS, FAILED, RUNNING = ExecutionOutcome.SUCCESS, ExecutionOutcome.FAILED, ExecutionOutcome.RUNNING

STATE_TABLE = [
    ("Completed", SUCCESS),
    ("completed", SUCCESS),
    ("COMPLETED", SUCCESS),
    (" Completed ", SUCCESS),
    ("Failed", FAILED),
    ("failed", FAILED),
    ("Cancelled", FAILED),
    ("Canceled", FAILED),
    ("Timeout", FAILED),
    ("Timed out", FAILED),
    ("timed_out", FAILED),
    ("TIMED-OUT", FAILED),
    ("Stopped", FAILED),
    ("Skipped", FAILED),
    ("In Progress", RUNNING),
    ("in_progress", RUNNING),
    ("Running", RUNNING),
    ("Pending", RUNNING),
    ("Paused", RUNNING),
]


@pytest.fixture(autouse=True)
def fresh_unknown_states(monkeypatch):
    """Each test starts with no unknown state seen yet (the log-once memory is per process)."""
    monkeypatch.setattr(executions, "_unknown_states_seen", set())


@pytest.mark.parametrize(
    ("state_ui", "outcome"), STATE_TABLE, ids=[state.strip() or "blank" for state, _ in STATE_TABLE]
)
def test_state_ui_decides_the_outcome(state_ui, outcome):
    assert decide_outcome({"id": "e-1", "state_ui": state_ui}) is outcome


@pytest.mark.parametrize(
    ("state", "outcome"),
    [("completed", SUCCESS), ("timed_out", FAILED), ("running", RUNNING)],
    ids=["completed", "timed_out", "running"],
)
def test_raw_state_is_the_fallback(state, outcome):
    assert decide_outcome({"id": "e-1", "state": state}) is outcome


@pytest.mark.parametrize(
    "state_ui", [None, "", "   ", 3, {"name": "Completed"}], ids=["none", "empty", "blank", "int", "dict"]
)
def test_unusable_state_ui_falls_back_to_state(state_ui):
    assert execution_state({"state_ui": state_ui, "state": "failed"}) == "failed"
    assert decide_outcome({"state_ui": state_ui, "state": "failed"}) is FAILED


def test_state_ui_is_preferred_over_state():
    execution = {"id": "e-1", "state": "running", "state_ui": "Completed"}

    assert execution_state(execution) == "Completed"
    assert decide_outcome(execution) is SUCCESS


@pytest.mark.parametrize(
    "execution",
    [{"id": "e-7"}, {"id": "e-7", "state": "", "state_ui": None}, {"id": "e-7", "state": 1}],
    ids=["missing", "empty", "not-a-string"],
)
def test_no_state_is_a_response_error(execution):
    with pytest.raises(BlinkResponseError, match=r"execution 'e-7' without a state") as info:
        decide_outcome(execution)

    assert "'id'" in str(info.value)  # lists the keys it did get


def test_unknown_state_is_running_and_logged_once(caplog):
    caplog.set_level(logging.WARNING, logger=executions.__name__)

    first = decide_outcome({"id": "e-1", "state_ui": "Frobnicating"})
    second = decide_outcome({"id": "e-2", "state_ui": "frobnicating"})

    assert first is second is RUNNING
    warnings = [r for r in caplog.records if r.name == executions.__name__]
    assert len(warnings) == 1
    assert "'frobnicating'" in warnings[0].getMessage()
    assert "e-1" in warnings[0].getMessage()
    assert "success_states/failure_states" in warnings[0].getMessage()


@pytest.mark.parametrize(
    ("state_ui", "state", "outcome"),
    [
        ("Errored", "failed", FAILED),
        ("All done", "completed", SUCCESS),
        ("Awaiting approval", "paused", RUNNING),
        ("In Progress", "failed", RUNNING),
    ],
    ids=["unknown-ui-failed-state", "unknown-ui-completed-state", "unknown-ui-paused-state", "known-ui-wins"],
)
def test_an_unknown_state_ui_leaves_the_decision_to_state(state_ui, state, outcome, caplog):
    caplog.set_level(logging.WARNING, logger=executions.__name__)

    assert decide_outcome({"id": "e-1", "state_ui": state_ui, "state": state}) is outcome
    assert not [r for r in caplog.records if r.name == executions.__name__], "state knew: nothing to log"


def test_both_states_unknown_is_running_and_logged_once(caplog):
    caplog.set_level(logging.WARNING, logger=executions.__name__)

    first = decide_outcome({"id": "e-1", "state_ui": "Frobnicating", "state": "frob"})
    second = decide_outcome({"id": "e-2", "state_ui": "Frobnicating", "state": "frob"})

    assert first is second is RUNNING
    (warning,) = [r for r in caplog.records if r.name == executions.__name__]
    assert "'frobnicating'" in warning.getMessage()
    assert "'frob'" in warning.getMessage()


def test_known_running_states_are_not_logged(caplog):
    caplog.set_level(logging.WARNING, logger=executions.__name__)

    for state in ("In Progress", "Pending", "Paused", "Running"):
        decide_outcome({"id": "e-1", "state_ui": state})

    assert not [r for r in caplog.records if r.name == executions.__name__]


@pytest.mark.parametrize(
    ("state_ui", "success_states", "failure_states", "outcome"),
    [
        ("Skipped", ["Completed", "Skipped"], None, SUCCESS),
        ("skipped", ["COMPLETED", "SKIPPED"], None, SUCCESS),
        ("Completed", ["Done"], None, RUNNING),
        ("Done", "Done", None, SUCCESS),
        ("Paused", None, ["Failed", "Paused"], FAILED),
        ("Cancelled", None, ["Failed"], RUNNING),
        ("Timed out", None, ["timed_out"], FAILED),
        ("Completed", ["Completed"], ["Completed"], SUCCESS),
    ],
    ids=[
        "skipped-counts-as-success",
        "override-case-insensitive",
        "override-replaces-default",
        "single-string",
        "paused-counts-as-failure",
        "cancelled-no-longer-failure",
        "override-spelling-normalized",
        "success-wins-over-failure",
    ],
)
def test_overrides(state_ui, success_states, failure_states, outcome):
    execution = {"id": "e-1", "state_ui": state_ui}

    assert decide_outcome(execution, success_states=success_states, failure_states=failure_states) is outcome


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("Timed out", "timed out"),
        ("timed_out", "timed out"),
        ("TIMED-OUT", "timed out"),
        ("  In   Progress ", "in progress"),
    ],
    ids=["ui", "raw", "dash", "spaces"],
)
def test_normalize_state(raw, normalized):
    assert normalize_state(raw) == normalized


STATE_VALUES = st.one_of(
    st.none(),
    st.text(),
    st.sampled_from(["Completed", "Failed", "In Progress", "timed_out", "", " "]),
    st.integers(),
    st.floats(),
    st.booleans(),
    st.lists(st.text(), max_size=3),
    st.dictionaries(st.text(), st.text(), max_size=3),
)


@settings(deadline=None)
@given(
    execution=st.dictionaries(
        st.sampled_from(["id", "state", "state_ui", "error_details", "x"]) | st.text(max_size=5),
        STATE_VALUES,
        max_size=6,
    ),
    success_states=st.none() | st.lists(st.text(max_size=12), max_size=3) | st.text(max_size=12),
    failure_states=st.none() | st.lists(st.text(max_size=12), max_size=3),
)
def test_any_execution_gives_an_outcome_or_a_response_error(execution, success_states, failure_states):
    try:
        outcome = decide_outcome(execution, success_states=success_states, failure_states=failure_states)
    except BlinkResponseError:
        assert not any(
            isinstance(execution.get(f), str) and execution[f].strip() for f in ("state", "state_ui")
        )
    else:
        assert isinstance(outcome, ExecutionOutcome)
