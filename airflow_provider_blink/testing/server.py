"""The aiohttp application that speaks the Blink REST API over the emulator's state."""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import threading
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from aiohttp import web

from airflow_provider_blink import endpoints as blink_api
from airflow_provider_blink.testing.faults import LIST_KINDS, Fault, FaultQueue
from airflow_provider_blink.testing.playbooks import raw_state
from airflow_provider_blink.testing.records import LIST_FIELDS, STEP_FIELDS, execution_answer, list_item
from airflow_provider_blink.testing.rql import Query, RqlError, parse_query
from airflow_provider_blink.testing.state import (
    CANCEL_REASON,
    CANCELLED_STATE_UI,
    COMPLETED,
    EmulatorState,
    LookupFailed,
    NotRunning,
    Role,
)

log = logging.getLogger(__name__)

API_PREFIX = blink_api.API_PREFIX
API_KEY_HEADER = "BLINK-API-KEY"
REDACTED = "***"
_POLL_INTERVAL = 0.05
_CALLBACK_TYPES: dict[str, type] = {
    "url": str,
    "method": str,
    "headers": dict,
    "body": dict,
    "cookies": dict,
    "disableSSL": bool,
    "excludeDefaultMetadata": bool,
}
#: The execute body's fields (blink-api-contract.md#documented-execute): the type each must have,
#: and the field of the execution's record that keeps it, if any: ``inputs``, ``event``,
#: ``runner_group_id`` and ``trigger_type`` are the single GET's (blink-api-contract.md#documented-get);
#: ``past_exec_ref`` is the emulator's bookkeeping, never in an answer.
_BODY_FIELDS: dict[str, tuple[type, str | None]] = {
    "input_values": (dict, "inputs"),
    "event": (dict, "event"),
    "runner": (str, "runner_group_id"),  # "the runner group that will run the workflow"
    "trigger_type": (str, "trigger_type"),
    "past_exec_ref": (str, "past_exec_ref"),
    "callback": (dict, None),
}
_BODY_TYPES = {name: expected for name, (expected, _) in _BODY_FIELDS.items()}
_TYPE_NAMES = {dict: "an object", str: "a string", bool: "a boolean"}
#: How a successful cancel may answer. The 2022 spec types the 200 as a string (blink-api-contract.md#observed-cancel:
#: "expect a JSON string, plain text or an empty body").
CANCEL_ANSWERS = frozenset({"json", "text", "empty"})


@dataclass
class AnswerStyle:
    """
    Where Blink leaves the shape of an answer open, which one the emulator gives.

    :param cancel: a successful cancel's body: ``"json"`` (the JSON string ``"OK"``), ``"text"``
        (``OK`` as text/plain) or ``"empty"`` (no body).
    :param null_results: an empty list or steps page says ``"results": null`` (what a Go server
        sends for a nil slice) instead of ``[]``.
    """

    cancel: str = "json"
    null_results: bool = False

    def __post_init__(self) -> None:
        if self.cancel not in CANCEL_ANSWERS:
            raise ValueError(f"cancel answer must be one of {sorted(CANCEL_ANSWERS)}, got {self.cancel!r}")

    def page(self, limit: int, offset: int, total: int, results: list[dict[str, Any]]) -> dict[str, Any]:
        """A paginated answer ``{limit, offset, total, results}`` (blink-api-contract.md#documented-list; #observed-steps for steps)."""
        return {
            "limit": limit,
            "offset": offset,
            "total": total,
            "results": None if self.null_results and not results else results,
        }


@dataclass(frozen=True)
class RequestRecord:
    """
    One request the emulator received, with the API key redacted.

    :param status: the status sent, or 0 when the connection was closed without a response.
    :param endpoint: which endpoint it reached (``execute``, ``get``, ``list``, ``cancel``,
        ``steps``), or ``""`` for a path that is none of them.
    """

    method: str
    path: str
    query: dict[str, str]
    body: Any | None
    headers: dict[str, str]
    status: int
    endpoint: str = ""


