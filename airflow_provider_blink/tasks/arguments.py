"""Checks of a task's arguments: what a DAG file passes is checked when it is parsed, the rest at run time."""

from __future__ import annotations

from typing import Any

from airflow_provider_blink import api
from airflow_provider_blink.compat import conf
from airflow_provider_blink.exceptions import BlinkConfigurationError


def filled_at_run_time(value: Any) -> bool:
    """Whether Airflow supplies ``value`` only at run time: an XComArg, a mapped argument, a template."""
    return hasattr(value, "resolve") or (isinstance(value, str) and "{{" in value)


def check_playbook_id(playbook_id: Any, *, parse_time: bool = False) -> None:
    """Reject a playbook id that is not a non-empty string (at parse time, XComArgs and templates pass)."""
    if parse_time and filled_at_run_time(playbook_id):
        return
    if not isinstance(playbook_id, str) or not playbook_id.strip():
        raise BlinkConfigurationError(
            f"playbook_id must be the playbook's id (a non-empty string), got {playbook_id!r}."
        )


def check_execute_field_at_parse_time(name: str, value: Any) -> None:
    """
    Check one execute field as a DAG file gives it (see :func:`.api.check_execute_field`).

    Values Airflow fills in at run time pass, also inside a dict; everything already known must be valid.
    """
    if value is None or filled_at_run_time(value):
        return
    api.check_execute_field(name, value, default=_filled_later)


def _filled_later(value: Any) -> Any:
    if filled_at_run_time(value):
        return None
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def check_poll_interval(poll_interval: Any, name: str = "poll_interval") -> float:
    """Reject a poll interval that is not a positive number (the sensor's is ``poke_interval``)."""
    if isinstance(poll_interval, bool) or not isinstance(poll_interval, int | float) or poll_interval <= 0:
        raise BlinkConfigurationError(f"{name} must be a positive number of seconds, got {poll_interval!r}.")
    return float(poll_interval)


def resolve_deferrable(deferrable: bool | None) -> bool:
    """``None`` means Airflow's ``[operators] default_deferrable``."""
    if deferrable is None:
        return conf.getboolean("operators", "default_deferrable", fallback=False)
    return deferrable
