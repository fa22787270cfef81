"""The issue's targets checked against one run's figures, printed as a table."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Row:
    """One line of the table; ``met`` is ``None`` for figures without a target."""

    figure: str
    ours: str
    baseline: str
    ratio: str
    target: str
    met: bool | None


def _x(value: float) -> str:
    return f"{value:.2f}x"


def trigger_rows(label: str, modes: Mapping[str, Mapping[str, Any]], floor: Mapping[str, Any]) -> list[Row]:
    """
    One trigger load: the batched triggers against the per-GET floor, and with batching off.

    :param modes: the load's results by mode (``batched``, and ``single`` and ``progress`` when
        measured).
    :param floor: the per-GET floor of the same executions over as many connections.
    """
    ours = modes["batched"]
    interval = ours["poll_interval_s"]
    n = ours["triggers"]
    starts = "staggered" if ours["staggered_starts"] else "simultaneous"
    cpu_ratio = ours["cpu_ms_per_execution_interval"] / floor["cpu_ms_per_execution_interval"]
    rows = [
        Row(
            f"{label} waiting ({starts} starts, {interval:g} s): requests / execution / interval",
            f"{ours['requests_per_execution_interval']:.4f}",
            f"{floor['requests_per_execution_interval']:.3f}",
            "",
            "<= 0.05",
            ours["requests_per_execution_interval"] <= 0.05,
        ),
        Row(
            "  CPU / execution / interval (ms)",
            f"{ours['cpu_ms_per_execution_interval']:.4f}",
            f"{floor['cpu_ms_per_execution_interval']:.4f}",
            _x(cpu_ratio),
            "<= 0.3x floor",
            cpu_ratio <= 0.3,
        ),
        Row(
            "  lag completed -> event, max (s)",
            f"{ours['lag_max_s']:.2f}",
            f"{floor['lag_max_s']:.2f}",
            "",
            f"<= {interval + 1:g} (interval + 1)",
            ours["lag_max_s"] <= interval + 1,
        ),
        Row(
            "  peak RSS above ready, per 1,000 triggers (MB)",
            f"{ours['rss_mb_per_1000_triggers']:.1f}",
            f"{floor['rss_mb_per_1000_triggers']:.1f}",
            "",
            "(fixed costs included)",
            None,
        ),
        Row(
            "  TCP connections to Blink, peak open",
            str(ours["tcp_peak_open"]),
            str(floor["tcp_peak_open"]),
            "",
            f"<= ~100 per connection ({ours['connections']})",
            ours["tcp_peak_open"] <= 100 * ours["connections"],
        ),
        Row(
            "  achieved / requested polls (pace)",
            f"{ours['achieved_ratio']:.1%}",
            f"{floor['achieved_ratio']:.1%}",
            "",
            "(reads on time)",
            None,
        ),
        Row(
            "  events: success",
            str(ours["statuses"].get("success", 0)),
            str(floor["statuses"].get("Completed", 0)),
            "",
            f"all {n}",
            ours["statuses"].get("success", 0) == n,
        ),
        Row(
            "  emulator CPU per request (ms)",
            f"{ours['emulator_cpu_ms_per_poll']:.3f}",
            f"{floor['emulator_cpu_ms_per_poll']:.3f}",
            "",
            "(not the bottleneck)",
            None,
        ),
    ]
    if "single" in modes:
        off = modes["single"]
        off_ratio = off["cpu_ms_per_execution_interval"] / floor["cpu_ms_per_execution_interval"]
        rows += [
            Row(
                "  batch_reads off: requests / execution / interval",
                f"{off['requests_per_execution_interval']:.3f}",
                f"{floor['requests_per_execution_interval']:.3f}",
                "",
                "(one GET each)",
                None,
            ),
            Row(
                "  batch_reads off: CPU / execution / interval (ms)",
                f"{off['cpu_ms_per_execution_interval']:.4f}",
                f"{floor['cpu_ms_per_execution_interval']:.4f}",
                _x(off_ratio),
                "<= 1.5x floor",
                off_ratio <= 1.5,
            ),
            Row(
                "  batch_reads off: lag max (s), RSS / 1,000 (MB), pace",
                f"{off['lag_max_s']:.2f}, {off['rss_mb_per_1000_triggers']:.1f}, {off['achieved_ratio']:.1%}",
                "",
                "",
                "",
                None,
            ),
        ]
    if "progress" in modes:
        rows += progress_rows(ours, modes["progress"])
    return rows


def progress_rows(batched: Mapping[str, Any], progress: Mapping[str, Any]) -> list[Row]:
    """
    ``log_progress`` against the same batched triggers without it: requests, steps reads and CPU.

    The budget: no steps read for a trigger that did not ask; for one that did, at most one per
    ``progress_interval`` (the rate over each execution's reads, and strictly its shortest gap and
    the executions with more reads than their wait allows, to within the emulator's stamps).
    """
    every = progress["progress_interval_s"]
    n = progress["triggers"]
    rate = progress["steps_reads_per_execution_progress_interval"]
    gap = progress["steps_read_gap_min_s"]
    over = progress["executions_over_steps_budget"]
    cpu_ratio = progress["cpu_ms_per_execution_interval"] / batched["cpu_ms_per_execution_interval"]
    logged = progress["steps_logged"]
    success = progress["statuses"].get("success", 0)
    return [
        Row(
            f"  log_progress (progress_interval {every:g} s): requests / execution / interval",
            f"{progress['requests_per_execution_interval']:.4f}",
            f"{batched['requests_per_execution_interval']:.4f}",
            "",
            "(vs batched without it)",
            None,
        ),
        Row(
            "  log_progress: steps reads / execution / interval",
            f"{progress['steps_reads_per_execution_interval']:.4f}",
            f"{batched['steps_reads_per_execution_interval']:.4f}",
            "",
            "none without log_progress",
            batched["steps_reads_total"] == 0,
        ),
        Row(
            "  log_progress: steps reads / execution / progress_interval",
            "n/a (one read each)" if rate is None else f"{rate:.3f}",
            "",
            "",
            "<= 1 (budget)",
            None if rate is None else rate <= 1,
        ),
        Row(
            "  log_progress: shortest gap between steps reads of one execution (s)",
            "n/a" if gap is None else f"{gap:.2f}",
            "",
            f"{over} over budget",
            f">= {every:g} (progress_interval), none over",
            over == 0 and (gap is None or gap >= every - progress["stamp_resolution_s"]),
        ),
        Row(
            "  log_progress: CPU / execution / interval (ms)",
            f"{progress['cpu_ms_per_execution_interval']:.4f}",
            f"{batched['cpu_ms_per_execution_interval']:.4f}",
            _x(cpu_ratio),
            "(vs batched without it)",
            None,
        ),
        Row(
            "  log_progress: lag max (s), pace, steps logged started/ended",
            f"{progress['lag_max_s']:.2f}, {progress['achieved_ratio']:.1%}, {logged['started']}/{logged['ended']}",
            "",
            "",
            f"events: {success} of {n} success",
            success == n,
        ),
    ]


def all_trigger_rows(loads: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> list[Row]:
    """Every load's rows, each against its own floor (over as many connections); then the RSS growth."""
    rows: list[Row] = []
    for label, modes in loads.items():
        rows += trigger_rows(label, modes, modes["floor"])
    single = [modes for modes in loads.values() if modes["batched"]["connections"] == 1]
    if len(single) >= 2:
        rows += _rss_growth(single[0], single[-1])
    return rows


def _rss_growth(small: Mapping[str, Mapping[str, Any]], large: Mapping[str, Mapping[str, Any]]) -> list[Row]:
    """
    RSS added per 1,000 more triggers, between two loads (fixed costs cancel out).

    While waiting (sampled from outside during the window, before any execution completes): what
    holding triggers costs, checked against the target. Peak (``ru_maxrss``): the same plus the
    burst of every execution completing in one round, shown beside it.
    """

    def growth(mode: str, figure: str) -> float:
        added = large[mode][figure] - small[mode][figure]
        return added / (large[mode]["triggers"] - small[mode]["triggers"]) * 1000

    n, m = small["batched"]["triggers"], large["batched"]["triggers"]
    waiting, floor_waiting = growth("batched", "waiting_rss_mb"), growth("floor", "waiting_rss_mb")
    return [
        Row(
            f"RSS growth per 1,000 waiting triggers ({n} -> {m}, MB)",
            f"{waiting:.1f}",
            f"{floor_waiting:.1f}",
            "",
            "<= 10",
            waiting <= 10,
        ),
        Row(
            "  peak RSS growth per 1,000, with every execution completing at once (MB)",
            f"{growth('batched', 'peak_rss_mb'):.1f}",
            f"{growth('floor', 'peak_rss_mb'):.1f}",
            "",
            "",
            None,
        ),
    ]


def parse_rows(parse: Mapping[str, Any]) -> list[Row]:
    spread = {name: max(v) - min(v) for name, v in parse["all_wall_ms"].items()}
    return [
        Row(
            "DAG parse: import airflow.sdk + operator/sensor (ms)",
            f"{parse['provider_ms']:.0f}",
            f"{parse['sdk_ms']:.0f}",
            f"{_x(parse['ratio'])}, {parse['added_ms']:+.0f} ms",
            f"(whole process; runs spread {max(spread.values()):.0f} ms)",
            None,
        ),
        Row(
            "  operator/sensor import after airflow.sdk (ms)",
            f"{parse['added_in_process_ms']:.1f}",
            "",
            "",
            "adds <= 50 ms",
            parse["added_in_process_ms"] <= 50,
        ),
    ]


def sync_rows(sync: Mapping[str, Any]) -> list[Row]:
    hook, bare = sync["hook"], sync["bare"]
    return [
        Row(
            f"sync get_execution x{sync['calls']}: per call (ms)",
            f"{hook['per_call_ms']:.3f}",
            f"{bare['per_call_ms']:.3f}",
            _x(sync["ratio"]),
            "<= 1.3x bare session",
            sync["ratio"] <= 1.3,
        ),
        Row(
            f"sync: TCP connections for {sync['calls']} calls",
            str(hook["connections_opened"]),
            str(bare["connections_opened"]),
            "",
            "1",
            hook["connections_opened"] == 1,
        ),
    ]


def pagination_rows(pages: Mapping[str, Any]) -> list[Row]:
    counts = sorted(pages["counts"], key=int)
    low, high = pages["counts"][counts[0]], pages["counts"][counts[-1]]
    rows = [
        Row(
            f"iterate {count} executions (s)",
            f"{pages['counts'][count]['seconds']:.2f}",
            "",
            f"{pages['counts'][count]['us_per_execution']:.0f} us each",
            "",
            None,
        )
        for count in counts
    ]
    rows += [
        Row(
            f"pagination peak memory {counts[-1]} vs {counts[0]} (MB)",
            f"{high['streamed_peak_mb']:.1f}",
            f"{low['streamed_peak_mb']:.1f}",
            _x(pages["streamed_growth"]),
            "flat (<= 1.25x)",
            pages["streamed_growth"] <= 1.25,
        ),
        Row(
            "  the same pages kept in a list (MB)",
            f"{high['accumulated_peak_mb']:.1f}",
            f"{low['accumulated_peak_mb']:.1f}",
            _x(pages["accumulated_growth"]),
            "(what growth looks like)",
            None,
        ),
    ]
    return rows


#: What each hostile list answer is, for the table.
ANSWER_CASES = {
    "normal": "Blink's own list answer",
    "padded": "answer padded with {padding_items:,} unasked items",
    "conflicting": "answer with each item twice, conflicting",
}


def answer_rows(answers: Mapping[str, Any]) -> list[Row]:
    """Per list answer: peak memory growth and longest event-loop stall of a batched read (no target)."""
    rows = []
    for case, label in ANSWER_CASES.items():
        figures = answers[case]
        statuses = ", ".join(f"{n} {s}" for s, n in sorted(Counter(figures["statuses"]).items()))
        rows.append(
            Row(
                f"batched read of {answers['readers']}, {label.format(**answers)}",
                f"+{figures['peak_rss_growth_mb']:.1f} MB peak RSS, {figures['longest_stall_ms']:.0f} ms stall",
                "",
                f"{figures['reads']} request{'' if figures['reads'] == 1 else 's'}",
                f"events: {statuses}",
                None,
            )
        )
    return rows


def rows_for(results: Mapping[str, Any]) -> list[Row]:
    """Every row the results allow (a scenario left out with ``--only`` has none)."""
    rows: list[Row] = []
    if "triggers" in results:
        rows += all_trigger_rows(results["triggers"])
    if "parse" in results:
        rows += parse_rows(results["parse"])
    if "sync" in results:
        rows += sync_rows(results["sync"])
    if "pagination" in results:
        rows += pagination_rows(results["pagination"])
    if "answers" in results:
        rows += answer_rows(results["answers"])
    return rows


def table(rows: list[Row]) -> str:
    """A plain-text table: figure, ours, floor/baseline, ratio, target, met."""
    header = ("figure", "ours", "floor/base", "ratio", "target", "met")
    cells = [header] + [
        (r.figure, r.ours, r.baseline, r.ratio, r.target, "" if r.met is None else ("yes" if r.met else "NO"))
        for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


def as_json(rows: list[Row]) -> list[dict[str, Any]]:
    return [asdict(row) for row in rows]
