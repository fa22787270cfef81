"""
A lookup checks every candidate on the record it read itself, and reads no more than it asked for.

The runs a start may have made are looked for after an ambiguous start (the sync hook, the async
client) and by a retry whose earlier try's start was in flight. Here Blink's list answers ignore
the filter and the ``limit`` (``support.emulator.unfiltered``): a run of another playbook or of
another workspace, with the same inputs and event, is never taken for the task's own, and at most
20 candidates are read, the rest counted as unread.
"""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_blink.exceptions import BlinkError
from airflow_provider_blink.hooks.blink import MAX_CANDIDATES
from airflow_provider_blink.operators.blink import BlinkExecutePlaybookOperator
from airflow_provider_blink.testing import Fault, ScriptedPlaybook

from support.emulator import finishing, inject, new_one, read_ids, requests_to, start_directly, unfiltered
from support.task_instance import RecordingTI, TaskStateStore, context_for, earlier_try_sent_a_start

INPUTS = {"host": "laptop-0042"}
EVENT = {"alert": {"id": 7}}
OTHER_WORKSPACE = "other-workspace"


@pytest.fixture(params=["other-playbook", "other-workspace"])
def someone_elses(request: pytest.FixtureRequest, emulator: Any) -> str:
    """A run with the task's inputs and event, of another playbook or in another workspace."""
    if request.param == "other-playbook":
        return start_directly(emulator, "quick-ok", {"input_values": INPUTS, "event": EVENT})
    emulator.add_playbook(ScriptedPlaybook(id="slow", workspace_id=OTHER_WORKSPACE, duration=3600))
    return start_directly(emulator, "slow", {"input_values": INPUTS, "event": EVENT}, OTHER_WORKSPACE)


def a_retry(store: TaskStateStore, **kwargs: Any) -> dict[str, Any]:
    context = context_for(RecordingTI(try_number=2), task_state_store=store)
    kwargs = {"playbook_id": "slow", "input_values": INPUTS, "event": EVENT, "timeout": 30, **kwargs}
    return BlinkExecutePlaybookOperator(task_id="isolate", poll_interval=0.05, **kwargs).execute(context)


def test_an_ambiguous_start_never_adopts_a_run_of_another_playbook_or_workspace(
    emulator, client, someone_elses
):
    inject(unfiltered(emulator), [Fault("execute", "close_before")])  # ours never started

    execution_id = client()("execute_playbook", "slow", input_values=INPUTS, event=EVENT)

    assert execution_id != someone_elses
    assert len(emulator.executions) == 2, "the start was sent again, and made the task's own run"


def test_a_retry_never_follows_a_run_of_another_playbook_or_workspace(emulator, someone_elses):
    store = TaskStateStore()
    earlier_try_sent_a_start(store)  # and Blink never got it
    unfiltered(emulator)

    with finishing(emulator, new_one(emulator)):
        result = a_retry(store)

    assert result["execution_id"] != someone_elses
    assert len(requests_to(emulator, "POST", "/execute")) == 2


def test_an_ambiguous_start_reads_no_more_candidates_than_it_asked_for(emulator, client):
    seeded = set(emulator.seed_executions("quick-ok", 2 * MAX_CANDIDATES))
    inject(unfiltered(emulator), [Fault("execute", "close_before")])

    with pytest.raises(BlinkError) as failure:
        client()("execute_playbook", "slow", input_values=INPUTS)

    reads = [execution_id for execution_id in read_ids(emulator) if execution_id in seeded]
    lists = len(requests_to(emulator, "GET", "/executions"))
    assert lists >= 1
    assert len(reads) <= MAX_CANDIDATES * lists, "each lookup reads at most the 20 it asked for"
    assert f"{2 * MAX_CANDIDATES} runs of playbook 'slow'" in str(failure.value), "the unread ones count"
    assert len(requests_to(emulator, "POST", "/execute")) == 1, "not sent again: its run could be unread"


def test_a_retry_reads_no_more_candidates_than_it_asked_for(emulator):
    seeded = set(emulator.seed_executions("quick-ok", 2 * MAX_CANDIDATES))
    store = TaskStateStore()
    earlier_try_sent_a_start(store)
    unfiltered(emulator)

    with finishing(emulator, new_one(emulator)):
        a_retry(store)

    reads = [execution_id for execution_id in read_ids(emulator) if execution_id in seeded]
    assert len(requests_to(emulator, "GET", "/executions")) == 1
    assert len(reads) == MAX_CANDIDATES
