"""
The five measurements, each run from the benchmark's process against the one emulator process.

Each poller scenario (ours, floor), each import and each pagination count runs in a fresh process of
its own, so its CPU time and peak memory are its own; the sync hook and bare session alternate in
one process. The emulator's CPU over the same span is reported beside each.
"""

from __future__ import annotations

import collections
import itertools
import json
import re
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.child import start_delay
from bench.emulator_client import PAGES_WORKSPACE, PROGRESS_PLAYBOOK, EmulatorProcess
from bench.emulator_host import STAMP_EVERY
from bench.procs import ChildProcess, ConnectionSampler, cpu_seconds, rss_mb, run_once, start_child


@dataclass(frozen=True)
class Settings:
    """What the command line chose; the defaults are the issue's."""

    triggers: int = 1000
    interval: float = 2.0
    window: float = 20.0
    #: The large load: waiting executions, poll interval and measured window.
    many_triggers: int = 10000
    many_interval: float = 10.0
    many_window: float = 40.0
    #: Connections (each its own poller and session) in the mixed case.
    mixed_connections: int = 10
    sync_calls: int = 1000
    sync_reps: int = 3
    parse_runs: int = 5
    page_counts: tuple[int, ...] = (5000, 20000)
    page_size: int = 1000
    stagger: bool = False
    profile: Path | None = None
    #: Items for ids nobody asked for in the padded list answer (17 bytes each).
    padding_items: int = 1_000_000
    #: The ``log_progress`` triggers' ``progress_interval`` (s); ``None``: a third of ``window``, so
    #: the window holds several.
    progress_interval: float | None = None
    #: The trigger loads to run (see :data:`LOADS`).
    loads: tuple[str, ...] = ("base", "many", "mixed")

    def progress_every(self) -> float:
        """The progress mode's ``progress_interval``: as set, or a third of the window."""
        return self.window / 3 if self.progress_interval is None else self.progress_interval

    def progress_duration(self) -> float:
        """
        How long a run of the progress playbook lasts unless the bench finishes it: two windows and 10 s.

        Longer than starting the runs and the window together, so only the bench finishes them; its
        steps, equal slices of it, start and end while the triggers wait.
        """
        return 2 * self.window + 10


@dataclass(frozen=True)
class Load:
    """
    One trigger load: how many pollers, their interval, the measured window, their connections.

    :param progress_interval: also run the ``progress`` mode, with this ``progress_interval``.
    """

    triggers: int
    interval: float
    window: float
    connections: int = 1
    progress_interval: float | None = None

    @property
    def modes(self) -> tuple[str, ...]:
        """The modes this load runs, in order: :data:`TRIGGER_MODES`, then ``progress`` when asked."""
        return TRIGGER_MODES + (() if self.progress_interval is None else ("progress",))


@dataclass
class Bench:
    """What every scenario needs: settings, the emulator, the children's environment, a log folder."""

    settings: Settings
    emulator: EmulatorProcess
    env: Mapping[str, str]
    logs: Path

    def child(self, module: str, args: Sequence[str], name: str) -> ChildProcess:
        return start_child(module, args, self.env, self.logs / f"{name}.log")


def _median(values: Sequence[float]) -> float:
    return statistics.median(values)


def _emulator_cpu(bench: Bench) -> Callable[[], float]:
    """Start counting the emulator's CPU seconds; the returned function reads the count."""
    start = bench.emulator.cpu_seconds()
    return lambda: bench.emulator.cpu_seconds() - start


# -- 1. triggers ---------------------------------------------------------------------------------


def _wait_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()))


def _pace(
    poll_times: Mapping[str, list[float]], ids: Sequence[str], go: float, interval: float, stagger: bool
) -> dict[str, Any]:
    """Reads made vs reads the interval asks for between each poller's first and last read; first-read delays."""
    first_reads = [  # after when each was due: one interval after its poller started
        poll_times[i][0] - (go + start_delay(n, len(ids), interval, stagger=stagger) + interval)
        for n, i in enumerate(ids)
        if poll_times[i]
    ]
    made = sum(len(t) - 1 for t in poll_times.values() if t)
    asked = sum(t[-1] - t[0] for t in poll_times.values() if t) / interval
    return {
        "achieved_polls": made,
        "requested_polls": asked,
        "achieved_ratio": made / asked,
        "first_read_late_max_s": max(first_reads),
        "first_read_late_median_s": _median(first_reads),
    }


