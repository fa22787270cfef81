"""The scale-out deployment: CeleryExecutor workers over Redis and two triggerers, all on loopback.

:class:`DistributedDeployment` is a :class:`~e2e.harness.deployment.Deployment` whose scheduler
queues tasks through Redis to two ``airflow celery worker`` processes, with two ``airflow triggerer``
processes sharing the deferred tasks. Every process that talks to Blink reaches the one emulator
through its own :class:`~e2e.harness.relay.RecordingRelay` (its own ``blink_default`` connection), so
each request Blink receives is attributed to its sender. The emulator runs in the test process, so
tests end executions when they choose (``finish``) instead of racing a scripted duration.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from e2e.harness.blink import BlinkEmulatorProcess, InProcessEmulator
from e2e.harness.deployment import Deployment
from e2e.harness.processes import Component, ComponentFailed
from e2e.harness.redis import Redis
from e2e.harness.relay import RecordingRelay
from e2e.harness.waiting import wait_until

TRIGGERERS = ("triggerer-1", "triggerer-2")
WORKERS = ("worker-1", "worker-2")
#: ``[core] hostname_callable`` of the numbered components: each reports its component name as its
#: host name, so Airflow's own records (a triggerer's job, a task instance's ``hostname``) say which
#: triggerer or worker it was, though all run on one machine.
HOSTNAME_MODULE = """import os


def component_name() -> str:
    return os.environ["BLINK_SCALE_COMPONENT"]
