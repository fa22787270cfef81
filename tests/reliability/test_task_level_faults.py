"""What a fault does to a whole task, run for real with ``dag.test()`` against the emulator.

The hook-level tables (tests/test_retries.py, test_every_call_under_faults.py) say which error comes
out of one call; these tests check what Airflow then does with the task: a request Blink refuses
fails the task at once without spending its Airflow retries; a playbook run that fails is an
ordinary failure, so retries apply; Blink going away while the task waits fails the task saying
Blink was unreachable, never that the playbook failed; and an answer to "start the playbook"
that is lost on the way back still leaves exactly one execution, which the task then follows.

Both Airflow 2.11 and 3.x ``dag.test()`` run a failed try again at once when the task has retries
left and ``retry_delay`` is 0, and record ``try_number``/``max_tries`` on the task instance.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from airflow_provider_blink.compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_1_PLUS, AirflowFailException
from airflow_provider_blink.exceptions import (
    BlinkAuthenticationError,
    BlinkError,
    BlinkExecutionFailed,
    BlinkNotFoundError,
)
from airflow_provider_blink.operators.blink import BlinkExecutePlaybookOperator
from airflow_provider_blink.testing import BlinkEmulator, Fault

from support.connections import connection_json
from support.dag_runs import register, run, task_instance, xcom
from support.emulator import SHORT_TIMEOUT, SLOWER_THAN_TIMEOUT, requests_to
from support.outages import outage_once_waiting
from support.waiting import wait_for

TASK_ID = "run_playbook"


class Outcomes:
    """What Airflow told the task's callbacks: the exception of each failed try."""

    def __init__(self) -> None:
        self.retried: list[BaseException] = []
        self.failed: list[BaseException] = []

    def callbacks(self) -> dict[str, Callable[[Any], None]]:
        return {
            "on_retry_callback": lambda context: self.retried.append(context["exception"]),
            "on_failure_callback": lambda context: self.failed.append(context["exception"]),
        }


def one_task_dag(dag_id: str, outcomes: Outcomes, **task_kwargs: Any) -> Any:
    """A DAG with one Blink task; ``dag.test()`` can run it on either Airflow version."""
    from airflow_provider_blink.compat import DAG

    with DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
        BlinkExecutePlaybookOperator(
            task_id=TASK_ID,
            **{"poll_interval": 0.1, "retry_delay": timedelta(0), **outcomes.callbacks(), **task_kwargs},
        )
    register(dag)
    return dag


def executes(emu: BlinkEmulator) -> list[Any]:
    return requests_to(emu, "POST", "/execute")


# -- a refused request: no retry, the task's own retries untouched --------------------------------


@pytest.mark.parametrize(
    ("conn_id", "playbook_id", "error", "status"),
    [
        ("blink_wrong_key", "quick-ok", BlinkAuthenticationError, 401),
        ("blink_default", "no-such-playbook", BlinkNotFoundError, 404),
    ],
    ids=["401-wrong-key", "404-unknown-playbook"],
)
def test_a_refused_start_fails_in_one_try_without_spending_task_retries(
    airflow_db, emulator, monkeypatch, conn_id, playbook_id, error, status
):
    monkeypatch.setenv("AIRFLOW_CONN_BLINK_WRONG_KEY", connection_json(emulator, key="not-the-key"))
    outcomes = Outcomes()
    dag = one_task_dag(
        f"blink_refused_{error.__name__}",
        outcomes,
        playbook_id=playbook_id,
        blink_conn_id=conn_id,
        retries=3,
        deferrable=True,
    )

    dag_run = run(dag)

    ti = task_instance(dag_run, TASK_ID)
    assert dag_run.state == "failed"
    assert ti.state == "failed", "not up_for_retry: the task's retries were not spent"
    assert ti.try_number == 1
    assert ti.max_tries == 3
    assert outcomes.retried == []
    (failure,) = outcomes.failed
    assert isinstance(failure, error)
    assert isinstance(failure, AirflowFailException)
    assert f"HTTP {status}" in str(failure)
    assert len(executes(emulator)) == 1, "the hook did not retry either"
    assert emulator.executions == []


# -- a failed playbook run: an ordinary failure ------------------------------------------------------


#: Airflow 3.0 resumes a deferred task's retry with the earlier try's event instead of running it anew
#: (apache/airflow#56704, fixed in 3.1). The operator starts over when its deferral kwargs say another try
#: deferred, but ``dag.test()`` drops those kwargs on every line (a triggerer keeps them), so under
#: ``dag.test()`` 3.0's retry cannot be told apart; unit tests cover the guard.
STALE_RESUME_ON_3_0 = pytest.mark.skipif(
    AIRFLOW_V_3_0_PLUS and not AIRFLOW_V_3_1_PLUS,
    reason="a deferred task's retry runs anew under dag.test() from Airflow 3.1 (apache/airflow#56704)",
)


