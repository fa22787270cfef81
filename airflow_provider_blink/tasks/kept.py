"""
A value a task keeps for its task instance across runs and tries: where, on each Airflow line.

- Airflow 3.3+: ``task_state_store``, the store Airflow keeps for a task instance across its runs.
- Before 3.3 (or a context without the store): an Airflow Variable named after the task instance
  (``<key>.<dag>.<task>.<digest>``, letters, digits, ``_.-`` only: Airflow 3.0's execution API takes
  no ``/`` in a key). XCom does not survive: Airflow clears a task instance's XCom at the start of
  every run that does not resume from a deferral (2.11: ``TaskInstance._run_raw_task``; 3.x:
  ``xcom_keys_to_clear`` of the run's context), and a retry or a reschedule is such a run.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any


class KeptValue:
    """
    One plain-JSON value kept under ``key`` for the task instance of ``context`` (see the module docstring).

    :param context: the task's context (its ``ti``, and ``task_state_store`` on Airflow 3.3+).
    :param key: the value's key in ``task_state_store``, and its Variable's prefix.
    """

    def __init__(self, context: Any, key: str) -> None:
        self._ti = context["ti"]
        self._store = context.get("task_state_store")
        self._key = key

    @property
    def _variable(self) -> str:
        ti = self._ti
        identity = f"{ti.dag_id}/{ti.run_id}/{ti.task_id}/{getattr(ti, 'map_index', -1)}"
        digest = hashlib.sha256(identity.encode()).hexdigest()[:16]  # the run and map index too

        def readable(name: str) -> str:
            return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:80]

        return f"{self._key}.{readable(ti.dag_id)}.{readable(ti.task_id)}.{digest}"

    def load(self) -> Any:
        """The value kept, or ``None``."""
        if self._store is not None:
            return self._store.get(self._key)
        from airflow_provider_blink.compat import Variable

        return Variable.get(self._variable, None, deserialize_json=True)

    def save(self, value: Any) -> None:
        """Keep ``value`` (plain JSON), replacing what was kept."""
        if self._store is not None:
            self._store.set(self._key, value)
        else:
            from airflow_provider_blink.compat import Variable

            Variable.set(self._variable, value, serialize_json=True)

    def forget(self) -> None:
        """Drop the value kept."""
        if self._store is not None:
            self._store.delete(self._key)
        else:
            from airflow_provider_blink.compat import Variable

            Variable.delete(self._variable)
