"""What Blink did, seen from Airflow: the steps table, the failing step, progress, and runs that wait for a person.

Against the emulator: multi-step playbooks whose steps start and end over time, and one that waits
in ``Pending`` until the test releases it (``BlinkEmulator.release``), as a person approving would.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from typing import Any

import pytest

from airflow_provider_blink.compat import TaskDeferred
from airflow_provider_blink.exceptions import (
    BlinkConfigurationError,
    BlinkExecutionFailed,
    BlinkExecutionTimeout,
)
from airflow_provider_blink.executions import (
    STEPS_SHOWN,
    failure_message,
    step_error,
    steps_table,
    waits_for_person,
)
from airflow_provider_blink.operators.blink import BlinkExecutePlaybookOperator
from airflow_provider_blink.sensors.blink import BlinkExecutionSensor
from airflow_provider_blink.tasks import PROGRESS_KEY, StepProgress
from airflow_provider_blink.testing import BlinkEmulator, Phase, ScriptedPlaybook
from airflow_provider_blink.triggers.blink import BlinkExecutionTrigger, wait_for_event

from support.dag_runs import register, run, task_instance
from support.emulator import WORKSPACE, requests_to, start_directly, url_of
from support.logs import Logged
from support.task_instance import TaskStateStore, context_for, run_to_the_end
from support.triggers import next_event
from support.waiting import wait_for

PLAYBOOKS = [
    ScriptedPlaybook(id="three-steps", workspace_id=WORKSPACE, duration=0.9, steps=3, output={"answer": 3}),
    ScriptedPlaybook(
        id="three-steps-fail",
        workspace_id=WORKSPACE,
        duration=0.6,
        steps=3,
        failed_step=2,
        final_state="Failed",
        error_details={"message": "SIEM returned 500", "error_code": "STEP_FAILED"},
    ),
    # Waits for a person from 0.1 s until released, then completes 0.3 s later.
    ScriptedPlaybook(
        id="needs-approval",
        workspace_id=WORKSPACE,
        duration=0.4,
        steps=2,
        phases=(Phase(0.1, "Pending", until_released=True),),
        output={"contained": True},
    ),
]


@pytest.fixture
def blink(emulator: BlinkEmulator) -> BlinkEmulator:
    for playbook in PLAYBOOKS:
        emulator.add_playbook(playbook)
    return emulator


def operator(**kwargs: Any) -> BlinkExecutePlaybookOperator:
    return BlinkExecutePlaybookOperator(
        **{"task_id": "run_playbook", "playbook_id": "three-steps", "poll_interval": 0.1, **kwargs}
    )


def steps_reads(emulator: BlinkEmulator) -> int:
    return len(requests_to(emulator, "GET", "/steps"))


class Approvals:
    """
    An ``on_waiting_for_approval`` callback that records the context of each call.

    :param releases: approve as the callback is called (the person the notification reached).
    """

    def __init__(self, releases: BlinkEmulator | None = None) -> None:
        self.releases = releases
        self.calls: list[dict[str, Any]] = []

    def __deepcopy__(self, memo: dict[int, Any]) -> Approvals:
        return self  # one record of the calls, however often Airflow copies the task

    def __call__(self, context: Any) -> None:
        self.calls.append(dict(context))
        if self.releases is not None:
            self.releases.release(context["blink_execution"]["id"])


@pytest.fixture
def approver(blink: BlinkEmulator) -> Approvals:
    """A callback that approves each run it is called for."""
    return Approvals(releases=blink)


# The table, and the failing step -----------------------------------------------------------------
STEPS = [
    {
        "step_id": "step_1",
        "state": "completed",
        "started_at": 1_800_000_000_000,
        "finished_at": 1_800_000_001_500,
        "error_data": "",
    },
    {
        "step_id": "step_2",
        "state": "failed",
        "started_at": 1_800_000_001_500,
        "finished_at": 1_800_000_002_000,
        "error_data": json.dumps({"message": "SIEM\nreturned 500", "code": 7}),
    },
    {"step_id": "step_3", "state": "running", "started_at": 1_800_000_002_000, "finished_at": 0},
]


def test_the_table_shows_each_step_id_state_start_duration_and_error():
    assert steps_table(STEPS).splitlines() == [
        "step    state      started (UTC)        duration  error",
        "step_1  completed  2027-01-15 08:00:00  1.5s",
        "step_2  failed     2027-01-15 08:00:01  0.5s      SIEM returned 500",
        "step_3  running    2027-01-15 08:00:02  -",
    ]


def test_fields_of_unexpected_types_show_as_a_dash_and_long_tables_are_cut():
    odd = [{"step_id": 7, "state": None, "started_at": "soon", "finished_at": True, "error_data": ["x"]}]
    assert steps_table(odd).splitlines()[1].split() == ["-", "-", "-", "-", '["x"]']

    many = [{**STEPS[0], "step_id": f"s{n}"} for n in range(STEPS_SHOWN + 5)]
    lines = steps_table(many).splitlines()
    assert len(lines) == 1 + STEPS_SHOWN + 1
    assert lines[-1] == "... and 5 more steps"


@pytest.mark.parametrize(
    ("error_data", "shown"),
    [
        ("plain text from the step", "plain text from the step"),
        (json.dumps({"message": "from the message"}), "from the message"),
        (json.dumps({"code": 7}), '{"code": 7}'),
        ("", ""),
        (None, ""),
    ],
    ids=["text", "json-with-message", "json-without-message", "empty", "absent"],
)
def test_a_steps_error_is_shown_whichever_way_blink_writes_it(error_data, shown):
    """Blink types ``error_data`` as a string and documents no shape for it: each way reads as one line."""
    assert step_error({"step_id": "s", "error_data": error_data}) == shown


@pytest.mark.parametrize(
    ("record", "waits"),
    [
        ({"state_ui": "Pending", "state": "pending"}, True),
        ({"state_ui": "Paused", "state": "paused"}, True),
        ({"state": "paused"}, True),
        ({"state_ui": "In Progress", "state": "running"}, False),
    ],
    ids=["pending", "paused", "raw-state-only", "running"],
)
def test_pending_and_paused_mean_a_person_is_waited_for(record, waits):
    assert waits_for_person(record) is waits


def test_a_failure_message_names_the_failing_step_its_error_and_the_link():
    execution = {"id": "e-1", "playbook_id": "pb", "state_ui": "Failed", "error_details": {"error_code": "X"}}

    message = failure_message(execution, "https://blink/run", STEPS)

    assert message == (
        "Blink execution 'e-1' of playbook 'pb' ended in state 'Failed': error_code=X. "
        "Failing step: step_2: SIEM returned 500. See https://blink/run"
    )


@pytest.mark.parametrize("deferrable", [False, True], ids=["in-worker", "deferred"])
def test_a_finished_run_logs_one_table_of_its_steps_from_one_read(blink, caplog, capfd, deferrable):
    summary = run_to_the_end(operator(deferrable=deferrable), context_for())

    logged = Logged(caplog, capfd)
    assert logged.count(f"Steps of Blink execution {summary['execution_id']} (3):") == 1
    for step in ("step_1", "step_2", "step_3"):
        assert logged.count(f"{step}  completed") == 1
    assert summary["output"] == {"answer": 3}, "the output comes from the same read"
    assert steps_reads(blink) == 1, "no steps read while waiting, one at the end"


def test_a_failed_run_fails_naming_the_failing_step_and_the_link(blink, caplog, capfd):
    with pytest.raises(BlinkExecutionFailed) as failed:
        operator(playbook_id="three-steps-fail").execute(context_for())

    (execution,) = blink.executions
    url = url_of(blink, "three-steps-fail", execution["id"])
    assert "Failing step: step_2: SIEM returned 500" in str(failed.value)
    assert str(failed.value).endswith(f"See {url}")
    logged = Logged(caplog, capfd)
    assert logged.count("step_2  failed") == 1
    assert logged.count("step_3") == 0, "the steps after the failing one never ran"


def test_a_timed_out_run_is_cancelled_and_its_steps_are_logged(blink, caplog, capfd):
    with pytest.raises(BlinkExecutionTimeout):
        operator(playbook_id="slow", timeout=0.5).execute(context_for())

    (execution,) = blink.executions
    assert blink.execution(execution["id"])["state_ui"] == "Cancelled"
    assert Logged(caplog, capfd).count("step_1  cancelled") == 1


def test_the_sensor_logs_the_table_and_names_the_failing_step(blink, caplog, capfd):
    execution_id = start_directly(blink, "three-steps-fail")
    sensor = BlinkExecutionSensor(task_id="wait", execution_id=execution_id, poke_interval=0.1, mode="poke")

    with pytest.raises(BlinkExecutionFailed, match="Failing step: step_2: SIEM returned 500"):
        sensor.execute(context_for())

    assert Logged(caplog, capfd).count(f"Steps of Blink execution {execution_id} (2):") == 1


def test_log_steps_false_logs_no_table(blink, caplog, capfd):
    summary = operator(log_steps=False).execute(context_for())

    assert summary["output"] == {"answer": 3}
    assert Logged(caplog, capfd).count("Steps of Blink execution") == 0


# Progress while waiting --------------------------------------------------------------------------
@pytest.mark.parametrize("deferrable", [False, True], ids=["in-worker", "deferred"])
def test_log_progress_logs_each_step_as_it_starts_and_ends(blink, caplog, capfd, deferrable):
    run_to_the_end(operator(deferrable=deferrable, log_progress=True, progress_interval=0.1), context_for())

    logged = Logged(caplog, capfd)
    (execution,) = blink.executions
    for step in ("step_1", "step_2"):
        assert logged.count(f"Blink execution {execution['id']}: step {step} started") == 1
        assert logged.count(f"Blink execution {execution['id']}: step {step} ended: completed after") == 1


def test_progress_reads_the_steps_at_most_once_per_progress_interval(blink):
    operator(playbook_id="three-steps", log_progress=True, progress_interval=60).execute(context_for())

    assert steps_reads(blink) == 2, "one read while waiting (the first), one at the end"


def test_the_progress_interval_counts_from_when_a_read_of_the_steps_ended():
    """A slow read of the steps (a busy Blink, a full connection pool) does not bring the next one closer."""

    class SlowSteps:
        async def get_execution_steps(self, execution_id: str, **_: Any) -> list[dict[str, Any]]:
            await asyncio.sleep(0.3)
            return []

    trigger = BlinkExecutionTrigger(
        execution_id="e-1", poll_interval=1.0, log_progress=True, progress_interval=5
    )
    progress = StepProgress(5)

    asyncio.run(trigger._log_progress(SlowSteps(), progress))  # type: ignore[arg-type]

    assert not progress.due(time.time() + 5 - 0.1)
    assert progress.due(time.time() + 5)


def test_the_sensor_keeps_its_progress_across_reschedules(blink, caplog, capfd):
    """In reschedule mode each poke is a new run: the progress is kept between them, and the interval holds."""
    execution_id = start_directly(blink, "slow")
    store = TaskStateStore()
    for _ in range(3):
        sensor = BlinkExecutionSensor(
            task_id="wait",
            execution_id=execution_id,
            mode="reschedule",
            log_progress=True,
            progress_interval=60,
        )
        assert sensor.poke(context_for(task_state_store=store)) is False

    assert steps_reads(blink) == 1
    assert Logged(caplog, capfd).count(f"Blink execution {execution_id}: step step_1 started") == 1
    assert PROGRESS_KEY in store.values

    blink.finish(execution_id, "Completed")
    sensor = BlinkExecutionSensor(
        task_id="wait", execution_id=execution_id, mode="reschedule", log_progress=True
    )
    assert sensor.poke(context_for(task_state_store=store)).is_done  # type: ignore[union-attr]
    assert PROGRESS_KEY not in store.values, "the wait is over: nothing is left behind"


# Runs that wait for a person ---------------------------------------------------------------------
def test_the_callback_is_called_once_and_the_task_completes_after_the_release(blink, approver, caplog, capfd):
    summary = operator(playbook_id="needs-approval", on_waiting_for_approval=approver).execute(context_for())

    (call,) = approver.calls
    url = url_of(blink, "needs-approval", summary["execution_id"])
    assert call["blink_execution"]["id"] == summary["execution_id"]
    assert call["blink_execution_url"] == url
    assert call["ti"] is not None, "the callback gets the task's context"
    assert summary["output"] == {"contained": True}
    assert (
        Logged(caplog, capfd).count(f"a step waits for a person (an approval or an input) in Blink: {url}")
        == 1
    )


def test_a_deferred_task_resumes_for_the_callback_and_defers_again_with_the_same_deadline(blink, approver):
    op = operator(playbook_id="needs-approval", deferrable=True, timeout=60, on_waiting_for_approval=approver)
    context = context_for()
    with pytest.raises(TaskDeferred) as first:
        op.execute(context)

    waiting = wait_for_event(first.value.trigger)
    assert waiting["status"] == "waiting"
    assert approver.calls == []
    with pytest.raises(TaskDeferred) as second:
        op.execute_complete(context, waiting, **(first.value.kwargs or {}))

    assert len(approver.calls) == 1
    assert second.value.trigger.end_time == first.value.trigger.end_time, "the deadline still applies"
    assert second.value.trigger.stop_for_approval is False
    summary = op.execute_complete(
        context, wait_for_event(second.value.trigger), **(second.value.kwargs or {})
    )
    assert summary["state_ui"] == "Completed"


def test_a_triggerer_restart_does_not_call_the_callback_twice(blink):
    """The restarted trigger yields ``waiting`` again; the record of the call keeps it to one."""
    approvals = Approvals()
    op = operator(playbook_id="needs-approval", deferrable=True, on_waiting_for_approval=approvals)
    context = context_for()
    with pytest.raises(TaskDeferred) as first:
        op.execute(context)
    trigger = first.value.trigger

    events = [asyncio.run(next_event(type(trigger)(**trigger.serialize()[1]))) for _ in range(2)]
    for event in events:
        with pytest.raises(TaskDeferred):
            op.execute_complete(context, event, **(first.value.kwargs or {}))

    assert [event["status"] for event in events] == ["waiting", "waiting"]
    assert len(approvals.calls) == 1
    blink.finish(events[0]["execution_id"], "Cancelled")


def test_the_sensor_calls_the_callback_once_across_reschedules(blink):
    approvals = Approvals()
    execution_id = start_directly(blink, "needs-approval")
    wait_for(lambda: blink.execution(execution_id)["state_ui"] == "Pending")
    store = TaskStateStore()
    for _ in range(3):
        sensor = BlinkExecutionSensor(
            task_id="wait", execution_id=execution_id, mode="reschedule", on_waiting_for_approval=approvals
        )
        assert sensor.poke(context_for(task_state_store=store)) is False

    assert len(approvals.calls) == 1
    blink.release(execution_id)


def test_the_deadline_applies_while_a_run_waits_for_a_person(blink):
    approvals = Approvals()
    with pytest.raises(BlinkExecutionTimeout):
        operator(playbook_id="needs-approval", timeout=1.0, on_waiting_for_approval=approvals).execute(
            context_for()
        )

    (execution,) = blink.executions
    assert len(approvals.calls) == 1
    assert blink.execution(execution["id"])["state_ui"] == "Cancelled"


def test_a_failing_callback_is_logged_and_the_wait_goes_on(blink, caplog, capfd):
    def broken(context: Any) -> None:
        blink.release(context["blink_execution"]["id"])
        raise RuntimeError("Slack is down")

    summary = operator(playbook_id="needs-approval", on_waiting_for_approval=[broken]).execute(context_for())

    assert summary["state_ui"] == "Completed"
    assert Logged(caplog, capfd).count("Slack is down") >= 1


def test_a_callback_that_is_not_callable_is_refused_at_parse_time():
    with pytest.raises(BlinkConfigurationError, match="on_waiting_for_approval must be a callable"):
        operator(on_waiting_for_approval="slack")


def test_through_real_airflow_the_deferred_task_calls_the_callback_once(airflow_db, blink, approver):
    from airflow_provider_blink.compat import DAG

    with DAG(
        "blink_waits_for_a_person", schedule=None, start_date=datetime(2026, 1, 1), catchup=False
    ) as dag:
        operator(playbook_id="needs-approval", deferrable=True, on_waiting_for_approval=approver)
    register(dag)

    dag_run = run(dag)

    assert task_instance(dag_run, "run_playbook").state == "success"
    (call,) = approver.calls
    assert call["blink_execution"]["state_ui"] == "Pending"
    assert call["dag_run"].run_id == dag_run.run_id
