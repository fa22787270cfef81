"""
BlinkExecutionEventTrigger: schedule DAGs on Blink executions finishing (``AssetWatcher``).

Example::

    from airflow.sdk import Asset, AssetWatcher, dag

    incident_done = Asset(
        "blink_incident_response",
        watchers=[
            AssetWatcher(
                name="blink_incident_response_watcher",
                trigger=BlinkExecutionEventTrigger(playbook_id="incident-response", states=["Completed"]),
            )
        ],
    )


    @dag(schedule=[incident_done])
    def after_incident_response(): ...
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Collection, Hashable, Mapping
from typing import Any

from airflow.triggers.base import TriggerEvent

from airflow_provider_blink.compat import BaseEventTrigger
from airflow_provider_blink.connection_form import DEFAULT_CONN_ID
from airflow_provider_blink.exceptions import BlinkError
from airflow_provider_blink.executions import (
    FAILURE_STATES,
    SUCCESS_STATES,
    execution_state,
    normalize_state,
    normalize_states,
    summarize,
)
from airflow_provider_blink.hooks.blink import BlinkHook
from airflow_provider_blink.hooks.transport import is_retryable

#: Key of the watermark in the watched asset's state store (Airflow 3.3+).
WATERMARK_KEY = "blink_finished_watermark"


class Watermark:
    """
    How far the events go: the latest ``finished_at`` fired, and the executions fired at that instant.

    Kept in the asset's state store, so a triggerer restart neither repeats nor loses an event.
    """

    def __init__(self, finished_at: int, ids: Collection[str] = ()) -> None:
        self.finished_at = finished_at
        self.ids = set(ids)

    def admits(self, execution: Mapping[str, Any]) -> bool:
        finished_at = execution.get("finished_at") or 0
        return finished_at > self.finished_at or (
            finished_at == self.finished_at and execution["id"] not in self.ids
        )

    def advance(self, execution: Mapping[str, Any]) -> None:
        finished_at = execution.get("finished_at") or 0
        if finished_at > self.finished_at:
            self.finished_at, self.ids = finished_at, set()
        self.ids.add(execution["id"])

    def dump(self) -> dict[str, Any]:
        return {"finished_at": self.finished_at, "ids": sorted(self.ids)}

    @classmethod
    def load(cls, value: Any, default_finished_at: int) -> Watermark:
        """The stored watermark; one from the future (stored before records were checked) is dropped."""
        if isinstance(value, dict) and isinstance(value.get("finished_at"), int):
            if value["finished_at"] <= _now_ms() + CLOCK_SKEW_MS:
                return cls(value["finished_at"], value.get("ids") or ())
            logging.getLogger(__name__).warning(
                "Ignoring the stored watermark %s: it lies in the future", value["finished_at"]
            )
        return cls(default_finished_at)


#: How far ahead of this machine's clock Blink's may run: a ``finished_at`` beyond it is not believed.
CLOCK_SKEW_MS = 5 * 60 * 1000


class RecordCheck:
    """
    Keeps records that would poison the watermark out of the stream.

    Those are records without an id, or with a ``finished_at`` that is not a time up to
    :data:`CLOCK_SKEW_MS` ahead of now (it would move the watermark where no real execution can
    be, and the watcher would never fire again). Each is logged once (it comes back every poll).
    """

    def __init__(self, log: logging.Logger) -> None:
        self._log = log
        self._warned: set[tuple[Any, Any]] = set()

    def admits(self, execution: Mapping[str, Any]) -> bool:
        execution_id, finished_at = execution.get("id"), execution.get("finished_at")
        if not isinstance(execution_id, str) or not execution_id:
            problem = f"a record without an id (finished_at={finished_at!r})"
        elif (
            not isinstance(finished_at, int)
            or isinstance(finished_at, bool)
            or finished_at > _now_ms() + CLOCK_SKEW_MS
        ):
            problem = f"execution {execution_id!r}: its finished_at {finished_at!r} is not a time up to now"
        else:
            return True
        key = (execution_id if isinstance(execution_id, str) else None, repr(finished_at))
        if key not in self._warned:
            if len(self._warned) > 1000:
                self._warned.clear()
            self._warned.add(key)
            self._log.warning("Skipping %s from Blink's list of finished executions", problem)
        return False


async def finished_executions(
    blink_conn_id: str,
    workspace_id: str | None,
    playbook_id: str | None,
    poll_interval: float,
    since_ms: int,
) -> AsyncIterator[dict[str, Any]]:
    """
    Yield each execution that finishes from ``since_ms`` on, once, forever: one list call per poll.

    Transient Blink errors are logged and the next poll tries again; permanent ones are raised.
    Records that would poison the watermark are skipped (see :class:`RecordCheck`).
    """
    log = logging.getLogger(__name__)
    cursor = Watermark(since_ms)
    check = RecordCheck(log)
    async with BlinkHook(blink_conn_id).async_client(shared=True) as client:
        while True:
            query: dict[str, Any] = {"finished_at": {"$gte": max(cursor.finished_at, 1)}}
            if playbook_id:
                query["playbook_id"] = playbook_id
            try:
                # Blink promises no order among equal finished_at: id breaks ties, so offset paging
                # neither repeats nor skips an execution.
                async for execution in client.iter_executions(
                    workspace_id=workspace_id, filter=query, sort=["finished_at", "id"]
                ):
                    if check.admits(execution) and cursor.admits(execution):
                        cursor.advance(execution)
                        yield execution
            except BlinkError as exc:
                if not is_retryable(exc, idempotent=True):
                    raise
                log.warning("Listing Blink executions failed, will try again: %s", exc)
            await asyncio.sleep(poll_interval)


class BlinkExecutionEventTrigger(BaseEventTrigger):
    """
    Fire one event per Blink execution that finishes, to schedule DAGs through an ``AssetWatcher``.

    Watches a workspace, optionally one playbook and a set of final states. Watchers of the same
    query share one list call per poll (Airflow 3.3+ shared streams). The event payload is the
    summary of the list item (docs/blink-api-contract.md#documented-list: no ``playbook_name``, ``display_name`` or ``duration``):
    ``execution_id``, ``playbook_id``, ``state``, ``state_ui``, ``created_at``, ``started_at``,
    ``finished_at``, ``net_runtime_ms`` ...

    :param blink_conn_id: the Airflow connection to Blink.
    :param workspace_id: overrides the connection's Workspace ID.
    :param playbook_id: only this playbook's executions.
    :param states: final states to fire on (default: every final state).
    :param poll_interval: seconds between list calls.
    :param lookback: seconds before the first poll to look at when no watermark is stored yet;
        ``0`` fires only for executions finishing after the watcher starts.
    """

    def __init__(
        self,
        *,
        blink_conn_id: str = DEFAULT_CONN_ID,
        workspace_id: str | None = None,
        playbook_id: str | None = None,
        states: Collection[str] | None = None,
        poll_interval: float = 30.0,
        lookback: float = 0.0,
    ) -> None:
        super().__init__()
        self.blink_conn_id = blink_conn_id
        self.workspace_id = workspace_id
        self.playbook_id = playbook_id
        self.states = list(states) if states is not None else None
        self.poll_interval = poll_interval
        self.lookback = lookback

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "airflow_provider_blink.triggers.blink_events.BlinkExecutionEventTrigger",
            {
                "blink_conn_id": self.blink_conn_id,
                "workspace_id": self.workspace_id,
                "playbook_id": self.playbook_id,
                "states": self.states,
                "poll_interval": self.poll_interval,
                "lookback": self.lookback,
            },
        )

    def shared_stream_key(self) -> Hashable | None:
        return ("blink-finished-executions", self.blink_conn_id, self.workspace_id, self.playbook_id)

    @classmethod
    async def open_shared_stream(cls, kwargs: dict[str, Any]) -> AsyncIterator[Any]:
        since = _now_ms() - int(max(float(kwargs.get("lookback") or 0), RESTART_WINDOW) * 1000)
        async for execution in finished_executions(
            kwargs.get("blink_conn_id") or DEFAULT_CONN_ID,
            kwargs.get("workspace_id"),
            kwargs.get("playbook_id"),
            float(kwargs.get("poll_interval") or 30.0),
            since,
        ):
            yield execution

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        watermark = Watermark.load(await self._stored_watermark(), _now_ms() - int(self.lookback * 1000))
        wanted = normalize_states(self.states, SUCCESS_STATES | FAILURE_STATES)
        async for execution in shared_stream:
            if not watermark.admits(execution):
                continue
            watermark.advance(execution)
            await self._store_watermark(watermark)
            if normalize_state(execution_state(execution)) in wanted:
                yield TriggerEvent({**summarize(execution), "state": execution_state(execution)})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        async for event in self.filter_shared_stream(self.open_shared_stream(self.serialize()[1])):
            yield event

    async def _stored_watermark(self) -> Any:
        store = getattr(self, "asset_state_store", None)
        return await store.aget(WATERMARK_KEY) if store is not None else None

    async def _store_watermark(self, watermark: Watermark) -> None:
        store = getattr(self, "asset_state_store", None)
        if store is not None:
            await store.aset(WATERMARK_KEY, watermark.dump())


#: Seconds of history a (re)started stream reads, so executions that finished while the triggerer
#: was down are still seen; watchers drop what their stored watermark already covers.
RESTART_WINDOW = 3600.0


def _now_ms() -> int:
    return int(time.time() * 1000)
