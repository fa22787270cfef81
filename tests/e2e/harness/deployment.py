"""A real Airflow deployment on loopback, one OS process per component, for the end-to-end suite.

:class:`Deployment` brings up PostgreSQL (the metadata database), the Blink emulator, then
``airflow api-server``, ``scheduler`` (LocalExecutor), ``dag-processor`` and ``triggerer``, each in
its own process group with its own log file, and tears them all down again. Tests drive it as an
operator would: :class:`AirflowApi` speaks Airflow's REST API (``/api/v2``, JWT from ``/auth/token``)
and :class:`BlinkApi` reads executions back through Blink's own REST API.

:class:`Airflow2Deployment` is the same on Airflow 2.11: ``airflow webserver`` (``/api/v1``, basic
auth) instead of the api-server, and the scheduler parses the DAGs itself (no ``dag-processor``).
:func:`deployment_class` picks the one for the Airflow installed here.

Every wait polls with a deadline (:func:`wait_until`); nothing sleeps a fixed time.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any, TypeVar

import psutil
import requests
from e2e.harness.airflow_api import Airflow2Api, AirflowApi, text_log_record
from e2e.harness.blink import BlinkEmulatorProcess, InProcessEmulator
from e2e.harness.postgres import Postgres
from e2e.harness.processes import (
    LOOPBACK,
    Component,
    ComponentFailed,
    base_env,
    free_port,
    run_checked,
    task_runners,
    worker_processes,
)
from e2e.harness.waiting import utcnow, wait_until
from packaging.version import Version

#: The Airflow installed here (the components run it; read without importing Airflow).
AIRFLOW_VERSION = Version(Version(version("apache-airflow")).base_version)
REPO = Path(__file__).resolve().parents[3]
E2E_DAGS = REPO / "tests" / "e2e" / "dags"
ADMIN_USER = "admin"
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
#: health-endpoint section of each component that heartbeats.
HEALTH_SECTIONS = {"scheduler": "scheduler", "dag-processor": "dag_processor", "triggerer": "triggerer"}


class Deployment:
    """PostgreSQL + Blink emulator + Airflow 3 components, each its own process, under one temp dir.

    :param playbooks: the emulator's playbooks (``--config`` entries).
    :param extra_env: extra environment for the Airflow components.
    """

    api_key = "blink-e2e-key-" + secrets.token_hex(8)
    workspace_id = "e2e-workspace"
    #: Airflow's components, in start order (each is ``airflow <name>``; see :meth:`build_component`).
    component_names: tuple[str, ...] = COMPONENTS
    #: Stop order: the scheduler first, so nothing new is scheduled while the rest go down.
    stop_order: tuple[str, ...] = ("scheduler", "triggerer", "dag-processor", "api-server")
    #: seconds the components get to become healthy at start (bring-up on 2 busy cores is slow)
    bring_up_timeout = 180.0
    #: the component that parses the DAG files
    parser = "dag-processor"
    api_class: type[AirflowApi] = AirflowApi
    #: what differs between the Airflow lines: 3.3+ keeps a task's durable state (``task_state_store``)
    has_task_state_store = Version("3.3") <= AIRFLOW_VERSION
    #: Airflow 3.0 resumes the retry of a deferred task with the earlier try's event (apache/airflow#56704)
    resumes_retry_with_earlier_event = Version("3.0") <= AIRFLOW_VERSION < Version("3.1")
    #: Airflow 3.0's supervisor fails a task whose process was killed without retrying it (3.1 retries)
    supervisor_retries_killed_task = not Version("3.0") <= AIRFLOW_VERSION < Version("3.1")
    #: a ``start_from_trigger`` task starts in the triggerer on 2.11 and 3.3+; the provider turns the
    #: mode off on 3.0-3.2, where the task starts on a worker and logs why
    starts_from_trigger = not Version("3.0") <= AIRFLOW_VERSION < Version("3.3")

    def __init__(
        self,
        *,
        playbooks: Iterable[Mapping[str, Any]],
        extra_env: Mapping[str, str] | None = None,
        dag_files: Iterable[Path] = (),
    ) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="blink-e2e-"))
        self.base.chmod(0o755)  # the postgres user must reach its data directory
        self.logs = self.base / "logs"
        self.logs.mkdir()
        self.home = self.base / "airflow-home"
        self.home.mkdir()
        self.dags = self.base / "dags"
        self.dags.mkdir()
        for path in dag_files:
            shutil.copy2(path, self.dags / path.name)
        self.python = sys.executable
        self.postgres = Postgres(self.base / "pgdata", self.logs / "postgres.log")
        self.emulator: BlinkEmulatorProcess | InProcessEmulator = self.build_emulator(playbooks)
        self.api_port = free_port()
        self.base_url = f"http://{LOOPBACK}:{self.api_port}"
        self.password = secrets.token_urlsafe(12)
        self.extra_env = dict(extra_env or {})
        self.components: dict[str, Component] = {}
        #: components a test killed on purpose (no longer checked for being alive, nor stopped).
        self.killed: dict[str, Component] = {}
        self.api = self.api_class(self.base_url, ADMIN_USER, self.password)
        self.api.explain = self.explain_run
        self.timings: dict[str, float] = {}

    # -- bring-up --------------------------------------------------------------------------------

    def build_emulator(
        self, playbooks: Iterable[Mapping[str, Any]]
    ) -> BlinkEmulatorProcess | InProcessEmulator:
        """The Blink emulator: ``python -m airflow_provider_blink.testing`` in its own process."""
        return BlinkEmulatorProcess(
            api_key=self.api_key,
            workspace_id=self.workspace_id,
            playbooks=playbooks,
            log_path=self.logs / "blink-emulator.log",
            python=self.python,
        )

    def airflow_env(self) -> dict[str, str]:
        from cryptography.fernet import Fernet

        env = base_env()
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
                "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.home / "passwords.json"),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.postgres.sqlalchemy_url,
                "AIRFLOW__API__HOST": LOOPBACK,
                "AIRFLOW__API__PORT": str(self.api_port),
                "AIRFLOW__API__BASE_URL": self.base_url,
                "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
                "AIRFLOW__API__EXPOSE_CONFIG": "False",
                "AIRFLOW__API__WORKERS": "1",  # 3.1+'s default; 3.0 starts 4, too many for 2 cores
                "AIRFLOW__API__ENABLE_XCOM_DESERIALIZE_SUPPORT": "True",  # 3.0 and 2.11 need it on
                # The dag-processor parses the copied folder at start; it lists it again every 5 s
                # but re-parses an unchanged file only every 2 min (CPU is scarce on 2 cores).
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "120",
                "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
                # A brisk scheduler and triggerer.
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
                "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "1",
                "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.2",
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
                # A triggerer that vanished without saying goodbye counts as dead after 10 s, so
                # another one takes over its triggers (default: 30 s).
                "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "10",
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                "AIRFLOW_CONN_BLINK_DEFAULT": json.dumps(self.emulator.connection()),
                "BLINK_EXAMPLE_POLL_INTERVAL": "0.5",
            }
        )
        if not self.supervisor_retries_killed_task:
            # A worker that dies with its task is found when the task's heartbeats stop (default 300 s).
            env["AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT"] = "20"
            env["AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL"] = "2"
        env.update(self.extra_env)
        return env

    def build_component(self, name: str, env: dict[str, str]) -> Component:
        """The process of component ``name``: ``airflow <name>`` with the deployment's environment."""
        argv = [self.python, "-m", "airflow", name]
        if name in ("scheduler", "triggerer"):
            argv.append("--skip-serve-logs")  # logs are local files the api-server reads itself
        return Component(name, argv, env, self.logs / f"{name}.log")

    def start(self) -> None:
        began = time.monotonic()
        self.postgres.start()
        self.timings["postgres"] = time.monotonic() - began
        self.emulator.start()
        env = self.airflow_env()
        mark = time.monotonic()
        run_checked(
            [self.python, "-m", "airflow", "db", "migrate"],
            env=env,
            log_path=self.logs / "db-migrate.log",
            timeout=600,
            cwd=self.base,
        )
        self.timings["db migrate"] = time.monotonic() - mark
        self.create_user(env)
        mark = time.monotonic()
        for name in self.component_names:
            self.components[name] = self.build_component(name, env)
            self.components[name].start()
        self.wait_healthy(self.component_names, timeout=self.bring_up_timeout)
        self.api.login()
        self.timings["components healthy"] = time.monotonic() - mark
        self.timings["bring-up"] = time.monotonic() - began

    def create_user(self, env: dict[str, str]) -> None:
        """The admin user the tests log in as (the simple auth manager's passwords file)."""
        (self.home / "passwords.json").write_text(json.dumps({ADMIN_USER: self.password}))

    def task_runners(self, ti: dict[str, Any]) -> list[psutil.Process]:
        """The processes running task instance ``ti`` (see :func:`~.processes.task_runners`)."""
        return task_runners(*self.api.task_key(ti))

    def worker_processes(self, ti: dict[str, Any]) -> list[psutil.Process]:
        """Every process whose command line names task instance ``ti``."""
        return worker_processes(*self.api.task_key(ti))

    def worker_crash_victims(self, ti: dict[str, Any]) -> list[psutil.Process]:
        """The processes a worker crash kills while running ``ti``: its task runners; on Airflow 3.0
        their supervisor too (whose report would fail the task without a retry), so the scheduler
        finds the task's heartbeats gone and retries it."""
        runners = self.task_runners(ti)
        if self.supervisor_retries_killed_task:
            return runners
        return runners + [parent for p in runners if (parent := p.parent()) is not None]

    def _check_components(self) -> None:
        for component in self.components.values():
            component.check_alive()
        self.postgres.component.check_alive()
        self.emulator.check_alive()

    def wait_healthy(
        self, names: Iterable[str], *, timeout: float, heartbeat_after: datetime | None = None
    ) -> dict[str, Any]:
        """Wait until the api-server answers and each named component's heartbeat is healthy.

        :param heartbeat_after: also require heartbeats newer than this (a restarted component).
        """
        names = list(names)
        last: dict[str, Any] = {}

        def healthy() -> dict[str, Any] | None:
            self._check_components()
            try:
                response = self.api.session.get(f"{self.base_url}{self.api.health_path}", timeout=5)
            except requests.RequestException:
                return None
            if response.status_code != 200:
                return None
            health = response.json()
            last.update(health)
            for name in names:
                section = HEALTH_SECTIONS.get(name)
                if section is None:
                    continue
                if health[section]["status"] != "healthy":
                    return None
                if heartbeat_after is not None:
                    beat = health[section][f"latest_{section}_heartbeat"]
                    if beat is None or datetime.fromisoformat(beat) <= heartbeat_after:
                        return None
            return health

        def diagnose() -> str:
            return f"last health: {json.dumps(last)}\n" + "\n".join(
                self.components[name].tail() for name in names if name in self.components
            )

        try:
            return wait_until(
                "Airflow components to be healthy: " + ", ".join(names),
                healthy,
                timeout=timeout,
                interval=0.5,
                diagnose=diagnose,
            )
        except TimeoutError as exc:
            raise ComponentFailed(str(exc)) from None

    def wait_for_dags(self, dag_ids: Iterable[str], *, timeout: float) -> None:
        """Wait until the dag-processor has serialized every DAG; fail at once on an import error."""
        missing = set(dag_ids)

        def parsed() -> bool:
            self._check_components()
            errors = self.api.import_errors()
            if errors:
                raise ComponentFailed("DAG import errors:\n" + json.dumps(errors, indent=2))
            for dag_id in sorted(missing):
                if self.api.dag(dag_id) is not None:
                    missing.discard(dag_id)
            return not missing

        wait_until(
            "DAGs to be parsed",
            parsed,
            timeout=timeout,
            interval=0.5,
            diagnose=lambda: f"still missing: {sorted(missing)}\n" + self.components[self.parser].tail(),
        )

    # -- operations tests perform ----------------------------------------------------------------

    def kill(self, name: str) -> None:
        """SIGKILL component ``name``'s whole process group (a crash) and leave it dead."""
        component = self.components.pop(name)
        self.killed[name] = component
        component.kill()

    def restart(self, name: str, *, crash: bool = False, timeout: float = 120) -> float:
        """Stop a component (SIGTERM and wait, or ``crash``: SIGKILL its process group), start it again,
        and wait until its fresh heartbeat is healthy; returns the seconds it was gone."""
        component = self.components[name]
        down = utcnow()
        began = time.monotonic()
        if crash:
            component.kill()
        else:
            component.send(signal.SIGTERM)
            if not component.wait_exit(60):
                raise ComponentFailed(f"{name} did not exit within 60 s of SIGTERM\n{component.tail()}")
            component.send(signal.SIGKILL, group=True)  # leftovers, if any
        component.start()
        self.wait_healthy([name], timeout=timeout, heartbeat_after=down)
        gone = time.monotonic() - began
        self.timings[f"{name} {'SIGKILL' if crash else 'SIGTERM'} -> healthy"] = gone
        return gone

    def explain_run(self, dag_id: str, run_id: str) -> str:
        """Scheduler lines that explain a task failing without its own error (empty if none)."""
        scheduler = self.components.get("scheduler")
        if scheduler is None or not scheduler.log_path.exists():
            return ""
        hits = [
            line
            for line in scheduler.log_path.read_text(errors="replace").splitlines()
            if run_id in line
            and ("state mismatch" in line or "but the task instance's state attribute is" in line)
        ]
        if not hits:
            return ""
        return (
            "scheduler: a stale executor event failed a task whose deferred run had resumed "
            "(Airflow core race, apache/airflow#72716):\n" + "\n".join(hits)
        )

    def trigger_logs(
        self, dag_id: str, run_id: str, task_id: str, try_number: int = 1, map_index: int = -1
    ) -> dict[int, list[dict[str, Any]]]:
        """The trigger log files of one task try, by the id of the triggerer job that wrote them.

        The triggerer writes ``attempt=N.log.trigger.<job id>.log`` next to the worker's task log; the
        REST API merges them, so attributing a line to a triggerer job needs the files themselves.
        """
        found: dict[int, list[dict[str, Any]]] = {}
        worker_log = self.task_log_path(dag_id, run_id, task_id, try_number, map_index)
        for path in worker_log.parent.glob(f"{worker_log.name}.trigger.*.log"):
            job_id = int(path.name.rsplit(".trigger.", 1)[1].removesuffix(".log"))
            found[job_id] = []
            for line in path.read_text(errors="replace").splitlines():
                with contextlib.suppress(ValueError):  # a line the triggerer is still writing
                    found[job_id].append(self.log_record(line))
        return found

    def task_log_path(
        self, dag_id: str, run_id: str, task_id: str, try_number: int = 1, map_index: int = -1
    ) -> Path:
        """Where a worker writes the log of one task try (``attempt=N.log``); it exists only if a worker ran
        the try (the triggerer writes its own files next to it, see :meth:`trigger_logs`)."""
        folder = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        if map_index >= 0:
            folder /= f"map_index={map_index}"
        return folder / f"attempt={try_number}.log"

    def log_record(self, line: str) -> dict[str, Any]:
        """One line of a log file Airflow wrote (Airflow 3: JSON)."""
        return dict(json.loads(line))

    def trigger_started(self, dag_id: str, run_id: str, task_id: str, triggerer: int) -> bool:
        """Whether triggerer job ``triggerer`` has started the trigger of ``task_id``'s first try."""
        records = self.trigger_logs(dag_id, run_id, task_id).get(triggerer, [])
        return any(str(r.get("event", "")).endswith(" starting") for r in records)

    # -- teardown --------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop everything, newest first: Airflow components, the emulator, then PostgreSQL."""
        errors: list[str] = []
        for name in self.stop_order:
            component = self.components.get(name)
            if component is not None:
                try:
                    component.stop(signal.SIGTERM, timeout=30)
                except Exception as exc:  # keep tearing down the rest
                    errors.append(f"{name}: {exc!r}")
        for stop in (self.emulator.stop, self.postgres.stop):
            try:
                stop()
            except Exception as exc:
                errors.append(f"{stop!r}: {exc!r}")
        if errors:
            raise RuntimeError("teardown problems: " + "; ".join(errors))

    def cleanup(self, *, keep: bool) -> None:
        """Remove the temp dir; with ``keep``, drop only the database files and keep logs and config."""
        if keep:
            shutil.rmtree(self.base / "pgdata", ignore_errors=True)
        else:
            shutil.rmtree(self.base, ignore_errors=True)


