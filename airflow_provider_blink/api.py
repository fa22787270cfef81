"""Blink's REST API calls: each request (to an endpoint of :mod:`.endpoints`) and how its answer is read."""

from __future__ import annotations

import json
import math
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote, urlsplit

from airflow_provider_blink import endpoints
from airflow_provider_blink.exceptions import (
    BlinkApiError,
    BlinkConfigurationError,
    BlinkRedirectError,
    BlinkResponseError,
    api_error_class,
)

T = TypeVar("T")

API_PREFIX = endpoints.API_PREFIX
#: Largest page Blink's RQL accepts.
MAX_PAGE_SIZE = 1000
#: Answers larger than this are refused rather than read into memory.
MAX_ANSWER_BYTES = 32 * 1024 * 1024
#: Bodies longer than this are cut in error messages.
_ERROR_TEXT_LIMIT = 500


def _raise(exc: BlinkApiError) -> Any:
    raise exc


@dataclass(frozen=True)
class ApiCall(Generic[T]):
    """
    One Blink API request and how to read its answer.

    :param method: HTTP method.
    :param path: path below ``/api/v1``, already quoted.
    :param params: query parameters.
    :param body: JSON body, or ``None``.
    :param idempotent: whether repeating the request is harmless (see :mod:`.hooks.transport`).
    :param read: turns the decoded JSON answer into the call's result.
    :param on_error: turns an HTTP error into a result, or re-raises it.
    :param timeout: read timeout override in seconds (``None``: the connection's).
    :param reads_body: whether the answer's body matters; ``False``: any 2xx is the result
        ``read(None)``, whatever the body (Blink's cancel answers a string, text or nothing).
    :param max_bytes: most bytes of the answer (after decompression) this call reads, below
        :data:`MAX_ANSWER_BYTES` when the question bounds its answer (``None``: the cap).
    """

    method: str
    path: str
    read: Callable[[Any], T]
    params: Mapping[str, str] | None = None
    body: Any = None
    idempotent: bool = True
    on_error: Callable[[BlinkApiError], T] = field(default=_raise)
    timeout: float | None = None
    reads_body: bool = True
    max_bytes: int | None = None

    @property
    def what(self) -> str:
        """Short description for messages: method and path, never headers."""
        return f"{self.method} {API_PREFIX}{self.path}"

    @property
    def answer_limit(self) -> int:
        """Most bytes of the answer read: :attr:`max_bytes` within :data:`MAX_ANSWER_BYTES`."""
        return min(self.max_bytes or MAX_ANSWER_BYTES, MAX_ANSWER_BYTES)


def _segment(value: str, name: str) -> str:
    """Quote an id for a URL path, refusing what is not an id (it could address another endpoint)."""
    if not isinstance(value, str) or not value.strip():
        raise BlinkConfigurationError(f"{name} must be a non-empty string, got {value!r}.")
    value = value.strip()
    if value in (".", "..") or any(unicodedata.category(char) == "Cc" for char in value):
        raise BlinkConfigurationError(
            f"{name} {value!r} is not an id: '.', '..' and control characters are not allowed. "
            "Check the argument, template or XCom that supplies it."
        )
    return quote(value, safe="")


def request(
    endpoint: endpoints.Endpoint,
    ids: Mapping[str, str],
    read: Callable[[Any], Any] | None = None,
    **options: Any,
) -> ApiCall[Any]:
    """
    The request to ``endpoint`` for ``ids`` (one per placeholder of its path, each checked and quoted).

    :param read: how to read the answer; default: as the endpoint's kind of answer (:data:`READERS`).
    :param options: the other :class:`ApiCall` fields (``params``, ``body``, ``timeout`` ...).
    """
    path = endpoint.path.format(**{name: _segment(value, name) for name, value in ids.items()})
    reads_body = endpoint.answer != "nothing"
    return ApiCall(
        endpoint.method,
        path,
        read=read or READERS[endpoint.answer],
        idempotent=endpoint.idempotent,
        reads_body=reads_body,
        **options,
    )


def _rql(query: Mapping[str, Any]) -> str:
    """An RQL query as the ``q`` parameter carries it (compact JSON)."""
    return json.dumps(query, separators=(",", ":"))


class _WrongShape(Exception):
    """An answer's field is not what Blink sends (raised by the ``read`` functions, see :func:`parse_answer`)."""

    def __init__(self, field: str, expected: str, value: Any) -> None:
        super().__init__(f"{field} must be {expected}, got {_kind(value)}")


