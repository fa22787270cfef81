"""Shared fixtures: an isolated Airflow home, and a Blink emulator wired in as ``blink_default``."""

from __future__ import annotations

import functools
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
AIRFLOW_VERSION = version("apache-airflow")

# Before anything imports Airflow: a private home per virtualenv and Airflow version (so the lines of
# scripts/test.sh can run side by side), no example DAGs.
VENV = Path(sys.prefix).name.lstrip(".")
os.environ.setdefault("AIRFLOW_HOME", str(REPO / ".airflow-home" / f"{VENV}-{AIRFLOW_VERSION}"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO / "example_dags"))
os.environ.setdefault("BLINK_EXAMPLE_POLL_INTERVAL", "0.2")
# A Fernet key, as every deployment configures: Airflow then encrypts each connection's password as it
# reads it, also from AIRFLOW_CONN_* (a fixed one: the private metadata database outlives a run).
os.environ.setdefault("AIRFLOW__CORE__FERNET_KEY", "YmxpbmstcHJvdmlkZXItdGVzdHMtZmVybmV0LWtleSE=")
os.environ.pop("AIRFLOW_CONN_BLINK_DEFAULT", None)

from support.lineage import configure_openlineage  # noqa: E402

configure_openlineage(Path(os.environ["AIRFLOW_HOME"]))

from airflow_provider_blink.testing import DEMO_PLAYBOOKS, BlinkEmulator  # noqa: E402

from support.clients import Client  # noqa: E402
from support.connections import connection_json  # noqa: E402
from support.emulator import API_KEY, TEST_PLAYBOOKS, VIEWER_KEY, WORKSPACE  # noqa: E402


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[BlinkEmulator]:
    """A running emulator with the demo and test playbooks, configured as ``blink_default``."""
    with BlinkEmulator(
        api_key=API_KEY, workspaces=[WORKSPACE], playbooks=[*DEMO_PLAYBOOKS, *TEST_PLAYBOOKS]
    ) as emu:
        monkeypatch.setenv("AIRFLOW_CONN_BLINK_DEFAULT", connection_json(emu))
        yield emu


@pytest.fixture
def blink(monkeypatch: pytest.MonkeyPatch) -> Iterator[BlinkEmulator]:
    """An emulator with a read-only key too; connections ``blink_default``, ``blink_viewer``, ``blink_wrong_key``."""
    with BlinkEmulator(
        api_key=API_KEY,
        workspaces=[WORKSPACE],
        playbooks=TEST_PLAYBOOKS,
        viewer_keys={VIEWER_KEY: [WORKSPACE]},
    ) as emu:
        monkeypatch.setenv("AIRFLOW_CONN_BLINK_DEFAULT", connection_json(emu))
        monkeypatch.setenv("AIRFLOW_CONN_BLINK_VIEWER", connection_json(emu, key=VIEWER_KEY))
        monkeypatch.setenv("AIRFLOW_CONN_BLINK_WRONG_KEY", connection_json(emu, key="not-the-key"))
        yield emu


@pytest.fixture(params=["sync", "async"])
def client(request: pytest.FixtureRequest) -> Callable[..., Client]:
    """Make a :class:`~support.clients.Client` for a connection id, once per mode (sync, async)."""
    return lambda conn_id="blink_default": Client(request.param, conn_id)


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """An initialised metadata database (SQLite in the private Airflow home), made once."""
    home = Path(os.environ["AIRFLOW_HOME"])
    marker = home / ".db-migrated"
    if not marker.exists():
        home.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"],
            check=True,
            capture_output=True,
            env=os.environ.copy(),
        )
        marker.touch()


@pytest.fixture(scope="session", autouse=True)
def dag_test_serves_every_task_from_one_execution_api() -> Iterator[None]:
    """
    Serve every task ``dag.test()`` runs from one in-process execution API, as Airflow 3.3 does.

    Airflow 3.0-3.2's ``dag.test()`` builds a new in-process execution API for each run of a task (each
    try, each resume after a deferral): a FastAPI app whose Cadwyn routes are built on its first
    request, a second or more per task run, which made the 3.0 line's suite twice as slow as 2.11's.
    Airflow 3.3 builds it once (``lru_cache`` on ``in_process_api_server``, apache/airflow#65235), as a
    deployment's API server serves every task; the tests do so on the earlier lines too. Each run still
    sets its own DAG on the app (``InProcessTestSupervisor._api_client``); ``dag.test()`` runs tasks one
    at a time.
    """
    from airflow_provider_blink.compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_3_PLUS

    if not AIRFLOW_V_3_0_PLUS or AIRFLOW_V_3_3_PLUS:
        yield
        return
    from airflow.sdk.execution_time import supervisor

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(supervisor, "in_process_api_server", functools.cache(supervisor.in_process_api_server))
        yield


@pytest.fixture(autouse=True)
def task_log_handlers_restored() -> Iterator[None]:
    """
    Each test starts with the ``airflow.task`` handlers it found.

    Airflow 3.0's task runner, as a task fails under ``dag.test()``, leaves a handler on ``airflow.task``
    (on a file it closes): every later log line through that logger would be counted again.
    """
    logger = logging.getLogger("airflow.task")
    handlers = logger.handlers[:]
    yield
    logger.handlers[:] = handlers


@pytest.fixture(scope="session", autouse=True)
def dag_test_passes_the_exception_to_callbacks() -> Iterator[None]:
    """
    Give failure and retry callbacks under ``dag.test()`` the task's exception, as a worker does.

    A worker's task runner sets ``context["exception"]`` before the callbacks on every Airflow 3
    line; ``dag.test()`` runs the task in-process and does so only from Airflow 3.3 (3.0-3.2 leave it
    out). Tests read what a deployment's callbacks get, so they patch 3.0-3.2's ``dag.test()`` to match.
    """
    from airflow_provider_blink.compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_3_PLUS

    if not AIRFLOW_V_3_0_PLUS or AIRFLOW_V_3_3_PLUS:
        yield
        return
    from airflow.sdk.execution_time import task_runner

    finalize = task_runner.finalize

    def finalize_as_the_worker_does(ti: Any, state: Any, context: Any, log: Any, error: Any = None) -> Any:
        context["exception"] = error
        return finalize(ti, state, context, log, error)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(task_runner, "finalize", finalize_as_the_worker_does)
        yield


@pytest.fixture(scope="session", autouse=True)
def dag_test_parses_the_first_reschedule_date() -> Iterator[None]:
    """
    Give a rescheduled sensor under ``dag.test()`` its first reschedule date as a datetime, as a worker does.

    Airflow 3.0-3.1's API client builds the answer with ``model_construct``, leaving the date a string
    (apache/airflow#58777, fixed in 3.2). A worker's task process decodes the supervisor's message, which
    parses it; ``dag.test()`` hands the object over in-process, so a sensor's second poke in reschedule
    mode fails on ``datetime - str``. Tests patch the client to parse it, as the worker's decoding does.
    """
    from airflow_provider_blink.compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_2_PLUS

    if not AIRFLOW_V_3_0_PLUS or AIRFLOW_V_3_2_PLUS:
        yield
        return
    from airflow.sdk.api.client import TaskInstanceOperations
    from airflow.sdk.execution_time.comms import TaskRescheduleStartDate

    read = TaskInstanceOperations.get_reschedule_start_date

    def read_and_parse(self: Any, *args: Any, **kwargs: Any) -> TaskRescheduleStartDate:
        return TaskRescheduleStartDate(start_date=read(self, *args, **kwargs).start_date)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TaskInstanceOperations, "get_reschedule_start_date", read_and_parse)
        yield
