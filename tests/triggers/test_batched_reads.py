"""
BlinkExecutionTrigger's batched reads: triggers in one event loop read their executions together.

Each test runs real triggers in the test's loop against the emulator and counts what it received:
list calls (RQL ``$or`` on ``id``, blink-api-contract.md#documented-rql and #documented-list) and single GETs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlencode

import pytest

# Imported here, not inside the triggers' first run: an import would count as a slow callback.
import airflow_provider_blink.hooks.blink  # noqa: F401
from airflow_provider_blink import api
from airflow_provider_blink.hooks import poller
from airflow_provider_blink.operators.blink import BlinkExecutePlaybookOperator
from airflow_provider_blink.sensors.blink import BlinkExecutionSensor
from airflow_provider_blink.tasks import GET_ONLY_FIELDS
from airflow_provider_blink.testing import BlinkEmulator, Fault
from airflow_provider_blink.triggers.blink import BlinkExecutionTrigger

from support.connections import connection_json
from support.emulator import SHORT_TIMEOUT, SLOWER_THAN_TIMEOUT, listed_ids, read_ids
from support.emulator import start_directly as start
from support.logs import times_logged
from support.task_instance import context_for
from support.triggers import next_event
from support.waiting import wait_until

INTERVAL = 0.3


@pytest.fixture(autouse=True)
def rounds_gather_for_half_an_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reads due within 0.15 s share a round (by default 5% of the interval): room for a busy machine."""
    monkeypatch.setattr(poller, "GATHER_SHARE", 0.5)


def trigger_for(execution_id: str, **settings: Any) -> BlinkExecutionTrigger:
    return BlinkExecutionTrigger(execution_id=execution_id, **{"poll_interval": INTERVAL, **settings})


def slow_runs(emulator: BlinkEmulator, count: int) -> list[str]:
    return [start(emulator, "slow") for _ in range(count)]


async def events_of(triggers: Iterable[BlinkExecutionTrigger]) -> list[dict[str, Any]]:
    return list(await asyncio.wait_for(asyncio.gather(*(next_event(t) for t in triggers)), 30))


def watch(ids: Sequence[str], **settings: Any) -> asyncio.Future[list[dict[str, Any]]]:
    """Start one trigger per execution, all in this loop; the future of their events, in order."""
    return asyncio.ensure_future(events_of(trigger_for(i, **settings) for i in ids))


def finish(emulator: BlinkEmulator, ids: Iterable[str]) -> None:
    for execution_id in ids:
        emulator.finish(execution_id)


def list_statuses(emulator: BlinkEmulator) -> list[int]:
    return [r.status for r in emulator.requests if r.endpoint == "list"]


async def test_one_list_call_per_round_reads_every_waiting_execution(emulator):
    ids = slow_runs(emulator, 5)
    watching = watch(ids)
    await wait_until(lambda: len(listed_ids(emulator)) >= 3)
    finish(emulator, ids)

    events = await watching

    assert [e["status"] for e in events] == ["success"] * 5
    assert all(call == set(ids) for call in listed_ids(emulator)), "every round: one call for all five"
    assert read_ids(emulator) == [], "no GET: a finished run's event carries its list item"
    assert [e["execution"]["state_ui"] for e in events] == ["Completed"] * 5
    assert poller.poller_count() == 0, "the last trigger to leave closed the poller"


async def batched_events(emulator: BlinkEmulator, count: int) -> tuple[list[str], list[dict[str, Any]]]:
    """Executions watched through one poller until they finish: their ids, and events from list items."""
    ids = slow_runs(emulator, count)
    watching = watch(ids)
    await wait_until(lambda: len(listed_ids(emulator)) >= 1)
    finish(emulator, ids)
    events = await watching
    assert not set(GET_ONLY_FIELDS) & set(events[0]["execution"]), (
        "a list item lacks them (blink-api-contract.md#documented-list)"
    )
    return ids, events


