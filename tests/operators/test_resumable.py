"""
A retry follows the execution an earlier try started (Airflow 3.3+ ``task_state_store``).

On older Airflow there is no store: the operator calls ``submit_job`` on every try, and follows the earlier try's execution from its own record
of the start (``test_reattach``).
"""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_blink.compat import AIRFLOW_V_3_3_PLUS
from airflow_provider_blink.operators.blink import BlinkExecutePlaybookOperator

from support.task_instance import RecordingTI, TaskStateStore, context_for

KEY = BlinkExecutePlaybookOperator.external_id_key


def a_try(store: TaskStateStore, **kwargs: Any) -> tuple[dict[str, Any], RecordingTI]:
    """One try of the task: a fresh operator and task instance, the same store."""
    ti = RecordingTI()
    op = BlinkExecutePlaybookOperator(
        task_id="t", poll_interval=0.05, **{"playbook_id": "quick-ok", **kwargs}
    )
    return op.execute(context_for(ti, task_state_store=store)), ti


def posts(emulator) -> int:
    return sum(1 for r in emulator.requests if r.method == "POST" and r.path.endswith("/execute"))


@pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="task_state_store arrived in Airflow 3.3")
class TestOnAirflow33:
    def test_the_first_try_keeps_the_execution_id_before_waiting(self, emulator):
        store = TaskStateStore()

        result, _ = a_try(store)

        assert store.values[KEY] == result["execution_id"]
        assert posts(emulator) == 1

    def test_a_retry_follows_the_running_execution(self, emulator):
        running = BlinkExecutePlaybookOperator(task_id="x", playbook_id="quick-ok").hook.execute_playbook(
            "quick-ok"
        )
        store = TaskStateStore(**{KEY: running})

        result, ti = a_try(store)

        assert result["execution_id"] == running
        assert result["state_ui"] == "Completed"
        assert posts(emulator) == 1, "no second execution"
        assert ti.pushed["execution_id"] == running, "the link points at the followed run"

    def test_a_retry_after_success_returns_the_result_without_a_new_run(self, emulator):
        store = TaskStateStore()
        first, _ = a_try(store)

        second, _ = a_try(store)

        assert second["execution_id"] == first["execution_id"]
        assert second["output"] == {"answer": 42}
        assert posts(emulator) == 1

    def test_a_retry_after_a_failed_execution_starts_a_new_one(self, emulator):
        store = TaskStateStore()
        with pytest.raises(Exception, match="ended in state 'Failed'"):
            a_try(store, playbook_id="quick-fail")
        failed = store.values[KEY]

        with pytest.raises(Exception, match="ended in state 'Failed'"):
            a_try(store, playbook_id="quick-fail")

        assert posts(emulator) == 2
        assert store.values[KEY] != failed

    def test_durable_false_always_starts_a_new_run(self, emulator):
        store = TaskStateStore()
        a_try(store, durable=False)
        a_try(store, durable=False)

        assert posts(emulator) == 2
        assert KEY not in store.values
