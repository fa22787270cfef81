"""Example 5: retries re-run the failed Blink execution instead of starting from scratch."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

try:
    from airflow.sdk import dag
except ImportError:  # Airflow 2
    from airflow.decorators import dag
from airflow_provider_blink.operators.blink import BlinkExecutePlaybookOperator

# Seconds between status reads: 5 or more in a deployment (docs/troubleshooting.md); the tests set less.
POLL_INTERVAL = float(os.environ.get("BLINK_EXAMPLE_POLL_INTERVAL", "5"))


@dag(schedule=None, start_date=datetime(2026, 1, 1), catchup=False, tags=["blink", "example"])
def example_blink_rerun() -> None:
    # [START howto_operator_blink_rerun]
    BlinkExecutePlaybookOperator(
        task_id="isolate_host",
        playbook_id="isolate-host",
        input_values={"hostname": "laptop-0042"},
        rerun_from_failure=True,
        retries=2,
        retry_delay=timedelta(seconds=1),
        poll_interval=POLL_INTERVAL,
    )
    # [END howto_operator_blink_rerun]


example_blink_rerun()
