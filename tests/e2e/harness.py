"""A real Airflow 3 deployment on loopback, one OS process per component, for the end-to-end suite.

:class:`Deployment` brings up PostgreSQL (the metadata database), the Blink emulator, then
``airflow api-server``, ``scheduler`` (LocalExecutor), ``dag-processor`` and ``triggerer``, each in
its own process group with its own log file, and tears them all down again. Tests drive it as an
operator would: :class:`AirflowApi` speaks Airflow's REST API (``/api/v2``, JWT from ``/auth/token``)
and :class:`BlinkApi` reads executions back through Blink's own REST API.

Every wait polls with a deadline (:func:`wait_until`); nothing sleeps a fixed time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import psutil
import requests

REPO = Path(__file__).resolve().parents[2]
E2E_DAGS = Path(__file__).resolve().parent / "dags"
LOOPBACK = "127.0.0.1"
ADMIN_USER = "admin"
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
#: health-endpoint section of each component that heartbeats.
HEALTH_SECTIONS = {"scheduler": "scheduler", "dag-processor": "dag_processor", "triggerer": "triggerer"}
TERMINAL_RUN_STATES = frozenset({"success", "failed"})

T = TypeVar("T")


class ComponentFailed(RuntimeError):
    """A component did not come up (or died); the message carries its log tail."""


# -- small utilities -----------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on loopback that is free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def wait_until(
    what: str,
    probe: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.2,
    diagnose: Callable[[], str] | None = None,
) -> T:
    """Call ``probe`` until it returns something truthy; raise ``TimeoutError`` at the deadline.

    :param what: the awaited condition, for the error message.
    :param diagnose: called on timeout; its text is appended to the message (log tails, states).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            detail = f"\n{diagnose()}" if diagnose else ""
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}{detail}")
        time.sleep(interval)


def tail(path: Path, lines: int = 60) -> str:
    """The last ``lines`` lines of a log file (or a note that it is missing)."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


# -- processes -----------------------------------------------------------------------------------


@dataclasses.dataclass
class Component:
    """One long-running OS process, in its own process group, logging to its own file."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    user: str | None = None
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the process (appending to its log, so restarts keep the history)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(
                f"\n===== {utcnow().isoformat()} starting {self.name}: {' '.join(self.argv)}\n".encode()
            )
            log.flush()
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.log_path.parent,
                start_new_session=True,
                **_as_user(self.user),
            )

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError(f"{self.name} was never started")
        return self.proc.pid

    def tail(self, lines: int = 60) -> str:
        return f"--- {self.name} ({self.log_path}) ---\n{tail(self.log_path, lines)}"

    def check_alive(self) -> None:
        """Raise :class:`ComponentFailed` with the log tail if the process has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            raise ComponentFailed(f"{self.name} exited with status {self.proc.returncode}\n{self.tail()}")

    def send(self, signum: int, *, group: bool = False) -> None:
        """Send ``signum`` to the main process, or with ``group=True`` to its whole process group."""
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(self.pid, signum)
            else:
                os.kill(self.pid, signum)

    def wait_exit(self, timeout: float) -> bool:
        """Wait for the main process to exit; ``False`` if it is still running at the deadline."""
        assert self.proc is not None
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        """Ask the process to stop; kill its whole group if it does not, then reap any leftovers."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.send(signum)
            if not self.wait_exit(timeout):
                with self.log_path.open("a") as log:
                    log.write(f"\n===== {self.name} ignored signal {signum} for {timeout:g}s: SIGKILL\n")
                self.send(signal.SIGKILL, group=True)
                self.wait_exit(10)
        self.send(signal.SIGKILL, group=True)  # children the main process left behind

    def kill(self) -> None:
        """SIGKILL the whole process group at once (a crash, not a shutdown) and reap the main process."""
        if self.proc is None:
            return
        self.send(signal.SIGKILL, group=True)
        self.wait_exit(30)


def _as_user(user: str | None) -> dict[str, Any]:
    """Popen keyword arguments that drop root privileges to ``user`` (PostgreSQL refuses root)."""
    if user is None or os.geteuid() != 0:
        return {}
    return {"user": user, "group": user, "extra_groups": []}


