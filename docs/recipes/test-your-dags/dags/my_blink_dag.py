"""A DAG of yours: triage an alert with the Blink playbook ``triage``."""

from __future__ import annotations

from datetime import datetime

try:
    from airflow.sdk import dag
except ImportError:  # Airflow 2
    from airflow.decorators import dag

from airflow_provider_blink.operators.blink import BlinkExecutePlaybookOperator


@dag(schedule=None, start_date=datetime(2026, 1, 1), catchup=False)
def my_blink_dag() -> None:
    BlinkExecutePlaybookOperator(
        task_id="triage",
        playbook_id="triage",
        input_values={"alert_id": "A-1042"},
    )


my_blink_dag()
