"""
Bad input fails at the earliest moment it is known, with a message that names the field and the fix.

One table: each row builds a task (or a condition Blink answers with) and says when it must fail —
``constructor`` (the DAG file does not import) or ``run`` (the task fails; before any call to Blink
when the mistake is in the task's own arguments) — with which exception and which words.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_blink import api, executions
from airflow_provider_blink.compat import AirflowException, AirflowFailException
from airflow_provider_blink.exceptions import (
    BlinkAuthenticationError,
    BlinkConfigurationError,
    BlinkExecutionFailed,
    BlinkExecutionTimeout,
    BlinkNotFoundError,
    BlinkOutputUnavailable,
    BlinkPermissionError,
    BlinkResponseError,
)
from airflow_provider_blink.operators.blink import BlinkExecutePlaybookOperator
from airflow_provider_blink.sensors.blink import BlinkExecutionSensor
from airflow_provider_blink.testing import DEMO_PLAYBOOKS, BlinkEmulator, ScriptedPlaybook

from support.connections import connection_json
from support.dag_runs import dagbag
from support.emulator import API_KEY, TEST_PLAYBOOKS, VIEWER_KEY, WORKSPACE
from support.task_instance import context_for

POLL = 0.1
SEEN_AT = datetime.datetime(2026, 1, 1, 9, 30, tzinfo=datetime.timezone.utc)
#: Small enough for a quick test: the limit is lowered to 1 MiB for the "very large response" row.
HUGE_OUTPUT = {"blob": "x" * (2 * 2**20)}


# -- the world the rows run in ------------------------------------------------------------------


@dataclass
class Blink:
    """The emulator and the connections the rows use."""

    emulator: BlinkEmulator
    monkeypatch: pytest.MonkeyPatch

    def start(self, playbook_id: str) -> str:
        from airflow_provider_blink.hooks.blink import BlinkHook

        return BlinkHook().execute_playbook(playbook_id)


def conn(emulator: BlinkEmulator, **changes: Any) -> str:
    """``blink_default``'s connection JSON with top-level fields or extras changed (``None`` drops one)."""
    value = json.loads(connection_json(emulator))
    for name, new in changes.items():
        target = value if name in ("host", "password") else value["extra"]
        if new is None:
            target.pop(name, None)
        else:
            target[name] = new
    return json.dumps(value)


@pytest.fixture
def blink(monkeypatch: pytest.MonkeyPatch) -> Iterator[Blink]:
    playbooks = [
        *DEMO_PLAYBOOKS,
        *TEST_PLAYBOOKS,
        ScriptedPlaybook(id="frobnicating", workspace_id=WORKSPACE, final_state="Frobnicating"),
        ScriptedPlaybook(id="huge-output", workspace_id=WORKSPACE, output=HUGE_OUTPUT),
    ]
    with BlinkEmulator(
        api_key=API_KEY, workspaces=[WORKSPACE], playbooks=playbooks, viewer_keys={VIEWER_KEY: [WORKSPACE]}
    ) as emu:
        connections = {
            "BLINK_DEFAULT": connection_json(emu),
            "BLINK_WRONG_KEY": conn(emu, password="blink-revoked-key-0000"),
            "BLINK_VIEWER": conn(emu, password=VIEWER_KEY),
            "BLINK_FTP_URL": conn(emu, host="ftp://x"),
            "BLINK_NO_HOST": conn(emu, host="http://"),
            "BLINK_NO_KEY": conn(emu, password=None),
            "BLINK_NO_WORKSPACE": conn(emu, workspace_id=None),
        }
        for conn_id, value in connections.items():
            monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id}", value)
        monkeypatch.setattr(executions, "_unknown_states_seen", set())  # warn afresh about unknown states
        yield Blink(emu, monkeypatch)


# -- how a row builds and runs its task ---------------------------------------------------------