def _before(poll_times: Mapping[str, list[float]], finished: Mapping[str, float]) -> dict[str, list[float]]:
    """The reads of each execution before it completed (the pace; a batched read's final GET comes after)."""
    return {i: [t for t in times if t < finished[i]] for i, times in poll_times.items()}


def _steps_budget(
    steps_times: Mapping[str, list[float]], finished: Mapping[str, float], every: float
) -> dict[str, Any]:
    """
    The steps reads of each execution before it completed, against one per ``every`` seconds.

    The rate is, over all executions, the reads made after each one's first against the progress
    intervals between its first and last read (<= 1 when they came at least ``every`` apart on
    average, as the pace of the polls is taken). Strictly: the shortest gap between two reads of one
    execution, and the executions with more reads than one plus the progress intervals from their
    first read to their completion (each to within the stamps' resolution, :data:`STAMP_EVERY`).
    """
    before = _before(steps_times, finished)
    read = {i: times for i, times in before.items() if times}
    made = sum(len(times) - 1 for times in read.values())
    spans = sum(times[-1] - times[0] for times in read.values()) / every
    gaps = [b - a for times in read.values() for a, b in itertools.pairwise(times)]
    over = [
        i for i, times in read.items() if len(times) > 1 + (finished[i] - times[0] + STAMP_EVERY) // every
    ]
    counts = [len(times) for times in before.values()]
    return {
        "progress_interval_s": every,
        "steps_reads_per_execution_progress_interval": made / spans if spans else None,
        "steps_read_gap_min_s": min(gaps) if gaps else None,
        "steps_read_gap_median_s": _median(gaps) if gaps else None,
        "executions_over_steps_budget": len(over),
        "steps_reads_per_execution_max": max(counts),
        "steps_reads_per_execution_min": min(counts),
        "stamp_resolution_s": STAMP_EVERY,
    }


#: How :class:`.tasks.StepProgress` logs a step starting and ending (counted in the child's log).
STEP_STARTED = re.compile(r"Blink execution \S+: step \S+ started")
STEP_ENDED = re.compile(r"Blink execution \S+: step \S+ ended")


def _steps_logged(log: Path) -> dict[str, int]:
    """The step lines the triggers logged (the child's log file): starts and ends."""
    text = log.read_text(errors="replace")
    return {"started": len(STEP_STARTED.findall(text)), "ended": len(STEP_ENDED.findall(text))}


