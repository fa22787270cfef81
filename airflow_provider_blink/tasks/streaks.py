"""
Where a sensor keeps its error streak between pokes, so a reschedule does not reset its error budget.

In ``poke`` mode every poke of a try runs in one process: the sensor keeps the streak itself. In
``reschedule`` mode each poke is a new run of the task instance, and the streak (when it began,
and until when Blink asked to wait) must survive it:

- Airflow 3.3+: ``task_state_store``, the store Airflow keeps for a task instance across its runs.
- Before 3.3: an Airflow Variable named after the task instance (``blink_wait_error_streak.<dag>.<task>.<digest>``,
  letters, digits, ``_.-`` only: Airflow 3.0's execution API takes no ``/`` in a key). XCom does not survive: Airflow
  clears a task instance's XCom at the start of every run that does not resume from a deferral
  (2.11: ``TaskInstance._run_raw_task``; 3.x: ``xcom_keys_to_clear`` of the run's context), and a
  reschedule is such a run. Reschedule records carry only times, and a 3.x task can read only the
  first one's start date. The Variable exists only while Blink is failing: it is deleted as soon
  as a read succeeds or the wait ends.

A streak is kept with the try it belongs to, so a new try starts with a fresh budget.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

#: The key of the streak in ``task_state_store``.
KEY = "blink_wait_error_streak"


class StreakStore:
    """
    The streak of one task instance's wait, kept across reschedules (see the module docstring).

    :param context: the task's context (its ``ti``, and ``task_state_store`` on Airflow 3.3+).
    """

    def __init__(self, context: Any) -> None:
        self._ti = context["ti"]
        self._store = context.get("task_state_store")

    @property
    def _variable(self) -> str:
        ti = self._ti
        identity = f"{ti.dag_id}/{ti.run_id}/{ti.task_id}/{getattr(ti, 'map_index', -1)}"
        digest = hashlib.sha256(identity.encode()).hexdigest()[:16]  # the run and map index too

        def readable(name: str) -> str:
            return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:80]

        return f"{KEY}.{readable(ti.dag_id)}.{readable(ti.task_id)}.{digest}"

    def load(self) -> dict[str, Any] | None:
        """The streak of this try, if Blink was failing at its last poke."""
        if self._store is not None:
            value = self._store.get(KEY)
        else:
            from airflow_provider_blink.compat import Variable

            value = Variable.get(self._variable, None, deserialize_json=True)
        if isinstance(value, dict) and value.get("try_number") == self._ti.try_number:
            return value
        return None

    def save(self, streak: dict[str, Any]) -> None:
        """Keep ``streak`` (plain JSON) for this try's next poke."""
        value = {**streak, "try_number": self._ti.try_number}
        if self._store is not None:
            self._store.set(KEY, value)
        else:
            from airflow_provider_blink.compat import Variable

            Variable.set(self._variable, value, serialize_json=True)

    def forget(self) -> None:
        """The streak is over: Blink answered, or the wait ended."""
        if self._store is not None:
            self._store.delete(KEY)
        else:
            from airflow_provider_blink.compat import Variable

            Variable.delete(self._variable)


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