async def test_the_tasks_result_after_a_batched_wait_is_the_single_gets(emulator):
    (run_id, watched_id), (run_event, watch_event) = await batched_events(emulator, 2)
    run = BlinkExecutePlaybookOperator(task_id="run", playbook_id="slow")
    watch_task = BlinkExecutionSensor(task_id="watch", execution_id=watched_id)

    results = {
        run_id: run.execute_complete(context_for(), run_event, run_id),
        watched_id: watch_task.execute_complete(context_for(), watch_event),
    }

    for execution_id, result in results.items():
        whole = emulator.execution(execution_id)
        assert {f: result[f] for f in GET_ONLY_FIELDS} == {f: whole[f] for f in GET_ONLY_FIELDS}
        assert result["state_ui"] == "Completed"
    assert sorted(read_ids(emulator)) == sorted(results), "one GET each, by the task in the worker"


async def test_a_failed_read_of_the_rest_keeps_the_result_and_says_so(emulator, caplog, capfd):
    caplog.set_level(logging.WARNING)
    ids, events = await batched_events(emulator, 2)
    emulator.inject(Fault("get", "status", status=404))

    result = BlinkExecutePlaybookOperator(task_id="run", playbook_id="slow").execute_complete(
        context_for(), events[0], ids[0]
    )

    assert (result["execution_id"], result["state_ui"]) == (ids[0], "Completed")
    assert not set(GET_ONLY_FIELDS) & set(result)
    assert times_logged(caplog, capfd, "its result lacks playbook_name, display_name, duration") == 1


async def test_a_large_round_is_split_into_calls_with_short_urls(emulator, monkeypatch):
    # 150 triggers take a while to start on a busy machine: the first reads wait up to an interval for
    # the rest, so the first round holds every execution.
    monkeypatch.setattr(poller, "GATHER_SECONDS", 3.0)
    monkeypatch.setattr(poller, "GATHER_SHARE", 1.0)
    ids = slow_runs(emulator, 150)
    watching = watch(ids, poll_interval=3.0)
    await wait_until(lambda: listed_ids(emulator) and set().union(*listed_ids(emulator)) == set(ids))
    finish(emulator, ids)

    events = await watching

    assert {e["status"] for e in events} == {"success"}
    first_round = listed_ids(emulator)[: len(poller.id_chunks(ids))]
    assert len(first_round) >= 2, "150 ids do not fit one URL"
    assert set().union(*first_round) == set(ids)
    assert sum(map(len, first_round)) == len(ids), "each id asked for once per round"
    for record in emulator.requests:
        if record.endpoint == "list":
            q = json.loads(record.query["q"])
            assert q["limit"] == len(q["filter"]["$or"]) <= 1000
            assert len(record.path) + len(urlencode(record.query)) < 7 * 1024


async def test_a_list_call_that_fails_ends_only_its_own_waits(emulator):
    ids = slow_runs(emulator, 150)  # two list calls a round
    emulator.inject(Fault("list", "status", status=404, times=1))  # a 404 is not retried: one call
    watching = watch(ids)
    await wait_until(lambda: len(listed_ids(emulator)) >= 4)
    finish(emulator, ids)

    events = await watching

    [refused] = [
        asked
        for asked, status in zip(listed_ids(emulator), list_statuses(emulator), strict=True)
        if status == 404
    ]
    ended = {e["execution_id"] for e in events if e["status"] == "error"}
    assert ended == refused, "the waits of the refused call, and no other"
    assert sum(e["status"] == "success" for e in events) == len(ids) - len(refused) > 0


async def test_an_id_missing_from_the_answer_is_read_with_get(emulator):
    running = slow_runs(emulator, 2)
    watching = watch([*running, "no-such-execution"])
    await wait_until(lambda: len(listed_ids(emulator)) >= 2)
    finish(emulator, running)

    events = await watching

    assert [e["status"] for e in events] == ["success", "success", "error"]
    assert events[2]["permanent"] is True, "the GET's 404 ends that wait, as without batching"
    assert "404" in events[2]["message"]
    assert listed_ids(emulator)[0] == {*running, "no-such-execution"}
    assert read_ids(emulator).count("no-such-execution") == 1
    assert all("no-such-execution" not in call for call in listed_ids(emulator)[1:])


