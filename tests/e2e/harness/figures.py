"""Figures a suite measures (printed at its end by its conftest, never asserted as times)."""

from __future__ import annotations

from typing import Any

#: scenario -> figure name -> value, in the order recorded.
FIGURES: dict[str, dict[str, Any]] = {}


def record(scenario: str, figures: dict[str, Any]) -> None:
    """Add ``figures`` under ``scenario`` (later values of the same name win)."""
    FIGURES.setdefault(scenario, {}).update(figures)
