"""
The API key never leaks: not into task logs, XCom, rendered fields, triggers, exceptions or reprs.

One DAG run (``dag.test()`` against the emulator) drives the operator and the sensor through success,
failure, timeout and error, in process and deferred; then everything Airflow kept or printed about
that run is searched for :data:`support.emulator.API_KEY`. Each collector must also have collected what it
should (execution ids in the logs, ``execution_url`` in XCom ...), so the search cannot pass on
empty input. Blink failing *while* a task is deferred is staged by changing the trigger the task
defers with (its connection or workspace), as a Blink outage or a deleted workspace would.

Where ``dag.test()`` leaves task logs: Airflow 2.11 adds a stdout handler to each task's logger
(stdlib logging); Airflow 3 runs the task in process and structlog writes to stdout. Neither
writes files under ``$AIRFLOW_HOME/logs`` (they are searched all the same), and Airflow 3 does not
mask stdout in ``dag.test()``: only the provider never logging the key keeps it out. Then: the key is registered with Airflow's secrets masker, and a Blink (or a proxy in
front of it) that echoes the key in an error never gets it into the provider's exceptions or logs.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
import traceback
import uuid
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_blink.compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_3_PLUS
from airflow_provider_blink.exceptions import (
    BlinkAuthenticationError,
    BlinkError,
    BlinkResponseError,
    BlinkServerError,
)
from airflow_provider_blink.hooks.blink import BlinkHook
from airflow_provider_blink.operators.blink import BlinkExecutePlaybookOperator
from airflow_provider_blink.sensors.blink import BlinkExecutionSensor
from airflow_provider_blink.testing import BlinkEmulator
from airflow_provider_blink.triggers.blink import BlinkExecutionTrigger

from support.connections import connection_json
from support.dag_runs import on_defer, register
from support.emulator import API_KEY, WORKSPACE, finished_once_read
from support.network import closed_port

DAG_ID = "blink_api_key_never_leaks"
#: What the sensors watch whose execution Blink does not know (or cannot be asked about).
NO_SUCH_EXECUTION = "no-such-execution"
POLL = 0.1
BLINK_TASKS = (BlinkExecutePlaybookOperator, BlinkExecutionSensor)
#: Playbooks that run until the test finishes them (once a sensor has polled twice), so sensors defer.
HELD = {
    "held-ok": ("Completed", None),
    "held-fail": ("Failed", {"message": "step 'lookup' failed: upstream returned 500"}),
}


def conn_json(host: str) -> str:
    """A connection to ``host`` that gives up quickly: one retry, a one-second timeout."""
    return connection_json(host, retry_limit=1, timeout=1)


@pytest.fixture
def broken_connection(monkeypatch: pytest.MonkeyPatch) -> str:
    """``blink_broken``: the real API key, but a Blink URL where nothing answers."""
    monkeypatch.setenv("AIRFLOW_CONN_BLINK_BROKEN", conn_json(f"http://127.0.0.1:{closed_port()}"))
    return "blink_broken"


# -- collectors -----------------------------------------------------------------------------------


class RawRecords(logging.Handler):
    """Every log record's message, unmasked: the key must not even reach the logging system."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + "".join(traceback.format_exception(*record.exc_info))
        self.texts.append(text)