@dataclass(frozen=True)
class Task:
    """
    A Blink task as a DAG file would declare it.

    :param cls: operator or sensor.
    :param kwargs: its arguments.
    :param params: DAG params its templates render from at run time.
    :param setup: prepares Blink before the task is built; returns more arguments (e.g. an execution id).
    """

    cls: type
    kwargs: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)
    setup: Callable[[Blink], dict[str, Any]] | None = None

    def build(self, **more: Any) -> Any:
        from airflow_provider_blink.compat import DAG

        kwargs = {**self.kwargs, **more}
        with DAG(
            "blink_bad_input",
            schedule=None,
            start_date=datetime.datetime(2026, 1, 1),
            render_template_as_native_obj=True,
            user_defined_macros={"seen_at": SEEN_AT},
        ):
            return self.cls(**kwargs)

    def source(self) -> str:
        """The DAG file declaring this task (for the rows whose arguments have a Python ``repr``)."""
        return textwrap.dedent(
            f"""
            import datetime
            from airflow_provider_blink.compat import DAG
            from {self.cls.__module__} import {self.cls.__name__}

            with DAG("blink_bad_input_file", schedule=None, start_date=datetime.datetime(2026, 1, 1)):
                {self.cls.__name__}(**{self.kwargs!r})
            """
        )


def op(**kwargs: Any) -> Task:
    base = {"task_id": "run_playbook", "playbook_id": "quick-ok", "poll_interval": POLL, "deferrable": False}
    return Task(BlinkExecutePlaybookOperator, {**base, **kwargs})


def sensor(**kwargs: Any) -> Task:
    base = {"task_id": "wait_for_execution", "execution_id": "exec-1", "poke_interval": POLL, "timeout": 10}
    return Task(BlinkExecutionSensor, {**base, "deferrable": False, **kwargs})


def run(task: Any, params: dict[str, Any]) -> Any:
    """Render the task's templates and execute it in process, as a worker would."""
    context = context_for(params=params, run_id="manual__bad_input")
    task.render_template_fields(context)
    return task.execute(context)


def with_state(state: str) -> Callable[[Blink], dict[str, Any]]:
    """Setup: an execution that Blink reports in ``state`` (``""``: no state at all)."""

    def setup(blink: Blink) -> dict[str, Any]:
        execution_id = blink.start("slow")
        blink.emulator.finish(execution_id, state)
        return {"execution_id": execution_id}

    return setup


def answers_capped_at_1_mib(blink: Blink) -> dict[str, Any]:
    blink.monkeypatch.setattr(api, "MAX_ANSWER_BYTES", 2**20)
    return {}


def deeply_nested(depth: int = 10_000) -> dict[str, Any]:
    """A dict nested deeper than ``json`` can write (it raises ``RecursionError``)."""
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


# -- the table ----------------------------------------------------------------------------------

CONSTRUCTOR, RUN = "constructor", "run"
NON_EMPTY_PLAYBOOK = "playbook_id must be the playbook's id (a non-empty string)"
JSON_FIX = "must be JSON-serialisable (str, int, float, bool, None, lists and dicts of them)"
CONVERT = "Convert dates, sets and objects to strings or lists first"
POSITIVE = "must be a positive number of seconds"
ERROR_BUDGET = "error_budget must be a number of seconds >= 0 (how long a wait rides out Blink's transient errors; default 300)"
#: Airflow's BaseSensorOperator rejects a negative poke_interval before the sensor sees it.
AIRFLOWS_OWN_CHECK = (AirflowException, ValueError)  # 2.x raises the first, 3.x the second

