"""
BlinkHook and BlinkAsyncClient: every Blink call, sync and async, each a thin method over the transport.

- Each method builds its request from the endpoint registry (:mod:`airflow_provider_blink.api`) and
  makes it through :mod:`.transport`, which sends, bounds, retries and logs.
- Calls of several requests (which run a start made, cancelling, every page of steps) are written once,
  as generators of requests that receive the answers (:data:`Procedure`), run by :func:`drive` (sync)
  and :func:`adrive` (async).
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_provider_blink import api, endpoints
from airflow_provider_blink.compat import BaseHook
from airflow_provider_blink.connection_form import (
    CONN_FIELDS,
    CONN_TYPE,
    DEFAULT_CONN_ID,
    UI_FIELD_BEHAVIOUR,
)
from airflow_provider_blink.exceptions import (
    BlinkApiError,
    BlinkBadRequestError,
    BlinkCancelRefusedError,
    BlinkError,
    BlinkLookupIncomplete,
    BlinkPermanentError,
)
from airflow_provider_blink.executions import ExecutionOutcome, decide_outcome
from airflow_provider_blink.hooks import transport
from airflow_provider_blink.hooks.connection import (
    DEFAULT_TIMEOUT,
    USER_AGENT,
    BlinkConnectionConfig,
    aread_connection,
    read_connection,
    warn_if_unverified,
)

if TYPE_CHECKING:
    import aiohttp
    import requests

__all__ = [
    "DEFAULT_TIMEOUT",
    "USER_AGENT",
    "BlinkAsyncClient",
    "BlinkConnectionConfig",
    "BlinkHook",
    "read_connection",
]

T = TypeVar("T")
#: A call of several requests: yields each request, receives its answer (Blink's error answer is
#: thrown in, to read or let through) and returns its result.
Procedure = Generator["api.ApiCall[Any]", Any, T]

#: How far before the first attempt to look for the run it may have started (clock skew).
CLOCK_SKEW_MS = 60_000
#: At most this many candidates are read with GET per lookup.
MAX_CANDIDATES = 20
#: Extra seconds given to a ``run_sync`` request beyond the playbook's own ``timeout``.
RUN_SYNC_GRACE = 30.0


# -- Calls of several requests ---------------------------------------------------------------------


def is_run_of(
    execution: Mapping[str, Any], workspace_id: str, playbook_id: str, body: Mapping[str, Any], since_ms: int
) -> bool:
    """
    Whether ``execution`` (read with GET) may be the run that an execute ``body`` started since ``since_ms``.

    Checked on the record itself, whatever the list call answered: the same workspace and playbook,
    created at ``since_ms`` or later, and the request as the record shows it (:func:`.endpoints.shows_request`).
    A record that lacks the workspace, playbook or creation time is not taken.
    """
    created = execution.get("created_at")
    return (
        execution.get("workspace_id") == workspace_id
        and execution.get("playbook_id") == playbook_id
        and isinstance(created, int | float)
        and not isinstance(created, bool)
        and created >= since_ms
        and endpoints.shows_request(execution, body)
    )


def matching_runs(
    workspace_id: str,
    playbook_id: str,
    body: Mapping[str, Any],
    since_ms: int,
    *,
    limit: int = MAX_CANDIDATES,
    exhaustive: bool = False,
) -> Procedure[list[dict[str, Any]]]:
    """
    The runs of ``playbook_id`` created since ``since_ms`` with ``body``'s request, newest first.

    A list item carries no ``inputs`` and no ``event`` (docs/blink-api-contract.md#documented-list): Blink is
    asked for the newest ``limit`` runs of the playbook created since ``since_ms``, at most ``limit`` of
    them are read with GET, and each is checked on that record with :func:`is_run_of`.

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
) -> Procedure[str | None]:
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


def cancel(workspace_id: str, execution_id: str) -> Procedure[bool]:
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


def all_steps(workspace_id: str, execution_id: str) -> Procedure[list[dict[str, Any]]]:
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