"""

#: What a Celery worker logs as it takes a workload, then the workload's fields (pydantic's ``str``).
WORKLOAD_LOGGED = "Executing workload in Celery: "
#: One field of the task instance in that repr: ``task_id='t'``, ``map_index=-1`` ...
WORKLOAD_FIELD = re.compile(r"\b(dag_id|run_id|task_id|map_index|try_number)=('[^']*'|-?\d+)")


@dataclass(frozen=True)
class ScaleSettings:
    """The knobs of the distributed deployment that the README's "Running at scale" names.

    :param worker_concurrency: task slots per Celery worker (``[celery] worker_concurrency``).
    :param triggerer_capacity: triggers per triggerer (``[triggerer] capacity``).
    :param triggerer_dead_after: ``[triggerer] triggerer_health_check_threshold`` in seconds: a
        triggerer silent this long is dead and its triggers go to another.
    :param task_dead_after: ``[scheduler] task_instance_heartbeat_timeout`` in seconds: a task whose
        worker has been silent this long is failed (and retried).
    :param poll_interval: the fan-out operator's ``poll_interval`` (seconds between a trigger's polls).
    :param unmapped_tasks: tasks of each unmapped fan-out DAG (``BLINK_SCALE_UNMAPPED``): their number
        is fixed when the DAG file is parsed, so every component reads it from the environment.
    """

    worker_concurrency: int = 8
    triggerer_capacity: int = 1000
    triggerer_dead_after: float = 15.0
    task_dead_after: int = 30
    poll_interval: float = 5.0
    unmapped_tasks: int = 50


@dataclass(frozen=True)
class WorkerRun:
    """One task workload a Celery worker took, as the worker logged it."""

    worker: str
    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    try_number: int


class DistributedDeployment(Deployment):
    """PostgreSQL, Redis, the emulator, api-server, scheduler (CeleryExecutor), dag-processor, two
    triggerers and two Celery workers, each its own process."""

    component_names = ("api-server", "scheduler", "dag-processor", *TRIGGERERS, *WORKERS)
    stop_order = ("scheduler", *TRIGGERERS, *WORKERS, "dag-processor", "api-server")
    bring_up_timeout = 420.0  # seven Airflow processes starting at once

    def __init__(
        self,
        *,
        playbooks: Iterable[Mapping[str, Any]],
        dag_files: Iterable[Path] = (),
        settings: ScaleSettings = ScaleSettings(),
    ) -> None:
        super().__init__(playbooks=playbooks, dag_files=dag_files)
        self.settings = settings
        self.redis = Redis(self.base, self.logs / "redis.log")
        #: one relay per process that talks to Blink, by component name
        self.relays: dict[str, RecordingRelay] = {}

    def build_emulator(
        self, playbooks: Iterable[Mapping[str, Any]]
    ) -> BlinkEmulatorProcess | InProcessEmulator:
        return InProcessEmulator(api_key=self.api_key, workspace_id=self.workspace_id, playbooks=playbooks)

    @property
    def blink(self) -> InProcessEmulator:
        assert isinstance(self.emulator, InProcessEmulator)
        return self.emulator

    def airflow_env(self) -> dict[str, str]:
        env = super().airflow_env()
        settings = self.settings
        env.update(
            {
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__CELERY__BROKER_URL": self.redis.url,
                "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + self.postgres.sqlalchemy_url,
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(settings.worker_concurrency),
                # Enough room for every mapped task of a big run (Airflow's defaults: 32 and 16).
                "AIRFLOW__CORE__PARALLELISM": str(2 * settings.worker_concurrency),
                "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "2000",
                "AIRFLOW__CORE__DEFAULT_POOL_TASK_SLOT_COUNT": "2000",
                "AIRFLOW__TRIGGERER__CAPACITY": str(settings.triggerer_capacity),
                "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": str(settings.triggerer_dead_after),
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(settings.task_dead_after),
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
                # Hundreds of task starts at once queue up at the execution API on 2 cores; Airflow's
                # advice "under high load": a longer timeout than 5 s (its retries then suffice).
                "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "30",
                # One api-server worker per core (Airflow's advice; its default is 1): every task
                # start and finish goes through the execution API.
                "AIRFLOW__API__WORKERS": "2",
                "BLINK_SCALE_POLL_INTERVAL": str(settings.poll_interval),
                "BLINK_SCALE_UNMAPPED": str(settings.unmapped_tasks),
            }
        )
        return env

    def build_component(self, name: str, env: dict[str, str]) -> Component:
        """``airflow triggerer`` / ``airflow celery worker`` for the numbered components, each with a
        ``blink_default`` connection through its own relay; the rest as in the single deployment."""
        if name not in (*TRIGGERERS, *WORKERS):
            return super().build_component(name, env)
        relay = self.relays[name] = RecordingRelay(name, self.blink.emulator.port).start()
        modules = self.base / "pythonpath"
        modules.mkdir(exist_ok=True)
        (modules / "blink_scale_hostname.py").write_text(HOSTNAME_MODULE)
        own_env = {
            **env,
            "AIRFLOW_CONN_BLINK_DEFAULT": json.dumps(self.blink.connection(relay.url)),
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "blink_scale_hostname.component_name",
            "BLINK_SCALE_COMPONENT": name,
            "PYTHONPATH": str(modules),
        }
        if name in TRIGGERERS:
            argv = [self.python, "-m", "airflow", "triggerer", "--skip-serve-logs"]
        else:
            argv = [self.python, "-m", "airflow", "celery", "worker", "--skip-serve-logs"]
            argv += ["--celery-hostname", f"{name}@%h", "--without-mingle", "--without-gossip"]
        return Component(name, argv, own_env, self.logs / f"{name}.log")

    def start(self) -> None:
        began = time.monotonic()
        self.redis.start()
        self.timings["redis"] = time.monotonic() - began
        super().start()
        mark = time.monotonic()
        for name in TRIGGERERS:
            self.triggerer_job(name, timeout=120)
        for name in WORKERS:
            self.wait_worker_ready(name, timeout=120)
        self.timings["triggerers and workers ready"] = time.monotonic() - mark

    def _check_components(self) -> None:
        super()._check_components()
        self.redis.component.check_alive()

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            self.redis.stop()
            for relay in self.relays.values():
                relay.stop()

    def revive(self, name: str) -> None:
        """Start a component a test killed again (a fresh process, and for a triggerer a fresh job)."""
        component = self.killed.pop(name)
        log_size = component.log_path.stat().st_size
        component.start()
        self.components[name] = component
        if name in TRIGGERERS:
            self.triggerer_job(name, timeout=120)
        elif name in WORKERS:
            self.wait_worker_ready(name, timeout=120, after=log_size)

    # -- what the tests read ---------------------------------------------------------------------

    def triggerer_job(self, name: str, *, timeout: float = 60) -> int:
        """The id of triggerer ``name``'s newest job (its host name is ``name``), once it heartbeats."""
        component = self.components.get(name) or self.killed[name]

        def found() -> int | None:
            self._check_components()
            rows = self.postgres.query(
                "SELECT id FROM job WHERE job_type = 'TriggererJob' AND hostname = %s "
                "AND latest_heartbeat IS NOT NULL AND start_date >= %s ORDER BY id DESC LIMIT 1",
                name,
                component.started_at,
            )
            return int(rows[0][0]) if rows else None

        return wait_until(f"{name}'s triggerer job", found, timeout=timeout, diagnose=component.tail)

    def wait_worker_ready(self, name: str, *, timeout: float, after: int = 0) -> None:
        """Wait until Celery worker ``name`` logs that it consumes tasks.

        :param after: read its log from this offset on (a restarted worker appends to the old log).
        """
        component = self.components[name]

        def ready() -> bool:
            component.check_alive()
            with component.log_path.open("rb") as log:
                log.seek(after)
                text = log.read().decode(errors="replace")
            return f"{name}@" in text and " ready." in text

        try:
            wait_until(f"Celery {name} to be ready", ready, timeout=timeout, diagnose=component.tail)
        except TimeoutError as exc:
            raise ComponentFailed(str(exc)) from None

    def triggers_per_triggerer(self) -> dict[str, int]:
        """How many triggers each triggerer holds now, by component name (``unassigned`` for none)."""
        names = {}
        for name in TRIGGERERS:
            if name in self.components or name in self.killed:
                names[self.triggerer_job(name)] = name
        rows = self.postgres.query("SELECT triggerer_id, count(*) FROM trigger GROUP BY triggerer_id")
        return {names.get(job, "unassigned" if job is None else f"job {job}"): int(n) for job, n in rows}

    def component_of(self, pid: int) -> str | None:
        """The component whose process ``pid`` is, or descends from (a task under a worker)."""
        try:
            lineage = [pid, *(p.pid for p in psutil.Process(pid).parents())]
        except psutil.Error:
            return None
        for name, component in self.components.items():
            if component.proc is not None and component.proc.pid in lineage:
                return name
        return None

    def cpu_seconds(self, *names: str) -> float:
        """CPU time used so far by the deployment's processes with their children (exited task
        processes included once reaped): every component, PostgreSQL and Redis, plus this test process
        (the emulator and relays run on its threads); or only the live components ``names``.
        Differences of two readings price a scenario."""
        if names:
            roots = [self.components[name].proc for name in names]
            total = 0.0
        else:
            every = (*self.components.values(), self.postgres.component, self.redis.component)
            roots = [c.proc for c in every]
            total = sum(os.times()[:4])
        for proc in roots:
            if proc is None:
                continue
            try:
                root = psutil.Process(proc.pid)
                processes = [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
            for each in processes:
                try:
                    times = each.cpu_times()
                except psutil.Error:
                    continue
                total += times.user + times.system + times.children_user + times.children_system
        return total

    def worker_runs(self, dag_id: str, run_id: str) -> list[WorkerRun]:
        """The task workloads the Celery workers took for one DAG run, from the workers' own logs.

        The Celery provider's ``execute_workload`` logs ``Executing workload in Celery: ...`` with the
        task instance's fields (``ti=TaskInstanceDTO(...)``) as it takes each one; a revived worker
        appends to its log.
        """
        found = []
        for name in WORKERS:
            path = self.logs / f"{name}.log"
            if not path.exists():
                continue
            for line in path.read_text(errors="replace").splitlines():
                if WORKLOAD_LOGGED not in line:
                    continue
                fields: dict[str, str] = {}
                for key, value in WORKLOAD_FIELD.findall(line.partition(WORKLOAD_LOGGED)[2]):
                    fields.setdefault(key, value)  # the task instance's own, before its log path's
                if (fields.get("dag_id"), fields.get("run_id")) == (repr(dag_id), repr(run_id)):
                    found.append(
                        WorkerRun(
                            worker=name,
                            dag_id=dag_id,
                            run_id=run_id,
                            task_id=fields["task_id"].strip("'"),
                            map_index=int(fields["map_index"]),
                            try_number=int(fields["try_number"]),
                        )
                    )
        return found

    def peak_rss(self, name: str) -> dict[int, int]:
        """Peak resident memory (``VmHWM``, bytes) of each live process of component ``name``, by pid."""
        component = self.components[name]
        peaks: dict[int, int] = {}
        try:
            root = psutil.Process(component.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return peaks
        for proc in procs:
            try:
                status = Path(f"/proc/{proc.pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    peaks[proc.pid] = int(line.split()[1]) * 1024
        return peaks