async def test_a_refused_batch_falls_back_to_one_get_per_execution_logged_once(emulator, caplog, capfd):
    caplog.set_level(logging.WARNING)
    emulator.inject(Fault("list", "status", status=400, times=None))
    ids = slow_runs(emulator, 3)
    watching = watch(ids)
    await wait_until(lambda: len(read_ids(emulator)) >= 9)
    finish(emulator, ids)

    events = await watching

    assert [e["status"] for e in events] == ["success"] * 3
    assert list_statuses(emulator) == [400], "no batch again while falling back"
    assert all(read_ids(emulator).count(i) >= 3 for i in ids), "every round read each with a GET"
    assert times_logged(caplog, capfd, "extra 'batch_reads' to false") == 1, "once, naming the switch"


async def test_a_429_on_a_batch_delays_the_round_and_no_read_is_lost(emulator):
    emulator.inject(Fault("list", "status", status=429, retry_after=0.2, times=1))
    ids = slow_runs(emulator, 3)
    watching = watch(ids)
    await wait_until(lambda: list_statuses(emulator)[:2] == [429, 200])
    finish(emulator, ids)

    events = await watching

    assert [e["status"] for e in events] == ["success"] * 3
    assert listed_ids(emulator)[1] == set(ids), "the same round, repeated after Retry-After"
    assert read_ids(emulator) == [], "not a fallback to one GET per execution"


