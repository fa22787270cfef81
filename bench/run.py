"""
``python -m bench``: run every scenario against one TLS emulator process, print a table, write JSON.

1. triggers: N ``BlinkExecutionTrigger.run()`` in one event loop, batched and with ``batch_reads``
   off, vs N bare aiohttp GET pollers (floor); for 1,000 and 10,000 executions, and 1,000 over 10
   connections; at 1,000 also batched with ``log_progress`` (steps reads against their budget);
2. DAG parse: ``import airflow.sdk`` with and without the operator and sensor modules;
3. sync hook: N ``get_execution`` vs a bare ``requests.Session``;
4. pagination: ``iter_executions`` over seeded executions, time and peak memory;
5. answers: a batched read against list answers Blink's contract does not allow (padded with a
   million unasked items, conflicting duplicates): peak memory and the longest event-loop stall.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, replace
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench import report, scenarios
from bench.emulator_client import EmulatorProcess
from bench.procs import REPO, ChildError, run_once
from bench.tls import TlsFiles, make_certificates

SCENARIOS = ("triggers", "parse", "sync", "pagination", "answers")
DEFAULT_OUTPUT = REPO / "bench" / "results.json"


def build_parser() -> argparse.ArgumentParser:
    d = scenarios.Settings()
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run the provider's performance benchmark against a Blink emulator over TLS; "
        "print a table of figures and targets and write them as JSON.",
    )
    parser.add_argument(
        "--only", nargs="+", choices=SCENARIOS, default=list(SCENARIOS), help="scenarios to run"
    )
    parser.add_argument("--triggers", type=int, default=d.triggers, help="concurrent triggers (%(default)s)")
    parser.add_argument("--interval", type=float, default=d.interval, help="poll interval, s (%(default)s)")
    parser.add_argument("--window", type=float, default=d.window, help="measured polling, s (%(default)s)")
    parser.add_argument(
        "--many-triggers", type=int, default=d.many_triggers, help="the large load (%(default)s)"
    )
    parser.add_argument(
        "--many-interval", type=float, default=d.many_interval, help="its poll interval, s (%(default)s)"
    )
    parser.add_argument(
        "--many-window", type=float, default=d.many_window, help="its window, s (%(default)s)"
    )
    parser.add_argument(
        "--mixed-connections", type=int, default=d.mixed_connections, help="the mixed case (%(default)s)"
    )
    parser.add_argument(
        "--loads",
        nargs="+",
        choices=scenarios.LOADS,
        default=list(d.loads),
        help="trigger loads to run: base (--triggers), many (--many-triggers), mixed (--mixed-connections)",
    )
    parser.add_argument(
        "--progress-interval",
        type=float,
        default=d.progress_interval,
        help="the log_progress triggers' progress_interval, s (base load; default: a third of --window)",
    )
    parser.add_argument("--stagger", action="store_true", help="spread trigger starts over one interval")
    parser.add_argument(
        "--sync-calls", type=int, default=d.sync_calls, help="sync GETs per run (%(default)s)"
    )
    parser.add_argument("--sync-reps", type=int, default=d.sync_reps, help="sync runs of each (%(default)s)")
    parser.add_argument(
        "--parse-runs", type=int, default=d.parse_runs, help="import runs of each (%(default)s)"
    )
    parser.add_argument(
        "--page-counts",
        type=int,
        nargs=2,
        default=list(d.page_counts),
        metavar=("LOW", "HIGH"),
        help="executions to page through (%(default)s)",
    )
    parser.add_argument("--page-size", type=int, default=d.page_size, help="(%(default)s)")
    parser.add_argument(
        "--padding-items",
        type=int,
        default=d.padding_items,
        help="unasked items in a padded answer (%(default)s)",
    )
    parser.add_argument("--profile", type=Path, help="cProfile our trigger run into this file (slows it)")
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help="JSON results (bench/results.json)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, certificates)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    return parser


def child_env(work: Path, tls: TlsFiles) -> dict[str, str]:
    """The scenario processes' environment: trust the bench CA the normal way, a private Airflow home."""
    replaced = ("AIRFLOW_CONN_", "SSL_CERT_DIR", "CURL_CA_BUNDLE")
    env = {k: v for k, v in os.environ.items() if not k.startswith(replaced)}
    env.update(
        SSL_CERT_FILE=str(tls.ca_cert),  # OpenSSL's default verify paths: aiohttp's default context
        REQUESTS_CA_BUNDLE=str(tls.ca_cert),  # requests
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
        AIRFLOW_HOME=str(work / "airflow-home"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    )
    return env


def meta(settings: scenarios.Settings, argv: Sequence[str]) -> dict[str, Any]:
    packages = ["apache-airflow", "airflow-provider-blink", "aiohttp", "requests", "urllib3", "tenacity"]
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench", *argv]),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "versions": {name: version(name) for name in packages},
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(settings).items()},
    }