class _Exchange:
    """Where a procedure stands: the request it waits for the answer to (``None`` once done), then its result."""

    def __init__(self, procedure: Procedure[Any]) -> None:
        self._procedure = procedure
        self.request: api.ApiCall[Any] | None = None
        self.result: Any = None
        self._resume(lambda: next(procedure))

    def answered(self, answer: Any) -> None:
        self._resume(lambda: self._procedure.send(answer))

    def refused(self, error: BlinkApiError) -> None:
        """Blink answered with an error, which the procedure may read (or let through)."""
        self._resume(lambda: self._procedure.throw(error))

    def _resume(self, step: Callable[[], api.ApiCall[Any]]) -> None:
        try:
            self.request = step()
        except StopIteration as done:
            self.request, self.result = None, done.value


def drive(procedure: Procedure[T], call: Callable[[api.ApiCall[Any]], Any]) -> T:
    """Run ``procedure`` with a synchronous ``call`` (:meth:`BlinkHook.call`); a failure without an answer ends it."""
    exchange = _Exchange(procedure)
    while exchange.request is not None:
        try:
            answer = call(exchange.request)
        except BlinkApiError as refused:
            exchange.refused(refused)
        else:
            exchange.answered(answer)
    result: T = exchange.result
    return result


async def adrive(procedure: Procedure[T], call: Callable[[api.ApiCall[Any]], Awaitable[Any]]) -> T:
    """Async :func:`drive`, with :meth:`BlinkAsyncClient.call`."""
    exchange = _Exchange(procedure)
    while exchange.request is not None:
        try:
            answer = await call(exchange.request)
        except BlinkApiError as refused:
            exchange.refused(refused)
        else:
            exchange.answered(answer)
    result: T = exchange.result
    return result


class StartPlaybook:
    """
    Starting a playbook, and finding the run that an ambiguous failure to start it may have started.

    A client sends :attr:`call` with a ``recover`` that runs :meth:`lookup` and passes what it found
    to :meth:`found`, so one start never becomes two runs.

    :param config: the connection.
    :param playbook_id: the playbook's id.
    :param workspace_id: overrides the connection's workspace.
    :param body: the execute fields (see :func:`.api.execute_body`).
    """

    def __init__(
        self,
        config: BlinkConnectionConfig,
        playbook_id: str,
        workspace_id: str | None,
        body: Mapping[str, Any],
    ) -> None:
        self._workspace = config.workspace(workspace_id)
        self.playbook_id = playbook_id
        #: The execute call.
        self.call = api.execute(self._workspace, playbook_id, api.execute_body(**body))
        self._first_attempt_ms = int(time.time() * 1000)

    def lookup(self) -> Procedure[str | None]:
        """The lookup of the run this start made (:func:`started_run`)."""
        return started_run(self._workspace, self.playbook_id, self.call.body, self._first_attempt_ms)

    def found(self, execution_id: str | None, log: Any) -> str | None:
        """Say in the log when the lookup found the run this start had started; return its id."""
        if execution_id:
            log.warning(
                "Starting playbook %s failed ambiguously; it had started %s", self.playbook_id, execution_id
            )
        return execution_id


def run_sync_call(
    config: BlinkConnectionConfig,
    playbook_id: str,
    workspace_id: str | None,
    timeout: int | None,
    body: Mapping[str, Any],
) -> api.ApiCall[Any]:
    """The call running a playbook in Blink's synchronous mode, read for as long as Blink may take."""
    read_timeout = (timeout or config.timeout) + RUN_SYNC_GRACE
    workspace = config.workspace(workspace_id)
    return api.execute_sync(workspace, playbook_id, api.execute_body(**body), timeout, read_timeout)


