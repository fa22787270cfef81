"""``BlinkEmulator``: a real Blink API server on loopback, run in a background thread."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import socket
import ssl
import threading
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

from aiohttp import web

from airflow_provider_blink.testing.faults import Fault, FaultQueue
from airflow_provider_blink.testing.playbooks import (
    COMPLETED,
    DEMO_PLAYBOOKS,
    DEMO_WORKSPACE,
    ScriptedPlaybook,
)
from airflow_provider_blink.testing.server import AnswerStyle, RequestLog, RequestRecord, build_app
from airflow_provider_blink.testing.state import EmulatorState, LookupFailed

log = logging.getLogger(__name__)

_START_TIMEOUT = 10.0
_SHUTDOWN_TIMEOUT = 0.2
_STOP_TIMEOUT = 10.0
_BACKLOG = 2048


class BlinkEmulator:
    """
    A Blink REST API emulator listening on loopback, usable from sync and async code alike.

    Its server runs on its own event loop in a daemon thread; every public method is thread-safe.
    Use it as a context manager, or call :meth:`start` and :meth:`stop`.

    :param api_key: the key that may do everything in every workspace.
    :param workspaces: workspace ids; the workspaces of ``playbooks`` are added automatically.
        Default: those of the playbooks, or ``["demo-workspace"]`` when there are none.
    :param playbooks: the scripted playbooks; ``None`` means :data:`DEMO_PLAYBOOKS`.
    :param viewer_keys: extra keys that may read, but not execute or cancel, in the listed workspaces.
    :param host: a loopback address to bind.
    :param port: the port to bind; 0 picks a free one at each start.
    :param ssl_context: serve HTTPS with this server context (its certificate and key loaded);
        ``None`` serves plain HTTP. Clients must trust the certificate, e.g. through ``SSL_CERT_FILE``
        (aiohttp) and ``REQUESTS_CA_BUNDLE`` (requests), or the connection's ``verify`` extra.
    :param cancel_answer: a successful cancel's body, where Blink leaves it open: ``"json"`` (the
        JSON string ``"OK"``), ``"text"`` or ``"empty"``; also settable while running.
    :param null_results: answer ``"results": null`` for empty pages (as a Go server may); also
        settable while running.

    Answers follow Blink's documentation field for field (docs/blink-api-contract.md; what Blink's own
    clients show where the documentation is silent): list items carry no ``inputs``/``event``; read a run's inputs with the single GET.
    """

    def __init__(
        self,
        api_key: str = "test-api-key",
        workspaces: Iterable[str] | None = None,
        playbooks: Iterable[ScriptedPlaybook] | None = None,
        viewer_keys: Mapping[str, Iterable[str]] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        cancel_answer: str = "json",
        null_results: bool = False,
    ) -> None:
        if not api_key:
            raise ValueError("api_key must not be empty")
        self._host = _loopback(host)
        self._port = port
        self._ssl_context = ssl_context
        chosen = list(DEMO_PLAYBOOKS if playbooks is None else playbooks)
        known = set(workspaces or ()) | {pb.workspace_id for pb in chosen}
        self._default_workspace = next(iter(workspaces or ()), None) or (
            chosen[0].workspace_id if chosen else DEMO_WORKSPACE
        )
        self._state = EmulatorState(
            api_key=api_key,
            workspaces=known or {DEMO_WORKSPACE},
            viewer_keys={key: set(ws) for key, ws in (viewer_keys or {}).items()},
        )
        for playbook in chosen:
            self._state.add_playbook(playbook)
        self._style = AnswerStyle(cancel=cancel_answer, null_results=null_results)
        self._faults = FaultQueue()
        self._requests = RequestLog()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._bound_port: int | None = None
        self._lifecycle = threading.Lock()

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> BlinkEmulator:
        """
        Start serving; returns once the port accepts connections.

        :raises RuntimeError: if already running or the server fails to start.
        """
        with self._lifecycle:
            if self._thread is not None:
                raise RuntimeError("the Blink emulator is already running")
            sock = socket.socket(socket.AF_INET6 if ":" in self._host else socket.AF_INET)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((self._host, self._port))
            except OSError:
                sock.close()
                raise
            loop = asyncio.new_event_loop()
            ready = threading.Event()
            failure: list[BaseException] = []
            thread = threading.Thread(
                target=self._serve, args=(loop, sock, ready, failure), name="blink-emulator", daemon=True
            )
            thread.start()
            if not ready.wait(_START_TIMEOUT) or failure:
                thread.join(_START_TIMEOUT)
                sock.close()
                raise RuntimeError("the Blink emulator failed to start") from (
                    failure[0] if failure else None
                )
            self._thread, self._loop = thread, loop
            self._bound_port = sock.getsockname()[1]
            return self

    def stop(self) -> None:
        """Stop serving, close every connection and free the port; safe to call twice."""
        with self._lifecycle:
            thread, loop = self._thread, self._loop
            if thread is None or loop is None:
                return
            loop.call_soon_threadsafe(loop.stop)
            thread.join(_STOP_TIMEOUT)
            if thread.is_alive():
                log.warning("the Blink emulator thread did not stop within %ss", _STOP_TIMEOUT)
            self._thread = self._loop = None
            self._bound_port = None

    def __enter__(self) -> BlinkEmulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the server is serving."""
        return self._thread is not None

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:8765`` or, with TLS, ``https://...`` (no ``/api/v1``)."""
        if self._bound_port is None:
            raise RuntimeError("the Blink emulator is not running; call start() first")
        host = f"[{self._host}]" if ":" in self._host else self._host
        scheme = "http" if self._ssl_context is None else "https"
        return f"{scheme}://{host}:{self._bound_port}"

    @property
    def port(self) -> int:
        """The bound port (only while running)."""
        if self._bound_port is None:
            raise RuntimeError("the Blink emulator is not running; call start() first")
        return self._bound_port

    @property
    def api_key(self) -> str:
        """The key with full access."""
        return self._state.api_key

    # -- configuration and inspection -----------------------------------------------------------

    @property
    def cancel_answer(self) -> str:
        """A successful cancel's body: ``"json"``, ``"text"`` or ``"empty"``."""
        return self._style.cancel

    @cancel_answer.setter
    def cancel_answer(self, value: str) -> None:
        self._style.cancel = AnswerStyle(cancel=value).cancel

    @property
    def null_results(self) -> bool:
        """Whether empty pages say ``"results": null``."""
        return self._style.null_results

    @null_results.setter
    def null_results(self, value: bool) -> None:
        self._style.null_results = bool(value)

    def add_playbook(self, playbook: ScriptedPlaybook) -> None:
        """Register or replace a playbook (also while running)."""
        self._state.add_playbook(playbook)

    @property
    def workspaces(self) -> list[str]:
        """The known workspace ids, sorted."""
        return self._state.workspace_ids()

    @property
    def executions(self) -> list[dict[str, Any]]:
        """
        Copies of every execution record, in creation order.

        A record holds the single GET's fields plus the emulator's bookkeeping (``past_exec_ref``:
        what the execute body asked to re-run), which Blink does not serve.
        """
        return _copy(self._state.records())

    def execution(self, execution_id: str) -> dict[str, Any]:
        """
        A copy of one execution record.

        :raises KeyError: unknown id.
        """
        try:
            return _copy(self._state.get(execution_id))
        except LookupFailed:
            raise KeyError(execution_id) from None

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request received so far (the API key header shows as ``***``)."""
        return self._requests.snapshot()

    def request_counts(self) -> dict[str, int]:
        """
        How many requests each endpoint received so far: ``get``, ``list``, ``execute``, ``cancel``, ``steps``.

        Cheaper than :attr:`requests` for counting calls, e.g. how many one polling round made.
        """
        return self._requests.counts()

    def finish(
        self, execution_id: str, state: str = COMPLETED, *, error_details: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """
        Force an execution into the final ``state`` (a ``state_ui``) now; returns its record.

        :param error_details: defaults to the run's scripted ``error_details`` (``{}`` for Completed).
        :raises KeyError: unknown id.
        """
        try:
            return _copy(self._state.finish(execution_id, state, error_details=error_details))
        except LookupFailed:
            raise KeyError(execution_id) from None

    def release(self, execution_id: str) -> dict[str, Any]:
        """
        Let a run that a ``Phase(until_released=True)`` holds go on now, as a person's approval would.

        Its script continues from that phase: what was left of its ``duration`` runs from now, later
        phases and steps shifted by the time held (blink-api-contract.md#observed-states). Returns its record.

        :raises LookupFailed: unknown id.
        :raises NotHeld: no phase holds the run (not there yet, released already, or finished).
        """
        return _copy(self._state.release(execution_id))

    def seed_executions(
        self,
        playbook_id: str,
        count: int,
        state: str = COMPLETED,
        *,
        workspace_id: str | None = None,
        finished_at: int | None = None,
    ) -> list[str]:
        """
        Insert ``count`` already-finished executions of a playbook, quickly; returns their ids.

        :param workspace_id: needed only when several workspaces hold a playbook with this id.
        :param finished_at: every one finishes at this epoch ms (default: one after another).
        :raises KeyError: unknown (or ambiguous) playbook.
        """
        playbook = self._state.find_playbook(playbook_id, workspace_id)
        return self._state.seed(playbook, count, state, finished_at)

    def inject(self, fault: Fault) -> None:
        """Queue a fault; see :class:`Fault`."""
        self._faults.inject(fault)

    def clear_faults(self) -> None:
        """Drop every pending fault."""
        self._faults.clear()

    # -- Airflow connection helpers -------------------------------------------------------------

    def connection_json(self, workspace_id: str | None = None) -> str:
        """A JSON Airflow connection (``AIRFLOW_CONN_<ID>`` value) pointing at this emulator."""
        conn = {
            "conn_type": "blink",
            "host": self.url,
            "password": self.api_key,
            "extra": {"workspace_id": workspace_id or self._default_workspace},
        }
        return json.dumps(conn)

    def connection_env(
        self, conn_id: str = "blink_default", workspace_id: str | None = None
    ) -> dict[str, str]:
        """``{"AIRFLOW_CONN_<CONN_ID>": connection_json(...)}``, ready for ``os.environ.update``."""
        return {f"AIRFLOW_CONN_{conn_id.upper()}": self.connection_json(workspace_id)}

    # -- the server thread ----------------------------------------------------------------------

    def _serve(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        ready: threading.Event,
        failure: list[BaseException],
    ) -> None:
        asyncio.set_event_loop(loop)
        app = build_app(self._state, self._faults, self._requests, self._style)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT)
        try:
            loop.run_until_complete(runner.setup())
            site = web.SockSite(runner, sock, ssl_context=self._ssl_context, backlog=_BACKLOG)
            loop.run_until_complete(site.start())
        except BaseException as exc:
            failure.append(exc)
            ready.set()
            loop.run_until_complete(runner.cleanup())
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            _cancel_leftovers(loop)
            loop.close()
            sock.close()


def _cancel_leftovers(loop: asyncio.AbstractEventLoop) -> None:
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())


def _copy(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _loopback(host: str) -> str:
    if host == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"host must be a loopback address, got {host!r}") from None
    if not address.is_loopback:
        raise ValueError(f"the Blink emulator only binds loopback addresses, not {host!r}")
    return host
