"""Tasks started from the triggerer (``start_from_trigger=True``, Airflow 3.3) on two triggerers and two
Celery workers.

The same unmapped fan-out runs twice, started from the triggerer and deferrable only, and the suite
counts what each costs from the components' own records: the workloads each Celery worker logs
taking, the CPU time of the workers and of the triggerers, and the wall time in Airflow's database.
The playbooks end when the test finishes them, once every task waits in a triggerer: a deferrable
task's status check before deferring never finds its run over (on a busy machine a 10 s playbook
could be, and that task would take one worker run, not two).
Then a triggerer dies after Blink started a task's run but before Blink answered: the other
triggerer finds that run in Blink and follows it, and nothing runs on a worker.
"""

from __future__ import annotations

import collections
import time
from typing import Any

import pytest
from e2e.harness.blink import BlinkApi
from e2e.harness.distributed import TRIGGERERS, WORKERS, DistributedDeployment
from e2e.harness.fan_out import (
    FanOut,
    executions,
    finish_all,
    is_cancel,
    is_start,
    requests_by_sender,
    start_unmapped,
    task_outcomes,
    triggerers_that_ran,
    wall_seconds,
    xcom_values,
)
from e2e.harness.figures import record
from e2e.harness.waiting import utcnow, wait_until

from airflow_provider_blink.testing import Fault

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(2400)]

#: The two ways of the same unmapped fan-out: the DAG of each (tests/e2e/scale/dags).
WAYS = {
    "start_from_trigger": "blink_scale_unmapped_start_from_trigger",
    "deferrable": "blink_scale_unmapped_deferrable",
}
#: How many workloads each task of a way that succeeds takes on a worker: none when the triggerer
#: starts and ends it; one to start and defer, one to resume, for a deferrable task.
WORKER_RUNS = {"start_from_trigger": 0, "deferrable": 2}
#: The figure of the workloads each task took on a worker, counted in the workers' own logs.
RUNS_FIGURE = "worker runs per task (workers' logs)"
#: Seconds of idle CPU measured before the fan-outs.
IDLE_WINDOW = 10.0
#: The fan-outs' playbook: its runs end when the test finishes them, once every task waits.
PLAYBOOK = "scale-unmapped"


def cpu_by_role(deployment: DistributedDeployment) -> dict[str, float]:
    return {
        "workers": deployment.cpu_seconds(*WORKERS),
        "triggerers": deployment.cpu_seconds(*TRIGGERERS),
        "deployment": deployment.cpu_seconds(),
    }


def per_task(counts: list[int]) -> int | dict[int, int]:
    """One number when every task took as many worker runs, else how many tasks took each count."""
    spread = collections.Counter(counts)
    return next(iter(spread)) if len(spread) == 1 else dict(sorted(spread.items()))


def wait_all_started_and_deferred(deployment: DistributedDeployment, run: FanOut) -> None:
    """Wait until Blink has each task's run and every task waits in a triggerer (``deferred``)."""

    def all_waiting() -> bool:
        states = collections.Counter(state for state, _ in task_outcomes(deployment, run).values())
        if any(states.get(s) for s in ("success", "failed", "upstream_failed", "up_for_retry")):
            raise AssertionError(f"tasks ended before their runs were finished: {dict(states)}")
        return states.get("deferred") == run.size and len(executions(deployment, run)) == run.size

    wait_until(
        f"the {run.size} tasks of {run.run_id} to start their runs and defer",
        all_waiting,
        timeout=1500,
        interval=1,
        diagnose=lambda: str(collections.Counter(s for s, _ in task_outcomes(deployment, run).values())),
    )


def run_fan_out(
    deployment: DistributedDeployment, way: str, size: int, idle: dict[str, float]
) -> dict[str, Any]:
    """Run one way's fan-out to its end, record its figures (measured, not asserted), then check it.

    :param idle: CPU-seconds per second each role spends idle, to give each CPU figure net of it too.
    """
    before, began = cpu_by_role(deployment), time.monotonic()
    run = start_unmapped(deployment, WAYS[way], size, f"unmapped_{way}_{size}")
    wait_all_started_and_deferred(deployment, run)
    all_waiting_after = time.monotonic() - run.started_at
    finish_all(deployment, run)
    final = deployment.api.wait_for_run(run.dag_id, run.run_id, timeout=1500, interval=2)
    used = {role: seconds - before[role] for role, seconds in cpu_by_role(deployment).items()}
    ended_at = time.monotonic()
    net = {role: used[role] - idle[role] * (ended_at - began) for role in used}
    assert final == "success", deployment.api.describe_run(run.dag_id, run.run_id, logs=False)

    outcomes = task_outcomes(deployment, run)
    runs = collections.Counter(r.task_id for r in deployment.worker_runs(run.dag_id, run.run_id))
    succeeded = [task_id for task_id, (state, _) in outcomes.items() if state == "success"]
    figures = {
        RUNS_FIGURE: per_task([runs[task_id] for task_id in succeeded]),
        "worker CPU-s per task": round(used["workers"] / size, 3),
        "triggerer CPU-s per task": round(used["triggerers"] / size, 3),
        "deployment CPU-s per task": round(used["deployment"] / size, 2),
        "worker CPU-s per task, net of idle": round(net["workers"] / size, 3) + 0.0,  # no "-0.0"
        "triggerer CPU-s per task, net of idle": round(net["triggerers"] / size, 3) + 0.0,
        "tasks per triggerer (trigger logs)": triggerers_that_ran(deployment, run, sorted(outcomes)),
        "trigger -> every run started in Blink, every task deferred (s)": round(all_waiting_after, 1),
        "wall, DAG run start -> last task end (s)": round(wall_seconds(deployment, run), 1),
    }
    record(f"{size} unmapped tasks, {way}", figures)

    starters = TRIGGERERS if way == "start_from_trigger" else WORKERS
    assert_each_task_succeeded_on_its_own_execution(deployment, run, starters, until=ended_at)
    off = {task_id: runs[task_id] for task_id in succeeded if runs[task_id] != WORKER_RUNS[way]}
    assert not off, f"{way}: worker runs per task other than {WORKER_RUNS[way]}: {off}"
    return figures


