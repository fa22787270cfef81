"""Example 3: one playbook execution per input with dynamic task mapping."""

from __future__ import annotations

import os
from datetime import datetime

try:
    from airflow.sdk import dag
except ImportError:  # Airflow 2
    from airflow.decorators import dag
from airflow_provider_blink.operators.blink import BlinkExecutePlaybookOperator

# Seconds between status reads: 5 or more in a deployment (docs/troubleshooting.md); the tests set less.
POLL_INTERVAL = float(os.environ.get("BLINK_EXAMPLE_POLL_INTERVAL", "5"))
HOSTS = ["laptop-0042", "laptop-0043", "build-agent-7"]


@dag(schedule=None, start_date=datetime(2026, 1, 1), catchup=False, tags=["blink", "example"])
def example_blink_mapped() -> None:
    # [START howto_operator_blink_mapped]
    BlinkExecutePlaybookOperator.partial(
        task_id="isolate_host",
        playbook_id="isolate-host",
        deferrable=True,
        poll_interval=POLL_INTERVAL,
    ).expand(input_values=[{"hostname": host} for host in HOSTS])
    # [END howto_operator_blink_mapped]


example_blink_mapped()
