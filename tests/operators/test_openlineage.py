"""
Lineage through Airflow's OpenLineage provider: real ``dag.test()`` runs against the emulator.

The provider's file transport writes each event the listener emits to the session's file, and the
tests enable lineage for their own DAGs only (``support.lineage``); each reads back, event by event,
the task's own START and COMPLETE (or FAIL), whose last event names the execution, and the
execution's run as the START and COMPLETE (or FAIL) of the playbook's job, the task's run its parent.
Opting in, the playbook gets the task's run in its inputs, and a retry still follows the run its
earlier try started although the ids it would send changed. Without the OpenLineage provider (the
extra) those tests skip; what must hold without it runs on every line.
"""

from __future__ import annotations

import json
import sys
import uuid
from datetime import datetime, timedelta
from importlib.util import find_spec
from typing import Any
from urllib.parse import urlsplit

import pytest

from airflow_provider_blink.endpoints import OPENLINEAGE_INPUT
from airflow_provider_blink.exceptions import BlinkConfigurationError
from airflow_provider_blink.operators.blink import BlinkExecutePlaybookOperator
from airflow_provider_blink.testing import Fault

from support.dag_runs import register, run, task_instance
from support.emulator import WORKSPACE, requests_to, url_of
from support.lineage import Lineage, kinds
from support.task_instance import RecordingTI, context_for

TASK_ID = "run_playbook"
INPUTS = {"ip": "203.0.113.7"}
MODES = pytest.mark.parametrize("deferrable", [True, False], ids=["deferrable", "in-process"])
needs_openlineage = pytest.mark.skipif(
    find_spec("airflow.providers.openlineage") is None, reason="the OpenLineage provider is not installed"
)


@pytest.fixture
def lineage() -> Lineage:
    """The events this test's runs emit (the session's transport, see ``support.lineage``)."""
    return Lineage()


def namespace_of(emulator: Any) -> str:
    """The namespace of the emulator's playbooks: its host and port, and the workspace."""
    return f"blink://{urlsplit(emulator.url).netloc}/{WORKSPACE}"


