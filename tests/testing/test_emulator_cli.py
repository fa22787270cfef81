"""``python -m airflow_provider_blink.testing`` serves the emulator until it is signalled."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import requests

from airflow_provider_blink.testing.cli import build_parser, emulator_from_args, parse_playbook


def wait_for_file(path, process, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"the emulator exited early: {process.communicate()}")
        if time.monotonic() > deadline:
            raise AssertionError("the emulator did not write its ready file")
        time.sleep(0.02)
    return path.read_text().strip()


@pytest.fixture
def run_cli(tmp_path):
    """Start the CLI with extra arguments; return (process, url); terminate it afterwards."""
    processes: list[subprocess.Popen[str]] = []

    def run(*args, env=None):
        ready = tmp_path / f"ready-{len(processes)}.txt"
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "airflow_provider_blink.testing",
                "--port",
                "0",
                "--ready-file",
                str(ready),
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        processes.append(process)
        return process, wait_for_file(ready, process)

    yield run
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_serves_the_demo_playbooks_until_signalled(run_cli, signum):
    process, url = run_cli(env={"BLINK_EMULATOR_API_KEY": "key-from-env"})
    assert url.startswith("http://127.0.0.1:")
    base = f"{url}/api/v1/workspace/demo-workspace"

    response = requests.post(
        f"{base}/playbooks/isolate-host/execute", headers={"BLINK-API-KEY": "key-from-env"}, timeout=5
    )
    assert response.status_code == 200
    assert (
        requests.get(f"{base}/executions", headers={"BLINK-API-KEY": "wrong"}, timeout=5).status_code == 401
    )

    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr
    lines = stdout.splitlines()
    assert lines[0] == f"Blink emulator listening on {url} (workspace demo-workspace)"
    assert lines[-1] == export_line(url, "key-from-env", "demo-workspace", "AIRFLOW_CONN_BLINK_DEFAULT")


def export_line(url, key, workspace, name):
    conn = {"conn_type": "blink", "host": url, "password": key, "extra": {"workspace_id": workspace}}
    return f"export {name}='{json.dumps(conn)}'"


def test_prints_a_connection_line_the_shell_and_airflow_accept(run_cli):
    process, url = run_cli("--api-key", "it's-a-key", "--workspace", "soc", "--conn-id", "blink_soc")
    process.send_signal(signal.SIGTERM)
    stdout, _ = process.communicate(timeout=10)
    line = stdout.splitlines()[-1]
    assert line.startswith("export AIRFLOW_CONN_BLINK_SOC=")

    shell = subprocess.run(
        ["bash", "-c", f'{line}\nprintf %s "$AIRFLOW_CONN_BLINK_SOC"'],
        capture_output=True,
        text=True,
        check=True,
    )
    conn = json.loads(shell.stdout)
    assert conn == {
        "conn_type": "blink",
        "host": url,
        "password": "it's-a-key",
        "extra": {"workspace_id": "soc"},
    }


def test_playbooks_and_config_from_the_command_line(run_cli, tmp_path):
    config = tmp_path / "emulator.json"
    config.write_text(
        json.dumps(
            {
                "api_key": "config-key",
                "workspaces": ["ws-a"],
                "playbooks": [
                    {"id": "from-config", "name": "From config", "duration": 0, "output": {"x": 1}}
                ],
            }
        )
    )
    _, url = run_cli("--config", str(config), "--playbook", "quick:0:Failed")
    base = f"{url}/api/v1/workspace/ws-a/playbooks"
    headers = {"BLINK-API-KEY": "config-key"}

    ok = requests.post(f"{base}/from-config/execute?run_sync=true", headers=headers, timeout=5)
    failed = requests.post(f"{base}/quick/execute?run_sync=true", headers=headers, timeout=5)

    assert (ok.status_code, ok.json()) == (200, {"x": 1})
    assert (failed.status_code, failed.json()["data"]["state"]) == (400, "Failed")


def test_config_playbooks_with_steps_and_a_failing_step(run_cli, tmp_path):
    config = tmp_path / "emulator.json"
    playbooks = [
        {"id": "triage", "duration": 0, "steps": 3, "failed_step": None, "output": {"done": True}},
        {
            "id": "breaks",
            "duration": 0,
            "steps": 3,
            "final_state": "Failed",
            "failed_step": 2,
            "error_details": {"message": "SIEM returned 500"},
        },
    ]
    config.write_text(json.dumps({"playbooks": playbooks}))
    _, url = run_cli("--config", str(config), "--api-key", "k")
    base, headers = f"{url}/api/v1/workspace/demo-workspace", {"BLINK-API-KEY": "k"}

    def steps_of(playbook_id):
        started = requests.post(f"{base}/playbooks/{playbook_id}/execute", headers=headers, timeout=5)
        execution_id = started.json()["execution_id"]
        page = requests.get(f"{base}/executions/{execution_id}/steps", headers=headers, timeout=5).json()
        return [(step["step_id"], step["state"], step["error_data"]) for step in page["results"]]

    assert steps_of("triage") == [
        ("step_1", "completed", ""),
        ("step_2", "completed", ""),
        ("step_3", "completed", ""),
    ]
    assert steps_of("breaks") == [("step_1", "completed", ""), ("step_2", "failed", "SIEM returned 500")]


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"steps": "3"}, "steps must be a whole number, got '3'"),
        ({"steps": 2.5}, "steps must be a whole number, got 2.5"),
        ({"steps": None}, "steps must be a whole number, got None"),
        ({"steps": True}, "steps must be a whole number, got True"),
        ({"steps": 0}, "steps must be >= 1, got 0"),
        (
            {"steps": 3, "final_state": "Failed", "failed_step": 2.0},
            "failed_step must be a whole number, got 2.0",
        ),
        (
            {"steps": 3, "final_state": "Failed", "failed_step": 4},
            "failed_step must be from 1 to steps (3), got 4",
        ),
        ({"steps": 3, "failed_step": 2}, "failed_step needs an unsuccessful final_state"),
    ],
    ids=["text", "fraction", "null", "bool", "zero", "failed-fraction", "failed-beyond", "failed-completed"],
)
def test_config_playbook_steps_are_checked(tmp_path, fields, error):
    config = tmp_path / "emulator.json"
    config.write_text(json.dumps({"playbooks": [{"id": "triage", **fields}]}))
    message = f"playbook 'triage' in --config: {error}"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        emulator_from_args(build_parser().parse_args(["--config", str(config)]))


def test_refuses_non_loopback_hosts():
    result = subprocess.run(
        [sys.executable, "-m", "airflow_provider_blink.testing", "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "loopback" in result.stderr


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("triage", ("triage", 1.0, "Completed")),
        ("triage:2.5", ("triage", 2.5, "Completed")),
        ("triage:0:Timed out", ("triage", 0.0, "Timed out")),
    ],
    ids=["id-only", "duration", "final-state"],
)
def test_parse_playbook(spec, expected):
    playbook = parse_playbook(spec, "ws")
    assert (playbook.id, playbook.duration, playbook.final_state) == expected
    assert playbook.workspace_id == "ws"


def test_defaults(monkeypatch):
    monkeypatch.delenv("BLINK_EMULATOR_API_KEY", raising=False)
    args = build_parser().parse_args([])
    emulator = emulator_from_args(args)
    assert (args.host, args.port, emulator.api_key) == ("127.0.0.1", 8765, "blink-demo-key")
    assert emulator.workspaces == ["demo-workspace"]


def test_workspace_flag_moves_the_demo_playbooks(run_cli):
    _, url = run_cli("--workspace", "soc", "--api-key", "k")
    response = requests.post(
        f"{url}/api/v1/workspace/soc/playbooks/enrich-ioc/execute", headers={"BLINK-API-KEY": "k"}, timeout=5
    )
    assert response.status_code == 200