def triggers(bench: Bench, mode: str, load: Load) -> dict[str, Any]:
    """
    N pollers in one event loop for the window, then every run completes at once.

    Reads are what the emulator received (GET /executions/{id} and list calls), each with when it
    came. Each poller should read every interval, from one interval after go (its first read waits
    an interval): achieved / requested polls is, over all pollers, the reads made between each one's
    first and last read against the reads the interval asks for in that span, so it measures the
    pace alone; how late the first reads came is reported beside it. The poller process's CPU is
    read from outside every interval; requests and CPU per execution per interval are taken after
    the first interval. At the window's end the bench completes every run, and each poller's event
    time gives its lag.

    Steps reads (GET /executions/{id}/steps) are counted apart from the reads, per execution; the
    requests per execution per interval count both. In ``progress`` mode the runs are of the
    several-step playbook, their steps starting and ending during the window, and the steps reads
    are checked against one per ``progress_interval`` (:func:`_steps_budget`); the step lines the
    triggers logged are counted in the child's log.

    :param mode: ``floor`` (bare aiohttp GETs), ``batched`` (the triggers, reading through the
        shared poller), ``single`` (the triggers with ``batch_reads: false``) or ``progress`` (as
        ``batched``, with ``log_progress`` and the load's ``progress_interval``).
    """
    s = bench.settings
    progress = mode == "progress"
    args = ["--mode", mode, "--interval", str(load.interval), "--connections", str(load.connections)]
    args += ["--stagger"] if s.stagger else []
    if progress:
        assert load.progress_interval is not None
        args += ["--progress-interval", str(load.progress_interval)]
    if s.profile is not None and mode == "batched":
        args += ["--profile", str(s.profile)]
    name = f"triggers-{mode}-{load.triggers}-{load.connections}"
    child = bench.child("bench.trigger_load", args, name)
    ready = child.receive()
    ids = bench.emulator.start_runs(load.triggers, *([PROGRESS_PLAYBOOK] if progress else []))
    polls_before, steps_before = bench.emulator.reads()
    emulator_cpu = _emulator_cpu(bench)
    with ConnectionSampler(child.pid, bench.emulator.port, interval=0.25) as sampler:
        child.send({"ids": ids})
        go = child.receive()["go"]
        start = go + load.interval / 2
        # (seconds into the window, polls so far, steps reads so far, poller CPU seconds so far)
        timeline = []
        waiting_rss = 0.0  # the poller's RSS while every execution runs (sampled from outside)
        for step in range(round(load.window / load.interval) + 1):
            _wait_until(start + step * load.interval)
            timeline.append((step * load.interval, *bench.emulator.reads(), cpu_seconds(child.pid)))
            waiting_rss = max(waiting_rss, rss_mb(child.pid))
        finished = bench.emulator.finish(ids)
        result = child.receive()["result"]
    polls_after, steps_after = bench.emulator.reads()
    polls, steps_reads = polls_after - polls_before, steps_after - steps_before
    emulator_seconds = emulator_cpu()
    child.wait()
    events = result["events"]
    lags = [events[i][0] - finished[i] for i in ids]
    (_, polls_at_start, steps_at_start, _) = timeline[0]
    (_, polls_after_first, steps_after_first, cpu_after_first) = timeline[1]
    (_, polls_at_end, steps_at_end, cpu_at_end) = timeline[-1]
    execution_intervals = load.triggers * (len(timeline) - 2)
    polls_measured, steps_measured = polls_at_end - polls_after_first, steps_at_end - steps_after_first
    figures = {
        "mode": mode,
        "triggers": load.triggers,
        "connections": load.connections,
        "staggered_starts": s.stagger,
        "poll_interval_s": load.interval,
        "window_s": load.window,
        **_pace(_before(bench.emulator.poll_times(ids), finished), ids, go, load.interval, s.stagger),
        "polls_before_window": polls_at_start - polls_before,
        "polls_per_interval": [b[1] - a[1] for a, b in itertools.pairwise(timeline)],
        "polls_total": polls,
        "steps_reads_before_window": steps_at_start - steps_before,
        "steps_reads_per_interval": [b[2] - a[2] for a, b in itertools.pairwise(timeline)],
        "steps_reads_total": steps_reads,
        "requests_per_execution_interval": (polls_measured + steps_measured) / execution_intervals,
        "polls_per_execution_interval": polls_measured / execution_intervals,
        "steps_reads_per_execution_interval": steps_measured / execution_intervals,
        "cpu_ms_per_execution_interval": (cpu_at_end - cpu_after_first) / execution_intervals * 1000,
        "cpu_s": result["cpu_s"],
        "wall_s": result["wall_s"],
        "cpu_ms_per_poll": result["cpu_s"] / polls * 1000,
        "gc_s": result["gc_s"],
        "gc_full_collections": result["gc_full_collections"],
        "rss_with_airflow_mb": ready["rss_airflow_mb"],
        "rss_ready_mb": ready["rss_ready_mb"],
        "peak_rss_mb": result["peak_rss_mb"],
        "rss_mb_per_1000_triggers": (result["peak_rss_mb"] - ready["rss_ready_mb"]) / load.triggers * 1000,
        "waiting_rss_mb": waiting_rss,
        "tcp_peak_open": sampler.peak_open,
        "tcp_distinct_seen": len(sampler.local_ports),
        "tcp_samples": sampler.samples,
        "lag_max_s": max(lags),
        "lag_median_s": _median(lags),
        "last_event_after_completion_s": max(e[0] for e in events.values()) - max(finished.values()),
        "statuses": dict(collections.Counter(status for _, status in events.values())),
        "emulator_cpu_s": emulator_seconds,
        "emulator_cpu_ms_per_poll": emulator_seconds / (polls + steps_reads) * 1000,
    }
    if progress:
        assert load.progress_interval is not None
        steps_times = bench.emulator.steps_times(ids)
        figures.update(_steps_budget(steps_times, finished, load.progress_interval))
        figures["steps_logged"] = _steps_logged(child.log)
    return figures


