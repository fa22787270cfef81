"""A throw-away PostgreSQL cluster: the metadata database of a deployment."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from pathlib import Path
from typing import Any

from e2e.harness.processes import (
    LOOPBACK,
    Component,
    ComponentFailed,
    as_user,
    free_port,
    run_checked,
    server_env,
)
from e2e.harness.waiting import wait_until


def postgres_bindir() -> Path:
    """The newest PostgreSQL server installation (Debian keeps them in /usr/lib/postgresql/N/bin)."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name)
    )
    if candidates:
        return candidates[-1].parent
    found = shutil.which("postgres")
    if found:
        return Path(found).parent
    raise ComponentFailed("PostgreSQL is not installed: apt-get install postgresql (scripts/e2e.sh does)")


class Postgres:
    """A throw-away PostgreSQL cluster in ``data_dir``, listening on loopback TCP only."""

    user = "postgres"

    def __init__(self, data_dir: Path, log_path: Path) -> None:
        self.data_dir = data_dir
        self.log_path = log_path
        self.port = free_port()
        bindir = postgres_bindir()
        self._initdb = str(bindir / "initdb")
        settings = {
            "listen_addresses": LOOPBACK,
            "unix_socket_directories": "",
            "max_connections": "300",
            # A test database: durability buys nothing here, speed does.
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        self.component = Component(
            "postgres",
            [
                str(bindir / "postgres"),
                *("-D", str(data_dir), "-p", str(self.port)),
                *(arg for name, value in settings.items() for arg in ("-c", f"{name}={value}")),
            ],
            env=server_env(),
            log_path=log_path,
            user=self.user if os.geteuid() == 0 else None,
        )

    @property
    def sqlalchemy_url(self) -> str:
        return f"postgresql+psycopg2://{self.user}@{LOOPBACK}:{self.port}/airflow"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(self.data_dir, self.user, self.user)
        run_checked(
            [
                self._initdb,
                "-D",
                str(self.data_dir),
                "-U",
                self.user,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
            env=self.component.env,
            log_path=self.log_path,
            timeout=120,
            cwd=self.data_dir,
            **as_user(self.component.user),
        )
        self.component.start()
        wait_until(
            "PostgreSQL to accept connections",
            self._ready,
            timeout=60,
            diagnose=self.component.tail,
        )
        with self._connect("postgres") as conn:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("CREATE DATABASE airflow")

    def _connect(self, dbname: str) -> Any:
        import psycopg2  # Airflow's driver; scripts/e2e.sh installs psycopg2-binary

        return contextlib.closing(
            psycopg2.connect(host=LOOPBACK, port=self.port, user=self.user, dbname=dbname, connect_timeout=5)
        )

    def _ready(self) -> bool:
        import psycopg2

        self.component.check_alive()
        try:
            with self._connect("postgres"):
                return True
        except psycopg2.OperationalError:  # not accepting connections yet
            return False

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Rows of one read-only query on Airflow's database (what the REST API does not show)."""
        with self._connect("airflow") as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            rows = list(cur.fetchall())
            conn.rollback()
            return rows

    def stop(self) -> None:
        # SIGINT is PostgreSQL's "fast" shutdown: disconnect clients, checkpoint, exit.
        self.component.stop(signal.SIGINT, timeout=30)
