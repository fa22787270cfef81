"""
The operator against answers Blink may give (issue 10), run for real with ``dag.test()``.

A completed playbook is never run again because of something after it; a state the provider does
not know in ``state_ui`` leaves the decision to ``state``; the output comes from the right step.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import pytest

from airflow_provider_blink.exceptions import BlinkExecutionFailed
from airflow_provider_blink.operators.blink import BlinkExecutePlaybookOperator
from airflow_provider_blink.testing import DEMO_WORKSPACE, Fault, ScriptedPlaybook

from support.dag_runs import register, run, task_instance, xcom

TASK_ID = "run_playbook"
MODES = pytest.mark.parametrize("deferrable", [True, False], ids=["deferrable", "in-process"])


def one_task_dag(dag_id: str, failures: list[BaseException], **task_kwargs: Any) -> Any:
    """A DAG with one Blink task that records the exception of each failed try."""
    from airflow_provider_blink.compat import DAG

    def record(context: Any) -> None:
        failures.append(context["exception"])

    with DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
        BlinkExecutePlaybookOperator(
            task_id=TASK_ID,
            **{
                "poll_interval": 0.1,
                "retry_delay": timedelta(0),
                "on_retry_callback": record,
                "on_failure_callback": record,
                **task_kwargs,
            },
        )
    register(dag)
    return dag


def steps_reads(emulator: Any) -> list[Any]:
    return [r for r in emulator.requests if r.path.endswith("/steps")]


class TestAFailingOutputRead:
    """Reading the steps fails after the playbook completed: the playbook is not run again."""

    @staticmethod
    def run_quick_ok(
        emulator: Any, dag_id: str, failing_reads: int | None, **task_kwargs: Any
    ) -> tuple[Any, list[BaseException]]:
        """
        Run the ``quick-ok`` playbook in a one-task DAG while steps reads fail with HTTP 500.

        :param failing_reads: how many reads fail (``None``: all).
        :return: the DAG run and the exception of each failed try.
        """
        emulator.inject(Fault("steps", "status", status=500, times=failing_reads))
        failures: list[BaseException] = []
        dag_run = run(one_task_dag(dag_id, failures, playbook_id="quick-ok", **task_kwargs))
        return dag_run, failures

    @MODES
    def test_the_task_succeeds_with_no_output_and_a_warning(
        self, airflow_db, emulator, caplog, capsys, deferrable
    ):
        caplog.set_level(logging.WARNING)

        dag_run, failures = self.run_quick_ok(
            emulator, f"blink_output_unreadable_{deferrable}", None, retries=2, deferrable=deferrable
        )

        assert dag_run.state == "success", failures
        (execution,) = emulator.executions
        summary = xcom(dag_run, TASK_ID)
        assert summary["execution_id"] == execution["id"]
        assert summary["state_ui"] == "Completed"
        assert summary["output"] is None
        assert len(steps_reads(emulator)) == 3, "read per the retry policy (retry_limit=2)"
        # Airflow 2 logs through logging, Airflow 3's task SDK through structlog to stdout.
        logged = [r.getMessage() for r in caplog.records] + capsys.readouterr().out.splitlines()
        warnings = [line for line in logged if "its output could not be read" in line]
        assert any(execution["id"] in w and "HTTP 500" in w for w in warnings), warnings

    @MODES
    def test_require_output_fails_and_its_retry_follows_the_completed_run(
        self, airflow_db, emulator, deferrable
    ):
        dag_run, failures = self.run_quick_ok(
            emulator,
            f"blink_output_required_{deferrable}",
            3,  # the first try's three reads
            require_output=True,
            retries=1,
            deferrable=deferrable,
        )

        assert dag_run.state == "success", failures
        assert task_instance(dag_run, TASK_ID).try_number == 2
        (failure,) = failures
        assert "HTTP 500" in str(failure)
        (execution,) = emulator.executions
        assert len([r for r in emulator.requests if r.path.endswith("/execute")]) == 1, "never run again"
        summary = xcom(dag_run, TASK_ID)
        assert (summary["execution_id"], summary["output"]) == (execution["id"], {"answer": 42})


@MODES
def test_an_unknown_state_ui_with_a_failed_state_fails_the_task(airflow_db, emulator, deferrable):
    emulator.add_playbook(
        ScriptedPlaybook(
            id="odd-failure",
            workspace_id=DEMO_WORKSPACE,
            duration=0.2,
            final_state="Errored",
            final_raw_state="failed",
            error_details={"message": "the runner crashed"},
        )
    )
    failures: list[BaseException] = []
    dag = one_task_dag(
        f"blink_unknown_state_ui_{deferrable}",
        failures,
        playbook_id="odd-failure",
        deferrable=deferrable,
        timeout=20,
    )

    dag_run = run(dag)

    assert dag_run.state == "failed"
    (failure,) = failures
    assert isinstance(failure, BlinkExecutionFailed), failure
    assert "the runner crashed" in str(failure)


class TestOutputStep:
    @pytest.fixture
    def long_playbook(self, emulator: Any) -> None:
        emulator.add_playbook(
            ScriptedPlaybook(
                id="long", workspace_id=DEMO_WORKSPACE, duration=0.2, steps=75, output={"verdict": "benign"}
            )
        )

    def test_the_output_is_the_last_finished_steps_across_every_page(
        self, airflow_db, emulator, long_playbook
    ):
        dag = one_task_dag("blink_output_last_step", [], playbook_id="long")

        dag_run = run(dag)

        assert xcom(dag_run, TASK_ID)["output"] == {"verdict": "benign"}

    def test_a_step_chosen_by_id(self, airflow_db, emulator, long_playbook):
        dag = one_task_dag("blink_output_chosen_step", [], playbook_id="long", output_step_id="step_3")

        dag_run = run(dag)

        assert xcom(dag_run, TASK_ID)["output"] == {"step": 3}
