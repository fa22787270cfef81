"""Fixtures for the sensor's tests."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from airflow_provider_blink.sensors.blink import BlinkExecutionSensor


@pytest.fixture
def fresh_sensor_each_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """
    Run each run of a sensor on a fresh copy of the task, as a worker does.

    ``dag.test()`` runs every run of a task on the one task object of the DAG, so whatever a
    reschedule-mode sensor kept in memory would survive its reschedules here, as it never does on a
    worker (each run parses the DAG anew).
    """
    execute = BlinkExecutionSensor.execute

    def on_a_fresh_copy(self: BlinkExecutionSensor, context: Any) -> Any:
        return execute(copy.deepcopy(self), context)

    monkeypatch.setattr(BlinkExecutionSensor, "execute", on_a_fresh_copy)
