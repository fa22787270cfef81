"""
Command line for the Blink emulator: serve until SIGINT or SIGTERM.

Once listening it prints where, and a ready-to-paste ``export AIRFLOW_CONN_...`` line (its URL, API key
and workspace) that points Airflow at it.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import ssl
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from airflow_provider_blink.testing.emulator import BlinkEmulator
from airflow_provider_blink.testing.launcher import write_ready_file
from airflow_provider_blink.testing.playbooks import (
    COMPLETED,
    DEMO_PLAYBOOKS,
    DEMO_WORKSPACE,
    ScriptedPlaybook,
)

API_KEY_ENV = "BLINK_EMULATOR_API_KEY"
DEFAULT_API_KEY = "blink-demo-key"
DEFAULT_PORT = 8765
#: What a ``--config`` playbook may say: :class:`ScriptedPlaybook`'s fields that JSON can give.
_PLAYBOOK_FIELDS = {
    "id",
    "name",
    "workspace_id",
    "duration",
    "final_state",
    "output",
    "error_details",
    "steps",
    "failed_step",
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (``--help`` documents every flag)."""
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_blink.testing",
        description="Serve an emulated Blink REST API on loopback for tests and demos.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="port; 0 picks a free one (default %(default)s)"
    )
    parser.add_argument(
        "--api-key", help=f"the accepted API key (default: ${API_KEY_ENV}, else {DEFAULT_API_KEY!r})"
    )
    parser.add_argument("--workspace", help=f"workspace id (default {DEMO_WORKSPACE!r})")
    parser.add_argument(
        "--conn-id",
        default="blink_default",
        help="the Airflow connection id of the printed export line (default %(default)s)",
    )
    parser.add_argument(
        "--playbook",
        action="append",
        default=[],
        metavar="ID[:DURATION[:FINAL_STATE]]",
        help="serve a playbook (repeatable); without any, serve the demo playbooks",
    )
    parser.add_argument(
        "--config",
        type=Path,
        help="JSON file with api_key, workspaces and playbooks (each with id and any of name, workspace_id, "
        "duration, final_state, output, error_details, steps, failed_step)",
    )
    parser.add_argument("--ready-file", type=Path, help="write the URL to this file once listening")
    parser.add_argument(
        "--tls-cert",
        type=Path,
        metavar="PEM",
        help="serve HTTPS with this certificate (chain), with --tls-key",
    )
    parser.add_argument("--tls-key", type=Path, metavar="PEM", help="the private key of --tls-cert")
    return parser


def server_ssl_context(cert: Path | None, key: Path | None) -> ssl.SSLContext | None:
    """
    The HTTPS context for ``--tls-cert``/``--tls-key``; ``None`` (plain HTTP) when neither is given.

    :raises ValueError: only one of them is given.
    :raises OSError: a file cannot be read or is not a matching PEM certificate and key.
    """
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise ValueError("--tls-cert and --tls-key go together: give both or neither")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def parse_playbook(spec: str, workspace_id: str) -> ScriptedPlaybook:
    """Parse ``ID[:DURATION[:FINAL_STATE]]``, e.g. ``triage:1.5:Failed``."""
    playbook_id, _, rest = spec.partition(":")
    duration_text, _, final_state = rest.partition(":")
    try:
        duration = float(duration_text) if duration_text else 1.0
    except ValueError:
        raise ValueError(f"--playbook {spec!r}: DURATION must be a number of seconds") from None
    final_state = final_state or COMPLETED
    failed = final_state.lower() != COMPLETED.lower()
    return ScriptedPlaybook(
        id=playbook_id,
        name=playbook_id,
        workspace_id=workspace_id,
        duration=duration,
        final_state=final_state,
        output=None if failed else {},
        error_details={"message": f"playbook {playbook_id} ended {final_state}"} if failed else None,
    )


def export_line(emulator: BlinkEmulator, conn_id: str) -> str:
    """The shell line that defines Airflow connection ``conn_id`` as this emulator (URL, key, workspace)."""
    ((name, value),) = emulator.connection_env(conn_id=conn_id).items()
    return f"export {name}={shlex.quote(value)}"


def emulator_from_args(args: argparse.Namespace) -> BlinkEmulator:
    """Build (not start) the emulator the arguments describe."""
    config: dict[str, Any] = json.loads(args.config.read_text()) if args.config else {}
    api_key = args.api_key or config.get("api_key") or os.environ.get(API_KEY_ENV) or DEFAULT_API_KEY
    workspaces = list(config.get("workspaces") or [])
    if args.workspace or not workspaces:
        workspaces.insert(0, args.workspace or DEMO_WORKSPACE)
    default_ws = workspaces[0]
    playbooks = [_config_playbook(raw, default_ws) for raw in config.get("playbooks", [])]
    playbooks += [parse_playbook(spec, default_ws) for spec in args.playbook]
    if not playbooks:
        playbooks = [replace(pb, workspace_id=default_ws) for pb in DEMO_PLAYBOOKS]
    return BlinkEmulator(
        api_key=api_key,
        workspaces=workspaces,
        playbooks=playbooks,
        viewer_keys=config.get("viewer_keys"),
        host=args.host,
        port=args.port,
        ssl_context=server_ssl_context(args.tls_cert, args.tls_key),
    )


def _config_playbook(raw: dict[str, Any], default_ws: str) -> ScriptedPlaybook:
    """
    A ``--config`` playbook entry, checked as :class:`ScriptedPlaybook` checks its arguments.

    :raises ValueError: an unknown field, ``steps`` or ``failed_step`` not a whole number (``failed_step``
        may be ``null``), or a script the playbook refuses (named by the playbook's id).
    """
    unknown = set(raw) - _PLAYBOOK_FIELDS
    if unknown:
        raise ValueError(f"unknown playbook fields in --config: {sorted(unknown)}")
    where = f"playbook {raw.get('id')!r} in --config"
    for name, nullable in (("steps", False), ("failed_step", True)):
        value = raw.get(name)
        if name not in raw or (nullable and value is None):
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where}: {name} must be a whole number, got {value!r}")
    try:
        return ScriptedPlaybook(**{"workspace_id": default_ws, **raw})
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator until SIGINT or SIGTERM; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        emulator = emulator_from_args(args)
    except (OSError, ValueError, TypeError) as exc:
        parser.error(str(exc))
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with emulator:
        workspaces = ", ".join(emulator.workspaces)
        label = "workspace" if len(emulator.workspaces) == 1 else "workspaces"
        print(f"Blink emulator listening on {emulator.url} ({label} {workspaces})")
        print("Point Airflow at it: run this line in the shell that runs Airflow (a test key, loopback only)")
        print(export_line(emulator, args.conn_id), flush=True)
        if args.ready_file:
            write_ready_file(args.ready_file, emulator.url)
        while not stop.wait(0.5):
            pass
    return 0
