"""
docs/blink-api-contract.md is true: every field the provider reads is in its table, and the section a row names promises it.

The provider's operator, sensor, triggers and hook run against the emulator while every JSON object
Blink answers is a dict that records which of its fields were looked at.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_blink import api, endpoints
from airflow_provider_blink.exceptions import BlinkError
from airflow_provider_blink.hooks.blink import BlinkHook
from airflow_provider_blink.notifications.blink import BlinkNotifier
from airflow_provider_blink.operators.blink import BlinkExecutePlaybookOperator
from airflow_provider_blink.sensors.blink import BlinkExecutionSensor
from airflow_provider_blink.testing import Fault
from airflow_provider_blink.triggers.blink_events import BlinkExecutionEventTrigger

from support.emulator import API_KEY, WORKSPACE
from support.task_instance import context_for
from support.triggers import next_event

DOCS = Path(__file__).resolve().parent.parent / "docs"
TABLE = DOCS / "blink-api-contract.md"
# Blink's example bodies of #documented-get and #documented-list.
GET_EXAMPLE = json.loads((DOCS / "blink-api" / "get-execution.json").read_text())
LIST_EXAMPLE = json.loads((DOCS / "blink-api" / "list-executions.json").read_text())
ITEM_OF = {"list": "list item", "steps": "step"}


def table_rows(header: str) -> list[list[str]]:
    """The cells of each row of the page's table whose first column is headed ``header``."""
    rows: list[list[str]] = []
    inside = False
    for line in TABLE.read_text().splitlines():
        if not line.startswith("|"):
            inside = False
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells[0] == header:
            inside = True
        elif inside and not set(cells[0]) <= {"-"}:
            rows.append(cells)
    return rows


def contract_rows() -> list[tuple[str, str | None, str]]:
    """(answer, field or None, promised by: the first section anchor the cell links to) for each row."""
    rows = []
    for cells in table_rows("answer"):
        field = re.fullmatch(r"`([a-z_]+)`", cells[1])
        anchor = re.search(r"\]\(#([a-z-]+)\)", cells[2])
        promised_by = anchor.group(1) if anchor else cells[2]
        rows.append(
            (
                cells[0],
                field.group(1) if field else None,
                ("not in " if cells[2].startswith("not in") else "") + promised_by,
            )
        )
    return rows


_answer: contextvars.ContextVar[str] = contextvars.ContextVar("answer", default="?")


class Recording(dict):
    """A JSON object from Blink that notes each field the provider looks at."""

    reads: set[tuple[str, str]] = set()

    def __init__(self, answer: str, value: dict[str, Any]) -> None:
        super().__init__(value)
        self.answer = answer

    def __getitem__(self, key: Any) -> Any:
        self.reads.add((self.answer, key))
        return super().__getitem__(key)

    def get(self, key: Any, default: Any = None) -> Any:
        self.reads.add((self.answer, key))
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        self.reads.add((self.answer, str(key)))
        return super().__contains__(key)


def answer_of(call: api.ApiCall[Any], status: int) -> str:
    """The contract table's name for an answer to ``call``: its endpoint's, but for errors and ``run_sync``."""
    endpoint = endpoints.endpoint_of(call.method, call.path)
    assert endpoint is not None, f"{call.what} is not an endpoint of the registry"
    if status >= 400:
        return "error"
    if endpoint is endpoints.EXECUTE and (call.params or {}).get("run_sync"):
        return "run_sync"
    return endpoint.name


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> set[tuple[str, str]]:
    """Every (answer, field) the provider reads while the test runs."""
    parse, loads = api.parse_answer, api._loads

    def recording_parse(call: api.ApiCall[Any], status: int, text: str, headers: Mapping[str, str]) -> Any:
        token = _answer.set(answer_of(call, status))
        try:
            return parse(call, status, text, headers)
        finally:
            _answer.reset(token)

    def recording_loads(text: str) -> Any:
        value = loads(text)
        answer = _answer.get()
        if not isinstance(value, dict):
            return value
        if answer in ITEM_OF and isinstance(value.get("results"), list):
            value = {**value, "results": [Recording(ITEM_OF[answer], item) for item in value["results"]]}
        return Recording(answer, value)

    monkeypatch.setattr(api, "parse_answer", recording_parse)
    monkeypatch.setattr(api, "_loads", recording_loads)
    Recording.reads = set()
    return Recording.reads


def run_task(task: Any) -> Any:
    return task.execute(context_for())


