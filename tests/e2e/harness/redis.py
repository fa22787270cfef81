"""A throw-away Redis server: the Celery broker of the distributed deployment."""

from __future__ import annotations

import shutil
import signal
import socket
from pathlib import Path

from e2e.harness.processes import LOOPBACK, Component, ComponentFailed, free_port, server_env
from e2e.harness.waiting import wait_until


class Redis:
    """Debian's ``redis-server`` on a free loopback port, in-memory only (no snapshots, no AOF)."""

    def __init__(self, work_dir: Path, log_path: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ComponentFailed(
                "Redis is not installed: apt-get install redis-server (scripts/e2e-scale.sh does)"
            )
        self.port = free_port()
        options = {
            "bind": LOOPBACK,
            "port": str(self.port),
            "dir": str(work_dir),
            "save": "",
            "appendonly": "no",
            "protected-mode": "yes",
        }
        self.component = Component(
            "redis",
            [binary, *(arg for name, value in options.items() for arg in (f"--{name}", value))],
            env=server_env(),
            log_path=log_path,
        )

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def start(self) -> None:
        self.component.start()
        wait_until("Redis to answer PING", self._ready, timeout=30, diagnose=self.component.tail)

    def _ready(self) -> bool:
        self.component.check_alive()
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        self.component.stop(signal.SIGTERM, timeout=15)
