"""What every scenario process shares: talking to the benchmark and reading its own memory."""

from __future__ import annotations

import json
import os
import resource
import sys
from typing import Any


def emit(message: dict[str, Any]) -> None:
    """Send one JSON line to the benchmark."""
    print(json.dumps(message), flush=True)


def receive() -> dict[str, Any]:
    """The benchmark's next JSON line."""
    line = sys.stdin.readline()
    if not line:
        raise SystemExit("the benchmark closed stdin")
    message: dict[str, Any] = json.loads(line)
    return message


def current_rss_mb() -> float:
    """Resident memory now (Linux ``/proc``; elsewhere the peak so far)."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
    except OSError:
        return peak_rss_mb()
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def begin(label: str) -> None:
    """Announce a measured step and wait until the benchmark is ready to watch it."""
    emit({"begin": label})
    receive()


def end() -> None:
    """Say that no more steps follow."""
    emit({"end": True})


def start_delay(index: int, count: int, interval: float, *, stagger: bool) -> float:
    """When poller ``index`` of ``count`` starts after go: at once, or spread evenly over one interval."""
    return index * interval / count if stagger else 0.0
