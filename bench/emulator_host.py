"""
Run the Blink emulator over TLS in its own process, steered by JSON lines on stdin.

Started by :class:`bench.emulator_client.EmulatorProcess` through the emulator launcher, like the
emulator's CLI (it takes the CLI's flags and announces its URL in ``--ready-file``); then it answers
each command line with one JSON line:

- ``{"op": "count_gets"}``: reads received so far (the polls): GET /executions/{id} and list calls
  (a batched read: one list call reads every id its RQL ``$or`` names); and, apart, ``steps``: the
  reads of a run's steps (GET /executions/{id}/steps, what ``log_progress`` reads), which are no polls.
- ``{"op": "poll_times", "ids": [...]}``: when each of those executions was read, by a GET or a list
  call (Unix seconds, to within :data:`STAMP_EVERY`: a thread here reads the request log that often).
- ``{"op": "steps_times", "ids": [...]}``: when each of those executions' steps were read (the same way).
- ``{"op": "finish", "ids": [...]}``: complete those executions now; answers each ``finished_at`` (Unix ms).
- ``{"op": "seed", "playbook": P, "count": N}``: insert N finished executions of P.
- ``{"op": "inject", "fault": {...}}``: inject a :class:`.Fault` (its fields); ``{"op": "clear_faults"}``.
- ``{"op": "stop"}``: stop serving and exit.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from airflow_provider_blink.testing import BlinkEmulator, Fault, RequestRecord, ScriptedPlaybook
from airflow_provider_blink.testing.cli import build_parser, server_ssl_context
from airflow_provider_blink.testing.launcher import write_ready_file

WORKSPACE = "bench"
PAGES_WORKSPACE = "bench-pages"
POLL_PLAYBOOK = "bench-poll"
#: The ``log_progress`` runs' playbook: several steps, each an equal slice of its ``--progress-duration``.
PROGRESS_PLAYBOOK = "bench-progress"
PROGRESS_STEPS = 5
#: Seconds between two reads of the request log: the resolution of the poll times.
STAMP_EVERY = 0.05
_GET_EXECUTION = re.compile(r"/api/v1/workspace/[^/]+/executions/([^/]+)")
_GET_STEPS = re.compile(r"/api/v1/workspace/[^/]+/executions/([^/]+)/steps")


class _PollLog:
    """
    Reads from the emulator's request log, each with when it was seen: polls and steps reads apart.

    Polls are GET /executions/{id} and list calls; steps reads, GET /executions/{id}/steps (each page
    counts), per execution.
    """

    def __init__(self, emulator: BlinkEmulator) -> None:
        self._emulator = emulator
        self._lock = threading.Lock()
        self._seen = 0
        self.count = 0
        self.times: dict[str, list[float]] = defaultdict(list)
        self.steps_count = 0
        self.steps_times: dict[str, list[float]] = defaultdict(list)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="poll-log", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(STAMP_EVERY):
            self.update()

    def update(self) -> None:
        with self._lock:
            records = self._emulator.requests
            now = time.time()
            for record in records[self._seen :]:
                for execution_id in _read_ids(record):
                    self.times[execution_id].append(now)
                self.count += record.endpoint in ("get", "list")
                if record.endpoint == "steps" and (match := _GET_STEPS.fullmatch(record.path)):
                    self.steps_count += 1
                    self.steps_times[match[1]].append(now)
            self._seen = len(records)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def _read_ids(record: RequestRecord) -> list[str]:
    """The executions a request read: a GET's one, or the ids a list call's ``$or`` filter names."""
    if record.endpoint == "get":
        match = _GET_EXECUTION.fullmatch(record.path)
        return [match[1]] if match else []
    if record.endpoint == "list" and "q" in record.query:
        alternatives = json.loads(record.query["q"]).get("filter", {}).get("$or", [])
        return [alternative["id"] for alternative in alternatives if isinstance(alternative.get("id"), str)]
    return []


def _playbooks(
    duration: float, progress_duration: float, page_playbooks: Sequence[str]
) -> list[ScriptedPlaybook]:
    poll = ScriptedPlaybook(
        id=POLL_PLAYBOOK, name="Bench poll", workspace_id=WORKSPACE, duration=duration, output={"ok": True}
    )
    progress = ScriptedPlaybook(
        id=PROGRESS_PLAYBOOK,
        name="Bench progress",
        workspace_id=WORKSPACE,
        duration=progress_duration,
        output={"ok": True},
        steps=PROGRESS_STEPS,
    )
    pages = [
        ScriptedPlaybook(id=pb, name=pb, workspace_id=PAGES_WORKSPACE, duration=1.0, output={"ok": True})
        for pb in page_playbooks
    ]
    return [poll, progress, *pages]


def _answer(emulator: BlinkEmulator, polls: _PollLog, command: dict[str, Any]) -> dict[str, Any]:
    op = command.get("op")
    if op == "count_gets":
        polls.update()
        return {"count": polls.count, "steps": polls.steps_count}
    if op == "poll_times":
        polls.update()
        return {"poll_times": {i: polls.times.get(i, []) for i in command["ids"]}}
    if op == "steps_times":
        polls.update()
        return {"steps_times": {i: polls.steps_times.get(i, []) for i in command["ids"]}}
    if op == "finish":
        return {"finished_at": {i: emulator.finish(i)["finished_at"] for i in command["ids"]}}
    if op == "seed":
        ids = emulator.seed_executions(command["playbook"], int(command["count"]))
        return {"seeded": len(ids)}
    if op == "inject":
        emulator.inject(Fault(**command["fault"]))
        return {"injected": True}
    if op == "clear_faults":
        emulator.clear_faults()
        return {"cleared": True}
    return {"error": f"unknown op {op!r}"}


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until ``{"op": "stop"}`` or the end of stdin."""
    parser = build_parser()  # the emulator CLI's flags: the launcher starts this module like the CLI
    parser.prog = "python -m bench.emulator_host"
    parser.add_argument(
        "--duration", type=float, default=3600.0, help="seconds a poll-playbook run lasts unless finished"
    )
    parser.add_argument(
        "--progress-duration",
        type=float,
        default=3600.0,
        help=f"seconds a progress-playbook run ({PROGRESS_STEPS} steps) lasts unless finished",
    )
    parser.add_argument("--page-playbook", action="append", default=[], help="a playbook to seed pages of")
    args = parser.parse_args(argv)
    emulator = BlinkEmulator(
        api_key=args.api_key,
        workspaces=[WORKSPACE, PAGES_WORKSPACE],
        playbooks=_playbooks(args.duration, args.progress_duration, args.page_playbook),
        host=args.host,
        port=args.port,
        ssl_context=server_ssl_context(args.tls_cert, args.tls_key),
    )
    with emulator:
        polls = _PollLog(emulator)
        if args.ready_file:
            write_ready_file(args.ready_file, emulator.url)
        for line in sys.stdin:
            command = json.loads(line)
            if command.get("op") == "stop":
                break
            print(json.dumps(_answer(emulator, polls, command)), flush=True)
        polls.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
