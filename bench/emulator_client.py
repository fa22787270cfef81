"""The benchmark's side of the emulator process (:mod:`bench.emulator_host`)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from airflow_provider_blink.testing.launcher import EmulatorProcess as LaunchedEmulator
from bench.emulator_host import PAGES_WORKSPACE, POLL_PLAYBOOK, PROGRESS_PLAYBOOK, WORKSPACE
from bench.procs import ChildProcess, child_pipes, cpu_seconds
from bench.tls import TlsFiles

API_KEY = "bench-api-key-5d1e7c"


class EmulatorProcess:
    """The Blink emulator in its own process, over TLS, with the calls the benchmark needs."""

    def __init__(
        self,
        tls: TlsFiles,
        *,
        page_playbooks: Sequence[str],
        progress_duration: float,
        env: Mapping[str, str],
        log: Path,
    ) -> None:
        """
        Start the emulator process; it serves until :meth:`stop`.

        :param progress_duration: seconds a run of the ``log_progress`` playbook lasts unless finished
            (its steps are equal slices of it).
        """
        args = [arg for playbook in page_playbooks for arg in ("--page-playbook", playbook)]
        args += ["--progress-duration", str(progress_duration)]
        self._launched = LaunchedEmulator(
            api_key=API_KEY,
            workspace_id=WORKSPACE,
            tls=(tls.server_cert, tls.server_key),
            log_path=log,
            module="bench.emulator_host",
            args=args,
            **child_pipes(env),
        )
        self.url = self._launched.start()
        assert self._launched.process is not None
        self._child = ChildProcess(self._launched.process, "bench.emulator_host", log)
        self.port = urlsplit(self.url).port or 443
        self._http = requests.Session()
        self._http.trust_env = False  # else REQUESTS_CA_BUNDLE from the environment beats ``verify``
        self._http.headers["BLINK-API-KEY"] = API_KEY
        self._http.verify = self._ca_cert = str(tls.ca_cert)

    @property
    def pid(self) -> int:
        return self._child.pid

    def cpu_seconds(self) -> float:
        """CPU the emulator process has used so far."""
        return cpu_seconds(self.pid)

    def connection_json(self) -> str:
        """
        The ``blink_default`` connection: host, key, workspace, and the bench's CA as extra ``verify``.

        The hook reads no CA settings from the environment (``REQUESTS_CA_BUNDLE`` and the like): a
        private CA is the connection's ``verify``, as a user with one would set it.
        """
        conn = self._launched.connection()
        return json.dumps({**conn, "extra": {**conn.get("extra", {}), "verify": self._ca_cert}})

    def start_runs(self, count: int, playbook: str = POLL_PLAYBOOK) -> list[str]:
        """
        Start ``count`` runs (they last until :meth:`finish`); returns their ids.

        :param playbook: the poll playbook (one step), or ``PROGRESS_PLAYBOOK`` (several steps, each a
            slice of its duration: they start and end while the triggers wait).
        """
        url = f"{self.url}/api/v1/workspace/{WORKSPACE}/playbooks/{playbook}/execute"
        ids = []
        for _ in range(count):
            response = self._http.post(url, json={}, timeout=30)
            response.raise_for_status()
            ids.append(response.json()["execution_id"])
        return ids

    def finish(self, ids: Sequence[str]) -> dict[str, float]:
        """Complete these runs now; returns when each completed (Unix seconds)."""
        finished = self._child.ask({"op": "finish", "ids": list(ids)})["finished_at"]
        return {i: ms / 1000 for i, ms in finished.items()}

    def polls(self) -> int:
        """Reads received so far: GET /executions/{id} and list calls (batched reads)."""
        return int(self._child.ask({"op": "count_gets"})["count"])

    def reads(self) -> tuple[int, int]:
        """Polls and steps reads received so far, in one question: (polls, steps reads)."""
        answer = self._child.ask({"op": "count_gets"})
        return int(answer["count"]), int(answer["steps"])

    def steps_times(self, ids: Sequence[str]) -> dict[str, list[float]]:
        """When each execution's steps were read (Unix seconds, to within ``STAMP_EVERY``)."""
        answer = self._child.ask({"op": "steps_times", "ids": list(ids)})
        times: dict[str, list[float]] = answer["steps_times"]
        return times

    def poll_times(self, ids: Sequence[str]) -> dict[str, list[float]]:
        """When each execution was polled (Unix seconds, to within ``STAMP_EVERY``)."""
        times: dict[str, list[float]] = self._child.ask({"op": "poll_times", "ids": list(ids)})["poll_times"]
        return times

    def seed(self, playbook: str, count: int) -> None:
        """Insert ``count`` finished executions of a page playbook (workspace ``PAGES_WORKSPACE``)."""
        self._child.ask({"op": "seed", "playbook": playbook, "count": count})

    def inject(self, **fault: Any) -> None:
        """Make the emulator misbehave: a :class:`.Fault` with these fields (until :meth:`clear_faults`)."""
        self._child.ask({"op": "inject", "fault": fault})

    def clear_faults(self) -> None:
        self._child.ask({"op": "clear_faults"})

    def stop(self) -> None:
        self._http.close()
        if self._child.process.poll() is None:
            self._child.send({"op": "stop"})
        self._child.wait(timeout=15)


__all__ = ["API_KEY", "PAGES_WORKSPACE", "PROGRESS_PLAYBOOK", "EmulatorProcess"]