def _kind(value: Any) -> str:
    """The JSON kind of ``value``, for messages (never the value: it may be large or private)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    kinds: dict[type, str] = {dict: "an object", list: "a list", str: "a string"}
    return kinds.get(type(value), type(value).__name__)


_NUMBER = ((int, float), "a number")
_TEXT = ((str,), "a string")
_OBJECT = ((dict,), "an object")
#: The execution fields the provider reads (outcome, summary, failure message, event stream), by type.
_EXECUTION_FIELDS = {
    "state": _TEXT,
    "state_ui": _TEXT,
    "playbook_id": _TEXT,
    "cancel_reason": _TEXT,
    "error_details": _OBJECT,
    "created_at": _NUMBER,
    "started_at": _NUMBER,
    "finished_at": _NUMBER,
    "duration": _NUMBER,
    "net_runtime_ms": _NUMBER,
}
#: The step fields the provider reads (the playbook's output is the last finished step's).
_STEP_FIELDS = {"finished_at": _NUMBER}


def _object(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _WrongShape(field, "an object", value)
    return value


def _check_fields(
    record: dict[str, Any], where: str, fields: Mapping[str, tuple[tuple[type, ...], str]]
) -> None:
    for name, (types, expected) in fields.items():
        value = record.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, types)):
            raise _WrongShape(f"{where}{name}", f"{expected} or null", value)


def _read_execution(body: Any, where: str = "", *, id_required: bool = True) -> dict[str, Any]:
    record = _object(body, where.rstrip(".") or "the execution")
    execution_id = record.get("id")
    if (id_required or execution_id is not None) and (
        not isinstance(execution_id, str) or not execution_id.strip()
    ):
        raise _WrongShape(f"{where}id", "a non-empty string", execution_id)
    _check_fields(record, where, _EXECUTION_FIELDS)
    return record


def _read_listed_execution(body: Any, where: str) -> dict[str, Any]:
    """A list item: like a single execution, but without an ``id`` when the query ``select``-ed none."""
    return _read_execution(body, where, id_required=False)


def _read_execution_id(body: Any) -> str:
    execution_id = _object(body, "the answer").get("execution_id")
    if not isinstance(execution_id, str) or not execution_id.strip():
        raise _WrongShape("execution_id", "a non-empty string", execution_id)
    return execution_id


def _read_step(body: Any, where: str) -> dict[str, Any]:
    step = _object(body, where.rstrip("."))
    _check_fields(step, where, _STEP_FIELDS)
    return step


def _read_page(body: Any, item: Callable[[Any, str], Any] = _read_listed_execution) -> dict[str, Any]:
    """A page ``{limit, offset, total, results}``; ``"results": null`` (a Go nil slice) is an empty page."""
    page = _object(body, "the page")
    if "results" in page and page["results"] is None:
        page = {**page, "results": []}
    results = page.get("results")
    if not isinstance(results, list):
        raise _WrongShape("results", "a list", results)
    for name in ("total", "offset", "limit"):
        number = page.get(name)
        if number is not None and (not isinstance(number, int) or isinstance(number, bool) or number < 0):
            raise _WrongShape(name, "a whole number >= 0 or null", number)
    for index, entry in enumerate(results):
        item(entry, f"results[{index}].")
    return page


def _read_steps_page(body: Any) -> dict[str, Any]:
    return _read_page(body, _read_step)


#: How each kind of answer (:attr:`.endpoints.Endpoint.answer`) is read and checked.
READERS: dict[str, Callable[[Any], Any]] = {
    "execution": _read_execution,
    "execution_id": _read_execution_id,
    "page": _read_page,
    "steps_page": _read_steps_page,
    "nothing": lambda _: True,  # any 2xx, whatever its body
}


def _cut(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= _ERROR_TEXT_LIMIT else f"{text[:_ERROR_TEXT_LIMIT]}... ({len(text)} chars)"


def check_execute_field(name: str, value: Any, *, default: Callable[[Any], Any] | None = None) -> None:
    """
    Check one field of the execute body: its type, and that JSON can write it.

    :param name: a key of :data:`.endpoints.EXECUTE_FIELDS`.
    :param value: the field's value (not ``None``).
    :param default: what to make of a nested value JSON cannot write (``json.dumps``'s ``default``);
        ``None``: such a value is an error.
    """
    spec = endpoints.EXECUTE_FIELDS[name]
    if not isinstance(value, spec.types):
        raise BlinkConfigurationError(f"{name} must be {spec.expected}, got {type(value).__name__}.")
    try:
        json.dumps(dict(value) if isinstance(value, Mapping) else value, allow_nan=False, default=default)
    except (TypeError, ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise BlinkConfigurationError(
            f"{name} must be JSON-serialisable (str, int, float, bool, None, lists and dicts of them): {exc}. "
            "Convert dates, sets and objects to strings or lists first."
        ) from None


def execute_body(**fields: Any) -> dict[str, Any]:
    """
    Validate and build the execute body; fields left ``None`` are not sent.

    :param fields: any of :data:`.endpoints.EXECUTE_FIELDS`.
    """
    for name in fields:
        if name not in endpoints.EXECUTE_FIELDS:
            raise TypeError(f"execute_body() got an unexpected keyword argument {name!r}")
    present = {name: fields[name] for name in endpoints.EXECUTE_FIELDS if fields.get(name) is not None}
    for name, value in present.items():
        check_execute_field(name, value)
    return {name: dict(value) if isinstance(value, Mapping) else value for name, value in present.items()}


def execute(workspace_id: str, playbook_id: str, body: dict[str, Any]) -> ApiCall[str]:
    """Start an execution; answers its id. Not idempotent: a repeat starts a second run."""
    return request(endpoints.EXECUTE, {"workspace_id": workspace_id, "playbook_id": playbook_id}, body=body)


def execute_sync(
    workspace_id: str, playbook_id: str, body: dict[str, Any], timeout: int | None, read_timeout: float
) -> ApiCall[Any]:
    """Run a playbook in Blink's synchronous mode; answers the playbook's output."""
    params = {"run_sync": "true"}
    if (
        timeout is not None
    ):  # an integer number of seconds (docs/blink-api-contract.md#documented-execute); a fraction waits longer
        params["timeout"] = str(math.ceil(timeout))
    ids = {"workspace_id": workspace_id, "playbook_id": playbook_id}
    return request(
        endpoints.EXECUTE, ids, lambda output: output, params=params, body=body, timeout=read_timeout
    )


def get_execution(workspace_id: str, execution_id: str) -> ApiCall[dict[str, Any]]:
    """Read one execution."""
    return request(endpoints.GET_EXECUTION, {"workspace_id": workspace_id, "execution_id": execution_id})


def rql_query(
    *,
    filter: Mapping[str, Any] | None = None,
    sort: list[str] | None = None,
    limit: int | None = None,
    offset: int | None = None,
    select: list[str] | None = None,
) -> dict[str, Any]:
    """Build an RQL ``q`` object, checking the bounds Blink enforces."""
    if limit is not None and not 1 <= limit <= MAX_PAGE_SIZE:
        raise BlinkConfigurationError(f"limit must be between 1 and {MAX_PAGE_SIZE}, got {limit}.")
    if offset is not None and offset < 0:
        raise BlinkConfigurationError(f"offset must be 0 or more, got {offset}.")
    query = {"filter": filter, "sort": sort, "limit": limit, "offset": offset, "select": select}
    return {key: value for key, value in query.items() if value is not None}


def list_executions(workspace_id: str, query: Mapping[str, Any]) -> ApiCall[dict[str, Any]]:
    """List executions matching an RQL query; answers one page ``{limit, offset, total, results}``."""
    return request(endpoints.LIST_EXECUTIONS, {"workspace_id": workspace_id}, params={"q": _rql(query)})


class Pages:
    """
    Where the next page of a list call starts; a clear error when Blink's pages would never end.

    A page that repeats the previous one, results at an offset past ``total``, or more results in
    all than any ``total`` Blink reported would otherwise keep an iteration going forever.

    :param what: the list call, for messages (method and path).
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self.offset = 0
        self._read = 0
        self._most: int | None = None
        self._previous: list[Any] | None = None

    def next_offset(self, page: Mapping[str, Any]) -> int | None:
        """Offset of the page after ``page`` (read at :attr:`offset`), or ``None`` when it was the last."""
        results = page["results"]
        total = page.get("total")
        if not results:
            return None
        if results == self._previous:
            raise self._endless("repeats the previous page")
        if isinstance(total, int):
            if self.offset >= total:
                raise self._endless(f"has results although its total is {total}")
            self._most = max(total, self._most or 0)
        self._read += len(results)
        if self._most is not None and self._read > self._most:
            raise self._endless(f"brings the results to {self._read}, more than the total of {self._most}")
        self._previous = results
        self.offset += len(results)
        return None if isinstance(total, int) and self.offset >= total else self.offset

    def _endless(self, reason: str) -> BlinkResponseError:
        return BlinkResponseError(
            f"Blink's pages for {self.what} do not end: the page at offset {self.offset} {reason}; "
            "stopped paginating."
        )


def execution_pages(workspace_id: str) -> Pages:
    """The pages of :func:`list_executions` in ``workspace_id``."""
    return Pages(list_executions(workspace_id, {}).what)


def execution_steps(workspace_id: str, execution_id: str, offset: int = 0) -> ApiCall[dict[str, Any]]:
    """
    Read one page of an execution's steps (their input, output and error data).

    Observed, not documented (docs/blink-api-contract.md#observed-steps): the page ``{limit, offset, total,
    results}``. How to ask for the next page is unknown; this asks as the list does (RQL ``q``).
    """
    ids = {"workspace_id": workspace_id, "execution_id": execution_id}
    return request(
        endpoints.EXECUTION_STEPS, ids, params={"q": _rql(rql_query(limit=MAX_PAGE_SIZE, offset=offset))}
    )


def cancel_execution(workspace_id: str, execution_id: str) -> ApiCall[bool]:
    """
    Cancel a running execution; answers ``True`` on any 2xx, whatever the body.

    Observed, not documented (docs/blink-api-contract.md#observed-cancel): the 200 is typed as a string, and
    a 400 means "not in a running state"; :meth:`.BlinkHook.cancel_execution` reads a 400.
    """
    ids = {"workspace_id": workspace_id, "execution_id": execution_id}
    return request(endpoints.CANCEL_EXECUTION, ids)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # An HTTP date: rare for APIs; fall back to our own backoff.


def answer_too_large(call: ApiCall[Any], status: int) -> BlinkResponseError:
    """The error for an answer over the call's :attr:`~ApiCall.answer_limit`."""
    limit = call.answer_limit
    if limit < MAX_ANSWER_BYTES:
        return BlinkResponseError(
            f"Blink's answer to {call.what} (HTTP {status}) is larger than {limit // 1024} KiB, more "
            "than what was asked for can take; not reading it."
        )
    return BlinkResponseError(
        f"Blink's answer to {call.what} (HTTP {status}) is larger than {limit // 2**20} MiB; "
        "not reading it. Narrow the query (limit, select) or check the playbook's output size."
    )


def decode(body: bytes, charset: str | None) -> str:
    """Decode an answer's bytes like requests does for JSON: UTF-8 unless told otherwise, never failing."""
    try:
        return body.decode(charset or "utf-8", errors="replace")
    except LookupError:  # an unknown charset name
        return body.decode("utf-8", errors="replace")


#: Fields of Blink's error object (``ErrorWrapper``): an error answer with none of them is not Blink's.
_ERROR_FIELDS = ("message", "details", "identifier")


def _origin(location: str | None) -> str:
    """Where a redirect points, as scheme, host and port only (its path and query may carry tokens)."""
    if not location:
        return "nowhere (no Location header)"
    try:
        parts = urlsplit(location.strip())
        port = parts.port
    except ValueError:
        return "an unreadable Location"
    if not parts.scheme or not parts.hostname:
        return "another path on the same server"
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + ("" if port is None else f":{port}")


def parse_answer(call: ApiCall[Any], status: int, text: str, headers: Mapping[str, str]) -> Any:
    """
    Decode Blink's answer to ``call``: the result, or the provider exception describing the failure.

    A redirect is refused (:class:`.BlinkRedirectError`). An exception caused by an answer that is
    not Blink's carries its status and content type in ``foreign_answer``.

    :param headers: the answer's headers (case-insensitive, as both clients give them).
    """
    foreign = f"HTTP {status}, {headers.get('Content-Type') or 'no content type'}"
    if 300 <= status < 400:
        raise BlinkRedirectError(
            f"Blink answered {call.what} with a redirect to {_origin(headers.get('Location'))}", status=status
        )
    retry_after = headers.get("Retry-After")
    if status >= 400:
        body = _loads(text)
        wrapper = body if isinstance(body, dict) else {}
        message = wrapper.get("message") or ("" if wrapper else _cut(text.strip()))
        error_cls = api_error_class(status)
        error = error_cls(
            f"Blink refused {call.what}",
            status=status,
            message=str(message),
            details=str(wrapper.get("details") or ""),
            identifier=str(wrapper.get("identifier") or ""),
            retry_after=_retry_after(retry_after),
            data=wrapper.get("data") if isinstance(wrapper.get("data"), dict) else None,
        )
        if not any(name in wrapper for name in _ERROR_FIELDS):
            error.foreign_answer = foreign
        return call.on_error(error)
    if not call.reads_body:
        return call.read(None)
    try:
        if not text.strip():
            raise BlinkResponseError(f"Blink answered {call.what} with HTTP {status} and an empty body.")
        body = _loads(text)
        if body is _NOT_JSON:
            raise BlinkResponseError(
                f"Blink answered {call.what} with HTTP {status} and a body that is not JSON: {_cut(text)}"
            )
        return call.read(body)
    except _WrongShape as exc:
        wrong = BlinkResponseError(
            f"Blink's answer to {call.what} (HTTP {status}) is not what Blink sends: {exc}"
        )
        wrong.foreign_answer = foreign
        raise wrong from None
    except BlinkResponseError as exc:
        exc.foreign_answer = foreign
        raise


_NOT_JSON = object()


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        return _NOT_JSON
