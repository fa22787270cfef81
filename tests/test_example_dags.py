"""The example DAGs import cleanly and run to success against the emulator, deferred and in-process."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_blink.compat import AIRFLOW_V_3_0_PLUS
from airflow_provider_blink.operators.blink import BlinkExecutePlaybookOperator
from airflow_provider_blink.sensors.blink import BlinkExecutionSensor
from airflow_provider_blink.testing import BlinkEmulator

from support.dag_runs import dagbag, extra_link, on_defer, register, run, task_instance, xcom
from support.emulator import finished_once_read, url_of

EXAMPLE_DAGS = Path(__file__).resolve().parent.parent / "example_dags"
BLINK_TASKS = (BlinkExecutePlaybookOperator, BlinkExecutionSensor)


def example_dag(dag_id: str) -> Any:
    return dagbag(EXAMPLE_DAGS).dags[dag_id]


def blink_tasks(dag: Any) -> list[Any]:
    tasks = [t for t in dag.tasks if issubclass(getattr(t, "operator_class", type(t)), BLINK_TASKS)]
    assert tasks, f"{dag.dag_id} has no Blink task"
    return tasks


def wait_in_process(dag: Any) -> None:
    """Make every Blink task of ``dag`` wait in the worker (poke mode) instead of deferring."""
    for task in blink_tasks(dag):
        if hasattr(task, "partial_kwargs"):  # a mapped task: its operators are built at run time
            task.partial_kwargs["deferrable"] = False
        else:
            task.deferrable = False
        if issubclass(getattr(task, "operator_class", type(task)), BlinkExecutionSensor):
            task.mode = "poke"


@pytest.fixture
def deferrals(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record which Blink tasks deferred (the real ``defer`` still runs)."""
    seen: list[str] = []
    on_defer(monkeypatch, BLINK_TASKS, lambda task, _trigger: seen.append(task.task_id))
    return seen


def test_example_dags_import_without_errors():
    bag = dagbag(EXAMPLE_DAGS)

    assert bag.import_errors == {}
    expected = {
        "example_blink_enrich_pipeline",
        "example_blink_fire_and_forget",
        "example_blink_mapped",
        "example_blink_notifier",
        "example_blink_rerun",
    }
    if AIRFLOW_V_3_0_PLUS:  # event-driven scheduling (AssetWatcher) exists from Airflow 3.0
        expected.add("example_blink_event_driven")
    assert set(bag.dag_ids) == expected


def test_notifier_example_runs_and_starts_nothing_when_all_is_well(airflow_db, emulator):
    dag_run = run(example_dag("example_blink_notifier"))

    assert dag_run.state == "success"
    assert emulator.executions == [], "the notifier only fires on failure"


def test_rerun_example_succeeds_on_the_first_try_from_scratch(airflow_db, emulator):
    dag_run = run(example_dag("example_blink_rerun"))

    assert dag_run.state == "success"
    (execution,) = emulator.executions
    assert execution["past_exec_ref"] == ""


MODES = pytest.mark.parametrize("deferrable", [True, False], ids=["deferrable", "in-process"])


def prepare(dag_id: str, deferrable: bool) -> Any:
    dag = example_dag(dag_id)
    if not deferrable:
        wait_in_process(dag)
    return dag


@MODES
def test_enrich_pipeline_runs_to_success(airflow_db, emulator, deferrals, deferrable):
    dag = prepare("example_blink_enrich_pipeline", deferrable)

    dag_run = run(dag)

    assert dag_run.state == "success"
    (execution,) = emulator.executions
    assert emulator.execution(execution["id"])["state_ui"] == "Completed"
    assert execution["inputs"] == {"ioc": "203.0.113.7", "seen_in": "firewall-logs", "hits": 42}
    summary = xcom(dag_run, "enrich_ioc")
    assert summary["state_ui"] == "Completed"
    assert summary["execution_id"] == execution["id"]
    url = url_of(emulator, "enrich-ioc", execution["id"])
    assert summary["execution_url"] == url
    assert xcom(dag_run, "enrich_ioc", key="execution_url") == url
    assert extra_link(dag, dag_run, "enrich_ioc") == url
    assert summary["output"] == {"verdict": "malicious", "score": 87, "sources": ["virustotal", "abuseipdb"]}
    decision = xcom(dag_run, "decide_response")
    assert decision["execution_id"] == execution["id"]
    assert decision["block_ip"] is True
    assert deferrals == (["enrich_ioc"] if deferrable else [])


