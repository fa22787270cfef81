"""
The emulator's state: workspaces, keys, playbooks and executions, safe to share between threads.

Executions progress lazily: each read compares the monotonic clock with the run's script, so nothing
ticks in the background.
"""

from __future__ import annotations

import copy
import json
import math
import threading
import time
import uuid
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from airflow_provider_blink.testing.playbooks import (
    COMPLETED,
    RUNNING_STATE,
    RUNNING_STATE_UI,
    Outcome,
    Phase,
    ScriptedPlaybook,
    raw_state,
)
from airflow_provider_blink.testing.records import GET_FIELDS

CANCELLED_STATE_UI = "Cancelled"
CANCEL_REASON = "cancelled via API"
EXECUTION_TIMEOUT_MS = 3_600_000
TENANT_ID = "emulator-tenant"
CREATED_BY = "api-key-user"


class Role(Enum):
    """What a key may do in a workspace."""

    ADMIN = "admin"
    VIEWER = "viewer"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class Execution:
    """
    One execution: a published record plus the script that moves it to its final state.

    ``record`` holds every field of Blink's single GET (blink-api-contract.md#documented-get) plus the emulator's own
    bookkeeping (``past_exec_ref``); the server answers projections of it (:mod:`.records`).
    It is replaced, never mutated, once published, so readers may serialize it unlocked.

    The script runs on its own clock: real time since the start, less the time spent held by the
    phases already released (``held``). A phase held until released stops it until :meth:`release`.
    """

    record: dict[str, Any]
    outcome: Outcome
    started_mono: float
    output: dict[str, Any] | None = None
    #: The script seconds at which the run reached its final state; ``None`` while it runs.
    ended: float | None = None
    #: How long each released hold lasted (seconds), in order of ``outcome.holds``.
    held: list[float] = field(default_factory=list)

    @property
    def id(self) -> str:
        return str(self.record["id"])

    @property
    def workspace_id(self) -> str:
        return str(self.record["workspace_id"])

    @property
    def finished(self) -> bool:
        return self.ended is not None

    def position(self, now: float) -> tuple[float, Phase | None]:
        """Where the script is at monotonic time ``now``: its seconds, and the phase holding it there (or ``None``)."""
        elapsed = now - self.started_mono - sum(self.held)
        holds = self.outcome.holds[len(self.held) :]
        if holds and elapsed >= holds[0].at:
            return holds[0].at, holds[0]
        return elapsed, None

    def view(self, now: float) -> dict[str, Any]:
        """
        The record as of monotonic time ``now``, finishing the run if its script says so.

        ``duration`` and ``net_runtime_ms`` count real time since the start, held time included (Blink
        does not say whether either leaves waiting out, blink-api-contract.md#documented-get), so a
        finished record keeps ``duration == finished_at - started_at``.
        """
        if self.finished:
            return self.record
        elapsed, hold = self.position(now)
        if hold is None and elapsed >= self.outcome.duration:
            self.end(
                self.outcome.final_state,
                self._real_ms(round(self.outcome.duration * 1000)),
                self.outcome.error_details,
                raw=self.outcome.final_raw,
                ended=self.outcome.duration,
            )
            return self.record
        ms = int((now - self.started_mono) * 1000)
        state_ui, state = self.outcome.running_state(elapsed) if hold is None else (hold.state_ui, hold.raw)
        return {**self.record, "state": state, "state_ui": state_ui, "duration": ms, "net_runtime_ms": ms}

    def remaining(self, now: float) -> float:
        """Seconds until the script finishes the run: 0 once finished, infinite while a hold lies ahead."""
        if self.finished:
            return 0.0
        if len(self.held) < len(self.outcome.holds):
            return math.inf
        return max(0.0, self.started_mono + sum(self.held) + self.outcome.duration - now)

    def release(self, now: float) -> None:
        """
        Let the run go on from the phase holding it, as of monotonic time ``now``.

        :raises NotHeld: no phase holds the run (it has not reached one, or has finished).
        """
        hold = None if self.finished else self.position(now)[1]
        if hold is None:
            raise NotHeld(self.id)
        self.held.append(now - self.started_mono - sum(self.held) - hold.at)

    def end(
        self,
        state_ui: str,
        finished_at: int,
        error_details: dict[str, str] | None = None,
        cancel_reason: str = "",
        *,
        raw: str | None = None,
        ended: float,
    ) -> None:
        """
        Move the run to a final state (``raw``: its ``state``, default derived from ``state_ui``).

        :param ended: the script seconds at which it ends (they decide which steps it reached).
        """
        success = state_ui.lower() == COMPLETED.lower()
        ms = max(0, finished_at - self.record["started_at"])
        self.record = {
            **self.record,
            "state": raw_state(state_ui) if raw is None else raw,
            "state_ui": state_ui,
            "finished_at": finished_at,
            "updated_at": finished_at,
            "duration": ms,
            "net_runtime_ms": ms,
            "error_details": {} if success else dict(error_details or {}),
            "cancel_reason": cancel_reason,
        }
        if raw_state(state_ui) == "cancelled":
            self.output = None
        self.ended = ended

    def steps(self, now: float) -> list[dict[str, Any]]:
        """
        The steps the run reached: ``outcome.steps_run`` of them, each an equal slice of its duration.

        Blink documents no steps endpoint; the fields are those of blink-api-contract.md#observed-steps. Each
        step starts when the one before it finishes; the last step reached carries the run's current raw state
        (``pending`` while held, blink-api-contract.md#observed-states), its error and (once finished) output.
        """
        record = self.view(now)
        started = record["started_at"]
        count, scripted_ms = self.outcome.steps_run, round(self.outcome.duration * 1000)
        ends = [self._real_ms(scripted_ms * (k + 1) // count) for k in range(count)]
        begins = [started, *ends[:-1]]
        if self.ended is not None and self.ended >= self.outcome.duration:
            reached = count
        else:
            elapsed_ms = int((self.position(now)[0] if self.ended is None else self.ended) * 1000)
            reached = max(1, sum(1 for k in range(count) if scripted_ms * k // count < elapsed_ms))
        steps = [
            self._step(record, k, begins[k], ends[k], json.dumps({"step": k + 1})) for k in range(reached - 1)
        ]
        last = reached - 1
        if not self.finished:
            return [*steps, self._step(record, last, begins[last], 0, "", state=record["state"])]
        success = record["state_ui"].lower() == COMPLETED.lower()
        output_data = "" if self.output is None and not success else json.dumps(self.output or {})
        error = "" if success else str(record["error_details"].get("message", ""))
        final = self._step(
            record, last, begins[last], record["finished_at"], output_data, record["state"], error
        )
        return [*steps, final]

    def _real_ms(self, script_ms: int) -> int:
        """The epoch ms at which the script reaches ``script_ms``: shifted by every release it waited for."""
        waited = sum(
            seconds
            for hold, seconds in zip(self.outcome.holds[: len(self.held)], self.held, strict=True)
            if round(hold.at * 1000) <= script_ms
        )
        return int(self.record["started_at"]) + script_ms + round(waited * 1000)

    @staticmethod
    def _step(
        record: dict[str, Any],
        k: int,
        started_at: int,
        finished_at: int,
        output_data: str,
        state: str = "completed",
        error_data: str = "",
    ) -> dict[str, Any]:
        return {
            "step_id": f"step_{k + 1}",
            "state": state,
            "input_data": json.dumps(record["inputs"]),
            "output_data": output_data,
            "error_data": error_data,
            "started_at": started_at,
            "finished_at": finished_at,
            "subflow_execution_id": "",
        }


class LookupFailed(LookupError):
    """An id the caller asked for does not exist (in that workspace)."""


class NotRunning(RuntimeError):
    """The execution already reached a final state."""


class NotHeld(ValueError):
    """The execution is not waiting to be released (no phase holds it)."""


@dataclass
class EmulatorState:
    """Everything the server knows; every public method takes the lock."""

    api_key: str
    workspaces: set[str]
    viewer_keys: dict[str, set[str]] = field(default_factory=dict)
    playbooks: dict[tuple[str, str], ScriptedPlaybook] = field(default_factory=dict)
    _executions: dict[str, Execution] = field(default_factory=dict)
    _by_workspace: dict[str, list[Execution]] = field(default_factory=dict)
    _order: dict[str, int] = field(default_factory=dict)
    _run_counts: dict[tuple[str, str], int] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)

    def role(self, key: str | None, workspace_id: str) -> Role | None:
        """What ``key`` may do in ``workspace_id`` (``None``: nothing)."""
        if key == self.api_key:
            return Role.ADMIN
        if key is not None and workspace_id in self.viewer_keys.get(key, ()):
            return Role.VIEWER
        return None

    def is_known_key(self, key: str | None) -> bool:
        """Whether ``key`` is the API key or one of the viewer keys."""
        return key is not None and (key == self.api_key or key in self.viewer_keys)

    def add_playbook(self, playbook: ScriptedPlaybook) -> None:
        """Register (or replace) a playbook, adding its workspace if new."""
        with self._lock:
            self.workspaces.add(playbook.workspace_id)
            self.playbooks[(playbook.workspace_id, playbook.id)] = playbook

    def workspace_ids(self) -> list[str]:
        """The known workspace ids, sorted."""
        with self._lock:
            return sorted(self.workspaces)

    def has_workspace(self, workspace_id: str) -> bool:
        with self._lock:
            return workspace_id in self.workspaces

    def playbook(self, workspace_id: str, playbook_id: str) -> ScriptedPlaybook:
        with self._lock:
            try:
                return self.playbooks[(workspace_id, playbook_id)]
            except KeyError:
                raise LookupFailed(playbook_id) from None

    def find_playbook(self, playbook_id: str, workspace_id: str | None = None) -> ScriptedPlaybook:
        """Find a playbook by id, in ``workspace_id`` or (if ``None``) the only workspace holding it."""
        with self._lock:
            found = [
                pb
                for (ws, pb_id), pb in self.playbooks.items()
                if pb_id == playbook_id and workspace_id in (None, ws)
            ]
        if len(found) != 1:
            where = f"workspace {workspace_id!r}" if workspace_id else "exactly one workspace"
            raise KeyError(f"playbook {playbook_id!r} not found in {where}")
        return found[0]

    def create(self, playbook: ScriptedPlaybook, shown: dict[str, Any] | None = None) -> Execution:
        """
        Start a run of ``playbook`` now and return it.

        :param shown: the record's fields that show the request (``inputs``, ``runner_group_id`` ...);
            the others keep what a run started without them has.
        """
        with self._lock:
            number = self._next_number(playbook)
            outcome = playbook.outcome(number)
            now_ms = _now_ms()
            record = self._record(playbook, number, now_ms)
            record.update(
                {"inputs": {}, "event": {}, "runner_group_id": "", "trigger_type": "api", "past_exec_ref": ""}
            )
            record.update(copy.deepcopy(shown or {}))
            execution = Execution(record, outcome, time.monotonic(), copy.deepcopy(outcome.output))
            self._store(execution)
            return execution

    def seed(
        self,
        playbook: ScriptedPlaybook,
        count: int,
        state_ui: str = COMPLETED,
        finished_at: int | None = None,
    ) -> list[str]:
        """
        Insert ``count`` runs of ``playbook`` that already finished in ``state_ui``, oldest first.

        :param finished_at: every run finishes at this epoch ms (default: one after another).
        """
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        success = state_ui.lower() == COMPLETED.lower()
        duration_ms = round(playbook.duration * 1000)
        error_details = {} if success else dict(playbook.error_details or {})
        output = copy.deepcopy(playbook.output) if success else None  # shared: never mutated
        outcome = Outcome(
            playbook.duration,
            state_ui,
            output,
            error_details,
            steps=playbook.steps,
            failed_step=None if success else playbook.failed_step,
        )
        with self._lock:
            base_ms = _now_ms() - (count + 1) * max(duration_ms, 1000)
            ids = []
            for i in range(count):
                number = self._next_number(playbook)
                started = (
                    base_ms + i * max(duration_ms, 1000) if finished_at is None else finished_at - duration_ms
                )
                record = self._record(playbook, number, started)
                record.update(
                    state=raw_state(state_ui),
                    state_ui=state_ui,
                    finished_at=started + duration_ms,
                    updated_at=started + duration_ms,
                    duration=duration_ms,
                    net_runtime_ms=duration_ms,
                    error_details=dict(error_details),
                    trigger_type="api",
                )
                self._store(Execution(record, outcome, 0.0, output, ended=outcome.duration))
                ids.append(record["id"])
            return ids

    def get(self, execution_id: str, workspace_id: str | None = None) -> dict[str, Any]:
        """The current record of an execution (shared: do not mutate)."""
        with self._lock:
            return self._find(execution_id, workspace_id).view(time.monotonic())

    def poll(self, execution_id: str) -> tuple[dict[str, Any], bool, dict[str, Any] | None, float]:
        """Return (record, finished, output, seconds until the script finishes it)."""
        with self._lock:
            execution = self._find(execution_id, None)
            now = time.monotonic()
            record = execution.view(now)
            return record, execution.finished, execution.output, execution.remaining(now)

    def records(
        self, workspace_id: str | None = None, ids: Collection[str] | None = None
    ) -> list[dict[str, Any]]:
        """
        Current records in creation order, of one workspace or all (shared: do not mutate).

        :param ids: only these executions (looked up by id, not scanned for).
        """
        with self._lock:
            now = time.monotonic()
            source: Iterable[Execution] = (
                self._executions.values()
                if workspace_id is None
                else self._by_workspace.get(workspace_id, [])
            )
            if ids is not None:
                found = (self._executions.get(i) for i in ids)
                source = sorted(
                    (e for e in found if e is not None and workspace_id in (None, e.workspace_id)),
                    key=lambda e: self._order[e.id],
                )
            return [e.view(now) for e in source]

    def steps(self, execution_id: str, workspace_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return self._find(execution_id, workspace_id).steps(time.monotonic())

    def finish(
        self,
        execution_id: str,
        state_ui: str,
        *,
        error_details: dict[str, str] | None = None,
        cancel_reason: str = "",
        only_running: bool = False,
    ) -> dict[str, Any]:
        """
        Force an execution into a final state now and return its record.

        :raises LookupFailed: unknown execution.
        :raises NotRunning: ``only_running`` and the execution already finished.
        """
        with self._lock:
            execution = self._find(execution_id, None)
            now = time.monotonic()
            execution.view(now)
            if only_running and execution.finished:
                raise NotRunning(execution_id)
            if error_details is None:
                error_details = execution.outcome.error_details
            ended = execution.position(now)[0] if execution.ended is None else execution.ended
            execution.end(state_ui, _now_ms(), error_details, cancel_reason, ended=ended)
            return execution.record

    def release(self, execution_id: str) -> dict[str, Any]:
        """
        Let a run held by a phase until released go on now (blink-api-contract.md#observed-states); its record.

        :raises LookupFailed: unknown execution.
        :raises NotHeld: no phase holds it.
        """
        with self._lock:
            execution = self._find(execution_id, None)
            now = time.monotonic()
            execution.release(now)
            return execution.view(now)

    def _find(self, execution_id: str, workspace_id: str | None) -> Execution:
        execution = self._executions.get(execution_id)
        if execution is None or workspace_id not in (None, execution.workspace_id):
            raise LookupFailed(execution_id)
        return execution

    def _next_number(self, playbook: ScriptedPlaybook) -> int:
        key = (playbook.workspace_id, playbook.id)
        self._run_counts[key] = number = self._run_counts.get(key, 0) + 1
        return number

    def _store(self, execution: Execution) -> None:
        self._executions[execution.id] = execution
        self._order[execution.id] = len(self._order)
        self._by_workspace.setdefault(execution.workspace_id, []).append(execution)

    @staticmethod
    def _record(playbook: ScriptedPlaybook, number: int, started_ms: int) -> dict[str, Any]:
        """A new run's record: every field of blink-api-contract.md#documented-get (those the emulator has no use for stay empty)."""
        execution_id = str(uuid.uuid4())
        return {
            **_BLANK_RECORD,
            "created_at": started_ms,
            "display_name": f"{playbook.display_name} #{number}",
            "error_details": {},
            "event": {},
            "execution_number": number,
            "id": execution_id,
            "inputs": {},
            "last_playbook_name": playbook.display_name,
            "playbook_id": playbook.id,
            "playbook_name": playbook.display_name,
            "started_at": started_ms,
            "step_results": {},
            "subflows_reference_to_name_mapping": {},
            "top_execution_id": execution_id,
            "top_execution_started_at": started_ms,
            "updated_at": started_ms,
            "workspace_id": playbook.workspace_id,
        }


#: The fields of the single GET (blink-api-contract.md#documented-get) that do not depend on the run (mutable ones are set per record).
_BLANK_RECORD: dict[str, Any] = {
    **dict.fromkeys(GET_FIELDS, ""),
    **dict.fromkeys(
        ("draft_execution_number", "duration", "execution_depth", "finished_at", "net_runtime_ms"), 0
    ),
    "created_by": CREATED_BY,
    "playbook_deleted": False,
    "state": RUNNING_STATE,
    "state_ui": RUNNING_STATE_UI,
    "tenant_id": TENANT_ID,
    "timeout": EXECUTION_TIMEOUT_MS,
    "trigger_type": "api",
    "with_concurrency_limit": False,
    # The emulator's own bookkeeping, never served (the single GET has no such field).
    "past_exec_ref": "",
}