class Airflow2Deployment(Deployment):
    """The deployment on Airflow 2.11: ``airflow webserver`` serves the UI and ``/api/v1`` (basic auth,
    a user made with ``airflow users create``); the scheduler parses the DAG files itself."""

    component_names = ("webserver", "scheduler", "triggerer")
    stop_order = ("scheduler", "triggerer", "webserver")
    parser = "scheduler"
    api_class = Airflow2Api

    def airflow_env(self) -> dict[str, str]:
        env = super().airflow_env()
        env.update(
            {
                "AIRFLOW__WEBSERVER__WEB_SERVER_HOST": LOOPBACK,
                "AIRFLOW__WEBSERVER__WEB_SERVER_PORT": str(self.api_port),
                "AIRFLOW__WEBSERVER__BASE_URL": self.base_url,
                "AIRFLOW__WEBSERVER__SECRET_KEY": secrets.token_hex(16),
                "AIRFLOW__WEBSERVER__WORKERS": "1",  # gunicorn's default is 4: too many for 2 cores
                "AIRFLOW__API__AUTH_BACKENDS": "airflow.api.auth.backend.basic_auth",
                # The dag-processor's settings above, where Airflow 2 has them.
                "AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL": "5",
                "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "120",
                "AIRFLOW__SCHEDULER__PARSING_PROCESSES": "1",
            }
        )
        env.update(self.extra_env)
        return env

    def log_record(self, line: str) -> dict[str, Any]:
        return text_log_record(line)

    def trigger_started(self, dag_id: str, run_id: str, task_id: str, triggerer: int) -> bool:
        # Airflow 2 logs "... starting" to the triggerer's own log; the task's trigger log file is
        # written only by the running trigger.
        return bool(self.trigger_logs(dag_id, run_id, task_id).get(triggerer))

    def create_user(self, env: dict[str, str]) -> None:
        """The admin user the tests log in as, in Airflow 2's user database (FAB)."""
        argv = [self.python, "-m", "airflow", "users", "create", f"--username={ADMIN_USER}"]
        argv += [f"--password={self.password}", "--role=Admin", "--email=admin@example.com"]
        argv += ["--firstname=E2E", "--lastname=Admin"]
        run_checked(argv, env=env, log_path=self.logs / "users-create.log", timeout=300, cwd=self.base)