def run_checked(
    argv: list[str], *, env: Mapping[str, str], log_path: Path, timeout: float, **kw: Any
) -> None:
    """Run a one-shot command to completion, its output appended to ``log_path``; fail with the tail."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        log.write(f"\n===== {utcnow().isoformat()} running: {' '.join(argv)}\n".encode())
        log.flush()
        try:
            result = subprocess.run(
                argv,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
                **kw,
            )
        except subprocess.TimeoutExpired:
            raise ComponentFailed(f"{argv[0]} did not finish within {timeout:g}s\n{tail(log_path)}") from None
    if result.returncode != 0:
        raise ComponentFailed(f"{' '.join(argv)} failed with status {result.returncode}\n{tail(log_path)}")


# -- PostgreSQL ----------------------------------------------------------------------------------


def postgres_bindir() -> Path:
    """The newest PostgreSQL server installation (Debian keeps them in /usr/lib/postgresql/N/bin)."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name)
    )
    if candidates:
        return candidates[-1].parent
    found = shutil.which("postgres")
    if found:
        return Path(found).parent
    raise ComponentFailed("PostgreSQL is not installed: apt-get install postgresql (scripts/e2e.sh does)")


class Postgres:
    """A throw-away PostgreSQL cluster in ``data_dir``, listening on loopback TCP only."""

    user = "postgres"

    def __init__(self, data_dir: Path, log_path: Path) -> None:
        self.data_dir = data_dir
        self.log_path = log_path
        self.port = free_port()
        bindir = postgres_bindir()
        self._initdb = str(bindir / "initdb")
        self.component = Component(
            "postgres",
            [
                str(bindir / "postgres"),
                "-D",
                str(data_dir),
                "-p",
                str(self.port),
                "-c",
                f"listen_addresses={LOOPBACK}",
                "-c",
                "unix_socket_directories=",
                "-c",
                "max_connections=300",
                # A test database: durability buys nothing here, speed does.
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ],
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"},
            log_path=log_path,
            user=self.user if os.geteuid() == 0 else None,
        )

    @property
    def sqlalchemy_url(self) -> str:
        return f"postgresql+psycopg2://{self.user}@{LOOPBACK}:{self.port}/airflow"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(self.data_dir, self.user, self.user)
        run_checked(
            [
                self._initdb,
                "-D",
                str(self.data_dir),
                "-U",
                self.user,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
            env=self.component.env,
            log_path=self.log_path,
            timeout=120,
            cwd=self.data_dir,
            **_as_user(self.component.user),
        )
        self.component.start()
        wait_until(
            "PostgreSQL to accept connections",
            self._ready,
            timeout=60,
            diagnose=self.component.tail,
        )
        with self._connect("postgres") as conn:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("CREATE DATABASE airflow")

    def _connect(self, dbname: str) -> Any:
        import psycopg2  # Airflow's driver; scripts/e2e.sh installs psycopg2-binary

        return contextlib.closing(
            psycopg2.connect(host=LOOPBACK, port=self.port, user=self.user, dbname=dbname, connect_timeout=5)
        )

    def _ready(self) -> bool:
        import psycopg2

        self.component.check_alive()
        try:
            with self._connect("postgres"):
                return True
        except psycopg2.OperationalError:  # not accepting connections yet
            return False

    def stop(self) -> None:
        # SIGINT is PostgreSQL's "fast" shutdown: disconnect clients, checkpoint, exit.
        self.component.stop(signal.SIGINT, timeout=30)


# -- the Blink emulator --------------------------------------------------------------------------


class BlinkApi:
    """Reads executions back from the emulator through Blink's public REST API (as any client would)."""

    def __init__(self, url: str, api_key: str, workspace_id: str) -> None:
        self.url = url
        self.workspace_id = workspace_id
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.headers["BLINK-API-KEY"] = api_key

    def _get(self, path: str, **params: str) -> Any:
        response = self.session.get(
            f"{self.url}/api/v1/workspace/{self.workspace_id}{path}", params=params, timeout=10
        )
        response.raise_for_status()
        return response.json()

    def executions(self, playbook_id: str) -> list[dict[str, Any]]:
        """Every execution of ``playbook_id``, oldest first."""
        query = {"filter": {"playbook_id": playbook_id}, "sort": ["created_at"], "limit": 1000}
        return list(self._get("/executions", q=json.dumps(query))["results"])

    def executions_for_run(self, playbook_id: str, run_id: str) -> list[dict[str, Any]]:
        """
        Executions of ``playbook_id`` whose inputs carry ``run_id`` (the e2e DAGs pass it), read with GET.

        A list item carries no ``inputs`` (seed 004), so each execution is read on its own.
        """
        records = [self.execution(e["id"]) for e in self.executions(playbook_id)]
        return [e for e in records if (e.get("inputs") or {}).get("run_id") == run_id]

    def execution(self, execution_id: str) -> dict[str, Any]:
        return dict(self._get(f"/executions/{execution_id}"))


class BlinkEmulatorProcess:
    """``python -m airflow_provider_blink.testing`` in its own process, serving ``playbooks``."""

    def __init__(
        self,
        *,
        api_key: str,
        workspace_id: str,
        playbooks: Iterable[Mapping[str, Any]],
        work_dir: Path,
        log_path: Path,
        python: str,
    ) -> None:
        self.api_key = api_key
        self.workspace_id = workspace_id
        self.config_path = work_dir / "blink-emulator.json"
        self.config_path.write_text(
            json.dumps(
                {"api_key": api_key, "workspaces": [workspace_id], "playbooks": list(playbooks)}, indent=2
            )
        )
        self.ready_file = work_dir / "blink-emulator.url"
        self.component = Component(
            "blink-emulator",
            [
                python,
                "-m",
                "airflow_provider_blink.testing",
                "--port",
                "0",
                "--api-key",
                api_key,
                "--workspace",
                workspace_id,
                "--config",
                str(self.config_path),
                "--ready-file",
                str(self.ready_file),
            ],
            env=_base_env(),
            log_path=log_path,
        )
        self.url = ""
        self.api: BlinkApi | None = None

    def start(self) -> None:
        self.component.start()

        def ready() -> str | None:
            self.component.check_alive()
            return self.ready_file.read_text().strip() if self.ready_file.exists() else None

        self.url = wait_until(
            "the Blink emulator's ready file", ready, timeout=60, diagnose=self.component.tail
        )
        self.api = BlinkApi(self.url, self.api_key, self.workspace_id)

    def connection(self) -> dict[str, Any]:
        """The ``blink_default`` Airflow connection for this emulator."""
        return {
            "conn_type": "blink",
            "host": self.url,
            "password": self.api_key,
            "extra": {"workspace_id": self.workspace_id},
        }

    def stop(self) -> None:
        self.component.stop(signal.SIGTERM, timeout=15)


# -- Airflow's REST API --------------------------------------------------------------------------


class AirflowApiError(RuntimeError):
    pass


class AirflowApi:
    """A small client for Airflow 3's public REST API, authenticated like a user (JWT)."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base_url = base_url
        self.username = username
        self.password = password
        self.session = requests.Session()
        self.session.trust_env = False
        #: adds what the deployment knows about a run to :meth:`describe_run` (set by :class:`Deployment`).
        self.explain: Callable[[str, str], str] | None = None

    def login(self) -> str:
        """Fetch a JWT from the simple auth manager's ``/auth/token`` and use it from now on."""
        response = self.session.post(
            f"{self.base_url}/auth/token",
            json={"username": self.username, "password": self.password},
            timeout=30,
        )
        _raise_for(response)
        token = str(response.json()["access_token"])
        self.session.headers["Authorization"] = f"Bearer {token}"
        return token

    def request(self, method: str, path: str, *, ok: Iterable[int] = (200, 201, 204), **kw: Any) -> Any:
        response = self.session.request(method, f"{self.base_url}/api/v2{path}", timeout=30, **kw)
        if response.status_code not in set(ok):
            _raise_for(response, force=True)
        if not response.content:
            return None
        return response.json()

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params or None)

    # -- DAGs and runs ---------------------------------------------------------------------------

    def dag(self, dag_id: str) -> dict[str, Any] | None:
        response = self.session.get(f"{self.base_url}/api/v2/dags/{dag_id}", timeout=30)
        if response.status_code == 404:
            return None
        _raise_for(response)
        return dict(response.json())

    def import_errors(self) -> list[dict[str, Any]]:
        return list(self.get("/importErrors")["import_errors"])

    def trigger(self, dag_id: str, *, run_id: str | None = None, conf: dict[str, Any] | None = None) -> str:
        """Unpause the DAG if needed and start a manual run; returns its run id."""
        dag = self.dag(dag_id)
        if dag is None:
            raise AirflowApiError(f"DAG {dag_id!r} is not known to Airflow")
        if dag["is_paused"]:
            self.request("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
        body: dict[str, Any] = {"logical_date": None, "conf": conf or {}}
        if run_id:
            body["dag_run_id"] = run_id
        return str(self.request("POST", f"/dags/{dag_id}/dagRuns", json=body)["dag_run_id"])

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self.get(f"/dags/{dag_id}/dagRuns/{run_id}"))

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return list(self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", limit=100)["task_instances"])

    def task_instance(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, Any]:
        suffix = "" if map_index < 0 else f"/{map_index}"
        return dict(self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}{suffix}"))

    def task_state(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        """The task's ``task_state_store`` entries (Airflow 3.3+), key -> value."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/state-store"
        return {e["key"]: e["value"] for e in self.get(path)["task_state_store"]}

    def set_task_state(self, dag_id: str, run_id: str, task_id: str, state: str) -> Any:
        return self.request(
            "PATCH", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}", json={"new_state": state}
        )

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str, map_index: int = -1) -> Any:
        entry = self.get(
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}",
            map_index=map_index,
            deserialize="true",
        )
        return entry["value"]

    def links(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, str | None]:
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/links"
        return dict(self.get(path, map_index=map_index)["extra_links"])

    def task_log_records(
        self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1
    ) -> list[dict[str, Any]]:
        """A task try's log as Airflow serves it (worker and trigger logs merged), one dict per line."""
        response = self.session.get(
            f"{self.base_url}/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
            params={"map_index": map_index, "full_content": "true"},
            headers={"Accept": "application/x-ndjson"},
            timeout=30,
        )
        _raise_for(response)
        return [json.loads(line) for line in response.text.splitlines() if line.strip()]

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1) -> str:
        """The same log as text: ``timestamp level event [error]`` per line."""
        lines = []
        for record in self.task_log_records(dag_id, run_id, task_id, try_number, map_index):
            line = f"{record.get('timestamp') or '':27} {record.get('level') or '':7} {record.get('event')}"
            if record.get("error_detail"):
                line += f" {json.dumps(record['error_detail'])[:600]}"
            lines.append(line)
        return "\n".join(lines)

    def describe_run(self, dag_id: str, run_id: str, *, logs: bool = True) -> str:
        """Run state, each task instance's state and, for failed ones, their log tail."""
        lines = [f"DAG run {dag_id}/{run_id}: {self.dag_run(dag_id, run_id)['state']}"]
        for ti in self.task_instances(dag_id, run_id):
            lines.append(f"  {ti['task_id']}[{ti['map_index']}] try {ti['try_number']}: {ti['state']}")
            if logs and ti["state"] in ("failed", "up_for_retry", "upstream_failed") and ti["try_number"]:
                text = self.task_log(dag_id, run_id, ti["task_id"], ti["try_number"], ti["map_index"])
                lines.extend("    | " + line for line in text.splitlines()[-25:])
        if self.explain is not None:
            lines.append(self.explain(dag_id, run_id))
        return "\n".join(lines)

    def wait_for_run(self, dag_id: str, run_id: str, *, timeout: float, interval: float = 0.5) -> str:
        """Wait until the run is ``success`` or ``failed``; return that state."""

        def finished() -> str | None:
            state = self.dag_run(dag_id, run_id)["state"]
            return state if state in TERMINAL_RUN_STATES else None

        return wait_until(
            f"DAG run {dag_id}/{run_id} to finish",
            finished,
            timeout=timeout,
            interval=interval,
            diagnose=lambda: self.describe_run(dag_id, run_id),
        )


def _raise_for(response: requests.Response, *, force: bool = False) -> None:
    if force or response.status_code >= 400:
        raise AirflowApiError(
            f"{response.request.method} {response.url} -> HTTP {response.status_code}: {response.text[:2000]}"
        )


# -- the deployment ------------------------------------------------------------------------------


def _base_env() -> dict[str, str]:
    """The environment every component starts from: this one, minus any Airflow settings of the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        PYTHONUNBUFFERED="1",
        NO_PROXY="127.0.0.1,localhost,::1",
        no_proxy="127.0.0.1,localhost,::1",
    )
    env.pop("PYTEST_CURRENT_TEST", None)
    env.pop("PYTEST_ADDOPTS", None)
    return env


def worker_processes(ti_id: str) -> list[psutil.Process]:
    """Processes running a task instance: the task runner titles itself ``airflow worker -- <ti id>``."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if ti_id in " ".join(proc.info["cmdline"] or ()):
                found.append(proc)
    return found


class Deployment:
    """PostgreSQL + Blink emulator + Airflow 3 components, each its own process, under one temp dir.

    :param playbooks: the emulator's playbooks (``--config`` entries).
    :param extra_env: extra environment for the Airflow components.
    """

    api_key = "blink-e2e-key-" + secrets.token_hex(8)
    workspace_id = "e2e-workspace"

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
        self.emulator = BlinkEmulatorProcess(
            api_key=self.api_key,
            workspace_id=self.workspace_id,
            playbooks=playbooks,
            work_dir=self.base,
            log_path=self.logs / "blink-emulator.log",
            python=self.python,
        )
        self.api_port = free_port()
        self.base_url = f"http://{LOOPBACK}:{self.api_port}"
        self.password = secrets.token_urlsafe(12)
        self.extra_env = dict(extra_env or {})
        self.components: dict[str, Component] = {}
        self.api = AirflowApi(self.base_url, ADMIN_USER, self.password)
        self.api.explain = self.explain_run
        self.timings: dict[str, float] = {}

    # -- bring-up --------------------------------------------------------------------------------

    def airflow_env(self) -> dict[str, str]:
        from cryptography.fernet import Fernet

        env = _base_env()
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
        env.update(self.extra_env)
        return env

    def _component(self, name: str, env: dict[str, str]) -> Component:
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
        (self.home / "passwords.json").write_text(json.dumps({ADMIN_USER: self.password}))
        mark = time.monotonic()
        run_checked(
            [self.python, "-m", "airflow", "db", "migrate"],
            env=env,
            log_path=self.logs / "db-migrate.log",
            timeout=600,
            cwd=self.base,
        )
        self.timings["db migrate"] = time.monotonic() - mark
        mark = time.monotonic()
        for name in COMPONENTS:
            self.components[name] = self._component(name, env)
            self.components[name].start()
        self.wait_healthy(COMPONENTS, timeout=180)
        self.api.login()
        self.timings["components healthy"] = time.monotonic() - mark
        self.timings["bring-up"] = time.monotonic() - began

    def _check_components(self) -> None:
        for component in self.components.values():
            component.check_alive()
        self.postgres.component.check_alive()
        self.emulator.component.check_alive()

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
                response = self.api.session.get(f"{self.base_url}/api/v2/monitor/health", timeout=5)
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
            diagnose=lambda: f"still missing: {sorted(missing)}\n" + self.components["dag-processor"].tail(),
        )

    # -- operations tests perform ----------------------------------------------------------------

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
        folder = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        if map_index >= 0:
            folder /= f"map_index={map_index}"
        found: dict[int, list[dict[str, Any]]] = {}
        for path in folder.glob(f"attempt={try_number}.log.trigger.*.log"):
            job_id = int(path.name.rsplit(".trigger.", 1)[1].removesuffix(".log"))
            found[job_id] = []
            for line in path.read_text(errors="replace").splitlines():
                with contextlib.suppress(ValueError):  # a line the triggerer is still writing
                    found[job_id].append(json.loads(line))
        return found

    # -- teardown --------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop everything, newest first: Airflow components, the emulator, then PostgreSQL."""
        errors: list[str] = []
        for name in ("scheduler", "triggerer", "dag-processor", "api-server"):
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
