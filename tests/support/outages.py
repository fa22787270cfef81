"""Blink going down while a task waits: faults injected once the wait has read the execution."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

from airflow_provider_blink.testing import BlinkEmulator, Fault

from support.emulator import requests_to


@contextlib.contextmanager
def outage_once_waiting(emulator: BlinkEmulator, fault: Fault | None = None) -> Iterator[None]:
    """
    From the first successful read of an execution on, reads fail with ``fault``.

    :param fault: default: Blink answers 503 to every read until the block ends (a fault with
        ``times`` set ends the outage after that many reads).
    """
    fault = fault or Fault("get", "status", status=503, times=None)
    stop = threading.Event()

    def inject_once_waiting() -> None:
        while not stop.is_set():
            if any(r.status == 200 for r in requests_to(emulator, "GET", "")):
                emulator.inject(fault)
                return
            time.sleep(0.005)

    watcher = threading.Thread(target=inject_once_waiting, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join(5)
