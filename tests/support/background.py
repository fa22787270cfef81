"""Doing something on the side while a test's block runs: finishing an execution, injecting a fault."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def meanwhile(step: Callable[[], bool], interval: float = 0.05) -> Iterator[None]:
    """
    While the block runs, call ``step()`` on a thread every ``interval`` seconds until it returns ``True``.

    Lets a test act when something has happened (an execution was read, a run started) instead of after
    a guessed time, however slow the machine.
    """
    stop = threading.Event()

    def repeat() -> None:
        while not step():
            if stop.wait(interval):
                return

    thread = threading.Thread(target=repeat, name="meanwhile", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)
