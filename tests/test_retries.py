"""Which failures are retried, how long the hook waits, and which error comes out: sync and async alike.

The retry rule is unit-tested first; then one table of faults injected into the emulator runs through
the sync hook and through the async client, since both must follow the same rule.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import tenacity

from airflow_provider_blink.compat import AirflowException, AirflowFailException
from airflow_provider_blink.exceptions import (
    BlinkApiError,
    BlinkAuthenticationError,
    BlinkBadRequestError,
    BlinkClientError,
    BlinkConfigurationError,
    BlinkNotFoundError,
    BlinkPermanentError,
    BlinkPermissionError,
    BlinkRateLimitError,
    BlinkResponseError,
    BlinkServerError,
    BlinkTransportError,
    api_error_class,
)
from airflow_provider_blink.hooks import transport as retries
from airflow_provider_blink.hooks.blink import BlinkAsyncClient, BlinkHook
from airflow_provider_blink.hooks.transport import (
    MAX_RETRY_AFTER,
    RetryPolicy,
    is_retryable,
    is_transient,
    requested_wait,
)
from airflow_provider_blink.testing import BlinkEmulator, Fault

from support.connections import connection_json
from support.emulator import API_KEY, SHORT_TIMEOUT, SLOWER_THAN_TIMEOUT, inject, requests_to
from support.network import closed_port
from support.waiting import wait_for

MAY_HAVE_REACHED = "may have reached Blink"


def api_error(status: int, retry_after: float | None = None) -> BlinkApiError:
    return api_error_class(status)("Blink refused X", status=status, retry_after=retry_after)


# -- the rule -----------------------------------------------------------------------------------

RULE = [
    # error, retried when idempotent, retried when not idempotent (execute)
    (BlinkTransportError("refused", request_sent=False), True, True),
    (BlinkTransportError("reset", request_sent=True), True, False),
    (api_error(429), True, True),
    (api_error(429, retry_after=5), True, True),
    (api_error(429, retry_after=MAX_RETRY_AFTER + 1), False, False),
    (api_error(503), True, True),
    (api_error(503, retry_after=MAX_RETRY_AFTER + 1), False, False),
    (api_error(500), True, False),
    (api_error(502), True, False),
    (api_error(504), True, False),
    (api_error(400), False, False),
    (api_error(401), False, False),
    (api_error(403), False, False),
    (api_error(404), False, False),
    (api_error(408), False, False),
    (BlinkResponseError("not JSON"), False, False),
    (BlinkConfigurationError("no key"), False, False),
    (ValueError("a bug"), False, False),
]
RULE_IDS = [
    "transport-not-sent",
    "transport-sent",
    "429",
    "429-retry-after",
    "429-retry-after-too-long",
    "503",
    "503-retry-after-too-long",
    "500",
    "502",
    "504",
    "400",
    "401",
    "403",
    "404",
    "408",
    "unreadable-answer",
    "configuration",
    "other-exception",
]


@pytest.mark.parametrize(("error", "idempotent_retried", "post_retried"), RULE, ids=RULE_IDS)
def test_is_retryable(error, idempotent_retried, post_retried):
    assert is_retryable(error, idempotent=True) is idempotent_retried
    assert is_retryable(error, idempotent=False) is post_retried


@pytest.mark.parametrize(("error", "idempotent_retried", "post_retried"), RULE, ids=RULE_IDS)
def test_transient_is_retryable_whatever_the_wait_blink_asks_for(error, idempotent_retried, post_retried):
    """The one difference: a Retry-After longer than one call waits is still transient (a wait honours it)."""
    too_long = (requested_wait(error) or 0) > MAX_RETRY_AFTER
    assert is_transient(error, idempotent=True) is (idempotent_retried or too_long)
    assert is_transient(error, idempotent=False) is (post_retried or too_long)


@pytest.mark.parametrize(("error", "idempotent_retried", "post_retried"), RULE, ids=RULE_IDS)
def test_only_an_ambiguous_post_failure_says_it_may_have_reached_blink(
    error, idempotent_retried, post_retried
):
    before = str(error)

    retries.explain_not_retried(error, idempotent=False)

    assert (MAY_HAVE_REACHED in str(error)) is (idempotent_retried and not post_retried)
    assert str(error).startswith(before)


@pytest.mark.parametrize(
    ("error", "refused"),
    [
        (api_error(503), True),
        (api_error(429), True),
        (api_error(400), True),
        (api_error(404), True),
        (BlinkTransportError("refused", request_sent=False), True),
        (BlinkConfigurationError("no workspace"), True),
        (api_error(500), False),
        (api_error(502), False),
        (BlinkTransportError("reset", request_sent=True), False),
        (retries.BlinkStartUncertain("lookup failed too"), False),
        (BlinkPermanentError("several identical runs"), False),
    ],
    ids=lambda value: (
        type(value).__name__ + str(getattr(value, "status", "")) if isinstance(value, Exception) else ""
    ),
)
def test_a_start_counts_as_refused_only_when_blink_surely_started_nothing(error, refused):
    """What a try records after a failed start: refused (a retry starts afresh) or in flight (it looks)."""
    assert retries.start_refused(error) is refused


def test_idempotent_errors_are_never_annotated():
    error = BlinkTransportError("reset", request_sent=True)

    retries.explain_not_retried(error, idempotent=True)

    assert str(error) == "reset"


def retry_state(error: BaseException, attempt: int = 1) -> tenacity.RetryCallState:
    state = tenacity.RetryCallState(tenacity.Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    state.set_exception((type(error), error, None))
    return state


@pytest.mark.parametrize(
    ("retry_after", "expected"), [(1.0, 1.0), (0.0, 0.0), (42.5, 42.5)], ids=["1s", "0s", "42.5s"]
)
def test_wait_honours_retry_after(retry_after, expected):
    wait = RetryPolicy(initial_delay=0.01, max_delay=0.02).tenacity_kwargs(idempotent=True, log=None)["wait"]

    assert wait(retry_state(api_error(429, retry_after=retry_after))) == expected


@pytest.mark.parametrize(
    "error", [api_error(503), BlinkTransportError("reset")], ids=["no-retry-after", "transport"]
)
def test_wait_without_retry_after_is_capped_exponential_backoff(error):
    wait = RetryPolicy(initial_delay=1.0, max_delay=4.0).tenacity_kwargs(idempotent=True, log=None)["wait"]

    waits = [wait(retry_state(error, attempt)) for attempt in range(1, 10) for _ in range(20)]

    assert all(0 <= seconds <= 4.0 for seconds in waits)
    assert len(set(waits)) > 1  # jittered


@pytest.mark.parametrize("max_retries", [0, 1, 3], ids=["0", "1", "3"])
def test_the_policy_makes_one_attempt_and_max_retries_more(max_retries):
    calls = []
    policy = RetryPolicy(max_retries=max_retries, initial_delay=0, max_delay=0)

    def fail() -> None:
        calls.append(1)
        raise api_error(503)

    with pytest.raises(BlinkServerError):
        tenacity.Retrying(**policy.tenacity_kwargs(idempotent=True, log=_NullLog()))(fail)

    assert len(calls) == max_retries + 1


@pytest.mark.parametrize(
    ("error", "attempts"), [(api_error(503), 3), (api_error(404), 1)], ids=["transient", "permanent"]
)
def test_only_transient_errors_are_retried(error, attempts):
    calls = []
    log = _NullLog()
    policy = RetryPolicy(max_retries=2, initial_delay=0, max_delay=0)

    def fail() -> None:
        calls.append(1)
        raise error

    with pytest.raises(type(error)):
        tenacity.Retrying(**policy.tenacity_kwargs(idempotent=True, log=log))(fail)

    assert len(calls) == attempts
    assert len(log.warnings) == attempts - 1


def test_the_first_wait_honours_retry_after_else_jitters_within_the_initial_delay():
    wait = RetryPolicy(initial_delay=2.0).tenacity_kwargs(idempotent=True, log=None)["wait"]

    assert wait(retry_state(api_error(429, retry_after=7), 1)) == 7
    assert all(0 <= wait(retry_state(api_error(503), 1)) <= 2.0 for _ in range(50))


class _NullLog:
    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warning(self, message: str, *args: Any) -> None:
        self.warnings.append(message % args)


def test_policy_logs_each_retry_with_attempt_and_error():
    log = _NullLog()
    policy = RetryPolicy(max_retries=2, initial_delay=0, max_delay=0)

    with pytest.raises(BlinkServerError):
        tenacity.Retrying(**policy.tenacity_kwargs(idempotent=True, log=log))(_raise(api_error(502)))

    assert len(log.warnings) == 2, "one warning per retry: after attempt 1 and after attempt 2"
    assert log.warnings[0].startswith("Blink call failed (attempt 1 of 3), retrying in 0.0s: ")
    assert log.warnings[1].startswith("Blink call failed (attempt 2 of 3), retrying in 0.0s: ")
    assert "HTTP 502" in log.warnings[1]


def _raise(error: BaseException) -> Callable[[], None]:
    def fail() -> None:
        raise error

    return fail


# -- through the hook, against the emulator -----------------------------------------------------


@pytest.fixture
def fast_timeout(emulator, monkeypatch) -> BlinkEmulator:
    """The emulator as ``blink_default`` with a short request timeout, so ``slow`` faults time out."""
    monkeypatch.setenv("AIRFLOW_CONN_BLINK_DEFAULT", connection_json(emulator, timeout=SHORT_TIMEOUT))
    return emulator


GET_FAULTS = [
    pytest.param([Fault("get", "status", times=2, status=503)], None, 3, id="503-twice-then-ok"),
    pytest.param([Fault("get", "status", status=429)], None, 2, id="429-then-ok"),
    pytest.param([Fault("get", "status", times=2, status=500)], None, 3, id="500-twice-then-ok"),
    pytest.param([Fault("get", "status", times=None, status=500)], BlinkServerError, 3, id="500-always"),
    pytest.param([Fault("get", "status_after", status=502)], None, 2, id="502-after-processing"),
    pytest.param([Fault("get", "html", status=504)], None, 2, id="504-html"),
    pytest.param([Fault("get", "close_before")], None, 2, id="closed-before-answer"),
    pytest.param([Fault("get", "close_after")], None, 2, id="closed-after-processing"),
    pytest.param([Fault("get", "slow", delay=SLOWER_THAN_TIMEOUT)], None, 2, id="slower-than-timeout"),
    pytest.param([Fault("get", "malformed_json")], BlinkResponseError, 1, id="malformed-json"),
    pytest.param([Fault("get", "empty")], BlinkResponseError, 1, id="empty-body"),
    pytest.param(
        [Fault("get", "status", status=429, retry_after=MAX_RETRY_AFTER + 1)],
        BlinkRateLimitError,
        1,
        id="retry-after-too-long",
    ),
]


@pytest.mark.parametrize(("faults", "error", "attempts"), GET_FAULTS)
def test_get_execution_under_faults(fast_timeout, client, faults, error, attempts):
    [execution_id] = fast_timeout.seed_executions("quick-ok", 1)
    emu = inject(fast_timeout, faults)

    if error is None:
        assert client()("get_execution", execution_id)["id"] == execution_id
    else:
        with pytest.raises(error) as info:
            client()("get_execution", execution_id)
        assert execution_id in str(info.value)
        assert MAY_HAVE_REACHED not in str(info.value)

    gets = wait_for(lambda: len(r := requests_to(emu, "GET", execution_id)) >= attempts and r)
    assert len(gets) == attempts


EXECUTE_FAULTS = [
    # faults, POSTs sent, whether the hook looked for a run the failed attempt may have started
    pytest.param([Fault("execute", "status", times=2, status=503)], 3, False, id="503-twice-then-ok"),
    pytest.param([Fault("execute", "status", status=429)], 2, False, id="429-then-ok"),
    pytest.param(
        [Fault("execute", "status", status=429), Fault("execute", "status", status=503)],
        3,
        False,
        id="429-then-503-then-ok",
    ),
    pytest.param(
        [Fault("execute", "status_after", status=502)], 1, True, id="502-after-starting-adopts-the-run"
    ),
    pytest.param([Fault("execute", "status", status=500)], 2, True, id="500-before-starting-sends-again"),
    pytest.param([Fault("execute", "html", status=504)], 2, True, id="504-html-before-starting-sends-again"),
    pytest.param([Fault("execute", "close_after")], 1, True, id="dropped-after-starting-adopts-the-run"),
    pytest.param([Fault("execute", "close_before")], 2, True, id="dropped-before-starting-sends-again"),
    pytest.param(
        [Fault("execute", "slow_after", delay=SLOWER_THAN_TIMEOUT)],
        1,
        True,
        id="answer-slower-than-timeout-adopts-the-run",
    ),
]


@pytest.mark.parametrize(("faults", "posts", "looked_up"), EXECUTE_FAULTS)
def test_execute_starts_exactly_one_run_through_faults(fast_timeout, client, faults, posts, looked_up):
    emu = inject(fast_timeout, faults)

    execution_id = client()("execute_playbook", "quick-ok", input_values={"host": "h-1"})

    assert [e["id"] for e in emu.executions] == [execution_id]
    wait_for(lambda: len(requests_to(emu, "POST", "/execute")) >= posts)  # a late answer is logged late
    assert len(requests_to(emu, "POST", "/execute")) == posts
    assert bool(requests_to(emu, "GET", "/executions")) == looked_up


def test_execute_that_keeps_failing_ambiguously_says_so(fast_timeout, client):
    fast_timeout.inject(Fault("execute", "close_before", times=None))

    with pytest.raises(BlinkTransportError) as info:
        client()("execute_playbook", "quick-ok")

    assert "no execution it started was found" in str(info.value)
    assert "before running it again" in str(info.value)
    assert len(requests_to(fast_timeout, "POST", "/execute")) == 3  # retry_limit=2
    assert fast_timeout.executions == []


def test_execute_does_not_guess_between_identical_runs(fast_timeout, client):
    other = client()("execute_playbook", "quick-ok", input_values={"host": "h-1"})
    fast_timeout.inject(Fault("execute", "close_after"))

    with pytest.raises(BlinkPermanentError) as info:
        client()("execute_playbook", "quick-ok", input_values={"host": "h-1"})

    assert other in str(info.value)
    assert len(fast_timeout.executions) == 2  # nothing sent a third time


def test_execute_tells_runs_apart_by_their_inputs(fast_timeout, client):
    other = client()("execute_playbook", "quick-ok", input_values={"host": "h-0"})
    fast_timeout.inject(Fault("execute", "close_after"))

    execution_id = client()("execute_playbook", "quick-ok", input_values={"host": "h-1"})

    assert execution_id != other
    assert [e["id"] for e in fast_timeout.executions] == [other, execution_id]


def test_run_sync_is_never_repeated_after_an_ambiguous_failure(fast_timeout, client):
    fast_timeout.inject(Fault("execute", "close_after"))

    with pytest.raises(BlinkTransportError) as info:
        client()("run_playbook_sync", "quick-ok")

    assert MAY_HAVE_REACHED in str(info.value)
    assert len(requests_to(fast_timeout, "POST", "/execute")) == 1


def test_retry_after_is_honoured(emulator, client):
    emulator.inject(Fault("execute", "status", status=429, retry_after=1))
    started = time.monotonic()

    execution_id = client()("execute_playbook", "quick-ok")

    assert time.monotonic() - started >= 0.9  # waited as Blink asked, not the 0.01 s backoff
    assert [e["id"] for e in emulator.executions] == [execution_id]
    assert [r.status for r in requests_to(emulator, "POST", "/execute")] == [429, 200]


def test_persistent_server_error_names_the_last_status_and_blinks_message(emulator, client):
    [execution_id] = emulator.seed_executions("quick-ok", 1)
    emulator.inject(Fault("get", "status", times=2, status=503))
    emulator.inject(Fault("get", "status", times=None, status=500))

    with pytest.raises(BlinkServerError) as info:
        client()("get_execution", execution_id)

    error = info.value
    assert error.status == 500
    assert error.message == "Internal Server Error"
    assert error.details == "injected by the Blink emulator"
    assert error.identifier
    assert "HTTP 500, message='Internal Server Error'" in str(error)
    assert [r.status for r in requests_to(emulator, "GET", execution_id)] == [503, 503, 500]
    assert not isinstance(error, AirflowFailException)  # transient: the task may retry


def test_gateway_html_page_is_quoted_in_the_error(emulator, client):
    [execution_id] = emulator.seed_executions("quick-ok", 1)
    emulator.inject(Fault("get", "html", times=None, status=502))

    with pytest.raises(BlinkServerError) as info:
        client()("get_execution", execution_id)

    assert info.value.status == 502
    assert "<title>502 Bad Gateway</title>" in info.value.message
    assert "502 Bad Gateway" in str(info.value)
    assert len(requests_to(emulator, "GET", execution_id)) == 3


@pytest.fixture
def count_attempts(monkeypatch) -> list[str]:
    """Record every attempt either client makes (there is no server to count them when none listens)."""
    attempts: list[str] = []
    sync_send, async_send = BlinkHook._send, BlinkAsyncClient._send

    def send(self, call):
        attempts.append(call.what)
        return sync_send(self, call)

    async def asend(self, call):
        attempts.append(call.what)
        return await async_send(self, call)

    monkeypatch.setattr(BlinkHook, "_send", send)
    monkeypatch.setattr(BlinkAsyncClient, "_send", asend)
    return attempts


@pytest.mark.parametrize(
    ("method", "args"),
    [("get_execution", ("e-1",)), ("execute_playbook", ("quick-ok",))],
    ids=["get", "execute"],
)
def test_connection_refused_is_retried_even_for_execute(monkeypatch, client, count_attempts, method, args):
    conn = connection_json(f"http://127.0.0.1:{closed_port()}", timeout=2)
    monkeypatch.setenv("AIRFLOW_CONN_BLINK_DEFAULT", conn)

    with pytest.raises(BlinkTransportError) as info:
        client()(method, *args)

    assert info.value.request_sent is False
    message = str(info.value)
    assert message.startswith("Blink did not answer ")
    assert "Nothing was sent. Check connection 'blink_default': its Blink URL http://127.0.0.1:" in message
    assert MAY_HAVE_REACHED not in message
    assert len(count_attempts) == 3


@pytest.mark.parametrize(
    ("host", "assumed"), [("https://{address}", False), ("{address}", True)], ids=["https", "no-scheme"]
)
def test_a_start_that_never_reached_blink_says_what_to_check_and_is_never_ambiguous(
    monkeypatch, emulator, client, host, assumed
):
    """A TLS handshake with a plain-HTTP server fails before anything is sent: the start is not ambiguous."""
    address = emulator.url.removeprefix("http://")
    conn = connection_json(host.format(address=address), key=emulator.api_key, retry_limit=0)
    monkeypatch.setenv("AIRFLOW_CONN_BLINK_DEFAULT", conn)

    with pytest.raises(BlinkTransportError) as info:
        client()("execute_playbook", "quick-ok")

    message = str(info.value)
    assert info.value.request_sent is False
    assert MAY_HAVE_REACHED not in message
    assert f"Check connection 'blink_default': its Blink URL https://{address}" in message
    assert ("https:// was assumed" in message) is assumed
    assert emulator.request_counts().get("execute", 0) == 0


@pytest.fixture
def latin1_gateway(monkeypatch) -> Iterator[None]:
    """``blink_default`` behind a gateway that answers every request with a 502 page in Latin-1."""
    page = "<html><body>502 Passerelle d\u00e9faillante</body></html>".encode("latin-1")
    answer = (
        b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nConnection: close\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(page), page)
    )
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(answer)

    threading.Thread(target=serve, daemon=True).start()
    conn = connection_json(f"http://127.0.0.1:{server.getsockname()[1]}", retry_limit=0)
    monkeypatch.setenv("AIRFLOW_CONN_BLINK_DEFAULT", conn)
    yield
    server.close()


def test_an_error_page_that_is_not_utf8_is_still_a_server_error(latin1_gateway, client):
    with pytest.raises(BlinkServerError) as info:
        client()("get_execution", "e-1")

    assert info.value.status == 502
    assert info.value.message.startswith("<html><body>502 Passerelle d")
    assert "faillante</body></html>" in info.value.message


# -- errors that retrying cannot fix ------------------------------------------------------------


CLIENT_ERRORS = [
    (
        "blink_default",
        "list_executions",
        {"filter": {"state": {"$frob": 1}}},
        BlinkBadRequestError,
        400,
        "invalid query",
        "input_values",
    ),
    (
        "blink_wrong_key",
        "list_executions",
        {"limit": 1},
        BlinkAuthenticationError,
        401,
        "Unauthorized",
        "'API Key'",
    ),
    (
        "blink_viewer",
        "execute_playbook",
        {"playbook_id": "quick-ok"},
        BlinkPermissionError,
        403,
        "Forbidden",
        "not Viewer",
    ),
    (
        "blink_default",
        "get_execution",
        {"execution_id": "e-1", "workspace_id": "no-such-workspace"},
        BlinkNotFoundError,
        404,
        "workspace not found",
        "Check the workspace_id",
    ),
    (
        "blink_default",
        "execute_playbook",
        {"playbook_id": "no-such-playbook"},
        BlinkNotFoundError,
        404,
        "playbook not found",
        "playbook_id",
    ),
    (
        "blink_default",
        "get_execution",
        {"execution_id": "no-such-execution"},
        BlinkNotFoundError,
        404,
        "execution not found",
        "execution_id",
    ),
]


@pytest.mark.parametrize(
    ("conn_id", "method", "kwargs", "error_class", "status", "message", "advice"),
    CLIENT_ERRORS,
    ids=["400-bad-query", "401-wrong-key", "403-viewer", "404-workspace", "404-playbook", "404-execution"],
)
def test_client_errors_fail_at_once_with_blinks_facts(
    blink, client, conn_id, method, kwargs, error_class, status, message, advice
):
    with pytest.raises(error_class) as info:
        client(conn_id)(method, **kwargs)

    error = info.value
    assert isinstance(error, BlinkClientError)
    assert isinstance(error, AirflowFailException)  # the task fails without spending its retries
    assert isinstance(error, AirflowException)
    assert error.status == status
    assert error.message == message
    assert error.details  # Blink's explanation
    assert error.identifier  # what Blink support asks for
    assert f"HTTP {status}, message={message!r}" in str(error)
    assert f"identifier={error.identifier!r}" in str(error)
    assert advice in str(error)
    assert API_KEY not in str(error)
    assert len(blink.requests) == 1  # not retried
    assert blink.executions == []


def test_a_viewer_may_still_read(blink, client):
    [execution_id] = blink.seed_executions("quick-ok", 1)

    assert client("blink_viewer")("get_execution", execution_id)["state_ui"] == "Completed"
