"""``start_from_trigger=True``: the triggerer starts the playbook, and a run that succeeds never takes a worker.

On Airflow 2.11 and 3.3+ the scheduler defers such a task straight to the triggerer, where
``BlinkPlaybookTrigger`` starts the playbook, waits, and ends a successful task itself; any other end
resumes the task on a worker, which fails it. Airflow 3.0-3.2 cannot start a task there: the
provider logs why and takes the deferrable path (start on a worker, wait in the triggerer).

- ``test_triggerer_sigkill_right_after_blink_has_the_run``: the triggerer dies right after the start;
  the next one follows that execution, and ends the task without a worker or a second start.
- ``test_failed_run_resumes_on_a_worker``: a failing playbook's task resumes on a worker, whose
  failure names the failing step.
- ``test_off_on_this_line``: on 3.0-3.2 the same DAG runs the old way and its log says why.

The DAGs request no template (Airflow 2.11's triggerer renders none), so each has a playbook of its
own, and a test tells its run's executions apart by those Blink had before it triggered the run.
"""

from __future__ import annotations

from typing import Any

import pytest
from e2e.harness.blink import BlinkApi
from e2e.harness.deployment import Deployment
from e2e.harness.runs import RUN_TIMEOUT, fired_events, log_lines, logged_steps, worker_trace
from e2e.harness.waiting import utcnow, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.older_lines, pytest.mark.timeout(600)]

DAG_ID = "blink_e2e_start_from_trigger"
FAILS_DAG_ID = "blink_e2e_start_from_trigger_fails"
TASK_ID = "start_in_triggerer"
PLAYBOOK = "start-from-trigger"
FAILS_PLAYBOOK = "start-from-trigger-fails"

starts_in_the_triggerer = pytest.mark.skipif(
    not Deployment.starts_from_trigger,
    reason="Airflow 3.0-3.2 cannot start a task in the triggerer: the provider turns start_from_trigger "
    "off there (test_off_on_this_line)",
)


@starts_in_the_triggerer
def test_triggerer_sigkill_right_after_blink_has_the_run(deployment: Deployment, blink: BlinkApi) -> None:
    api = deployment.api
    known = _ids(blink.executions(PLAYBOOK))
    run_id = api.trigger(DAG_ID, run_id=f"e2e__sft_sigkill__{utcnow():%H%M%S%f}")
    [execution] = wait_until(
        "Blink to have the run's execution",
        lambda: _new(blink, PLAYBOOK, known),
        timeout=RUN_TIMEOUT,
        interval=0.1,
        diagnose=lambda: api.describe_run(DAG_ID, run_id),
    )
    execution_id = execution["id"]
    # SIGKILL right after Blink has the run: whether the trigger recorded the id before the kill is a
    # race (the deterministic case, killed between Blink's answer and the record, is unit-tested and
    # in the 3.3 scale suite). Either way the next triggerer must follow this execution.
    downtime = deployment.restart("triggerer", crash=True)

    assert api.wait_for_run(DAG_ID, run_id, timeout=RUN_TIMEOUT) == "success", api.describe_run(
        DAG_ID, run_id
    )
    ti = api.task_instance(DAG_ID, run_id, TASK_ID)
    assert (ti["state"], ti["try_number"]) == ("success", 1), "the kill cost the task a try"
    executions = _new(blink, PLAYBOOK, known)
    assert _ids(executions) == {execution_id}, f"Blink ran the playbook more than once: {executions}"
    assert blink.execution(execution_id)["state_ui"] == "Completed"

    # The triggerer ended the task with the XComs the operator pushes, and the "Blink" link.
    url = api.xcom(DAG_ID, run_id, TASK_ID, "execution_url")
    assert f"execution_id={execution_id}" in url, url
    assert api.xcom(DAG_ID, run_id, TASK_ID, "execution_id") == execution_id
    summary = api.xcom(DAG_ID, run_id, TASK_ID, "return_value")
    assert summary["execution_id"] == execution_id, summary
    assert (summary["state_ui"], summary["output"], summary["execution_url"]) == (
        "Completed",
        {"ok": True},
        url,
    )
    assert api.links(DAG_ID, run_id, TASK_ID) == {"Blink": url}

    # No worker ran it: never queued for an executor, no worker host or process, no worker log file.
    trace = worker_trace(deployment, ti)
    assert trace.none, (trace, ti)

    # The trigger ran in the killed triggerer's job, then in the next one's, which followed the
    # execution (by the id recorded, or found in Blink as the start in flight), started none, and fired.
    logs = deployment.trigger_logs(DAG_ID, run_id, TASK_ID)
    assert len(logs) == 2, sorted(logs)
    first, second = (logs[job] for job in sorted(logs))
    assert fired_events(first) == []
    followed = [
        line for line in log_lines(second) if line.startswith(f"Following Blink execution {execution_id}, ")
    ]
    assert len(followed) == 1, log_lines(second)
    # The test means most if the next triggerer found the execution still running, and waited for it.
    assert f"Blink execution {execution_id} is In Progress" in log_lines(second), (
        f"playbook {PLAYBOOK!r} finished before the next triggerer followed it (down {downtime:.0f} s): "
        "make it longer in tests/e2e/conftest.py PLAYBOOKS"
    )
    assert not [line for line in log_lines(second) if line.startswith("Started Blink execution")]
    assert len(fired_events(second)) == 1, second

    # Airflow serves the trigger's lines as the try's log, the steps table among them.
    records = api.task_log_records(DAG_ID, run_id, TASK_ID, 1)
    assert followed[0] in log_lines(records)
    assert [row[:2] for row in logged_steps(records, execution_id)] == [
        [f"step_{k}", "completed"] for k in (1, 2, 3)
    ]
    assert f"Blink execution {execution_id} finished: Completed" in log_lines(records)


