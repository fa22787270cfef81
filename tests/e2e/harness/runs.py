"""Following DAG runs through the REST API, and what the tests learn from watching them."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from e2e.harness.airflow_api import AirflowApi
from e2e.harness.blink import BlinkApi
from e2e.harness.deployment import Deployment
from e2e.harness.waiting import utcnow, wait_until

TRIGGER_CLASSPATH = "airflow_provider_blink.triggers.blink.BlinkExecutionTrigger"
#: How long one DAG run may take before a test gives up (task start-up is slow on 2 cores).
RUN_TIMEOUT = 180.0
#: The tasks of each example DAG that wait in the triggerer, and the task whose XCom names the execution.
EXAMPLE_DEFERRABLE = {
    "example_blink_enrich_pipeline": {"enrich_ioc": "enrich_ioc"},
    "example_blink_fire_and_forget": {"wait_for_isolation": "start_isolation"},
    "example_blink_mapped": {"isolate_host": "isolate_host"},
}

#: The DAG whose run waits for multi-step playbooks with ``log_progress`` (tests/e2e/dags), and the
#: playbook each of its tasks runs.
STEPS_DAG = "blink_e2e_steps"
STEPS_TASKS = {"triage": "triage-alert", "fail_at_step_2": "failing-step"}
#: The steps table's header (:func:`airflow_provider_blink.executions.steps_table`), split into cells.
STEPS_HEADER = ["step", "state", "started (UTC)", "duration", "error"]

TiKey = tuple[str, int]


@dataclasses.dataclass
class Deferral:
    """One reading taken while a task instance was ``deferred`` (it was deferred before and after)."""

    execution_id: str
    blink_state: str
    worker_pids: list[int]
    trigger: dict[str, Any]
    triggerer_job: dict[str, Any]

    @property
    def proves_no_worker_waited(self) -> bool:
        """Blink was still running the playbook, and no process was running the task."""
        return self.blink_state == "In Progress" and not self.worker_pids


@dataclasses.dataclass
class RunObservation:
    dag_id: str
    run_id: str
    state: str
    states: dict[TiKey, list[str]]
    #: per deferrable task instance: the reading that proves it waited without a worker, else the last one
    deferrals: dict[TiKey, Deferral]
    task_instances: list[dict[str, Any]]
    api: AirflowApi = dataclasses.field(repr=False)

    def xcom(self, task_id: str, key: str, map_index: int = -1) -> Any:
        """What a task of this run pushed under ``key``, read through the REST API."""
        return self.api.xcom(self.dag_id, self.run_id, task_id, key, map_index)


def watch_run(
    deployment: Deployment,
    dag_id: str,
    run_id: str,
    execution_source: dict[str, str],
    *,
    timeout: float = RUN_TIMEOUT,
) -> RunObservation:
    """Follow a DAG run to its end, recording every task state seen (polling every 0.1 s).

    While a task named in ``execution_source`` is ``deferred`` and assigned to a triggerer, read the
    Blink execution it waits for (its id from the XCom ``execution_id`` of ``execution_source[task_id]``,
    same map index when that is the task itself) and look for processes running the task (the worker
    that deferred it takes a moment to exit). A reading counts only if the task instance is still
    ``deferred`` afterwards; readings stop once one shows the execution running and no such process.
    """
    api, blink = deployment.api, deployment.emulator.api
    assert blink is not None
    states: dict[TiKey, list[str]] = {}
    deferrals: dict[TiKey, Deferral] = {}

    def probe(ti: dict[str, Any]) -> Deferral | None:
        source = execution_source[ti["task_id"]]
        map_index = ti["map_index"] if source == ti["task_id"] else -1
        execution_id = api.xcom(dag_id, run_id, source, "execution_id", map_index)
        execution = blink.execution(execution_id)
        pids = [p.pid for p in deployment.worker_processes(ti)]
        after = api.task_instance(dag_id, run_id, ti["task_id"], ti["map_index"])
        if after["state"] != "deferred" or not after.get("triggerer_job"):
            return None  # not a clean reading, or no triggerer has it yet
        return Deferral(execution_id, execution["state_ui"], pids, after["trigger"], after["triggerer_job"])

    def step() -> str | None:
        for ti in api.task_instances(dag_id, run_id):
            key = (ti["task_id"], ti["map_index"])
            seen = states.setdefault(key, [])
            if not seen or seen[-1] != ti["state"]:
                seen.append(ti["state"])
            done = key in deferrals and deferrals[key].proves_no_worker_waited
            if ti["state"] == "deferred" and ti["task_id"] in execution_source and not done:
                reading = probe(ti)
                if reading is not None:
                    deferrals[key] = reading
        state = api.dag_run(dag_id, run_id)["state"]
        return state if state in ("success", "failed") else None

    final = wait_until(
        f"DAG run {dag_id}/{run_id} to finish",
        step,
        timeout=timeout,
        interval=0.1,
        diagnose=lambda: api.describe_run(dag_id, run_id),
    )
    return RunObservation(dag_id, run_id, final, states, deferrals, api.task_instances(dag_id, run_id), api)


def wait_deferred(deployment: Deployment, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
    """Wait until ``task_id`` is deferred and a triggerer runs its trigger; return the task instance."""
    api = deployment.api

    def deferred() -> dict[str, Any] | None:
        ti = api.task_instance(dag_id, run_id, task_id)
        if ti["state"] in ("failed", "success", "upstream_failed", "up_for_retry"):
            raise AssertionError(
                f"{task_id} ended {ti['state']} before deferring\n{api.describe_run(dag_id, run_id)}"
            )
        return ti if ti["state"] == "deferred" and ti.get("triggerer_job") else None

    return wait_until(
        f"{dag_id}.{task_id} to be deferred and picked up by a triggerer",
        deferred,
        timeout=RUN_TIMEOUT,
        interval=0.2,
        diagnose=lambda: api.describe_run(dag_id, run_id),
    )


@dataclasses.dataclass
class WaitingRun:
    """A DAG run whose task waits in a triggerer for the one Blink execution the run started."""

    run_id: str
    #: the id of the triggerer job running the task's trigger
    triggerer: int
    #: the execution as Blink's single GET read it once the trigger had started
    execution: dict[str, Any]


def start_waiting_run(
    deployment: Deployment, blink: BlinkApi, dag_id: str, task_id: str, playbook_id: str, name: str
) -> WaitingRun:
    """Trigger ``dag_id`` to run ``playbook_id``; wait until ``task_id``'s trigger starts in a triggerer.

    :param name: names the run (``e2e__<name>__<time>``).
    """
    api = deployment.api
    run_id = api.trigger(
        dag_id, run_id=f"e2e__{name}__{utcnow():%H%M%S%f}", conf={"playbook_id": playbook_id}
    )
    triggerer = wait_deferred(deployment, dag_id, run_id, task_id)["triggerer_job"]["id"]
    wait_until(
        f"the trigger to start in triggerer job {triggerer}",
        lambda: deployment.trigger_started(dag_id, run_id, task_id, triggerer),
        timeout=60,
    )
    [execution] = blink.executions_for_run(playbook_id, run_id)
    return WaitingRun(run_id, triggerer, execution)


def wait_cancelled_by_user(
    deployment: Deployment, dag_id: str, run_id: str, task_id: str, *, timeout: float
) -> None:
    """Wait until the triggerer cancels ``task_id``'s trigger as a user action (a task marked failed)."""
    wait_until(
        f"the triggerer to cancel the trigger of {task_id} as a user action",
        lambda: any(
            "Trigger cancelled by user action" in str(r.get("event"))
            for records in deployment.trigger_logs(dag_id, run_id, task_id).values()
            for r in records
        ),
        timeout=timeout,
        interval=0.5,
        diagnose=lambda: deployment.components["triggerer"].tail(30),
    )


