"""
Scenario process: many pollers of Blink executions in one event loop, as a triggerer runs them.

``--mode batched``: one :class:`BlinkExecutionTrigger` per execution, each ``run()`` to its event,
all gathered in one loop (what the triggerer does), reading through the shared poller; ``--mode
single``: the same with connection extra ``batch_reads: false`` (one GET per execution); ``--mode
progress``: as ``batched``, each trigger with ``log_progress=True`` and ``--progress-interval`` (it
reads its run's steps at most once per progress interval and logs each step as it starts and ends:
the log lines go to this process's log, never to the benchmark's pipe); with
``--connections K`` the triggers use K connections (K pollers and sessions). ``--mode floor``: the least any poller can do
over the same TLS endpoint, i.e. one shared ``aiohttp.ClientSession`` per connection (K of them,
executions shared out in turn) and per execution a loop of sleep, bare GET, ``json()``, state check:
the trigger's schedule (its first read comes one interval after it starts, as the task checked the
execution just before deferring).

All pollers start at once (a triggerer that starts or takes over 1,000 triggers), or with
``--stagger`` spread evenly over the first interval (triggers that arrived over time).

Protocol: prints ``{"ready"}`` after its imports, reads ``{"ids": [...]}``, prints ``{"go": t}``
and, once every poller has its event, ``{"result": ...}``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import functools
import gc
import importlib
import json
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from bench.child import current_rss_mb, emit, peak_rss_mb, receive, start_delay

#: Final ``state_ui`` values, as the floor poller checks them.
FINAL_STATES = frozenset({"Completed", "Failed", "Cancelled", "Timeout", "Timed out", "Stopped", "Skipped"})
TRIGGER_CLASSPATH = "airflow_provider_blink.triggers.blink.BlinkExecutionTrigger"

Event = tuple[float, str]


class GcWatch:
    """Time spent in the garbage collector, and full (generation 2) collections, while installed."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.full_collections = 0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        self.seconds += time.perf_counter() - self._started
        self.full_collections += info["generation"] == 2


def bench_connections(count: int, *, batch_reads: bool) -> list[str]:
    """``count`` connections like ``blink_default`` (each its own poller and session); their ids."""
    base = json.loads(os.environ["AIRFLOW_CONN_BLINK_DEFAULT"])
    conn_ids = []
    for number in range(count):
        conn = {**base, "extra": {**base["extra"], "batch_reads": batch_reads}}
        os.environ[f"AIRFLOW_CONN_BLINK_BENCH_{number}"] = json.dumps(conn)
        conn_ids.append(f"blink_bench_{number}")
    return conn_ids


async def run_triggers(
    ids: Sequence[str],
    interval: float,
    delays: Sequence[float],
    conn_ids: Sequence[str],
    settings: Mapping[str, Any] | None = None,
) -> list[Event]:
    """
    Build each trigger from its class path and kwargs, as the triggerer does, and run them all.

    :param settings: more kwargs for every trigger (``log_progress``, ``progress_interval``).
    """
    module, _, name = TRIGGER_CLASSPATH.rpartition(".")
    trigger_class = getattr(importlib.import_module(module), name)

    async def run_one(number: int, execution_id: str, delay: float) -> Event:
        await asyncio.sleep(delay)
        conn_id = conn_ids[number % len(conn_ids)]
        trigger = trigger_class(
            execution_id=execution_id, poll_interval=interval, blink_conn_id=conn_id, **(settings or {})
        )
        status = "no event"
        try:
            async for event in trigger.run():
                status = event.payload["status"]
        finally:
            await trigger.cleanup()
        return time.time(), status

    return await asyncio.gather(*(run_one(n, i, d) for n, (i, d) in enumerate(zip(ids, delays, strict=True))))


async def run_floor(
    ids: Sequence[str], interval: float, delays: Sequence[float], conn_ids: Sequence[str]
) -> list[Event]:
    """Poll with bare GET + JSON over one shared session per connection (aiohttp's default 100-connection pool)."""
    import aiohttp

    conn = json.loads(os.environ["AIRFLOW_CONN_BLINK_DEFAULT"])
    base = f"{conn['host']}/api/v1/workspace/{conn['extra']['workspace_id']}/executions/"
    headers = {"BLINK-API-KEY": conn["password"], "Accept": "application/json"}

    async def poll(session: aiohttp.ClientSession, execution_id: str, delay: float) -> Event:
        await asyncio.sleep(delay)
        while True:
            await asyncio.sleep(interval)
            async with session.get(base + execution_id) as response:
                response.raise_for_status()
                record = await response.json()
            if record["state_ui"] in FINAL_STATES:
                return time.time(), record["state_ui"]

    sessions = [aiohttp.ClientSession(headers=headers) for _ in conn_ids]
    try:
        return await asyncio.gather(
            *(
                poll(sessions[n % len(sessions)], i, d)
                for n, (i, d) in enumerate(zip(ids, delays, strict=True))
            )
        )
    finally:
        await asyncio.gather(*(session.close() for session in sessions))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.trigger_load")
    parser.add_argument("--mode", choices=["batched", "single", "floor", "progress"], required=True)
    parser.add_argument("--connections", type=int, default=1, help="connections the triggers use")
    parser.add_argument("--interval", type=float, required=True)
    parser.add_argument(
        "--progress-interval", type=float, default=60.0, help="progress mode: the triggers' progress_interval"
    )
    parser.add_argument("--stagger", action="store_true", help="spread the starts over one interval")
    parser.add_argument("--profile", help="write a cProfile of the polling to this file")
    args = parser.parse_args(argv)

    import airflow.triggers.base  # noqa: F401  # loaded in every triggerer, so in both modes

    rss_airflow = current_rss_mb()
    if args.mode != "floor":
        import airflow_provider_blink.hooks.blink  # imported by the first run()
        import airflow_provider_blink.triggers.blink  # noqa: F401
    else:
        import aiohttp  # noqa: F401
    emit({"ready": True, "rss_airflow_mb": rss_airflow, "rss_ready_mb": current_rss_mb()})

    ids = receive()["ids"]
    delays = [start_delay(i, len(ids), args.interval, stagger=args.stagger) for i in range(len(ids))]
    conn_ids = bench_connections(args.connections, batch_reads=args.mode in ("batched", "progress"))
    progress = {"log_progress": True, "progress_interval": args.progress_interval}
    settings = progress if args.mode == "progress" else {}
    runner = run_floor if args.mode == "floor" else functools.partial(run_triggers, settings=settings)
    profiler = cProfile.Profile() if args.profile else None
    gc_watch = GcWatch()
    gc.callbacks.append(gc_watch)
    go, cpu_start, wall_start = time.time(), time.process_time(), time.perf_counter()
    emit({"go": go})
    if profiler:
        profiler.enable()
    events = asyncio.run(runner(ids, args.interval, delays, conn_ids))
    if profiler:
        profiler.disable()
        profiler.dump_stats(args.profile)
    result: dict[str, Any] = {
        "cpu_s": time.process_time() - cpu_start,
        "wall_s": time.perf_counter() - wall_start,
        "events": {i: list(event) for i, event in zip(ids, events, strict=True)},
        "peak_rss_mb": peak_rss_mb(),
        "gc_s": gc_watch.seconds,
        "gc_full_collections": gc_watch.full_collections,
    }
    emit({"result": result})


if __name__ == "__main__":
    main()
