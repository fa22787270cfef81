"""BlinkExecutionSensor: wait for a Blink execution (e.g. one started fire-and-forget) to finish."""

from __future__ import annotations

import functools
import time
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_blink.compat import AirflowSensorTimeout, AirflowSkipException, BaseSensorOperator
from airflow_provider_blink.connection_form import DEFAULT_CONN_ID
from airflow_provider_blink.exceptions import BlinkConfigurationError, BlinkError, BlinkExecutionTimeout
from airflow_provider_blink.links.blink import (
    BlinkExecutionLink,
    no_execution_yet,
    published_url,
    push_execution,
)
from airflow_provider_blink.tasks import (
    DEFAULT_ERROR_BUDGET,
    DEFAULT_PROGRESS_INTERVAL,
    PROGRESS_KEY,
    ApprovalCallbacks,
    ErrorBudget,
    KeptValue,
    LocalStreak,
    StateChanges,
    StepProgress,
    StreakStore,
    WaitEnds,
    check_approval_callbacks,
    check_error_budget,
    check_poll_interval,
    check_progress_interval,
    execution_from_event,
    finished_event,
    read_event,
    resolve_deferrable,
    steps_at_end,
    whole_summary,
)

if TYPE_CHECKING:
    from airflow_provider_blink.compat import Context, PokeReturnValue
    from airflow_provider_blink.hooks.blink import BlinkHook