def assert_each_task_succeeded_on_its_own_execution(
    deployment: DistributedDeployment, run: FanOut, starters: tuple[str, ...], *, until: float
) -> None:
    """Airflow's side and Blink's: each task succeeded at its first try with its own execution,
    started once, by ``starters`` (the triggerers or the workers), never cancelled."""
    tasks = {f"wait_{n}": n for n in range(run.size)}
    outcomes = task_outcomes(deployment, run)
    assert sorted(outcomes) == sorted(tasks)
    wrong = {task_id: found for task_id, found in outcomes.items() if found != ("success", 1)}
    assert not wrong, f"tasks not succeeded at their first try: {dict(list(wrong.items())[:20])}"

    records = executions(deployment, run)
    by_index = collections.defaultdict(list)
    for e in records:
        by_index[e["inputs"]["n"]].append(e)
    assert sorted(by_index) == list(range(run.size)), "a task without its execution"
    repeated = {n: [e["id"] for e in found] for n, found in by_index.items() if len(found) != 1}
    assert not repeated, f"tasks whose playbook started more than once: {repeated}"
    assert {e["state_ui"] for e in records} == {"Completed"}

    sent = requests_by_sender(deployment, since=run.started_at, until=until)
    starts = collections.Counter(name for name, requests in sent.items() for r in requests if is_start(r))
    assert sum(starts.values()) == run.size, f"Blink saw {dict(starts)} starts for {run.size} tasks"
    assert set(starts) <= set(starters), f"started by {dict(starts)}, expected only {starters}"
    cancels = [(name, r.path) for name, rs in sent.items() for r in rs if is_cancel(r)]
    assert not cancels, f"cancel requests: {cancels[:10]}"

    xcom = xcom_values(deployment, run, "execution_id")
    mismatched = [t for t, n in tasks.items() if xcom.get(t) != by_index[n][0]["id"]]
    assert not mismatched, f"XCom execution_id differs from Blink's execution for {mismatched[:20]}"
    for task_id in ("wait_0", f"wait_{run.size - 1}"):
        result = deployment.api.xcom(run.dag_id, run.run_id, task_id, "return_value")
        assert result["execution_id"] == xcom[task_id]
        assert result["output"] == {"ok": True, "playbook": PLAYBOOK}
    log = deployment.api.task_log(run.dag_id, run.run_id, "wait_0", 1)
    assert f"Started Blink execution {xcom['wait_0']} of playbook {PLAYBOOK}" in log, log[-3000:]


def test_unmapped_fan_out_started_from_the_triggerer_and_deferrable(
    deployment: DistributedDeployment, unmapped_size: int, capsys: pytest.CaptureFixture[str]
) -> None:
    before = cpu_by_role(deployment)
    time.sleep(IDLE_WINDOW)  # a measuring window, not a wait
    idle = {role: (seconds - before[role]) / IDLE_WINDOW for role, seconds in cpu_by_role(deployment).items()}
    record(
        f"{unmapped_size} unmapped tasks, idle before (CPU-s per s)",
        {role: round(rate, 3) for role, rate in idle.items()},
    )
    measured = {way: run_fan_out(deployment, way, unmapped_size, idle) for way in WAYS}
    runs = " ".join(f"{way}={figures[RUNS_FIGURE]}" for way, figures in measured.items())
    with capsys.disabled():
        print(f"\nworker runs per task: {runs}", flush=True)


TAKEOVER_DAG, TAKEOVER_TASK, TAKEOVER_PLAYBOOK = "blink_scale_start_takeover", "start", "takeover-wait"
#: How late Blink answers the task's start: far longer than finding the run and killing the
#: triggerer that sent it take, so that triggerer never learns the execution id.
ANSWER_DELAY = 120.0
#: Someone else's runs of the same playbook: other inputs, so never the task's run.
SOMEONE_ELSES = {"run_id": "someone else's run"}


