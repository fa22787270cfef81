"""
Run a task's tries the way Airflow's scheduler and workers do, and kill a worker mid-try.

Each try runs in processes of its own, as a worker runs it: on Airflow 2 ``airflow tasks run --local``
(a ``LocalTaskJob`` that forks the task's process), on Airflow 3 the Task SDK's ``supervise()`` (which
forks the task's process and speaks to the execution API; here the API runs inside the worker, on
the same metadata database). :meth:`Worker.kill` SIGKILLs the worker's processes, the task's and its
supervisor's, as a lost host or the OOM killer would. What the scheduler then does is Airflow's own
code too: a running task instance whose worker stopped heartbeating is failed with
``TaskInstance.handle_failure`` (retried while it has tries left), and ``DagRun.schedule_tis``
schedules the next try.

Run as ``python -m support.crashes WORKLOAD_JSON`` it is an Airflow 3 worker running one workload.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import psutil

from support.dag_runs import dagbag, register

TESTS = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def airflow_3() -> bool:
    from airflow_provider_blink.compat import AIRFLOW_V_3_0_PLUS

    return bool(AIRFLOW_V_3_0_PLUS)


class Deployment:
    """
    One DAG file, one DAG run and the scheduler's part of running its tasks, in this process.

    :param dag_file: the DAG file workers parse.
    :param dag_id: the DAG in it.
    :param logs: a folder for the workers' logs.
    :param started: when the DAG run started (default: now).
    """

    def __init__(self, dag_file: Path, dag_id: str, logs: Path, started: datetime | None = None) -> None:
        self.dag_file = dag_file
        self.dag = dagbag(dag_file).get_dag(dag_id)
        assert self.dag is not None, f"{dag_id} not found in {dag_file}"
        self.logs = logs
        self.run_id = f"crash__{datetime.now(timezone.utc):%Y%m%dT%H%M%S%f}"
        self._scheduler_dag = self._sync_to_db()
        self._create_dag_run(started or datetime.now(timezone.utc))

    def _sync_to_db(self) -> Any:
        if not airflow_3():
            self.dag.sync_to_db()
            return self.dag
        register(self.dag)
        from airflow.serialization import serialized_objects

        serialization: Any = getattr(serialized_objects, "DagSerialization", None)  # Airflow 3.3
        serialization = serialization or serialized_objects.SerializedDAG
        return serialization.deserialize_dag(serialization.serialize_dag(self.dag))  # the scheduler's DAG

    def _create_dag_run(self, started: datetime) -> None:
        from airflow.utils.session import create_session
        from airflow.utils.state import DagRunState
        from airflow.utils.types import DagRunType

        common: dict[str, Any] = {
            "run_id": self.run_id,
            "data_interval": (started, started),
            "run_type": DagRunType.MANUAL,
            "state": DagRunState.RUNNING,
            "start_date": started,
        }
        with create_session() as session:
            if airflow_3():
                from airflow.utils.types import DagRunTriggeredByType

                self._scheduler_dag.create_dagrun(
                    logical_date=started,
                    run_after=started,
                    conf=None,
                    triggered_by=DagRunTriggeredByType.TEST,
                    session=session,
                    **common,
                )
            else:
                self.dag.create_dagrun(execution_date=started, session=session, **common)

    def dag_run(self, session: Any) -> Any:
        """The DAG run, read now, with its DAG attached as the scheduler attaches it."""
        from airflow.models.dagrun import DagRun
        from sqlalchemy import select

        run = session.scalar(
            select(DagRun).where(DagRun.dag_id == self.dag.dag_id, DagRun.run_id == self.run_id)
        )
        run.dag = self._scheduler_dag
        return run

    def task_instance(self, task_id: str, session: Any) -> Any:
        """The task instance of ``task_id``, read now, with its task attached."""
        ti = self.dag_run(session).get_task_instance(task_id, session=session)
        ti.task = self._scheduler_dag.get_task(task_id)
        return ti

    def schedule(self, task_id: str) -> int:
        """
        The scheduler's part of starting a try: ``DagRun.schedule_tis`` (which counts the try), then queued.

        :returns: the try number the worker will run.
        """
        from airflow.utils.session import create_session
        from airflow.utils.state import TaskInstanceState

        self._schedule_tis(task_id)
        with create_session() as session:
            ti = self.task_instance(task_id, session)
            ti.state = TaskInstanceState.QUEUED
            ti.queued_dttm = datetime.now(timezone.utc)
            return int(ti.try_number)

    def schedule_only(self, task_id: str) -> tuple[str, tuple[str, dict[str, Any]] | None]:
        """
        The scheduler's part alone (``DagRun.schedule_tis``): the task instance's state after it, and its trigger.

        :returns: the state, and the trigger's classpath and kwargs when the scheduler deferred the task.
        """
        from airflow.utils.session import create_session

        self._schedule_tis(task_id)
        with create_session() as session:
            ti = self.task_instance(task_id, session)
            trigger = ti.trigger
            return str(ti.state), None if trigger is None else (trigger.classpath, _plain(trigger.kwargs))

    def _schedule_tis(self, task_id: str) -> None:
        """``DagRun.schedule_tis`` for ``task_id``, ready to run: it counts the try (and may defer the task)."""
        from airflow.utils.session import create_session

        with create_session() as session:
            run = self.dag_run(session)
            schedulable, _ = run.update_state(session=session, execute_callbacks=False)
            ready = [ti for ti in schedulable if ti.task_id == task_id]
            assert ready, f"{task_id} is not ready to run: {run.get_task_instances(session=session)}"
            run.schedule_tis(ready, session=session)

    def worker_lost(self, task_id: str) -> str:
        """
        What the scheduler does once a running task's worker stopped heartbeating: fail the try.

        ``handle_failure`` decides, as for any failure, whether the task is retried. Returns the new state.
        """
        from airflow.utils.session import create_session
        from airflow.utils.state import TaskInstanceState

        if not airflow_3():
            # Airflow 2's DAG processor, which runs this there, has the FAB models loaded: saving a
            # task instance touches its note, whose user_id refers to FAB's ab_user table.
            import airflow.providers.fab.auth_manager.models  # noqa: F401

        with create_session() as session:
            ti = self.task_instance(task_id, session)
            assert ti.state == TaskInstanceState.RUNNING, f"the killed try left {ti.state!r}, not 'running'"
            ti.handle_failure(error="The task's worker stopped heartbeating (killed)", session=session)
            return str(ti.state)

    def start_try(self, task_id: str) -> Worker:
        """Start a worker running the queued try of ``task_id``, as the executor would."""
        log = (self.logs / f"{task_id}-{len(list(self.logs.iterdir()))}.log").open("w")
        if airflow_3():
            command = [sys.executable, "-m", "support.crashes", self._workload(task_id)]
        else:
            command = [
                sys.executable,
                "-m",
                "airflow",
                "tasks",
                "run",
                self.dag.dag_id,
                task_id,
                self.run_id,
                "--local",
                "--subdir",
                str(self.dag_file),
            ]
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
            # The worker's "dags-folder" bundle is the DAG file's folder (3.1+ parse only inside it).
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dag_file.parent),
        }
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        return Worker(process, Path(log.name))

    def _workload(self, task_id: str) -> str:
        from airflow.executors import workloads
        from airflow.utils.session import create_session

        with create_session() as session:
            ti = self.task_instance(task_id, session)
            workload = workloads.ExecuteTask.make(
                ti,
                dag_rel_path=Path(self.dag_file.name),
                generator=None,
                bundle_info=workloads.BundleInfo(name="dags-folder"),
            )
        return workload.model_dump_json()


def _plain(kwargs: Any) -> dict[str, Any]:
    """A trigger row's kwargs as the trigger gets them (Airflow 3.3 keeps them BaseSerialization-encoded)."""
    from airflow.serialization.serialized_objects import BaseSerialization

    if isinstance(kwargs, dict) and "__var" in kwargs:
        return dict(BaseSerialization.deserialize(kwargs))
    return dict(kwargs)


