"""End-to-end fixtures: one real Airflow deployment per session, with the Blink emulator as Blink.

The deployment (``tests/e2e/harness/``) runs PostgreSQL, the emulator, ``airflow api-server``,
``scheduler`` (LocalExecutor), ``dag-processor`` and ``triggerer`` as separate processes on loopback,
with ``example_dags/`` and ``tests/e2e/dags/`` deployed (on Airflow 2.11: ``webserver``, ``scheduler``
parsing the DAGs itself, and ``triggerer``). Tests talk to it only the way an operator
would: Airflow's REST API, the web UI in a real browser, signals to its processes, and Blink's API.

Run with ``scripts/e2e.sh`` (or ``pytest tests/e2e -p no:cacheprovider`` once the dependencies are in
place). Tests marked ``older_lines`` are the lighter variant that ``BLINK_E2E_LINE=2.11`` or ``3.0
scripts/e2e.sh`` runs on an older Airflow line. ``BLINK_E2E_KEEP=1`` keeps the temp dir (logs, config) even when every test passes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e.harness.blink import BlinkApi
from e2e.harness.deployment import AIRFLOW_VERSION, E2E_DAGS, REPO, Deployment, deployment_class, running
from e2e.harness.runs import EXAMPLE_DEFERRABLE, STEPS_DAG, STEPS_TASKS, RunObservation, watch_run
from e2e.harness.waiting import utcnow

from airflow_provider_blink.testing import DEMO_PLAYBOOKS

ARTIFACTS = REPO / "artifacts" / "e2e"
EXAMPLE_DAGS = ("example_blink_enrich_pipeline", "example_blink_fire_and_forget", "example_blink_mapped")
E2E_DAG_IDS = (
    "blink_e2e_deferred_wait",
    "blink_e2e_deferred_retry",
    "blink_e2e_worker_wait",
    "blink_e2e_worker_wait_fresh",
    "blink_e2e_sensor_wait",
    STEPS_DAG,
    "blink_e2e_start_from_trigger",
    "blink_e2e_start_from_trigger_fails",
    # asset watchers are Airflow 3's
    *(("blink_e2e_event_driven",) if AIRFLOW_VERSION.major >= 3 else ()),
)


def _playbook(playbook_id: str, duration: float, **fields: Any) -> dict[str, Any]:
    return {
        "id": playbook_id,
        "name": playbook_id.replace("-", " ").capitalize(),
        "workspace_id": Deployment.workspace_id,
        "duration": duration,
        "final_state": "Completed",
        "output": {"ok": True},
        **fields,
    }


#: The emulator's playbooks (its ``--config`` format). The demo ones (their steps too; not their
#: phases: nothing releases a held run here) last 8 s here (1-2 s in the demo), long enough that
#: - a test polling every 0.1 s sees their tasks deferred after the deferring worker has gone, and
#: - the trigger fires only after the scheduler has drained the deferring worker's "success" event,
#:   which reaches it up to ``[workers] min_heartbeat_interval`` (5 s) late; Airflow 3.3 fails a
#:   task that has already resumed when that event arrives (apache/airflow#72716).
#: The others outlast a component restart (up to ~60 s on a busy 2-core machine) or a user's action.
PLAYBOOKS = [
    *(
        {
            "id": pb.id,
            "name": pb.name,
            "workspace_id": Deployment.workspace_id,
            "duration": 8.0,
            "final_state": pb.final_state,
            "output": pb.output,
            "error_details": pb.error_details,
            "steps": pb.steps,
            "failed_step": pb.failed_step,
        }
        for pb in DEMO_PLAYBOOKS
    ),
    _playbook("long-wait", 5),
    _playbook("restart-sigterm", 90),
    _playbook("restart-sigkill", 90),
    _playbook("crash-wait", 45),  # outlasts the 20-30 s a crashed worker goes unnoticed on 3.0
    _playbook("crash-wait-fresh", 30),
    _playbook("retry-deferred", 20),
    _playbook("cancel-me", 120),
    _playbook("watched-only", 20),
    _playbook("event-source", 1),
    # A start_from_trigger task's: where the mode is on (2.11, 3.3+) its 3 steps outlast a triggerer
    # SIGKILL, restart and the next trigger's first reads (on 3.3, up to ~75 s in all on a busy 2-core
    # machine: the triggerer builds its in-process Execution API at the first Variable read); on
    # 3.0-3.2 nothing restarts while it runs. The other fails fast.
    _playbook("start-from-trigger", 90 if Deployment.starts_from_trigger else 8, steps=3),
    _playbook(
        "start-from-trigger-fails",
        2,
        steps=2,
        final_state="Failed",
        failed_step=2,
        output=None,
        error_details={"message": "step 2: EDR refused the isolation", "error_code": "STEP_FAILED"},
    ),
]

#: What the suite reports at the end (screenshots, logs, timings).
REPORT: dict[str, Any] = {"screenshots": [], "timings": {}}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: end-to-end test against a real Airflow deployment")
    config.addinivalue_line(
        "markers", "older_lines: the lighter variant that also runs on Airflow 2.11 and 3.0 (scripts/e2e.sh)"
    )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not REPORT.get("base"):
        return
    write = terminalreporter.write_line
    terminalreporter.section("Blink end-to-end")
    for name, seconds in REPORT["timings"].items():
        write(f"{name:>32}: {seconds:6.1f} s")
    if REPORT.get("kept"):
        write(f"logs kept in {REPORT['base']}/logs (Airflow task logs: {REPORT['base']}/airflow-home/logs)")
    else:
        write(f"temp dir {REPORT['base']} removed (set BLINK_E2E_KEEP=1 to keep it)")
    for path in REPORT["screenshots"]:
        write(f"screenshot: {path}")


@pytest.fixture(scope="session")
def deployment(request: pytest.FixtureRequest) -> Iterator[Deployment]:
    """The running deployment, shared by the whole session and torn down at its end."""
    dag_files = sorted((REPO / "example_dags").glob("*.py")) + sorted(E2E_DAGS.glob("*.py"))
    dep = deployment_class()(playbooks=PLAYBOOKS, dag_files=dag_files)
    with running(
        dep,
        [*EXAMPLE_DAGS, *E2E_DAG_IDS],
        report=REPORT,
        tests_failed=lambda: request.session.testsfailed,
        parse_timeout=180,
    ):
        yield dep


@pytest.fixture(scope="session")
def blink(deployment: Deployment) -> BlinkApi:
    """Blink's API on the emulator, to read back what Airflow really asked Blink to do."""
    assert deployment.emulator.api is not None
    return deployment.emulator.api


