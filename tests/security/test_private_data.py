"""
Nothing private leaves Airflow by accident.

The notifier passes every value it takes from Airflow through Airflow's secrets masker before it goes
to Blink (a password Airflow's log shows as ``***`` does not reach Blink verbatim). The execution
trigger's event, which Airflow stores in its database, carries what the task needs — ids, state,
timings, error details — never the execution's inputs, event or step data.
"""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_blink.compat import mask_secret
from airflow_provider_blink.hooks.blink import BlinkHook
from airflow_provider_blink.notifications.blink import BlinkNotifier
from airflow_provider_blink.triggers.blink import BlinkExecutionTrigger

from support.triggers import next_event

SECRET = "s3cr3t-db-passw0rd-91f2"
PRIVATE_INPUTS = {"api_token": "private-input-6d1e", "hostname": "laptop-0042"}
PRIVATE_EVENT = {"alert": {"raw": "private-event-7a2b"}}


def test_the_notifier_masks_every_airflow_value_it_sends(emulator):
    mask_secret(SECRET)
    ti = SimpleNamespace(
        dag_id="etl",
        task_id="load",
        map_index=-1,
        try_number=1,
        state="failed",
        log_url=f"http://airflow/log?token={SECRET}",
    )
    context: Any = {
        "ti": ti,
        "run_id": f"manual__{SECRET}",
        "exception": RuntimeError(f"login failed: password {SECRET} rejected"),
    }

    BlinkNotifier(playbook_id="quick-ok").notify(context)

    [execution] = emulator.executions
    sent = json.dumps(emulator.requests[0].body)
    assert SECRET not in sent
    assert execution["inputs"]["exception"] == "RuntimeError: login failed: password *** rejected"
    assert execution["inputs"]["log_url"] == "http://airflow/log?token=***"
    assert execution["inputs"]["run_id"] == "manual__***"
    assert execution["inputs"]["dag_id"] == "etl", "values without secrets are sent as they are"


def run_trigger(execution_id: str, **kwargs: Any) -> dict[str, Any]:
    return asyncio.run(
        next_event(BlinkExecutionTrigger(execution_id=execution_id, poll_interval=0.05, **kwargs))
    )


@pytest.mark.parametrize(
    ("playbook_id", "end_time_in", "status"),
    [("quick-ok", None, "success"), ("quick-fail", None, "failed"), ("slow", 0.3, "timeout")],
    ids=["success", "failed", "timeout"],
)
def test_the_trigger_event_carries_only_what_the_task_needs(emulator, playbook_id, end_time_in, status):
    import time

    execution_id = BlinkHook().execute_playbook(playbook_id, input_values=PRIVATE_INPUTS, event=PRIVATE_EVENT)
    end_time = None if end_time_in is None else time.time() + end_time_in

    event = run_trigger(execution_id, end_time=end_time)

    assert event["status"] == status
    text = json.dumps(event)
    assert "private-input" not in text
    assert "private-event" not in text
    execution = event["execution"]
    assert not {"inputs", "event", "step_results"} & set(execution)
    assert execution["id"] == execution_id
    assert execution["state_ui"]
    assert execution["created_at"]
    if status == "failed":
        assert execution["error_details"]["error_code"] == "STEP_FAILED"