@dataclasses.dataclass(frozen=True)
class WorkerTrace:
    """What Airflow recorded of a worker running one task try: a try the triggerer ended has none of it."""

    #: the worker's own log file of the try (``attempt=N.log``) exists
    log_file: bool
    #: when the scheduler queued the try for an executor (the REST API's ``queued_when``)
    queued_when: str | None
    #: the host and process that ran it, as the worker reported them
    hostname: str | None
    pid: int | None

    @property
    def none(self) -> bool:
        return not (self.log_file or self.queued_when or self.hostname or self.pid)

    @property
    def complete(self) -> bool:
        return bool(self.log_file and self.queued_when and self.hostname and self.pid)


def worker_trace(deployment: Deployment, ti: dict[str, Any]) -> WorkerTrace:
    """The :class:`WorkerTrace` of task instance ``ti`` (as the REST API returned it), for its try."""
    path = deployment.task_log_path(
        ti["dag_id"], ti["dag_run_id"], ti["task_id"], ti["try_number"], ti["map_index"]
    )
    return WorkerTrace(path.exists(), ti.get("queued_when"), ti.get("hostname"), ti.get("pid"))


def fired_events(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The triggerer's "Trigger fired event" lines among log records."""
    return [r for r in records if r.get("event") == "Trigger fired event"]


def untimed(record: dict[str, Any]) -> dict[str, Any]:
    """A log record without its timestamp: Airflow 3.0 serves it with a ``Z`` its log file lacks."""
    return {key: value for key, value in record.items() if key != "timestamp"}


def started(records: list[dict[str, Any]]) -> bool:
    """Whether a trigger log shows the trigger starting."""
    return any(str(r.get("event", "")).endswith(" starting") for r in records)


def log_lines(records: list[dict[str, Any]]) -> list[str]:
    """The lines of a log's messages: Airflow 3 logs a multi-line message as one record, 2.11 a record per line."""
    return [line for record in records for line in str(record.get("event", "")).split("\n")]


def logged_steps(records: list[dict[str, Any]], execution_id: str) -> list[list[str]]:
    """The rows of the one steps table a task log shows for ``execution_id``, each split into its cells.

    :raises AssertionError: the log has no such table, more than one, or one without its header.
    """
    lines = log_lines(records)
    heading = re.compile(rf"Steps of Blink execution {re.escape(execution_id)} \((\d+)\):")
    found = [(i, int(match[1])) for i, line in enumerate(lines) if (match := heading.fullmatch(line))]
    assert len(found) == 1, f"{len(found)} steps tables of {execution_id} in the log:\n" + "\n".join(lines)
    [(at, count)] = found
    header, *rows = (re.split(r" {2,}", line.strip()) for line in lines[at + 1 : at + 2 + count])
    assert header == STEPS_HEADER, lines[at : at + 2 + count]
    return rows


def step_progress(records: list[dict[str, Any]], execution_id: str) -> list[str]:
    """What ``log_progress`` logged of ``execution_id``'s steps, each line without the execution
    (``step_1 started (running)``, ``step_1 ended: completed after 2.0s``)."""
    prefix = f"Blink execution {execution_id}: step "
    return [
        event.removeprefix(prefix) for r in records if (event := str(r.get("event", ""))).startswith(prefix)
    ]