class BlinkExecutionSensor(BaseSensorOperator):
    """
    Wait until a Blink execution finishes; return its execution record through XCom.

    Works in ``poke``, ``reschedule`` and deferrable mode. A failed execution fails the task
    (or skips it with ``soft_fail=True``); so does the sensor's ``timeout``. In every mode the wait
    rides out ``error_budget`` seconds of Blink's transient errors, across reschedules too
    (:class:`.tasks.StreakStore`), and fails at once on a permanent one. When the run ends, the task
    log shows a table of its steps, and a failure names the step that failed.

    :param execution_id: the execution to watch, e.g.
        ``"{{ ti.xcom_pull(task_ids='start', key='execution_id') }}"``. Templated.
    :param workspace_id: overrides the connection's Workspace ID. Templated.
    :param blink_conn_id: the Airflow connection to Blink.
    :param deferrable: wait in the triggerer; default ``[operators] default_deferrable``.
    :param success_states: execution states that count as success (default ``Completed``).
    :param failure_states: execution states that count as failure.
    :param error_budget: seconds of back-to-back transient errors (Blink down, 429, 5xx) the wait
        rides out before the task fails (its retries apply); a 4xx fails it at once. Default 300.
    :param log_steps: when the run ends, log a table of its steps (one more read of the steps per run).
    :param log_progress: while waiting, log each step as it starts and ends (in the poke; deferred:
        in the trigger's log lines), from a read of the steps at most once per ``progress_interval``.
    :param progress_interval: seconds between two reads of the steps with ``log_progress``; default 60.
    :param on_waiting_for_approval: called once per run when Blink says a step waits for a person
        (``Pending``, ``Paused``): a notifier or any callable taking the context, or a list of them (see
        :class:`.BlinkExecutePlaybookOperator`). It runs in the poke; deferred, the task resumes for it.
    """

    template_fields: Sequence[str] = ("execution_id", "workspace_id")
    operator_extra_links = (BlinkExecutionLink(),)
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        execution_id: str,
        workspace_id: str | None = None,
        blink_conn_id: str = DEFAULT_CONN_ID,
        deferrable: bool | None = None,
        success_states: Collection[str] | None = None,
        failure_states: Collection[str] | None = None,
        error_budget: float = DEFAULT_ERROR_BUDGET,
        log_steps: bool = True,
        log_progress: bool = False,
        progress_interval: float = DEFAULT_PROGRESS_INTERVAL,
        on_waiting_for_approval: ApprovalCallbacks = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.execution_id = execution_id
        self.workspace_id = workspace_id
        self.blink_conn_id = blink_conn_id
        self.deferrable = resolve_deferrable(deferrable)
        check_poll_interval(self.poke_interval, "poke_interval")
        self.success_states = success_states
        self.failure_states = failure_states
        self.error_budget = check_error_budget(error_budget)
        self.log_steps = log_steps
        self.log_progress = log_progress
        self.progress_interval = check_progress_interval(progress_interval)
        self.on_waiting_for_approval = check_approval_callbacks(on_waiting_for_approval)
        self._progress: StepProgress | None = None  # poke mode: every poke of the try in this process
        self._states = StateChanges()
        self._local_streak = LocalStreak()
        self._first_poke: float | None = None

    @functools.cached_property
    def hook(self) -> BlinkHook:
        from airflow_provider_blink.hooks.blink import BlinkHook

        return BlinkHook(self.blink_conn_id)

    def _execution_id(self) -> str:
        if not isinstance(self.execution_id, str) or not self.execution_id.strip():
            raise BlinkConfigurationError(
                f"execution_id must be a non-empty string, got {self.execution_id!r}; "
                "check the XCom or template that supplies it."
            )
        return self.execution_id.strip()

    def _url(self, execution: dict[str, Any] | None) -> str | None:
        from airflow_provider_blink.executions import execution_url

        if not execution:
            return None
        config = self.hook.config
        workspace = config.workspace(self.workspace_id)
        return execution_url(config.url, workspace, execution.get("playbook_id"), execution["id"])

    def _finish(self, event: dict[str, Any]) -> dict[str, Any]:
        """
        The execution of a success event; otherwise fail (or skip, with ``soft_fail``).

        A run that ended has its steps read once: logged as a table, and a failure names the step that failed.
        """
        try:
            event = read_event(event, self._execution_id())
            steps = (
                steps_at_end(self.hook, event["execution_id"], self.workspace_id, self.log)
                if event["status"] in ("success", "failed") and self.log_steps
                else None
            )
            execution = execution_from_event(
                event,
                self._execution_id(),
                self._url(event.get("execution")),
                steps if isinstance(steps, list) else (),
            )
            return whole_summary(execution, self.hook, self.workspace_id, self.log)
        except BlinkExecutionTimeout as exc:
            if self.soft_fail:
                raise AirflowSkipException(f"{exc} (soft_fail)") from None
            raise AirflowSensorTimeout(str(exc)) from None
        except BlinkError as exc:
            if self.soft_fail:
                raise AirflowSkipException(f"{exc} (soft_fail)") from None
            raise

    def poke(self, context: Context) -> PokeReturnValue | bool:
        from airflow_provider_blink.compat import PokeReturnValue
        from airflow_provider_blink.executions import ExecutionOutcome, decide_outcome, waits_for_person
        from airflow_provider_blink.tasks import call_approval_callbacks

        execution = self._read(context)
        if execution is None:
            return False
        if not published_url(self):  # once per run: the "Blink" link works while the sensor waits
            url = self._url(execution) or ""
            push_execution(self, context, execution["id"], url)
            self.log.info(
                "Waiting for Blink execution %s of playbook %s: %s",
                execution["id"],
                execution.get("playbook_id"),
                url,
            )
        self._states.seen(execution, self.log, self._url(execution))
        outcome = decide_outcome(execution, self.success_states, self.failure_states)
        if outcome is ExecutionOutcome.RUNNING:
            if waits_for_person(execution):
                call_approval_callbacks(
                    self.on_waiting_for_approval, context, execution, self._url(execution), self.log
                )
            if self.log_progress:
                self._log_progress(context, execution["id"])
            return False
        if self.log_progress and self.reschedule:
            self._forget_progress(context)
        return PokeReturnValue(is_done=True, xcom_value=self._finish(finished_event(execution, outcome)))

    @staticmethod
    def _forget_progress(context: Context) -> None:
        """The run ended: drop the progress kept between reschedules (a Variable before 3.3)."""
        kept = KeptValue(context, PROGRESS_KEY)
        if kept.load() is not None:
            kept.forget()

    def _log_progress(self, context: Context, execution_id: str) -> None:
        """
        Log the steps that started or ended, reading them at most once per ``progress_interval``.

        In ``reschedule`` mode each poke is a new run: the progress is a kept value between them
        (``task_state_store`` on 3.3+, a Variable before), written only after a read of the steps.
        """
        kept = KeptValue(context, PROGRESS_KEY) if self.reschedule else None
        if self._progress is None or kept is not None:
            self._progress = StepProgress(self.progress_interval, kept.load() if kept else None)
        progress = self._progress
        if not progress.due():
            return
        try:
            steps = self.hook.get_execution_steps(execution_id, workspace_id=self.workspace_id)
        except BlinkError as exc:
            self.log.warning(
                "Could not read the steps of Blink execution %s (log_progress): %s", execution_id, exc
            )
        else:
            progress.update(execution_id, steps, self.log)
        progress.read()  # when it ended: the next read reaches Blink progress_interval after this one
        if kept is not None:
            kept.save(progress.kept())

    def _read(self, context: Context) -> dict[str, Any] | None:
        """The execution record; ``None`` while the wait rides out Blink's errors (:class:`.tasks.ErrorBudget`)."""
        execution_id = self._execution_id()
        streaks = StreakStore(context) if self.reschedule else self._local_streak
        streak = streaks.load()
        now = time.time()
        self._first_poke = self._first_poke or now
        if streak and streak.get("not_before", 0) > now:
            self.log.info("Not reading execution %s before Blink's Retry-After has passed", execution_id)
            return None
        try:
            execution = self.hook.get_execution(execution_id, workspace_id=self.workspace_id)
        except BlinkError as exc:
            budget = ErrorBudget(self.error_budget, streak["failing_since"] if streak else None)
            verdict = budget.after_error(exc, execution_id, self._deadline(context), now)
            if not isinstance(verdict, WaitEnds):
                streaks.save({"failing_since": budget.failing_since, "not_before": now + verdict})
                self.log.warning(
                    "Could not read Blink execution %s (failing for %.0fs of error_budget=%gs), "
                    "will try again: %s",
                    execution_id,
                    now - (budget.failing_since or now),
                    self.error_budget,
                    exc,
                )
                return None
            if streak:
                streaks.forget()
            event = {"status": "error", "execution_id": execution_id, "execution": None}
            self._finish({**event, "message": verdict.message, "permanent": verdict.permanent})  # raises
            return None
        if streak:
            streaks.forget()
        return execution

    def _deadline(self, context: Context) -> float | None:
        """
        When this wait ends, for a ``Retry-After``'s verdict (Unix time, or ``None``).

        In ``poke`` mode: the sensor's ``timeout`` from the first poke, or the try's
        ``execution_timeout``. In ``reschedule`` mode Airflow checks ``timeout`` between runs, and
        a run's ``execution_timeout`` bounds no wait between them.
        """
        from airflow_provider_blink.tasks import deadline

        if self.reschedule:
            return None
        ends = deadline(context, None, self.execution_timeout)
        by_timeout = (self._first_poke or time.time()) + float(self.timeout)
        return by_timeout if ends is None else min(ends, by_timeout)

    def execute(self, context: Context) -> Any:
        no_execution_yet(self)
        if not self.deferrable:
            return super().execute(context)
        from airflow_provider_blink.tasks import deadline

        done = self.poke(context)
        if not isinstance(done, bool):
            return done.xcom_value
        self._defer(context, deadline(context, self.timeout, self.execution_timeout))

    def _defer(self, context: Context, end_time: float | None) -> None:
        """Wait in the triggerer until ``end_time`` (Unix time; ``None``: no deadline)."""
        from airflow_provider_blink.tasks import approval_pending, deferred_in
        from airflow_provider_blink.triggers.blink import ExecutionWatch, build_trigger

        execution_id = self._execution_id()
        trigger = build_trigger(
            ExecutionWatch.of(self, self.poke_interval),
            execution_id,
            end_time,
            cancel_on_kill=False,
            stop_for_approval=approval_pending(self.on_waiting_for_approval, context, execution_id),
        )
        self.defer(
            trigger=trigger,
            method_name="execute_complete",
            kwargs={"end_time": end_time, **deferred_in(context)},
        )

    def execute_complete(
        self,
        context: Context,
        event: dict[str, Any],
        deferred_try: int | None = None,
        end_time: float | None = None,
    ) -> dict[str, Any]:
        """Finish from the trigger's event: return the execution record, or fail saying why (``waiting``: call ``on_waiting_for_approval``, wait on)."""
        from airflow_provider_blink.tasks import call_approval_callbacks, resumed_late

        if resumed_late(context, deferred_try, self.log):
            return self.execute(context)
        if isinstance(event, dict) and event.get("status") == "waiting":
            execution = read_event(event, self._execution_id())["execution"]
            call_approval_callbacks(
                self.on_waiting_for_approval, context, execution, self._url(execution), self.log
            )
            self._defer(context, end_time)
        return self._finish(event)
