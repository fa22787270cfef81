"""
Example 1: a data pipeline that enriches upstream data with a Blink playbook.

An upstream task finds a suspicious IP; the playbook ``enrich-ioc`` scores it while the task
waits in the triggerer (deferrable); a downstream task uses the finished execution's summary.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

try:
    from airflow.sdk import dag, task
except ImportError:  # Airflow 2
    from airflow.decorators import dag, task
from airflow_provider_blink.operators.blink import BlinkExecutePlaybookOperator

# Seconds between status reads: 5 or more in a deployment (docs/troubleshooting.md); the tests set less.
POLL_INTERVAL = float(os.environ.get("BLINK_EXAMPLE_POLL_INTERVAL", "5"))


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
    def decide_response(execution: dict[str, Any]) -> dict[str, Any]:
        output = execution["output"] or {}
        decision = {
            "execution_id": execution["execution_id"],
            "state": execution["state_ui"],
            "output": output,
            "block_ip": output.get("verdict") == "malicious",
        }
        print(f"Blink result: {decision}")
        return decision

    decide_response(enrich.output)


example_blink_enrich_pipeline()
