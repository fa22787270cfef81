"""The issue's targets checked against one run's figures, printed as a table."""

from __future__ import annotations

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


def trigger_rows(ours: Mapping[str, Any], floor: Mapping[str, Any]) -> list[Row]:
    interval = ours["poll_interval_s"]
    cpu_ratio = ours["cpu_ms_per_poll"] / floor["cpu_ms_per_poll"]
    steady_ratio = (
        ours["cpu_ms_per_poll_after_first_interval"] / floor["cpu_ms_per_poll_after_first_interval"]
    )
    rss_added = ours["peak_rss_mb"] - floor["peak_rss_mb"]
    n = ours["triggers"]
    starts = "staggered" if ours["staggered_starts"] else "simultaneous"
    return [
        Row(
            f"{n} triggers ({starts} starts): CPU per poll (ms)",
            f"{ours['cpu_ms_per_poll']:.3f}",
            f"{floor['cpu_ms_per_poll']:.3f}",
            _x(cpu_ratio),
            "<= 1.5x floor",
            cpu_ratio <= 1.5,
        ),
        Row(
            "  excluding the first interval (ms)",
            f"{ours['cpu_ms_per_poll_after_first_interval']:.3f}",
            f"{floor['cpu_ms_per_poll_after_first_interval']:.3f}",
            _x(steady_ratio),
            "(steady state)",
            None,
        ),
        Row(
            "  of which garbage collection (s), full GCs",
            f"{ours['gc_s']:.2f}, {ours['gc_full_collections']}",
            f"{floor['gc_s']:.2f}, {floor['gc_full_collections']}",
            "",
            f"(of {ours['cpu_s']:.1f} / {floor['cpu_s']:.1f} s CPU)",
            None,
        ),
        Row(
            "achieved / requested polls (pace)",
            f"{ours['achieved_ratio']:.1%}",
            f"{floor['achieved_ratio']:.1%}",
            "",
            ">= 98%",
            ours["achieved_ratio"] >= 0.98,
        ),
        Row(
            "  first read late, median / max (s)",
            f"{ours['first_read_late_median_s']:.2f} / {ours['first_read_late_max_s']:.2f}",
            f"{floor['first_read_late_median_s']:.2f} / {floor['first_read_late_max_s']:.2f}",
            "",
            "(start-up)",
            None,
        ),
        Row(
            "lag completed -> event, max (s)",
            f"{ours['lag_max_s']:.2f}",
            f"{floor['lag_max_s']:.2f}",
            "",
            f"<= {interval + 1:g} (interval + 1)",
            ours["lag_max_s"] <= interval + 1,
        ),
        Row(
            "peak RSS (MB)",
            f"{ours['peak_rss_mb']:.0f}",
            f"{floor['peak_rss_mb']:.0f}",
            f"{rss_added:+.0f} MB",
            "<= floor + 50 MB",
            rss_added <= 50,
        ),
        Row(
            "TCP connections to Blink, peak open",
            str(ours["tcp_peak_open"]),
            str(floor["tcp_peak_open"]),
            "",
            "<= ~100",
            ours["tcp_peak_open"] <= 100,
        ),
        Row(
            "events: success",
            str(ours["statuses"].get("success", 0)),
            str(floor["statuses"].get("Completed", 0)),
            "",
            f"all {n}",
            ours["statuses"].get("success", 0) == n,
        ),
        Row(
            "emulator CPU per poll (ms)",
            f"{ours['emulator_cpu_ms_per_poll']:.3f}",
            f"{floor['emulator_cpu_ms_per_poll']:.3f}",
            "",
            "(not the bottleneck)",
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


def rows_for(results: Mapping[str, Any]) -> list[Row]:
    """Every row the results allow (a scenario left out with ``--only`` has none)."""
    rows: list[Row] = []
    if "triggers" in results:
        rows += trigger_rows(results["triggers"]["ours"], results["triggers"]["floor"])
    if "parse" in results:
        rows += parse_rows(results["parse"])
    if "sync" in results:
        rows += sync_rows(results["sync"])
    if "pagination" in results:
        rows += pagination_rows(results["pagination"])
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