#: The trigger loads' modes, in the order they run: the floor first, as the others are compared to it.
TRIGGER_MODES = ("floor", "batched", "single")


#: The trigger loads, by the name ``--loads`` chooses them with: the issue's 1,000 waiting executions
#: (``base``; it alone also runs with ``log_progress``), 10,000 (``many``), and the mixed case.
LOADS = ("base", "many", "mixed")


def trigger_loads(s: Settings) -> dict[str, Load]:
    """The loads measured (those ``s.loads`` names), by their label in the table."""
    loads = {
        "base": (
            str(s.triggers),
            Load(s.triggers, s.interval, s.window, progress_interval=s.progress_every()),
        ),
        "many": (str(s.many_triggers), Load(s.many_triggers, s.many_interval, s.many_window)),
        "mixed": (
            f"{s.triggers} over {s.mixed_connections} connections",
            Load(s.triggers, s.interval, s.window, s.mixed_connections),
        ),
    }
    return dict(loads[name] for name in LOADS if name in s.loads)


# -- 2. DAG parse cost ---------------------------------------------------------------------------

SDK_ONLY = "import airflow.sdk"
#: The same, then the provider's DAG-facing modules, printing what they added: ms and module names.
WITH_PROVIDER = """
import sys, time, json, airflow.sdk
before, started = set(sys.modules), time.perf_counter()
import airflow_provider_blink.operators.blink, airflow_provider_blink.sensors.blink
print(json.dumps([(time.perf_counter() - started) * 1000, sorted(set(sys.modules) - before)]))
"""


def parse_cost(bench: Bench) -> dict[str, Any]:
    """
    Whole-process ``python -c`` import times, interleaved, median of N.

    Airflow's import takes seconds and varies by hundreds of ms from run to run, more than the
    provider adds; so the provider's runs also time their own imports after ``airflow.sdk`` from
    inside the process, which is what the target is checked on. One warm-up run first (bytecode);
    :func:`bench.run.run` has warmed up ``airflow.sdk`` (and the Airflow home) already.
    """
    commands = {"sdk": SDK_ONLY, "provider": WITH_PROVIDER}
    run_once([sys.executable, "-c", WITH_PROVIDER], bench.env)
    wall: dict[str, list[float]] = {name: [] for name in commands}
    cpu: dict[str, list[float]] = {name: [] for name in commands}
    inside: list[float] = []
    modules: list[str] = []
    for _ in range(bench.settings.parse_runs):
        for name, code in commands.items():
            seconds, cpu_time, output = run_once([sys.executable, "-c", code], bench.env)
            wall[name].append(seconds * 1000)
            cpu[name].append(cpu_time * 1000)
            if name == "provider":
                added_ms, modules = json.loads(output)
                inside.append(added_ms)
    sdk, ours = _median(wall["sdk"]), _median(wall["provider"])
    return {
        "runs": bench.settings.parse_runs,
        "sdk_ms": sdk,
        "provider_ms": ours,
        "added_ms": ours - sdk,
        "ratio": ours / sdk,
        "sdk_cpu_ms": _median(cpu["sdk"]),
        "provider_cpu_ms": _median(cpu["provider"]),
        "added_in_process_ms": _median(inside),
        "all_wall_ms": {name: [round(v, 1) for v in values] for name, values in wall.items()},
        "all_added_in_process_ms": [round(v, 1) for v in inside],
        "modules_added": modules,
    }


# -- 3. sync hook --------------------------------------------------------------------------------


def run_steps(bench: Bench, child: ChildProcess) -> dict[str, dict[str, Any]]:
    """Drive a child's measured steps, adding the emulator's CPU during each; wait for its exit."""
    results: dict[str, dict[str, Any]] = {}
    while "begin" in (message := child.receive()):
        emulator_cpu = _emulator_cpu(bench)
        child.send({"go": True})
        result = child.receive()["result"]
        result["emulator_cpu_s"] = emulator_cpu()
        results[message["begin"]] = result
    child.wait()
    return results