class ExecutionPages:
    """
    Paging through every execution matching a query: the query of each page, and reading each page.

    A client lists one page per query it yields and hands the page to :meth:`read`; iteration ends
    after the last page, or with a clear error when Blink's pages would never end (see
    :class:`.api.Pages`).

    :param workspace_id: the workspace listed.
    :param page_size: executions per page.
    :param query: RQL ``filter``, ``sort`` (default ``created_at``, then ``id``), ``select``.
    """

    def __init__(self, workspace_id: str, page_size: int, query: Mapping[str, Any]) -> None:
        self._page_size = page_size
        self._query = {"sort": ["created_at", "id"], **query}  # id: Blink promises no order among ties
        self._pages = api.execution_pages(workspace_id)
        self._offset: int | None = 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while self._offset is not None:
            yield dict(limit=self._page_size, offset=self._offset, **self._query)

    def read(self, page: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The page's executions; the next query (if any) starts after them."""
        if self._offset is not None:
            self._offset = self._pages.next_offset(page)
        results: list[dict[str, Any]] = page["results"]
        return results


# -- The sync hook ---------------------------------------------------------------------------------


class BlinkHook(BaseHook):
    """
    Talk to Blink's REST API through an Airflow ``blink`` connection.

    Synchronous calls share one keep-alive ``requests.Session``; for asynchronous calls open
    :meth:`async_client` once and make every call through it. Failed calls are retried per
    :mod:`.transport`; errors are :mod:`airflow_provider_blink.exceptions`.

    :param blink_conn_id: the Airflow connection: Host = Blink URL, Password = API key, extra
        ``workspace_id`` (default workspace), ``timeout``, ``verify``, ``proxies``,
        ``retry_limit``, ``retry_delay``.
    """

    conn_name_attr = "blink_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
    hook_name = "Blink"

    def __init__(self, blink_conn_id: str = DEFAULT_CONN_ID) -> None:
        super().__init__()
        self.blink_conn_id = blink_conn_id

    def __repr__(self) -> str:
        return f"{type(self).__name__}(blink_conn_id={self.blink_conn_id!r})"

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Relabel and hide connection-form boxes (Airflow 2; Airflow 3 reads provider info)."""
        return {
            "hidden_fields": list(UI_FIELD_BEHAVIOUR["hidden_fields"]),
            "relabeling": dict(UI_FIELD_BEHAVIOUR["relabeling"]),
            "placeholders": dict(UI_FIELD_BEHAVIOUR["placeholders"]),
        }

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Add the Workspace ID box to the connection form (Airflow 2; Airflow 3 reads provider info)."""
        from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import StringField

        return {
            name: StringField(
                lazy_gettext(spec["label"]), widget=BS3TextFieldWidget(), description=spec["description"]
            )
            for name, spec in CONN_FIELDS.items()
        }

    @functools.cached_property
    def config(self) -> BlinkConnectionConfig:
        """The connection, read once per hook."""
        return read_connection(self.get_connection(self.blink_conn_id))

    async def aget_config(self) -> BlinkConnectionConfig:
        """The connection, read without blocking the event loop (see :func:`.aread_connection`)."""
        return await aread_connection(self.blink_conn_id)

    @functools.cached_property
    def session(self) -> requests.Session:
        """One keep-alive session per hook: repeated calls reuse its TCP/TLS connection."""
        warn_if_unverified(self.config, self.log)
        return transport.new_sync_session(self.config)

    def close(self) -> None:
        """Release the session's connections (a new one opens on the next call)."""
        if "session" in self.__dict__:
            self.__dict__.pop("session").close()

    def _send(self, call: api.ApiCall[Any]) -> Any:
        return transport.send(self.session, self.config, call)

    def call(self, call: api.ApiCall[Any], recover: Callable[[], Any] | None = None) -> Any:
        """
        Make one API call with retries (:func:`.transport.call_with_retries`); the methods below use it.

        :param recover: for a call that is not idempotent: after an ambiguous failure, finds what
            the failed attempt did (or ``None``) before the call is sent again.
        """
        return transport.call_with_retries(call, self.config, self.log, self._send, recover)

    def execute_playbook(self, playbook_id: str, *, workspace_id: str | None = None, **body: Any) -> str:
        """
        Start a playbook and return the new execution's id.

        Starting is not idempotent: when an attempt fails without showing whether Blink started
        the run (timeout, dropped answer, 502/504), the hook looks for that run before sending
        again, so one call never starts two executions.

        :param playbook_id: the playbook's id.
        :param workspace_id: overrides the connection's workspace.
        :param body: ``input_values``, ``event``, ``runner``, ``trigger_type``, ``callback``, ``past_exec_ref``.
        """
        start = StartPlaybook(self.config, playbook_id, workspace_id, body)
        return self.call(start.call, lambda: start.found(drive(start.lookup(), self.call), self.log))

    def run_playbook_sync(
        self, playbook_id: str, *, workspace_id: str | None = None, timeout: int | None = None, **body: Any
    ) -> Any:
        """
        Run a playbook in Blink's synchronous mode and return its output (Blink answers when it ends).

        :param timeout: seconds Blink waits for the playbook (Blink's ``timeout`` query parameter).
        """
        return self.call(run_sync_call(self.config, playbook_id, workspace_id, timeout, body))

    def get_execution(self, execution_id: str, *, workspace_id: str | None = None) -> dict[str, Any]:
        """Return the execution record."""
        return self.call(api.get_execution(self.config.workspace(workspace_id), execution_id))

    def get_execution_steps(
        self, execution_id: str, *, workspace_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Return every step of the execution (all pages), each with ``input_data``, ``output_data``, ``error_data``."""
        return drive(all_steps(self.config.workspace(workspace_id), execution_id), self.call)

    def list_executions(self, *, workspace_id: str | None = None, **query: Any) -> dict[str, Any]:
        """
        Return one page of executions matching an RQL query.

        :param query: ``filter``, ``sort``, ``limit`` (1..1000), ``offset``, ``select``.
        """
        return self.call(api.list_executions(self.config.workspace(workspace_id), api.rql_query(**query)))

    def iter_executions(
        self, *, workspace_id: str | None = None, page_size: int = api.MAX_PAGE_SIZE, **query: Any
    ) -> Iterator[dict[str, Any]]:
        """Yield every execution matching ``filter``, page by page (memory stays at one page)."""
        pages = ExecutionPages(self.config.workspace(workspace_id), page_size, query)
        for page_query in pages:
            yield from pages.read(self.list_executions(workspace_id=workspace_id, **page_query))

    def runs_of_request(
        self, playbook_id: str, body: Mapping[str, Any], since_ms: int, *, workspace_id: str | None = None
    ) -> list[dict[str, Any]]:
        """
        Every run of ``playbook_id`` with the execute ``body``'s request started since ``since_ms``, newest first.

        Less :data:`CLOCK_SKEW_MS` for the clocks of Airflow and Blink (see :func:`matching_runs`).

        :raises BlinkLookupIncomplete: too many runs started meanwhile to tell.
        """
        workspace = self.config.workspace(workspace_id)
        lookup = matching_runs(workspace, playbook_id, body, since_ms - CLOCK_SKEW_MS, exhaustive=True)
        return drive(lookup, self.call)

    def cancel_execution(self, execution_id: str, *, workspace_id: str | None = None) -> bool:
        """
        Cancel an execution: ``True`` on any 2xx; ``False`` when it had already finished.

        :raises BlinkCancelRefusedError: Blink refused although the execution still runs.
        """
        return drive(cancel(self.config.workspace(workspace_id), execution_id), self.call)

    def test_connection(self) -> tuple[bool, str]:
        """
        Check the URL, key and workspace with one cheap call (list one execution).

        Shows Blink's own error text; of an answer that is not Blink's only its status and content
        type, so pointing the URL at an internal service reveals nothing of it.
        """
        try:
            workspace = self.config.workspace()
            self.list_executions(limit=1)
        except BlinkError as exc:
            if exc.foreign_answer:
                return False, (
                    f"{self.config.url} answered with {exc.foreign_answer}, which is not Blink's API: "
                    "check the connection's Blink URL."
                )
            return False, str(exc)
        return True, f"Connected to Blink at {self.config.url}, workspace {workspace!r}."

    def async_client(self, *, shared: bool = False) -> AsyncClientScope:
        """
        Make a series of async calls over one aiohttp session (``async with``); the connection is read once.

        :param shared: use the event loop's shared session for this connection instead of a
            private one, so many concurrent users (triggers) pool their TCP connections.
        """
        return AsyncClientScope(self, shared=shared)


class AsyncClientScope:
    """
    ``async with hook.async_client() as client``: a :class:`BlinkAsyncClient` over a session for the block.

    A class rather than a generator: thousands of triggers each hold one for as long as they wait.
    """

    __slots__ = ("_hook", "_session", "_shared")

    def __init__(self, hook: BlinkHook, *, shared: bool) -> None:
        self._hook, self._shared = hook, shared

    async def __aenter__(self) -> BlinkAsyncClient:
        config = await self._hook.aget_config()
        self._session: transport.SharedSession | aiohttp.ClientSession = (
            transport.SharedSession(config) if self._shared else transport.new_session(config)
        )
        return BlinkAsyncClient(config, await self._session.__aenter__(), self._hook.log)

    async def __aexit__(self, *exc_info: Any) -> None:
        await self._session.__aexit__(*exc_info)


# -- The async client ------------------------------------------------------------------------------


class BlinkAsyncClient:
    """
    Asynchronous Blink calls over one aiohttp session, with the same methods as :class:`BlinkHook`.

    Get one from :meth:`BlinkHook.async_client`.
    """

    def __init__(self, config: BlinkConnectionConfig, session: aiohttp.ClientSession, log: Any) -> None:
        self.config = config
        self._session = session
        self._log = log
        self._settings = transport.aio_settings(config)  # once per client: a trigger polls through it
        warn_if_unverified(config, log)

    @property
    def log(self) -> Any:
        """The logger the client reports retries and warnings to."""
        return self._log

    async def _send(self, call: api.ApiCall[Any]) -> Any:
        return await transport.asend(self._session, self.config, self._settings, call)

    async def call(
        self,
        call: api.ApiCall[Any],
        recover: Callable[[], Awaitable[Any]] | None = None,
        *,
        retry_when: Callable[[BaseException], bool] | None = None,
    ) -> Any:
        """
        Make one API call with retries (same policy and ``recover`` as :meth:`BlinkHook.call`).

        :param retry_when: retry only the failures this accepts too (see :meth:`.RetryPolicy.tenacity_kwargs`).
        """
        return await transport.acall_with_retries(
            call, self.config, self._log, self._send, recover, retry_when
        )

    async def execute_playbook(
        self, playbook_id: str, *, workspace_id: str | None = None, **body: Any
    ) -> str:
        """Async :meth:`BlinkHook.execute_playbook` (with the same protection against a second run)."""
        start = StartPlaybook(self.config, playbook_id, workspace_id, body)

        async def recover() -> str | None:
            return start.found(await adrive(start.lookup(), self.call), self._log)

        return await self.call(start.call, recover)

    async def run_playbook_sync(
        self, playbook_id: str, *, workspace_id: str | None = None, timeout: int | None = None, **body: Any
    ) -> Any:
        """Async :meth:`BlinkHook.run_playbook_sync`."""
        return await self.call(run_sync_call(self.config, playbook_id, workspace_id, timeout, body))

    async def get_execution(self, execution_id: str, *, workspace_id: str | None = None) -> dict[str, Any]:
        """Async :meth:`BlinkHook.get_execution`."""
        return await self.call(api.get_execution(self.config.workspace(workspace_id), execution_id))

    async def get_execution_steps(
        self, execution_id: str, *, workspace_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Async :meth:`BlinkHook.get_execution_steps`."""
        return await adrive(all_steps(self.config.workspace(workspace_id), execution_id), self.call)

    async def list_executions(
        self,
        *,
        workspace_id: str | None = None,
        retry_when: Callable[[BaseException], bool] | None = None,
        **query: Any,
    ) -> dict[str, Any]:
        """Async :meth:`BlinkHook.list_executions` (``retry_when``: see :meth:`call`)."""
        return await self.call(
            api.list_executions(self.config.workspace(workspace_id), api.rql_query(**query)),
            retry_when=retry_when,
        )

    async def iter_executions(
        self, *, workspace_id: str | None = None, page_size: int = api.MAX_PAGE_SIZE, **query: Any
    ) -> AsyncIterator[dict[str, Any]]:
        """Async :meth:`BlinkHook.iter_executions`."""
        pages = ExecutionPages(self.config.workspace(workspace_id), page_size, query)
        for page_query in pages:
            for execution in pages.read(await self.list_executions(workspace_id=workspace_id, **page_query)):
                yield execution

    async def runs_of_request(
        self, playbook_id: str, body: Mapping[str, Any], since_ms: int, *, workspace_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Async :meth:`BlinkHook.runs_of_request`."""
        workspace = self.config.workspace(workspace_id)
        lookup = matching_runs(workspace, playbook_id, body, since_ms - CLOCK_SKEW_MS, exhaustive=True)
        return await adrive(lookup, self.call)

    async def cancel_execution(self, execution_id: str, *, workspace_id: str | None = None) -> bool:
        """Async :meth:`BlinkHook.cancel_execution`."""
        return await adrive(cancel(self.config.workspace(workspace_id), execution_id), self.call)