def exercise_every_answer(emulator: Any) -> None:
    """Run what users run: each call of the provider, through each of its paths that reads a field."""
    hook = BlinkHook()
    run_task(BlinkExecutePlaybookOperator(task_id="ok", playbook_id="quick-ok", poll_interval=0.1))
    run_task(
        BlinkExecutePlaybookOperator(
            task_id="step", playbook_id="quick-ok", poll_interval=0.1, output_step_id="step_1"
        )
    )
    with pytest.raises(BlinkError):
        run_task(BlinkExecutePlaybookOperator(task_id="fail", playbook_id="quick-fail", poll_interval=0.1))
    quick = hook.execute_playbook("quick-ok")
    run_task(BlinkExecutionSensor(task_id="sense", execution_id=quick, poke_interval=0.1, timeout=30))
    execution_id = hook.execute_playbook("slow")
    emulator.inject(Fault("execute", "close_after"))  # the lookup of an ambiguous start: list + GET
    hook.execute_playbook(
        "slow", input_values={"host": "laptop-0042"}, runner="runner-group-eu", trigger_type="airflow"
    )
    assert hook.cancel_execution(execution_id) is True
    assert hook.cancel_execution(execution_id) is False  # 400, then a GET
    hook.run_playbook_sync("quick-ok", timeout=5)
    with pytest.raises(BlinkError):
        hook.run_playbook_sync("quick-fail", timeout=5)
    list(hook.iter_executions(filter={"playbook_id": "slow"}, page_size=1))
    asyncio.run(next_event(BlinkExecutionEventTrigger(poll_interval=0.05, lookback=60)))


def test_every_field_read_is_in_the_contract_table_and_every_row_is_read(airflow_db, emulator, reads):
    exercise_every_answer(emulator)

    documented = {(answer, field) for answer, field, _ in contract_rows() if field}
    assert reads - documented == set(), "read but not in docs/blink-api-contract.md"
    assert documented - reads == set(), "in docs/blink-api-contract.md but never read"


def test_each_row_is_promised_by_the_section_it_names():
    example_fields = {
        ("get", "documented-get"): set(GET_EXAMPLE),
        ("list", "documented-list"): set(LIST_EXAMPLE),
        ("list item", "documented-list"): set(LIST_EXAMPLE["results"][0]),
    }
    anchors = set(re.findall(r"\{#([a-z-]+)\}", TABLE.read_text()))
    rows = contract_rows()
    assert len(rows) > 40
    for answer, field, promised_by in rows:
        if field is None:
            continue
        if promised_by == "not in documented-list":
            assert field not in LIST_EXAMPLE["results"][0], (answer, field)
        elif (answer, promised_by) in example_fields:
            assert field in example_fields[answer, promised_by], (answer, field, promised_by)
        else:
            assert promised_by in anchors, (answer, field, promised_by)
            assert promised_by.startswith(("documented-execute", "documented-errors", "observed-")), (
                answer,
                field,
            )


def test_the_registry_is_the_documented_api_endpoint_for_endpoint():
    """Each registry endpoint, its method, path, query and body fields, is a row of the page's table."""
    documented = {cells[0]: cells for cells in table_rows("endpoint")}

    assert set(documented) == set(endpoints.ENDPOINTS), "one row per endpoint of the registry, and no other"
    for name, endpoint in endpoints.ENDPOINTS.items():
        _, method, path, query, body, promised_by = documented[name]
        as_blink_names_it = endpoint.path.replace("{workspace_id}", "{ws_id}")
        as_blink_names_it = re.sub(r"\{(playbook|execution)_id\}", "{id}", as_blink_names_it)
        assert (method, path) == (endpoint.method, f"`{as_blink_names_it}`"), name
        assert re.findall(r"`(\w+)`", query) == list(endpoint.query), name
        assert re.findall(r"`(\w+)`", body) == list(endpoint.body), name
        assert re.search(r"\]\(#(documented|observed)-[a-z]+\)", promised_by), f"{name}: link the section"


def test_the_emulator_serves_the_registry_and_nothing_else(emulator):
    """A request to each registry path reaches a route of the emulator; a path outside it does not."""
    import requests

    for endpoint in endpoints.ENDPOINTS.values():
        ids = dict.fromkeys(endpoint.ids, "x")
        path = endpoint.path.format(**ids).replace("/workspace/x", f"/workspace/{WORKSPACE}")
        answer = requests.request(
            endpoint.method, f"{emulator.url}{api.API_PREFIX}{path}", headers={"BLINK-API-KEY": API_KEY}
        )
        assert emulator.requests[-1].endpoint == endpoint.name, f"{endpoint.name}: HTTP {answer.status_code}"
    unknown = requests.get(
        f"{emulator.url}{api.API_PREFIX}/workspace/x/playbooks", headers={"BLINK-API-KEY": API_KEY}
    )
    assert unknown.status_code == 404


@pytest.mark.parametrize("name", list(endpoints.EXECUTE_FIELDS))
def test_every_execute_field_of_the_registry_reaches_blink_from_the_operator_and_the_notifier(emulator, name):
    """A field added to the registry is an argument of both, templated, sent, and shown where the registry says."""
    spec = endpoints.EXECUTE_FIELDS[name]
    value: Any = {"from": "airflow"} if spec.types is Mapping else "example-value"

    BlinkExecutePlaybookOperator(
        task_id="start", playbook_id="quick-ok", wait_for_completion=False, **{name: value}
    ).execute(context_for())
    BlinkNotifier(playbook_id="quick-ok", include_airflow_context=False, **{name: value}).notify(
        {"run_id": "r1"}
    )

    executes = [request for request in emulator.requests if request.endpoint == "execute"]
    assert [request.body[name] for request in executes] == [value, value]
    assert name in BlinkExecutePlaybookOperator.template_fields
    assert name in BlinkNotifier.template_fields
    if spec.on_record is not None:
        assert {execution[spec.on_record] == value for execution in emulator.executions} == {True}
