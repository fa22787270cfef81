"""Tasks that wait for their playbook in the worker, with one retry: the DAGs the worker-crash tests run."""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta
from pathlib import Path

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


def wait_at_the_gate(context: object) -> None:
    """
    Hold the try before it starts the playbook while the test keeps its gate shut.

    ``BLINK_TEST_GATE`` names a folder: the try says it arrived (``reached``) and waits while
    ``shut`` exists. Without it the try goes straight on.
    """
    gate = os.environ.get("BLINK_TEST_GATE")
    if not gate:
        return
    Path(gate, "reached").touch()
    while Path(gate, "shut").exists():
        time.sleep(0.05)


with DAG("blink_worker_crash_gated", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    BlinkExecutePlaybookOperator(
        task_id="wait_in_worker",
        playbook_id="until-finished",  # no inputs: the same request as any other run without them
        deferrable=False,
        poll_interval=0.2,
        timeout=300,
        retries=1,
        retry_delay=timedelta(0),
        pre_execute=wait_at_the_gate,
    )
