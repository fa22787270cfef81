"""
The shapes of the emulator's answers, field for field as Blink documents them.

Sources (``/work/shared/blink-api`` in the project; see ``docs/blink-api-contract.md``): seed 003 is
the docs page of ``GET /workspace/{ws_id}/executions/{id}`` (example body, lines 15-68), seed 004 the
docs page of ``GET /workspace/{ws_id}/executions`` (example list item, lines 18-59). NOTES.md records
what Blink's own clients show for the undocumented steps endpoint.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Seed 003, lines 16-67: every field of the single-execution GET, in the page's order.
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

#: Fields of the single GET that a list item lacks (NOTES.md: "A list item is not the same record").
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

#: Seed 004, lines 19-58: every field of a list item, in the page's order.
LIST_FIELDS: tuple[str, ...] = tuple(name for name in GET_FIELDS if name not in ONLY_IN_GET)

#: NOTES.md ("Steps", from Blink's own clients; no seed documents the endpoint): a step's fields.
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

#: Seed 000 (``api_responses.ErrorWrapper``): the body of every error answer.
ERROR_FIELDS: tuple[str, ...] = ("status", "message", "details", "identifier", "data", "user_error")


def execution_answer(record: Mapping[str, Any]) -> dict[str, Any]:
    """What the single GET answers for ``record``: exactly seed 003's fields."""
    return {name: record[name] for name in GET_FIELDS}


def list_item(record: Mapping[str, Any]) -> dict[str, Any]:
    """What a list answer carries for ``record``: exactly seed 004's fields."""
    return {name: record[name] for name in LIST_FIELDS}
