"""Shared fixtures: an isolated Airflow home, and a Blink emulator wired in as ``blink_default``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
AIRFLOW_VERSION = version("apache-airflow")

# Before anything imports Airflow: a private home per Airflow version, no example DAGs.
os.environ.setdefault("AIRFLOW_HOME", str(REPO / ".airflow-home" / AIRFLOW_VERSION))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO / "example_dags"))
os.environ.setdefault("BLINK_EXAMPLE_POLL_INTERVAL", "0.2")
os.environ.pop("AIRFLOW_CONN_BLINK_DEFAULT", None)

from airflow_provider_blink.testing import (  # noqa: E402
    DEMO_PLAYBOOKS,
    DEMO_WORKSPACE,
    BlinkEmulator,
    ScriptedPlaybook,
)

#: A key distinctive enough to search for in logs, XCom and messages.
API_KEY = "blink-test-key-7f3a9c2e51d84b06"
WORKSPACE = DEMO_WORKSPACE

#: Quick playbooks for tests, beside the demo ones (enrich-ioc, isolate-host, failing-playbook).
TEST_PLAYBOOKS = [
    ScriptedPlaybook(
        id="quick-ok",
        name="Quick success",
        workspace_id=WORKSPACE,
        duration=0.3,
        final_state="Completed",
        output={"answer": 42},
    ),
    ScriptedPlaybook(
        id="quick-fail",
        name="Quick failure",
        workspace_id=WORKSPACE,
        duration=0.3,
        final_state="Failed",
        error_details={"message": "step 'lookup' failed: upstream returned 500", "error_code": "STEP_FAILED"},
    ),
    ScriptedPlaybook(id="slow", name="Slow", workspace_id=WORKSPACE, duration=60.0, final_state="Completed"),
]


def connection_json(emulator: BlinkEmulator, **extra: object) -> str:
    """The ``blink_default`` connection for ``emulator``, with fast retries unless overridden."""
    conn = json.loads(emulator.connection_json(workspace_id=WORKSPACE))
    conn["extra"] = {"retry_limit": 2, "retry_delay": 0.01, "timeout": 5, **conn["extra"], **extra}
    return json.dumps(conn)


def start_directly(emulator: BlinkEmulator, playbook_id: str) -> str:
    """Start a run in the emulator over HTTP, not through the provider (as another tool or a person would)."""
    import requests

    response = requests.post(
        f"{emulator.url}/api/v1/workspace/{WORKSPACE}/playbooks/{playbook_id}/execute",
        headers={"BLINK-API-KEY": emulator.api_key},
        json={},
        timeout=5,
    )
    response.raise_for_status()
    return str(response.json()["execution_id"])


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[BlinkEmulator]:
    """A running emulator with the demo and test playbooks, configured as ``blink_default``."""
    with BlinkEmulator(
        api_key=API_KEY, workspaces=[WORKSPACE], playbooks=[*DEMO_PLAYBOOKS, *TEST_PLAYBOOKS]
    ) as emu:
        monkeypatch.setenv("AIRFLOW_CONN_BLINK_DEFAULT", connection_json(emu))
        yield emu


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
def dag_test_passes_the_exception_to_callbacks() -> Iterator[None]:
    """
    Give failure and retry callbacks under ``dag.test()`` the task's exception, as a worker does.

    A worker's task runner sets ``context["exception"]`` before the callbacks on every Airflow 3
    line; ``dag.test()`` runs the task in-process and does so only from Airflow 3.3 (3.0-3.2 leave it
    out). Tests read what a deployment's callbacks get, so they patch 3.0-3.2's ``dag.test()`` to match.
    """
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_3_PLUS

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
