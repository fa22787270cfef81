"""Blink going down while a task waits: faults injected once the wait has read the execution."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

from airflow_provider_blink.testing import BlinkEmulator, Fault

from support.emulator import requests_to


@contextlib.contextmanager
def outage_once_waiting(
    emulator: BlinkEmulator,
    fault: Fault | None = None,
    lasting: float | None = None,
    afterwards: Callable[[], None] | None = None,
) -> Iterator[None]:
    """
    From the first successful read of an execution on, every read fails with ``fault``.

    :param fault: default: Blink answers 503.
    :param lasting: seconds until Blink answers again; ``None``: until the block ends.
    :param afterwards: called once Blink answers again (e.g. to finish the execution).
    """
    fault = fault or Fault("get", "status", status=503, times=None)
    stop = threading.Event()

    def inject_once_waiting() -> None:
        while not stop.is_set():
            if any(r.status == 200 for r in requests_to(emulator, "GET", "")):
                emulator.inject(fault)
                if lasting is not None and not stop.wait(lasting):
                    emulator.clear_faults()
                    if afterwards is not None:
                        afterwards()
                return
            time.sleep(0.005)

    watcher = threading.Thread(target=inject_once_waiting, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join(5)
