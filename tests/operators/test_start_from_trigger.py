"""
start_from_trigger: the task starts in the triggerer, and a run that succeeds ends there.

On Airflow 2.11 and 3.3+ the operator gives Airflow ``start_trigger_args`` (its own, never the
class's) and the scheduler defers the task at once; elsewhere, and for what only a worker can resolve,
it starts on a worker and says why. BlinkPlaybookTrigger follows the run its try recorded, never
starts a second one when it runs again, and leaves every end but success to a worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

# Imported here, not inside the trigger's first run: an import would count as a slow callback.
import airflow_provider_blink.hooks.blink  # noqa: F401
from airflow_provider_blink.compat import (
    AIRFLOW_V_3_0_PLUS,
    AIRFLOW_V_3_3_PLUS,
    DAG,
    BaseOperator,
)
from airflow_provider_blink.exceptions import (
    BlinkConfigurationError,
    BlinkExecutionFailed,
    BlinkPermanentError,
)
from airflow_provider_blink.operators.blink import BlinkExecutePlaybookOperator
from airflow_provider_blink.tasks import START_KEY, TEMPLATE_FIELDS, variable_name
from airflow_provider_blink.testing import BlinkEmulator, Fault
from airflow_provider_blink.triggers.blink import BlinkPlaybookTrigger

from support.emulator import SLOWER_THAN_TIMEOUT, requests_to, start_directly, url_of
from support.task_instance import RecordingTI, context_for
from support.triggers import AirflowChannel, RunningTaskInstance, all_events

#: Whether this Airflow line starts a task in the triggerer at all (docs/start-from-trigger.md).
STARTS_IN_TRIGGERER = not AIRFLOW_V_3_0_PLUS or AIRFLOW_V_3_3_PLUS
CLASSPATH = "airflow_provider_blink.triggers.blink.BlinkPlaybookTrigger"


def operator(**kwargs: Any) -> BlinkExecutePlaybookOperator:
    return BlinkExecutePlaybookOperator(
        **{"task_id": "start_in_triggerer", "playbook_id": "quick-ok", "start_from_trigger": True, **kwargs}
    )


class TestWhereTheTaskStarts:
    @pytest.mark.skipif(not STARTS_IN_TRIGGERER, reason="Airflow 3.0-3.2 start no task in the triggerer")
    def test_the_task_alone_gets_start_trigger_args_named_like_its_template_fields(self) -> None:
        task = operator(input_values={"ip": "10.0.0.1"}, poll_interval=3, timeout=60)
        sibling = operator(task_id="other", start_from_trigger=False)
        args: Any = task.start_trigger_args
        assert task.start_from_trigger is True
        assert args is not None
        assert args.trigger_cls == CLASSPATH
        assert args.next_method == "resume_from_trigger"
        assert set(TEMPLATE_FIELDS) <= set(args.trigger_kwargs)
        assert args.trigger_kwargs["input_values"] == {"ip": "10.0.0.1"}
        assert args.trigger_kwargs["wait_timeout"] == 60
        assert task.deferrable is True
        # Never the class's: a mapped task (built from the class) and a sibling start on a worker.
        assert BaseOperator.start_trigger_args is None
        assert BlinkExecutePlaybookOperator.start_trigger_args is None
        assert sibling.start_trigger_args is None
        assert sibling.start_from_trigger is False
        trigger = BlinkPlaybookTrigger(**args.trigger_kwargs)
        assert trigger.serialize() == (CLASSPATH, args.trigger_kwargs)
        assert all(hasattr(trigger, name) for name in TEMPLATE_FIELDS)  # what Airflow 3.3 renders

    @pytest.mark.skipif(STARTS_IN_TRIGGERER, reason="this line starts tasks in the triggerer")
    def test_airflow_3_0_to_3_2_start_on_a_worker_and_say_why(self) -> None:
        task = operator()
        assert task.start_trigger_args is None
        assert task.start_from_trigger is False
        assert task.deferrable is True
        assert "cannot start a task in the triggerer" in (task._worker_start_reason or "")

    @pytest.mark.parametrize(
        ("arguments", "reason"),
        [
            ({"openlineage_inject_parent_job_info": True}, "openlineage_inject_parent_job_info"),
            ({"input_values": {"ip": "{{ params.ip }}"}}, None if AIRFLOW_V_3_3_PLUS else "2.11's triggerer"),
            (
                {"input_values": "{{ params.inputs }}"},
                "renders it to a string" if AIRFLOW_V_3_3_PLUS else "2.11's triggerer",
            ),
        ],
        ids=["openlineage", "template", "dict-template"],
    )
    def test_what_only_a_worker_can_resolve_starts_there(
        self, arguments: dict[str, Any], reason: str | None
    ) -> None:
        if arguments.get("openlineage_inject_parent_job_info"):
            pytest.importorskip("airflow.providers.openlineage")
        task = operator(**arguments)
        if not STARTS_IN_TRIGGERER:
            assert task.start_trigger_args is None
            return
        if reason is None:  # Airflow 3.3 renders it in the triggerer
            assert task.start_trigger_args is not None
            return
        assert task.start_trigger_args is None
        assert reason in (task._worker_start_reason or "")

    def test_an_xcomarg_starts_on_a_worker(self) -> None:
        with DAG("sft_xcomarg", schedule=None):
            upstream = BlinkExecutePlaybookOperator(task_id="upstream", playbook_id="quick-ok")
            task = operator(input_values={"ip": upstream.output["ip"]})  # type: ignore[index]
        assert task.start_trigger_args is None
        assert STARTS_IN_TRIGGERER is False or "XComArg" in (task._worker_start_reason or "")

    @pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="Airflow 3.3 renders templates in the triggerer")
    def test_a_dag_with_its_own_macros_starts_on_a_worker(self) -> None:
        with DAG("sft_macros", schedule=None, user_defined_macros={"region": "eu"}):
            task = operator(input_values={"region": "{{ region }}"})
        assert task.start_trigger_args is None
        assert "user_defined_macros" in (task._worker_start_reason or "")

    @pytest.mark.parametrize(
        "arguments", [{"run_sync": True}, {"wait_for_completion": False}, {"deferrable": False}]
    )
    def test_what_cannot_wait_in_the_triggerer_is_refused(self, arguments: dict[str, Any]) -> None:
        with pytest.raises(BlinkConfigurationError, match="start_from_trigger=True"):
            operator(**arguments)


@pytest.mark.usefixtures("airflow_db")
class TestTheScheduler:
    """Airflow's own scheduler code (``DagRun.schedule_tis``) on the DAG as Airflow serialises it."""

    def test_defers_the_task_at_once_where_the_line_allows(self, tmp_path: Path) -> None:
        from support.crashes import Deployment

        deployment = Deployment(DAGS / "blink_start_from_trigger.py", "blink_start_from_trigger", tmp_path)
        state, trigger = deployment.schedule_only("start_in_triggerer")
        if not STARTS_IN_TRIGGERER:
            assert (state, trigger) == ("scheduled", None)
            return
        assert state == "deferred"
        assert trigger is not None
        assert trigger[0] == CLASSPATH
        kwargs = trigger[1]
        assert kwargs["playbook_id"] == "quick-ok"
        assert kwargs["input_values"] == {"ip": "10.0.0.1"}
        assert kwargs["blink_conn_id"] == "blink_default"
        assert "password" not in json.dumps(kwargs)
        assert "key" not in json.dumps(kwargs).lower()