class Worker:
    """The processes of one try: the worker's and, once it forked it, the task's."""

    def __init__(self, process: subprocess.Popen[bytes], log: Path) -> None:
        self.process = process
        self.log = log

    def meanwhile(self, check: Callable[[], T], timeout: float) -> T:
        """Poll ``check`` while the try runs until it returns something truthy; fail with the log if the try ends first."""
        deadline = time.monotonic() + timeout
        while not (result := check()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                state = "timed out" if self.process.returncode is None else f"exit {self.process.returncode}"
                raise AssertionError(f"the try never got there ({state}); its log:\n{self.output()}")
            time.sleep(0.05)
        return result

    def kill(self) -> list[int]:
        """SIGKILL the worker and every process under it, all at once; the pids killed."""
        root = psutil.Process(self.process.pid)
        victims = [*root.children(recursive=True), root]
        for victim in victims:
            victim.send_signal(signal.SIGKILL)
        self.process.wait(30)
        return [victim.pid for victim in victims]

    def wait(self, timeout: float) -> int:
        """Wait for the try to end by itself; its exit code."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"the try did not end within {timeout}s; its log:\n{self.output()}"
            ) from None

    def output(self) -> str:
        """What the worker and the task logged."""
        return self.log.read_text(errors="replace")


def _run_workload(workload_json: str) -> int:
    """An Airflow 3 worker: run one workload with ``supervise()``, the execution API in this process."""
    from airflow.executors import workloads
    from airflow.sdk.execution_time import supervisor

    supervise = getattr(supervisor, "supervise_task", None) or supervisor.supervise  # renamed in 3.3
    workload = workloads.ExecuteTask.model_validate_json(workload_json)
    dag_file = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"], workload.dag_rel_path)
    dag = dagbag(dag_file).get_dag(workload.ti.dag_id)
    return supervise(
        ti=workload.ti,
        bundle_info=workload.bundle_info,
        dag_rel_path=workload.dag_rel_path,
        token="",
        client=supervisor.InProcessTestSupervisor._api_client(dag),
        subprocess_logs_to_stdout=True,
    )


if __name__ == "__main__":
    sys.exit(_run_workload(sys.argv[1]))
