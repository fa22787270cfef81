"""A task that waits for its playbook in the worker, with one retry: the DAG the worker-crash tests run."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow_provider_blink.compat import DAG
from airflow_provider_blink.operators.blink import BlinkExecutePlaybookOperator

with DAG("blink_worker_crash", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    BlinkExecutePlaybookOperator(
        task_id="wait_in_worker",
        playbook_id="until-finished",
        input_values={"host": "laptop-0042"},
        deferrable=False,
        poll_interval=0.2,
        timeout=300,
        retries=1,
        retry_delay=timedelta(0),
    )