DAGS = Path(__file__).resolve().parent.parent / "support" / "dags"


# The trigger ----------------------------------------------------------------------------------------
def trigger_of(ti: RunningTaskInstance, **settings: Any) -> BlinkPlaybookTrigger:
    """The trigger as the triggerer builds it for the task instance ``ti``: from the task's kwargs."""
    task = operator(**{"poll_interval": 0.1, **settings})
    assert task.start_trigger_args is not None or not STARTS_IN_TRIGGERER
    kwargs = task._trigger_kwargs()
    trigger = BlinkPlaybookTrigger(**kwargs)
    trigger.task_instance = ti  # type: ignore[assignment]
    return trigger


async def ended(trigger: BlinkPlaybookTrigger) -> Any:
    """The one event the trigger yields (the event object: a task's end, or the worker's event)."""
    events: list[Any] = []
    async with contextlib.aclosing(trigger.run()) as run:  # type: ignore[type-var]
        async for event in run:
            events.append(event)
    assert len(events) == 1, events
    return events[0]


def record_of(variables: AirflowChannel, ti: RunningTaskInstance) -> Any:
    return variables.get(variable_name(ti, START_KEY))


def starts(emulator: BlinkEmulator) -> list[Any]:
    return requests_to(emulator, "POST", "/execute")


