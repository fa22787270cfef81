"""
Every answer ends in a ``BlinkError``: any JSON of the right status but the wrong shape or types
becomes a ``BlinkResponseError`` naming the call and the field — never a ``TypeError``,
``KeyError``, ``AttributeError`` or ``RecursionError`` from deep inside the provider.

Hypothesis generates arbitrary JSON for every field the provider reads (and for whole answers), a
tiny server sends it, and each call is made through the public hook (sync and async), the execution
trigger and the event trigger; what a call returns is then used the way the operator, sensor and
notifier use it (outcome, summary, failure message, playbook output, the look-up of a started run).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_blink import api
from airflow_provider_blink.exceptions import BlinkError, BlinkResponseError
from airflow_provider_blink.executions import decide_outcome, failure_message, playbook_output, summarize
from airflow_provider_blink.triggers.blink import BlinkExecutionTrigger
from airflow_provider_blink.triggers.blink_events import BlinkExecutionEventTrigger

from support.hostile import Answer, HostileServer, Request, call_blink, json_answer
from support.triggers import next_event

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)


def plausible_or_any(plausible: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(plausible, json_values)


timestamps = plausible_or_any(st.integers(0, 2**42))
#: An execution record: each field the provider reads, each either plausible or any JSON at all.
executions = st.fixed_dictionaries(
    {},
    optional={
        "id": plausible_or_any(st.text(min_size=1, max_size=12)),
        "state_ui": plausible_or_any(st.sampled_from(["Completed", "Failed", "Running", "Cancelled", "Odd"])),
        "state": plausible_or_any(st.sampled_from(["completed", "failed", "running"])),
        "playbook_id": plausible_or_any(st.text(max_size=8)),
        "created_at": timestamps,
        "started_at": timestamps,
        "finished_at": timestamps,
        "duration": timestamps,
        "net_runtime_ms": timestamps,
        "error_details": plausible_or_any(st.dictionaries(st.text(max_size=8), st.text(max_size=8))),
        "cancel_reason": plausible_or_any(st.text(max_size=8)),
        "inputs": json_values,
        "event": json_values,
    },
)
deep_json_text = st.integers(1000, 5000).map(lambda depth: "[" * depth + "]" * depth)
steps = st.fixed_dictionaries(
    {},
    optional={
        "output_data": plausible_or_any(st.one_of(st.text(max_size=20), deep_json_text)),
        "finished_at": timestamps,
        "step_id": json_values,
    },
)


def pages(items: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    counts = plausible_or_any(st.integers(0, 50))
    return plausible_or_any(
        st.fixed_dictionaries(
            {"results": plausible_or_any(st.lists(plausible_or_any(items), max_size=3))},
            optional={"total": counts, "offset": counts, "limit": counts},
        )
    )


ANSWERS = {
    "execute": plausible_or_any(
        st.fixed_dictionaries({"execution_id": plausible_or_any(st.text(max_size=8))})
    ),
    "get": plausible_or_any(executions),
    "list": pages(executions),
    "steps": pages(steps),
    "cancel": json_values,
}


class ShapeServer:
    """Answers every request with the current example (HTTP 200)."""

    def __init__(self) -> None:
        self.answer: Any = None

    def __call__(self, request: Request) -> Answer:
        return json_answer(self.answer)


@pytest.fixture
def shapes(use_blink: Any) -> Iterator[ShapeServer]:
    server = ShapeServer()
    with HostileServer(server) as blink:
        use_blink(blink.url, retry_limit=0)
        yield server


NAMES_A_FIELD = re.compile(r"[\w\][.]+ must be |without a state|pages for .* do not end")


def assert_clear(exc: BlinkError, method: str | None = None) -> None:
    message = str(exc)
    assert isinstance(exc, BlinkResponseError), message
    if method:
        assert f"{method} /api/v1/workspace/" in message or "without a state" in message, message
    assert NAMES_A_FIELD.search(message), message


def use(name: str, result: Any) -> None:
    """Use a call's result the way the operator, sensor and notifier do."""
    if name == "execute":
        assert isinstance(result, str)
    elif name == "get":
        decide_outcome(result)
        summarize(result)
        failure_message(result, "https://blink/x")
    elif name == "list":
        for execution in result["results"]:
            summarize(execution)
        api.Pages("GET /api/v1/workspace/ws/executions").next_offset(result)
    elif name == "steps":
        playbook_output(result)
    elif name == "cancel":
        assert result is True


METHODS = {"execute": "POST", "get": "GET", "list": "GET", "steps": "GET", "cancel": "POST"}


@pytest.mark.parametrize("client", ["sync", "async"])
@pytest.mark.parametrize("name", ANSWERS)
def test_every_answer_is_a_result_or_a_clear_error(shapes, client, name):
    @SETTINGS
    @given(answer=ANSWERS[name])
    def check(answer: Any) -> None:
        shapes.answer = answer
        try:
            use(name, call_blink(client, name))
        except BlinkError as exc:
            assert_clear(exc, METHODS[name])

    check()


def test_the_execution_trigger_ends_in_a_clear_event(shapes):
    @SETTINGS
    @given(answer=ANSWERS["get"])
    def check(answer: Any) -> None:
        shapes.answer = answer

        trigger = BlinkExecutionTrigger(execution_id="exec-1", poll_interval=0.001, end_time=None)
        try:
            event = asyncio.run(asyncio.wait_for(next_event(trigger), 0.5))
        except asyncio.TimeoutError:
            return  # still running: a state the provider waits on
        if event["status"] == "error":
            assert event["permanent"]
            assert NAMES_A_FIELD.search(event["message"]), event["message"]
        else:
            assert event["status"] in ("success", "failed")

    check()


def test_the_event_trigger_fires_or_fails_clearly(shapes):
    @SETTINGS
    @given(answer=ANSWERS["list"])
    def check(answer: Any) -> None:
        shapes.answer = answer

        async def events_of_one_poll() -> list[dict[str, Any]]:
            trigger = BlinkExecutionEventTrigger(poll_interval=0.01, lookback=10**7)
            fired: list[dict[str, Any]] = []

            async def consume() -> None:
                async with contextlib.aclosing(trigger.run()) as events:  # type: ignore[type-var]
                    async for event in events:
                        fired.append(event.payload)

            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(consume(), 0.2)
            return fired

        try:
            fired = asyncio.run(events_of_one_poll())
        except BlinkError as exc:
            assert_clear(exc, "GET")
        else:
            assert all(isinstance(e["execution_id"], str) for e in fired)

    check()


@pytest.mark.parametrize("client", ["sync", "async"])
def test_a_deeply_nested_output_is_kept_as_text(shapes, client):
    deep = "[" * 100_000 + "]" * 100_000
    shapes.answer = {"total": 1, "results": [{"step_id": "s1", "output_data": deep, "finished_at": 1}]}

    assert playbook_output(call_blink(client, "steps")) == deep
