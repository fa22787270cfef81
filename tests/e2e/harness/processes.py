"""Long-running OS processes (one per component, each in its own process group) and one-shot commands."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
from e2e.harness.waiting import utcnow

LOOPBACK = "127.0.0.1"


class ComponentFailed(RuntimeError):
    """A component did not come up (or died); the message carries its log tail."""


def free_port() -> int:
    """A TCP port on loopback that is free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = 60) -> str:
    """The last ``lines`` lines of a log file (or a note that it is missing)."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


@dataclasses.dataclass
class Component:
    """One long-running OS process, in its own process group, logging to its own file."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    user: str | None = None
    proc: subprocess.Popen[bytes] | None = None
    #: when :meth:`start` last ran
    started_at: datetime | None = None

    def start(self) -> None:
        """Start the process (appending to its log, so restarts keep the history)."""
        self.started_at = utcnow()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(
                f"\n===== {utcnow().isoformat()} starting {self.name}: {' '.join(self.argv)}\n".encode()
            )
            log.flush()
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.log_path.parent,
                start_new_session=True,
                **as_user(self.user),
            )

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError(f"{self.name} was never started")
        return self.proc.pid

    def tail(self, lines: int = 60) -> str:
        return f"--- {self.name} ({self.log_path}) ---\n{tail(self.log_path, lines)}"

    def check_alive(self) -> None:
        """Raise :class:`ComponentFailed` with the log tail if the process has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            raise ComponentFailed(f"{self.name} exited with status {self.proc.returncode}\n{self.tail()}")

    def send(self, signum: int, *, group: bool = False) -> None:
        """Send ``signum`` to the main process, or with ``group=True`` to its whole process group."""
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(self.pid, signum)
            else:
                os.kill(self.pid, signum)

    def wait_exit(self, timeout: float) -> bool:
        """Wait for the main process to exit; ``False`` if it is still running at the deadline."""
        assert self.proc is not None
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        """Ask the process to stop; kill its whole group if it does not, then reap any leftovers."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.send(signum)
            if not self.wait_exit(timeout):
                with self.log_path.open("a") as log:
                    log.write(f"\n===== {self.name} ignored signal {signum} for {timeout:g}s: SIGKILL\n")
                self.send(signal.SIGKILL, group=True)
                self.wait_exit(10)
        self.send(signal.SIGKILL, group=True)  # children the main process left behind

    def kill(self) -> None:
        """SIGKILL the whole process group at once (a crash, not a shutdown) and reap the main process."""
        if self.proc is None:
            return
        self.send(signal.SIGKILL, group=True)
        self.wait_exit(30)


def as_user(user: str | None) -> dict[str, Any]:
    """Popen keyword arguments that drop root privileges to ``user`` (PostgreSQL refuses root)."""
    if user is None or os.geteuid() != 0:
        return {}
    return {"user": user, "group": user, "extra_groups": []}


def run_checked(
    argv: list[str], *, env: Mapping[str, str], log_path: Path, timeout: float, **kw: Any
) -> None:
    """Run a one-shot command to completion, its output appended to ``log_path``; fail with the tail."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        log.write(f"\n===== {utcnow().isoformat()} running: {' '.join(argv)}\n".encode())
        log.flush()
        try:
            result = subprocess.run(
                argv,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
                **kw,
            )
        except subprocess.TimeoutExpired:
            raise ComponentFailed(f"{argv[0]} did not finish within {timeout:g}s\n{tail(log_path)}") from None
    if result.returncode != 0:
        raise ComponentFailed(f"{' '.join(argv)} failed with status {result.returncode}\n{tail(log_path)}")


def base_env() -> dict[str, str]:
    """The environment every component starts from: this one, minus any Airflow settings of the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        PYTHONUNBUFFERED="1",
        NO_PROXY="127.0.0.1,localhost,::1",
        no_proxy="127.0.0.1,localhost,::1",
    )
    env.pop("PYTEST_CURRENT_TEST", None)
    env.pop("PYTEST_ADDOPTS", None)
    return env


def server_env() -> dict[str, str]:
    """The bare environment of a database or broker server: ``PATH`` and a UTF-8 locale, nothing else."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}


def worker_processes(*needles: str) -> list[psutil.Process]:
    """Processes running a task instance: those whose command line holds every one of ``needles``.

    Airflow 3's task runner titles itself ``airflow worker -- <ti id>`` (one needle, the id); Airflow 2's
    ``airflow task runner: <dag id> <task id> <run id> <job id>`` (see :meth:`AirflowApi.task_key`).
    """
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            cmdline = " ".join(proc.info["cmdline"] or ())
            if all(needle in cmdline for needle in needles):
                found.append(proc)
    return found


def task_runners(*needles: str) -> list[psutil.Process]:
    """The processes running the task itself: those matching ``needles`` whose children do not (the
    executor's supervisor may carry them in its title too)."""
    matches = worker_processes(*needles)
    pids = {p.pid for p in matches}
    return [p for p in matches if not any(c.pid in pids for c in p.children(recursive=True))]
