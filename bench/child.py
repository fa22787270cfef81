"""What every scenario process shares: talking to the benchmark and reading its own memory."""

from __future__ import annotations

import json
import os
import resource
import sys
from typing import Any

# The benchmark reads this process's stdout only when it waits for a message: whatever else the code
# measured prints (the triggers' log lines) goes to stderr, the child's log file, so it can never fill
# the pipe and stall the child. The messages keep the original stdout.
_MESSAGES = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
os.dup2(sys.stderr.fileno(), sys.stdout.fileno())


def emit(message: dict[str, Any]) -> None:
    """Send one JSON line to the benchmark."""
    print(json.dumps(message), file=_MESSAGES, flush=True)


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