@starts_in_the_triggerer
def test_failed_run_resumes_on_a_worker(deployment: Deployment, blink: BlinkApi) -> None:
    api = deployment.api
    known = _ids(blink.executions(FAILS_PLAYBOOK))
    run_id = api.trigger(FAILS_DAG_ID, run_id=f"e2e__sft_fails__{utcnow():%H%M%S%f}")

    assert api.wait_for_run(FAILS_DAG_ID, run_id, timeout=RUN_TIMEOUT) == "failed"
    ti = api.task_instance(FAILS_DAG_ID, run_id, TASK_ID)
    assert (ti["state"], ti["try_number"]) == ("failed", 1), api.describe_run(FAILS_DAG_ID, run_id)
    [execution] = _new(blink, FAILS_PLAYBOOK, known)
    execution_id = execution["id"]
    assert blink.execution(execution_id)["state_ui"] == "Failed"

    # The trigger started the playbook; the task resumed on a worker, which failed it.
    records = api.task_log_records(FAILS_DAG_ID, run_id, TASK_ID, 1)
    started = f"Started Blink execution {execution_id} of playbook {FAILS_PLAYBOOK}: "
    assert any(line.startswith(started) for line in log_lines(records)), log_lines(records)
    trace = worker_trace(deployment, ti)
    assert trace.complete, (trace, ti)
    assert logged_steps(records, execution_id)[1][:2] == ["step_2", "failed"]
    failures = api.failure_messages(records)
    assert any(
        message.startswith(
            f"BlinkExecutionFailed: Blink execution {execution_id!r} of playbook {FAILS_PLAYBOOK!r}"
        )
        and "Failing step: step_2: step 2: EDR refused the isolation." in message
        for message in failures
    ), failures


@pytest.mark.skipif(
    Deployment.starts_from_trigger,
    reason="on Airflow 2.11 and 3.3+ start_from_trigger is on: the tests above check it",
)
def test_off_on_this_line(deployment: Deployment, blink: BlinkApi) -> None:
    api = deployment.api
    known = _ids(blink.executions(PLAYBOOK))
    run_id = api.trigger(DAG_ID, run_id=f"e2e__sft_off__{utcnow():%H%M%S%f}")

    assert api.wait_for_run(DAG_ID, run_id, timeout=RUN_TIMEOUT) == "success", api.describe_run(
        DAG_ID, run_id
    )
    ti = api.task_instance(DAG_ID, run_id, TASK_ID)
    assert (ti["state"], ti["try_number"]) == ("success", 1)
    [execution] = _new(blink, PLAYBOOK, known)
    assert blink.execution(execution["id"])["state_ui"] == "Completed"
    assert api.xcom(DAG_ID, run_id, TASK_ID, "execution_id") == execution["id"]

    # The old way: a worker started it (and logged why), the trigger waited, a worker ended it.
    assert worker_trace(deployment, ti).complete, ti
    records = api.task_log_records(DAG_ID, run_id, TASK_ID, 1)
    warnings = [
        r["event"] for r in records if r.get("level") == "warning" and "start_from_trigger" in str(r["event"])
    ]
    assert len(warnings) == 1, log_lines(records)
    [(_, trigger_records)] = deployment.trigger_logs(DAG_ID, run_id, TASK_ID).items()
    assert len(fired_events(trigger_records)) == 1, trigger_records


def _new(blink: BlinkApi, playbook_id: str, known: set[str]) -> list[dict[str, Any]]:
    """The executions of ``playbook_id`` Blink has now and had not before (list items, oldest first)."""
    return [e for e in blink.executions(playbook_id) if e["id"] not in known]


def _ids(executions: list[dict[str, Any]]) -> set[str]:
    return {str(e["id"]) for e in executions}
