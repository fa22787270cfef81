"""
How a wait for an execution rides out Blink's errors: one rule for the trigger and the sensor.

A read that fails for good (a 4xx, an answer this provider cannot read) ends the wait at once. A
transient one (Blink down, 429, 5xx) is tolerated for ``error_budget`` seconds of back-to-back
failures; a ``Retry-After`` is honoured, however long, when the next read it allows still falls
within the budget and before the deadline. The budget spent, or a ``Retry-After`` beyond it, ends
the wait as a transient failure: the task's retries apply.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from airflow_provider_blink.exceptions import BlinkConfigurationError
from airflow_provider_blink.hooks.transport import is_transient, requested_wait

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


@dataclass(frozen=True)
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
