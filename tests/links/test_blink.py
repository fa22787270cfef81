"""The "Blink" extra link: what the task publishes for it and the URL it points at.

End to end (a real run through ``dag.test()``, the link resolved as the web UI resolves it, on
Airflow 2 and 3) is covered in ``tests/test_example_dags.py``.
"""

from __future__ import annotations

import importlib
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_blink import get_provider_info
from airflow_provider_blink.compat import AIRFLOW_V_3_0_PLUS, DAG, XCom
from airflow_provider_blink.executions import execution_url
from airflow_provider_blink.links.blink import (
    EXECUTION_ID_KEY,
    EXECUTION_URL_KEY,
    BlinkExecutionLink,
    no_execution_yet,
    push_execution,
)
from airflow_provider_blink.operators.blink import BlinkExecutePlaybookOperator
from airflow_provider_blink.sensors.blink import BlinkExecutionSensor

from support.dag_runs import extra_link, register, run
from support.task_instance import RecordingTI

URL = "https://app.blinkops.com/workspace/ws-1/workflow/pb-1/edit?execution_id=exec-1"
TI_KEY: Any = None  # the tests read no real XCom


def test_the_link_is_named_blink():
    assert BlinkExecutionLink().name == "Blink"


def test_push_execution_publishes_the_id_the_url_and_on_airflow_3_the_links_own_key():
    ti = RecordingTI()

    push_execution(SimpleNamespace(), {"ti": ti}, "exec-1", URL)

    # Airflow 3's UI reads an extra link from its xcom_key; Airflow 2's webserver calls get_link.
    link_key = {BlinkExecutionLink().xcom_key: URL} if AIRFLOW_V_3_0_PLUS else {}
    assert ti.pushed == {EXECUTION_ID_KEY: "exec-1", EXECUTION_URL_KEY: URL, **link_key}
    assert (EXECUTION_ID_KEY, EXECUTION_URL_KEY) == ("execution_id", "execution_url")


@pytest.fixture
def xcom_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The keys the link reads from XCom (each read answers the URL)."""
    reads: list[str] = []

    def get_value(*, key: str, ti_key: Any) -> str:
        reads.append(key)
        return URL

    monkeypatch.setattr(XCom, "get_value", get_value)
    return reads


def test_a_task_asked_for_its_link_answers_with_what_it_published_without_reading_xcom(xcom_reads):
    task = SimpleNamespace()
    no_execution_yet(task)

    assert BlinkExecutionLink().get_link(task, ti_key=TI_KEY) == ""  # e.g. its start failed
    push_execution(task, {"ti": RecordingTI()}, "exec-1", URL)
    assert BlinkExecutionLink().get_link(task, ti_key=TI_KEY) == URL
    assert xcom_reads == []


def test_the_link_of_a_task_that_did_not_run_here_is_read_from_xcom(xcom_reads):
    # Airflow 2.11's webserver; a task resumed from a deferral published before it deferred
    assert BlinkExecutionLink().get_link(SimpleNamespace(), ti_key=TI_KEY) == URL
    assert xcom_reads == [EXECUTION_URL_KEY]


@pytest.mark.skipif(
    not AIRFLOW_V_3_0_PLUS,
    reason="Airflow 3's task runner asks for the link as a task ends; Airflow 2 only in the webserver",
)
def test_a_failed_start_logs_no_xcom_error(airflow_db, emulator, capfd, caplog):
    with DAG("blink_link_failed_start", schedule=None, start_date=datetime(2024, 1, 1), catchup=False) as dag:
        BlinkExecutePlaybookOperator(task_id="start", playbook_id="no-such-playbook", retries=0)
    register(dag)

    dag_run = run(dag)

    assert dag_run.state == "failed"
    out, err = capfd.readouterr()
    logged = caplog.text + out + err  # Airflow 3 logs through structlog to stdout, Airflow 2 to caplog
    assert "no-such-playbook" in logged, "the start failed, and said so"
    assert "XCom not found" not in logged
    assert extra_link(dag, dag_run, "start") in (None, "")


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
