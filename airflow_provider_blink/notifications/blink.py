"""BlinkNotifier: an Airflow callback (failure, success, retry) that starts a Blink playbook."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow_provider_blink.compat import BaseNotifier
from airflow_provider_blink.connection_form import DEFAULT_CONN_ID
from airflow_provider_blink.exceptions import BlinkError
from airflow_provider_blink.tasks import (
    TEMPLATE_FIELDS,
    TEMPLATE_FIELDS_RENDERERS,
    PlaybookRequest,
    StartsPlaybook,
    check_poll_interval,
)

if TYPE_CHECKING:
    from airflow_provider_blink.compat import Context
    from airflow_provider_blink.hooks.blink import BlinkHook


def airflow_inputs(context: Mapping[str, Any]) -> dict[str, Any]:
    """What happened in Airflow, as playbook inputs: dag, task, run, try, date, error and log URL."""
    ti = context.get("ti") or context.get("task_instance")
    dag_run = context.get("dag_run")
    exception = context.get("exception")
    logical_date = context.get("logical_date")
    return {
        "dag_id": getattr(ti, "dag_id", None) or getattr(dag_run, "dag_id", None),
        "task_id": getattr(ti, "task_id", None),
        "map_index": getattr(ti, "map_index", None),
        "run_id": context.get("run_id") or getattr(dag_run, "run_id", None),
        "try_number": getattr(ti, "try_number", None),
        "state": str(getattr(ti, "state", None) or getattr(dag_run, "state", "")) or None,
        "logical_date": logical_date.isoformat() if isinstance(logical_date, datetime) else None,
        "exception": f"{type(exception).__name__}: {exception}" if exception else None,
        "log_url": log_url(ti),
    }


def log_url(ti: Any) -> str | None:
    """
    The task try's log page in the Airflow UI (``None`` without a task instance).

    Airflow 3.0's task instance has no ``log_url``; it is built as 3.1+ builds it, from
    ``[api] base_url``.
    """
    if ti is None or getattr(ti, "log_url", None):
        return getattr(ti, "log_url", None)
    from urllib.parse import quote

    from airflow.configuration import conf

    base_url = conf.get("api", "base_url", fallback="http://localhost:8080/").rstrip("/")
    mapped = f"/mapped/{ti.map_index}" if ti.map_index is not None and ti.map_index >= 0 else ""
    try_number = f"?try_number={ti.try_number}" if ti.try_number else ""
    return f"{base_url}/dags/{ti.dag_id}/runs/{quote(ti.run_id)}/tasks/{ti.task_id}{mapped}{try_number}"


class BlinkNotifier(StartsPlaybook, BaseNotifier):
    """
    Start a Blink playbook from an Airflow callback, e.g. ``on_failure_callback=BlinkNotifier(...)``.

    The playbook gets ``input_values`` built from the Airflow context (``dag_id``, ``task_id``,
    ``map_index``, ``run_id``, ``try_number``, ``state``, ``logical_date``, ``exception``,
    ``log_url``; each passed through Airflow's secrets masker), updated with your own
    ``input_values`` (templated). Fire-and-forget by default. A
    notifier that cannot reach Blink logs the error and returns: it never hides the task's own
    failure or fails a successful task.

    :param playbook_id: the playbook to start. Templated.
    :param input_values: inputs added to (and overriding) the Airflow ones. Templated.
    :param include_airflow_context: send the Airflow inputs above; ``False`` sends only yours.
    :param workspace_id: overrides the connection's Workspace ID. Templated.
    :param blink_conn_id: the Airflow connection to Blink.
    :param event: event data for event-based playbooks. Templated.
    :param runner: runner group. Templated.
    :param trigger_type: trigger type to report to Blink.
    :param callback: Blink callback. Templated.
    :param past_exec_ref: id of a previous execution to re-run.
    :param wait_for_completion: wait for the playbook (in the callback's process) and log its outcome.
    :param poll_interval: seconds between status checks when waiting.
    :param timeout: seconds to wait at most when waiting.
    """

    template_fields: Sequence[str] = TEMPLATE_FIELDS
    template_fields_renderers = TEMPLATE_FIELDS_RENDERERS

    def __init__(
        self,
        *,
        playbook_id: str,
        input_values: Mapping[str, Any] | None = None,
        include_airflow_context: bool = True,
        workspace_id: str | None = None,
        blink_conn_id: str = DEFAULT_CONN_ID,
        event: Mapping[str, Any] | None = None,
        runner: str | None = None,
        trigger_type: str | None = None,
        callback: Mapping[str, Any] | None = None,
        past_exec_ref: str | None = None,
        wait_for_completion: bool = False,
        poll_interval: float = 10.0,
        timeout: float | None = 600.0,
    ) -> None:
        super().__init__()
        request = PlaybookRequest.from_arguments(locals())  # the playbook and each execute field
        request.check_at_parse_time()
        request.set_on(self)
        self.include_airflow_context = include_airflow_context
        self.workspace_id = workspace_id
        self.blink_conn_id = blink_conn_id
        self.wait_for_completion = wait_for_completion
        self.poll_interval = check_poll_interval(poll_interval)
        self.timeout = timeout

    @functools.cached_property
    def hook(self) -> BlinkHook:
        from airflow_provider_blink.hooks.blink import BlinkHook

        return BlinkHook(self.blink_conn_id)

    def notify(self, context: Context) -> None:
        from airflow_provider_blink.compat import redact

        # Through Airflow's secrets masker: an exception text may carry a password Airflow's log masks.
        inputs: dict[str, Any] = {}
        if self.include_airflow_context:
            inputs = {name: redact(value, name) for name, value in airflow_inputs(context).items()}
        request = self.playbook_request()
        inputs.update(request.fields["input_values"] or {})
        try:
            fields = {**request.fields, "input_values": inputs}
            execution_id = self.hook.execute_playbook(
                self.playbook_id, workspace_id=self.workspace_id, **fields
            )
            self.log.info(
                "Started Blink playbook %s from an Airflow callback: execution %s, %s",
                self.playbook_id,
                execution_id,
                self._url(execution_id),
            )
            if self.wait_for_completion:
                self._wait(execution_id)
        except BlinkError as exc:
            self.log.error("BlinkNotifier could not run playbook %s: %s", self.playbook_id, exc)

    def _wait(self, execution_id: str) -> None:
        from airflow_provider_blink.tasks import deadline, execution_from_event
        from airflow_provider_blink.triggers.blink import ExecutionWatch, build_trigger, wait_for_event

        end_time = deadline({}, self.timeout, None)
        trigger = build_trigger(
            ExecutionWatch.of(self, self.poll_interval), execution_id, end_time, cancel_on_kill=False
        )
        execution = execution_from_event(wait_for_event(trigger), execution_id, None)
        self.log.info("Blink execution %s finished: %s", execution_id, execution.get("state_ui"))
