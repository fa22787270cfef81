"""
Example 1: a data pipeline that enriches upstream data with a Blink playbook.

An upstream task finds a suspicious IP; the playbook ``enrich-ioc`` scores it while the task
waits in the triggerer (deferrable); a downstream task uses the finished execution's summary.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import dag, task
from airflow_provider_blink.operators.blink import BlinkExecutePlaybookOperator

POLL_INTERVAL = float(os.environ.get("BLINK_EXAMPLE_POLL_INTERVAL", "2"))


@dag(schedule=None, start_date=datetime(2026, 1, 1), catchup=False, tags=["blink", "example"])
def example_blink_enrich_pipeline() -> None:
    @task
    def find_suspicious_ip() -> dict[str, Any]:
        return {"ioc": "203.0.113.7", "seen_in": "firewall-logs", "hits": 42}

    # [START howto_operator_blink_execute_playbook]
    enrich = BlinkExecutePlaybookOperator(
        task_id="enrich_ioc",
        playbook_id="enrich-ioc",
        input_values=find_suspicious_ip(),
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        timeout=600,
    )
    # [END howto_operator_blink_execute_playbook]

    @task
    def report(execution: dict[str, Any]) -> str:
        line = f"execution {execution['execution_id']} of {execution['playbook_id']}: {execution['state_ui']}"
        print(f"Blink {line} ({execution['execution_url']})")
        return line

    report(enrich.output)


example_blink_enrich_pipeline()
