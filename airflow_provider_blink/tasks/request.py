"""PlaybookRequest: the playbook and execute fields a task starts, spelled out once for operator and notifier."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from airflow_provider_blink import api
from airflow_provider_blink.tasks.arguments import check_execute_field_at_parse_time, check_playbook_id

#: The attributes of a task that starts a playbook which Airflow renders: the request and the workspace.
TEMPLATE_FIELDS: tuple[str, ...] = (
    "playbook_id",
    "workspace_id",
    "input_values",
    "event",
    "runner",
    "trigger_type",
    "callback",
    "past_exec_ref",
)
#: How the Airflow UI shows the rendered request fields.
TEMPLATE_FIELDS_RENDERERS: dict[str, str] = {"input_values": "json", "event": "json", "callback": "json"}


@dataclasses.dataclass(frozen=True)
class PlaybookRequest:
    """
    What starting a playbook takes: the playbook's id and the execute fields.

    A task keeps each field as an attribute of its own, where Airflow renders templates (see
    :class:`StartsPlaybook`): :meth:`set_on` puts them there, :meth:`of` reads them back.

    :param playbook_id: the playbook to run (its id, not its name).
    :param input_values: the playbook's input parameters.
    :param event: event data for event-based playbooks.
    :param runner: runner group to run on.
    :param trigger_type: trigger type to report to Blink.
    :param callback: Blink callback (``url``, ``method``, ``headers``, ``body`` ...).
    :param past_exec_ref: id of a previous execution to re-run.
    """

    playbook_id: Any
    input_values: Mapping[str, Any] | None = None
    event: Mapping[str, Any] | None = None
    runner: str | None = None
    trigger_type: str | None = None
    callback: Mapping[str, Any] | None = None
    past_exec_ref: str | None = None

    @classmethod
    def of(cls, task: object) -> PlaybookRequest:
        """The request in a task's attributes (rendered, when the task runs)."""
        return cls(**{field.name: getattr(task, field.name) for field in dataclasses.fields(cls)})

    def set_on(self, task: object) -> None:
        """Give ``task`` one attribute per field."""
        for field in dataclasses.fields(self):
            setattr(task, field.name, getattr(self, field.name))

    def fields(self) -> dict[str, Any]:
        """The execute fields (all but the playbook's id)."""
        return {
            field.name: getattr(self, field.name)
            for field in dataclasses.fields(self)
            if field.name != "playbook_id"
        }

    def check_at_parse_time(self) -> None:
        """Check a DAG file's arguments: values filled in at run time (XComArgs, templates) pass."""
        check_playbook_id(self.playbook_id, parse_time=True)
        for name, value in self.fields().items():
            check_execute_field_at_parse_time(name, value)

    def body(self) -> dict[str, Any]:
        """Check the request as it runs and return the execute body (fields left ``None`` are not sent)."""
        check_playbook_id(self.playbook_id)
        return api.execute_body(**self.fields())


class StartsPlaybook:
    """
    A task that starts a playbook (the operator, the notifier): the request's fields are its attributes.

    Airflow renders them and the workspace (:data:`TEMPLATE_FIELDS`) before the task runs.
    """

    playbook_id: str
    workspace_id: str | None
    input_values: Mapping[str, Any] | None
    event: Mapping[str, Any] | None
    runner: str | None
    trigger_type: str | None
    callback: Mapping[str, Any] | None
    past_exec_ref: str | None

    def playbook_request(self) -> PlaybookRequest:
        """The request in this task's attributes (rendered, once the task runs)."""
        return PlaybookRequest.of(self)
