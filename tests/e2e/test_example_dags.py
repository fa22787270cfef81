"""The example DAGs, run by a real Airflow deployment against Blink (the emulator).

Each run is started and followed through Airflow's REST API. For every deferrable task the suite
checks that it really waited in the triggerer: it was seen ``deferred`` while its Blink execution was
still running and no process ran it, a triggerer job ran its ``BlinkExecutionTrigger``, and that
triggerer's own log for the task says which execution fired. The enrich pipeline (the deferrable
example) is in the ``older_lines`` variant too.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from e2e.harness.blink import BlinkApi
from e2e.harness.deployment import Deployment
from e2e.harness.runs import EXAMPLE_DEFERRABLE, TRIGGER_CLASSPATH, RunObservation, fired_events, untimed

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
#: The example the lighter variant runs on the older lines.
OLDER_LINES_EXAMPLE = "example_blink_enrich_pipeline"


@pytest.mark.parametrize(
    "dag_id",
    [
        pytest.param(dag_id, marks=[pytest.mark.older_lines] if dag_id == OLDER_LINES_EXAMPLE else [])
        for dag_id in sorted(EXAMPLE_DEFERRABLE)
    ],
)
def test_example_dag_succeeds_waiting_in_the_triggerer(
    dag_id: str,
    deployment: Deployment,
    blink: BlinkApi,
    example_run: Callable[[str], RunObservation],
) -> None:
    run = example_run(dag_id)

    assert run.state == "success", deployment.api.describe_run(dag_id, run.run_id)
    assert all(ti["state"] == "success" for ti in run.task_instances), run.states
    deferrable = [key for key in run.states if key[0] in EXAMPLE_DEFERRABLE[dag_id]]
    assert deferrable, f"no deferrable task instances in {run.states}"
    for key in deferrable:
        task_id, map_index = key
        # It passed through `deferred` ...
        assert "deferred" in run.states[key], f"{key} never seen deferred: {run.states[key]}"
        assert key in run.deferrals, f"{key} was deferred, but never long enough to read its execution"
        seen = run.deferrals[key]
        # ... and while it was, Blink was still running the playbook and no process ran the task ...
        assert seen.proves_no_worker_waited, f"{key}: last reading while deferred: {seen}"
        # ... because a triggerer job ran our trigger.
        assert seen.trigger["classpath"] == TRIGGER_CLASSPATH
        assert seen.triggerer_job["job_type"] == "TriggererJob"
        # That triggerer wrote the trigger's log and fired one event, for this execution.
        trigger_logs = deployment.trigger_logs(dag_id, run.run_id, task_id, 1, map_index)
        assert list(trigger_logs) == [seen.triggerer_job["id"]]
        fired = fired_events(trigger_logs[seen.triggerer_job["id"]])
        assert len(fired) == 1, fired
        assert seen.execution_id in str(fired[0]["result"])
        # Airflow serves that log with the task's, and the API key appears in neither.
        records = deployment.api.task_log_records(dag_id, run.run_id, task_id, 1, map_index)
        assert untimed(fired[0]) in [untimed(r) for r in records]
        assert deployment.api_key not in json.dumps(records)
        # And Blink ran that execution to the end.
        assert blink.execution(seen.execution_id)["state_ui"] == "Completed"


@pytest.mark.older_lines
def test_enrich_pipeline_hands_the_playbook_output_downstream(
    blink: BlinkApi, example_run: Callable[[str], RunObservation]
) -> None:
    run = example_run("example_blink_enrich_pipeline")
    assert run.state == "success"

    decision = run.xcom("decide_response", "return_value")
    execution_id = run.xcom("enrich_ioc", "execution_id")
    assert decision["execution_id"] == execution_id
    assert decision["state"] == "Completed"
    assert decision["output"] == {"verdict": "malicious", "score": 87, "sources": ["virustotal", "abuseipdb"]}
    assert decision["block_ip"] is True
    assert blink.execution(execution_id)["inputs"] == {
        "ioc": "203.0.113.7",
        "seen_in": "firewall-logs",
        "hits": 42,
    }