def count_reads(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Count the reads the triggers ask the poller for, by execution id (from now on)."""
    reads: Counter[str] = Counter()
    read = poller.ExecutionPoller.read

    async def counted(self: poller.ExecutionPoller, execution_id: str, *args: Any, **kwargs: Any) -> Any:
        reads[execution_id] += 1
        return await read(self, execution_id, *args, **kwargs)

    monkeypatch.setattr(poller.ExecutionPoller, "read", counted)
    return reads


LIST_FAILURES = {
    "500": Fault("list", "status", status=500, times=None),
    "502 from a gateway": Fault("list", "html", status=502, times=None),
    "504": Fault("list", "status", status=504, times=None),
    "timeout": Fault("list", "slow", delay=SLOWER_THAN_TIMEOUT, times=None),
}


@pytest.mark.parametrize("fault", LIST_FAILURES.values(), ids=LIST_FAILURES.keys())
async def test_a_failing_list_call_falls_back_to_one_get_per_read_at_once(
    emulator, monkeypatch, caplog, capfd, fault
):
    caplog.set_level(logging.WARNING)
    monkeypatch.setenv("AIRFLOW_CONN_BLINK_DEFAULT", connection_json(emulator, timeout=SHORT_TIMEOUT))
    reads = count_reads(monkeypatch)
    emulator.inject(fault)
    ids = slow_runs(emulator, 3)
    watching = watch(ids, error_budget=1)
    await wait_until(lambda: all(read_ids(emulator).count(i) >= 2 for i in ids))
    emulator.finish(ids[0])
    emulator.finish(ids[1], "Failed")
    emulator.finish(ids[2], "Cancelled")

    events = await watching

    assert [e["status"] for e in events] == ["success", "failed", "failed"], "each its own outcome"
    assert [e["execution"]["state_ui"] for e in events] == ["Completed", "Failed", "Cancelled"]
    assert all(read_ids(emulator).count(i) == reads[i] for i in ids), "one GET per read, no more"
    await wait_until(lambda: listed_ids(emulator))  # a timed-out call is logged once it is answered
    assert listed_ids(emulator) == [set(ids)], "tried once, not retried, not batched again"
    assert times_logged(caplog, capfd, "Blink failed a batched read") == 1


async def test_list_and_get_both_failing_spend_each_triggers_error_budget(emulator):
    emulator.inject(Fault("list", "status", status=503, times=None))
    emulator.inject(Fault("get", "status", status=502, times=None))
    ids = slow_runs(emulator, 3)

    events = await watch(ids, error_budget=0.5)

    assert [e["status"] for e in events] == ["error"] * 3
    assert [e["execution_id"] for e in events] == ids
    for event in events:
        assert event["permanent"] is False
        assert event["message"].startswith("Blink kept failing for 0.5s")
        assert "502" in event["message"], "the last error: its own GET's"
        assert f"/executions/{event['execution_id']}" in event["message"]
    assert len(listed_ids(emulator)) == 1, "no batch again while falling back"


async def test_batching_resumes_after_the_fallback_period(emulator, monkeypatch):
    monkeypatch.setattr(poller, "FALLBACK_SECONDS", 2 * INTERVAL)
    emulator.inject(Fault("list", "status", status=500, times=1))
    ids = slow_runs(emulator, 3)
    watching = watch(ids)
    await wait_until(lambda: list_statuses(emulator)[-2:] == [200, 200])
    finish(emulator, ids)

    events = await watching

    assert [e["status"] for e in events] == ["success"] * 3
    statuses = list_statuses(emulator)
    assert statuses[0] == 500
    assert set(statuses[1:]) == {200}
    assert all(call == set(ids) for call in listed_ids(emulator)), "every batch covers them all again"
    first_batch_again = next(
        n for n, r in enumerate(emulator.requests) if r.endpoint == "list" and r.status == 200
    )
    gets_between = [r for r in emulator.requests[:first_batch_again] if r.endpoint == "get"]
    assert {r.path.rsplit("/", 1)[-1] for r in gets_between} == set(ids), "read one by one meanwhile"


@pytest.mark.parametrize("status", [401, 403, 404])
async def test_a_refusal_of_the_key_or_workspace_ends_every_wait(emulator, status):
    emulator.inject(Fault("list", "status", status=status, times=1))
    ids = slow_runs(emulator, 3)

    events = await watch(ids)

    assert [e["status"] for e in events] == ["error"] * 3
    assert all(e["permanent"] is True and str(status) in e["message"] for e in events)
    assert len(listed_ids(emulator)) == 1
    assert read_ids(emulator) == []


def reads_of(emulator: BlinkEmulator, execution_id: str) -> list[int]:
    """Where in the request log the execution was read: by its GET, or named in a list call."""
    read = []
    for position, record in enumerate(emulator.requests):
        named = record.endpoint == "list" and execution_id in record.query.get("q", "")
        if named or (record.endpoint == "get" and record.path.endswith(f"/{execution_id}")):
            read.append(position)
    return read


async def test_triggers_join_and_leave_mid_round_without_blocking_or_losing_one(emulator):
    leaving, staying, joining = slow_runs(emulator, 3)
    emulator.inject(Fault("list", "slow", delay=1.5, times=1))
    leaver = asyncio.ensure_future(next_event(trigger_for(leaving)))
    stayer = asyncio.ensure_future(next_event(trigger_for(staying)))
    await asyncio.sleep(INTERVAL + 0.3)  # the first round's list call is now held by the emulator
    leaver.cancel()
    joiner = asyncio.ensure_future(next_event(trigger_for(joining)))
    await wait_until(lambda: len(reads_of(emulator, staying)) >= 3 and len(reads_of(emulator, joining)) >= 3)
    finish(emulator, [staying, joining])

    events = await asyncio.wait_for(asyncio.gather(stayer, joiner), 30)

    assert [e["status"] for e in events] == ["success", "success"]
    assert leaver.cancelled()
    held = next(n for n, r in enumerate(emulator.requests) if r.endpoint == "list")
    assert listed_ids(emulator)[0] == {leaving, staying}
    assert reads_of(emulator, leaving) == [held], "a trigger that left is not read again"
    assert reads_of(emulator, joining)[0] < held, "the joiner read while the held round was still running"
    assert reads_of(emulator, staying)[1] > held, "the stayer got the held round's answer and read again"


async def test_batch_reads_off_keeps_one_get_per_execution(emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_BLINK_SINGLE", connection_json(emulator, batch_reads=False))
    ids = slow_runs(emulator, 3)
    watching = watch(ids, blink_conn_id="blink_single")
    await wait_until(lambda: len(read_ids(emulator)) >= 9)
    finish(emulator, ids)

    events = await watching

    assert [e["status"] for e in events] == ["success"] * 3
    assert listed_ids(emulator) == []
    assert poller.poller_count() == 0
    for event in events:  # the single GET's record: nothing left for the task to read
        assert set(GET_ONLY_FIELDS) <= set(event["execution"])


async def test_rounds_of_one_execution_read_it_with_get(emulator):
    [execution_id] = slow_runs(emulator, 1)
    watching = watch([execution_id], end_time=time.time() + 3 * INTERVAL)

    [event] = await watching

    assert event["status"] == "timeout"
    assert listed_ids(emulator) == [], "a list call would cost as much and answer less"
    assert read_ids(emulator).count(execution_id) >= 2


def parsed_answer_sizes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes (characters) of the answers the clients parse from now on."""
    sizes: list[int] = []
    parse = api.parse_answer

    def counted(call: api.ApiCall[Any], status: int, text: str, headers: Any) -> Any:
        sizes.append(len(text))
        return parse(call, status, text, headers)

    monkeypatch.setattr(api, "parse_answer", counted)
    return sizes


async def test_a_list_answer_larger_than_its_ids_can_take_is_refused_unread(
    emulator, monkeypatch, caplog, capfd
):
    caplog.set_level(logging.WARNING)
    parsed = parsed_answer_sizes(monkeypatch)
    padding = 20_000  # items of 17 bytes: 340 KB, where 3 items take a few hundred bytes
    emulator.inject(Fault("list", "unasked_items", count=padding, times=1))
    ids = slow_runs(emulator, 3)
    watching = watch(ids)
    await wait_until(lambda: all(read_ids(emulator).count(i) >= 2 for i in ids))
    finish(emulator, ids)

    events = await watching

    assert [e["status"] for e in events] == ["success"] * 3
    assert [e["execution"]["state_ui"] for e in events] == ["Completed"] * 3
    assert list_statuses(emulator) == [200], "answered once, then no batch again while falling back"
    assert max(parsed) < padding, "the padded answer was never parsed"
    assert times_logged(caplog, capfd, "more than what was asked for can take") == 1, "logged once"


async def test_an_id_listed_twice_differently_is_read_with_its_get(emulator):
    ids = slow_runs(emulator, 2)
    emulator.finish(ids[0])
    emulator.finish(ids[1], "Failed")
    emulator.inject(Fault("list", "conflicting_items", times=None))  # first: the other final state

    events = await watch(ids)

    assert [e["status"] for e in events] == ["success", "failed"], "what each one's GET says"
    assert [e["execution"]["state_ui"] for e in events] == ["Completed", "Failed"]
    assert listed_ids(emulator) == [set(ids)]
    assert sorted(read_ids(emulator)) == sorted(ids), "one GET each, in the same round"
    assert set(GET_ONLY_FIELDS) <= set(events[0]["execution"]), "the event carries the GET's record"


async def test_items_for_ids_not_asked_for_are_never_handed_to_a_wait(emulator):
    ids = slow_runs(emulator, 3)
    emulator.inject(Fault("list", "unasked_items", count=100, times=None))  # well within the bound
    watching = watch(ids)
    await wait_until(lambda: len(listed_ids(emulator)) >= 2)
    finish(emulator, ids)

    events = await watching

    assert [e["execution_id"] for e in events] == ids
    assert [e["execution"]["id"] for e in events] == ids
    assert read_ids(emulator) == [], "answered from the list: an answer within the bound is read"


async def test_a_list_answer_with_long_error_details_is_read_from_the_list(emulator):
    ids = slow_runs(emulator, 3)
    details = {"message": "x" * 30_000}  # far longer than a failure message
    watching = watch(ids)
    await wait_until(lambda: len(listed_ids(emulator)) >= 1)
    for execution_id in ids:
        emulator.finish(execution_id, "Failed", error_details=details)

    events = await watching

    assert [e["status"] for e in events] == ["failed"] * 3
    assert read_ids(emulator) == [], "a normal answer is never refused"
    assert set(list_statuses(emulator)) == {200}
