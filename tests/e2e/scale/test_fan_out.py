"""Hundreds of deferred Blink tasks on two triggerers: shared, polled by both, and handed over when one dies.

Each mapped task starts one execution (on a Celery worker) and defers; both triggerers run their
triggers. The emulator's executions end only when the test finishes them, so every phase is observed
while they run: all deferred, both triggerers polling, then the one holding more (about half) killed
with SIGKILL, its triggers taken over by the other, and only then every execution finished.

The issue's first two scenarios (the fan-out; a triggerer killed under ~250 triggers) share this one
run: each task start costs a Celery worker a process and Airflow's API a handful of calls, and two
runs of 500 do not fit CI's time on 2 cores (see the README's "Running at scale").
"""

from __future__ import annotations

import collections
import time
from typing import Any

import pytest
from e2e.harness.distributed import TRIGGERERS, WORKERS, DistributedDeployment
from e2e.harness.fan_out import (
    DAG_ID,
    TASK_ID,
    FanOut,
    deferred_per_triggerer,
    executions,
    finish_all,
    is_cancel,
    is_start,
    requests_by_sender,
    start_fan_out,
    task_states,
)
from e2e.harness.figures import record
from e2e.harness.waiting import wait_until

from airflow_provider_blink.tasks import GET_ONLY_FIELDS

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(2700)]

#: Polling is measured over this many poll intervals once every task is deferred.
WINDOW_INTERVALS = 3


def wait_all_deferred(deployment: DistributedDeployment, run: FanOut, *, timeout: float) -> dict[str, int]:
    """Wait until every mapped task is deferred and held by a triggerer; return the split."""

    def all_deferred() -> dict[str, int] | None:
        deployment._check_components()
        states = task_states(deployment, run)
        if any(states.get(s) for s in ("failed", "upstream_failed", "up_for_retry")):
            raise AssertionError(f"tasks failed before deferring: {states}")
        split = deferred_per_triggerer(deployment, run)
        held = sum(n for name, n in split.items() if name in TRIGGERERS)
        return split if held == run.size else None

    return wait_until(
        f"all {run.size} tasks of {run.run_id} deferred in a triggerer",
        all_deferred,
        timeout=timeout,
        interval=2,
        diagnose=lambda: (
            f"states {task_states(deployment, run)}, split {deferred_per_triggerer(deployment, run)}"
        ),
    )


def polls_per_execution(
    deployment: DistributedDeployment, run: FanOut, since: float, until: float
) -> dict[str, Any]:
    """
    Requests each triggerer sent about the run's executions in a window, and per execution per interval.

    A request reads one execution (``GET``) or many (a batched list call): both count as one request.
    """
    ids = {e["id"] for e in executions(deployment, run)}
    sent = requests_by_sender(deployment, since=since, until=until)
    intervals = (until - since) / deployment.settings.poll_interval
    figures: dict[str, Any] = {}
    for name in TRIGGERERS:
        about_run = [r for r in sent.get(name, []) if r.executions_read() & ids]
        polled = set().union(*(r.executions_read() & ids for r in about_run))
        figures[name] = {"requests": len(about_run), "executions polled": len(polled)}
    total = sum(f["requests"] for f in figures.values())
    figures["per execution per interval"] = round(total / (run.size * intervals), 2)
    return figures


def assert_each_task_succeeded_once_on_its_own_execution(
    deployment: DistributedDeployment, run: FanOut
) -> None:
    """Airflow's side and Blink's: one execution per task, started once, never cancelled, its result in XCom."""
    api = deployment.api
    tis = api.mapped_task_instances(DAG_ID, run.run_id, TASK_ID)
    assert len(tis) == run.size
    wrong = [
        (ti["map_index"], ti["state"], ti["try_number"])
        for ti in tis
        if (ti["state"], ti["try_number"]) != ("success", 1)
    ]
    assert not wrong, f"tasks not succeeded at their first try: {wrong[:20]}"

    records = executions(deployment, run)
    by_index = collections.defaultdict(list)
    for e in records:
        by_index[e["inputs"]["n"]].append(e)
    assert sorted(by_index) == list(range(run.size)), "an input without its execution"
    repeated = {n: [e["id"] for e in found] for n, found in by_index.items() if len(found) != 1}
    assert not repeated, f"inputs started more than once: {repeated}"
    assert {e["state_ui"] for e in records} == {"Completed"}

    sent = requests_by_sender(deployment, since=run.started_at)  # runs of the suite do not overlap
    starts = [r for name in WORKERS for r in sent[name] if is_start(r)]
    assert len(starts) == run.size, f"Blink saw {len(starts)} starts for {run.size} tasks"
    cancels = [(name, r.path) for name, rs in sent.items() for r in rs if is_cancel(r)]
    assert not cancels, f"cancel requests: {cancels[:10]}"

    xcom = dict(
        deployment.postgres.query(
            "SELECT map_index, value FROM xcom WHERE dag_id = %s AND run_id = %s AND task_id = %s "
            "AND key = 'execution_id'",
            DAG_ID,
            run.run_id,
            TASK_ID,
        )
    )
    mismatched = [n for n, [e] in by_index.items() if xcom.get(n) != e["id"]]
    assert not mismatched, (
        f"XCom execution_id differs from Blink's execution for map indexes {mismatched[:20]}"
    )
    first, last = 0, run.size - 1
    for map_index in (first, last):
        result = api.xcom(DAG_ID, run.run_id, TASK_ID, "return_value", map_index)
        assert result["output"] == {"ok": True, "playbook": "scale-wait"}
        [record] = by_index[map_index]
        assert {f: result.get(f) for f in GET_ONLY_FIELDS} == {f: record.get(f) for f in GET_ONLY_FIELDS}, (
            "the task's result has the fields a batched read's list item lacks"
        )
        log = api.task_log(DAG_ID, run.run_id, TASK_ID, 1, map_index)
        assert f"Blink execution {xcom[map_index]} finished: Completed" in log, log[-3000:]