@pytest.mark.parametrize(
    "deferrable",
    [pytest.param(True, id="deferrable", marks=STALE_RESUME_ON_3_0), pytest.param(False, id="in-process")],
)
def test_a_failed_execution_is_an_ordinary_failure_and_task_retries_apply(airflow_db, emulator, deferrable):
    outcomes = Outcomes()
    dag = one_task_dag(
        f"blink_failed_execution_retried_{deferrable}",
        outcomes,
        playbook_id="quick-fail",
        retries=1,
        deferrable=deferrable,
    )

    dag_run = run(dag)

    ti = task_instance(dag_run, TASK_ID)
    assert dag_run.state == "failed"
    assert ti.state == "failed"
    assert ti.try_number == 2, "the retry ran: a failed playbook is worth another try"
    first, second = emulator.executions
    assert [first["state_ui"], second["state_ui"]] == ["Failed", "Failed"]
    (retried,) = outcomes.retried
    (failed,) = outcomes.failed
    assert isinstance(retried, BlinkExecutionFailed)
    assert isinstance(failed, BlinkExecutionFailed)
    assert not isinstance(failed, AirflowFailException)
    assert first["id"] in str(retried)
    assert second["id"] in str(failed)
    assert "step 'lookup' failed: upstream returned 500" in str(failed)


# -- Blink unreachable while the task waits ------------------------------------------------------


@pytest.fixture
def outage_while_waiting(emulator) -> Iterator[None]:
    """From the first successful read of the execution on, every read answers 503 (Blink is down)."""
    with outage_once_waiting(emulator):
        yield


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferrable", "in-process"])
def test_blink_unreachable_while_waiting_fails_the_task_as_unreachable_not_as_a_failed_run(
    airflow_db, emulator, outage_while_waiting, deferrable
):
    outcomes = Outcomes()
    dag = one_task_dag(
        f"blink_unreachable_while_waiting_{deferrable}",
        outcomes,
        playbook_id="slow",
        deferrable=deferrable,
        error_budget=0.5,
    )

    dag_run = run(dag)

    ti = task_instance(dag_run, TASK_ID)
    assert dag_run.state == "failed"
    assert ti.state == "failed"
    (execution,) = emulator.executions
    (failure,) = outcomes.failed
    assert isinstance(failure, BlinkError)
    assert not isinstance(failure, BlinkExecutionFailed), "Blink being down is not the playbook failing"
    assert not isinstance(failure, AirflowFailException), "a transient outage may be worth a task retry"
    assert "Blink kept failing for 0.5s" in str(failure)
    assert execution["id"] in str(failure)
    assert "HTTP 503" in str(failure), "the last error is quoted"
    assert len([r for r in requests_to(emulator, "GET", execution["id"]) if r.status == 503]) >= 2
    assert emulator.execution(execution["id"])["state_ui"] == "In Progress", "nobody claimed it ended"


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferrable", "in-process"])
def test_blink_failing_at_the_first_look_after_the_start_is_ridden_out(airflow_db, emulator, deferrable):
    emulator.inject(Fault("get", "status", status=503, times=3))  # the first read's attempts (retry_limit 2)
    outcomes = Outcomes()
    dag = one_task_dag(
        f"blink_first_look_fails_{deferrable}", outcomes, playbook_id="quick-ok", deferrable=deferrable
    )

    dag_run = run(dag)

    assert outcomes.failed == []
    assert dag_run.state == "success"
    (execution,) = emulator.executions
    assert [r.status for r in requests_to(emulator, "GET", execution["id"])][:4] == [503, 503, 503, 200]
    assert xcom(dag_run, TASK_ID)["state_ui"] == "Completed"
    assert len(executes(emulator)) == 1


# -- the answer to "start" is lost: one execution, and the task follows it --------------------------


@pytest.mark.parametrize(
    "fault",
    [
        Fault("execute", "close_after"),
        Fault("execute", "status_after", status=502),
        Fault("execute", "slow_after", delay=SLOWER_THAN_TIMEOUT),
    ],
    ids=["dropped-after-starting", "502-after-starting", "answer-slower-than-timeout"],
)
def test_a_lost_start_answer_leaves_one_execution_which_the_task_follows(
    airflow_db, emulator, monkeypatch, fault
):
    monkeypatch.setenv("AIRFLOW_CONN_BLINK_DEFAULT", connection_json(emulator, timeout=SHORT_TIMEOUT))
    emulator.inject(fault)
    outcomes = Outcomes()
    dag = one_task_dag(
        f"blink_lost_start_answer_{fault.kind}", outcomes, playbook_id="quick-ok", deferrable=True, retries=2
    )

    dag_run = run(dag)

    ti = task_instance(dag_run, TASK_ID)
    assert dag_run.state == "success", outcomes.retried
    assert ti.state == "success"
    assert ti.try_number == 1
    (execution,) = emulator.executions
    wait_for(lambda: executes(emulator))  # a late answer is logged when it is finally sent
    assert len(executes(emulator)) == 1, "the start was not sent again"
    assert xcom(dag_run, TASK_ID, key="execution_id") == execution["id"]
    summary = xcom(dag_run, TASK_ID)
    assert summary["execution_id"] == execution["id"]
    assert summary["state_ui"] == "Completed"
    assert summary["output"] == {"answer": 42}
    assert emulator.execution(execution["id"])["state_ui"] == "Completed"
