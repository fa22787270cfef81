"""The event watcher (BlinkExecutionEventTrigger behind an AssetWatcher) with two triggerers: each
finished execution starts exactly one DAG run, also when the triggerer running the watcher dies."""

from __future__ import annotations

import time

import pytest
from e2e.harness.blink import BlinkApi
from e2e.harness.distributed import TRIGGERERS, DistributedDeployment
from e2e.harness.events import finished, start_execution, unpause_and_parse, wait_for_runs_covering
from e2e.harness.figures import record
from e2e.harness.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

WATCHER_CLASSPATH = "airflow_provider_blink.triggers.blink_events.BlinkExecutionEventTrigger"


def watcher_triggerer(deployment: DistributedDeployment) -> str | None:
    """The triggerer running the watcher's trigger now (``None`` while no live one holds it)."""
    rows = deployment.postgres.query(
        "SELECT triggerer_id FROM trigger WHERE classpath = %s", WATCHER_CLASSPATH
    )
    live = {deployment.triggerer_job(name): name for name in TRIGGERERS if name in deployment.components}
    holders = {live.get(job) for (job,) in rows}
    return holders.pop() if len(holders) == 1 and None not in holders else None


def test_each_execution_starts_one_run_across_the_watchers_triggerer_dying(
    deployment: DistributedDeployment, blink: BlinkApi
) -> None:
    unpause_and_parse(deployment)
    holder = wait_until("a triggerer to run the watcher", lambda: watcher_triggerer(deployment), timeout=120)
    [other] = [name for name in TRIGGERERS if name != holder]

    first = start_execution(blink)
    wait_for_runs_covering(deployment, [first])

    killed_at = time.monotonic()
    deployment.kill(holder)
    try:
        while_down = start_execution(blink)
        wait_until("the execution to finish", lambda: finished(blink, while_down), timeout=30)
        wait_until(
            f"{other} to take the watcher over", lambda: watcher_triggerer(deployment) == other, timeout=180
        )
        moved_after = time.monotonic() - killed_at
        wait_for_runs_covering(deployment, [first, while_down])
        after = start_execution(blink)
        wait_for_runs_covering(deployment, [first, while_down, after])
        # A sentinel: events come in finish order, so a repeat of an earlier one would precede it.
        sentinel = start_execution(blink)
        runs = wait_for_runs_covering(deployment, [first, while_down, after, sentinel])
    finally:
        deployment.revive(holder)
    record(
        "event watcher's triggerer SIGKILLed",
        {"kill -> watcher running on the other (s)": round(moved_after, 1)},
    )

    assert runs == [[first], [while_down], [after], [sentinel]], f"one DAG run per execution: {runs}"
    for run_id in [
        r["dag_run_id"] for r in deployment.api.get("/dags/blink_e2e_event_driven/dagRuns")["dag_runs"]
    ]:
        assert deployment.api.wait_for_run("blink_e2e_event_driven", run_id, timeout=180) == "success"
