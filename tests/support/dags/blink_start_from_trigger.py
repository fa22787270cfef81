"""A task that starts in the triggerer (start_from_trigger), for the scheduler's part of the tests."""

from __future__ import annotations

from datetime import datetime

from airflow_provider_blink.compat import DAG
from airflow_provider_blink.operators.blink import BlinkExecutePlaybookOperator

with DAG("blink_start_from_trigger", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    BlinkExecutePlaybookOperator(
        task_id="start_in_triggerer",
        playbook_id="quick-ok",
        input_values={"ip": "10.0.0.1"},
        start_from_trigger=True,
        poll_interval=0.2,
        timeout=300,
    )
