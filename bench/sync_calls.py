"""
Scenario process: sequential GETs of one execution, through ``BlinkHook`` and a bare ``requests.Session``.

``hook``: ``hook.get_execution(id)`` (retries, error mapping, size cap and all). ``bare``:
``session.get(url).json()`` with the same headers and TLS trust (``REQUESTS_CA_BUNDLE``). The two
alternate, ``--reps`` times each, every repetition with a fresh hook or session, so that both see the
same machine; each is one step (see :func:`bench.child.begin`) reporting time and CPU per call and
the TCP connections urllib3 opened.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import requests

from bench.child import begin, emit, end

MODES = ("bare", "hook")


def connections_opened(session: requests.Session) -> int:
    """New TCP connections the session's urllib3 pools have made (``num_connections``)."""
    total = 0
    adapters = {id(adapter): adapter for adapter in session.adapters.values()}  # one may serve both schemes
    for adapter in adapters.values():
        pools = getattr(adapter, "poolmanager", None)
        if pools is None:
            continue
        for key in pools.pools.keys():  # noqa: SIM118  # urllib3's container refuses iteration
            total += pools.pools[key].num_connections
    return total


def hook_caller(execution_id: str) -> tuple[Callable[[], Any], Callable[[], requests.Session]]:
    from airflow_provider_blink.hooks.blink import BlinkHook

    hook = BlinkHook()
    return lambda: hook.get_execution(execution_id), lambda: hook.session


def bare_caller(execution_id: str) -> tuple[Callable[[], Any], Callable[[], requests.Session]]:
    conn = json.loads(os.environ["AIRFLOW_CONN_BLINK_DEFAULT"])
    url = f"{conn['host']}/api/v1/workspace/{conn['extra']['workspace_id']}/executions/{execution_id}"
    session = requests.Session()
    session.headers.update({"BLINK-API-KEY": conn["password"], "Accept": "application/json"})

    def call() -> Any:
        response = session.get(url, timeout=30)
        response.raise_for_status()
        return response.json()

    return call, lambda: session


def measure(mode: str, execution_id: str, calls: int) -> dict[str, Any]:
    """``calls`` sequential GETs through a fresh hook or session, connection reading included."""
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    call, session = (hook_caller if mode == "hook" else bare_caller)(execution_id)
    for _ in range(calls):
        record = call()
        assert record["id"] == execution_id
    wall, cpu = time.perf_counter() - wall_start, time.process_time() - cpu_start
    opened = connections_opened(session())
    session().close()
    return {
        "per_call_ms": wall / calls * 1000,
        "cpu_per_call_ms": cpu / calls * 1000,
        "connections_opened": opened,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sync_calls")
    parser.add_argument("--execution-id", required=True)
    parser.add_argument("--calls", type=int, required=True)
    parser.add_argument("--reps", type=int, required=True)
    args = parser.parse_args(argv)

    import airflow_provider_blink.hooks.blink  # noqa: F401  # imports are not part of a call

    for rep in range(args.reps):
        for mode in MODES:
            begin(f"{mode}-{rep}")
            emit({"result": measure(mode, args.execution_id, args.calls)})
    end()


if __name__ == "__main__":
    main()
