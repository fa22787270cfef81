"""
The attempts of one Blink call: first try, retries, recovery after an ambiguous failure.

The bookkeeping is written once here and does no I/O itself: :class:`CallAttempts` hands out
:class:`Step` objects (send the request, look up what an ambiguous failure did, or wait) and
learns each step's outcome; the sync hook and the async client each drive it in a few lines::

    for step in attempts:
        with step:
            step.result = step.action()  # async: await step.action()
    return attempts.result
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Generator, Iterator
from types import TracebackType
from typing import Any

import tenacity

from airflow_provider_blink import api
from airflow_provider_blink.exceptions import BlinkError, redact
from airflow_provider_blink.hooks.connection import BlinkConnectionConfig
from airflow_provider_blink.retries import (
    BlinkStartUncertain,
    explain_not_retried,
    is_ambiguous,
    lookup_failed,
)


class Step:
    """
    One thing a client does for a call; it records the outcome (a result or a Blink error).

    :param action: what to run: send the request, recover, or sleep (sync or async alike).
    """

    def __init__(self, action: Callable[[], Any]) -> None:
        self.action = action
        self.result: Any = None
        self.error: BlinkError | None = None

    def __enter__(self) -> Step:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        if isinstance(exc, BlinkError):
            self.error = exc
            return True
        return False


class CallAttempts:
    """
    The steps of one API call, with the connection's retry policy.

    The first attempt runs outside tenacity, so the usual call pays for no retry machinery. A
    failed attempt's error has the API key redacted before anything logs it. When a call that is
    not idempotent fails ambiguously, ``recover`` looks for what the failed attempt did before the
    call is sent again, and once more after the last attempt (a lookup that fails says so with the
    failure it looked after, :func:`.lookup_failed`); a call that is given up says in its error
    whether it may have reached Blink (:func:`.explain_not_retried`).

    :param call: the API call.
    :param config: the connection (retry policy and the key to redact).
    :param log: where retries are logged.
    :param send: sends an API call once (returns the answer, or an awaitable of it).
    :param sleep: waits so many seconds (``time.sleep`` or ``asyncio.sleep``).
    :param recover: for a call that is not idempotent: finds what an ambiguous failure did, or ``None``.
    :param retry_when: narrows the policy: a failure it would retry is retried only if this says so
        too (``None``: every failure the policy retries). The caller then handles the others itself.
    """

    def __init__(
        self,
        call: api.ApiCall[Any],
        config: BlinkConnectionConfig,
        log: logging.Logger | Any,
        send: Callable[[api.ApiCall[Any]], Any],
        sleep: Callable[[float], Any],
        recover: Callable[[], Any] | None = None,
        retry_when: Callable[[BaseException], bool] | None = None,
    ) -> None:
        self._call = call
        self._config = config
        self._log = log
        self._send = functools.partial(send, call)
        self._sleep = sleep
        self._recover = recover
        self._retry_when = retry_when
        self._idempotent = call.idempotent or recover is not None
        self._ambiguous = False
        self._last: BlinkError | None = None  # the last attempt's error
        #: The call's result, once the steps have run out without an error.
        self.result: Any = None

    def __iter__(self) -> Iterator[Step]:
        return self._steps()

    def _steps(self) -> Generator[Step, None, None]:
        first = Step(self._send)
        yield first
        if first.error is None:
            self.result = first.result
            return
        exc = first.error
        redact(exc, self._config.api_key)
        if not self._retries_after(exc):
            explain_not_retried(exc, idempotent=self._call.idempotent)
            raise exc
        self._ambiguous, self._last = is_ambiguous(exc), exc
        yield Step(functools.partial(self._sleep, self._config.retry.first_wait(exc)))
        try:
            yield from self._retries()
        except BlinkStartUncertain:
            raise
        except BlinkError as exc:  # already redacted: by the attempt, or by recover()'s own call
            if (yield from self._recovered(exc)):
                return
            explain_not_retried(exc, idempotent=self._call.idempotent, looked_up=self._recovers)
            raise

    def _retries_after(self, exc: BlinkError) -> bool:
        """Whether a first attempt that failed with ``exc`` is retried: the policy's rule, narrowed."""
        if self._retry_when is not None and not self._retry_when(exc):
            return False
        return self._config.retry.retries_after(exc, idempotent=self._idempotent, log=self._log)

    def _retries(self) -> Generator[Step, None, None]:
        """The attempts after the first, run by tenacity; its waits become steps too."""
        waits: list[float] = []
        kwargs = self._config.retry.tenacity_kwargs(idempotent=self._idempotent, log=self._log)
        if self._retry_when is not None:
            kwargs["retry"] &= tenacity.retry_if_exception(self._retry_when)
        for attempt in tenacity.Retrying(**kwargs, sleep=waits.append):
            if waits:
                yield Step(functools.partial(self._sleep, float(waits.pop())))
            with attempt:
                if self._last is not None and (yield from self._recovered(self._last)):
                    return
                try:
                    self.result = yield from self._run(self._send)
                    return
                except BlinkError as exc:
                    self._ambiguous, self._last = self._ambiguous or is_ambiguous(exc), exc
                    redact(exc, self._config.api_key)  # before the retry warning logs it
                    raise
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    @property
    def _recovers(self) -> bool:
        return self._ambiguous and self._recover is not None

    def _recovered(self, failure: BlinkError) -> Generator[Step, None, bool]:
        """After the ambiguous ``failure``, look for what it did; whether that is the call's result."""
        if not self._recovers or self._recover is None:
            return False
        try:
            found = yield from self._run(self._recover)
        except BlinkError as lookup_error:
            raise lookup_failed(failure, lookup_error) from None
        if found is None:
            return False
        self.result = found
        return True

    @staticmethod
    def _run(action: Callable[[], Any]) -> Generator[Step, None, Any]:
        step = Step(action)
        yield step
        if step.error is not None:
            raise step.error
        return step.result
