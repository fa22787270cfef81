"""Test-only DAGs the end-to-end suite deploys next to the example DAGs.

Each passes ``{"run_id": "{{ run_id }}"}`` as playbook input so the suite can count, through Blink's
API, exactly the executions one DAG run started. The playbook comes from the run's ``conf`` so one
DAG serves several tests, each with its own scripted playbook.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow_provider_blink.compat import AIRFLOW_V_3_0_PLUS, DAG, task
from airflow_provider_blink.operators.blink import BlinkExecutePlaybookOperator
from airflow_provider_blink.sensors.blink import BlinkExecutionSensor

POLL_INTERVAL = float(os.environ.get("BLINK_EXAMPLE_POLL_INTERVAL", "2"))
PLAYBOOK = "{{ dag_run.conf.get('playbook_id', 'long-wait') }}"
RUN_INPUT = {"run_id": "{{ run_id }}"}
COMMON: dict[str, Any] = {
    "schedule": None,
    "start_date": datetime(2026, 1, 1),
    "catchup": False,
    "tags": ["blink", "e2e"],
}
#: A task that starts the run's playbook and waits for it to end.
WAIT: dict[str, Any] = {
    "playbook_id": PLAYBOOK,
    "input_values": RUN_INPUT,
    "poll_interval": POLL_INTERVAL,
    "timeout": 600,
}

# Waits in the triggerer; the suite restarts the triggerer meanwhile.
with DAG("blink_e2e_deferred_wait", **COMMON):
    BlinkExecutePlaybookOperator(task_id="wait_in_triggerer", deferrable=True, **WAIT)

# Waits in the worker (not deferrable), one retry; the suite kills the worker meanwhile.
with DAG("blink_e2e_worker_wait", **COMMON):
    BlinkExecutePlaybookOperator(
        task_id="wait_in_worker", deferrable=False, retries=1, retry_delay=timedelta(seconds=1), **WAIT
    )

# The same with durable=False: a retry after the worker dies starts its own run.
with DAG("blink_e2e_worker_wait_fresh", **COMMON):
    BlinkExecutePlaybookOperator(
        task_id="wait_in_worker",
        deferrable=False,
        durable=False,
        retries=1,
        retry_delay=timedelta(seconds=1),
        **WAIT,
    )

# Waits in the triggerer, durable=False, one retry; the suite ends the first try's run meanwhile.
with DAG("blink_e2e_deferred_retry", **COMMON):
    BlinkExecutePlaybookOperator(
        task_id="wait_in_triggerer",
        deferrable=True,
        durable=False,
        retries=1,
        retry_delay=timedelta(seconds=1),
        **WAIT,
    )

# Starts a playbook fire-and-forget and watches it with a deferrable sensor.
with DAG("blink_e2e_sensor_wait", **COMMON):
    start = BlinkExecutePlaybookOperator(
        task_id="start",
        playbook_id=PLAYBOOK,
        input_values=RUN_INPUT,
        wait_for_completion=False,
    )
    watch = BlinkExecutionSensor(
        task_id="watch",
        execution_id="{{ ti.xcom_pull(task_ids='start', key='execution_id') }}",
        deferrable=True,
        poke_interval=POLL_INTERVAL,
        timeout=600,
    )
    start >> watch

# Two multi-step playbooks at once, waiting in the triggerer: each task logs its run's steps as they
# start and end (the trigger, every 2 s at most) and as a table at the end; "failing-step" fails at
# its step 2.
with DAG("blink_e2e_steps", **COMMON):
    for task_id, playbook_id in (("triage", "triage-alert"), ("fail_at_step_2", "failing-step")):
        BlinkExecutePlaybookOperator(
            task_id=task_id,
            playbook_id=playbook_id,
            input_values=RUN_INPUT,
            deferrable=True,
            poll_interval=POLL_INTERVAL,
            timeout=600,
            log_progress=True,
            progress_interval=2,
        )

# Started in the triggerer (start_from_trigger): the scheduler defers the task at once, the trigger
# starts the playbook, and a run that succeeds ends the task there (Airflow 2.11 and 3.3+; 3.0-3.2
# start it on a worker). No template in the request: Airflow 2.11's triggerer renders none, and the
# task would start on a worker; each DAG has a playbook of its own instead of a run_id input. The suite
# SIGKILLs the triggerer right after Blink has the run (one retry, which the kill must not cost).
# A downstream task pulls what the trigger pushed, as a worker's task would have pushed it.
with DAG("blink_e2e_start_from_trigger", **COMMON):
    started_in_triggerer = BlinkExecutePlaybookOperator(
        task_id="start_in_triggerer",
        playbook_id="start-from-trigger",
        start_from_trigger=True,
        retries=1,
        retry_delay=timedelta(seconds=1),
        poll_interval=POLL_INTERVAL,
        timeout=600,
    )

    @task
    def use_the_summary(summary: Any, **context: Any) -> str:
        """Fail unless the summary pulls as a dict, and the execution id as the summary's."""
        execution_id = context["ti"].xcom_pull(task_ids="start_in_triggerer", key="execution_id")
        if not isinstance(summary, dict) or summary.get("execution_id") != execution_id:
            raise ValueError(f"pulled return_value {summary!r} and execution_id {execution_id!r}")
        return str(execution_id)

    use_the_summary(started_in_triggerer.output)

# The same on a playbook that fails at its step 2, without retries: the task resumes on a worker to fail.
with DAG("blink_e2e_start_from_trigger_fails", **COMMON):
    BlinkExecutePlaybookOperator(
        task_id="start_in_triggerer",
        playbook_id="start-from-trigger-fails",
        start_from_trigger=True,
        poll_interval=POLL_INTERVAL,
        timeout=600,
    )

# Scheduled by Blink itself: one asset event per finished execution of "event-source" (Airflow 3:
# asset watchers).
if AIRFLOW_V_3_0_PLUS:
    from airflow.sdk import Asset, AssetWatcher

    from airflow_provider_blink.triggers.blink_events import BlinkExecutionEventTrigger

    EVENT_SOURCE_DONE = Asset(
        "blink_e2e_event_source_finished",
        watchers=[
            AssetWatcher(
                name="blink_e2e_event_source_watcher",
                trigger=BlinkExecutionEventTrigger(
                    playbook_id="event-source", poll_interval=1.0, lookback=600
                ),
            )
        ],
    )

    with DAG("blink_e2e_event_driven", **{**COMMON, "schedule": [EVENT_SOURCE_DONE]}):

        @task
        def record_executions(**context) -> list[str]:
            return [
                event.extra["payload"]["execution_id"]
                for events in context["triggering_asset_events"].values()
                for event in events
            ]

        record_executions()