def run(settings: scenarios.Settings, only: Sequence[str], work: Path) -> dict[str, Any]:
    """Start the emulator, run the chosen scenarios in order, stop the emulator."""
    tls = make_certificates(work / "tls")
    env = child_env(work, tls)
    logs = work / "logs"
    logs.mkdir()
    run_once([sys.executable, "-c", scenarios.SDK_ONLY], env)  # writes the Airflow home once
    emulator = EmulatorProcess(
        tls,
        page_playbooks=[scenarios.page_playbook(c) for c in settings.page_counts],
        progress_duration=settings.progress_duration(),
        env=env,
        log=logs / "emulator.log",
    )
    results: dict[str, Any] = {}
    try:
        env["AIRFLOW_CONN_BLINK_DEFAULT"] = emulator.connection_json()
        bench = scenarios.Bench(settings, emulator, env, logs)
        results["emulator"] = {
            "url": emulator.url,
            "tls": "self-signed CA, RSA 2048, trusted via SSL_CERT_FILE",
        }
        if "triggers" in only:
            results["triggers"] = {}
            for label, load in scenarios.trigger_loads(settings).items():
                results["triggers"][label] = {}
                for mode in load.modes:
                    every = f" (progress_interval {load.progress_interval:g} s)" if mode == "progress" else ""
                    _progress(f"triggers: {label}, {mode}{every} ...")
                    results["triggers"][label][mode] = scenarios.triggers(bench, mode, load)
        if "parse" in only:
            _progress("DAG parse cost ...")
            results["parse"] = scenarios.parse_cost(bench)
        if "sync" in only:
            _progress("sync hook ...")
            results["sync"] = scenarios.sync_hook(bench)
        if "pagination" in only:
            _progress("pagination ...")
            results["pagination"] = scenarios.pagination(bench)
        if "answers" in only:
            _progress("hostile list answers ...")
            results["answers"] = scenarios.hostile_answers(bench)
    finally:
        emulator.stop()
    return results


def _load_note(info: dict[str, Any]) -> str:
    """The machine's load during the run: timing figures from a busy machine are pessimistic."""
    cpus = info["cpus"] or 1
    start, end = info["load_average_at_start"][0], info["load_average_at_end"][0]
    note = f"load average {start:.1f} before the run ({end:.1f} at its end, the bench's own included), {cpus} CPUs"
    if start > cpus / 2:
        note += ": a busy machine, where other processes took CPU from the scenarios; times are pessimistic"
    return note


def _progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    settings = replace(
        scenarios.Settings(),
        triggers=args.triggers,
        interval=args.interval,
        window=args.window,
        many_triggers=args.many_triggers,
        many_interval=args.many_interval,
        many_window=args.many_window,
        mixed_connections=args.mixed_connections,
        sync_calls=args.sync_calls,
        sync_reps=args.sync_reps,
        parse_runs=args.parse_runs,
        page_counts=tuple(sorted(args.page_counts)),
        page_size=args.page_size,
        padding_items=args.padding_items,
        progress_interval=args.progress_interval,
        loads=tuple(args.loads),
        stagger=args.stagger,
        profile=args.profile.resolve() if args.profile else None,
    )
    work = Path(tempfile.mkdtemp(prefix="blink-bench-"))
    info = meta(settings, argv)
    try:
        results = run(settings, args.only, work)
    except (ChildError, OSError) as exc:
        print(f"[bench] failed: {exc}\n[bench] logs kept in {work / 'logs'}", file=sys.stderr)
        return 2
    info["load_average_at_end"] = os.getloadavg()
    rows = report.rows_for(results)
    print(report.table(rows))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps({"meta": info, **results, "checks": report.as_json(rows)}, indent=2) + "\n"
    )
    print(f"\n{_load_note(info)}")
    print(f"results: {args.output}" + (f"; logs: {work / 'logs'}" if args.keep else ""))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    missed = [row.figure for row in rows if row.met is False]
    return 1 if args.strict and missed else 0
