"""The scale suite's DAG: one mapped deferrable task per Blink execution, as many as the run asks for.

``conf = {"count": N}`` maps the operator over N inputs, each carrying the run id and its index so the
suite can match every Blink execution to its task through Blink's API.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from airflow.sdk import task

from airflow_provider_blink.compat import DAG
from airflow_provider_blink.operators.blink import BlinkExecutePlaybookOperator

POLL_INTERVAL = float(os.environ.get("BLINK_SCALE_POLL_INTERVAL", "5"))

with DAG(
    "blink_scale_fan_out",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_tasks=2000,
    tags=["blink", "e2e", "scale"],
):

    @task
    def inputs(**context: Any) -> list[dict[str, Any]]:
        count = int(context["dag_run"].conf.get("count", 10))
        return [{"run_id": context["run_id"], "n": n} for n in range(count)]

    BlinkExecutePlaybookOperator.partial(
        task_id="wait",
        playbook_id="{{ dag_run.conf.get('playbook_id', 'scale-wait') }}",
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        timeout=3600,
    ).expand(input_values=inputs())