@pytest.fixture
def raw_records() -> Iterator[RawRecords]:
    handler = RawRecords()
    loggers = [logging.getLogger(name) for name in ("", "airflow.task", "airflow_provider_blink")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield handler
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


class Deferrals:
    """Records the trigger of every Blink task that defers; can make Blink fail while it waits."""

    def __init__(self) -> None:
        self.triggers: dict[str, BlinkExecutionTrigger] = {}
        #: task id -> trigger attributes to change before deferring (Blink fails during the wait).
        self.while_deferred: dict[str, dict[str, Any]] = {}


@pytest.fixture
def deferrals(monkeypatch: pytest.MonkeyPatch) -> Deferrals:
    seen = Deferrals()

    def record(task: Any, trigger: BlinkExecutionTrigger) -> None:
        for name, value in seen.while_deferred.get(task.task_id, {}).items():
            setattr(trigger, name, value)
        seen.triggers[task.task_id] = trigger

    on_defer(monkeypatch, BLINK_TASKS, record)
    return seen


@pytest.fixture
def held_executions(emulator: BlinkEmulator) -> Iterator[None]:
    """Finish each ``held-*`` execution once it has been read twice: its sensor is surely waiting."""
    with finished_once_read(emulator, HELD):
        yield


def rows_of_the_run(
    dag_id: str, run_id: str, trigger_ids_before: int, execution_ids: list[str]
) -> dict[str, list[str]]:
    """
    Every row the metadata database holds about this run, as text, by table.

    Tables with ``dag_id`` (and ``run_id``) are filtered to this DAG (and run): XCom, rendered task
    instance fields, task instances (``next_kwargs`` carry the trigger's event), the audit log, the
    serialized DAG ... The ``trigger`` table is read through Airflow's model, which decrypts the
    kwargs, for the triggers created during the run that watch its executions (other tests may
    share the database).
    """
    from airflow import settings
    from airflow.models.trigger import Trigger
    from airflow.utils.session import create_session
    from sqlalchemy import inspect, select, text

    found: dict[str, list[str]] = {}
    inspector = inspect(settings.engine)
    with create_session() as session:
        for table in sorted(inspector.get_table_names()):
            columns = {column["name"] for column in inspector.get_columns(table)}
            if "dag_id" not in columns:
                continue
            where = "dag_id = :dag_id" + (" AND run_id = :run_id" if "run_id" in columns else "")
            rows = session.execute(
                text(f"SELECT * FROM {table} WHERE {where}"),  # names from the schema
                {"dag_id": dag_id, "run_id": run_id},
            ).all()
            if rows:
                found[table] = [_text(tuple(row)) for row in rows]
        triggers = session.scalars(select(Trigger).where(Trigger.id > trigger_ids_before)).all()
        found["trigger (kwargs decrypted)"] = [
            f"{t.classpath} {t.kwargs!r}" for t in triggers if t.kwargs.get("execution_id") in execution_ids
        ]
    return found


def max_trigger_id() -> int:
    from airflow.models.trigger import Trigger
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    with create_session() as session:
        return session.scalar(select(func.max(Trigger.id))) or 0


def _text(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, tuple | list):
        return " | ".join(_text(item) for item in value)
    return str(value)


def task_log_files(dag_id: str, since: float) -> list[Path]:
    """Task log files of ``dag_id`` written since ``since``, under ``$AIRFLOW_HOME/logs``."""
    logs = Path(os.environ["AIRFLOW_HOME"]) / "logs"
    return [
        path
        for path in logs.rglob("*")
        if path.is_file() and f"dag_id={dag_id}" in str(path) and path.stat().st_mtime >= since
    ]


#: Airflow's own leak, in a test-only path: on 3.0-3.2, ``dag.test()``'s in-process supervisor logs every
#: request of the task at debug level, a ``MaskSecret`` request's secret included (for any connection's
#: password, whatever the provider does). A worker's supervisor logs that request "(body omitted)"; 3.3
#: does not print it. Only this exact line is excused, and only on those lines.
AIRFLOW_TEST_MODE_LEAK = re.compile(r"Sending request +msg=MaskSecret\(value=[^\n]*")


def leaks(scanned: dict[str, list[str]]) -> dict[str, list[str]]:
    """Where the key occurs: ``{collector: [texts holding it]}``."""
    if AIRFLOW_V_3_0_PLUS and not AIRFLOW_V_3_3_PLUS:
        scanned = {
            where: [AIRFLOW_TEST_MODE_LEAK.sub("", t) for t in texts] for where, texts in scanned.items()
        }
    return {where: found for where, texts in scanned.items() if (found := [t for t in texts if API_KEY in t])}


def exception_texts(exc: BaseException | None) -> list[str]:
    """``str`` and ``repr`` of an exception and everything chained to it, and its formatted traceback."""
    texts = ["".join(traceback.format_exception(exc))] if exc is not None else []
    while exc is not None and len(texts) < 30:
        texts += [str(exc), repr(exc)]
        exc = exc.__cause__ or exc.__context__
    return texts


# -- the DAG ------------------------------------------------------------------------------------


def leak_dag(failures: dict[str, list[str]], broken_conn_id: str) -> Any:
    """Operator and sensor on every path, in process and deferred; a failing task stops no other."""
    from airflow_provider_blink.compat import DAG

    def record_failure(context: Any) -> None:
        failures[context["ti"].task_id] = exception_texts(context.get("exception"))

    def op(task_id: str, playbook_id: str, **kwargs: Any) -> BlinkExecutePlaybookOperator:
        return BlinkExecutePlaybookOperator(
            task_id=task_id,
            playbook_id=playbook_id,
            input_values={"task": task_id, "run": "{{ run_id }}"},
            poll_interval=POLL,
            **kwargs,
        )

    with DAG(
        DAG_ID,
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        default_args={"on_failure_callback": record_failure, "retries": 0},
    ) as dag:
        for deferrable, mode in ((True, "deferred"), (False, "in_process")):
            # held-*: finished only once watched, so the deferrable ones surely defer on a busy machine.
            op(f"op_success_{mode}", "held-ok", deferrable=deferrable)
            op(f"op_failure_{mode}", "held-fail", deferrable=deferrable)
            op(f"op_timeout_{mode}", "slow", deferrable=deferrable, timeout=0.5)
            op(f"op_playbook_not_found_{mode}", "no-such-playbook", deferrable=deferrable)
            op(
                f"op_blink_unreachable_{mode}",
                "quick-ok",
                deferrable=deferrable,
                blink_conn_id=broken_conn_id,
            )
        op("op_blink_down_while_deferred", "slow", deferrable=True, timeout=1)
        op("op_workspace_gone_while_deferred", "slow", deferrable=True)
        op("op_run_sync_success", "quick-ok", run_sync=True)
        op("op_run_sync_failure", "quick-fail", run_sync=True)

        sensors: dict[str, tuple[str | None, dict[str, Any]]] = {
            "success": ("held-ok", {}),
            "failure": ("held-fail", {}),
            "timeout": ("slow", {"timeout": 0.5}),
            "execution_not_found": (None, {}),
            # Blink unreachable is transient: the sensor rides it out for its error budget, then fails.
            "blink_unreachable": (None, {"blink_conn_id": broken_conn_id, "error_budget": 0.5}),
        }
        for deferrable, mode in ((True, "deferred"), (False, "poke")):
            for path, (playbook_id, kwargs) in sensors.items():
                task_id = f"sensor_{path}_{mode}"
                execution_id = NO_SUCH_EXECUTION
                if playbook_id:
                    start = op(
                        f"start_for_{task_id}", playbook_id, wait_for_completion=False, deferrable=False
                    )
                    execution_id = f"{{{{ ti.xcom_pull(task_ids='{start.task_id}', key='execution_id') }}}}"
                watch = BlinkExecutionSensor(
                    task_id=task_id,
                    execution_id=execution_id,
                    poke_interval=POLL,
                    deferrable=deferrable,
                    **kwargs,
                )
                if playbook_id:
                    start >> watch
        for path in ("blink_down_while_deferred", "workspace_gone_while_deferred"):
            start = op(f"start_for_sensor_{path}", "slow", wait_for_completion=False, deferrable=False)
            start >> BlinkExecutionSensor(
                task_id=f"sensor_{path}",
                execution_id=f"{{{{ ti.xcom_pull(task_ids='{start.task_id}', key='execution_id') }}}}",
                poke_interval=POLL,
                deferrable=True,
                timeout=1,
            )
    return dag


def expected_state(task_id: str) -> str:
    return "success" if task_id.startswith("start_for_") or "success" in task_id else "failed"


#: The tasks that get as far as deferring (the others fail before, or wait in process).
DEFERRING = {
    "op_success_deferred",
    "op_failure_deferred",
    "op_timeout_deferred",
    "op_blink_down_while_deferred",
    "op_workspace_gone_while_deferred",
    "sensor_success_deferred",
    "sensor_failure_deferred",
    "sensor_timeout_deferred",
    "sensor_blink_unreachable_deferred",  # its first read fails transiently: it defers, riding it out
    "sensor_blink_down_while_deferred",
    "sensor_workspace_gone_while_deferred",
}


def test_the_api_key_appears_nowhere_airflow_keeps_or_prints(
    airflow_db, emulator, held_executions, broken_connection, deferrals, raw_records, caplog, capfd
):
    caplog.set_level(logging.DEBUG, logger="airflow_provider_blink")
    failures: dict[str, list[str]] = {}
    dag = leak_dag(failures, broken_connection)
    for task_id in ("op_blink_down_while_deferred", "sensor_blink_down_while_deferred"):
        deferrals.while_deferred[task_id] = {"blink_conn_id": broken_connection}
    for task_id in ("op_workspace_gone_while_deferred", "sensor_workspace_gone_while_deferred"):
        deferrals.while_deferred[task_id] = {"workspace_id": "vanished-workspace"}
    register(dag)
    started, trigger_ids_before = time.time(), max_trigger_id()

    dag_run = dag.test()

    # The run went down every path it was meant to.
    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    assert states == {task_id: expected_state(task_id) for task_id in dag.task_ids}
    assert set(failures) == {task_id for task_id, state in states.items() if state == "failed"}
    assert set(deferrals.triggers) == DEFERRING
    cancelled = {e["id"] for e in emulator.executions if e["state_ui"] == "Cancelled"}
    assert len(cancelled) == 3, "each operator timeout cancelled its execution"

    # Everything Airflow kept or printed about it.
    out, err = capfd.readouterr()
    log_files = task_log_files(DAG_ID, started)
    hook = BlinkHook()
    scanned: dict[str, list[str]] = {
        "stdout and stderr": [out, err],
        "caplog": [caplog.text],
        "log records, unmasked": raw_records.texts,
        "task log files": [path.read_text(errors="replace") for path in log_files],
        "exceptions of failed tasks": [text for texts in failures.values() for text in texts],
        "triggers built: serialize() and repr()": [
            json.dumps(trigger.serialize()) + repr(trigger) for trigger in deferrals.triggers.values()
        ],
        "hooks and their config: repr()": [
            repr(hook),
            repr(hook.config),
            repr(BlinkHook(broken_connection)),
            repr(BlinkHook(broken_connection).config),
        ],
        "emulator's request log": [repr(request) for request in emulator.requests],
        **rows_of_the_run(
            dag_run.dag_id,
            dag_run.run_id,
            trigger_ids_before,
            [e["id"] for e in emulator.executions] + [NO_SUCH_EXECUTION],
        ),
    }
    print(  # shows what was searched (pytest -s)
        "\n".join(
            f"scanned {where}: {len(texts)} items, {sum(map(len, texts))} chars"
            for where, texts in scanned.items()
        )
        + f"\ntask log files: {[str(p) for p in log_files]}"
    )

    # The collectors collected: the search cannot pass on empty input.
    logs = "\n".join(scanned["stdout and stderr"] + scanned["caplog"] + scanned["log records, unmasked"])
    execution_ids = [e["id"] for e in emulator.executions]
    logged = [e["id"] for e in emulator.executions if not e["inputs"]["task"].startswith("op_run_sync")]
    assert len(logged) == len(execution_ids) - 2
    assert all(execution_id in logs for execution_id in logged)
    assert "will try again" in logs, "the trigger logged the unreachable Blink"
    assert any("execution_url" in row for row in scanned["xcom"])
    assert any(any(e in row for e in execution_ids) for row in scanned["rendered_task_instance_fields"])
    assert len(scanned["task_instance"]) == len(dag.task_ids)
    triggers_stored = len(DEFERRING) if AIRFLOW_V_3_0_PLUS else 0  # 2.x: run inline, not stored
    assert len(scanned["trigger (kwargs decrypted)"]) == triggers_stored
    assert any("step 'lookup' failed" in text for text in scanned["exceptions of failed tasks"])
    assert any("vanished-workspace" in text for text in scanned["exceptions of failed tasks"])
    assert any(request.headers.get("BLINK-API-KEY") == "***" for request in emulator.requests)

    assert leaks(scanned) == {}


# -- the secrets masker ---------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["sync", "async"])
async def test_reading_the_connection_registers_the_key_with_the_secrets_masker(monkeypatch, how):
    from airflow_provider_blink.compat import redact

    key = f"blink-masker-key-{uuid.uuid4().hex}"  # new: the masker is process-wide
    monkeypatch.setenv("AIRFLOW_CONN_BLINK_MASKED", conn_json("http://127.0.0.1:9").replace(API_KEY, key))
    line = f"request headers: {{'BLINK-API-KEY': '{key}'}}"
    assert redact(line) == line, "not masked before the hook read the connection"

    config = (
        BlinkHook("blink_masked").config if how == "sync" else await BlinkHook("blink_masked").aget_config()
    )

    assert config.api_key == key
    assert redact(line) == "request headers: {'BLINK-API-KEY': '***'}"
    assert key not in repr(config)


# -- a Blink (or a proxy) that echoes the key -----------------------------------------------------


class EchoingBlink(BaseHTTPRequestHandler):
    """Answers every request with an error that quotes the ``BLINK-API-KEY`` header it received."""

    answers: dict[str, tuple[int, str, str]] = {
        # path segment: (status, content type, body with {key})
        "wrapper": (
            401,
            "application/json",
            '{{"status": 401, "message": "invalid API key {key}", "details": "BLINK-API-KEY: {key}", '
            '"identifier": "err-{key}", "data": {{"echo": "{key}"}}}}',
        ),
        "wrapper_5xx": (500, "application/json", '{{"message": "upstream said: {key}", "details": "{key}"}}'),
        "proxy_html": (
            502,
            "text/html",
            "<html><body>Bad gateway; your headers: BLINK-API-KEY={key}</body></html>",
        ),
        "not_json": (200, "text/plain", "debug echo: BLINK-API-KEY={key}"),
    }

    def do_GET(self) -> None:
        status, content_type, template = self.answers[self.path.rsplit("/", 1)[-1]]
        body = template.format(key=self.headers.get("BLINK-API-KEY", "")).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def echoing_blink(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoingBlink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("AIRFLOW_CONN_BLINK_ECHO", conn_json(f"http://127.0.0.1:{server.server_address[1]}"))
    yield "blink_echo"
    server.shutdown()
    server.server_close()
    thread.join(5)


ECHOES = pytest.mark.parametrize(
    ("mode", "error"),
    [
        ("wrapper", BlinkAuthenticationError),
        ("wrapper_5xx", BlinkServerError),
        ("proxy_html", BlinkServerError),
        ("not_json", BlinkResponseError),
    ],
    ids=["error-wrapper-401", "error-wrapper-500-retried", "proxy-html-502-retried", "not-json-200"],
)


def assert_scrubbed(
    exc: BlinkError, mode: str, records: RawRecords, capfd: pytest.CaptureFixture[str]
) -> None:
    """The key is nowhere in the exception, its chain, its fields, or the logs (retry warnings included)."""
    logs = [
        *capfd.readouterr(),
        *records.texts,
    ]  # Airflow 3 logs through structlog to stdout, 2 through logging
    assert "***" in str(exc), str(exc)
    assert leaks({"exception and its chain": exception_texts(exc), "logs": logs}) == {}
    assert [name for name in ("message", "details", "identifier") if API_KEY in getattr(exc, name, "")] == []
    if mode in RETRIED:
        assert "retrying" in "".join(logs), "the retry was logged (so the logs were searched)"


RETRIED = {"wrapper_5xx", "proxy_html"}


@ECHOES
def test_an_error_echoing_the_key_is_scrubbed_sync(echoing_blink, raw_records, capfd, mode, error):
    with pytest.raises(error) as info:
        BlinkHook(echoing_blink).get_execution(mode)

    assert_scrubbed(info.value, mode, raw_records, capfd)


@ECHOES
async def test_an_error_echoing_the_key_is_scrubbed_async(echoing_blink, raw_records, capfd, mode, error):
    async with BlinkHook(echoing_blink).async_client() as client:
        with pytest.raises(error) as info:
            await client.get_execution(mode)

    assert_scrubbed(info.value, mode, raw_records, capfd)


def test_the_emulators_error_answers_do_not_echo_the_key(emulator):
    api = f"{emulator.url}/api/v1/workspace/{WORKSPACE}"
    headers = {"BLINK-API-KEY": API_KEY}
    answers = [
        requests.post(f"{api}/playbooks/quick-ok/execute", headers=headers, data="[not json"),
        requests.post(f"{api}/playbooks/quick-ok/execute", headers=headers, json={"input_values": [API_KEY]}),
        requests.post(f"{api}/playbooks/quick-ok/execute?run_sync=maybe", headers=headers, json={}),
        requests.get(f"{api}/executions", headers=headers, params={"q": "{not rql"}),
        requests.get(f"{api}/executions/no-such-execution", headers=headers),
        requests.get(f"{emulator.url}/api/v1/nowhere", headers=headers),
        requests.get(f"{api}/executions", headers={"BLINK-API-KEY": f"{API_KEY}-revoked"}),
    ]

    assert [answer.status_code for answer in answers] == [400, 400, 400, 400, 404, 404, 401]
    assert [answer.text for answer in answers if API_KEY in answer.text] == []
    assert all(request.headers["BLINK-API-KEY"] == "***" for request in emulator.requests)
    assert [repr(request) for request in emulator.requests if API_KEY in repr(request)] == [
        repr(emulator.requests[1])
    ], "only the body that carries the key on purpose holds it"