class RequestLog:
    """Thread-safe, append-only list of :class:`RequestRecord`, with a count per endpoint."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []
        self._counts: collections.Counter[str] = collections.Counter()

    def append(self, record: RequestRecord) -> None:
        with self._lock:
            self._records.append(record)
            self._counts[record.endpoint] += 1

    def counts(self) -> dict[str, int]:
        """Requests received so far per endpoint (see :attr:`RequestRecord.endpoint`)."""
        with self._lock:
            return dict(self._counts)

    def snapshot(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)


class ApiError(Exception):
    """An error answered with Blink's ``ErrorWrapper`` body."""

    def __init__(self, status: int, message: str, details: str = "", data: dict[str, Any] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details
        self.data = data or {}


class _ConnectionDropped(Exception):
    """The connection was closed on purpose; nothing is sent."""


def error_response(
    status: int, message: str, details: str = "", data: dict[str, Any] | None = None
) -> web.Response:
    """Build an ``ErrorWrapper`` response with a fresh identifier."""
    body = {
        "status": status,
        "message": message,
        "details": details,
        "identifier": str(uuid.uuid4()),
        "data": data or {},
        "user_error": {},
    }
    return web.json_response(body, status=status)


def build_app(
    state: EmulatorState, faults: FaultQueue, requests_log: RequestLog, style: AnswerStyle | None = None
) -> web.Application:
    """Create the application serving the Blink API under ``/api/v1``."""
    api = _BlinkApi(state, faults, requests_log, style or AnswerStyle())
    app = web.Application(middlewares=[api.middleware])
    handlers: dict[str, Handler] = {
        "execute": api.execute,
        "list": api.list,
        "get": api.get,
        "cancel": api.cancel,
        "steps": api.steps,
    }
    for endpoint in blink_api.ENDPOINTS.values():  # the provider's registry: every route it calls
        app.router.add_route(
            endpoint.method, API_PREFIX + endpoint.path, handlers[endpoint.name], name=endpoint.name
        )
    return app


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _BlinkApi:
    def __init__(
        self, state: EmulatorState, faults: FaultQueue, requests_log: RequestLog, style: AnswerStyle
    ) -> None:
        self.state = state
        self.faults = faults
        self.requests_log = requests_log
        self.style = style
        #: The handlers that stand in for an endpoint's under the ``unfiltered`` fault.
        self._unfiltered: dict[str, Handler] = {
            "get": self.get_in_any_workspace,
            "list": self.list_everything,
        }

    # -- cross-cutting: auth, faults, errors, the request log ------------------------------------

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        body: bytes | None = None
        status = 0
        try:
            if not self.state.is_known_key(request.headers.get(API_KEY_HEADER)):
                raise ApiError(401, "Unauthorized", "invalid or expired API key")
            endpoint = request.match_info.route.name
            fault = self.faults.take(endpoint) if endpoint else None
            if fault is not None and fault.kind == "close_before":
                raise _ConnectionDropped
            body = await request.read()
            response = await self._respond(request, handler, fault)
            status = response.status
            return response
        except _ConnectionDropped:
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=499)  # never written: the transport is closed
        except ApiError as exc:
            status = exc.status
            return error_response(exc.status, exc.message, exc.details, exc.data)
        except web.HTTPException as exc:  # e.g. 413 from reading an oversized body
            status = exc.status
            return error_response(exc.status, exc.reason, f"{request.method} {request.path}")
        finally:
            self._record(request, body, status)

    async def _respond(self, request: web.Request, handler: Handler, fault: Fault | None) -> web.Response:
        if fault is not None and fault.kind == "slow":
            await asyncio.sleep(fault.delay)
        if fault is not None and not fault.processed:
            return _fault_response(fault)
        if fault is not None and fault.kind == "unfiltered":
            handler = self._unfiltered.get(request.match_info.route.name or "", handler)
        response = await self._call(request, handler)
        if fault is None or fault.kind in ("slow", "unfiltered"):
            return response
        if fault.kind == "slow_after":
            await asyncio.sleep(fault.delay)
            return response
        if fault.kind == "close_after":
            raise _ConnectionDropped
        if fault.kind in LIST_KINDS and response.status == 200:
            return _hostile_page(response, fault)
        return _fault_response(fault)

    async def _call(self, request: web.Request, handler: Handler) -> web.Response:
        try:
            response = await handler(request)
        except ApiError as exc:
            return error_response(exc.status, exc.message, exc.details, exc.data)
        except web.HTTPException as exc:  # the router's 404 / 405
            message = "not found" if exc.status == 404 else exc.reason
            return error_response(exc.status, message, f"{request.method} {request.path}")
        except Exception as exc:
            log.exception("Blink emulator handler failed")
            return error_response(500, "internal error in the Blink emulator", type(exc).__name__)
        assert isinstance(response, web.Response)
        return response

    def _record(self, request: web.Request, body: bytes | None, status: int) -> None:
        headers = {
            name: (REDACTED if name.lower() == API_KEY_HEADER.lower() else value)
            for name, value in request.headers.items()
        }
        route = request.match_info.route.name if request.match_info.route else None
        record = RequestRecord(
            request.method,
            request.path,
            dict(request.query),
            _decode_body(body),
            headers,
            status,
            route or "",
        )
        self.requests_log.append(record)
        log.debug("%s %s -> %s", request.method, request.path, status or "connection closed")

    def _workspace(self, request: web.Request, *, write: bool = False) -> str:
        workspace_id = request.match_info["workspace_id"]
        if not self.state.has_workspace(workspace_id):
            raise ApiError(404, "workspace not found", f"workspace {workspace_id!r} does not exist")
        role = self.state.role(request.headers.get(API_KEY_HEADER), workspace_id)
        if role is None:
            raise ApiError(403, "Forbidden", "the user has no role in this workspace")
        if write and role is not Role.ADMIN:
            raise ApiError(403, "Forbidden", "the user has no permission to run playbooks in this workspace")
        return workspace_id

    # -- endpoints --------------------------------------------------------------------------------

    async def execute(self, request: web.Request) -> web.Response:
        """
        Start a run; with ``run_sync=true`` wait for it and answer its output.

        Blink does not document ``run_sync`` failures; the emulator's assumption: a run ending in any
        state but Completed answers 400 ``"playbook execution failed"`` (details: the error message or
        the state; data: ``execution_id`` and ``state``), and a ``timeout`` that passes first answers
        408 ``"timed out waiting for the playbook to finish"`` (data: ``execution_id``) while the run
        goes on.
        """
        workspace_id = self._workspace(request, write=True)
        try:
            playbook = self.state.playbook(workspace_id, request.match_info["playbook_id"])
        except LookupFailed:
            raise ApiError(
                404, "playbook not found", f"no playbook {request.match_info['playbook_id']!r}"
            ) from None
        run_sync = _bool_param(request, "run_sync")
        timeout = _int_param(request, "timeout")
        params = _execute_body(await request.read())
        shown = {shown: params[name] for name, (_, shown) in _BODY_FIELDS.items() if shown and name in params}
        execution = self.state.create(playbook, shown)
        if not run_sync:
            return web.json_response({"execution_id": execution.id})
        return await self._wait(execution.id, timeout)

    async def _wait(self, execution_id: str, timeout: int | None) -> web.Response:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            record, finished, output, remaining = self.state.poll(execution_id)
            if finished:
                break
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                raise ApiError(
                    408,
                    "timed out waiting for the playbook to finish",
                    f"the execution did not finish within {timeout} seconds",
                    {"execution_id": execution_id},
                )
            await asyncio.sleep(min(_POLL_INTERVAL, remaining, left if left is not None else remaining))
        if record["state_ui"].lower() == COMPLETED.lower():
            return web.json_response(output or {})
        raise ApiError(
            400,
            "playbook execution failed",
            record["error_details"].get("message") or record["state_ui"],
            {"execution_id": execution_id, "state": record["state_ui"]},
        )

    async def get(self, request: web.Request) -> web.Response:
        """Exactly the documented fields (blink-api-contract.md#documented-get)."""
        workspace_id = self._workspace(request)
        record = self._lookup(self.state.get, request.match_info["execution_id"], workspace_id)
        return web.json_response(execution_answer(record))

    async def list(self, request: web.Request) -> web.Response:
        """
        List items carry exactly the documented fields (blink-api-contract.md#documented-list) (no inputs, no event); the filter sees those.

        A filter on ``id`` alone (``$or`` of equalities, blink-api-contract.md#documented-rql) is answered by looking the
        ids up: the same answer as a scan, in time that does not grow with the workspace.
        """
        workspace_id = self._workspace(request)
        query = _query(request, LIST_FIELDS)
        total, page = query.run(self.state.records(workspace_id, query.ids), list_item)
        return web.json_response(self.style.page(query.limit, query.offset, total, page))

    async def get_in_any_workspace(self, request: web.Request) -> web.Response:
        """Fault ``unfiltered``: the execution, whichever workspace holds it."""
        self._workspace(request)
        record = self._lookup(self.state.get, request.match_info["execution_id"], None)
        return web.json_response(execution_answer(record))

    async def list_everything(self, request: web.Request) -> web.Response:
        """Fault ``unfiltered``: every execution of every workspace, newest first, whatever the query."""
        self._workspace(request)
        query = _query(request, LIST_FIELDS)
        everything = sorted(self.state.records(), key=lambda record: -record["created_at"])
        return web.json_response(
            self.style.page(query.limit, 0, len(everything), [list_item(record) for record in everything])
        )

    async def cancel(self, request: web.Request) -> web.Response:
        """Not documented: blink-api-contract.md#observed-cancel gives its statuses and messages."""
        self._workspace(request, write=True)
        execution_id = request.match_info["execution_id"]
        self._lookup(self.state.get, execution_id, request.match_info["workspace_id"])
        try:
            self.state.finish(
                execution_id,
                CANCELLED_STATE_UI,
                error_details={},
                cancel_reason=CANCEL_REASON,
                only_running=True,
            )
        except NotRunning:
            raise ApiError(
                400, "Cannot cancel execution, it is not in a running state", f"execution {execution_id}"
            ) from None
        return _cancelled(self.style.cancel)

    async def steps(self, request: web.Request) -> web.Response:
        """
        Answer one page of an execution's steps.

        Not documented: blink-api-contract.md#observed-steps gives ``{limit, offset, total, results}``. How a client
        pages is undocumented; the emulator's assumption: the list's RQL ``q`` (``limit``/``offset``).
        """
        workspace_id = self._workspace(request)
        query = _query(request, STEP_FIELDS)
        total, page = query.run(
            self._lookup(self.state.steps, request.match_info["execution_id"], workspace_id)
        )
        return web.json_response(self.style.page(query.limit, query.offset, total, page))

    @staticmethod
    def _lookup(getter: Callable[[str, Any], Any], execution_id: str, workspace_id: str | None) -> Any:
        try:
            return getter(execution_id, workspace_id)
        except LookupFailed:
            raise ApiError(404, "execution not found", f"no execution {execution_id!r}") from None


