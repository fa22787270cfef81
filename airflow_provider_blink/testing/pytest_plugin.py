"""Opt-in pytest fixtures: add ``pytest_plugins = ["airflow_provider_blink.testing.pytest_plugin"]``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_provider_blink.testing.emulator import BlinkEmulator
from airflow_provider_blink.testing.playbooks import DEMO_PLAYBOOKS, DEMO_WORKSPACE

API_KEY = "test-api-key"


@pytest.fixture
def blink_emulator_factory() -> Iterator[Callable[..., BlinkEmulator]]:
    """A callable taking :class:`BlinkEmulator` arguments; it returns a started emulator, stopped later."""
    started: list[BlinkEmulator] = []

    def factory(**kwargs: Any) -> BlinkEmulator:
        emulator = BlinkEmulator(**kwargs).start()
        started.append(emulator)
        return emulator

    yield factory
    for emulator in reversed(started):
        emulator.stop()


@pytest.fixture
def blink_emulator(
    blink_emulator_factory: Callable[..., BlinkEmulator], monkeypatch: pytest.MonkeyPatch
) -> BlinkEmulator:
    """A started emulator with the demo playbooks, wired up as the ``blink_default`` connection."""
    emulator = blink_emulator_factory(api_key=API_KEY, workspaces=[DEMO_WORKSPACE], playbooks=DEMO_PLAYBOOKS)
    for name, value in emulator.connection_env("blink_default", DEMO_WORKSPACE).items():
        monkeypatch.setenv(name, value)
    return emulator
