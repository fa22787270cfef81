"""Scripted playbooks: what each emulated playbook run does, and the demo set."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

COMPLETED = "Completed"


@dataclass(frozen=True)
class Outcome:
    """The script of one run: how long it takes and how it ends.

    :param duration: seconds of real time from start to the final state.
    :param final_state: ``state_ui`` of the final state (``Completed``, ``Failed``, ``Cancelled`` …).
    :param output: the playbook output returned by ``run_sync`` and the steps endpoint, or ``None``.
    :param error_details: Blink's ``error_details`` map for unsuccessful runs.
    """

    duration: float = 0.0
    final_state: str = COMPLETED
    output: dict[str, Any] | None = None
    error_details: dict[str, str] | None = None

    def __post_init__(self) -> None:
        if self.duration < 0:
            raise ValueError(f"duration must be >= 0, got {self.duration!r}")
        if not self.final_state.strip():
            raise ValueError("final_state must not be empty")


@dataclass(frozen=True)
class ScriptedPlaybook:
    """A playbook the emulator can run, scripted to end in a given state after a given time.

    :param id: the playbook id used in the execute path.
    :param name: the playbook name (``playbook_name`` and ``display_name`` of its executions).
    :param workspace_id: the workspace the playbook lives in.
    :param duration: default run length in seconds (real time).
    :param final_state: default final ``state_ui``.
    :param output: default playbook output.
    :param error_details: default ``error_details`` for unsuccessful runs.
    :param outcomes: per-run scripts consumed in order (run 1 uses ``outcomes[0]`` …); the last repeats.
        When given, they replace the defaults above.
    """

    id: str
    name: str = ""
    workspace_id: str = "demo-workspace"
    duration: float = 0.0
    final_state: str = COMPLETED
    output: dict[str, Any] | None = None
    error_details: dict[str, str] | None = None
    outcomes: list[Outcome] | None = field(default=None)

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("playbook id must not be empty")
        if self.outcomes is not None and not self.outcomes:
            raise ValueError("outcomes must be None or a non-empty list")
        Outcome(self.duration, self.final_state)  # validates the defaults

    @property
    def display_name(self) -> str:
        """The name shown for the playbook, falling back to its id."""
        return self.name or self.id

    def outcome(self, run_number: int) -> Outcome:
        """Return the script of the ``run_number``-th run (1-based)."""
        if not self.outcomes:
            return Outcome(self.duration, self.final_state, self.output, self.error_details)
        return self.outcomes[min(run_number, len(self.outcomes)) - 1]


DEMO_WORKSPACE = "demo-workspace"

DEMO_PLAYBOOKS: list[ScriptedPlaybook] = [
    ScriptedPlaybook(
        id="enrich-ioc",
        name="Enrich IOC",
        workspace_id=DEMO_WORKSPACE,
        duration=2.0,
        final_state=COMPLETED,
        output={"verdict": "malicious", "score": 87, "sources": ["virustotal", "abuseipdb"]},
    ),
    ScriptedPlaybook(
        id="isolate-host",
        name="Isolate host",
        workspace_id=DEMO_WORKSPACE,
        duration=1.0,
        final_state=COMPLETED,
        output={"isolated": True},
    ),
    ScriptedPlaybook(
        id="failing-playbook",
        name="Always fails",
        workspace_id=DEMO_WORKSPACE,
        duration=1.0,
        final_state="Failed",
        error_details={"message": "step 'query_siem' failed: SIEM returned 500", "error_code": "STEP_FAILED"},
    ),
]