def _query(request: web.Request, fields: tuple[str, ...]) -> Query:
    try:
        return parse_query(request.query.get("q"), fields)
    except RqlError as exc:
        raise ApiError(400, "invalid query", str(exc)) from None


def _cancelled(style: str) -> web.Response:
    if style == "empty":
        return web.Response(status=200)
    if style == "text":
        return web.Response(status=200, text="OK", content_type="text/plain")
    return web.json_response("OK")


def _hostile_page(response: web.Response, fault: Fault) -> web.Response:
    """The list answer ``response`` with the items ``fault`` adds: unasked ones, or conflicting copies."""
    assert isinstance(response.body, bytes)
    page = json.loads(response.body)
    items: list[dict[str, Any]] = page.pop("results")
    if fault.kind == "conflicting_items":
        items = [copy for item in items for copy in (_in_another_final_state(item), item)]
    listed = json.dumps(items).encode()[1:-1]
    # Written as bytes: a million padding items would take the emulator seconds as JSON objects.
    unasked = b",".join(b'{"id":"u%07d"}' % n for n in range(fault.count))
    results = b",".join(part for part in (listed, unasked) if part)
    body = json.dumps(page).encode()[:-1] + b', "results": [' + results + b"]}"
    return web.Response(status=200, body=body, content_type="application/json")