def test_triggerer_killed_between_blinks_start_and_its_answer(
    deployment: DistributedDeployment, blink: BlinkApi
) -> None:
    api, emulator = deployment.api, deployment.blink.emulator
    earlier = blink.start(TAKEOVER_PLAYBOOK, SOMEONE_ELSES)
    emulator.inject(Fault("execute", "slow_after", delay=ANSWER_DELAY))
    since = time.monotonic()
    run_id = api.trigger(TAKEOVER_DAG, run_id=f"scale__start_takeover__{utcnow():%H%M%S%f}")
    mine = {"run_id": run_id}
    victim = ""

    def started() -> dict[str, Any] | None:
        return next((e for e in emulator.executions if e.get("inputs") == mine), None)

    try:
        execution = wait_until(
            "Blink to start the task's run",
            started,
            timeout=240,
            interval=0.2,
            diagnose=lambda: api.describe_run(TAKEOVER_DAG, run_id),
        )
        [victim] = [
            n for n, rs in requests_by_sender(deployment, since=since).items() if any(map(is_start, rs))
        ]
        assert victim in TRIGGERERS, f"{victim} started the task, not a triggerer"
        [survivor] = [name for name in TRIGGERERS if name != victim]
        meanwhile = blink.start(TAKEOVER_PLAYBOOK, SOMEONE_ELSES)  # after the task's start was sent

        killed_at = time.monotonic()
        deployment.kill(victim)  # Blink has the run; the answer with its id has not come yet

        def following() -> list[float] | None:
            reads = [
                r.at
                for r in requests_by_sender(deployment, since=killed_at)[survivor]
                if execution["id"] in r.executions_read()
            ]
            return reads if len(reads) >= 2 else None  # found, then polled

        reads = wait_until(
            f"{survivor} to follow execution {execution['id']}",
            following,
            timeout=300,
            interval=0.5,
            diagnose=lambda: api.describe_run(TAKEOVER_DAG, run_id, logs=False),
        )
        emulator.finish(execution["id"])
        final = api.wait_for_run(TAKEOVER_DAG, run_id, timeout=240)
    finally:
        emulator.clear_faults()
        if victim in deployment.killed:
            deployment.revive(victim)
    record(
        "triggerer SIGKILLed between Blink starting a task's run and its answer",
        {
            f"kill -> the run read again, by {survivor} (s)": round(reads[0] - killed_at, 1),
            "[triggerer] triggerer_health_check_threshold (s)": deployment.settings.triggerer_dead_after,
        },
    )

    assert final == "success", api.describe_run(TAKEOVER_DAG, run_id)
    ti = api.task_instance(TAKEOVER_DAG, run_id, TAKEOVER_TASK)
    assert (ti["state"], ti["try_number"]) == ("success", 1)
    sent = requests_by_sender(deployment, since=since)
    starts = [(name, r.path) for name, rs in sent.items() for r in rs if is_start(r)]
    assert [name for name, _ in starts] == [victim], f"one start, by {victim}: {starts}"
    after_kill = [r for r in sent[survivor] if r.at >= killed_at]
    assert not [r for r in after_kill if r.method == "POST"], f"{survivor} posted: {after_kill}"
    searches = [r for r in after_kill if r.method == "GET" and r.path.endswith("/executions")]
    assert [r for r in searches if not r.executions_read()], f"{survivor} never looked in Blink: {after_kill}"
    assert [e["id"] for e in emulator.executions if e.get("inputs") == mine] == [execution["id"]]

    assert api.xcom(TAKEOVER_DAG, run_id, TAKEOVER_TASK, "execution_id") == execution["id"]
    assert execution["id"] in api.xcom(TAKEOVER_DAG, run_id, TAKEOVER_TASK, "execution_url")
    result = api.xcom(TAKEOVER_DAG, run_id, TAKEOVER_TASK, "return_value")
    assert result["execution_id"] == execution["id"]
    assert result["output"] == {"ok": True, "playbook": TAKEOVER_PLAYBOOK}
    for other in (earlier, meanwhile):
        assert emulator.execution(other)["state_ui"] == "In Progress", (
            f"someone else's run {other} was touched"
        )
        emulator.finish(other)
    assert deployment.worker_runs(TAKEOVER_DAG, run_id) == [], "a worker ran the task"
    logs = deployment.trigger_logs(TAKEOVER_DAG, run_id, TAKEOVER_TASK)
    said = {job: [str(r.get("event")) for r in records] for job, records in logs.items()}
    survivor_said = said.get(deployment.triggerer_job(survivor), [])
    follows = f"Following Blink execution {execution['id']}, which this try's start in flight created"
    assert follows in survivor_said, said
    assert not [line for lines in said.values() for line in lines if "Started Blink execution" in line], said
