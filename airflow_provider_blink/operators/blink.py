"""BlinkExecutePlaybookOperator: run a Blink playbook and (by default) wait for its execution."""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_blink.compat import AIRFLOW_V_3_3_PLUS, BaseOperator, ResumableJobMixin
from airflow_provider_blink.connection_form import DEFAULT_CONN_ID
from airflow_provider_blink.exceptions import (
    BlinkApiError,
    BlinkConfigurationError,
    BlinkError,
    BlinkExecutionFailed,
    BlinkExecutionTimeout,
    BlinkOutputUnavailable,
    BlinkPermanentError,
)
from airflow_provider_blink.executions import ExecutionOutcome, decide_outcome, outcome_of_state, summarize
from airflow_provider_blink.links.blink import BlinkExecutionLink, no_execution_yet, push_execution
from airflow_provider_blink.tasks import (
    DEFAULT_ERROR_BUDGET,
    DEFAULT_PROGRESS_INTERVAL,
    TEMPLATE_FIELDS,
    TEMPLATE_FIELDS_RENDERERS,
    ApprovalCallbacks,
    PlaybookRequest,
    StartsPlaybook,
    check_approval_callbacks,
    check_error_budget,
    check_poll_interval,
    check_progress_interval,
    resolve_deferrable,
)

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage

    from airflow_provider_blink.compat import Context
    from airflow_provider_blink.hooks.blink import BlinkHook
    from airflow_provider_blink.tasks import StartRecord


def _started_on_a_worker(context: Context) -> str:
    """Why Airflow started a ``start_from_trigger`` task on a worker, when the task itself saw no reason."""
    if getattr(context["ti"], "map_index", -1) >= 0:
        return "it is mapped (Airflow starts mapped tasks on a worker)"
    return "Airflow started it there (e.g. its trigger arguments were missing from the DAG Airflow ran)"


