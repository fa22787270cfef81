"""The scale suite's DAGs: one task per Blink execution, mapped (as many as the run asks for) or not.

``conf = {"count": N}`` maps ``blink_scale_fan_out``'s operator over N inputs. Every task's inputs carry
the run id and the task's index, so the suite can match each Blink execution to its task through
Blink's API.

The unmapped fan-outs are ``BLINK_SCALE_UNMAPPED`` separate tasks (mapped tasks always start on a
worker): one DAG starts them from the triggerer, the other is the same DAG, deferrable only.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from airflow.sdk import task

from airflow_provider_blink.compat import DAG
from airflow_provider_blink.operators.blink import BlinkExecutePlaybookOperator

POLL_INTERVAL = float(os.environ.get("BLINK_SCALE_POLL_INTERVAL", "5"))
UNMAPPED_TASKS = int(os.environ.get("BLINK_SCALE_UNMAPPED", "50"))
COMMON: dict[str, Any] = {
    "schedule": None,
    "start_date": datetime(2026, 1, 1),
    "catchup": False,
    "max_active_tasks": 2000,
    "tags": ["blink", "e2e", "scale"],
}

with DAG("blink_scale_fan_out", **COMMON):

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

for dag_id, start_from_trigger in (
    ("blink_scale_unmapped_start_from_trigger", True),
    ("blink_scale_unmapped_deferrable", False),
):
    with DAG(dag_id, **COMMON):
        for n in range(UNMAPPED_TASKS):
            BlinkExecutePlaybookOperator(
                task_id=f"wait_{n}",
                playbook_id="scale-unmapped",
                input_values={"run_id": "{{ run_id }}", "n": n},
                deferrable=True,
                start_from_trigger=start_from_trigger,
                poll_interval=POLL_INTERVAL,
                timeout=3600,
            )

# One task started from the triggerer; the suite kills that triggerer while Blink's answer is late.
with DAG("blink_scale_start_takeover", **COMMON):
    BlinkExecutePlaybookOperator(
        task_id="start",
        playbook_id="takeover-wait",
        input_values={"run_id": "{{ run_id }}"},
        deferrable=True,
        start_from_trigger=True,
        poll_interval=POLL_INTERVAL,
        timeout=3600,
    )
