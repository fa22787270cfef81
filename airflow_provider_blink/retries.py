"""Which Blink errors are retried, and how: one rule for the sync and the async client."""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import tenacity

from airflow_provider_blink.exceptions import (
    BlinkApiError,
    BlinkClientError,
    BlinkConfigurationError,
    BlinkError,
    BlinkPermanentError,
    BlinkTransportError,
)

T = TypeVar("T")

#: A ``Retry-After`` longer than this is not waited for within one call: the call fails at once and
#: says so. A task waiting for an execution may still honour it between its reads (:mod:`.tasks.budget`).
MAX_RETRY_AFTER = 120.0

# Statuses that mean Blink did not act on the request, so even a non-idempotent POST may repeat.
_NOT_PROCESSED_STATUSES = frozenset({429, 503})


def is_transient(exc: BaseException, *, idempotent: bool) -> bool:
    """
    Say whether a failed call may succeed later, however long Blink asks to wait first.

    Transport faults, 429 and 5xx are transient. A call that is not idempotent (starting a
    playbook) is transient only when Blink surely did not act on it: the connection was never
    made, or Blink answered 429/503. Other 4xx are permanent.
    """
    if isinstance(exc, BlinkTransportError):
        return idempotent or not exc.request_sent
    if isinstance(exc, BlinkApiError):
        if exc.status in _NOT_PROCESSED_STATUSES:
            return True
        return idempotent and exc.status >= 500
    return False


def requested_wait(exc: BaseException | None) -> float | None:
    """Seconds Blink asked to wait before trying again (its ``Retry-After``), if it said."""
    return exc.retry_after if isinstance(exc, BlinkApiError) else None


def asks_to_slow_down(exc: BaseException) -> bool:
    """Whether Blink asked for fewer requests: a 429, or any error answer with a ``Retry-After``."""
    return isinstance(exc, BlinkApiError) and (exc.status == 429 or exc.retry_after is not None)


def is_retryable(exc: BaseException, *, idempotent: bool) -> bool:
    """
    Say whether one call repeats after it failed with ``exc``.

    A transient failure (:func:`is_transient`) repeats, unless Blink asked to wait longer than
    :data:`MAX_RETRY_AFTER`: then the call gives up at once rather than hold its caller that long.
    """
    wait = requested_wait(exc)
    return is_transient(exc, idempotent=idempotent) and (wait is None or wait <= MAX_RETRY_AFTER)


def is_ambiguous(exc: BaseException) -> bool:
    """Whether a failed call may or may not have taken effect (it timed out, or the answer was lost)."""
    return is_retryable(exc, idempotent=True) and not is_retryable(exc, idempotent=False)


def start_refused(exc: BaseException) -> bool:
    """
    Whether a start that failed with ``exc`` (after the hook's retries and lookups) surely started nothing.

    So it is when the request never left (it could not be built or sent), or Blink answered that it
    did not act on it (429, 503) or refused it (4xx); any other failure (a lost answer, a 5xx, a
    lookup that failed) leaves it open.
    """
    if isinstance(exc, BlinkStartUncertain):
        return False
    refusals = (BlinkClientError, BlinkConfigurationError)
    return is_transient(exc, idempotent=False) or isinstance(exc, refusals)


#: Added to the error of a call that is not idempotent and failed without showing whether Blink acted.
MAY_HAVE_REACHED_BLINK = (
    "The request may have reached Blink (the playbook may have started), so it was not repeated: "
    "check the playbook's runs in Blink before running it again."
)


#: Added to the last error of a start that kept failing ambiguously and whose run was not found.
NOT_FOUND_AFTER_AMBIGUOUS = (
    "The request may have reached Blink, but no execution it started was found when looked for: "
    "check the playbook's runs in Blink before running it again."
)