def deployment_class() -> type[Deployment]:
    """The deployment for the Airflow installed here."""
    return Deployment if Version("3") <= AIRFLOW_VERSION else Airflow2Deployment


D = TypeVar("D", bound=Deployment)


@contextlib.contextmanager
def running(
    dep: D,
    dag_ids: Iterable[str],
    *,
    report: dict[str, Any],
    tests_failed: Callable[[], int],
    parse_timeout: float,
) -> Iterator[D]:
    """Bring ``dep`` up with ``dag_ids`` parsed; on exit tear it down, keeping its temp dir (logs,
    config) when bring-up or a test failed, or with ``BLINK_E2E_KEEP=1``.

    :param report: receives ``base``, ``timings`` and ``kept`` for the suite's summary.
    :param tests_failed: how many tests have failed so far (read at teardown).
    """
    report["base"] = dep.base
    print(f"\n{type(dep).__name__} under {dep.base} (logs in {dep.logs})", flush=True)
    up = False
    try:
        dep.start()
        began = time.monotonic()
        dep.wait_for_dags(dag_ids, timeout=parse_timeout)
        dep.timings["DAGs parsed"] = time.monotonic() - began
        up = True
        yield dep
    finally:
        began = time.monotonic()
        try:
            dep.stop()
        finally:
            report.setdefault("timings", {}).update(dep.timings)
            report["timings"]["teardown"] = time.monotonic() - began
            keep = not up or tests_failed() > 0 or os.environ.get("BLINK_E2E_KEEP") == "1"
            report["kept"] = keep
            dep.cleanup(keep=keep)