def executions_held_by(deployment: DistributedDeployment, run: FanOut, triggerer: str) -> set[str]:
    """Ids of the Blink executions whose tasks' triggers ``triggerer`` runs now."""
    rows = deployment.postgres.query(
        "SELECT x.value FROM task_instance ti JOIN trigger t ON ti.trigger_id = t.id "
        "JOIN xcom x ON x.dag_id = ti.dag_id AND x.run_id = ti.run_id AND x.task_id = ti.task_id "
        "AND x.map_index = ti.map_index AND x.key = 'execution_id' "
        "WHERE ti.dag_id = %s AND ti.run_id = %s AND ti.task_id = %s AND t.triggerer_id = %s",
        DAG_ID,
        run.run_id,
        TASK_ID,
        deployment.triggerer_job(triggerer),
    )
    return {value for (value,) in rows}


def test_deferred_tasks_on_two_triggerers_one_killed_mid_wait(
    deployment: DistributedDeployment, fan_out_size: int
) -> None:
    cpu_at_start = deployment.cpu_seconds()
    run = start_fan_out(deployment, fan_out_size, f"fan_out_{fan_out_size}")
    split = wait_all_deferred(deployment, run, timeout=1500)
    all_deferred_after = time.monotonic() - run.started_at
    cpu_to_defer = deployment.cpu_seconds() - cpu_at_start

    # Both triggerers poll: measure a few intervals of requests about these executions.
    window_start = time.monotonic()
    time.sleep(WINDOW_INTERVALS * deployment.settings.poll_interval)  # a measuring window, not a wait
    polls = polls_per_execution(deployment, run, window_start, time.monotonic())
    peaks = {name: deployment.peak_rss(name) for name in TRIGGERERS}
    record(
        f"{run.size} deferred tasks on two triggerers",
        {
            "triggers per triggerer (all deferred)": split,
            "first start -> all deferred (s)": round(all_deferred_after, 1),
            "CPU per task, start to deferred (s, whole deployment)": round(cpu_to_defer / run.size, 2),
            f"requests in {WINDOW_INTERVALS} poll intervals": {n: polls[n] for n in TRIGGERERS},
            "requests per execution per interval": polls["per execution per interval"],
            "peak RSS per triggerer process (MB)": {
                name: [round(b / 2**20) for b in found.values()] for name, found in peaks.items()
            },
        },
    )
    for name in TRIGGERERS:
        assert split.get(name), f"{name} ran none of the {run.size} triggers: {split}"
        assert polls[name]["executions polled"] == split[name], (
            f"{name} did not poll each of its executions: {polls}"
        )

    # One triggerer dies: the survivor takes every trigger, then polls each moved execution.
    victim = max(TRIGGERERS, key=lambda name: split.get(name, 0))
    [survivor] = [name for name in TRIGGERERS if name != victim]
    moved = executions_held_by(deployment, run, victim)
    assert len(moved) == split[victim]
    killed_at = time.monotonic()
    deployment.kill(victim)
    try:
        wait_until(
            f"{survivor} to hold all {run.size} triggers",
            lambda: deferred_per_triggerer(deployment, run).get(survivor) == run.size,
            timeout=300,
            interval=1,
            diagnose=lambda: str(deferred_per_triggerer(deployment, run)),
        )
        handed_over = time.monotonic() - killed_at

        def first_polls() -> dict[str, float] | None:
            seen: dict[str, float] = {}
            for request in requests_by_sender(deployment, since=killed_at)[survivor]:
                for execution_id in request.executions_read() & moved:
                    seen.setdefault(execution_id, request.at)
            return seen if len(seen) == len(moved) else None

        polled = wait_until(f"{survivor} to poll the {len(moved)} moved executions", first_polls, timeout=300)
        recovered = max(polled.values()) - killed_at
        record(
            f"{run.size} deferred tasks on two triggerers",
            {
                f"triggers moved from the SIGKILLed {victim} to {survivor}": len(moved),
                "kill -> all triggers on the survivor (s)": round(handed_over, 1),
                "kill -> every moved execution polled again (s)": round(recovered, 1),
                "[triggerer] triggerer_health_check_threshold (s)": deployment.settings.triggerer_dead_after,
                f"peak RSS of {survivor} after the takeover (MB)": [
                    round(b / 2**20) for b in deployment.peak_rss(survivor).values()
                ],
            },
        )

        finish_all(deployment, run)
        finished_at, cpu_at_finish = time.monotonic(), deployment.cpu_seconds()
        final = deployment.api.wait_for_run(DAG_ID, run.run_id, timeout=1500, interval=2)
        record(
            f"{run.size} deferred tasks on two triggerers",
            {
                "all executions finished -> run done (s)": round(time.monotonic() - finished_at, 1),
                "CPU per task, resume to success (s, whole deployment)": round(
                    (deployment.cpu_seconds() - cpu_at_finish) / run.size, 2
                ),
            },
        )
    finally:
        deployment.revive(victim)

    assert final == "success", deployment.api.describe_run(DAG_ID, run.run_id, logs=False)
    assert_each_task_succeeded_once_on_its_own_execution(deployment, run)
