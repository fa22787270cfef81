"""
The event stream cannot be poisoned: a record that would move the watermark where no real execution
can be (a ``finished_at`` beyond now plus the clock-skew allowance) or that has no id is skipped with
a warning, and the watcher keeps firing for the executions that follow — also after a restart.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

from airflow_provider_blink.triggers.blink_events import WATERMARK_KEY, BlinkExecutionEventTrigger

from support.hostile import Answer, HostileServer, Request, json_answer
from support.triggers import AssetStateStore, all_events

DAY_MS = 86_400_000


class FinishedExecutions:
    """A Blink that lists the records it is given, honouring the ``finished_at`` filter and sort."""

    def __init__(self, *records: dict[str, Any]) -> None:
        self.records = list(records)

    def __call__(self, request: Request) -> Answer:
        query = json.loads(parse_qs(urlsplit(request.target).query)["q"][0])
        since = query["filter"]["finished_at"]["$gte"]
        found = [
            r for r in self.records if not isinstance(r.get("finished_at"), int) or r["finished_at"] >= since
        ]
        found.sort(key=lambda r: r["finished_at"] if isinstance(r.get("finished_at"), int) else 0)
        return json_answer({"offset": 0, "limit": 1000, "total": len(found), "results": found})


def now_ms() -> int:
    return int(time.time() * 1000)


def finished(execution_id: str | None, finished_at: Any) -> dict[str, Any]:
    record = {"playbook_id": "pb", "state_ui": "Completed", "created_at": 1, "finished_at": finished_at}
    if execution_id is not None:
        record["id"] = execution_id
    return record


async def events_after_polls(
    store: AssetStateStore, blink: FinishedExecutions, *late: dict[str, Any]
) -> list[str]:
    """Let a (new) watcher poll a few times, then add ``late`` records: the ids of the events it fires for them."""
    trigger = BlinkExecutionEventTrigger(poll_interval=0.05, lookback=60)
    trigger.asset_state_store = store  # type: ignore[assignment]
    consumer = asyncio.create_task(all_events(trigger, count=len(late)))
    await asyncio.sleep(0.5)  # several polls see the records already there
    blink.records.extend(late)
    return [event["execution_id"] for event in await asyncio.wait_for(consumer, 20)]


def test_a_record_from_the_future_or_without_an_id_never_moves_the_watermark(use_blink, caplog):
    blink_records = FinishedExecutions(
        finished("from-the-future", now_ms() + 365 * DAY_MS), finished(None, now_ms())
    )
    store = AssetStateStore()
    with HostileServer(blink_records) as blink:
        use_blink(blink.url)
        with caplog.at_level(logging.WARNING):
            first = asyncio.run(events_after_polls(store, blink_records, finished("first", now_ms())))
        # A restart: a new watcher starting from the stored watermark.
        second = asyncio.run(events_after_polls(store, blink_records, finished("after-a-restart", now_ms())))

    assert first + second == ["first", "after-a-restart"]
    assert store.values[WATERMARK_KEY]["finished_at"] < now_ms() + DAY_MS
    warnings = [r.getMessage() for r in caplog.records if r.name.startswith("airflow_provider_blink")]
    assert any("from-the-future" in text for text in warnings)
    assert any("without an id" in text for text in warnings)
    assert len(warnings) == 4, "each skipped record is reported once per stream (two here), not per poll"
