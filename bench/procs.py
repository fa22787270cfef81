"""Child processes the benchmark talks to in JSON lines, and what it watches of them from outside."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent


class ChildError(RuntimeError):
    """A child process failed or said something unexpected."""


def child_pipes(env: Mapping[str, str]) -> dict[str, Any]:
    """``Popen`` arguments for a child the benchmark talks to in JSON lines over stdin and stdout."""
    return {
        "cwd": REPO,
        "env": dict(env),
        "stdin": subprocess.PIPE,
        "stdout": subprocess.PIPE,
        "text": True,
        "bufsize": 1,
    }


class ChildProcess:
    """
    A ``python -m bench.<module>`` process: send it JSON lines, read JSON lines back.

    Its stderr goes to ``log``, so a failure can show what the child said.
    """

    def __init__(self, process: subprocess.Popen[str], module: str, log: Path) -> None:
        self.process = process
        self.module = module
        self.log = log

    @property
    def pid(self) -> int:
        return self.process.pid

    def send(self, message: Mapping[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()

    def receive(self) -> dict[str, Any]:
        """The child's next JSON line (other lines are skipped)."""
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("{"):
                message: dict[str, Any] = json.loads(line)
                if "error" in message:
                    raise ChildError(f"{self.module}: {message['error']}")
                return message
        self.wait()
        raise ChildError(f"{self.module} exited ({self.process.returncode}); see {self.log}:\n{self.tail()}")

    def ask(self, message: Mapping[str, Any]) -> dict[str, Any]:
        self.send(message)
        return self.receive()

    def wait(self, timeout: float = 120.0) -> int:
        """Close its stdin and wait for the exit (killing it after ``timeout`` seconds)."""
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.process.returncode

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def start_child(module: str, args: Sequence[str], env: Mapping[str, str], log: Path) -> ChildProcess:
    """Start ``python -m <module> <args>``, its stderr going to ``log``."""
    with log.open("ab") as stderr:
        process = subprocess.Popen([sys.executable, "-m", module, *args], **child_pipes(env), stderr=stderr)
    return ChildProcess(process, module, log)


def run_once(argv: Sequence[str], env: Mapping[str, str]) -> tuple[float, float, str]:
    """Run a command to its end; return (wall seconds, CPU seconds of that process alone, stdout)."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, cwd=REPO, env=dict(env), stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, rusage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.stdout.close()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise ChildError(f"{argv} exited with {process.returncode}")
    return wall, rusage.ru_utime + rusage.ru_stime, output


def cpu_seconds(pid: int) -> float:
    """User + system CPU a (running) process has used so far."""
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def rss_mb(pid: int) -> float:
    """A (running) process's resident memory now, read from outside."""
    return psutil.Process(pid).memory_info().rss / 2**20


class ConnectionSampler:
    """
    Samples, from outside, a process's TCP connections to one port: peak open and distinct ones.

    Runs in a thread of the benchmark's own process, so the sampled process pays nothing for it.
    """

    def __init__(self, pid: int, port: int, interval: float = 0.1) -> None:
        self._process = psutil.Process(pid)
        self._port = port
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="connection-sampler", daemon=True)
        self.peak_open = 0
        self.local_ports: set[int] = set()
        self.samples = 0

    def __enter__(self) -> ConnectionSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                connections = self._process.net_connections(kind="tcp")
            except psutil.Error:  # the process has exited
                return
            mine = [
                c
                for c in connections
                if c.raddr and c.raddr.port == self._port and c.status == psutil.CONN_ESTABLISHED
            ]
            self.samples += 1
            self.peak_open = max(self.peak_open, len(mine))
            self.local_ports.update(c.laddr.port for c in mine)
            self._stop.wait(self._interval)
