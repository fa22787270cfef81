"""
Blink's endpoints that the provider calls: the registry.

The one place Blink's API paths, query parameters and execute-body fields are written. The sync hook
and the async client build their requests from it (:mod:`.api`), the emulator serves its routes and
names its faults after it, and the tests take their tables from it; ``tests/test_api_contract.py``
checks it against the project's account of Blink's API (docs/blink-api-contract.md#endpoints).
Plain data, importable without Airflow (the emulator is).
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

API_PREFIX = "/api/v1"


@dataclass(frozen=True)
class BodyField:
    """
    One field of the execute body.

    :param types: the type(s) its value must have.
    :param expected: how a message names them.
    :param on_record: the field of the execution's record (the single GET's) that shows the value, if
        any: a lookup compares it there to recognise the run a start made.
    :param per_try: keys of a dict field whose values change with every try of a task: never compared.
    """

    types: type | tuple[type, ...]
    expected: str
    on_record: str | None = None
    per_try: frozenset[str] = frozenset()


#: The ``input_values`` key under which a task that opts in (``openlineage_inject_parent_job_info``)
#: sends the playbook its OpenLineage run (docs/openlineage.md). It names the try, so a lookup for
#: the run a start made compares the inputs without it: a retry still recognises its earlier try's run.
OPENLINEAGE_INPUT = "OPENLINEAGE_CONTEXT"


#: The execute body's fields (docs/blink-api-contract.md#endpoints).
EXECUTE_FIELDS: dict[str, BodyField] = {
    "input_values": BodyField(Mapping, "a dict", "inputs", per_try=frozenset({OPENLINEAGE_INPUT})),
    "event": BodyField(Mapping, "a dict", "event"),
    "runner": BodyField(str, "a string (runner group)", "runner_group_id"),
    "trigger_type": BodyField(str, "a string", "trigger_type"),
    "callback": BodyField(Mapping, "a dict (url, method, headers, body ...)"),
    "past_exec_ref": BodyField(str, "a string (execution id)"),
}


@dataclass(frozen=True)
class Endpoint:
    """
    One Blink endpoint the provider calls: the registry the clients, the emulator and the tests share.

    :param name: its short name: the emulator's route and fault name, the contract table's.
    :param method: HTTP method.
    :param path: below :data:`API_PREFIX`, each id a ``{placeholder}`` named like the argument.
    :param hook_methods: the :class:`~airflow_provider_blink.hooks.blink.BlinkHook` (and async client)
        methods that call it.
    :param idempotent: whether repeating the request is harmless.
    :param answer: what a successful answer is, and so how :mod:`.api` reads it: ``execution``,
        ``execution_id``, ``page`` (of executions), ``steps_page``, or ``nothing`` (any 2xx will do).
    :param query: the query parameters the provider sends.
    :param body: the body fields the provider sends.
    """

    name: str
    method: str
    path: str
    hook_methods: tuple[str, ...]
    answer: str
    idempotent: bool = True
    query: tuple[str, ...] = ()
    body: tuple[str, ...] = ()

    @property
    def ids(self) -> tuple[str, ...]:
        """The names of the path's placeholders, in order."""
        return tuple(name for _, name, _, _ in string.Formatter().parse(self.path) if name)

    def matches(self, method: str, path: str) -> bool:
        """Whether a request (``path`` below :data:`API_PREFIX`, without its query) goes to this endpoint."""
        parts = string.Formatter().parse(self.path)
        pattern = "".join(re.escape(literal) + ("[^/]+" if name else "") for literal, name, _, _ in parts)
        return method == self.method and re.fullmatch(pattern, path) is not None


_EXECUTION = "/workspace/{workspace_id}/executions/{execution_id}"
EXECUTE = Endpoint(
    "execute",
    "POST",
    "/workspace/{workspace_id}/playbooks/{playbook_id}/execute",
    ("execute_playbook", "run_playbook_sync"),
    "execution_id",  # with run_sync, the playbook's output
    idempotent=False,
    query=("run_sync", "timeout"),
    body=tuple(EXECUTE_FIELDS),
)
GET_EXECUTION = Endpoint("get", "GET", _EXECUTION, ("get_execution",), "execution")
LIST_EXECUTIONS = Endpoint(
    "list",
    "GET",
    "/workspace/{workspace_id}/executions",
    ("list_executions", "iter_executions"),
    "page",
    query=("q",),
)
EXECUTION_STEPS = Endpoint(
    "steps", "GET", f"{_EXECUTION}/steps", ("get_execution_steps",), "steps_page", query=("q",)
)
CANCEL_EXECUTION = Endpoint("cancel", "POST", f"{_EXECUTION}/cancel", ("cancel_execution",), "nothing")
#: Every endpoint the provider calls, by name.
ENDPOINTS: dict[str, Endpoint] = {
    endpoint.name: endpoint
    for endpoint in (EXECUTE, GET_EXECUTION, LIST_EXECUTIONS, EXECUTION_STEPS, CANCEL_EXECUTION)
}


def endpoint_of(method: str, path: str) -> Endpoint | None:
    """The endpoint of :data:`ENDPOINTS` a request goes to (``path`` below :data:`API_PREFIX`), if any."""
    return next((endpoint for endpoint in ENDPOINTS.values() if endpoint.matches(method, path)), None)


def shows_request(execution: Mapping[str, Any], body: Mapping[str, Any]) -> bool:
    """
    Whether an execution's record shows the execute ``body``: each field the record shows is equal.

    A dict field left unset is compared as ``{}`` (a run with inputs is another request), without its
    keys that change with every try (:attr:`BodyField.per_try`); a string field left unset matches any
    value. Fields the record does not show are not compared.
    """
    for name, spec in EXECUTE_FIELDS.items():
        if spec.on_record is None:
            continue
        if spec.types is Mapping:
            if _compared(execution.get(spec.on_record), spec) != _compared(body.get(name), spec):
                return False
        elif body.get(name) is not None and execution.get(spec.on_record) != body[name]:
            return False
    return True


def _compared(value: Any, spec: BodyField) -> Any:
    """What of a dict field's ``value`` tells two requests apart: all but its :attr:`BodyField.per_try` keys."""
    if not isinstance(value, Mapping):
        return value or {}
    return {key: item for key, item in value.items() if key not in spec.per_try}
