"""Run a trigger as the triggerer would, in the test's own event loop.

For a synchronous test, the package's own in-process wait does the same:
:func:`airflow_provider_blink.triggers.blink.wait_for_event`.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from typing import Any

from airflow.triggers.base import BaseTrigger


async def next_event(trigger: BaseTrigger) -> dict[str, Any]:
    """The trigger's first event payload; the trigger is closed after it, as the triggerer closes it."""
    async with contextlib.aclosing(trigger.run()) as events:  # type: ignore[type-var]
        async for event in events:
            return dict(event.payload)
    raise AssertionError("the trigger yielded no event")


async def all_events(trigger: BaseTrigger, count: int | None = None) -> list[dict[str, Any]]:
    """
    Every event payload the trigger yields until it ends, then close it.

    :param count: stop after this many events instead (for a trigger that runs forever, as watchers do).
    """
    payloads: list[dict[str, Any]] = []
    async with contextlib.aclosing(trigger.run()) as events:  # type: ignore[type-var]
        async for event in events:
            payloads.append(dict(event.payload))
            if len(payloads) == count:
                break
    return payloads


class AssetStateStore:
    """What the triggerer injects for a watched asset (Airflow 3.3+): an async key/value store."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    async def aget(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    async def aset(self, key: str, value: Any) -> None:
        self.values[key] = value


class RunningTaskInstance:
    """The task instance the triggerer gives a trigger it runs for a task (its identity, and its try)."""

    def __init__(self, try_number: int = 1, *, dag_id: str = "sft_dag", run_id: str = "manual__1") -> None:
        self.dag_id = dag_id
        self.run_id = run_id
        self.task_id = "start_in_triggerer"
        self.map_index = -1
        self.try_number = try_number


class AirflowChannel:
    """
    The Variables and XComs a trigger or a task reads and writes through Airflow 3's channel to it (the triggerer's, a worker's).

    Installed as the Task SDK's ``SUPERVISOR_COMMS`` (Airflow 3): a ``GetVariable`` gets a
    ``VariableResult`` or ``ErrorResponse(VARIABLE_NOT_FOUND)``, a ``PutVariable`` an empty answer, and
    a failure raises ``AirflowRuntimeError``, as Airflow's channel does; a ``SetXCom`` is kept in
    :attr:`xcoms`, a ``MaskSecret`` taken.
    On Airflow 2.11 both use the metadata database: this reads and writes it there (``failing`` is not
    offered).

    :param failing: the requests to fail (``"GetVariable"``, ``"PutVariable"``).
    """

    def __init__(self, monkeypatch: Any, failing: frozenset[str] = frozenset()) -> None:
        from airflow_provider_blink.compat import AIRFLOW_V_3_0_PLUS

        self.values: dict[str, str] = {}
        self.xcoms: dict[str, Any] = {}
        self.failing = failing
        self.run_id = f"manual__{uuid.uuid4().hex}"  # the metadata database outlives a test
        self.airflow_3 = bool(AIRFLOW_V_3_0_PLUS)
        if self.airflow_3:
            from airflow.sdk.execution_time import task_runner

            monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", self, raising=False)
        else:
            assert not failing, "Airflow 2.11's triggerer reads Variables from the database"

    def pushed(self, event: Any) -> dict[str, Any]:
        """The XComs a trigger's end event pushed: with the event on 2.11, through the channel on Airflow 3."""
        return dict(self.xcoms) if self.airflow_3 else dict(event.xcoms)

    def task_instance(self, try_number: int = 1) -> RunningTaskInstance:
        """A try of the one task instance whose Variables these are."""
        return RunningTaskInstance(try_number, run_id=self.run_id)

    async def asend(self, msg: Any) -> Any:
        return self.send(msg)

    def send(self, msg: Any) -> Any:
        from airflow.sdk.exceptions import AirflowRuntimeError, ErrorType
        from airflow.sdk.execution_time.comms import ErrorResponse, VariableResult

        if msg.type in self.failing:
            raise AirflowRuntimeError(ErrorResponse(error=ErrorType.API_SERVER_ERROR, detail={"status": 500}))
        if msg.type == "GetVariable":
            if msg.key not in self.values:
                return ErrorResponse(error=ErrorType.VARIABLE_NOT_FOUND, detail={"key": msg.key})
            return VariableResult(key=msg.key, value=self.values[msg.key])
        if msg.type == "PutVariable":
            self.values[msg.key] = msg.value
            return None
        if msg.type == "SetXCom":
            self.xcoms[msg.key] = msg.value
            return None
        if msg.type == "MaskSecret":
            return None
        raise AssertionError(f"a trigger sent {msg!r}")

    def get(self, key: str) -> Any:
        """The value of ``key`` (JSON), or ``None``."""
        if self.airflow_3:
            raw = self.values.get(key)
        else:
            from airflow.models.variable import Variable

            raw = Variable.get(key, None)
        return None if raw is None else json.loads(raw)

    def set(self, key: str, value: Any) -> None:
        """Give ``key`` the JSON of ``value``, as an earlier run of a trigger would have."""
        if self.airflow_3:
            self.values[key] = json.dumps(value)
        else:
            from airflow.models.variable import Variable

            Variable.set(key, json.dumps(value))
