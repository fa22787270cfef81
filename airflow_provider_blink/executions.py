"""What the provider reports about an execution: a compact summary, a UI link, a failure message."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlencode

from airflow_provider_blink.states import execution_state

SUMMARY_FIELDS = (
    "id",
    "playbook_id",
    "playbook_name",
    "workspace_id",
    "display_name",
    "execution_number",
    "state",
    "state_ui",
    "created_at",
    "started_at",
    "finished_at",
    "duration",
    "net_runtime_ms",
    "error_details",
    "cancel_reason",
)


def execution_url(blink_url: str, workspace_id: str, playbook_id: str | None, execution_id: str) -> str:
    """
    Link to the execution in Blink's web UI.

    Blink documents no per-execution page; this opens the playbook editor, whose Run Log tab
    lists the playbook's executions, with the execution id in the query.
    """
    query = urlencode({"execution_id": execution_id})
    if not playbook_id:
        return f"{blink_url}/workspace/{quote(workspace_id, safe='')}?{query}"
    return f"{blink_url}/workspace/{quote(workspace_id, safe='')}/workflow/{quote(playbook_id, safe='')}/edit?{query}"


def summarize(execution: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON-serialisable facts a downstream task needs (not the inputs or the event)."""
    summary = {field: execution[field] for field in SUMMARY_FIELDS if field in execution}
    summary["execution_id"] = execution.get("id")
    return summary


def failure_message(execution: Mapping[str, Any], url: str | None = None) -> str:
    """Say which execution ended how, with Blink's error details and where to look."""
    details = execution.get("error_details") or {}
    text = f"Blink execution {execution.get('id')!r} of playbook {execution.get('playbook_id')!r} ended in state {execution_state(execution)!r}"
    if isinstance(details, Mapping) and details:
        text += ": " + "; ".join(f"{key}={value}" for key, value in details.items())
    if execution.get("cancel_reason"):
        text += f" (cancel reason: {execution['cancel_reason']})"
    if url:
        text += f". See {url}"
    return text


def playbook_output(steps: Sequence[Mapping[str, Any]], step_id: str | None = None) -> Any:
    """
    The playbook's output as its steps report it.

    Blink documents no "playbook output" in an execution's steps (NOTES.md, "Steps"); the assumption:
    the output is the ``output_data`` of the step that finished last (ties: the later in the list),
    unless ``step_id`` names the step to take it from. Blink types ``output_data`` as a string; JSON
    in it is decoded. ``None`` when that step has no output (or no step has any).

    :param step_id: take the output of the step with this ``step_id``.
    """
    if step_id is not None:
        chosen = [step for step in steps if step.get("step_id") == step_id]
    else:
        chosen = [step for step in steps if step.get("output_data") not in (None, "")]
    if not chosen or chosen[-1].get("output_data") in (None, ""):
        return None
    last = max(reversed(chosen), key=lambda step: step.get("finished_at") or 0)
    data = last["output_data"]
    if isinstance(data, str):
        try:
            return json.loads(data)
        except (ValueError, RecursionError):  # not JSON, or nested too deep to decode: the text itself
            return data
    return data
