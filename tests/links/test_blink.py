"""The "Blink" extra link: what the task publishes for it and the URL it points at.

End to end (a real run through ``dag.test()``, the link resolved as the web UI resolves it, on
Airflow 2 and 3) is covered in ``tests/test_example_dags.py``.
"""

from __future__ import annotations

import importlib

import pytest

from airflow_provider_blink import get_provider_info
from airflow_provider_blink.executions import execution_url
from airflow_provider_blink.links.blink import (
    EXECUTION_ID_KEY,
    EXECUTION_URL_KEY,
    BlinkExecutionLink,
    push_execution,
)
from airflow_provider_blink.operators.blink import BlinkExecutePlaybookOperator
from airflow_provider_blink.sensors.blink import BlinkExecutionSensor

from support.task_instance import RecordingTI

URL = "https://app.blinkops.com/workspace/ws-1/workflow/pb-1/edit?execution_id=exec-1"


def test_the_link_is_named_blink():
    assert BlinkExecutionLink().name == "Blink"


def test_push_execution_publishes_the_id_the_url_and_the_links_own_key():
    ti = RecordingTI()

    push_execution({"ti": ti}, "exec-1", URL)

    # Airflow 3's UI reads an extra link from XCom key "_link_<class name>" (the link's xcom_key).
    link_key = getattr(BlinkExecutionLink(), "xcom_key", f"_link_{BlinkExecutionLink.__name__}")
    assert ti.pushed == {EXECUTION_ID_KEY: "exec-1", EXECUTION_URL_KEY: URL, link_key: URL}
    assert (EXECUTION_ID_KEY, EXECUTION_URL_KEY) == ("execution_id", "execution_url")


@pytest.mark.parametrize(
    "task_class", [BlinkExecutePlaybookOperator, BlinkExecutionSensor], ids=["operator", "sensor"]
)
def test_operator_and_sensor_offer_the_link(task_class):
    assert [type(link) for link in task_class.operator_extra_links] == [BlinkExecutionLink]


def test_the_provider_registers_the_link_by_an_importable_class_path():
    (class_path,) = get_provider_info()["extra-links"]
    module, name = class_path.rsplit(".", 1)

    assert getattr(importlib.import_module(module), name) is BlinkExecutionLink


@pytest.mark.parametrize(
    ("base", "workspace", "playbook", "execution", "expected"),
    [
        (
            "https://app.blinkops.com",
            "ws-1",
            "pb-1",
            "exec-1",
            "https://app.blinkops.com/workspace/ws-1/workflow/pb-1/edit?execution_id=exec-1",
        ),
        (
            "https://acme.app.blinkops.com",
            "ws 1",
            "pb/1",
            "e&x=1",
            "https://acme.app.blinkops.com/workspace/ws%201/workflow/pb%2F1/edit?execution_id=e%26x%3D1",
        ),
        (
            "https://app.blinkops.com",
            "ws-1",
            None,
            "exec-1",
            "https://app.blinkops.com/workspace/ws-1?execution_id=exec-1",
        ),
    ],
    ids=["playbook-editor", "ids-are-quoted", "no-playbook-opens-the-workspace"],
)
def test_execution_url(base, workspace, playbook, execution, expected):
    assert execution_url(base, workspace, playbook, execution) == expected
