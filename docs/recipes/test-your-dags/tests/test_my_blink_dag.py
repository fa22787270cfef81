"""Run my_blink_dag against the Blink emulator: no Blink account, no network."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parent.parent / "dags"
# Before Airflow is imported: the DAG folder holding the DAG under test. On Airflow 3, dag.test()
# runs only DAGs it finds there (one defined inside a test is "not serialized").
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"

from airflow_provider_blink.testing import BlinkEmulator, ScriptedPlaybook  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def airflow_db() -> None:
    """Airflow's metadata database in $AIRFLOW_HOME, created or upgraded once per test session."""
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)


def load_dag(dag_id: str):
    """The DAG as Airflow parses it from the DAG folder."""
    try:
        from airflow.dag_processing.dagbag import DagBag  # Airflow 3
    except ImportError:
        from airflow.models.dagbag import DagBag  # Airflow 2
    return DagBag(dag_folder=str(DAGS)).dags[dag_id]


def test_my_blink_dag_triages_the_alert(monkeypatch: pytest.MonkeyPatch) -> None:
    triage = ScriptedPlaybook(
        id="triage",
        name="Triage",
        workspace_id="ws-1",
        duration=0,
        final_state="Completed",
        output={"verdict": "benign"},
    )
    with BlinkEmulator(api_key="test-key", workspaces=["ws-1"], playbooks=[triage]) as blink:
        # AIRFLOW_CONN_BLINK_DEFAULT: the emulator's URL, key and workspace.
        for name, value in blink.connection_env("blink_default", workspace_id="ws-1").items():
            monkeypatch.setenv(name, value)
        dag_run = load_dag("my_blink_dag").test()

    assert dag_run.state == "success"
    (execution,) = blink.executions
    assert execution["state_ui"] == "Completed"
    assert execution["inputs"] == {"alert_id": "A-1042"}
