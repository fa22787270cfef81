"""A big run as both sides see it: Airflow's database and Blink's records.

One mapped run (``blink_scale_fan_out``), or one run of an unmapped fan-out DAG (one task per
execution). Counting hundreds of task instances through the REST API one by one would take longer
than the run; the bulk counts come from Airflow's database, the per-task checks at the end from the
REST API.
"""

from __future__ import annotations

import collections
import contextlib
import json
import time
from dataclasses import dataclass
from typing import Any

from e2e.harness.distributed import TRIGGERERS, DistributedDeployment
from e2e.harness.relay import SeenRequest

DAG_ID = "blink_scale_fan_out"
TASK_ID = "wait"


@dataclass(frozen=True)
class FanOut:
    """A running fan-out: its run id, size, when it was triggered (``time.monotonic()``) and its DAG."""

    run_id: str
    size: int
    started_at: float
    dag_id: str = DAG_ID


def start_fan_out(deployment: DistributedDeployment, size: int, label: str) -> FanOut:
    started_at = time.monotonic()
    run_id = deployment.api.trigger(DAG_ID, run_id=f"scale__{label}", conf={"count": size})
    return FanOut(run_id, size, started_at)


def start_unmapped(deployment: DistributedDeployment, dag_id: str, size: int, label: str) -> FanOut:
    """Trigger a run of an unmapped fan-out DAG (its ``size`` tasks are fixed when it is parsed)."""
    started_at = time.monotonic()
    run_id = deployment.api.trigger(dag_id, run_id=f"scale__{label}")
    return FanOut(run_id, size, started_at, dag_id)


def task_outcomes(deployment: DistributedDeployment, run: FanOut) -> dict[str, tuple[str, int]]:
    """Each task of an unmapped run: its state (``none`` if unset) and try number, by task id."""
    rows = deployment.postgres.query(
        "SELECT task_id, state, try_number FROM task_instance WHERE dag_id = %s AND run_id = %s",
        run.dag_id,
        run.run_id,
    )
    return {task_id: (str(state or "none"), int(tries)) for task_id, state, tries in rows}


def xcom_values(deployment: DistributedDeployment, run: FanOut, key: str) -> dict[str, Any]:
    """The XCom ``key`` of each task of an unmapped run, by task id, as Airflow's API reads it.

    A value a worker pushed (through the execution API) is stored as JSON; one a trigger's
    ``TaskSuccessEvent`` carried is JSON-encoded once more (``XComModel.set`` serializes it), which
    ``XComModel.deserialize_value`` undoes by trying ``json.loads`` on a string: so does this.
    """
    rows = deployment.postgres.query(
        "SELECT task_id, value FROM xcom WHERE dag_id = %s AND run_id = %s AND map_index = -1 AND key = %s",
        run.dag_id,
        run.run_id,
        key,
    )
    return {task_id: _as_airflow_reads(value) for task_id, value in rows}


def _as_airflow_reads(value: Any) -> Any:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return json.loads(value)
    return value


def triggerers_that_ran(
    deployment: DistributedDeployment, run: FanOut, task_ids: list[str]
) -> dict[str, int]:
    """How many of an unmapped run's tasks each triggerer ran a trigger for (first tries), from the
    trigger log files, each named after the triggerer job that wrote it."""
    jobs = {deployment.triggerer_job(name): name for name in TRIGGERERS}
    found: dict[str, int] = collections.Counter()
    for task_id in task_ids:
        for job in deployment.trigger_logs(run.dag_id, run.run_id, task_id):
            found[jobs.get(job, f"job {job}")] += 1
    return dict(sorted(found.items()))


def wall_seconds(deployment: DistributedDeployment, run: FanOut) -> float:
    """From the DAG run's start to its last task's end, as Airflow recorded them."""
    [(seconds,)] = deployment.postgres.query(
        "SELECT EXTRACT(EPOCH FROM max(ti.end_date) - dr.start_date) FROM dag_run dr "
        "JOIN task_instance ti ON ti.dag_id = dr.dag_id AND ti.run_id = dr.run_id "
        "WHERE dr.dag_id = %s AND dr.run_id = %s GROUP BY dr.start_date",
        run.dag_id,
        run.run_id,
    )
    return float(seconds)


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


def finish_all(deployment: DistributedDeployment, run: FanOut) -> None:
    """End every execution the run started (Completed), as Blink would when the playbooks finish."""
    for execution in executions(deployment, run):
        deployment.blink.emulator.finish(execution["id"])


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
