"""Stand-ins for what Airflow hands a task at run time: the task instance, its context, the state store."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_provider_blink.testing import BlinkEmulator


class RecordingTI:
    """
    Stands in for the task instance: records each XCom push, in order.

    :param emulator: also record, at each push, the states of the emulator's executions.
    :param try_number: the try this task instance stands for.
    """

    stats_tags: dict[str, str] = {}  # read by ResumableJobMixin on Airflow 3.3+

    def __init__(self, emulator: BlinkEmulator | None = None, try_number: int = 1) -> None:
        self.emulator = emulator
        self.try_number = try_number
        self.pushes: list[tuple[str, Any]] = []
        self.states_at_push: dict[str, list[str]] = {}

    @property
    def pushed(self) -> dict[str, Any]:
        """The last value pushed under each key."""
        return dict(self.pushes)

    def xcom_push(self, key: str, value: Any, **_: Any) -> None:
        self.pushes.append((key, value))
        if self.emulator is not None:
            self.states_at_push[key] = [e["state_ui"] for e in self.emulator.executions]


class DagRun:
    """Stands in for the DAG run in a task's context: only its start matters (a minute ago by default)."""

    def __init__(self, start_date: datetime | None = None) -> None:
        self.start_date = start_date or datetime.now(timezone.utc) - timedelta(minutes=1)


class TaskStateStore:
    """The task-state store Airflow 3.3 puts in the context: a key/value store kept across tries."""

    def __init__(self, **values: Any) -> None:
        self.values = dict(values)

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any, **_: Any) -> None:
        self.values[key] = value

    def delete(self, key: str) -> None:
        self.values.pop(key, None)


def context_for(ti: RecordingTI | None = None, **entries: Any) -> Any:
    """
    A task context holding ``ti`` (a fresh :class:`RecordingTI` if none) and any other ``entries``.

    Like Airflow's, it holds the DAG run; and an empty :class:`TaskStateStore` unless ``entries`` say
    otherwise (``task_state_store=None``: none), where a task keeps what must outlast its try
    (:class:`airflow_provider_blink.tasks.KeptValue`).
    """
    ti = ti or RecordingTI()
    context = {
        "ti": ti,
        "task_instance": ti,
        "dag_run": DagRun(),
        "task_state_store": TaskStateStore(),
        **entries,
    }
    return {key: value for key, value in context.items() if value is not None}


def earlier_try_sent_a_start(store: TaskStateStore) -> None:
    """An earlier try recorded that its start was in flight, and died before it had Blink's answer."""
    from airflow_provider_blink.tasks import StartRecord

    StartRecord(context_for(RecordingTI(try_number=1), task_state_store=store)).sending()


def earlier_try_started(store: TaskStateStore, execution_id: str) -> None:
    """An earlier try recorded the execution its start made."""
    from airflow_provider_blink.tasks import StartRecord

    StartRecord(context_for(RecordingTI(try_number=1), task_state_store=store)).started(execution_id)


def run_to_the_end(task: Any, context: Any) -> Any:
    """Run a task as Airflow would: ``execute``, and after each deferral the trigger and ``execute_complete``."""
    from airflow_provider_blink.compat import TaskDeferred
    from airflow_provider_blink.triggers.blink import wait_for_event

    try:
        return task.execute(context)
    except TaskDeferred as deferred:
        resume = getattr(task, deferred.method_name)
        while True:
            try:
                return resume(context, wait_for_event(deferred.trigger), **(deferred.kwargs or {}))
            except TaskDeferred as again:
                deferred = again
