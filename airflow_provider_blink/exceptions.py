"""The provider's exceptions: one hierarchy under ``AirflowException``, each carrying the facts."""

from __future__ import annotations

from typing import Any

from airflow_provider_blink.compat import AirflowException, AirflowFailException


class BlinkError(AirflowException):
    """
    Base class of every error this provider raises.

    :ivar foreign_answer: for an error caused by an answer that is not Blink's (not JSON, not
        Blink's error object, not the shape asked for): its status and content type, e.g.
        ``"HTTP 200, text/html"``, to show where the body must not be (the connection test).
    """

    foreign_answer: str | None = None


class BlinkPermanentError(BlinkError, AirflowFailException):
    """A failure that retrying the task cannot fix: the task fails without spending its retries."""


class BlinkConfigurationError(BlinkPermanentError):
    """The connection or a task argument is wrong."""


class BlinkResponseError(BlinkError):
    """Blink answered with something this provider cannot read (not JSON, missing fields)."""


class BlinkTransportError(BlinkError):
    """
    Blink could not be reached or did not answer in time (after the hook's retries).

    :param request_sent: whether the request may have reached Blink; ``False`` only when the
        connection was never established, so a non-idempotent call can be safely repeated.
    """

    def __init__(self, message: str, *, request_sent: bool = True) -> None:
        super().__init__(message)
        self.request_sent = request_sent


class BlinkStartUncertain(BlinkError):
    """
    A start may have reached Blink, and looking for the run it may have started failed too.

    Not sent again (it may have started), not permanent: a task retry is still allowed.
    """


class BlinkLookupIncomplete(BlinkError):
    """More candidates than a lookup reads: it cannot say that none of them is the one."""


class BlinkApiError(BlinkError):
    """
    Blink answered with an HTTP error; carries the status and Blink's ``ErrorWrapper`` fields.

    :param status: HTTP status code.
    :param message: Blink's ``message``.
    :param details: Blink's ``details``.
    :param identifier: Blink's ``identifier`` (quote it to Blink support).
    :param retry_after: seconds from a ``Retry-After`` header, if any.
    :param data: Blink's ``data`` object, if any.
    """

    hint = ""

    def __init__(
        self,
        summary: str,
        *,
        status: int,
        message: str = "",
        details: str = "",
        identifier: str = "",
        retry_after: float | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        self.status = status
        self.message = message
        self.details = details
        self.identifier = identifier
        self.retry_after = retry_after
        self.data = data or {}
        parts = [f"{summary}: HTTP {status}"]
        if message:
            parts.append(f"message={message!r}")
        if details:
            parts.append(f"details={details!r}")
        if identifier:
            parts.append(f"identifier={identifier!r}")
        text = ", ".join(parts)
        if self.hint:
            text = f"{text}. {self.hint}"
        super().__init__(text)


class BlinkClientError(BlinkApiError, BlinkPermanentError):
    """A 4xx that retrying cannot fix; fails the task without spending its retries."""


class BlinkBadRequestError(BlinkClientError):
    """400: Blink rejected the request (invalid input, or an execution not in a running state)."""

    hint = "Check the playbook's input_values/event against the playbook's inputs in Blink."


class BlinkAuthenticationError(BlinkClientError):
    """401: the API key is invalid or expired."""

    hint = "Set a valid API key in the connection's 'API Key' (password) field."


class BlinkPermissionError(BlinkClientError):
    """403: the key's user has no role allowing this in the workspace."""

    hint = "Give the API key's user a role that may run playbooks (not Viewer) in this workspace."


class BlinkNotFoundError(BlinkClientError):
    """404: the workspace, playbook or execution does not exist (or the key cannot see it)."""

    hint = "Check the workspace_id and playbook_id/execution_id (IDs, not names)."


class BlinkCancelRefusedError(BlinkBadRequestError):
    """400 to a cancel while the execution still runs (not the documented "already finished")."""

    hint = "Blink did not cancel the execution: check it in Blink and cancel it there if needed."


class BlinkRedirectError(BlinkApiError, BlinkPermanentError):
    """3xx: the Blink URL redirects elsewhere; never followed, so the API key goes nowhere else."""

    hint = (
        "Redirects are not followed: the API key goes only to the connection's Blink URL. "
        "If Blink has moved, set the connection's Blink URL to its new address."
    )


class BlinkRateLimitError(BlinkApiError):
    """429: Blink asked us to slow down; retried, honouring ``Retry-After``."""


class BlinkServerError(BlinkApiError):
    """5xx: Blink or a proxy in front of it failed; retried."""


class BlinkExecutionFailed(BlinkError):
    """The playbook execution ended in a failure state (failed, cancelled, timed out ...)."""


class BlinkOutputUnavailable(BlinkError):
    """A completed execution's output could not be read (``require_output=True``); a retry follows it."""


class BlinkExecutionTimeout(BlinkError):
    """The task's own ``timeout`` expired before the execution finished."""


def api_error_class(status: int) -> type[BlinkApiError]:
    """Map an HTTP status to the exception class that describes it."""
    by_status: dict[int, type[BlinkApiError]] = {
        400: BlinkBadRequestError,
        401: BlinkAuthenticationError,
        403: BlinkPermissionError,
        404: BlinkNotFoundError,
        429: BlinkRateLimitError,
    }
    if status in by_status:
        return by_status[status]
    if status >= 500:
        return BlinkServerError
    if 400 <= status < 500:
        return BlinkClientError
    return BlinkApiError


def redact(exc: BaseException, secret: str) -> BaseException:
    """
    Replace ``secret`` wherever ``exc``'s text carries it (e.g. a proxy echoing headers); return ``exc``.

    Like Airflow's secrets masker, values shorter than 5 characters are left alone: they would
    mangle ordinary words and cannot be real API keys.
    """
    if len(secret) < 5:
        return exc
    exc.args = tuple(arg.replace(secret, "***") if isinstance(arg, str) else arg for arg in exc.args)
    for name in ("message", "details", "identifier"):
        value = getattr(exc, name, None)
        if isinstance(value, str):
            setattr(exc, name, value.replace(secret, "***"))
    return exc
