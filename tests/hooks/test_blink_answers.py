"""
The hook holds against every answer Blink may give (issue 10), with the sync and the async client.

Run against the emulator in its documented-exact default: list items carry no ``inputs``/``event``
(blink-api-contract.md#documented-list), a cancel may answer a JSON string, plain text or nothing
(#observed-cancel), steps come in
pages, an empty page may say ``"results": null``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import requests

from airflow_provider_blink.compat import AirflowFailException
from airflow_provider_blink.exceptions import BlinkApiError, BlinkError
from airflow_provider_blink.hooks.blink import BlinkHook
from airflow_provider_blink.hooks.transport import MAY_HAVE_REACHED_BLINK
from airflow_provider_blink.testing import BlinkEmulator, Fault, ScriptedPlaybook

WORKSPACE = "demo-workspace"


def call_sync(method: str, *args: Any, **kwargs: Any) -> Any:
    return getattr(BlinkHook(), method)(*args, **kwargs)


def call_async(method: str, *args: Any, **kwargs: Any) -> Any:
    async def run() -> Any:
        async with BlinkHook().async_client() as client:
            result = getattr(client, method)(*args, **kwargs)
            if hasattr(result, "__aiter__"):
                return [item async for item in result]
            return await result

    return asyncio.run(run())


@pytest.fixture(params=["sync", "async"])
def blink(request: pytest.FixtureRequest) -> Any:
    """Call a client method by name, through the sync hook or the async client."""
    return call_sync if request.param == "sync" else call_async


def executes(emulator: BlinkEmulator) -> list[Any]:
    return [r for r in emulator.requests if r.method == "POST" and r.path.endswith("/execute")]


def start_foreign(emulator: BlinkEmulator, playbook_id: str, body: dict[str, Any]) -> str:
    """A run another client started (over HTTP, not through the provider)."""
    response = requests.post(
        f"{emulator.url}/api/v1/workspace/{WORKSPACE}/playbooks/{playbook_id}/execute",
        headers={"BLINK-API-KEY": emulator.api_key},
        json=body,
        timeout=5,
    )
    response.raise_for_status()
    return str(response.json()["execution_id"])


class TestAmbiguousStart:
    """A start whose answer is lost: one run, ours, found by comparing inputs and event read with GET."""

    def test_a_lost_answer_with_inputs_leaves_one_run(self, emulator, blink):
        emulator.inject(Fault("execute", "close_after"))

        execution_id = blink("execute_playbook", "slow", input_values={"host": "laptop-0042"})

        (execution,) = emulator.executions
        assert execution_id == execution["id"]
        assert len(executes(emulator)) == 1, "the start was not sent again"

    def test_a_run_with_other_inputs_is_never_adopted(self, emulator, blink):
        foreign = start_foreign(emulator, "slow", {"input_values": {"host": "someone-elses"}})
        emulator.inject(Fault("execute", "close_before"))  # ours never started

        execution_id = blink("execute_playbook", "slow")

        assert execution_id != foreign
        assert emulator.execution(execution_id)["inputs"] == {}
        assert len(emulator.executions) == 2

    def test_a_run_with_another_event_is_never_adopted(self, emulator, blink):
        foreign = start_foreign(emulator, "slow", {"input_values": {"a": 1}, "event": {"alert": "A-2"}})
        emulator.inject(Fault("execute", "close_before"))

        execution_id = blink("execute_playbook", "slow", input_values={"a": 1}, event={"alert": "A-1"})

        assert execution_id != foreign
        assert emulator.execution(execution_id)["event"] == {"alert": "A-1"}

    def test_more_candidates_than_it_reads_is_not_taken_for_none(self, emulator, blink):
        emulator.seed_executions("quick-ok", 25)  # started within the last half minute
        emulator.inject(Fault("execute", "close_before"))

        with pytest.raises(BlinkError) as failure:
            blink("execute_playbook", "quick-ok", input_values={"x": 1})

        assert "25 runs of playbook 'quick-ok' started meanwhile" in str(failure.value)
        assert not isinstance(failure.value, AirflowFailException)
        assert len(executes(emulator)) == 1, "not sent again: its run could be among those not read"

    @pytest.mark.parametrize(
        "lookup_fault",
        [Fault("list", "status", status=400), Fault("get", "status", status=400)],
        ids=["list-refused", "get-refused"],
    )
    def test_a_refused_lookup_keeps_the_warning_and_allows_a_task_retry(self, emulator, blink, lookup_fault):
        emulator.inject(Fault("execute", "close_after"))
        emulator.inject(lookup_fault)

        with pytest.raises(BlinkError) as failure:
            blink("execute_playbook", "slow", input_values={"x": 1})

        assert not isinstance(failure.value, AirflowFailException), "a task retry is still allowed"
        assert MAY_HAVE_REACHED_BLINK.split(",")[0] in str(failure.value)
        assert "HTTP 400" in str(failure.value)
        assert len(executes(emulator)) == 1, "not sent again blindly"


def test_run_sync_timeout_is_whole_seconds_rounded_up(emulator, blink):
    output = blink("run_playbook_sync", "quick-ok", timeout=0.5)

    assert output == {"answer": 42}
    (request,) = executes(emulator)
    assert request.query["timeout"] == "1"


class TestCancel:
    @pytest.mark.parametrize("style", ["json", "text", "empty"], ids=["json-string", "plain-text", "empty"])
    def test_any_2xx_is_cancelled_whatever_the_body(self, emulator, blink, style):
        emulator.cancel_answer = style
        execution_id = blink("execute_playbook", "slow")

        assert blink("cancel_execution", execution_id) is True
        assert emulator.execution(execution_id)["state_ui"] == "Cancelled"

    def test_a_400_on_a_finished_execution_is_already_finished(self, emulator, blink):
        execution_id = blink("execute_playbook", "slow")
        emulator.finish(execution_id)

        assert blink("cancel_execution", execution_id) is False

    def test_a_400_on_a_running_execution_is_an_error_naming_blinks_message(self, emulator, blink):
        execution_id = blink("execute_playbook", "slow")
        emulator.inject(Fault("cancel", "status", status=400))

        with pytest.raises(BlinkApiError) as failure:
            blink("cancel_execution", execution_id)

        assert failure.value.status == 400
        assert "Bad Request" in str(failure.value)
        assert execution_id in str(failure.value)
        assert emulator.execution(execution_id)["state_ui"] == "In Progress"


def test_every_page_of_steps_is_read(emulator, blink):
    emulator.add_playbook(
        ScriptedPlaybook(id="long", workspace_id=WORKSPACE, steps=120, output={"final": True})
    )
    execution_id = blink("execute_playbook", "long")

    steps = blink("get_execution_steps", execution_id)

    assert [step["step_id"] for step in steps] == [f"step_{k}" for k in range(1, 121)]


class TestNullResults:
    def test_a_null_page_is_an_empty_page(self, emulator, blink):
        emulator.null_results = True

        page = blink("list_executions", filter={"playbook_id": "slow"})

        assert page["results"] == []
        assert page["total"] == 0

    def test_iterating_a_null_page_yields_nothing(self, emulator, blink):
        emulator.null_results = True

        assert list(blink("iter_executions", filter={"playbook_id": "slow"})) == []
