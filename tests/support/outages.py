"""Blink going down while a task waits: faults injected once the wait has read the execution."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from airflow_provider_blink.testing import BlinkEmulator, Fault

from support.background import meanwhile
from support.emulator import requests_to


@contextlib.contextmanager
def outage_once_waiting(emulator: BlinkEmulator, fault: Fault | None = None) -> Iterator[None]:
    """
    From the first successful read of an execution on, reads fail with ``fault``.

    :param fault: default: Blink answers 503 to every read until the block ends (a fault with
        ``times`` set ends the outage after that many reads).
    """
    fault = fault or Fault("get", "status", status=503, times=None)

    def inject_once_waiting() -> bool:
        if not any(r.status == 200 for r in requests_to(emulator, "GET", "")):
            return False
        emulator.inject(fault)
        return True

    with meanwhile(inject_once_waiting, interval=0.005):
        yield
