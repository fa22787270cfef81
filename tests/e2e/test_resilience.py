"""What a real deployment does to a waiting task: triggerer restarts and concurrent mapped runs.

Blink is asked to run a playbook at most once per task try: a triggerer that goes away (stopped or
killed) while a task waits must leave the execution alone, and the triggerer that takes over must
pick up the same execution rather than start another.
"""

from __future__ import annotations

import collections

import pytest
from e2e.harness.blink import BlinkApi
from e2e.harness.deployment import Deployment
from e2e.harness.runs import RUN_TIMEOUT, fired_events, start_waiting_run, started
from e2e.harness.waiting import utcnow

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

DAG_ID = "blink_e2e_deferred_wait"
TASK_ID = "wait_in_triggerer"


@pytest.mark.parametrize(
    ("playbook_id", "crash"),
    [("restart-sigterm", False), ("restart-sigkill", True)],
    ids=["SIGTERM", "SIGKILL"],
)
def test_triggerer_restart_while_a_task_waits(
    playbook_id: str, crash: bool, deployment: Deployment, blink: BlinkApi
) -> None:
    api = deployment.api
    run = start_waiting_run(deployment, blink, DAG_ID, TASK_ID, playbook_id, playbook_id)
    run_id, first, execution = run.run_id, run.triggerer, run.execution
    assert execution["state_ui"] == "In Progress"

    downtime = deployment.restart("triggerer", crash=crash)

    # The test means something only if the new triggerer found the execution still running.
    assert blink.execution(execution["id"])["state_ui"] == "In Progress", (
        f"playbook {playbook_id!r} finished while the triggerer was down ({downtime:.0f} s): "
        "make it longer in tests/e2e/conftest.py PLAYBOOKS"
    )
    assert api.wait_for_run(DAG_ID, run_id, timeout=RUN_TIMEOUT) == "success", api.describe_run(
        DAG_ID, run_id
    )

    ti = api.task_instance(DAG_ID, run_id, TASK_ID)
    assert ti["state"] == "success"
    assert ti["try_number"] == 1, "the restart cost the task a try"
    executions = blink.executions_for_run(playbook_id, run_id)
    assert [e["id"] for e in executions] == [execution["id"]], "Blink ran the playbook more than once"
    assert executions[0]["state_ui"] == "Completed"
    # The trigger ran in the old triggerer job, then in a new one, which fired the one event.
    logs = deployment.trigger_logs(DAG_ID, run_id, TASK_ID)
    assert first in logs, sorted(logs)
    assert fired_events(logs.pop(first)) == []
    [(second, records)] = logs.items()
    assert second > first
    assert started(records)
    [fired] = fired_events(records)
    assert execution["id"] in str(fired["result"])


def test_two_runs_of_the_mapped_example_at_once(deployment: Deployment, blink: BlinkApi) -> None:
    dag_id = "example_blink_mapped"
    api = deployment.api
    before = {e["id"] for e in blink.executions("isolate-host")}

    run_ids = [api.trigger(dag_id, run_id=f"e2e__concurrent{n}__{utcnow():%H%M%S%f}") for n in (1, 2)]
    for run_id in run_ids:
        assert api.wait_for_run(dag_id, run_id, timeout=RUN_TIMEOUT) == "success", api.describe_run(
            dag_id, run_id
        )

    new = [e for e in blink.executions("isolate-host") if e["id"] not in before]
    assert len(new) == 6, f"expected 3 executions per run, Blink saw {len(new)}"
    assert all(e["state_ui"] == "Completed" for e in new)
    hosts = collections.Counter(
        blink.execution(e["id"])["inputs"]["hostname"] for e in new
    )  # not in list items
    assert hosts == {"laptop-0042": 2, "laptop-0043": 2, "build-agent-7": 2}

    pushed = []
    for run_id in run_ids:
        tis = [ti for ti in api.task_instances(dag_id, run_id) if ti["task_id"] == "isolate_host"]
        assert sorted(ti["map_index"] for ti in tis) == [0, 1, 2]
        assert all(ti["state"] == "success" and ti["try_number"] == 1 for ti in tis)
        pushed += [api.xcom(dag_id, run_id, "isolate_host", "execution_id", ti["map_index"]) for ti in tis]
    assert len(set(pushed)) == 6, f"mapped task instances share execution ids: {pushed}"
    assert set(pushed) == {e["id"] for e in new}