@pytest.fixture
def variables(monkeypatch: pytest.MonkeyPatch, airflow_db: None) -> AirflowChannel:
    return AirflowChannel(monkeypatch)


@pytest.mark.skipif(not STARTS_IN_TRIGGERER, reason="Airflow 3.0-3.2 never run BlinkPlaybookTrigger")
@pytest.mark.usefixtures("airflow_db")
class TestTheTrigger:
    def test_a_run_that_succeeds_ends_the_task_with_its_xcoms(
        self, emulator: BlinkEmulator, variables: AirflowChannel
    ) -> None:
        ti = variables.task_instance()
        event = asyncio.run(ended(trigger_of(ti, input_values={"ip": "10.0.0.1"})))
        [_start] = starts(emulator)
        [execution] = emulator.executions
        execution_id = execution["id"]
        assert type(event).__name__ == "TaskSuccessEvent"
        url = url_of(emulator, "quick-ok", execution_id)
        xcoms = variables.pushed(event)
        assert xcoms["execution_id"] == execution_id
        assert xcoms["execution_url"] == url
        summary = xcoms["return_value"]
        assert summary["id"] == execution_id
        assert summary["state_ui"] == "Completed"
        assert summary["output"] == {"answer": 42}
        assert summary["execution_url"] == url
        assert "playbook_name" in summary  # read in full, as the worker's result would be
        if AIRFLOW_V_3_0_PLUS:
            assert xcoms["_link_BlinkExecutionLink"] == url
        json.dumps(xcoms)
        assert record_of(variables, ti) == {"execution_id": execution_id, "try_number": 1, "end_time": None}

    def test_run_again_it_follows_the_run_its_try_recorded(
        self, emulator: BlinkEmulator, variables: AirflowChannel
    ) -> None:
        ti = variables.task_instance()
        first = variables.pushed(asyncio.run(ended(trigger_of(ti))))
        again = variables.pushed(asyncio.run(ended(trigger_of(ti))))  # the success was yielded, never stored
        assert len(starts(emulator)) == 1
        assert again["execution_id"] == first["execution_id"]

    def test_killed_between_blinks_answer_and_the_record_it_follows_that_run(
        self, emulator: BlinkEmulator, variables: AirflowChannel
    ) -> None:
        """The triggerer dies while Blink's answer is on its way: the next run finds the run, starts none."""
        ti = variables.task_instance()
        emulator.seed_executions("quick-ok", 1)  # someone else's, before the start
        emulator.inject(Fault("execute", "slow_after", delay=SLOWER_THAN_TIMEOUT))

        async def killed_mid_start() -> None:
            run = asyncio.ensure_future(ended(trigger_of(ti, input_values={"ip": "10.0.0.9"})))
            while not any(  # noqa: ASYNC110 (the emulator runs in another thread: nothing to await)
                e["playbook_id"] == "quick-ok" and e["id"] not in seeded for e in emulator.executions
            ):
                await asyncio.sleep(0.01)
            run.cancel()  # as a SIGKILL would: nothing after Blink's answer ran
            with pytest.raises(asyncio.CancelledError):
                await run

        seeded = {e["id"] for e in emulator.executions}
        asyncio.run(killed_mid_start())
        in_flight = record_of(variables, ti)
        assert "sent_at_ms" in in_flight
        assert in_flight["execution_id"] is None
        event = asyncio.run(ended(trigger_of(ti, input_values={"ip": "10.0.0.9"})))
        assert starts(emulator) == []  # the held start's answer never completed; no other was sent
        [ours] = [
            e for e in emulator.executions if e["id"] not in seeded
        ]  # one run, not adopted the seeded one
        assert variables.pushed(event)["execution_id"] == ours["id"]
        assert record_of(variables, ti)["execution_id"] == ours["id"]

    def test_two_runs_of_the_trigger_at_once_start_one_run(
        self, emulator: BlinkEmulator, variables: AirflowChannel
    ) -> None:
        """A triggerer that stalled and lost the trigger goes on beside the one that took it over."""
        ti = variables.task_instance()

        async def both() -> list[Any]:
            return list(await asyncio.gather(ended(trigger_of(ti)), ended(trigger_of(ti))))

        first, second = asyncio.run(both())
        assert len(starts(emulator)) == 1
        [execution] = emulator.executions
        assert type(first).__name__ == type(second).__name__ == "TaskSuccessEvent"
        assert (
            variables.pushed(first)["execution_id"]
            == variables.pushed(second)["execution_id"]
            == execution["id"]
        )

    def test_a_start_another_run_is_making_is_waited_for_not_repeated(
        self, emulator: BlinkEmulator, variables: AirflowChannel
    ) -> None:
        """Another run claimed the start, and its request has not reached Blink yet: this one waits for it."""
        ti = variables.task_instance()
        inputs = {"ip": "10.0.0.3"}
        claim = {"execution_id": None, "try_number": 1, "end_time": None, "starter": "another run"}
        variables.set(variable_name(ti, START_KEY), {**claim, "sent_at_ms": int(time.time() * 1000)})

        async def the_other_start_lands_later() -> Any:
            run = asyncio.ensure_future(ended(trigger_of(ti, input_values=inputs)))
            await asyncio.sleep(1.0)
            assert not run.done()
            body = {"input_values": inputs}
            execution_id = await asyncio.to_thread(start_directly, emulator, "quick-ok", body)
            return execution_id, await run

        execution_id, event = asyncio.run(the_other_start_lands_later())
        assert len(starts(emulator)) == 1  # the other run's, sent directly here
        assert variables.pushed(event)["execution_id"] == execution_id

    def test_a_record_that_cannot_be_written_stops_the_start(
        self, emulator: BlinkEmulator, monkeypatch: pytest.MonkeyPatch, airflow_db: None
    ) -> None:
        if not AIRFLOW_V_3_0_PLUS:
            pytest.skip("Airflow 2.11's trigger writes the database; its failure is not faked here")
        variables = AirflowChannel(monkeypatch, failing=frozenset({"PutVariable"}))
        from airflow.sdk.exceptions import AirflowRuntimeError

        with pytest.raises(AirflowRuntimeError):
            asyncio.run(ended(trigger_of(variables.task_instance())))
        assert starts(emulator) == []

    def test_a_record_that_cannot_be_read_is_not_read_as_none(
        self, emulator: BlinkEmulator, monkeypatch: pytest.MonkeyPatch, airflow_db: None
    ) -> None:
        if not AIRFLOW_V_3_0_PLUS:
            pytest.skip("Airflow 2.11's trigger reads the database; its failure is not faked here")
        variables = AirflowChannel(monkeypatch, failing=frozenset({"GetVariable"}))
        from airflow.sdk.exceptions import AirflowRuntimeError

        with pytest.raises(AirflowRuntimeError):
            asyncio.run(ended(trigger_of(variables.task_instance())))
        assert starts(emulator) == []

    def test_a_failed_run_resumes_on_a_worker_which_fails_as_today(
        self, emulator: BlinkEmulator, variables: AirflowChannel
    ) -> None:
        ti = variables.task_instance(2)
        event = asyncio.run(ended(trigger_of(ti, playbook_id="failing-step", timeout=60)))
        assert type(event).__name__ == "TriggerEvent"
        payload = event.payload
        assert payload["status"] == "failed"
        assert payload["try_number"] == 2
        assert payload["end_time"] == record_of(variables, ti)["end_time"]
        task = operator(playbook_id="failing-step")
        with pytest.raises(BlinkExecutionFailed, match="Failing step: step_2: step 2: SIEM returned 500"):
            task.resume_from_trigger(worker_context(try_number=2), payload)

    def test_a_start_blink_refuses_fails_on_the_worker_without_retries(
        self, emulator: BlinkEmulator, variables: AirflowChannel
    ) -> None:
        ti = variables.task_instance()
        event = asyncio.run(ended(trigger_of(ti, playbook_id="no-such-playbook")))
        assert event.payload["status"] == "error"
        assert event.payload["execution_id"] is None
        assert event.payload["permanent"] is True
        with pytest.raises(
            BlinkPermanentError, match="Starting playbook 'no-such-playbook' in the triggerer"
        ):
            operator(playbook_id="no-such-playbook").resume_from_trigger(worker_context(), event.payload)
        assert "sent_at_ms" not in record_of(variables, ti)  # refused: nothing in flight

    def test_a_retry_follows_a_completed_run_of_an_earlier_try(
        self, emulator: BlinkEmulator, variables: AirflowChannel
    ) -> None:
        first = variables.pushed(asyncio.run(ended(trigger_of(variables.task_instance(1)))))
        retry = variables.pushed(asyncio.run(ended(trigger_of(variables.task_instance(2)))))
        assert len(starts(emulator)) == 1
        assert retry["execution_id"] == first["execution_id"]

    @pytest.mark.parametrize("rerun_from_failure", [False, True])
    def test_a_retry_after_a_failed_run_starts_anew(
        self, emulator: BlinkEmulator, variables: AirflowChannel, rerun_from_failure: bool
    ) -> None:
        settings = {"playbook_id": "quick-fail", "rerun_from_failure": rerun_from_failure}
        failed = asyncio.run(ended(trigger_of(variables.task_instance(1), **settings)))
        asyncio.run(ended(trigger_of(variables.task_instance(2), **settings)))
        _first, second = starts(emulator)
        body = second.body or {}
        assert ("past_exec_ref" in body) is rerun_from_failure
        if rerun_from_failure:
            assert body["past_exec_ref"] == failed.payload["execution_id"]

    def test_the_deadline_cancels_the_run_and_a_worker_fails_the_task(
        self, emulator: BlinkEmulator, variables: AirflowChannel
    ) -> None:
        ti = variables.task_instance()
        event = asyncio.run(ended(trigger_of(ti, playbook_id="slow", timeout=0.5)))
        payload = event.payload
        assert payload["status"] == "timeout"
        assert "cancelled it" in payload["message"]
        [execution] = emulator.executions
        assert execution["state_ui"] != "In Progress"
        from airflow_provider_blink.exceptions import BlinkExecutionTimeout

        with pytest.raises(BlinkExecutionTimeout, match=r"timeout=0\.5s"):
            operator(playbook_id="slow", timeout=0.5).resume_from_trigger(worker_context(), payload)

    def test_execution_timeout_sets_the_deadline_from_airflows_own(
        self, emulator: BlinkEmulator, variables: AirflowChannel
    ) -> None:
        """Airflow times the deferred task out at its start plus execution_timeout: the wait ends first."""
        ti: Any = variables.task_instance()
        trigger: Any = trigger_of(ti, execution_timeout=timedelta(minutes=10))
        airflow_ends = time.time() + 500
        # Where each line keeps it: the trigger's timeout_after (3.x), the task instance's trigger_timeout (2.11).
        trigger.timeout_after = ti.trigger_timeout = datetime.fromtimestamp(airflow_ends, timezone.utc)
        assert trigger._deadline({}, 1) == pytest.approx(airflow_ends - 30, abs=0.01)


