"""The one rule a wait rides out Blink's errors by: transient ones for the budget, permanent ones never."""

from __future__ import annotations

import pytest

from airflow_provider_blink.exceptions import (
    BlinkBadRequestError,
    BlinkConfigurationError,
    BlinkRateLimitError,
    BlinkResponseError,
    BlinkServerError,
    BlinkTransportError,
)
from airflow_provider_blink.tasks import ErrorBudget, WaitEnds, check_error_budget

T0 = 1_000.0


def server_error() -> BlinkServerError:
    return BlinkServerError("Blink refused GET", status=503)


def rate_limited(retry_after: float) -> BlinkRateLimitError:
    return BlinkRateLimitError("Blink refused GET", status=429, retry_after=retry_after)


@pytest.mark.parametrize(
    "error",
    [BlinkBadRequestError("Blink refused GET", status=400), BlinkResponseError("no state")],
    ids=["4xx", "unreadable-answer"],
)
def test_a_permanent_error_ends_the_wait_at_once(error):
    verdict = ErrorBudget(300).after_error(error, "exec-1", None, now=T0)

    assert isinstance(verdict, WaitEnds)
    assert verdict.permanent is True
    assert "permanent error (not retried)" in verdict.message


def test_transient_errors_are_ridden_out_until_the_budget_is_spent():
    budget = ErrorBudget(10)

    assert budget.after_error(server_error(), "exec-1", None, now=T0) == 0
    assert budget.after_error(BlinkTransportError("reset"), "exec-1", None, now=T0 + 9.9) == 0
    verdict = budget.after_error(server_error(), "exec-1", None, now=T0 + 10)

    assert isinstance(verdict, WaitEnds)
    assert verdict.permanent is False
    assert verdict.message.startswith(
        "Blink kept failing for 10s while watching execution 'exec-1'; last error:"
    )


def test_an_answer_starts_the_budget_afresh():
    budget = ErrorBudget(10)
    budget.after_error(server_error(), "exec-1", None, now=T0)

    budget.read_succeeded()

    assert budget.after_error(server_error(), "exec-1", None, now=T0 + 15) == 0
    assert budget.failing_since == T0 + 15


@pytest.mark.parametrize(
    ("retry_after", "deadline", "expected"),
    [
        (200, None, 200),
        (200, T0 + 250, 200),
        (200, T0 + 150, "past the wait's deadline"),
        (400, None, "past the wait's error budget"),
    ],
    ids=["within-budget", "within-deadline", "past-deadline", "past-budget"],
)
def test_a_long_retry_after_is_waited_for_when_it_fits(retry_after, deadline, expected):
    verdict = ErrorBudget(300).after_error(rate_limited(retry_after), "exec-1", deadline, now=T0)

    if isinstance(expected, str):
        assert isinstance(verdict, WaitEnds)
        assert verdict.permanent is False
        assert expected in verdict.message
        assert f"Blink asked to wait {retry_after}s (Retry-After)" in verdict.message
    else:
        assert verdict == expected


@pytest.mark.parametrize(
    "value", [-1, "300", None, True, float("nan")], ids=["negative", "str", "none", "bool", "nan"]
)
def test_error_budget_must_be_seconds(value):
    with pytest.raises(BlinkConfigurationError, match="error_budget must be a number of seconds >= 0"):
        check_error_budget(value)


@pytest.mark.parametrize(
    ("value", "expected"), [(0, 0.0), (300, 300.0), (12.5, 12.5)], ids=["zero", "int", "float"]
)
def test_error_budget_in_seconds(value, expected):
    assert check_error_budget(value) == expected
