"""Scripted playbooks: what each emulated playbook run does, and the demo set."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

COMPLETED = "Completed"
#: The running state a run shows until a :class:`Phase` says otherwise. Blink does not document its
#: running states' spelling; older UI docs name "In progress" (blink-api-contract.md#observed-states).
RUNNING_STATE_UI = "In Progress"
RUNNING_STATE = "running"


def raw_state(state_ui: str) -> str:
    """Map a ``state_ui`` such as ``"Timed out"`` to the raw ``state`` (``"timed_out"``)."""
    return state_ui.lower().replace(" ", "_")


@dataclass(frozen=True)
class Phase:
    """
    A running state a run passes through, from ``at`` seconds after its start.

    Blink's runs may wait in ``Pending``/``Paused`` (a step waits for a person) and other running
    states (blink-api-contract.md#observed-states); ``state_ui`` and ``state`` need not agree.

    :param at: seconds after the start at which the run enters this state.
    :param state_ui: the state shown (``state_ui``).
    :param state: the raw ``state``; default derived from ``state_ui``.
    :param until_released: hold the run here, as a step waiting for a person does (``Pending``,
        blink-api-contract.md#observed-states): its script stops at ``at`` until
        ``BlinkEmulator.release``, then goes on from there, later phases and steps shifted by the time
        held. The state is shown only while held; after the release the other phases decide.
    """

    at: float
    state_ui: str
    state: str | None = None
    until_released: bool = False

    def __post_init__(self) -> None:
        if self.at < 0:
            raise ValueError(f"phase 'at' must be >= 0, got {self.at!r}")

    @property
    def raw(self) -> str:
        return raw_state(self.state_ui) if self.state is None else self.state


@dataclass(frozen=True)
class Outcome:
    """
    The script of one run: how long it takes, which states it shows, and how it ends.

    :param duration: seconds of real time from start to the final state.
    :param final_state: ``state_ui`` of the final state (``Completed``, ``Failed``, ``Cancelled`` …).
    :param output: the playbook output returned by ``run_sync`` and the last step, or ``None``.
    :param error_details: Blink's ``error_details`` map for unsuccessful runs.
    :param phases: running states before the final one, in order of ``at``; before the first
        (and without any) the run shows ``In Progress``/``running``.
    :param final_raw_state: the raw ``state`` of the final record; default derived from
        ``final_state`` (set it to make ``state`` and ``state_ui`` disagree).
    :param steps: how many steps the run reports; they finish one after another, the last one
        carries ``output`` and every other one ``{"step": <its number>}``.
    :param failed_step: with an unsuccessful ``final_state``, the step (1-based) that fails, its
        ``error_data`` the error's message (blink-api-contract.md#observed-steps): the run's steps are
        the ones up to it, sharing ``duration``, and no later one starts. ``None``: the last step fails.
    """

    duration: float = 0.0
    final_state: str = COMPLETED
    output: dict[str, Any] | None = None
    error_details: dict[str, str] | None = None
    phases: tuple[Phase, ...] = ()
    final_raw_state: str | None = None
    steps: int = 1
    failed_step: int | None = None

    def __post_init__(self) -> None:
        if self.duration < 0:
            raise ValueError(f"duration must be >= 0, got {self.duration!r}")
        if not self.final_state.strip():
            raise ValueError("final_state must not be empty")
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps!r}")
        if list(self.phases) != sorted(self.phases, key=lambda phase: phase.at):
            raise ValueError("phases must be in order of 'at'")
        if any(hold.at > self.duration for hold in self.holds):
            raise ValueError("a phase held until released must start by the run's duration")
        if self.failed_step is not None:
            if not 1 <= self.failed_step <= self.steps:
                raise ValueError(
                    f"failed_step must be from 1 to steps ({self.steps}), got {self.failed_step!r}"
                )
            if self.final_state.lower() == COMPLETED.lower():
                raise ValueError("failed_step needs an unsuccessful final_state")

    @property
    def final_raw(self) -> str:
        """The raw ``state`` of the final record."""
        return raw_state(self.final_state) if self.final_raw_state is None else self.final_raw_state

    @property
    def holds(self) -> tuple[Phase, ...]:
        """The phases held until released, in order."""
        return tuple(phase for phase in self.phases if phase.until_released)

    @property
    def steps_run(self) -> int:
        """How many steps the script reaches: up to ``failed_step``, else all of them."""
        return self.steps if self.failed_step is None else self.failed_step

    def running_state(self, elapsed: float) -> tuple[str, str]:
        """
        ``(state_ui, state)`` of the run ``elapsed`` script seconds after its start, before it ends.

        Phases held until released do not count: the run shows them only while held.
        """
        current = (RUNNING_STATE_UI, RUNNING_STATE)
        for phase in self.phases:
            if phase.at <= elapsed and not phase.until_released:
                current = (phase.state_ui, phase.raw)
        return current


@dataclass(frozen=True, kw_only=True)
class ScriptedPlaybook(Outcome):
    """
    A playbook the emulator can run, scripted to end in a given state after a given time.

    Its :class:`Outcome` fields (``duration``, ``final_state``, ``output``, ``error_details``,
    ``phases``, ``final_raw_state``, ``steps``, ``failed_step``) are the default script of its runs.

    :param id: the playbook id used in the execute path.
    :param name: the playbook name (``playbook_name`` and ``display_name`` of its executions).
    :param workspace_id: the workspace the playbook lives in.
    :param outcomes: per-run scripts consumed in order (run 1 uses ``outcomes[0]`` …); the last repeats.
        When given, they replace the default script.
    """

    id: str
    name: str = ""
    workspace_id: str = "demo-workspace"
    outcomes: list[Outcome] | None = None

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("playbook id must not be empty")
        if self.outcomes is not None and not self.outcomes:
            raise ValueError("outcomes must be None or a non-empty list")
        self.outcome(1)  # validates the defaults

    @property
    def display_name(self) -> str:
        """The name shown for the playbook, falling back to its id."""
        return self.name or self.id

    def outcome(self, run_number: int) -> Outcome:
        """Return the script of the ``run_number``-th run (1-based)."""
        if not self.outcomes:
            default = {script.name: getattr(self, script.name) for script in fields(Outcome)}
            return Outcome(**{**default, "phases": tuple(self.phases)})  # phases may be given as a list
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
    ScriptedPlaybook(
        id="triage-alert",
        name="Triage alert",
        workspace_id=DEMO_WORKSPACE,
        duration=4.0,
        steps=4,
        final_state=COMPLETED,
        output={"severity": "high", "true_positive": True, "ticket": "SEC-1042"},
    ),
    # Waits for a person's approval (blink-api-contract.md#observed-states) until BlinkEmulator.release.
    ScriptedPlaybook(
        id="approve-containment",
        name="Approve containment",
        workspace_id=DEMO_WORKSPACE,
        duration=2.0,
        steps=3,
        phases=(Phase(1.0, "Pending", until_released=True),),
        final_state=COMPLETED,
        output={"contained": True},
    ),
    # Its steps end at the one that fails (blink-api-contract.md#observed-steps).
    ScriptedPlaybook(
        id="failing-step",
        name="Fails at step 2",
        workspace_id=DEMO_WORKSPACE,
        duration=2.0,
        steps=3,
        final_state="Failed",
        failed_step=2,
        error_details={"message": "step 2: SIEM returned 500", "error_code": "STEP_FAILED"},
    ),
]
