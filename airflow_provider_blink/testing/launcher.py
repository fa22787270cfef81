"""
Start the emulator's command line in its own process and wait until it serves.

For a demo, an end-to-end test or a benchmark that wants Blink in another process (the CLI
itself: ``python -m airflow_provider_blink.testing``)::

    from airflow_provider_blink.testing.launcher import EmulatorProcess

    with EmulatorProcess(api_key="k", log_path=Path("emulator.log")) as blink:
        os.environ.update(blink.connection_env())
        ...  # run Airflow against blink.url

The CLI announces its URL in a ready file (``--ready-file``); :func:`write_ready_file` and
:func:`read_ready_file` are the two ends of that.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from airflow_provider_blink.testing.playbooks import DEMO_WORKSPACE

CLI_MODULE = "airflow_provider_blink.testing"


class EmulatorDidNotStart(RuntimeError):
    """The emulator process exited, or did not announce its URL in time (the log tail says why)."""


def write_ready_file(path: Path, url: str) -> None:
    """Announce ``url`` in ``path`` atomically: a reader never sees half of it."""
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(url + "\n")
    partial.replace(path)


def read_ready_file(path: Path) -> str | None:
    """The URL announced in ``path``, or ``None`` while there is none yet."""
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


class EmulatorProcess:
    """
    The emulator's CLI in its own process, on a free loopback port; :meth:`start` returns once it serves.

    :param api_key: the key the emulator accepts.
    :param workspace_id: its workspace (the demo playbooks are served there unless ``playbooks`` is given).
    :param playbooks: playbooks as entries of the CLI's ``--config`` file (``id``, ``duration`` ...).
    :param tls: (certificate, key) PEM files: serve HTTPS.
    :param log_path: where the process writes its output (default: a file in a temporary folder).
    :param module: the module to run with ``python -m``; another module must take the CLI's flags.
    :param args: more arguments for it.
    :param python: the interpreter.
    :param popen: more keyword arguments for :class:`subprocess.Popen` (``env``, ``stdin``, ``start_new_session``
        ...); stdout and stderr go to the log unless given.
    """

    def __init__(
        self,
        *,
        api_key: str,
        workspace_id: str = DEMO_WORKSPACE,
        playbooks: Iterable[Mapping[str, Any]] = (),
        tls: tuple[Path, Path] | None = None,
        log_path: Path | None = None,
        module: str = CLI_MODULE,
        args: Sequence[str] = (),
        python: str = sys.executable,
        **popen: Any,
    ) -> None:
        self.api_key = api_key
        self.workspace_id = workspace_id
        self.log_path = log_path or Path(tempfile.mkdtemp(prefix="blink-emulator-")) / "emulator.log"
        self.ready_file = self.log_path.with_name(self.log_path.stem + ".url")
        self.url = ""
        self.process: subprocess.Popen[Any] | None = None
        argv = [python, "-m", module, "--port", "0", "--api-key", api_key, "--workspace", workspace_id]
        argv += ["--ready-file", str(self.ready_file)]
        playbooks = list(playbooks)
        if playbooks:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            config = self.log_path.with_name(self.log_path.stem + ".json")
            config.write_text(json.dumps({"playbooks": playbooks}, indent=2))
            argv += ["--config", str(config)]
        if tls is not None:
            argv += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
        self.argv = [*argv, *args]
        self._popen = popen

    def start(self, timeout: float = 60.0) -> str:
        """
        Start the process and wait until it announces its URL; return the URL.

        :raises EmulatorDidNotStart: it exited first, or ``timeout`` seconds passed.
        """
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.ready_file.unlink(missing_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.argv, **{"stdout": log, "stderr": log, **self._popen})
        deadline = time.monotonic() + timeout
        while (url := read_ready_file(self.ready_file)) is None:
            self.check_alive()
            if time.monotonic() > deadline:
                self.stop()
                raise EmulatorDidNotStart(f"no URL from the Blink emulator in {timeout:g}s\n{self.tail()}")
            time.sleep(0.05)
        self.url = url
        return url

    def check_alive(self) -> None:
        """:raises EmulatorDidNotStart: the process has exited (with its log tail)."""
        if self.process is not None and self.process.poll() is not None:
            raise EmulatorDidNotStart(
                f"the Blink emulator exited with status {self.process.returncode}\n{self.tail()}"
            )

    def stop(self, timeout: float = 15.0) -> None:
        """Stop serving: SIGTERM, then SIGKILL after ``timeout`` seconds."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def tail(self, lines: int = 40) -> str:
        """The last ``lines`` of the process's log."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return f"--- {self.log_path} ---\n" + "\n".join(text.splitlines()[-lines:])

    def connection(self) -> dict[str, Any]:
        """The Airflow connection (as a dict) for this emulator: URL, key and workspace."""
        return {
            "conn_type": "blink",
            "host": self.url,
            "password": self.api_key,
            "extra": {"workspace_id": self.workspace_id},
        }

    def connection_env(self, conn_id: str = "blink_default") -> dict[str, str]:
        """``{"AIRFLOW_CONN_<CONN_ID>": <connection JSON>}``, ready for ``os.environ.update``."""
        return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(self.connection())}

    def __enter__(self) -> EmulatorProcess:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
