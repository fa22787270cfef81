"""Event-driven scheduling (AssetWatcher + BlinkExecutionEventTrigger) as the suites observe it.

The e2e DAG ``blink_e2e_event_driven`` is scheduled on an asset whose watcher emits one event per
finished execution of the ``event-source`` playbook; each DAG run's upstream asset events name the
executions that triggered it.
"""

from __future__ import annotations

from e2e.harness.blink import BlinkApi
from e2e.harness.deployment import Deployment
from e2e.harness.waiting import wait_until

DAG_ID = "blink_e2e_event_driven"
PLAYBOOK = "event-source"


def unpause_and_parse(deployment: Deployment) -> None:
    """Unpause the event-driven DAG and ask for a re-parse, as a user would: the watcher starts then."""
    api = deployment.api
    dag = api.dag(DAG_ID)
    assert dag is not None, f"{DAG_ID} is not deployed"
    if dag["is_paused"]:
        api.request("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})
    api.request("PUT", f"/parseDagFile/{dag['file_token']}")


def start_execution(blink: BlinkApi) -> str:
    return blink.start(PLAYBOOK)


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