@pytest.fixture
def isolations_held(emulator: BlinkEmulator) -> Iterator[None]:
    """
    Hold each isolate-host run going until it has been read twice: the task's first look finds it running.

    Its demo duration (1 s) is no guarantee on a busy machine: a task whose first look comes later (the
    start record and the XCom pushes go through Airflow's API first) finds it completed and does not defer.
    """
    with finished_once_read(emulator, {"isolate-host": ("Completed", None)}):
        yield


@MODES
def test_fire_and_forget_runs_to_success(airflow_db, emulator, isolations_held, deferrals, deferrable):
    dag = prepare("example_blink_fire_and_forget", deferrable)

    dag_run = run(dag)

    assert dag_run.state == "success"
    (execution,) = emulator.executions
    assert emulator.execution(execution["id"])["state_ui"] == "Completed"
    assert execution["inputs"] == {"hostname": "laptop-0042"}
    assert xcom(dag_run, "start_isolation", key="execution_id") == execution["id"]
    record = xcom(dag_run, "wait_for_isolation")
    assert record["id"] == execution["id"]
    assert record["state_ui"] == "Completed"
    url = url_of(emulator, "isolate-host", execution["id"])
    assert extra_link(dag, dag_run, "start_isolation") == url
    assert extra_link(dag, dag_run, "wait_for_isolation") == url, "the sensor's Blink link works too"
    assert deferrals == (["wait_for_isolation"] if deferrable else [])


@MODES
def test_mapped_runs_one_execution_per_host(airflow_db, emulator, isolations_held, deferrals, deferrable):
    dag = prepare("example_blink_mapped", deferrable)

    dag_run = run(dag)

    assert dag_run.state == "success"
    assert len(emulator.executions) == 3
    assert {e["id"]: emulator.execution(e["id"])["state_ui"] for e in emulator.executions} == {
        e["id"]: "Completed" for e in emulator.executions
    }
    assert sorted(e["inputs"]["hostname"] for e in emulator.executions) == [
        "build-agent-7",
        "laptop-0042",
        "laptop-0043",
    ]
    summaries = [xcom(dag_run, "isolate_host", map_index=i) for i in range(3)]
    assert {s["execution_id"] for s in summaries} == {e["id"] for e in emulator.executions}
    assert all(s["state_ui"] == "Completed" for s in summaries)
    assert len(deferrals) == (3 if deferrable else 0)


def failing_dag(deferrable: bool, failures: list[BaseException]) -> Any:
    from airflow_provider_blink.compat import DAG

    with DAG(
        f"blink_failing_playbook_{'deferrable' if deferrable else 'in_process'}",
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
    ) as dag:
        BlinkExecutePlaybookOperator(
            task_id="run_failing_playbook",
            playbook_id="failing-playbook",
            deferrable=deferrable,
            poll_interval=0.2,
            on_failure_callback=lambda context: failures.append(context["exception"]),
        )
    return dag


@MODES
def test_failing_playbook_fails_the_task_with_blinks_error(airflow_db, emulator, deferrable):
    failures: list[BaseException] = []

    dag = failing_dag(deferrable, failures)
    register(dag)

    dag_run = run(dag)

    assert dag_run.state == "failed"
    assert task_instance(dag_run, "run_failing_playbook").state == "failed"
    (execution,) = emulator.executions
    assert emulator.execution(execution["id"])["state_ui"] == "Failed"
    (error,) = failures
    assert execution["id"] in str(error)
    assert "step 'query_siem' failed: SIEM returned 500" in str(error)
    assert url_of(emulator, "failing-playbook", execution["id"]) in str(error)
