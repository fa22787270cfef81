"""
Scenario process: a batched read against list answers Blink's contract does not allow.

A few :class:`BlinkExecutionTrigger` runs in one event loop read their (already finished)
executions through the shared poller, while the emulator answers their list call as ``--case``
says: ``normal``, ``padded`` (about a million items for ids nobody asked for, ~17 MiB, under the
answer cap) or ``conflicting`` (each item preceded by a copy in another final state). Measured:
the peak resident memory above what it was just before, and the event loop's longest stall (how
late a 10 ms sleep woke up at most), beside the events' statuses.

Protocol: prints ``{"ready"}`` after its imports, reads ``{"ids": [...]}``, warms up (one GET) and
prints ``{"warm"}``, reads ``{"go"}``, prints ``{"result": ...}``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence
from typing import Any

from bench.child import current_rss_mb, emit, receive

#: Seconds between the loop-lag probe's wake-ups.
PROBE_SLEEP = 0.01


def peak_rss_since_reset_mb() -> float:
    """The peak resident memory since :func:`reset_peak` (Linux ``VmHWM``)."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024


def reset_peak() -> None:
    """Restart the peak (``VmHWM``) from the memory resident now."""
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")


class LoopLag:
    """The longest the event loop was late to wake a periodic sleep, while running."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _probe(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time() + PROBE_SLEEP
            await asyncio.sleep(PROBE_SLEEP)
            self.longest = max(self.longest, loop.time() - asked)

    def __enter__(self) -> LoopLag:
        self._task = asyncio.ensure_future(self._probe())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def read_batched(ids: Sequence[str], interval: float) -> dict[str, Any]:
    """Warm up (connection, session), then run one trigger per execution to its event, measured."""
    from airflow_provider_blink.hooks.blink import BlinkHook
    from airflow_provider_blink.triggers.blink import BlinkExecutionTrigger

    async with BlinkHook().async_client() as client:  # what the first read would load: not measured
        await client.get_execution(ids[0])
    emit({"warm": True})
    receive()

    async def run_one(execution_id: str) -> str:
        trigger = BlinkExecutionTrigger(execution_id=execution_id, poll_interval=interval)
        status = "no event"
        try:
            async for event in trigger.run():
                status = event.payload["status"]
        finally:
            await trigger.cleanup()
        return status

    reset_peak()
    before = current_rss_mb()
    started = time.perf_counter()
    with LoopLag() as lag:
        statuses = await asyncio.gather(*(run_one(i) for i in ids))
    return {
        "seconds": time.perf_counter() - started,
        "peak_rss_growth_mb": peak_rss_since_reset_mb() - before,
        "longest_stall_ms": lag.longest * 1000,
        "statuses": list(statuses),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.hostile_answers")
    parser.add_argument("--interval", type=float, required=True)
    args = parser.parse_args(argv)
    import airflow_provider_blink.triggers.blink  # noqa: F401  # imported before the measurement

    emit({"ready": True})
    ids = receive()["ids"]
    emit({"result": asyncio.run(read_batched(ids, args.interval))})


if __name__ == "__main__":
    main()