def sync_hook(bench: Bench) -> dict[str, Any]:
    """N sequential GETs through the hook and through a bare session, alternating, in one process."""
    s = bench.settings
    [execution_id] = bench.emulator.start_runs(1)
    args = ["--execution-id", execution_id, "--calls", str(s.sync_calls), "--reps", str(s.sync_reps)]
    steps = run_steps(bench, bench.child("bench.sync_calls", args, "sync"))
    summary: dict[str, Any] = {"calls": s.sync_calls, "repetitions": s.sync_reps}
    for mode in ("hook", "bare"):
        results = [steps[f"{mode}-{rep}"] for rep in range(s.sync_reps)]
        summary[mode] = {
            "per_call_ms": _median([r["per_call_ms"] for r in results]),
            "cpu_per_call_ms": _median([r["cpu_per_call_ms"] for r in results]),
            "connections_opened": max(r["connections_opened"] for r in results),
            "emulator_cpu_ms_per_call": _median([r["emulator_cpu_s"] for r in results]) / s.sync_calls * 1000,
            "all_per_call_ms": [round(r["per_call_ms"], 4) for r in results],
        }
    summary["ratio"] = summary["hook"]["per_call_ms"] / summary["bare"]["per_call_ms"]
    return summary


# -- 4. pagination -------------------------------------------------------------------------------


def page_playbook(count: int) -> str:
    return f"pages-{count}"


def pagination(bench: Bench) -> dict[str, Any]:
    """Iterate every seeded execution for each count: time, tracemalloc peak, and a list's peak."""
    s = bench.settings
    for count in s.page_counts:
        bench.emulator.seed(page_playbook(count), count)
    results: dict[str, Any] = {"page_size": s.page_size, "counts": {}}
    for count in s.page_counts:
        args = ["--workspace", PAGES_WORKSPACE, "--playbook", page_playbook(count)]
        args += ["--expect", str(count), "--page-size", str(s.page_size)]
        steps = run_steps(bench, bench.child("bench.pagination", args, f"pages-{count}"))
        results["counts"][str(count)] = {
            "seconds": steps["time"]["seconds"],
            "us_per_execution": steps["time"]["seconds"] / count * 1e6,
            "emulator_cpu_s": steps["time"]["emulator_cpu_s"],
            "peak_rss_mb": steps["time"]["peak_rss_mb"],
            "streamed_peak_mb": steps["streamed"]["tracemalloc_peak_mb"],
            "accumulated_peak_mb": steps["accumulated"]["tracemalloc_peak_mb"],
        }
    low, high = (results["counts"][str(c)] for c in (min(s.page_counts), max(s.page_counts)))
    results["streamed_growth"] = high["streamed_peak_mb"] / low["streamed_peak_mb"]
    results["accumulated_growth"] = high["accumulated_peak_mb"] / low["accumulated_peak_mb"]
    return results


# -- 5. list answers the contract does not allow -------------------------------------------------

#: Waiting executions in the batched read (3 ids: a list call with ``limit=3``).
HOSTILE_READERS = 3
#: Their poll interval (s): the first read comes one interval after they start.
HOSTILE_INTERVAL = 0.5


def hostile_cases(s: Settings) -> dict[str, dict[str, Any] | None]:
    """The list answers: Blink's own, padded with unasked items, and with conflicting duplicates."""
    return {
        "normal": None,
        "padded": {"endpoint": "list", "kind": "unasked_items", "count": s.padding_items},
        "conflicting": {"endpoint": "list", "kind": "conflicting_items", "times": None},
    }


def hostile_answers(bench: Bench) -> dict[str, Any]:
    """
    A batched read of finished executions against each list answer, each case in a fresh process.

    What the emulator received (list calls, GETs) is counted from its request log; the child
    reports its peak memory growth and longest event-loop stall (see :mod:`bench.hostile_answers`).
    """
    results: dict[str, Any] = {"readers": HOSTILE_READERS, "padding_items": bench.settings.padding_items}
    for case, fault in hostile_cases(bench.settings).items():
        child = bench.child("bench.hostile_answers", ["--interval", str(HOSTILE_INTERVAL)], f"answers-{case}")
        child.receive()
        ids = bench.emulator.start_runs(HOSTILE_READERS)
        bench.emulator.finish(ids)
        if fault is not None:
            bench.emulator.inject(**fault)
        child.ask({"ids": ids})
        polls_before = bench.emulator.polls()
        result = child.ask({"go": True})["result"]
        child.wait()
        bench.emulator.clear_faults()
        results[case] = {**result, "reads": bench.emulator.polls() - polls_before}
    return results
