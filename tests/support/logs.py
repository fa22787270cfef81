"""Reading what the provider logged, on either Airflow line."""

from __future__ import annotations

import pytest


def times_logged(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str], text: str) -> int:
    """How often ``text`` was logged (Airflow 3 logs hooks through structlog to stdout, Airflow 2 to caplog)."""
    out, err = capfd.readouterr()
    return max(caplog.text.count(text), (out + err).count(text))  # Airflow 2 may show it in both
