"""Fixtures for the security tests: a hostile Blink wired in as ``blink_default``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from support.emulator import API_KEY, WORKSPACE
from support.hostile import SelfSigned, blink_connection, self_signed


@pytest.fixture
def use_blink(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Point ``blink_default`` at a URL (a hostile server), with the test key and connection extras."""

    def use(url: str, **extra: Any) -> None:
        monkeypatch.setenv("AIRFLOW_CONN_BLINK_DEFAULT", blink_connection(url, API_KEY, WORKSPACE, **extra))

    return use


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> SelfSigned:
    """A self-signed certificate for 127.0.0.1 (trust it with extra ``verify``: its path)."""
    return self_signed(Path(tmp_path_factory.mktemp("tls")))