def worker_context(try_number: int = 1) -> Any:
    """The context of the try that resumes on a worker."""
    return context_for(RecordingTI(try_number=try_number))


@pytest.mark.skipif(not STARTS_IN_TRIGGERER, reason="Airflow 3.0-3.2 never run BlinkPlaybookTrigger")
def test_the_events_payloads_are_plain_json(emulator: BlinkEmulator, variables: AirflowChannel) -> None:
    events = asyncio.run(all_events(trigger_of(variables.task_instance(), playbook_id="quick-fail")))
    json.dumps(events)


@pytest.mark.skipif(
    not AIRFLOW_V_3_3_PLUS, reason="Airflow 3.3's triggerer renders a start trigger's templates"
)
def test_airflow_renders_the_requests_templates_in_the_triggerer() -> None:
    """What Airflow 3.3's triggerer does before ``run``: set the task instance, render the template fields."""
    with DAG("sft_rendered", schedule=None, params={"ip": "10.0.0.7"}):
        task = operator(input_values={"ip": "{{ params.ip }}", "n": 3}, runner="{{ params.ip }}-runner")
    args: Any = task.start_trigger_args
    trigger = BlinkPlaybookTrigger(**args.trigger_kwargs)

    class RuntimeTaskInstance:  # what the triggerer gives: the task instance, with its task
        task_id = task.task_id

    ti = RuntimeTaskInstance()
    ti.task = task  # type: ignore[attr-defined]
    trigger.task_instance = ti  # type: ignore[assignment]
    assert set(trigger.template_fields) == set(TEMPLATE_FIELDS)
    trigger.render_template_fields({"params": {"ip": "10.0.0.7"}})
    assert trigger.input_values == {"ip": "10.0.0.7", "n": 3}  # type: ignore[attr-defined]
    assert trigger.runner == "10.0.0.7-runner"  # type: ignore[attr-defined]