class BlinkExecutePlaybookOperator(StartsPlaybook, ResumableJobMixin, BaseOperator):
    """
    Start a Blink playbook and wait for its execution to finish.

    Pushes ``execution_id`` and ``execution_url`` to XCom as soon as the run starts, and returns
    a JSON-serialisable summary of the finished execution (id, state, timings, error details,
    the playbook's ``output``). A failed, cancelled or timed-out execution fails the task; the
    error names the step that failed. When the run ends, the task log shows a table of its steps.

    :param playbook_id: the playbook to run (its id, not its name). Templated.
    :param workspace_id: overrides the connection's Workspace ID. Templated.
    :param input_values: the playbook's input parameters. Templated.
    :param event: event data for event-based playbooks. Templated.
    :param runner: runner group to run on. Templated.
    :param trigger_type: trigger type to report to Blink.
    :param callback: Blink callback (``url``, ``method``, ``headers``, ``body`` ...). Templated.
    :param past_exec_ref: id of a previous execution to re-run.
    :param blink_conn_id: the Airflow connection to Blink.
    :param wait_for_completion: wait for the execution to finish (``False``: fire and forget).
    :param deferrable: wait in the triggerer, freeing the worker slot; default
        ``[operators] default_deferrable``.
    :param poll_interval: seconds between status checks.
    :param timeout: seconds to wait for the execution; when they pass, the execution is
        cancelled and the task fails. ``None`` waits indefinitely. The wait also ends (and cancels)
        just before the task's ``execution_timeout``, whichever comes first.
    :param error_budget: seconds of back-to-back transient errors (Blink down, 429, 5xx) the wait
        rides out before the task fails (its retries apply); a 4xx fails it at once. Default 300.
    :param run_sync: use Blink's synchronous mode: one request that returns the playbook's
        output (not deferrable; ``timeout`` becomes Blink's own ``timeout`` parameter).
    :param success_states: execution states that count as success (default ``Completed``).
    :param failure_states: execution states that count as failure (default Failed,
        Cancelled, Timeout, Timed out, Stopped, Skipped).
    :param include_output: add the playbook's ``output`` (read from the execution's steps)
        to the returned summary; one more API call per run (per page of steps). When the read
        fails after the playbook completed, the task still succeeds, with ``output: None`` and a
        warning: the playbook is never run again because its output could not be read.
    :param require_output: fail the task instead when the output cannot be read; its retry
        follows the completed execution rather than starting another.
    :param output_step_id: take the output from the step with this ``step_id``; default: the step
        that finished last (Blink documents no playbook output in the steps: an assumption).
    :param rerun_from_failure: when a try follows a try whose execution failed, ask Blink to
        re-run that execution (``past_exec_ref``) instead of starting from scratch.
    :param log_steps: when the run ends, log a table of its steps (read once, with the output);
        ``False`` with ``include_output=False`` reads no steps at all.
    :param log_progress: while waiting, log each step as it starts and ends (deferred: in the
        trigger's log lines), from a read of the steps at most once per ``progress_interval``.
    :param progress_interval: seconds between two reads of the steps with ``log_progress``; default 60.
    :param on_waiting_for_approval: called once per run when Blink says a step waits for a person
        (``Pending``, ``Paused``): a notifier (e.g. ``SlackNotifier(...)``) or any callable taking the
        context, or a list of them. The context has ``blink_execution`` (the run's summary) and
        ``blink_execution_url``. It runs on a worker (a deferred task resumes for it, then defers
        again); the wait's deadline still applies.
    :param durable: a retry after a worker crash follows the execution an earlier try started (while
        it runs, or once it completed) instead of starting another; default ``True``. Each try records
        what became of its start (``task_state_store`` on Airflow 3.3+, an Airflow Variable before);
        a retry looks in Blink only when that start's answer never came (see
        :class:`airflow_provider_blink.tasks.StartRecord`). ``False``: every try starts a new run.
    :param start_from_trigger: start in the triggerer, not on a worker (Airflow 2.11 and 3.3+): the
        scheduler defers the task at once, the trigger starts the playbook and waits, and a run that
        succeeds ends the task there, so it never takes a worker slot; any other end resumes on a
        worker, as today. Where Airflow cannot (3.0 to 3.2, a mapped task, an XComArg or, on 2.11, a
        template in the request) the task logs why and starts on a worker (docs/start-from-trigger.md).
        Implies ``deferrable``. Default ``False``.
    :param openlineage_inject_parent_job_info: add the task's OpenLineage run (its job's namespace and
        name, its run id, and its root's) to ``input_values``, as JSON under the key ``OPENLINEAGE_CONTEXT``,
        so the playbook can report its own lineage as the task's child (docs/openlineage.md). Needs
        ``airflow-provider-blink[openlineage]``. Default ``False``.
    """

    template_fields: Sequence[str] = TEMPLATE_FIELDS
    template_fields_renderers = TEMPLATE_FIELDS_RENDERERS
    operator_extra_links = (BlinkExecutionLink(),)
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        playbook_id: str,
        workspace_id: str | None = None,
        input_values: Mapping[str, Any] | None = None,
        event: Mapping[str, Any] | None = None,
        runner: str | None = None,
        trigger_type: str | None = None,
        callback: Mapping[str, Any] | None = None,
        past_exec_ref: str | None = None,
        blink_conn_id: str = DEFAULT_CONN_ID,
        wait_for_completion: bool = True,
        deferrable: bool | None = None,
        poll_interval: float = 10.0,
        timeout: float | None = None,
        run_sync: bool = False,
        success_states: Collection[str] | None = None,
        failure_states: Collection[str] | None = None,
        include_output: bool = True,
        require_output: bool = False,
        output_step_id: str | None = None,
        rerun_from_failure: bool = False,
        durable: bool = True,
        error_budget: float = DEFAULT_ERROR_BUDGET,
        log_steps: bool = True,
        log_progress: bool = False,
        progress_interval: float = DEFAULT_PROGRESS_INTERVAL,
        on_waiting_for_approval: ApprovalCallbacks = None,
        openlineage_inject_parent_job_info: bool = False,
        start_from_trigger: bool = False,
        **kwargs: Any,
    ) -> None:
        if AIRFLOW_V_3_3_PLUS:  # the SDK's mixin keeps the id in task_state_store
            kwargs["durable"] = durable
        super().__init__(**kwargs)
        # Before 3.3 there is no mixin to resume with: every try submits and waits (execute), and the
        # operator follows the earlier try's execution from its own record (_start).
        self.durable = durable
        request = PlaybookRequest.from_arguments(locals())  # the playbook and each execute field
        request.check_at_parse_time()
        if openlineage_inject_parent_job_info and not importlib.util.find_spec(
            "airflow.providers.openlineage"
        ):
            raise BlinkConfigurationError(
                "openlineage_inject_parent_job_info=True needs Airflow's OpenLineage provider: install "
                "airflow-provider-blink[openlineage] (apache-airflow-providers-openlineage), or drop the argument."
            )
        if run_sync and deferrable:
            raise BlinkConfigurationError(
                "run_sync=True makes one blocking request and cannot defer; drop deferrable=True, "
                "or drop run_sync to wait in the triggerer."
            )
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
        ):
            raise BlinkConfigurationError(
                f"timeout must be a positive number of seconds or None, got {timeout!r}."
            )
        request.set_on(self)
        self.workspace_id = workspace_id
        self.blink_conn_id = blink_conn_id
        self.wait_for_completion = wait_for_completion
        self.deferrable = False if run_sync else resolve_deferrable(deferrable)
        self.poll_interval = check_poll_interval(poll_interval)
        self.timeout = timeout
        self.error_budget = check_error_budget(error_budget)
        self.run_sync = run_sync
        self.success_states = success_states
        self.failure_states = failure_states
        self.include_output = include_output
        self.require_output = require_output
        self.output_step_id = output_step_id
        self.rerun_from_failure = rerun_from_failure
        self.log_steps = log_steps
        self.log_progress = log_progress
        self.progress_interval = check_progress_interval(progress_interval)
        self.on_waiting_for_approval = check_approval_callbacks(on_waiting_for_approval)
        self.openlineage_inject_parent_job_info = openlineage_inject_parent_job_info
        self.execution_id: str | None = None
        #: What this try learnt of its execution, for OpenLineage's listener (:meth:`_keep_for_lineage`).
        self.blink_execution: dict[str, Any] | None = None
        # The mixin calls poll_until_complete and then get_job_result for a run it just started,
        # with no way to pass the summary from one to the other: kept here by execution id.
        self._summaries: dict[str, dict[str, Any]] = {}
        self.starts_from_trigger = start_from_trigger
        self._worker_start_reason: str | None = None
        if start_from_trigger:
            self._start_from_trigger(deferrable)

    def _start_from_trigger(self, deferrable: bool | None) -> None:
        """
        Have Airflow start this task in the triggerer, or note why it cannot (logged when the task runs).

        Airflow's ``start_trigger_args`` are set on this task only, a fresh object (never the class's:
        apache/airflow#70888), so a mapped task, built from the class, always starts on a worker.
        """
        from airflow_provider_blink.tasks import worker_start_reason

        if self.run_sync or not self.wait_for_completion or deferrable is False:
            raise BlinkConfigurationError(
                "start_from_trigger=True starts the playbook in the triggerer and waits there: it needs "
                "wait_for_completion=True, and neither run_sync=True nor deferrable=False."
            )
        self.deferrable = True
        self._worker_start_reason = worker_start_reason(self)
        if self._worker_start_reason is not None:
            return
        from airflow.triggers.base import StartTriggerArgs

        self.start_trigger_args = StartTriggerArgs(
            trigger_cls="airflow_provider_blink.triggers.blink.BlinkPlaybookTrigger",
            trigger_kwargs=self._trigger_kwargs(),
            next_method="resume_from_trigger",
            next_kwargs=None,
            timeout=None,  # Airflow's own ends at execution_timeout; the trigger's deadline comes first
        )
        self.start_from_trigger = True

    def _trigger_kwargs(self) -> dict[str, Any]:
        """BlinkPlaybookTrigger's kwargs: the request under the template fields' names, the settings as plain JSON."""
        return {
            **{name: getattr(self, name) for name in TEMPLATE_FIELDS},
            "blink_conn_id": self.blink_conn_id,
            "poll_interval": self.poll_interval,
            "success_states": None if self.success_states is None else list(self.success_states),
            "failure_states": None if self.failure_states is None else list(self.failure_states),
            "error_budget": self.error_budget,
            "log_progress": self.log_progress,
            "progress_interval": self.progress_interval,
            "stop_for_approval": bool(self.on_waiting_for_approval),
            "wait_timeout": self.timeout,
            "execution_timeout": (
                None if self.execution_timeout is None else self.execution_timeout.total_seconds()
            ),
            "durable": self.durable,
            "rerun_from_failure": self.rerun_from_failure,
            "include_output": self.include_output,
            "require_output": self.require_output,
            "output_step_id": self.output_step_id,
            "log_steps": self.log_steps,
        }

    @functools.cached_property
    def hook(self) -> BlinkHook:
        from airflow_provider_blink.hooks.blink import BlinkHook

        return BlinkHook(self.blink_conn_id)

    def _body(self, context: Context) -> dict[str, Any]:
        body = self.playbook_request().body()
        if not self.openlineage_inject_parent_job_info:
            return body
        from airflow_provider_blink.openlineage import with_parent_run

        return with_parent_run(body, context["ti"])

    def execute(self, context: Context) -> dict[str, Any]:
        no_execution_yet(self)
        self.blink_execution = None  # an earlier try's, when Airflow runs this one on the same object
        if self.starts_from_trigger:
            self.log.warning(
                "start_from_trigger=True, but this task starts on a worker: %s. It waits in the triggerer "
                "(deferrable) and resumes on a worker when the run ends (docs/start-from-trigger.md).",
                self._worker_start_reason or _started_on_a_worker(context),
            )
        body = self._body(context)  # checked before anything reaches Blink, whichever way the task runs
        if self.run_sync:
            return self._run_sync(body)
        if not self.wait_for_completion:
            execution_id = self._start(context, body)
            url = self._url(execution_id)
            push_execution(self, context, execution_id, url)
            self._keep_for_lineage({"id": execution_id}, url)
            return {"execution_id": execution_id, "execution_url": url}
        if AIRFLOW_V_3_3_PLUS:
            return self.execute_resumable(context)
        execution_id = self.submit_job(context)
        self.poll_until_complete(execution_id, context)
        return self.get_job_result(execution_id, context)

    def _start(self, context: Context, body: dict[str, Any]) -> str:
        from airflow_provider_blink.tasks import FOLLOWED

        record = self._start_record(context)
        previous = None if record is None else self._previous_execution(record, body)
        outcome = (
            None if previous is None else decide_outcome(previous, self.success_states, self.failure_states)
        )
        if previous is not None and self._follows_earlier_tries() and outcome in FOLLOWED:
            execution_id = str(previous["id"])
            self.log.info(
                "Blink execution %s of an earlier try is %s; following it instead of starting another: %s",
                execution_id,
                previous.get("state_ui"),
                self._url(execution_id),
            )
            if record is not None:  # the next try follows it by id, without looking
                record.started(execution_id)
        else:
            if previous is not None and self._reruns(outcome, body):
                self.log.info("Re-running failed Blink execution %s (rerun_from_failure)", previous["id"])
                body = {**body, "past_exec_ref": previous["id"]}
            execution_id = self._send_start(record, body)
            self.log.info(
                "Started Blink execution %s of playbook %s: %s",
                execution_id,
                self.playbook_id,
                self._url(execution_id),
            )
        self.execution_id = execution_id  # for on_kill
        return execution_id

    def _follows_earlier_tries(self) -> bool:
        """Whether a try follows the execution an earlier try started (``durable``, waiting for it)."""
        return self.wait_for_completion and self.durable

    def _start_record(self, context: Context) -> StartRecord | None:
        """What earlier tries did about starting the playbook, when this task keeps it (see :class:`.tasks.StartRecord`)."""
        if not (self._follows_earlier_tries() or self.rerun_from_failure):
            return None
        from airflow_provider_blink.tasks import StartRecord

        return StartRecord(context)

    def _previous_execution(self, record: StartRecord, body: dict[str, Any]) -> dict[str, Any] | None:
        """The execution an earlier try started (see :func:`.tasks.previous_execution`)."""
        from airflow_provider_blink.tasks import previous_execution

        return previous_execution(
            self.hook,
            record,
            playbook_id=self.playbook_id,
            workspace_id=self.workspace_id,
            body=body,
            success_states=self.success_states,
            failure_states=self.failure_states,
        )

    def _send_start(self, record: StartRecord | None, body: dict[str, Any]) -> str:
        """Start the playbook, recording before it is sent that it is in flight, and then what became of it."""
        from airflow_provider_blink.hooks.transport import start_refused

        if record is not None:
            record.sending()
        try:
            execution_id = self.hook.execute_playbook(
                self.playbook_id, workspace_id=self.workspace_id, **body
            )
        except BlinkError as exc:
            if record is not None and start_refused(exc):
                record.refused()
            raise
        if record is not None:
            record.started(execution_id)
        return execution_id

    def _reruns(self, outcome: ExecutionOutcome | None, body: dict[str, Any]) -> bool:
        """Whether this try re-runs the earlier try's execution (``rerun_from_failure``; an explicit past_exec_ref wins)."""
        return self.rerun_from_failure and "past_exec_ref" not in body and outcome is ExecutionOutcome.FAILED

    # ResumableJobMixin: on Airflow 3.3+ a retry after a worker crash follows the execution the
    # crashed try started (kept in task_state_store) instead of starting a second one; before 3.3
    # execute calls submit_job on every try. Either way _start acts on the start record.

    def submit_job(self, context: Context) -> str:
        # Publishing waits for poll_until_complete: the mixin stores the id right after this
        # returns, and a crash before that would lose it.
        return self._start(context, self._body(context))

    def get_job_status(self, external_id: Any, context: Context) -> str:
        from airflow_provider_blink.executions import execution_state

        return execution_state(self.hook.get_execution(str(external_id), workspace_id=self.workspace_id))

    def is_job_active(self, status: str) -> bool:
        return self._outcome_of(status) is ExecutionOutcome.RUNNING

    def is_job_succeeded(self, status: str) -> bool:
        return self._outcome_of(status) is ExecutionOutcome.SUCCESS

    # Returns the summary: on a reconnect, execute_resumable() returns what this returns.
    def poll_until_complete(self, external_id: Any, context: Context) -> dict[str, Any]:  # type: ignore[override]
        execution_id = self.execution_id = str(external_id)  # for on_kill
        url = self._url(execution_id)
        push_execution(self, context, execution_id, url)  # the "Blink" link, once per try
        self._keep_for_lineage({"id": execution_id}, url)
        summary = self._summaries[execution_id] = self._wait(context, execution_id)
        return summary

    def get_job_result(self, external_id: Any, context: Context) -> dict[str, Any]:
        summary = self._summaries.get(str(external_id))
        if summary is None:  # the execution had already succeeded before this try
            summary = self.poll_until_complete(external_id, context)
        return summary

    def _outcome_of(self, state: str) -> ExecutionOutcome:
        return outcome_of_state(state, self.success_states, self.failure_states)

    def _wait(self, context: Context, execution_id: str) -> dict[str, Any]:
        from airflow_provider_blink.tasks import deadline, finished_event

        execution = self._first_look(execution_id)
        if execution is not None:
            outcome = decide_outcome(execution, self.success_states, self.failure_states)
            if outcome is not ExecutionOutcome.RUNNING:
                return self.execute_complete(context, finished_event(execution, outcome), execution_id)
        return self._wait_until(
            context, execution_id, deadline(context, self.timeout, self.execution_timeout)
        )

    def _wait_until(self, context: Context, execution_id: str, end_time: float | None) -> dict[str, Any]:
        """Wait for the running execution, deferred or here, until ``end_time`` (Unix time; ``None``: no deadline)."""
        from airflow_provider_blink.tasks import approval_pending, deferred_in
        from airflow_provider_blink.triggers.blink import ExecutionWatch, build_trigger, wait_for_event

        trigger = build_trigger(
            ExecutionWatch.of(self, self.poll_interval),
            execution_id,
            end_time,
            cancel_on_kill=True,
            stop_for_approval=approval_pending(self.on_waiting_for_approval, context, execution_id),
        )
        if self.deferrable:
            self.defer(
                trigger=trigger,
                method_name="execute_complete",
                kwargs={"execution_id": execution_id, "end_time": end_time, **deferred_in(context)},
            )
        return self.execute_complete(context, wait_for_event(trigger), execution_id, end_time=end_time)

    def _first_look(self, execution_id: str) -> dict[str, Any] | None:
        """
        The execution before waiting for it; ``None`` when Blink fails transiently: the wait rides that out.

        A permanent error (4xx) fails the task at once, as the wait would.
        """
        from airflow_provider_blink.hooks.transport import is_transient

        try:
            return self.hook.get_execution(execution_id, workspace_id=self.workspace_id)
        except BlinkError as exc:
            if not is_transient(exc, idempotent=True):
                raise
            self.log.warning(
                "Could not read Blink execution %s; waiting for it all the same: %s", execution_id, exc
            )
            return None

    def resume_from_trigger(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """
        Finish on a worker what BlinkPlaybookTrigger started in the triggerer (``start_from_trigger``).

        The trigger ends a successful task itself; it resumes the task here for any other end (a failed,
        cancelled or timed-out run, Blink's errors, a run waiting for a person), which then goes as
        :meth:`execute_complete` would have it.
        """
        no_execution_yet(self)
        execution_id = event.get("execution_id") if isinstance(event, dict) else None
        if not isinstance(execution_id, str):  # nothing started: the start itself failed
            message = event.get("message") if isinstance(event, dict) else None
            if not message:
                raise BlinkError(f"Unexpected event from BlinkPlaybookTrigger: {event!r}")
            raise (BlinkPermanentError if event.get("permanent") else BlinkError)(
                f"Starting playbook {self.playbook_id!r} in the triggerer failed: {message}"
            )
        self.execution_id = execution_id  # for on_kill
        push_execution(self, context, execution_id, self._url(execution_id))
        return self.execute_complete(
            context,
            event,
            execution_id,
            deferred_try=event.get("try_number"),
            end_time=event.get("end_time"),
        )

    def execute_complete(
        self,
        context: Context,
        event: dict[str, Any],
        execution_id: str | None = None,
        deferred_try: int | None = None,
        end_time: float | None = None,
    ) -> dict[str, Any]:
        """
        Finish the task from the trigger's event: return the summary, or fail saying why.

        When the run ends, its steps are read once: logged as a table, the output taken from them, and
        a failure's message names the step that failed. A ``waiting`` event calls
        ``on_waiting_for_approval`` and waits on until ``end_time``.
        """
        from airflow_provider_blink.executions import summarize
        from airflow_provider_blink.tasks import (
            call_approval_callbacks,
            execution_from_event,
            read_event,
            resumed_late,
            steps_at_end,
            whole_summary,
        )

        if resumed_late(context, deferred_try, self.log):
            return self.execute(context)

        event = read_event(event, execution_id)
        url = self._url(event["execution_id"])
        self._keep_for_lineage(event.get("execution") or {"id": event["execution_id"]}, url)
        if event["status"] == "waiting":
            call_approval_callbacks(self.on_waiting_for_approval, context, event["execution"], url, self.log)
            return self._wait_until(context, event["execution_id"], end_time)
        rest = self._cancel_if_still_running(event["execution_id"]) if event["status"] == "timeout" else ""
        steps = (
            steps_at_end(self.hook, event["execution_id"], self.workspace_id, self.log, table=self.log_steps)
            if event["status"] != "error" and (self.log_steps or self.include_output)
            else None
        )
        try:
            execution = execution_from_event(
                event, execution_id, url, steps if isinstance(steps, list) else ()
            )
        except BlinkExecutionTimeout as exc:  # the trigger cancelled the execution, and says how it went
            raise BlinkExecutionTimeout(f"{exc}{rest} ({self._limits()}). See {url}") from None
        execution = whole_summary(execution, self.hook, self.workspace_id, self.log)
        self.log.info("Blink execution %s finished: %s", execution["id"], execution.get("state_ui"))
        output = self._output(execution["id"], url, steps) if self.include_output else None
        return {**summarize(execution), "execution_url": url, "output": output}

    def _cancel_if_still_running(self, execution_id: str) -> str:
        """
        After the deadline: cancel what the trigger could not (e.g. Blink unreachable from the triggerer).

        One read; says what the worker did, or nothing when the execution no longer runs in Blink.
        """
        from airflow_provider_blink.tasks import cancel_note

        try:
            execution = self.hook.get_execution(execution_id, workspace_id=self.workspace_id)
            if decide_outcome(execution) is not ExecutionOutcome.RUNNING:
                return ""
            cancelled: bool | BlinkError = self.hook.cancel_execution(
                execution_id, workspace_id=self.workspace_id
            )
        except BlinkError as exc:
            cancelled = exc
        return f"; from the worker: {cancel_note(cancelled)}"

    def _limits(self) -> str:
        """The limits the deadline came from, e.g. ``timeout=60s, execution_timeout=0:05:00``."""
        limits = [f"timeout={self.timeout:g}s"] if self.timeout is not None else []
        if self.execution_timeout is not None:
            limits.append(f"execution_timeout={self.execution_timeout}")
        return ", ".join(limits)

    def _output(
        self, execution_id: str, url: str | None, steps: list[dict[str, Any]] | BlinkError | None
    ) -> Any:
        """The completed playbook's output from its steps; ``None`` (with a warning) when they could not be read."""
        from airflow_provider_blink.executions import playbook_output

        if isinstance(steps, BlinkError):
            exc = steps
            message = f"Blink execution {execution_id!r} completed, but its output could not be read: {exc}"
            if self.require_output:
                raise BlinkOutputUnavailable(
                    f"{message}. A retry follows the completed execution. See {url}"
                ) from None
            self.log.warning("%s. The task succeeds with output None (require_output=False).", message)
            return None
        return playbook_output(steps or [], self.output_step_id)

    def _run_sync(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            output = self.hook.run_playbook_sync(
                self.playbook_id,
                workspace_id=self.workspace_id,
                timeout=None if self.timeout is None else int(self.timeout),
                **body,
            )
        except BlinkApiError as exc:
            execution_id = exc.data.get("execution_id")
            if not execution_id:
                raise
            raise BlinkExecutionFailed(
                f"Blink execution {execution_id!r} of playbook {self.playbook_id!r} did not complete "
                f"(run_sync): {exc}. See {self._url(execution_id)}"
            ) from None
        return {
            "execution_id": None,
            "playbook_id": self.playbook_id,
            "state_ui": "Completed",
            "output": output,
        }

    def _keep_for_lineage(self, execution: Mapping[str, Any], url: str) -> None:
        """
        Keep what OpenLineage reports of this try's execution: Blink's summary, its link, where it runs.

        The listener asks in the process that ran ``execute`` or ``execute_complete``, so it is kept
        here rather than read again. Never the connection's key.
        """
        config = self.hook.config
        self.blink_execution = {
            **summarize(execution),
            "execution_url": url,
            "blink_url": config.url,
            "workspace_id": config.workspace(self.workspace_id),
            "playbook_id": self.playbook_id,
        }

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        """Lineage of this try's execution, for Airflow's OpenLineage listener (docs/openlineage.md)."""
        from airflow_provider_blink.openlineage import execution_lineage

        return execution_lineage(
            self.blink_execution, task_instance, self.success_states, self.failure_states
        )

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> OperatorLineage:
        """As :meth:`get_openlineage_facets_on_complete`: the facets say how the execution ended."""
        return self.get_openlineage_facets_on_complete(task_instance)

    def on_kill(self) -> None:
        """Cancel the execution this task started when Airflow kills the task."""
        if self.execution_id is None or not self.wait_for_completion:
            return
        self.log.info("Task killed: cancelling Blink execution %s", self.execution_id)
        self.hook.cancel_execution(self.execution_id, workspace_id=self.workspace_id)
