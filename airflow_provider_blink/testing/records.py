"""
The shapes of the emulator's answers, field for field as Blink documents them.

Sources, in ``docs/blink-api-contract.md``: "Read an execution" (``#documented-get``, its example body
``docs/blink-api/get-execution.json``), "List executions" (``#documented-list``, its example list item in
``docs/blink-api/list-executions.json``), and "Steps" (``#observed-steps``: what Blink's own clients
show for the undocumented steps endpoint).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Every field of the single-execution GET, in the order of its example body (blink-api-contract.md#documented-get).
GET_FIELDS: tuple[str, ...] = (
    "app_id",
    "async_parent_execution_id",
    "cancel_reason",
    "created_at",
    "created_by",
    "ctrl_id",
    "display_name",
    "draft_execution_number",
    "duration",
    "engine_v2_compile_error",
    "engine_version",
    "error_details",
    "event",
    "execution_depth",
    "execution_number",
    "finished_at",
    "id",
    "input_values_origin_exec_id",
    "inputs",
    "last_playbook_name",
    "name",
    "net_runtime_ms",
    "pack_id",
    "parent_execution_id",
    "playbook",
    "playbook_deleted",
    "playbook_id",
    "playbook_name",
    "runner_cluster_version",
    "runner_group_id",
    "runner_id",
    "runner_version",
    "scheduled_trigger_timezone",
    "started_at",
    "state",
    "state_ui",
    "step_results",
    "subflows_reference_to_name_mapping",
    "tenant_id",
    "test_session_id",
    "timeout",
    "top_execution_id",
    "top_execution_started_at",
    "trigger_type",
    "type",
    "updated_at",
    "updated_by",
    "version",
    "with_concurrency_limit",
    "workspace_id",
)

#: Fields of the single GET that a list item lacks (blink-api-contract.md#documented-list).
ONLY_IN_GET: frozenset[str] = frozenset(
    {
        "display_name",
        "duration",
        "event",
        "input_values_origin_exec_id",
        "inputs",
        "pack_id",
        "playbook_deleted",
        "playbook_name",
        "scheduled_trigger_timezone",
        "subflows_reference_to_name_mapping",
    }
)

#: Every field of a list item, in the order of its example body (blink-api-contract.md#documented-list).
LIST_FIELDS: tuple[str, ...] = tuple(name for name in GET_FIELDS if name not in ONLY_IN_GET)

#: A step's fields, as Blink's own clients show them; no document describes the endpoint (blink-api-contract.md#observed-steps).
STEP_FIELDS: tuple[str, ...] = (
    "step_id",
    "state",
    "input_data",
    "output_data",
    "error_data",
    "started_at",
    "finished_at",
    "subflow_execution_id",
)

#: The body of every error answer, ``api_responses.ErrorWrapper`` (blink-api-contract.md#documented-errors).
ERROR_FIELDS: tuple[str, ...] = ("status", "message", "details", "identifier", "data", "user_error")


def execution_answer(record: Mapping[str, Any]) -> dict[str, Any]:
    """What the single GET answers for ``record``: exactly the fields of blink-api-contract.md#documented-get."""
    return {name: record[name] for name in GET_FIELDS}


def list_item(record: Mapping[str, Any]) -> dict[str, Any]:
    """What a list answer carries for ``record``: exactly the fields of blink-api-contract.md#documented-list."""
    return {name: record[name] for name in LIST_FIELDS}
