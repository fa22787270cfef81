"""
Example 2: start a playbook fire-and-forget, then wait for it with a deferrable sensor.

Useful when other work can run between starting the playbook and needing its result.
"""

from __future__ import annotations

import os
from datetime import datetime

try:
    from airflow.sdk import dag
except ImportError:  # Airflow 2
    from airflow.decorators import dag
from airflow_provider_blink.operators.blink import BlinkExecutePlaybookOperator
from airflow_provider_blink.sensors.blink import BlinkExecutionSensor

# Seconds between status reads: 5 or more in a deployment (docs/troubleshooting.md); the tests set less.
POLL_INTERVAL = float(os.environ.get("BLINK_EXAMPLE_POLL_INTERVAL", "5"))


@dag(schedule=None, start_date=datetime(2026, 1, 1), catchup=False, tags=["blink", "example"])
def example_blink_fire_and_forget() -> None:
    # [START howto_sensor_blink_execution]
    start = BlinkExecutePlaybookOperator(
        task_id="start_isolation",
        playbook_id="isolate-host",
        input_values={"hostname": "laptop-0042"},
        wait_for_completion=False,
    )
    wait = BlinkExecutionSensor(
        task_id="wait_for_isolation",
        execution_id="{{ ti.xcom_pull(task_ids='start_isolation', key='execution_id') }}",
        deferrable=True,
        poke_interval=POLL_INTERVAL,
        timeout=600,
    )
    # [END howto_sensor_blink_execution]
    start >> wait


example_blink_fire_and_forget()
