"""The opt-in pytest plugin gives users a running emulator wired up as ``blink_default``."""

from __future__ import annotations

import subprocess
import sys

pytest_plugins = ["pytester"]

USER_TESTS = """
import json
import os

import requests

pytest_plugins = ["airflow_provider_blink.testing.pytest_plugin"]


def test_blink_emulator(blink_emulator):
    conn = json.loads(os.environ["AIRFLOW_CONN_BLINK_DEFAULT"])
    assert conn["host"] == blink_emulator.url
    assert conn["password"] == "test-api-key"
    assert conn["extra"] == {"workspace_id": "demo-workspace"}
    response = requests.post(
        conn["host"] + "/api/v1/workspace/demo-workspace/playbooks/enrich-ioc/execute",
        headers={"BLINK-API-KEY": conn["password"]},
        timeout=5,
    )
    assert response.status_code == 200


STARTED = []


def test_factory(blink_emulator_factory):
    first = blink_emulator_factory(api_key="a")
    second = blink_emulator_factory(api_key="b", workspaces=["ws-x"], playbooks=[])
    assert first.running and second.running and first.url != second.url
    assert second.workspaces == ["ws-x"]
    STARTED.extend([first, second])


def test_factory_stopped_them_afterwards():
    assert len(STARTED) == 2
    assert not any(emulator.running for emulator in STARTED)
"""


def test_fixtures_work_in_a_users_test_suite(pytester):
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


def test_importing_the_testing_package_does_not_import_airflow():
    code = "import sys, airflow_provider_blink.testing.pytest_plugin; print('airflow' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "False"
