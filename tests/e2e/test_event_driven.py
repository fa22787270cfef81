"""Blink executions schedule DAG runs (AssetWatcher + BlinkExecutionEventTrigger), across a triggerer restart."""

from __future__ import annotations

import signal
from typing import Any

import pytest
from e2e.harness.blink import BlinkApi
from e2e.harness.deployment import Deployment
from e2e.harness.processes import ComponentFailed
from e2e.harness.waiting import utcnow, wait_until

pytestmark = pytest.mark.e2e

DAG_ID = "blink_e2e_event_driven"
PLAYBOOK = "event-source"


def start_execution(blink: BlinkApi) -> str:
    response = blink.session.post(
        f"{blink.url}/api/v1/workspace/{blink.workspace_id}/playbooks/{PLAYBOOK}/execute", json={}, timeout=10
    )
    response.raise_for_status()
    return str(response.json()["execution_id"])


def finished(blink: BlinkApi, execution_id: str) -> bool:
    return blink.execution(execution_id)["state_ui"] == "Completed"


def runs_and_their_executions(deployment: Deployment) -> list[list[str]]:
    """For each DAG run of the watched asset, oldest first: the executions its asset events carry."""
    api = deployment.api
    runs = api.get(f"/dags/{DAG_ID}/dagRuns", limit=100, order_by="id")["dag_runs"]
    result = []
    for run in runs:
        events = api.get(f"/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}/upstreamAssetEvents")["asset_events"]
        result.append([e["extra"]["payload"]["execution_id"] for e in events])
    return result


def wait_for_runs_covering(deployment: Deployment, execution_ids: list[str]) -> list[list[str]]:
    def covered() -> list[list[str]] | None:
        runs = runs_and_their_executions(deployment)
        seen = [e for run in runs for e in run]
        return runs if all(e in seen for e in execution_ids) else None

    return wait_until(
        f"DAG runs of {DAG_ID} for executions {execution_ids}",
        covered,
        timeout=120,
        interval=0.5,
        diagnose=lambda: str(runs_and_their_executions(deployment)),
    )


def test_each_finished_execution_starts_one_dag_run_across_a_triggerer_restart(
    deployment: Deployment, blink: BlinkApi
) -> None:
    api = deployment.api
    dag = api.dag(DAG_ID)
    assert dag is not None
    if dag["is_paused"]:
        api.request("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})
    # The watcher starts once the unpaused DAG is parsed again; ask for that now, as a user would.
    api.request("PUT", f"/parseDagFile/{dag['file_token']}")

    first = start_execution(blink)
    wait_for_runs_covering(deployment, [first])

    # The triggerer stops; an execution finishes while it is gone.
    triggerer = deployment.components["triggerer"]
    down = utcnow()
    triggerer.send(signal.SIGTERM)
    if not triggerer.wait_exit(60):
        raise ComponentFailed(f"triggerer did not exit within 60 s of SIGTERM\n{triggerer.tail()}")
    while_down = start_execution(blink)
    wait_until(
        "the execution to finish while the triggerer is down", lambda: finished(blink, while_down), timeout=30
    )
    triggerer.start()
    deployment.wait_healthy(["triggerer"], timeout=120, heartbeat_after=down)

    wait_for_runs_covering(deployment, [first, while_down])
    after = start_execution(blink)
    wait_for_runs_covering(deployment, [first, while_down, after])
    # A sentinel: events come in finish order, so a repeat of an earlier one would precede it.
    sentinel = start_execution(blink)
    runs = wait_for_runs_covering(deployment, [first, while_down, after, sentinel])

    fired: list[Any] = [e for run in runs for e in run]
    assert sorted(fired) == sorted([first, while_down, after, sentinel]), f"lost or repeated: {runs}"
    assert runs == [[first], [while_down], [after], [sentinel]], f"one DAG run per execution: {runs}"
