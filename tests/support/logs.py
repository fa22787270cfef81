"""Reading what the provider logged, on either Airflow line."""

from __future__ import annotations

import pytest


class Logged:
    """
    What was logged so far, read once (reading takes the captured output away).

    Airflow 3 logs through structlog to stdout, Airflow 2 to caplog and may show a line in both.
    """

    def __init__(self, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
        out, err = capfd.readouterr()
        self._texts = (caplog.text, out + err)

    def count(self, text: str) -> int:
        """How often ``text`` was logged."""
        return max(logged.count(text) for logged in self._texts)


def times_logged(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str], text: str) -> int:
    """How often ``text`` was logged (see :class:`Logged`)."""
    return Logged(caplog, capfd).count(text)