def explain_not_retried(exc: BaseException, *, idempotent: bool, looked_up: bool = False) -> None:
    """Say in ``exc`` that a non-idempotent call may have reached Blink, when its failure leaves that open."""
    if not idempotent and is_ambiguous(exc):
        note = NOT_FOUND_AFTER_AMBIGUOUS if looked_up else MAY_HAVE_REACHED_BLINK
        exc.args = (f"{exc.args[0] if exc.args else exc} {note}", *exc.args[1:])


class BlinkStartUncertain(BlinkError):
    """
    A start may have reached Blink, and looking for the run it may have started failed too.

    Not sent again (it may have started), not permanent: a task retry is still allowed.
    """


def lookup_failed(failure: BaseException, lookup_error: BlinkError) -> BlinkError:
    """The error for an ambiguous start whose run could not be looked for (``lookup_error``)."""
    if isinstance(lookup_error, BlinkPermanentError) and not isinstance(lookup_error, BlinkApiError):
        return lookup_error  # the lookup answered: several identical runs, none to pick
    return BlinkStartUncertain(
        f"{failure} Looking for the run it may have started failed: {lookup_error} {MAY_HAVE_REACHED_BLINK}"
    )


def recovered(failure: BaseException, recover: Callable[[], T]) -> T:
    """Run a start's ``recover`` after the ambiguous ``failure``; a failed lookup says both."""
    try:
        return recover()
    except BlinkError as lookup_error:
        raise lookup_failed(failure, lookup_error) from None


async def arecovered(failure: BaseException, recover: Callable[[], Awaitable[T]]) -> T:
    """Async :func:`recovered`."""
    try:
        return await recover()
    except BlinkError as lookup_error:
        raise lookup_failed(failure, lookup_error) from None


class _WaitHonouringRetryAfter(tenacity.wait.wait_base):
    """Exponential backoff with full jitter, or Blink's ``Retry-After`` when it sends one."""

    def __init__(self, initial: float, maximum: float) -> None:
        self._backoff = tenacity.wait_random_exponential(multiplier=initial, max=maximum)

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        wait = requested_wait(exc)
        return float(self._backoff(retry_state)) if wait is None else wait


@dataclass(frozen=True)
class RetryPolicy:
    """
    How often and how patiently a Blink call is retried.

    :param max_retries: retries after the first attempt (0 disables retrying).
    :param initial_delay: base of the exponential backoff, in seconds.
    :param max_delay: cap of one backoff wait, in seconds.
    """

    max_retries: int = 5
    initial_delay: float = 1.0
    max_delay: float = 30.0

    def retries_after(self, exc: BaseException, *, idempotent: bool, log: logging.Logger | Any) -> bool:
        """Whether a first attempt that failed with ``exc`` is retried (and say so in the log)."""
        if self.max_retries < 1 or not is_retryable(exc, idempotent=idempotent):
            return False
        log.warning("Blink call failed (attempt 1 of %d), retrying: %s", self.max_retries + 1, exc)
        return True

    def first_wait(self, exc: BaseException) -> float:
        """Seconds before the first retry: Blink's ``Retry-After``, else a jittered ``initial_delay``."""
        wait = requested_wait(exc)
        return random.uniform(0, self.initial_delay) if wait is None else wait

    def tenacity_kwargs(self, *, idempotent: bool, log: logging.Logger | Any) -> dict[str, Any]:
        """Arguments for ``tenacity.Retrying``/``AsyncRetrying`` running the retries after the first attempt."""

        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning(
                "Blink call failed (attempt %d of %d), retrying in %.1fs: %s",
                state.attempt_number + 1,
                self.max_retries + 1,
                state.upcoming_sleep,
                exc,
            )

        return {
            "retry": tenacity.retry_if_exception(lambda exc: is_retryable(exc, idempotent=idempotent)),
            "wait": _WaitHonouringRetryAfter(self.initial_delay, self.max_delay),
            "stop": tenacity.stop_after_attempt(self.max_retries),
            "before_sleep": before_sleep,
            "reraise": True,
        }