def _in_another_final_state(item: dict[str, Any]) -> dict[str, Any]:
    state_ui = "Failed" if item.get("state_ui") == COMPLETED else COMPLETED
    return {**item, "state_ui": state_ui, "state": raw_state(state_ui)}


def _fault_response(fault: Fault) -> web.Response:
    if fault.kind == "malformed_json":
        return web.Response(status=200, text='{"execution_id": ', content_type="application/json")
    if fault.kind == "empty":
        return web.Response(status=200, body=b"")
    status = fault.status or 502
    phrase = _phrase(status)
    if fault.kind == "html":
        title = f"{status} {phrase}"
        page = f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"
        return web.Response(status=status, text=page, content_type="text/html")
    response = error_response(status, phrase, "injected by the Blink emulator")
    if fault.retry_after is not None:
        response.headers["Retry-After"] = f"{fault.retry_after:g}"
    return response


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _decode_body(body: bytes | None) -> Any | None:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return body.decode("utf-8", errors="replace")


def _bool_param(request: web.Request, name: str) -> bool:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return False
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise ApiError(400, "invalid request parameters", f"{name} must be true or false, got {raw!r}")


def _int_param(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "invalid request parameters", f"{name} must be an integer, got {raw!r}") from None
    if value < 0:
        raise ApiError(400, "invalid request parameters", f"{name} must be >= 0, got {value}")
    return value


def _execute_body(raw: bytes) -> dict[str, Any]:
    """Parse and type-check the execute body; ``null`` fields count as absent."""
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise ApiError(400, "invalid request body", "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid request body", "the request body must be a JSON object")
    _check_types(body, _BODY_TYPES, "")
    if isinstance(body.get("callback"), dict):
        _check_types(body["callback"], _CALLBACK_TYPES, "callback.")
    return {k: v for k, v in body.items() if v is not None}


def _check_types(obj: dict[str, Any], types: dict[str, type], prefix: str) -> None:
    for name, expected in types.items():
        value = obj.get(name)
        if value is not None and not isinstance(value, expected):
            wanted = _TYPE_NAMES.get(expected, expected.__name__)
            raise ApiError(
                400,
                "invalid request body",
                f"field {prefix}{name} must be {wanted}, got {type(value).__name__}",
            )
