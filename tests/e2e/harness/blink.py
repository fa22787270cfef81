"""The Blink emulator in its own process, and Blink's REST API to read executions back."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import requests
from e2e.harness.processes import ComponentFailed, base_env
from e2e.harness.waiting import wait_until

from airflow_provider_blink.testing.launcher import EmulatorProcess


class BlinkApi:
    """Reads executions back from the emulator through Blink's public REST API (as any client would)."""

    def __init__(self, url: str, api_key: str, workspace_id: str) -> None:
        self.url = url
        self.workspace_id = workspace_id
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.headers["BLINK-API-KEY"] = api_key

    def _get(self, path: str, **params: str) -> Any:
        response = self.session.get(
            f"{self.url}/api/v1/workspace/{self.workspace_id}{path}", params=params, timeout=10
        )
        response.raise_for_status()
        return response.json()

    def executions(self, playbook_id: str) -> list[dict[str, Any]]:
        """Every execution of ``playbook_id``, oldest first."""
        query = {"filter": {"playbook_id": playbook_id}, "sort": ["created_at"], "limit": 1000}
        return list(self._get("/executions", q=json.dumps(query))["results"])

    def executions_for_run(self, playbook_id: str, run_id: str) -> list[dict[str, Any]]:
        """
        Executions of ``playbook_id`` whose inputs carry ``run_id`` (the e2e DAGs pass it), read with GET.

        A list item carries no ``inputs`` (blink-api-contract.md#documented-list), so each execution is read on its own.
        """
        records = [self.execution(e["id"]) for e in self.executions(playbook_id)]
        return [e for e in records if (e.get("inputs") or {}).get("run_id") == run_id]

    def execution(self, execution_id: str) -> dict[str, Any]:
        return dict(self._get(f"/executions/{execution_id}"))

    def steps(self, execution_id: str) -> list[dict[str, Any]]:
        """The execution's steps (one page: the e2e playbooks have a few)."""
        return list(self._get(f"/executions/{execution_id}/steps")["results"])

    def start(self, playbook_id: str, input_values: Mapping[str, Any] | None = None) -> str:
        """Start a run of ``playbook_id``, as a person in Blink (or another tool) would; returns its id."""
        body = {"input_values": dict(input_values)} if input_values is not None else {}
        response = self.session.post(
            f"{self.url}/api/v1/workspace/{self.workspace_id}/playbooks/{playbook_id}/execute",
            json=body,
            timeout=10,
        )
        response.raise_for_status()
        return str(response.json()["execution_id"])

    def cancel(self, execution_id: str) -> None:
        """Cancel a running execution, as a person in Blink (or another tool) would."""
        response = self.session.post(
            f"{self.url}/api/v1/workspace/{self.workspace_id}/executions/{execution_id}/cancel", timeout=10
        )
        response.raise_for_status()

    def wait_ended(self, execution_id: str, *, timeout: float, why: str = "to end") -> str:
        """Wait until the execution leaves ``In Progress``; return the ``state_ui`` it ends in.

        :param why: what the wait expects, for the timeout's message.
        :raises TimeoutError: still ``In Progress`` after ``timeout`` seconds.
        """
        return wait_until(
            f"Blink execution {execution_id} {why}",
            lambda: (state := self.execution(execution_id)["state_ui"]) != "In Progress" and state,
            timeout=timeout,
            interval=0.5,
        )


class BlinkEmulatorProcess(EmulatorProcess):
    """The shared launcher's emulator process (``python -m airflow_provider_blink.testing``) in its own
    process group, with :attr:`api` to read executions back once it serves."""

    def __init__(
        self,
        *,
        api_key: str,
        workspace_id: str,
        playbooks: Iterable[Mapping[str, Any]],
        log_path: Path,
        python: str,
    ) -> None:
        super().__init__(
            api_key=api_key,
            workspace_id=workspace_id,
            playbooks=playbooks,
            log_path=log_path,
            python=python,
            env=base_env(),
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.api: BlinkApi | None = None

    def start(self, timeout: float = 60.0) -> str:
        url = super().start(timeout)
        self.api = BlinkApi(url, self.api_key, self.workspace_id)
        return url


class InProcessEmulator:
    """The emulator on a thread of the test process: tests may also end executions (``finish``).

    Same surface as :class:`BlinkEmulatorProcess` for the deployment; ``emulator`` is the
    :class:`~airflow_provider_blink.testing.BlinkEmulator` itself.
    """

    def __init__(self, *, api_key: str, workspace_id: str, playbooks: Iterable[Mapping[str, Any]]) -> None:
        from airflow_provider_blink.testing import BlinkEmulator, ScriptedPlaybook

        self.api_key = api_key
        self.workspace_id = workspace_id
        self.emulator = BlinkEmulator(
            api_key=api_key, workspaces=[workspace_id], playbooks=[ScriptedPlaybook(**pb) for pb in playbooks]
        )
        self.url = ""
        self.api: BlinkApi | None = None

    def start(self) -> None:
        self.emulator.start()
        self.url = self.emulator.url
        self.api = BlinkApi(self.url, self.api_key, self.workspace_id)

    def connection(self, url: str | None = None) -> dict[str, Any]:
        """The ``blink_default`` Airflow connection for this emulator, or reaching it through ``url``."""
        return {
            "conn_type": "blink",
            "host": url or self.url,
            "password": self.api_key,
            "extra": {"workspace_id": self.workspace_id},
        }

    def check_alive(self) -> None:
        if not self.emulator.running:
            raise ComponentFailed("the in-process Blink emulator is not running")

    def stop(self) -> None:
        self.emulator.stop()