@pytest.fixture(scope="session")
def artifacts() -> Callable[[str], Path]:
    """``artifacts("name.png")``: a path under ``artifacts/e2e/`` that the summary will print."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def path(name: str) -> Path:
        target = ARTIFACTS / name
        REPORT["screenshots"].append(target)
        return target

    return path


@pytest.fixture(scope="session")
def example_run(deployment: Deployment) -> Callable[[str], RunObservation]:
    """``example_run(dag_id)``: trigger one run of an example DAG and watch it (once per session)."""
    runs: dict[str, RunObservation] = {}

    def run(dag_id: str) -> RunObservation:
        if dag_id not in runs:
            run_id = deployment.api.trigger(dag_id, run_id=f"e2e__{dag_id}__{utcnow():%H%M%S%f}")
            runs[dag_id] = watch_run(deployment, dag_id, run_id, EXAMPLE_DEFERRABLE[dag_id])
        return runs[dag_id]

    return run


@pytest.fixture(scope="session")
def steps_run(deployment: Deployment) -> RunObservation:
    """One run of ``blink_e2e_steps`` (two multi-step playbooks, ``log_progress``), watched to its end."""
    run_id = deployment.api.trigger(STEPS_DAG, run_id=f"e2e__steps__{utcnow():%H%M%S%f}")
    return watch_run(deployment, STEPS_DAG, run_id, {task_id: task_id for task_id in STEPS_TASKS})
