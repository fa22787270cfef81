"""
Blink operations that take several requests, written once for the sync hook and the async client.

Each is a generator of :class:`~airflow_provider_blink.api.ApiCall` s that receives their answers
(or has their errors thrown in); :class:`Exchange` turns it into steps, which :func:`drive` runs
with ``BlinkHook.call`` and :func:`adrive` with ``BlinkAsyncClient.call``.

- Which runs a start request made (:func:`matching_runs`, :func:`started_run`): the one place
  candidates are compared (:func:`is_run_of`). A list item carries no ``inputs`` and no ``event``
  (seed 004; NOTES.md "A list item is not the same record"), so candidates come from the list,
  newest first, and each is read with the single GET (seed 003) and checked on that record, whatever
  the list answered. Reads are bounded by the ``limit`` asked for; a lookup that cannot see every
  candidate says so instead of answering "none".
- Cancelling (:func:`cancel`): the status decides, not the body; a 400 is read with a GET.
- Every page of an execution's steps (:func:`all_steps`).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Generator, Iterator, Mapping
from typing import Any, Generic, TypeVar

from airflow_provider_blink import api
from airflow_provider_blink.exceptions import (
    BlinkApiError,
    BlinkBadRequestError,
    BlinkCancelRefusedError,
    BlinkError,
    BlinkPermanentError,
)
from airflow_provider_blink.executions import ExecutionOutcome, decide_outcome
from airflow_provider_blink.hooks.attempts import Step

T = TypeVar("T")
Lookup = Generator["api.ApiCall[Any]", Any, T]

#: How far before the first attempt to look for the run it may have started (clock skew).
CLOCK_SKEW_MS = 60_000
#: At most this many candidates are read with GET per lookup.
MAX_CANDIDATES = 20


class BlinkLookupIncomplete(BlinkError):
    """More candidates than a lookup reads: it cannot say that none of them is the one."""


#: The execute fields a run's record shows (seed 003), and where. ``callback`` and ``past_exec_ref``
#: are not on the record (and a re-run's ``past_exec_ref`` changes with each try).
_FIELDS_ON_RECORD = {"runner": "runner_group_id", "trigger_type": "trigger_type"}


def is_run_of(
    execution: Mapping[str, Any], workspace_id: str, playbook_id: str, body: Mapping[str, Any], since_ms: int
) -> bool:
    """
    Whether ``execution`` (read with GET) may be the run that an execute ``body`` started since ``since_ms``.

    Checked on the record itself, whatever the list call answered: the same workspace and playbook,
    created at ``since_ms`` or later, the same inputs and event, and the same value of every other
    field the request set and the record shows (a field the request left unset matches any value).
    A record that lacks the workspace, playbook or creation time is not taken.
    """
    created = execution.get("created_at")
    return (
        execution.get("workspace_id") == workspace_id
        and execution.get("playbook_id") == playbook_id
        and isinstance(created, int | float)
        and not isinstance(created, bool)
        and created >= since_ms
        and (execution.get("inputs") or {}) == (body.get("input_values") or {})
        and (execution.get("event") or {}) == (body.get("event") or {})
        and all(
            execution.get(shown) == body[field]
            for field, shown in _FIELDS_ON_RECORD.items()
            if body.get(field) is not None
        )
    )


def matching_runs(
    workspace_id: str,
    playbook_id: str,
    body: Mapping[str, Any],
    since_ms: int,
    *,
    limit: int = MAX_CANDIDATES,
    exhaustive: bool = False,
) -> Lookup[list[dict[str, Any]]]:
    """
    The runs of ``playbook_id`` created since ``since_ms`` with ``body``'s request, newest first.

    Blink is asked for the newest ``limit`` runs of the playbook created since ``since_ms``; at most
    ``limit`` of the runs it answers are read with GET, and each is checked with :func:`is_run_of`.

    :param body: the execute body (``input_values``, ``event``, ``runner``, ``trigger_type`` ...).
    :param since_ms: epoch milliseconds; older runs are not candidates.
    :param limit: candidates read with GET at most.
    :param exhaustive: every match is needed (an unread older one may matter), not just the newest.
    :raises BlinkLookupIncomplete: more candidates than ``limit`` (Blink's ``total``, or more results
        than asked for) and none of those read matches (``exhaustive``: whether or not one matches).
    """
    query = api.rql_query(
        filter={"playbook_id": playbook_id, "created_at": {"$gte": since_ms}},
        sort=["-created_at", "-id"],
        limit=limit,
    )
    page = yield api.list_executions(workspace_id, query)
    results = page["results"]
    candidates = list(dict.fromkeys(str(item["id"]) for item in results[:limit] if item.get("id")))
    matches = []
    for candidate in candidates:
        execution = yield api.get_execution(workspace_id, candidate)
        if is_run_of(execution, workspace_id, playbook_id, body, since_ms):
            matches.append(execution)
    total = page.get("total")
    listed = max(total if isinstance(total, int) else 0, len(results))
    if (exhaustive or not matches) and listed > len(results[:limit]):
        raise BlinkLookupIncomplete(
            f"{listed} runs of playbook {playbook_id!r} started meanwhile; read the newest {len(candidates)} "
            f"and {len(matches) or 'none'} of them {'was' if len(matches) < 2 else 'were'} started with "
            "this request."
        )
    return matches


def started_run(
    workspace_id: str, playbook_id: str, body: Mapping[str, Any], first_attempt_ms: int
) -> Lookup[str | None]:
    """
    The id of the run an ambiguous start (first sent at ``first_attempt_ms``) made, or ``None``.

    :raises BlinkPermanentError: several runs with the same request started meanwhile.
    :raises BlinkLookupIncomplete: too many runs started meanwhile to tell.
    """
    matches = yield from matching_runs(workspace_id, playbook_id, body, first_attempt_ms - CLOCK_SKEW_MS)
    if len(matches) > 1:
        ids = [str(execution["id"]) for execution in matches]
        raise BlinkPermanentError(
            f"Starting the playbook failed ambiguously and {len(ids)} executions with the same request "
            f"started meanwhile ({', '.join(ids[:10])}); not starting another. Check them in Blink."
        )
    return str(matches[0]["id"]) if matches else None


def cancel(workspace_id: str, execution_id: str) -> Lookup[bool]:
    """
    Cancel an execution: ``True`` on any 2xx; ``False`` when Blink refuses because it had finished.

    A 400 is read with a GET: only an execution in a final state is "already finished".

    :raises BlinkApiError: Blink refused (400) although the execution still runs, or another error.
    """
    try:
        yield api.cancel_execution(workspace_id, execution_id)
    except BlinkBadRequestError as refused:
        execution = yield api.get_execution(workspace_id, execution_id)
        if decide_outcome(execution) is not ExecutionOutcome.RUNNING:
            return False
        raise BlinkCancelRefusedError(
            f"Blink refused to cancel execution {execution_id!r}, which is still {execution.get('state_ui')!r}",
            status=refused.status,
            message=refused.message,
            details=refused.details,
            identifier=refused.identifier,
            data=refused.data,
        ) from None
    return True


def all_steps(workspace_id: str, execution_id: str) -> Lookup[list[dict[str, Any]]]:
    """
    Every step of an execution, page after page, until ``total`` is reached.

    A server that ignores the page asked for (answers another ``offset``) ends the reading rather
    than repeating a page; pages that would never end are an error (see :class:`.api.Pages`).
    """
    steps: list[dict[str, Any]] = []
    pages = api.Pages(api.execution_steps(workspace_id, execution_id).what)
    offset = 0
    while True:
        page = yield api.execution_steps(workspace_id, execution_id, offset)
        if page.get("offset", offset) != offset:
            return steps
        steps += page["results"]
        following = pages.next_offset(page)
        if following is None:
            return steps
        offset = following


class Exchange(Generic[T]):
    """
    The requests of one procedure, as :class:`~airflow_provider_blink.hooks.attempts.Step` s; no I/O of its own.

    Each step sends one request with ``call``; its answer, or Blink's error answer, goes back into
    the procedure, which hands out the next request or ends with :attr:`result`; any other failure
    (no answer at all) ends the procedure's run. The sync hook and the async client each drive it
    in a few lines (:func:`drive`, :func:`adrive`), as they drive
    :class:`~airflow_provider_blink.hooks.attempts.CallAttempts`.

    :param procedure: one of the generators above.
    :param call: sends one request (returns the answer, or an awaitable of it).
    """

    def __init__(self, procedure: Lookup[T], call: Callable[[api.ApiCall[Any]], Any]) -> None:
        self._procedure = procedure
        self._call = call
        #: The procedure's value, once the steps have run out without an error.
        self.result: T

    def __iter__(self) -> Iterator[Step]:
        try:
            request = next(self._procedure)
            while True:
                step = Step(functools.partial(self._call, request))
                yield step
                if step.error is None:
                    request = self._procedure.send(step.result)
                elif isinstance(step.error, BlinkApiError):  # Blink's answer, which the procedure may read
                    request = self._procedure.throw(step.error)
                else:
                    raise step.error
        except StopIteration as done:
            self.result = done.value


def drive(lookup: Lookup[T], call: Callable[[api.ApiCall[Any]], Any]) -> T:
    """Run ``lookup`` with a synchronous ``call`` (e.g. ``BlinkHook.call``)."""
    exchange = Exchange(lookup, call)
    for step in exchange:
        with step:
            step.result = step.action()
    return exchange.result


async def adrive(lookup: Lookup[T], call: Callable[[api.ApiCall[Any]], Awaitable[Any]]) -> T:
    """Run ``lookup`` with an asynchronous ``call`` (e.g. ``BlinkAsyncClient.call``)."""
    exchange = Exchange(lookup, call)
    for step in exchange:
        with step:
            step.result = await step.action()
    return exchange.result
