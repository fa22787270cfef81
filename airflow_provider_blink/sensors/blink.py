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
    ErrorBudget,
    LocalStreak,
    StateChanges,
    StreakStore,
    WaitEnds,
    check_error_budget,
    check_poll_interval,
    execution_from_event,
    finished_event,
    resolve_deferrable,
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
    (:class:`.tasks.StreakStore`), and fails at once on a permanent one.

    :param execution_id: the execution to watch, e.g.
        ``"{{ ti.xcom_pull(task_ids='start', key='execution_id') }}"``. Templated.
    :param workspace_id: overrides the connection's Workspace ID. Templated.
    :param blink_conn_id: the Airflow connection to Blink.
    :param deferrable: wait in the triggerer; default ``[operators] default_deferrable``.
    :param success_states: execution states that count as success (default ``Completed``).
    :param failure_states: execution states that count as failure.
    :param error_budget: seconds of back-to-back transient errors (Blink down, 429, 5xx) the wait
        rides out before the task fails (its retries apply); a 4xx fails it at once. Default 300.
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
        """The execution of a success event; otherwise fail (or skip, with ``soft_fail``)."""
        try:
            execution = execution_from_event(event, self._execution_id(), self._url(event.get("execution")))
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
        from airflow_provider_blink.executions import ExecutionOutcome, decide_outcome

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
        self._states.seen(execution, self.log)
        outcome = decide_outcome(execution, self.success_states, self.failure_states)
        if outcome is ExecutionOutcome.RUNNING:
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._finish(finished_event(execution, outcome)))

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
        from airflow_provider_blink.tasks import deadline, deferred_in
        from airflow_provider_blink.triggers.blink import ExecutionWatch, build_trigger

        done = self.poke(context)
        if not isinstance(done, bool):
            return done.xcom_value
        end_time = deadline(context, self.timeout, self.execution_timeout)
        trigger = build_trigger(
            ExecutionWatch.of(self, self.poke_interval), self._execution_id(), end_time, cancel_on_kill=False
        )
        self.defer(trigger=trigger, method_name="execute_complete", kwargs=deferred_in(context))

    def execute_complete(
        self, context: Context, event: dict[str, Any], deferred_try: int | None = None
    ) -> dict[str, Any]:
        """Finish from the trigger's event: return the execution record, or fail saying why."""
        from airflow_provider_blink.tasks import resumed_late

        if resumed_late(context, deferred_try, self.log):
            return self.execute(context)
        return self._finish(event)
