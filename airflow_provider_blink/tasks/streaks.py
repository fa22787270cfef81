"""
Where a sensor keeps its error streak between pokes, so a reschedule does not reset its error budget.

In ``poke`` mode every poke of a try runs in one process: the sensor keeps the streak itself. In
``reschedule`` mode each poke is a new run of the task instance, and the streak (when it began,
and until when Blink asked to wait) must survive it. It is kept where a task keeps a value for its
task instance (:mod:`.kept`): ``task_state_store`` on Airflow 3.3+, before 3.3 an Airflow Variable named ``blink_wait_error_streak.<dag>.<task>.<digest>``. Reschedule
records carry only times, and a 3.x task can read only the first one's start date. The Variable exists
only while Blink is failing: it is deleted as soon as a read succeeds or the wait ends.

A streak is kept with the try it belongs to, so a new try starts with a fresh budget.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_blink.tasks.kept import KeptValue

#: The key of the streak in ``task_state_store``.
KEY = "blink_wait_error_streak"


class StreakStore:
    """
    The streak of one task instance's wait, kept across reschedules (see the module docstring).

    :param context: the task's context (its ``ti``, and ``task_state_store`` on Airflow 3.3+).
    """

    def __init__(self, context: Any) -> None:
        self._ti = context["ti"]
        self._kept = KeptValue(context, KEY)

    def load(self) -> dict[str, Any] | None:
        """The streak of this try, if Blink was failing at its last poke."""
        value = self._kept.load()
        if isinstance(value, dict) and value.get("try_number") == self._ti.try_number:
            return value
        return None

    def save(self, streak: dict[str, Any]) -> None:
        """Keep ``streak`` (plain JSON) for this try's next poke."""
        self._kept.save({**streak, "try_number": self._ti.try_number})

    def forget(self) -> None:
        """The streak is over: Blink answered, or the wait ended."""
        self._kept.forget()


class LocalStreak:
    """The streak of a wait whose pokes all run in this process (``poke`` mode): kept in memory."""

    def __init__(self) -> None:
        self._streak: dict[str, Any] | None = None

    def load(self) -> dict[str, Any] | None:
        """The streak, if Blink was failing at the last poke."""
        return self._streak

    def save(self, streak: dict[str, Any]) -> None:
        """Keep ``streak`` for the next poke."""
        self._streak = dict(streak)

    def forget(self) -> None:
        """The streak is over."""
        self._streak = None
