"""A Celery worker dies while a (non-deferrable) task waits on Blink: the retry, on the other worker,
follows the same execution (Airflow 3.3's ``task_state_store`` through the operator's ResumableJobMixin)."""

from __future__ import annotations

import time
from typing import Any

import psutil
import pytest
from e2e.harness.distributed import WORKERS, DistributedDeployment
from e2e.harness.figures import record
from e2e.harness.processes import task_runners
from e2e.harness.relay import SeenRequest
from e2e.harness.waiting import utcnow, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

DAG_ID, TASK_ID, PLAYBOOK = "blink_e2e_worker_wait", "wait_in_worker", "crash-wait"


def running_on(deployment: DistributedDeployment, ti_id: str) -> tuple[str, list[psutil.Process]] | None:
    """The worker running a task instance, and the task's processes (``None`` while none runs it)."""
    runners = task_runners(ti_id)
    owners = {deployment.component_of(p.pid) for p in runners} - {None}
    if len(owners) != 1:
        return None
    [owner] = owners
    return str(owner), runners


def starts_of(deployment: DistributedDeployment) -> list[tuple[str, SeenRequest]]:
    return [
        (name, r)
        for name in WORKERS
        for r in deployment.relays[name].requests
        if r.method == "POST" and r.path.endswith(f"/playbooks/{PLAYBOOK}/execute")
    ]


def test_worker_killed_mid_wait_retry_follows_the_same_execution(deployment: DistributedDeployment) -> None:
    api, emulator = deployment.api, deployment.blink.emulator
    run_id = api.trigger(
        DAG_ID, run_id=f"scale__worker_crash__{utcnow():%H%M%S%f}", conf={"playbook_id": PLAYBOOK}
    )

    def waiting_in_worker() -> tuple[dict[str, Any], str, list[psutil.Process]] | None:
        ti = api.task_instance(DAG_ID, run_id, TASK_ID)
        if ti["state"] != "running" or not api.task_state(DAG_ID, run_id, TASK_ID):
            return None  # crash only after the execution id is stored (nothing could recover before)
        where = running_on(deployment, ti["id"])
        return (ti, *where) if where else None

    ti, first_worker, runners = wait_until(
        f"{TASK_ID} to wait in a worker with its execution id stored",
        waiting_in_worker,
        timeout=240,
        diagnose=lambda: api.describe_run(DAG_ID, run_id),
    )
    [execution] = [e for e in emulator.executions if (e.get("inputs") or {}).get("run_id") == run_id]
    [other_worker] = [name for name in WORKERS if name != first_worker]

    killed_at = time.monotonic()
    deployment.kill(first_worker)  # the whole worker: Celery, its pool and the task it runs
    for proc in runners:
        if proc.is_running():
            proc.kill()
    try:
        retry = wait_until(
            f"the retry of {TASK_ID} to run on {other_worker}",
            lambda: (
                (ti := api.task_instance(DAG_ID, run_id, TASK_ID))["try_number"] == 2
                and ti["state"] == "running"
                and running_on(deployment, ti["id"])
            ),
            timeout=240,
            interval=1,
            diagnose=lambda: api.describe_run(DAG_ID, run_id),
        )
        retried_after = time.monotonic() - killed_at
        assert retry[0] == other_worker
        wait_until(
            "the retry to poll the first execution",
            lambda: any(
                r.method == "GET" and r.path.endswith(execution["id"]) and r.at > killed_at
                for r in deployment.relays[other_worker].requests
            ),
            timeout=120,
        )
        emulator.finish(execution["id"])
        final = api.wait_for_run(DAG_ID, run_id, timeout=180)
    finally:
        deployment.revive(first_worker)
    record(
        "Celery worker SIGKILLed while a task waits",
        {
            "kill -> retry running on the other worker (s)": round(retried_after, 1),
            "[scheduler] task_instance_heartbeat_timeout (s)": deployment.settings.task_dead_after,
        },
    )

    assert final == "success", api.describe_run(DAG_ID, run_id)
    ti = api.task_instance(DAG_ID, run_id, TASK_ID)
    assert ti["try_number"] == 2, api.describe_run(DAG_ID, run_id)
    assert ti["hostname"] == other_worker, "Airflow records the retry on the other worker"
    assert api.xcom(DAG_ID, run_id, TASK_ID, "execution_id") == execution["id"]
    executions = [e for e in emulator.executions if (e.get("inputs") or {}).get("run_id") == run_id]
    assert [e["id"] for e in executions] == [execution["id"]], "the retry started another execution"
    assert emulator.execution(execution["id"])["state_ui"] == "Completed"
    assert [name for name, _ in starts_of(deployment)] == [first_worker], "one start, by the first worker"
    log = api.task_log(DAG_ID, run_id, TASK_ID, 2)
    assert "Reconnecting to existing job" in log, log[-3000:]
    assert "Started Blink execution" not in log, log[-3000:]
