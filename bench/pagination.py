"""
Scenario process: iterate every execution of a playbook through ``BlinkHook.iter_executions``.

Three steps (see :func:`bench.child.begin`): ``time``, without tracing; ``streamed``, the
``tracemalloc`` peak while iterating (about one page whatever the count, if nothing accumulates);
``accumulated``, the same pages kept in a list, to show what a peak that grows with the count looks like.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from collections.abc import Iterator, Sequence
from typing import Any

from bench.child import begin, emit, end, peak_rss_mb


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pagination")
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--playbook", required=True)
    parser.add_argument("--expect", type=int, required=True)
    parser.add_argument("--page-size", type=int, required=True)
    args = parser.parse_args(argv)

    from airflow_provider_blink.hooks.blink import BlinkHook

    hook = BlinkHook()
    hook.session  # noqa: B018  # connection read and session made before measuring

    def executions() -> Iterator[dict[str, Any]]:
        return hook.iter_executions(
            workspace_id=args.workspace, filter={"playbook_id": args.playbook}, page_size=args.page_size
        )

    def check(count: int) -> None:
        if count != args.expect:
            raise SystemExit(f"iterated {count} executions, expected {args.expect}")

    begin("time")
    started = time.perf_counter()
    check(sum(1 for _ in executions()))
    emit({"result": {"seconds": time.perf_counter() - started, "peak_rss_mb": peak_rss_mb()}})

    for label in ("streamed", "accumulated"):
        begin(label)
        tracemalloc.start()
        check(len(list(executions())) if label == "accumulated" else sum(1 for _ in executions()))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        emit({"result": {"tracemalloc_peak_mb": peak / 2**20}})
    end()


if __name__ == "__main__":
    main()
