"""
What a task that runs a playbook reports to OpenLineage, through Airflow's OpenLineage provider.

Needs the extra ``airflow-provider-blink[openlineage]`` (``apache-airflow-providers-openlineage``), and
imports it at once: only the provider's listener imports this module (it calls the operator's
``get_openlineage_facets_on_complete``/``_on_failure``), and a task that opts in to
``openlineage_inject_parent_job_info``, so a task that does neither never loads OpenLineage.

- The playbook is a job: namespace ``blink://<host>/<workspace>`` (:func:`job_namespace`), name the
  playbook's id. Each execution is a run of it (:func:`execution_run_id`), a child of the task's run.
- The task's own COMPLETE or FAIL event names the execution it ran (run facets ``externalQuery``: its
  id; ``blinkExecution``: its state, link and Blink's error details).
- Once the execution ended, its run is reported as a START and a COMPLETE (or FAIL) event of the
  playbook's job, timed by Blink, whose ``parent`` facet is the task's run: as Airflow's dbt Cloud and
  Databricks providers report the runs of the jobs a task started.
- Opting in, the playbook's ``input_values`` carry the task's run under :data:`.endpoints.OPENLINEAGE_INPUT`
  (:func:`with_parent_run`), so the playbook can report its own events as that run's child.

The events and facets carry the OpenLineage provider's producer, as dbt Cloud's and Databricks' do.
docs/openlineage.md shows them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Mapping
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, urlsplit

import attr
from airflow.providers.openlineage.extractors import OperatorLineage
from airflow.providers.openlineage.plugins import macros
from airflow.providers.openlineage.plugins.listener import get_openlineage_listener
from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    RunFacet,
    error_message_run,
    external_query_run,
    job_type_job,
    parent_run,
)

from airflow_provider_blink.endpoints import OPENLINEAGE_INPUT
from airflow_provider_blink.executions import (
    ExecutionOutcome,
    decide_outcome,
    execution_state,
    failure_message,
)


@attr.define
class BlinkExecutionRunFacet(RunFacet):
    """
    How a Blink execution ended (run facet ``blinkExecution``; camelCase, as OpenLineage names fields).

    :param executionId: the execution's id.
    :param playbookId: the playbook it ran.
    :param workspaceId: the workspace it ran in.
    :param state: its state as Blink shows it (``Completed``, ``Failed`` ...); ``None`` when the task
        did not learn it (a timeout, fire and forget).
    :param url: its link in Blink's web UI.
    :param errorDetails: Blink's ``error_details``, when it has any.
    """

    executionId: str
    playbookId: str
    workspaceId: str
    state: str | None
    url: str
    errorDetails: dict[str, Any] | None = None


def job_namespace(blink_url: str, workspace_id: str) -> str:
    """The namespace of a workspace's playbooks: ``blink://<host>[:<port>]/<workspace>`` (no user info)."""
    parts = urlsplit(blink_url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return f"blink://{host}/{quote(workspace_id, safe='')}"


def execution_run_id(namespace: str, playbook_id: str, execution_id: str) -> str:
    """
    The OpenLineage run id of an execution: a UUID5 of ``<namespace>/<playbook>/<execution id>`` (URL namespace).

    The same execution has the same run id whichever try reports it (a retry follows its earlier try's
    execution), and a playbook can compute it from its own ids.
    """
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{namespace}/{playbook_id}/{execution_id}"))


# The task's run, for its child -----------------------------------------------------------------------
def parent_run_ids(task_instance: Any) -> dict[str, Any]:
    """
    The task instance's OpenLineage run, as a ``ParentRunFacet`` has it: ``run``, ``job`` and ``root``.

    From the OpenLineage provider's macros, which name the run the listener reports for this try.
    """
    namespace = macros.lineage_job_namespace()
    root_namespace = getattr(macros, "lineage_root_job_namespace", None)  # provider 2.12+; the same before
    return {
        "run": {"runId": macros.lineage_run_id(task_instance)},
        "job": {"namespace": namespace, "name": macros.lineage_job_name(task_instance)},
        "root": {
            "run": {"runId": macros.lineage_root_run_id(task_instance)},
            "job": {
                "namespace": root_namespace(task_instance) if root_namespace else namespace,
                "name": macros.lineage_root_job_name(task_instance),
            },
        },
    }


def with_parent_run(body: Mapping[str, Any], task_instance: Any) -> dict[str, Any]:
    """
    The execute ``body`` whose ``input_values`` carry the task's run under :data:`.endpoints.OPENLINEAGE_INPUT`.

    The value is JSON text (any input type takes it), the context Databricks' provider passes its jobs:
    ``{"parent": {"run": {"runId": ...}, "job": {"namespace": ..., "name": ...}, "root": {...}}}``.
    """
    context = json.dumps({"parent": parent_run_ids(task_instance)}, separators=(",", ":"))
    return {**body, "input_values": {**(body.get("input_values") or {}), OPENLINEAGE_INPUT: context}}


# What the listener asks for ---------------------------------------------------------------------------
def execution_lineage(
    execution: Mapping[str, Any] | None,
    task_instance: Any,
    success_states: Collection[str] | None = None,
    failure_states: Collection[str] | None = None,
) -> OperatorLineage:
    """
    The task's lineage: facets naming its execution; emits the execution's own run once it ended.

    :param execution: what the task kept of its execution (its summary, ``execution_url``,
        ``blink_url``, ``workspace_id``, ``playbook_id``), or ``None`` when it started none.
    :param task_instance: the task instance the listener reports.
    :param success_states: the task's ``success_states``.
    :param failure_states: the task's ``failure_states``.
    """
    if execution is None:
        return OperatorLineage()
    namespace = job_namespace(execution["blink_url"], execution["workspace_id"])
    facets = execution_facets(execution, namespace)
    if _state(execution) is not None:
        outcome = decide_outcome(execution, success_states, failure_states)
        if outcome is not ExecutionOutcome.RUNNING:
            parent = parent_run_ids(task_instance)
            for event in execution_events(execution, namespace, outcome, facets, parent):
                get_openlineage_listener().adapter.emit(event)
    return OperatorLineage(run_facets=facets)


def _state(execution: Mapping[str, Any]) -> str | None:
    """The execution's state, ``None`` when the task never learnt it (a timeout, fire and forget)."""
    return execution_state(execution) if execution.get("state_ui") or execution.get("state") else None


def execution_facets(execution: Mapping[str, Any], namespace: str) -> dict[str, RunFacet]:
    """The run facets naming an execution: ``externalQuery`` (its id) and ``blinkExecution`` (how it went)."""
    return {
        "externalQuery": external_query_run.ExternalQueryRunFacet(
            externalQueryId=str(execution["id"]), source=namespace
        ),
        "blinkExecution": BlinkExecutionRunFacet(
            executionId=str(execution["id"]),
            playbookId=execution["playbook_id"],
            workspaceId=execution["workspace_id"],
            state=_state(execution),
            url=execution["execution_url"],
            errorDetails=execution.get("error_details") or None,
        ),
    }


def execution_events(
    execution: Mapping[str, Any],
    namespace: str,
    outcome: ExecutionOutcome,
    facets: Mapping[str, RunFacet],
    parent: Mapping[str, Any],
) -> list[RunEvent]:
    """
    The START and COMPLETE (or FAIL) events of an execution that ended, timed by Blink.

    :param facets: the execution's :func:`execution_facets`; the START event has only ``externalQuery``.
    :param parent: the task's run (:func:`parent_run_ids`).
    """
    playbook_id = execution["playbook_id"]
    run_id = execution_run_id(namespace, playbook_id, str(execution["id"]))
    job = Job(
        namespace=namespace,
        name=playbook_id,
        facets={
            "jobType": job_type_job.JobTypeJobFacet(
                processingType="BATCH", integration="BLINK", jobType="PLAYBOOK"
            )
        },
    )
    started: dict[str, RunFacet] = {"parent": _parent_facet(parent), "externalQuery": facets["externalQuery"]}
    ended = {**started, "blinkExecution": facets["blinkExecution"]}
    if outcome is ExecutionOutcome.FAILED:
        ended["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=failure_message(execution, execution["execution_url"]),
            programmingLanguage="Blink playbook",
        )
    start_ms = execution.get("started_at") or execution.get("created_at")
    return [
        RunEvent(
            eventType=RunState.START,
            eventTime=_event_time(start_ms),
            run=Run(runId=run_id, facets=started),
            job=job,
        ),
        RunEvent(
            eventType=RunState.COMPLETE if outcome is ExecutionOutcome.SUCCESS else RunState.FAIL,
            eventTime=_event_time(execution.get("finished_at")),
            run=Run(runId=run_id, facets=ended),
            job=job,
        ),
    ]


def _parent_facet(parent: Mapping[str, Any]) -> parent_run.ParentRunFacet:
    root = parent["root"]
    return parent_run.ParentRunFacet(
        run=parent_run.Run(runId=parent["run"]["runId"]),
        job=parent_run.Job(namespace=parent["job"]["namespace"], name=parent["job"]["name"]),
        root=parent_run.Root(
            run=parent_run.RootRun(runId=root["run"]["runId"]),
            job=parent_run.RootJob(namespace=root["job"]["namespace"], name=root["job"]["name"]),
        ),
    )


def _event_time(epoch_ms: Any) -> str:
    """Blink's time (epoch milliseconds) as OpenLineage's ISO 8601; now, when Blink gave none."""
    if isinstance(epoch_ms, int | float) and not isinstance(epoch_ms, bool) and epoch_ms > 0:
        return datetime.fromtimestamp(epoch_ms / 1000, tz=timezone.utc).isoformat()
    return datetime.now(timezone.utc).isoformat()
