"""Fixtures for the Blink emulator's own tests: a small emulator and a requests client for it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from airflow_provider_blink.testing import BlinkEmulator, ScriptedPlaybook

WS = "ws-1"
OTHER_WS = "ws-2"
KEY = "test-key-0123456789"
VIEWER_KEY = "viewer-key-9876543210"
FAILURE = {"message": "step 'query_siem' failed: SIEM returned 500", "error_code": "STEP_FAILED"}


class BlinkApi:
    """A tiny requests client for the emulator: paths are relative to ``/api/v1/workspace/<ws>``."""

    def __init__(self, emulator: BlinkEmulator, key: str | None = KEY, workspace: str = WS) -> None:
        self.emulator = emulator
        self.base = f"{emulator.url}/api/v1/workspace/{workspace}"
        self.session = requests.Session()
        if key is not None:
            self.session.headers["BLINK-API-KEY"] = key

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 10)
        return self.session.request(method, self.base + path, **kwargs)

    def execute(self, playbook_id: str, body: Any = None, **params: Any) -> requests.Response:
        return self.request("POST", f"/playbooks/{playbook_id}/execute", json=body, params=params)

    def start(self, playbook_id: str, body: Any = None) -> str:
        response = self.execute(playbook_id, body)
        assert response.status_code == 200, response.text
        return str(response.json()["execution_id"])

    def get(self, execution_id: str) -> dict[str, Any]:
        response = self.request("GET", f"/executions/{execution_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def list(self, q: Any = None) -> requests.Response:
        params = None if q is None else {"q": q if isinstance(q, str) else json.dumps(q)}
        return self.request("GET", "/executions", params=params)

    def wait_finished(self, execution_id: str, timeout: float = 5.0) -> dict[str, Any]:
        return wait_for(lambda: (r := self.get(execution_id))["finished_at"] and r, timeout)


def wait_for(check: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02) -> Any:
    """Poll ``check`` until it returns something truthy, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def playbooks() -> list[ScriptedPlaybook]:
    return [
        ScriptedPlaybook(
            id="pb-fast", name="Fast", workspace_id=WS, duration=0.2, output={"verdict": "malicious"}
        ),
        ScriptedPlaybook(
            id="pb-fail",
            name="Fails",
            workspace_id=WS,
            duration=0.2,
            final_state="Failed",
            error_details=FAILURE,
        ),
        ScriptedPlaybook(id="pb-slow", name="Slow", workspace_id=WS, duration=60, output={"done": True}),
        ScriptedPlaybook(id="pb-other", name="Elsewhere", workspace_id=OTHER_WS, duration=0.2),
    ]


@pytest.fixture
def emu() -> Iterator[BlinkEmulator]:
    emulator = BlinkEmulator(
        api_key=KEY, workspaces=[WS, OTHER_WS], playbooks=playbooks(), viewer_keys={VIEWER_KEY: [WS]}
    )
    with emulator:
        yield emulator


@pytest.fixture
def api(emu: BlinkEmulator) -> BlinkApi:
    """A client with the full-access key in ``ws-1``."""
    return BlinkApi(emu)


@pytest.fixture
def api_for(emu: BlinkEmulator) -> Callable[..., BlinkApi]:
    """Make a client with another key (``None``: no key header) or workspace."""
    return lambda key=KEY, workspace=WS: BlinkApi(emu, key, workspace)


@pytest.fixture(name="wait_for")
def wait_for_fixture() -> Callable[..., Any]:
    return wait_for
