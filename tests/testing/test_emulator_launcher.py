"""``EmulatorProcess`` starts the emulator's command line in its own process and waits until it serves."""

from __future__ import annotations

import json

import pytest
import requests

from airflow_provider_blink.testing.launcher import (
    EmulatorDidNotStart,
    EmulatorProcess,
    read_ready_file,
    write_ready_file,
)

KEY = "launcher-key-0123456789"


def test_serves_the_given_playbooks_until_stopped(tmp_path):
    blink = EmulatorProcess(
        api_key=KEY,
        workspace_id="ws-launch",
        playbooks=[{"id": "pb-launch", "duration": 0.1}],
        log_path=tmp_path / "emulator.log",
    )

    with blink:
        response = requests.post(
            f"{blink.url}/api/v1/workspace/ws-launch/playbooks/pb-launch/execute",
            headers={"BLINK-API-KEY": KEY},
            json={},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        assert blink.process is not None
        assert blink.process.poll() is None
        conn = json.loads(blink.connection_env()["AIRFLOW_CONN_BLINK_DEFAULT"])
        assert (conn["host"], conn["password"], conn["extra"]) == (
            blink.url,
            KEY,
            {"workspace_id": "ws-launch"},
        )

    assert blink.process.poll() is not None, "stopped on leaving the block"
    assert "Blink emulator listening on" in blink.tail()


def test_a_process_that_exits_early_says_why(tmp_path):
    blink = EmulatorProcess(
        api_key=KEY, log_path=tmp_path / "emulator.log", args=["--tls-cert", "/no/such.pem"]
    )

    with pytest.raises(EmulatorDidNotStart) as info:
        blink.start(timeout=60)

    assert "exited with status 2" in str(info.value)
    assert "--tls-cert and --tls-key go together" in str(info.value), "the log tail is in the error"


def test_the_ready_file_is_read_only_once_written(tmp_path):
    ready = tmp_path / "emulator.url"

    assert read_ready_file(ready) is None
    write_ready_file(ready, "http://127.0.0.1:8765")
    assert read_ready_file(ready) == "http://127.0.0.1:8765"


def test_playbooks_for_a_log_folder_that_does_not_exist_yet(tmp_path):
    blink = EmulatorProcess(
        api_key=KEY,
        workspace_id="ws-launch",
        playbooks=[{"id": "pb-new-folder", "duration": 0.1}],
        log_path=tmp_path / "not-yet" / "emulator.log",
    )

    with blink:
        response = requests.get(
            f"{blink.url}/api/v1/workspace/ws-launch/executions",
            headers={"BLINK-API-KEY": KEY},
            timeout=10,
        )
        assert response.status_code == 200, response.text

    assert (
        json.loads((tmp_path / "not-yet" / "emulator.json").read_text())["playbooks"][0]["id"]
        == "pb-new-folder"
    )