def run_id_of(emulator: Any, playbook_id: str, execution_id: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{namespace_of(emulator)}/{playbook_id}/{execution_id}"))


def epoch_ms(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["eventTime"]).timestamp() * 1000


def sent_inputs(emulator: Any) -> list[dict[str, Any]]:
    """The ``input_values`` of each start Blink received."""
    return [request.body.get("input_values") for request in requests_to(emulator, "POST", "/execute")]


def one_task_dag(dag_id: str, **task_kwargs: Any) -> Any:
    """A DAG with one Blink task whose lineage is reported, registered for ``dag.test()``."""
    from airflow.providers.openlineage.utils.selective_enable import enable_lineage

    from airflow_provider_blink.compat import DAG

    with DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
        BlinkExecutePlaybookOperator(
            task_id=TASK_ID, **{"poll_interval": 0.1, "retry_delay": timedelta(0), **task_kwargs}
        )
    enable_lineage(dag)
    register(dag)
    return dag


@needs_openlineage
class TestEvents:
    """What the listener emits for a task that ran a playbook."""

    @MODES
    def test_a_completed_execution_is_named_by_the_task_and_reported_as_its_child(
        self, airflow_db, emulator, lineage, deferrable
    ):
        dag_id = f"blink_lineage_completed_{deferrable}"

        dag_run = run(
            one_task_dag(dag_id, playbook_id="quick-ok", input_values=INPUTS, deferrable=deferrable)
        )

        assert dag_run.state == "success"
        (execution,) = emulator.executions
        namespace, execution_id = namespace_of(emulator), execution["id"]
        task_events = lineage.events(None, f"{dag_id}.{TASK_ID}")
        assert kinds(task_events) == ["START", "COMPLETE"]
        assert len({event["run"]["runId"] for event in task_events}) == 1, "one try"
        task_start, task_complete = task_events[0], task_events[-1]
        assert "blinkExecution" not in task_start["run"]["facets"], "nothing started yet"
        facets = task_complete["run"]["facets"]
        assert facets["blinkExecution"] | {"_producer": None, "_schemaURL": None} == {
            "_producer": None,
            "_schemaURL": None,
            "executionId": execution_id,
            "playbookId": "quick-ok",
            "workspaceId": WORKSPACE,
            "state": "Completed",
            "url": url_of(emulator, "quick-ok", execution_id),
        }
        assert (facets["externalQuery"]["externalQueryId"], facets["externalQuery"]["source"]) == (
            execution_id,
            namespace,
        )

        playbook_start, playbook_complete = playbook_events = lineage.events(namespace, "quick-ok")
        assert kinds(playbook_events) == ["START", "COMPLETE"]
        run_ids = {event["run"]["runId"] for event in playbook_events}
        assert run_ids == {run_id_of(emulator, "quick-ok", execution_id)}
        for event in playbook_events:
            parent = event["run"]["facets"]["parent"]
            assert parent["run"]["runId"] == task_complete["run"]["runId"]
            assert parent["job"] | {"facets": None} == task_complete["job"] | {"facets": None}
            assert parent["root"]["job"]["name"] == dag_id
            assert event["job"]["facets"]["jobType"]["jobType"] == "PLAYBOOK"
        finished = emulator.execution(execution_id)
        assert epoch_ms(playbook_start) == pytest.approx(finished["started_at"], abs=1)
        assert epoch_ms(playbook_complete) == pytest.approx(finished["finished_at"], abs=1)
        assert "blinkExecution" not in playbook_start["run"]["facets"], "how it went is known at its end"
        assert playbook_complete["run"]["facets"]["blinkExecution"]["state"] == "Completed"
        assert sent_inputs(emulator) == [INPUTS], "without opting in, the inputs go as given"

    @MODES
    def test_a_failed_execution_reports_blinks_error(self, airflow_db, emulator, lineage, deferrable):
        dag_id = f"blink_lineage_failed_{deferrable}"

        dag_run = run(one_task_dag(dag_id, playbook_id="quick-fail", deferrable=deferrable))

        assert dag_run.state == "failed"
        (execution,) = emulator.executions
        error_details = emulator.execution(execution["id"])["error_details"]
        task_events = lineage.events(None, f"{dag_id}.{TASK_ID}")
        assert kinds(task_events) == ["START", "FAIL"]
        reported = task_events[-1]["run"]["facets"]["blinkExecution"]
        assert (reported["executionId"], reported["state"]) == (execution["id"], "Failed")
        assert reported["errorDetails"] == error_details

        playbook_events = lineage.events(namespace_of(emulator), "quick-fail")
        assert kinds(playbook_events) == ["START", "FAIL"]
        facets = playbook_events[-1]["run"]["facets"]
        assert facets["blinkExecution"]["errorDetails"] == error_details
        message = facets["errorMessage"]["message"]
        assert execution["id"] in message
        assert "step 'lookup' failed: upstream returned 500" in message

    def test_fire_and_forget_names_the_execution_it_started(self, airflow_db, emulator, lineage):
        dag_id = "blink_lineage_fire_and_forget"

        run(one_task_dag(dag_id, playbook_id="slow", wait_for_completion=False))

        (execution,) = emulator.executions
        task_complete = lineage.events(None, f"{dag_id}.{TASK_ID}")[-1]
        reported = task_complete["run"]["facets"]["blinkExecution"]
        assert (reported["executionId"], reported.get("state")) == (execution["id"], None)
        assert reported["url"] == url_of(emulator, "slow", execution["id"])
        assert lineage.events(namespace_of(emulator), "slow") == [], "its end is not the task's to report"


@needs_openlineage
class TestParentRunInTheInputs:
    """``openlineage_inject_parent_job_info=True``: the playbook gets the task's run in its inputs."""

    def test_the_playbook_gets_the_tasks_run_and_its_root(self, airflow_db, emulator, lineage):
        dag_id = "blink_lineage_inject"

        run(
            one_task_dag(
                dag_id, playbook_id="quick-ok", input_values=INPUTS, openlineage_inject_parent_job_info=True
            )
        )

        (inputs,) = sent_inputs(emulator)
        context = json.loads(inputs.pop(OPENLINEAGE_INPUT))
        assert inputs == INPUTS, "the task's own inputs are kept"
        task_complete = lineage.events(None, f"{dag_id}.{TASK_ID}")[-1]
        dag_run_id = task_complete["run"]["facets"]["parent"]["run"]["runId"]  # the listener's parent
        namespace = task_complete["job"]["namespace"]
        assert context == {
            "parent": {
                "run": {"runId": task_complete["run"]["runId"]},
                "job": {"namespace": namespace, "name": f"{dag_id}.{TASK_ID}"},
                "root": {"run": {"runId": dag_run_id}, "job": {"namespace": namespace, "name": dag_id}},
            }
        }
        playbook_events = lineage.events(namespace_of(emulator), "quick-ok")
        assert kinds(playbook_events) == ["START", "COMPLETE"]
        for event in playbook_events:  # the run the playbook is told of is its run's parent
            parent = event["run"]["facets"]["parent"]
            assert parent["run"]["runId"] == context["parent"]["run"]["runId"]
            assert parent["root"]["run"]["runId"] == dag_run_id

    def test_a_retry_follows_the_run_its_earlier_try_started_with_other_ids(
        self, airflow_db, emulator, lineage
    ):
        """The first try's start is lost and it cannot look for its run: the retry finds it, although it would send other ids."""
        dag_id = "blink_lineage_inject_retry"
        emulator.inject(Fault("execute", "close_after"))  # the run starts; its answer never comes
        emulator.inject(Fault("list", "status", status=500, times=None))  # nor can that try look for it

        dag_run = run(
            one_task_dag(
                dag_id,
                playbook_id="quick-ok",
                input_values=INPUTS,
                openlineage_inject_parent_job_info=True,
                retries=1,
                on_retry_callback=lambda context: emulator.clear_faults(),
            )
        )

        assert dag_run.state == "success"
        assert task_instance(dag_run, TASK_ID).try_number == 2
        assert len(emulator.executions) == 1, "the retry followed the first try's run, starting none"
        (execution,) = emulator.executions
        (first_try_run,) = {
            json.loads(inputs[OPENLINEAGE_INPUT])["parent"]["run"]["runId"]
            for inputs in sent_inputs(emulator)
        }
        task_events = lineage.events(None, f"{dag_id}.{TASK_ID}")
        assert kinds(task_events) == ["START", "FAIL", "START", "COMPLETE"]
        assert task_events[1]["run"]["runId"] == first_try_run
        assert task_events[3]["run"]["runId"] != first_try_run, "the retry's ids differ"
        assert task_events[3]["run"]["facets"]["blinkExecution"]["executionId"] == execution["id"]


class TestWithoutOptingIn:
    """What holds on every line, with the OpenLineage provider or without it."""

    def test_opting_in_without_the_provider_fails_at_parse_time(self, monkeypatch):
        monkeypatch.setitem(sys.modules, "airflow.providers.openlineage", None)  # as if not installed

        with pytest.raises(BlinkConfigurationError) as refused:
            BlinkExecutePlaybookOperator(
                task_id="t", playbook_id="quick-ok", openlineage_inject_parent_job_info=True
            )

        message = str(refused.value)
        assert "openlineage_inject_parent_job_info" in message
        assert "airflow-provider-blink[openlineage]" in message

    def test_parsing_and_running_a_task_import_nothing_of_openlineage(self, emulator, monkeypatch):
        monkeypatch.delitem(sys.modules, "airflow_provider_blink.openlineage", raising=False)
        before = set(sys.modules)

        task = BlinkExecutePlaybookOperator(task_id="t", playbook_id="quick-ok", poll_interval=0.1)
        result = task.execute(context_for(RecordingTI()))

        assert result["state_ui"] == "Completed"
        assert [name for name in set(sys.modules) - before if "openlineage" in name] == []