ROWS: list[tuple[Any, ...]] = [
    # name, task, moment, exception, message fragment (names the field and the fix), requests to Blink
    ("playbook-id-empty", op(playbook_id=""), CONSTRUCTOR, BlinkConfigurationError, NON_EMPTY_PLAYBOOK, 0),
    ("playbook-id-blank", op(playbook_id="  "), CONSTRUCTOR, BlinkConfigurationError, NON_EMPTY_PLAYBOOK, 0),
    ("playbook-id-int", op(playbook_id=42), CONSTRUCTOR, BlinkConfigurationError, f"{NON_EMPTY_PLAYBOOK}, got 42", 0),
    ("playbook-id-none", op(playbook_id=None), CONSTRUCTOR, BlinkConfigurationError, NON_EMPTY_PLAYBOOK, 0),
    ("input-values-set", op(input_values={"ips": {"203.0.113.7"}}), CONSTRUCTOR, BlinkConfigurationError, f"input_values {JSON_FIX}", 0),
    ("input-values-datetime", op(input_values={"since": SEEN_AT}), CONSTRUCTOR, BlinkConfigurationError, CONVERT, 0),
    ("input-values-nan", op(input_values={"score": math.nan}), CONSTRUCTOR, BlinkConfigurationError, f"input_values {JSON_FIX}", 0),
    ("input-values-too-deep", op(input_values=deeply_nested()), CONSTRUCTOR, BlinkConfigurationError, f"input_values {JSON_FIX}", 0),
    ("input-values-list", op(input_values=["203.0.113.7"]), CONSTRUCTOR, BlinkConfigurationError, "input_values must be a dict, got list", 0),
    ("event-datetime", op(event={"at": SEEN_AT}), CONSTRUCTOR, BlinkConfigurationError, f"event {JSON_FIX}", 0),
    ("event-plain-string", op(event="alert-7"), CONSTRUCTOR, BlinkConfigurationError, "event must be a dict, got str", 0),
    ("callback-bytes", op(callback={"url": "https://x", "body": b"raw"}), CONSTRUCTOR, BlinkConfigurationError, f"callback {JSON_FIX}", 0),
    ("poll-interval-zero", op(poll_interval=0), CONSTRUCTOR, BlinkConfigurationError, f"poll_interval {POSITIVE}, got 0", 0),
    ("poll-interval-negative", op(poll_interval=-5), CONSTRUCTOR, BlinkConfigurationError, f"poll_interval {POSITIVE}, got -5", 0),
    ("poll-interval-string", op(poll_interval="10"), CONSTRUCTOR, BlinkConfigurationError, f"poll_interval {POSITIVE}, got '10'", 0),
    ("sensor-poke-interval-zero", sensor(poke_interval=0), CONSTRUCTOR, BlinkConfigurationError, f"poke_interval {POSITIVE}", 0),
    ("sensor-poke-interval-negative", sensor(poke_interval=-1), CONSTRUCTOR, AIRFLOWS_OWN_CHECK, "poke_interval", 0),
    ("timeout-zero", op(timeout=0), CONSTRUCTOR, BlinkConfigurationError, f"timeout {POSITIVE} or None", 0),
    ("error-budget-negative", op(error_budget=-1), CONSTRUCTOR, BlinkConfigurationError, f"{ERROR_BUDGET}, got -1", 0),
    ("error-budget-string", op(error_budget="300"), CONSTRUCTOR, BlinkConfigurationError, f"{ERROR_BUDGET}, got '300'", 0),
    ("error-budget-none", op(error_budget=None), CONSTRUCTOR, BlinkConfigurationError, f"{ERROR_BUDGET}, got None", 0),
    ("sensor-error-budget-nan", sensor(error_budget=math.nan), CONSTRUCTOR, BlinkConfigurationError, f"{ERROR_BUDGET}, got nan", 0),
    ("sensor-error-budget-bool", sensor(error_budget=True), CONSTRUCTOR, BlinkConfigurationError, f"{ERROR_BUDGET}, got True", 0),
    ("run-sync-with-deferrable", op(run_sync=True, deferrable=True), CONSTRUCTOR, BlinkConfigurationError, "run_sync=True makes one blocking request and cannot defer; drop deferrable=True", 0),
    # Known only at run time (templates, XComArgs): checked before any call to Blink.
    ("playbook-id-template-renders-empty", Task(BlinkExecutePlaybookOperator, op(playbook_id="{{ params.playbook }}").kwargs, {"playbook": ""}), RUN, BlinkConfigurationError, NON_EMPTY_PLAYBOOK, 0),
    ("input-values-template-renders-datetime", op(input_values="{{ {'since': seen_at} }}"), RUN, BlinkConfigurationError, f"input_values {JSON_FIX}", 0),
    ("event-template-renders-list", op(event="{{ ['alert', 7] }}"), RUN, BlinkConfigurationError, "event must be a dict, got list", 0),
    ("sensor-execution-id-template-renders-empty", Task(BlinkExecutionSensor, sensor(execution_id="{{ params.execution }}").kwargs, {"execution": ""}), RUN, BlinkConfigurationError, "execution_id must be a non-empty string, got ''; check the XCom or template that supplies it", 0),
    # The connection: read when the task runs.
    ("blink-url-not-http", op(blink_conn_id="blink_ftp_url"), RUN, BlinkConfigurationError, "Blink URL 'ftp://x' is not a valid http(s) URL; set 'Blink URL' to e.g. https://app.blinkops.com", 0),
    ("blink-url-without-host", op(blink_conn_id="blink_no_host"), RUN, BlinkConfigurationError, "Blink URL 'http://' is not a valid http(s) URL; set 'Blink URL'", 0),
    ("connection-without-key", op(blink_conn_id="blink_no_key"), RUN, BlinkConfigurationError, "has no Blink API key: put it in the 'API Key' (password) field", 0),
    ("connection-without-workspace", op(blink_conn_id="blink_no_workspace"), RUN, BlinkConfigurationError, "No Blink workspace: set 'Workspace ID' on connection 'blink_no_workspace'", 0),
    # What Blink answers: 4xx fail at once (one request, no retry).
    ("unknown-workspace-404", op(workspace_id="nope"), RUN, BlinkNotFoundError, ("HTTP 404, message='workspace not found'", "Check the workspace_id"), 1),
    ("invalid-key-401", op(blink_conn_id="blink_wrong_key"), RUN, BlinkAuthenticationError, ("HTTP 401", "Set a valid API key in the connection's 'API Key' (password) field"), 1),
    ("no-role-403", op(blink_conn_id="blink_viewer"), RUN, BlinkPermissionError, ("HTTP 403", "Give the API key's user a role that may run playbooks (not Viewer)"), 1),
    ("unknown-playbook-404", op(playbook_id="no-such-playbook"), RUN, BlinkNotFoundError, ("HTTP 404, message='playbook not found'", "Check the workspace_id and playbook_id"), 1),
    # What Blink reports about the execution.
    ("execution-without-state", Task(BlinkExecutionSensor, {**sensor().kwargs, "execution_id": None}, setup=with_state("")), RUN, BlinkResponseError, "without a state (neither 'state_ui' nor 'state' is a non-empty string)", 1),
    ("unexpected-state-runs-into-timeout", op(playbook_id="frobnicating", timeout=1), RUN, BlinkExecutionTimeout, ("did not finish before the deadline;", "(timeout=1s)"), None),
    ("unexpected-state-declared-failed", op(playbook_id="frobnicating", failure_states=["Frobnicating"]), RUN, BlinkExecutionFailed, "ended in state 'Frobnicating'", None),
    ("very-large-response", Task(BlinkExecutePlaybookOperator, op(playbook_id="huge-output", require_output=True).kwargs, setup=answers_capped_at_1_mib), RUN, BlinkOutputUnavailable, "is larger than 1 MiB; not reading it. Narrow the query (limit, select) or check the playbook's output size", None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("task", "moment", "error", "message", "requests"),
    [row[1:] for row in ROWS],
    ids=[row[0] for row in ROWS],
)
def test_bad_input_fails_at_its_moment_saying_what_to_fix(blink, task, moment, error, message, requests):
    more = task.setup(blink) if task.setup else {}
    requests_before = len(blink.emulator.requests)

    if moment == CONSTRUCTOR:
        with pytest.raises(error) as raised:
            task.build(**more)
    else:
        built = task.build(**more)  # nothing wrong is known yet
        with pytest.raises(error) as raised:
            run(built, task.params)

    fragments = (message,) if isinstance(message, str) else message
    assert [fragment for fragment in fragments if fragment not in str(raised.value)] == []
    if requests is not None:
        assert len(blink.emulator.requests) - requests_before == requests, "4xx are not retried"


@pytest.mark.parametrize(
    "error", [BlinkConfigurationError, BlinkNotFoundError, BlinkAuthenticationError, BlinkPermissionError]
)
def test_these_fail_the_task_without_spending_its_retries(error):
    assert issubclass(error, AirflowFailException)


def test_an_unknown_state_is_waited_on_and_warned_about_once(blink, caplog):
    caplog.set_level(logging.WARNING, logger="airflow_provider_blink.executions")

    with pytest.raises(BlinkExecutionTimeout):
        run(op(playbook_id="frobnicating", timeout=1).build(), {})

    reads = [r for r in blink.emulator.requests if r.method == "GET" and r.path.count("/") == 6]
    assert len(reads) >= 5, "polled the whole second"
    warnings = [r.getMessage() for r in caplog.records if "'frobnicating'" in r.getMessage()]
    assert len(warnings) == 1
    assert "treating it as still running. Pass success_states/failure_states if it is final" in warnings[0]
    (execution,) = blink.emulator.executions
    assert execution["state_ui"] == "Frobnicating", "it had finished, in Blink's eyes: nothing to cancel"


# -- a DAG file with the mistake does not import ------------------------------------------------

DAG_FILE_ROWS = [
    "playbook-id-empty",
    "input-values-set",
    "input-values-datetime",
    "poll-interval-zero",
    "run-sync-with-deferrable",
    "sensor-poke-interval-zero",
]


@pytest.mark.parametrize("name", DAG_FILE_ROWS)
def test_a_dag_file_with_the_mistake_reports_an_import_error_naming_it(tmp_path, name):
    _, task, moment, error, message, _ = next(row for row in ROWS if row[0] == name)
    assert moment == CONSTRUCTOR
    (tmp_path / "blink_bad_input_dag.py").write_text(task.source())

    bag = dagbag(tmp_path)

    assert bag.dag_ids == []
    (import_error,) = bag.import_errors.values()
    assert error.__name__ in import_error
    assert message in import_error


def test_the_same_dag_file_without_the_mistake_imports(tmp_path):
    (tmp_path / "blink_bad_input_dag.py").write_text(op(input_values={"ip": "{{ params.ip }}"}).source())

    bag = dagbag(tmp_path)

    assert bag.import_errors == {}
    assert bag.dag_ids == ["blink_bad_input_file"]


# -- any value for a JSON field: accepted if JSON, else BlinkConfigurationError -----------------

JSON_LEAVES = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
)
OTHER_LEAVES = (
    st.floats().filter(lambda f: not math.isfinite(f))
    | st.binary(max_size=4)
    | st.sets(st.integers(), max_size=2)
    | st.datetimes()
    | st.builds(object)
    | st.builds(deeply_nested)
)
VALUES = st.recursive(
    JSON_LEAVES | OTHER_LEAVES,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=5) | st.integers() | st.tuples(st.integers()), inner, max_size=3)
    ),
    max_leaves=8,
)


def is_json_object(value: Any) -> bool:
    """The contract: a dict that ``json.dumps`` writes as standard JSON (no NaN/Infinity)."""
    if not isinstance(value, dict):
        return False
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return False
    return True


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(["input_values", "event", "callback"]),
    value=VALUES | st.dictionaries(st.text(max_size=5), VALUES, max_size=4),
)
def test_any_value_is_accepted_as_json_or_refused_with_a_configuration_error(name, value):
    def build() -> BlinkExecutePlaybookOperator:
        return BlinkExecutePlaybookOperator(task_id="run_playbook", playbook_id="quick-ok", **{name: value})

    if value is None or is_json_object(value) or (isinstance(value, str) and "{{" in value):
        build()  # None: not sent; a template: checked once rendered
    else:
        with pytest.raises(BlinkConfigurationError, match=name):
            build()
