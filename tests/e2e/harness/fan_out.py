"""One big mapped run (``blink_scale_fan_out``) as both sides see it: Airflow's database and Blink's records.

Counting hundreds of task instances through the REST API one by one would take longer than the run;
the bulk counts come from Airflow's database, the per-task checks at the end from the REST API.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass
from typing import Any

from e2e.harness.distributed import TRIGGERERS, DistributedDeployment
from e2e.harness.relay import SeenRequest

DAG_ID = "blink_scale_fan_out"
TASK_ID = "wait"


@dataclass(frozen=True)
class FanOut:
    """A running fan-out: its run id, size and when it was triggered (``time.monotonic()``)."""

    run_id: str
    size: int
    started_at: float


def start_fan_out(deployment: DistributedDeployment, size: int, label: str) -> FanOut:
    started_at = time.monotonic()
    run_id = deployment.api.trigger(DAG_ID, run_id=f"scale__{label}", conf={"count": size})
    return FanOut(run_id, size, started_at)


def task_states(deployment: DistributedDeployment, run: FanOut) -> dict[str, int]:
    """How many of the run's mapped tasks are in each state (``None`` shows as ``"none"``)."""
    rows = deployment.postgres.query(
        "SELECT state, count(*) FROM task_instance WHERE dag_id = %s AND run_id = %s AND task_id = %s "
        "AND map_index >= 0 GROUP BY state",
        DAG_ID,
        run.run_id,
        TASK_ID,
    )
    return {str(state or "none"): int(n) for state, n in rows}


def deferred_per_triggerer(deployment: DistributedDeployment, run: FanOut) -> dict[str, int]:
    """The run's deferred tasks by the triggerer running their trigger (``unassigned`` if none does)."""
    jobs = {deployment.triggerer_job(name): name for name in TRIGGERERS}
    rows = deployment.postgres.query(
        "SELECT t.triggerer_id, count(*) FROM task_instance ti JOIN trigger t ON ti.trigger_id = t.id "
        "WHERE ti.dag_id = %s AND ti.run_id = %s AND ti.task_id = %s AND ti.state = 'deferred' "
        "GROUP BY t.triggerer_id",
        DAG_ID,
        run.run_id,
        TASK_ID,
    )
    found: dict[str, int] = collections.Counter()
    for job, n in rows:
        found[jobs.get(job, "unassigned" if job is None else f"job {job}")] += int(n)
    return dict(found)


def executions(deployment: DistributedDeployment, run: FanOut) -> list[dict[str, Any]]:
    """Blink's records of the executions this run started, oldest first."""
    return [
        e for e in deployment.blink.emulator.executions if (e.get("inputs") or {}).get("run_id") == run.run_id
    ]


def requests_by_sender(
    deployment: DistributedDeployment, *, since: float = 0.0, until: float = float("inf")
) -> dict[str, list[SeenRequest]]:
    """The requests each relayed component sent Blink in ``[since, until)`` (``time.monotonic()``)."""
    return {
        name: [r for r in relay.requests if since <= r.at < until]
        for name, relay in deployment.relays.items()
    }


def is_cancel(request: SeenRequest) -> bool:
    return request.method == "POST" and request.path.endswith("/cancel")


def is_start(request: SeenRequest) -> bool:
    return request.method == "POST" and request.path.endswith("/execute")
