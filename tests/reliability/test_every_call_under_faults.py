"""Transient versus permanent, for every call: list, cancel, steps and paging, sync and async.

tests/test_retries.py holds the fault tables of ``get_execution`` and ``execute_playbook``; this
module runs the same kinds of faults through the remaining calls, each through ``BlinkHook`` and
through ``BlinkHook.async_client()``, since both must follow one rule:

* a transient fault within the retry budget: the call succeeds, after exactly the expected number of
  requests, and a ``Retry-After`` is waited for rather than the (much shorter) backoff;
* a persistent fault: the call fails within the documented bound (below), with an error naming the
  last status and Blink's message, and never one that says the playbook failed;
* 400/401/403/404: no retry, an immediate error with Blink's facts (except that a 400 to a cancel
  means the execution had already finished: the hook answers ``False``, by design).

The documented bound (README, "What happens when things go wrong"): ``retry_limit`` retries after the
first attempt, each attempt bounded by the connection's ``timeout`` to connect and the same to wait
for the answer, and waits of exponential backoff with full jitter starting at ``retry_delay`` and
capped at 30 s (:class:`~airflow_provider_blink.hooks.transport.RetryPolicy`). (The read timeout is per
read, as in requests and aiohttp: it bounds a Blink that answers nothing, not one that trickles.) The connection in these tests
(tests/support/connections.py) uses ``retry_limit=2`` and ``retry_delay=0.01``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from airflow_provider_blink import endpoints
from airflow_provider_blink.compat import AirflowFailException
from airflow_provider_blink.exceptions import (
    BlinkAuthenticationError,
    BlinkBadRequestError,
    BlinkClientError,
    BlinkError,
    BlinkExecutionFailed,
    BlinkNotFoundError,
    BlinkPermissionError,
    BlinkResponseError,
    BlinkServerError,
    BlinkTransportError,
)
from airflow_provider_blink.hooks.blink import BlinkHook
from airflow_provider_blink.hooks.transport import RetryPolicy
from airflow_provider_blink.testing import BlinkEmulator, Fault

from support.clients import Client
from support.connections import FAST_RETRIES, connection_json
from support.emulator import requests_to
from support.waiting import wait_for

RETRY_LIMIT: int = FAST_RETRIES["retry_limit"]
ATTEMPTS = RETRY_LIMIT + 1
#: The request timeout of the ``short_timeout`` connection, so ``slow`` faults time out quickly.
TIMEOUT = 0.3


@pytest.fixture
def short_timeout(emulator, monkeypatch) -> BlinkEmulator:
    """The emulator as ``blink_default`` with a 0.3 s request timeout."""
    monkeypatch.setenv("AIRFLOW_CONN_BLINK_DEFAULT", connection_json(emulator, timeout=TIMEOUT))
    return emulator


def documented_bound(timeout: float, retry_limit: int = RETRY_LIMIT, retry_delay: float = 0.01) -> float:
    """The longest a failing call may take under the documented retry policy (no ``Retry-After``)."""
    policy = RetryPolicy(max_retries=retry_limit, initial_delay=retry_delay)
    attempts = (policy.max_retries + 1) * 2 * timeout  # connect timeout + read timeout each
    waits = sum(min(policy.max_delay, policy.initial_delay * 2**n) for n in range(policy.max_retries))
    return attempts + waits


class Call:
    """One endpoint of the registry, called through its hook method against a prepared emulator."""

    def __init__(self, endpoint: endpoints.Endpoint) -> None:
        self.name = endpoint.hook_methods[0]
        self.endpoint = endpoint.name
        self.method = endpoint.method

    def prepare(self, emu: BlinkEmulator) -> dict[str, Any]:
        """Create what the call works on; return its keyword arguments."""
        if self.name == "list_executions":
            emu.seed_executions("quick-ok", 3)
            return {"limit": 10}
        if self.name == "cancel_execution":
            return {"execution_id": start("slow")}
        [execution_id] = emu.seed_executions("quick-ok", 1)
        return {"execution_id": execution_id}

    def requests(self, emu: BlinkEmulator) -> list[Any]:
        return [r for r in emu.requests if r.endpoint == self.endpoint]

    def check_result(self, emu: BlinkEmulator, kwargs: dict[str, Any], result: Any) -> None:
        if self.name == "list_executions":
            assert result["total"] == 3
            assert len(result["results"]) == 3
        elif self.name == "cancel_execution":
            assert emu.execution(kwargs["execution_id"])["state_ui"] == "Cancelled"
        else:
            assert result, "the steps came back"
            assert [step["step_id"] for step in result] == ["step_1"]


#: Every endpoint of the registry but those tests/test_retries.py holds the fault tables of.
CALLS = [Call(endpoint) for name, endpoint in endpoints.ENDPOINTS.items() if name not in ("execute", "get")]
CALL_IDS = [call.endpoint for call in CALLS]
EACH_CALL = pytest.mark.parametrize("call", CALLS, ids=CALL_IDS)


def start(playbook_id: str) -> str:
    """Start a run through the sync hook (before any fault is injected)."""
    return BlinkHook().execute_playbook(playbook_id)


def invoke(client: Client, call: Call, kwargs: dict[str, Any]) -> Any:
    return client(call.name, **kwargs)


# -- transient faults within the retry budget: the call succeeds ----------------------------------

TRANSIENT = [
    # fault kind, its settings, requests sent
    ("status", {"status": 503, "times": RETRY_LIMIT}, ATTEMPTS),
    ("status", {"status": 500, "times": RETRY_LIMIT}, ATTEMPTS),
    ("status", {"status": 429}, 2),
    ("html", {"status": 504}, 2),
    ("close_before", {}, 2),
    ("slow", {"delay": 2 * TIMEOUT}, 2),
]
TRANSIENT_IDS = [
    "503-twice",
    "500-twice",
    "429-once",
    "504-gateway-page",
    "dropped-unread",
    "slower-than-timeout",
]


@EACH_CALL
@pytest.mark.parametrize(("kind", "settings", "sent"), TRANSIENT, ids=TRANSIENT_IDS)
def test_transient_faults_within_the_budget_are_ridden_out(short_timeout, client, call, kind, settings, sent):
    emu = short_timeout
    kwargs = call.prepare(emu)
    emu.inject(Fault(call.endpoint, kind, **settings))

    result = invoke(client(), call, kwargs)

    call.check_result(emu, kwargs, result)
    if call.name == "cancel_execution":
        assert result is True
    wait_for(lambda: len(call.requests(emu)) >= sent)  # a slow answer is logged when it is sent
    assert len(call.requests(emu)) == sent


@pytest.mark.parametrize("kind", ["close_after", "status_after"], ids=["dropped-after", "502-after"])
@pytest.mark.parametrize("call", CALLS[::2], ids=CALL_IDS[::2])
def test_reads_whose_answer_was_lost_are_simply_read_again(emulator, client, call, kind):
    kwargs = call.prepare(emulator)
    emulator.inject(Fault(call.endpoint, kind, status=502 if kind == "status_after" else None))

    result = invoke(client(), call, kwargs)

    call.check_result(emulator, kwargs, result)
    assert len(call.requests(emulator)) == 2


@pytest.mark.parametrize("kind", ["close_after", "status_after"], ids=["dropped-after", "502-after"])
def test_a_cancel_whose_answer_was_lost_is_sent_again_and_the_run_stays_cancelled(emulator, client, kind):
    execution_id = start("slow")
    emulator.inject(Fault("cancel", kind, status=502 if kind == "status_after" else None))

    cancelled = client()("cancel_execution", execution_id)

    assert emulator.execution(execution_id)["state_ui"] == "Cancelled"
    assert [r.status for r in requests_to(emulator, "POST", "/cancel")][-1] == 400
    # The first attempt cancelled it; the repeat finds it no longer running, and Blink cannot say
    # who stopped it, so the hook reports "had already finished".
    assert cancelled is False


@EACH_CALL
def test_retry_after_is_honoured(emulator, client, call):
    kwargs = call.prepare(emulator)
    emulator.inject(Fault(call.endpoint, "status", status=429, retry_after=0.3))
    started = time.monotonic()

    result = invoke(client(), call, kwargs)

    assert time.monotonic() - started >= 0.28, "waited as Blink asked, not the 0.01 s backoff"
    call.check_result(emulator, kwargs, result)
    assert [r.status for r in call.requests(emulator)] == [429, 200]


# -- persistent faults: a bounded failure that names the last status and Blink's message ------------


@EACH_CALL
def test_persistent_server_errors_fail_in_bounded_time_naming_the_last_status(emulator, client, call):
    kwargs = call.prepare(emulator)
    emulator.inject(Fault(call.endpoint, "status", status=503, times=RETRY_LIMIT))
    emulator.inject(Fault(call.endpoint, "status", status=500, times=None))
    started = time.monotonic()

    with pytest.raises(BlinkServerError) as info:
        invoke(client(), call, kwargs)

    assert time.monotonic() - started < documented_bound(timeout=5)
    error = info.value
    assert error.status == 500
    assert error.message == "Internal Server Error"
    assert error.details == "injected by the Blink emulator"
    assert "HTTP 500, message='Internal Server Error'" in str(error)
    assert f"{call.method} /api/v1/workspace/" in str(error), "the error says which call failed"
    assert [r.status for r in call.requests(emulator)] == [503] * RETRY_LIMIT + [500]
    assert_not_a_failed_run(error)


@EACH_CALL
@pytest.mark.parametrize(
    "fault",
    [Fault("*", "slow", delay=2 * TIMEOUT, times=None), Fault("*", "close_before", times=None)],
    ids=["always-slower-than-timeout", "always-dropped"],
)
def test_persistent_transport_faults_fail_in_bounded_time(short_timeout, client, call, fault):
    emu = short_timeout
    kwargs = call.prepare(emu)
    emu.inject(Fault(call.endpoint, fault.kind, delay=fault.delay, times=None))
    started = time.monotonic()

    with pytest.raises(BlinkTransportError) as info:
        client()(call.name, **kwargs)

    elapsed = time.monotonic() - started
    assert elapsed < documented_bound(timeout=TIMEOUT) + 1.0  # + slack for a busy machine
    assert str(info.value).startswith(f"Blink did not answer {call.method} /api/v1/workspace/")
    assert_not_a_failed_run(info.value)
    if call.name == "cancel_execution":
        assert emu.execution(kwargs["execution_id"])["state_ui"] in ("In Progress", "Cancelled")
    # aiohttp itself sends an idempotent request (GET) once more when the server closes the
    # connection before answering (RFC 9112 9.3.1.1), so each async attempt at a read is two requests.
    sent = ATTEMPTS * (
        2 if client().mode == "async" and call.method == "GET" and fault.kind == "close_before" else 1
    )
    wait_for(lambda: len(call.requests(emu)) >= sent)
    assert len(call.requests(emu)) == sent


def assert_not_a_failed_run(error: BaseException) -> None:
    """A transport fault is never reported as "the playbook failed", nor as beyond a task retry."""
    assert isinstance(error, BlinkError)
    assert not isinstance(error, BlinkExecutionFailed)
    assert not isinstance(error, AirflowFailException)
    assert "ended in state" not in str(error)


def test_the_documented_bound_is_what_the_policy_allows():
    # Production defaults: 5 retries, 1 s first wait, waits capped at 30 s, 30 s request timeout.
    assert documented_bound(timeout=30, retry_limit=5, retry_delay=1.0) == 6 * 60 + (1 + 2 + 4 + 8 + 16)
    # The tests' connection: 3 attempts of at most 2 x 5 s, waits of at most 0.01 + 0.02 s.
    assert documented_bound(timeout=5) == pytest.approx(30.03)


# -- 4xx: no retry, an immediate clear error -----------------------------------------------------

REFUSALS = [
    (400, BlinkBadRequestError, "Bad Request"),
    (401, BlinkAuthenticationError, "Unauthorized"),
    (403, BlinkPermissionError, "Forbidden"),
    (404, BlinkNotFoundError, "Not Found"),
]


@EACH_CALL
@pytest.mark.parametrize(("status", "error_class", "message"), REFUSALS, ids=["400", "401", "403", "404"])
def test_client_errors_are_not_retried(emulator, client, call, status, error_class, message):
    kwargs = call.prepare(emulator)
    emulator.inject(Fault(call.endpoint, "status", status=status))
    started = time.monotonic()

    # A 400 to a cancel of a running execution is no "already finished" (a GET shows it runs).
    with pytest.raises(error_class) as info:
        invoke(client(), call, kwargs)
    error = info.value
    assert isinstance(error, BlinkClientError)
    assert isinstance(error, AirflowFailException), "the task fails without spending its retries"
    assert error.status == status
    assert error.message == message
    assert error.identifier
    assert f"HTTP {status}, message={message!r}" in str(error)
    assert error.hint, "the error says what to fix"
    assert error.hint in str(error)
    assert time.monotonic() - started < 2.0
    assert len(call.requests(emulator)) == 1


REAL_REFUSALS = [
    ("blink_wrong_key", "list_executions", {"limit": 1}, BlinkAuthenticationError),
    ("blink_wrong_key", "get_execution_steps", {"execution_id": "e-1"}, BlinkAuthenticationError),
    ("blink_wrong_key", "cancel_execution", {"execution_id": "e-1"}, BlinkAuthenticationError),
    ("blink_default", "cancel_execution", {"execution_id": "no-such-execution"}, BlinkNotFoundError),
    ("blink_default", "get_execution_steps", {"execution_id": "no-such-execution"}, BlinkNotFoundError),
    ("blink_default", "list_executions", {"workspace_id": "no-such-workspace"}, BlinkNotFoundError),
]


@pytest.mark.parametrize(
    ("conn_id", "method", "kwargs", "error_class"),
    REAL_REFUSALS,
    ids=["list-401", "steps-401", "cancel-401", "cancel-404", "steps-404", "list-404-workspace"],
)
def test_blinks_own_refusals_are_not_retried(blink, client, conn_id, method, kwargs, error_class):
    with pytest.raises(error_class) as info:
        client(conn_id)(method, **kwargs)

    assert len(blink.requests) == 1
    assert info.value.details, "Blink's explanation is kept"
    assert info.value.identifier
    assert blink.api_key not in str(info.value)


def test_a_viewer_key_reads_but_cannot_cancel(blink, client):
    execution_id = client()("execute_playbook", "slow")

    assert client("blink_viewer")("get_execution_steps", execution_id)
    with pytest.raises(BlinkPermissionError) as info:
        client("blink_viewer")("cancel_execution", execution_id)

    assert info.value.status == 403
    assert "not Viewer" in str(info.value)
    assert len(requests_to(blink, "POST", "/cancel")) == 1
    assert blink.execution(execution_id)["state_ui"] == "In Progress"


# -- paging through executions: a fault on a later page ---------------------------------------------


def page_through(
    mode: str, emu: BlinkEmulator, fault: Fault, after: int
) -> tuple[list[str], BaseException | None]:
    """Iterate all executions two per page, injecting ``fault`` once ``after`` have been read."""
    seen: list[str] = []

    def take(execution: dict[str, Any]) -> None:
        seen.append(execution["id"])
        if len(seen) == after:
            emu.inject(fault)

    try:
        if mode == "sync":
            for execution in BlinkHook().iter_executions(page_size=2):
                take(execution)
        else:

            async def run() -> None:
                async with BlinkHook().async_client() as client:
                    async for execution in client.iter_executions(page_size=2):
                        take(execution)

            asyncio.run(run())
    except BlinkError as exc:
        return seen, exc
    return seen, None


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_transient_fault_on_a_later_page_neither_skips_nor_repeats(emulator, mode):
    ids = emulator.seed_executions("quick-ok", 5)

    seen, error = page_through(
        mode, emulator, Fault("list", "status", status=503, times=RETRY_LIMIT), after=2
    )

    assert error is None
    assert sorted(seen) == sorted(ids)
    assert len(seen) == len(set(seen)) == 5
    pages = requests_to(emulator, "GET", "/executions")
    assert [r.status for r in pages] == [200, 503, 503, 200, 200]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_persistent_fault_on_a_later_page_fails_after_the_pages_already_read(emulator, mode):
    emulator.seed_executions("quick-ok", 5)

    seen, error = page_through(mode, emulator, Fault("list", "status", status=502, times=None), after=2)

    assert len(seen) == 2, "the first page was handed out before the fault"
    assert isinstance(error, BlinkServerError)
    assert error.status == 502
    assert_not_a_failed_run(error)
    assert [r.status for r in requests_to(emulator, "GET", "/executions")] == [200] + [502] * ATTEMPTS


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_an_unreadable_page_is_not_retried(emulator, mode):
    emulator.seed_executions("quick-ok", 5)

    seen, error = page_through(mode, emulator, Fault("list", "malformed_json"), after=2)

    assert len(seen) == 2
    assert isinstance(error, BlinkResponseError)
    assert "not JSON" in str(error)
    assert len(requests_to(emulator, "GET", "/executions")) == 2
