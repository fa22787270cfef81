"""Scale-out fixtures: one distributed Airflow 3 deployment per session (``make e2e-scale``).

PostgreSQL, Redis, the Blink emulator (in this process, behind one recording relay per triggerer and
per worker), ``airflow api-server``, ``scheduler`` (CeleryExecutor), ``dag-processor``, two
``triggerer`` and two ``celery worker`` processes, on loopback. The ``deployment`` fixture here
overrides the single-host one of ``tests/e2e/conftest.py`` for this directory, so the shared fixtures
(``blink``) read this deployment.

``BLINK_SCALE_TASKS`` sets the mapped fan-out's size (default 500), ``BLINK_SCALE_UNMAPPED`` the
unmapped fan-outs' (default 50 tasks each way); ``BLINK_E2E_KEEP=1`` keeps the temp dir.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e.harness.deployment import E2E_DAGS, running
from e2e.harness.distributed import DistributedDeployment, ScaleSettings
from e2e.harness.figures import FIGURES

SCALE_DAGS = Path(__file__).resolve().parent / "dags"
DAG_IDS = (
    "blink_scale_fan_out",
    "blink_scale_unmapped_start_from_trigger",
    "blink_scale_unmapped_deferrable",
    "blink_scale_start_takeover",
    "blink_e2e_worker_wait",
    "blink_e2e_event_driven",
)


def _playbook(playbook_id: str, duration: float) -> dict[str, Any]:
    return {
        "id": playbook_id,
        "workspace_id": DistributedDeployment.workspace_id,
        "duration": duration,
        "output": {"ok": True, "playbook": playbook_id},
    }


#: Executions of the long playbooks end when a test says so (``finish``), not on a timer.
PLAYBOOKS = [
    _playbook("scale-wait", 3600),
    _playbook("scale-unmapped", 3600),
    _playbook("takeover-wait", 3600),
    _playbook("crash-wait", 3600),
    _playbook("event-source", 1),
]

#: What the suite reports at the end besides the figures: where it ran, timings.
REPORT: dict[str, Any] = {}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not REPORT.get("base"):
        return
    write = terminalreporter.write_line
    terminalreporter.section("Blink at scale: figures (measured, not asserted)")
    for scenario, figures in FIGURES.items():
        write(f"{scenario}:")
        for name, value in figures.items():
            write(f"  {name:>44}: {value}")
    for name, seconds in REPORT.get("timings", {}).items():
        write(f"{name:>46}: {seconds:6.1f} s")
    where = "kept in" if REPORT.get("kept") else "removed:"
    write(f"temp dir {where} {REPORT['base']} (BLINK_E2E_KEEP=1 keeps it)")


@pytest.fixture(scope="session")
def deployment(request: pytest.FixtureRequest) -> Iterator[DistributedDeployment]:
    """The running distributed deployment, shared by the session and torn down at its end."""
    dep = DistributedDeployment(
        playbooks=PLAYBOOKS,
        dag_files=[E2E_DAGS / "blink_e2e_dags.py", *sorted(SCALE_DAGS.glob("*.py"))],
        settings=ScaleSettings(unmapped_tasks=int(os.environ.get("BLINK_SCALE_UNMAPPED", "50"))),
    )
    with running(
        dep, DAG_IDS, report=REPORT, tests_failed=lambda: request.session.testsfailed, parse_timeout=240
    ):
        yield dep


@pytest.fixture(scope="session")
def fan_out_size() -> int:
    """How many mapped tasks (and Blink executions) the fan-out scenarios run."""
    return int(os.environ.get("BLINK_SCALE_TASKS", "500"))


@pytest.fixture(scope="session")
def unmapped_size(deployment: DistributedDeployment) -> int:
    """How many tasks each unmapped fan-out DAG has (and Blink executions each of its runs starts)."""
    return deployment.settings.unmapped_tasks
