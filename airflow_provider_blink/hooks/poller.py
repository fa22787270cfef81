"""
Batched reads of executions: one poller per connection settings, workspace and event loop.

Triggers in one triggerer each wait for their own execution. Read one GET at a time, 1,000 of them
at a 10 s interval are 100 requests a second; through the shared :class:`ExecutionPoller` the reads
that fall due together go out as a few list calls, RQL ``{"filter": {"$or": [{"id": ...}, ...]}}``
(docs/blink-api-contract.md#documented-rql; list items carry ``id``, ``state``, ``state_ui``,
``error_details``: #documented-list).
Correctness never depends on the batch: what the list does not answer is read with the single GET,
and so is every execution of a list call Blink refuses (400) or fails (5xx, timeout), in the same round.
No list answer is trusted beyond its question: one larger than the ids asked for can take is refused
unread (:func:`listed_answer_bytes`), items for ids not asked for are ignored, and an id given twice
with different content is read with the single GET.
A finished execution's event carries its list item (which lacks ``playbook_name``, ``display_name``
and ``duration``, docs/blink-api-contract.md#documented-list): the operator and the sensor read those with the single GET in
the worker (:func:`.tasks.whole_summary`), so a burst of finishing runs costs the triggerer
no request and the task's result is the same as without batching.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import weakref
from collections.abc import Callable, Collection, Hashable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

from airflow_provider_blink import api
from airflow_provider_blink.exceptions import BlinkApiError, BlinkError, BlinkResponseError
from airflow_provider_blink.executions import SUMMARY_FIELDS
from airflow_provider_blink.hooks.transport import asks_to_slow_down, is_transient

if TYPE_CHECKING:
    from airflow_provider_blink.hooks.blink import BlinkAsyncClient

Record = dict[str, Any]
#: Says whether a record shows the execution ended (the trigger's own success/failure states); raises
#: BlinkError when the record has no state it can read (then the poller reads the single GET instead).
IsFinal = Callable[[Record], bool]

#: Most seconds a read waits for others to join its round (less for short intervals, see GATHER_SHARE).
GATHER_SECONDS = 0.5
#: Most share of its poll interval a read waits for others to join its round.
GATHER_SHARE = 0.05
#: Most bytes of one list call's encoded ``q``: the whole URL stays well under the common 8 KB limit.
QUERY_BUDGET = 6000
#: Most single GETs one poller has in flight (ids the list left out or gave no state for, fallback).
GET_CONCURRENCY = 20
#: Seconds a poller reads one GET per execution after a list call failed (refused, 5xx, timeout ...).
FALLBACK_SECONDS = 600.0
#: Fields a list call asks for (``select``): those of the event's summary that list items have.
LISTED_FIELDS = list(SUMMARY_FIELDS)
#: Most bytes one item of a list answer may take (see :func:`listed_answer_bytes`).
ITEM_BYTES = 64 * 1024
#: Bytes a list answer may take besides its items: ``limit``, ``offset``, ``total``, brackets.
PAGE_BYTES = 4 * 1024


class ExecutionReader(Protocol):
    """How a trigger reads its execution: through the shared poller, or with its own GET."""

    async def read(self, execution_id: str, is_final: IsFinal, *, interval: float) -> Record:
        """The execution's current record: the single GET's, or a list item (fewer fields)."""


@dataclass(frozen=True)
class SingleReads:
    """One GET per read: connection extra ``batch_reads: false``."""

    client: BlinkAsyncClient
    workspace_id: str | None

    async def read(self, execution_id: str, is_final: IsFinal, *, interval: float) -> Record:
        """Read the execution with the single GET."""
        return await self.client.get_execution(execution_id, workspace_id=self.workspace_id)


@dataclass
class _Wait:
    execution_id: str
    is_final: IsFinal
    future: asyncio.Future[Record]

    def give(self, result: Record | Exception) -> None:
        if self.future.done():  # its trigger left (finished, cancelled) while the round ran
            return
        if isinstance(result, Exception):
            self.future.set_exception(_own_copy(result))
        else:
            self.future.set_result(result)


def _own_copy(exc: Exception) -> Exception:
    """A copy of ``exc`` for one waiter: many triggers raising one object would share its traceback."""
    copy = type(exc).__new__(type(exc))
    copy.__dict__.update(exc.__dict__)
    copy.args = exc.args
    return copy


@dataclass
class ExecutionPoller:
    """
    Reads the executions of one workspace for every trigger in an event loop, in rounds.

    A read joins the next round, which starts at the latest :data:`GATHER_SECONDS` (or
    :data:`GATHER_SHARE` of the reader's interval) after the first read that asked for it, or at
    once when every user is reading (none is left to wait for); reads arriving while a round runs
    join the one after. A round of one execution, or any round while the connection falls back,
    reads each execution with the single GET.

    :param client: the client to call Blink with (over the loop's shared session).
    :param workspace_id: the workspace override, as the trigger has it (``None``: the connection's).
    """

    client: BlinkAsyncClient
    workspace_id: str | None
    #: Triggers using the poller (see :class:`ExecutionReading`).
    users: int = 0
    _due: list[_Wait] = field(default_factory=list)
    _reading: int = 0
    _timer: asyncio.TimerHandle | None = None
    _timer_at: float = math.inf
    _rounds: set[asyncio.Task[None]] = field(default_factory=set)
    _batches_paused_until: float = 0.0
    _fallbacks_logged: set[str] = field(default_factory=set)
    _gets: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(GET_CONCURRENCY))

    async def read(self, execution_id: str, is_final: IsFinal, *, interval: float) -> Record:
        """Wait for the next round and return the execution's record (see :class:`ExecutionReader`)."""
        loop = asyncio.get_running_loop()
        wait = _Wait(execution_id, is_final, loop.create_future())
        self._due.append(wait)
        gather = (
            0.0
            if len(self._due) + self._reading >= self.users
            else min(GATHER_SECONDS, interval * GATHER_SHARE)
        )
        self._start_round_by(loop, loop.time() + gather)
        return await wait.future

    def close(self) -> None:
        """Stop: no round starts any more and the running ones are cancelled (their triggers left)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for task in self._rounds:
            task.cancel()

    def _start_round_by(self, loop: asyncio.AbstractEventLoop, moment: float) -> None:
        if moment >= self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = moment
        self._timer = loop.call_at(moment, self._start_round)

    def _start_round(self) -> None:
        self._timer, self._timer_at = None, math.inf
        waits = [wait for wait in self._due if not wait.future.done()]
        self._due = []
        if waits:
            self._reading += len(waits)
            task = asyncio.ensure_future(self._round(waits))
            self._rounds.add(task)
            task.add_done_callback(self._rounds.discard)

    async def _round(self, waits: list[_Wait]) -> None:
        try:
            await self._read_for(waits)
        except Exception as exc:  # never leave a trigger waiting on a round that broke
            for wait in waits:
                wait.give(exc)
        finally:  # cancelled (the poller closed): nobody should still wait, but never hang one
            self._reading -= len(waits)
            for wait in waits:
                wait.future.cancel()

    async def _read_for(self, waits: list[_Wait]) -> None:
        by_id: dict[str, list[_Wait]] = {}
        for wait in waits:
            by_id.setdefault(wait.execution_id, []).append(wait)
        batching = len(by_id) > 1 and time.monotonic() >= self._batches_paused_until
        chunks = id_chunks(list(by_id)) if batching else []
        batched = {execution_id for chunk in chunks for execution_id in chunk}
        await asyncio.gather(
            *(self._read_chunk(chunk, by_id) for chunk in chunks),
            *(self._get_for(i, its_waits) for i, its_waits in by_id.items() if i not in batched),
        )

    async def _read_chunk(self, chunk: Sequence[str], by_id: dict[str, list[_Wait]]) -> None:
        """
        Read ``chunk`` with one list call and hand its waits their items as soon as it answers.

        So a round's answers are not all held at once, and a failed call affects its own waits only:
        they are read with the single GET (see :meth:`_falls_back_after`), or given its error.
        """
        listed: dict[str, Record] = {}
        try:
            listed = _items_by_id(await self._list_chunk(chunk), asked=set(chunk))
        except BlinkError as exc:
            if not self._falls_back_after(exc):
                for execution_id in chunk:
                    for wait in by_id[execution_id]:
                        wait.give(exc)
                return
        to_get: dict[str, list[_Wait]] = {}
        for execution_id in chunk:
            item = listed.get(execution_id)
            for wait in by_id[execution_id]:
                if item is not None and _tells_state(wait, item):
                    wait.give(item)
                else:  # not in the answer, or no state the trigger can read: the single GET answers
                    to_get.setdefault(execution_id, []).append(wait)
        del listed  # the items are their waits' now: not held while the GETs run
        await asyncio.gather(*(self._get_for(i, its_waits) for i, its_waits in to_get.items()))

    async def _get_for(self, execution_id: str, waits: Sequence[_Wait]) -> None:
        """Read one execution with the single GET and hand its waits the answer as soon as it comes."""
        try:
            async with self._gets:
                result: Record | Exception = await self.client.get_execution(
                    execution_id, workspace_id=self.workspace_id
                )
        except Exception as exc:
            result = exc
        for wait in waits:
            wait.give(result)

    async def _list_chunk(self, chunk: Sequence[str]) -> dict[str, Any]:
        """
        One list call, in one attempt: a failed one falls back to the GETs at once.

        Unless Blink asked to wait (429, ``Retry-After``): that is waited out and retried, as by any call.
        An answer larger than :func:`listed_answer_bytes` allows is refused unread, like a 400.
        """
        query = api.rql_query(
            filter={"$or": [{"id": execution_id} for execution_id in chunk]},
            limit=len(chunk),
            select=LISTED_FIELDS,
        )
        call = api.list_executions(self.client.config.workspace(self.workspace_id), query)
        bounded = replace(call, max_bytes=listed_answer_bytes(len(chunk)))
        result: dict[str, Any] = await self.client.call(bounded, retry_when=asks_to_slow_down)
        return result

    def _falls_back_after(self, exc: BlinkError) -> bool:
        """
        Whether a list call's executions are read with the single GET after it failed with ``exc``.

        They are when Blink refused the batch (400, an answer that cannot be read or is larger than
        the ids asked for can take) or failed it (5xx, timeout, connection lost): then the poller
        reads one GET per execution for :data:`FALLBACK_SECONDS` before batching again, and logs it
        once. Not after an error that
        concerns every read alike (401, 403, 404 of the workspace), nor after Blink asked for fewer
        requests (429, ``Retry-After``): the waits get the error, as a GET's would end them.
        """
        refused = isinstance(exc, BlinkResponseError) or (
            isinstance(exc, BlinkApiError) and exc.status == 400
        )
        if not refused and (asks_to_slow_down(exc) or not is_transient(exc, idempotent=True)):
            return False
        self._batches_paused_until = time.monotonic() + FALLBACK_SECONDS
        how = "refused" if refused else "failed"
        if how in self._fallbacks_logged:
            self.client.log.debug("Blink %s a batched read again: %s", how, exc)
            return True
        self._fallbacks_logged.add(how)
        self.client.log.warning(
            "Blink %s a batched read of executions on connection %r (%s); reading one execution per "
            "request for %gs, then trying batches again.%s",
            how,
            self.client.config.conn_id,
            exc,
            FALLBACK_SECONDS,
            " Set the connection's extra 'batch_reads' to false to stop batching." if refused else "",
        )
        return True


def listed_answer_bytes(ids: int) -> int:
    """
    Most bytes a list answer for ``ids`` executions may take: a larger one is refused unread.

    An item carries the :data:`LISTED_FIELDS`: ids, names, numbers and states (under 2 KiB even with
    every character escaped), and Blink's free-text ``error_details`` and ``cancel_reason``, which
    get the rest of :data:`ITEM_BYTES` (over 60 KiB: far more than a failure message takes). So a
    normal answer is never refused, and one padded with items nobody asked for is, before it is
    parsed: 3 ids allow 196 KiB, the 90 UUIDs one call asks for at most 5.6 MiB.
    """
    return PAGE_BYTES + ids * ITEM_BYTES


def _items_by_id(page: dict[str, Any], asked: Collection[str]) -> dict[str, Record]:
    """
    A list answer's items for the ids ``asked``, by ``id``; items for other ids are ignored.

    An id given twice with different content is left out: what Blink says of it is unclear, so its
    waits read the single GET. Identical repeats are one item.
    """
    listed: dict[str, Record] = {}
    unclear: set[str] = set()
    for item in page["results"]:
        item_id = item.get("id")
        if not isinstance(item_id, str) or item_id not in asked:
            continue
        if listed.setdefault(item_id, item) != item:
            unclear.add(item_id)
    for item_id in unclear:
        del listed[item_id]
    return listed


def _tells_state(wait: _Wait, item: Record) -> bool:
    """Whether the trigger can read a state from a list item (else the single GET answers, as before)."""
    try:
        wait.is_final(item)
    except BlinkError:  # e.g. an item without a state
        return False
    return True


def id_chunks(ids: Sequence[str]) -> list[list[str]]:
    """
    Split ids into list calls: each ``q`` within :data:`QUERY_BUDGET` encoded bytes and ``limit``.

    Counted as percent-encoding every byte but letters and digits would, an upper bound of what
    the client sends. An id too long for a call of its own is left out (it is read with the GET).
    """
    frame = _encoded_size({"filter": {"$or": []}, "limit": api.MAX_PAGE_SIZE, "select": LISTED_FIELDS})
    chunks: list[list[str]] = []
    chunk: list[str] = []
    size = frame
    for execution_id in ids:
        cost = _encoded_size({"id": execution_id}) + len(quote(","))
        if frame + cost > QUERY_BUDGET:
            continue
        if chunk and (size + cost > QUERY_BUDGET or len(chunk) == api.MAX_PAGE_SIZE):
            chunks.append(chunk)
            chunk, size = [], frame
        chunk.append(execution_id)
        size += cost
    if chunk:
        chunks.append(chunk)
    return chunks


def _encoded_size(value: Any) -> int:
    return len(quote(json.dumps(value, separators=(",", ":")), safe=""))


_POLLERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Hashable, ExecutionPoller]] = (
    weakref.WeakKeyDictionary()
)


class ExecutionReading:
    """
    The reader a trigger reads its execution with, for as long as it waits (``async with``).

    Unless the connection sets ``batch_reads: false``: the event loop's poller for these connection
    settings and workspace, created for its first user and closed when the last one leaves (like
    :class:`.sessions.SharedSession`, whose session it calls through). A class rather than a
    generator: thousands of triggers each hold one for as long as they wait.
    """

    __slots__ = ("_client", "_key", "_per_loop", "_poller", "_workspace_id")

    def __init__(self, client: BlinkAsyncClient, workspace_id: str | None) -> None:
        self._client, self._workspace_id = client, workspace_id
        self._poller: ExecutionPoller | None = None

    async def __aenter__(self) -> ExecutionReader:
        client, workspace_id = self._client, self._workspace_id
        if not client.config.batch_reads:
            return SingleReads(client, workspace_id)
        per_loop = self._per_loop = _POLLERS.setdefault(asyncio.get_running_loop(), {})
        key = self._key = (client.config.pool_key, client.config.workspace_id, workspace_id)
        poller = per_loop.get(key)
        if poller is None:
            poller = per_loop[key] = ExecutionPoller(client, workspace_id)
        poller.users += 1
        self._poller = poller
        return poller

    async def __aexit__(self, *exc_info: object) -> None:
        poller = self._poller
        if poller is None:
            return
        poller.users -= 1
        if poller.users == 0:
            if self._per_loop.get(self._key) is poller:
                del self._per_loop[self._key]
            poller.close()


def poller_count() -> int:
    """Open pollers in the running event loop (for tests and diagnostics)."""
    return len(_POLLERS.get(asyncio.get_running_loop(), {}))
