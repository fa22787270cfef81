"""The ``blink`` connection: how each field is read, what a wrong one says, and how the form looks."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys

import certifi
import pytest

import airflow_provider_blink
from airflow_provider_blink.compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_2_PLUS, AirflowFailException
from airflow_provider_blink.exceptions import BlinkConfigurationError
from airflow_provider_blink.hooks.blink import USER_AGENT, BlinkHook
from airflow_provider_blink.hooks.transport import RetryPolicy

from support.connections import connection_json
from support.emulator import API_KEY, WORKSPACE
from support.network import closed_port

HOOK_CLASS = "airflow_provider_blink.hooks.blink.BlinkHook"


def use_connection(monkeypatch, conn_id: str = "blink_test", **fields) -> BlinkHook:
    """Define ``conn_id`` from an ``AIRFLOW_CONN_...`` variable and return a hook on it."""
    fields.setdefault("conn_type", "blink")
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))
    return BlinkHook(conn_id)


URLS = [
    ({"host": "https://tenant.app.blinkops.com"}, "https://tenant.app.blinkops.com"),
    ({"host": "tenant.app.blinkops.com"}, "https://tenant.app.blinkops.com"),
    ({"host": "https://tenant.app.blinkops.com/"}, "https://tenant.app.blinkops.com"),
    ({"host": "https://app.blinkops.com/api/v1"}, "https://app.blinkops.com"),
    ({"host": "https://app.blinkops.com/api/v1/"}, "https://app.blinkops.com"),
    ({"host": "https://blink.corp.example/blink/api/v1"}, "https://blink.corp.example/blink"),
    ({"host": "  https://app.blinkops.com  "}, "https://app.blinkops.com"),
    ({"host": "blink.local", "port": 8080}, "https://blink.local:8080"),
    ({"host": "localhost", "schema": "http", "port": 8080}, "http://localhost:8080"),
    ({"host": "blink.local", "schema": "ftp"}, "https://blink.local"),
    ({"host": "https://blink.local:8443", "port": 9000}, "https://blink.local:8443"),
    ({"host": "http://127.0.0.1:8765"}, "http://127.0.0.1:8765"),
    ({"host": ""}, "https://app.blinkops.com"),
    ({}, "https://app.blinkops.com"),
]
URL_IDS = [
    "https",
    "no-scheme",
    "trailing-slash",
    "api-prefix",
    "api-prefix-slash",
    "path-prefix-kept",
    "whitespace",
    "port-field",
    "schema-http",
    "schema-not-http",
    "port-in-url-wins",
    "loopback",
    "empty-host",
    "no-host",
]


@pytest.mark.parametrize(("fields", "url"), URLS, ids=URL_IDS)
def test_blink_url(monkeypatch, fields, url):
    hook = use_connection(monkeypatch, password="k", extra={"workspace_id": "ws"}, **fields)

    assert hook.config.url == url
    assert hook.config.api_url == f"{url}/api/v1"


def test_defaults(monkeypatch):
    config = use_connection(monkeypatch, host="app.blinkops.com", password="k").config

    assert config.conn_id == "blink_test"
    assert config.workspace_id is None
    assert config.timeout == 30.0
    assert config.verify is True
    assert config.proxies is None
    assert config.retry == RetryPolicy(max_retries=5, initial_delay=1.0)
    assert config.batch_reads is True
    assert config.headers == {
        "BLINK-API-KEY": "k",
        "Accept": "application/json",
        "Accept-Encoding": "gzip, deflate",
        "User-Agent": USER_AGENT,
    }
    assert USER_AGENT.startswith("airflow-provider-blink/")


EXTRAS = [
    ({"timeout": 12.5}, "timeout", 12.5),
    ({"timeout": "7"}, "timeout", 7.0),
    ({"verify": False}, "verify", False),
    ({"verify": "false"}, "verify", False),
    ({"verify": " False "}, "verify", False),
    ({"verify": "0"}, "verify", False),
    ({"verify": "true"}, "verify", True),
    ({"verify": certifi.where()}, "verify", certifi.where()),
    ({"proxies": {"https": "http://proxy:3128"}}, "proxies", {"https": "http://proxy:3128"}),
    ({"retry_limit": 0}, "retry", RetryPolicy(max_retries=0)),
    ({"retry_limit": "3", "retry_delay": "0.5"}, "retry", RetryPolicy(max_retries=3, initial_delay=0.5)),
    ({"workspace_id": " ws-1 "}, "workspace_id", "ws-1"),
    ({"extra__blink__workspace_id": "ws-legacy"}, "workspace_id", "ws-legacy"),
    ({"batch_reads": False}, "batch_reads", False),
    ({"batch_reads": "off"}, "batch_reads", False),
]


@pytest.mark.parametrize(
    ("extra", "attribute", "value"),
    EXTRAS,
    ids=[
        "timeout-number",
        "timeout-string",
        "verify-false",
        "verify-false-string",
        "verify-false-padded",
        "verify-zero-string",
        "verify-true-string",
        "verify-ca-bundle",
        "proxies",
        "retry-disabled",
        "retry-strings",
        "workspace-stripped",
        "workspace-legacy-prefix",
        "batch-reads-false",
        "batch-reads-off-string",
    ],
)
def test_extras(monkeypatch, extra, attribute, value):
    config = use_connection(monkeypatch, host="app.blinkops.com", password="k", extra=extra).config

    assert getattr(config, attribute) == value


BAD_CONNECTIONS = [
    ({"host": "app.blinkops.com"}, ["has no Blink API key", "'API Key'"]),
    ({"host": "app.blinkops.com", "password": ""}, ["has no Blink API key", "'API Key'"]),
    ({"host": "ftp://blink.example", "password": "k"}, ["Blink URL 'ftp://blink.example'"]),
    ({"host": "http://", "password": "k"}, ["Blink URL 'http://'"]),
    ({"host": "https://exa mple.com:99999", "password": "k"}, ["Blink URL", "Port out of range"]),
    ({"host": "https://exa mple.com", "password": "k"}, ["Blink URL 'https://exa mple.com'"]),
    ({"host": "https://app.blinkops.com?x=1", "password": "k"}, ["Blink URL"]),
    ({"host": "a.com", "password": "k", "extra": {"timeout": "soon"}}, ["'timeout'", "'soon'"]),
    ({"host": "a.com", "password": "k", "extra": {"timeout": 0}}, ["'timeout'", ">= 0.001"]),
    ({"host": "a.com", "password": "k", "extra": {"timeout": -5}}, ["'timeout'"]),
    ({"host": "a.com", "password": "k", "extra": {"timeout": None}}, ["'timeout'"]),
    ({"host": "a.com", "password": "k", "extra": {"retry_limit": -1}}, ["'retry_limit'"]),
    ({"host": "a.com", "password": "k", "extra": {"retry_delay": "x"}}, ["'retry_delay'"]),
    ({"host": "a.com", "password": "k", "extra": {"proxies": "http://p:3128"}}, ["'proxies'"]),
    (
        {"host": "a.com", "password": "k", "extra": {"batch_reads": "sometimes"}},
        ["'batch_reads'", "true or false"],
    ),
]


@pytest.mark.parametrize(
    ("fields", "fragments"),
    BAD_CONNECTIONS,
    ids=[
        "no-password",
        "empty-password",
        "ftp",
        "scheme-only",
        "port-out-of-range",
        "space-in-host",
        "query",
        "timeout-text",
        "timeout-zero",
        "timeout-negative",
        "timeout-null",
        "retry-limit-negative",
        "retry-delay-text",
        "proxies-string",
        "batch-reads-text",
    ],
)
def test_bad_connection_says_what_to_fix(monkeypatch, fields, fragments):
    hook = use_connection(monkeypatch, "blink_bad", **fields)

    with pytest.raises(BlinkConfigurationError) as info:
        hook.config  # noqa: B018 -- reading the connection is the action under test

    assert isinstance(info.value, AirflowFailException)
    message = str(info.value)
    assert message.startswith("Connection 'blink_bad'")
    for fragment in fragments:
        assert fragment in message


def test_missing_workspace_names_the_box_and_the_argument(monkeypatch):
    hook = use_connection(monkeypatch, host="app.blinkops.com", password="k")

    with pytest.raises(BlinkConfigurationError) as info:
        hook.get_execution("e-1")  # fails before any request: the host does not matter

    assert "'Workspace ID'" in str(info.value)
    assert "workspace_id=" in str(info.value)
    assert "'blink_test'" in str(info.value)
    assert hook.config.workspace("ws-override") == "ws-override"


def test_repr_never_shows_the_key(monkeypatch):
    hook = use_connection(monkeypatch, host="app.blinkops.com", password=API_KEY, extra={"workspace_id": "w"})

    assert repr(hook) == "BlinkHook(blink_conn_id='blink_test')"
    for text in (repr(hook), repr(hook.config), str(hook.config)):
        assert API_KEY not in text
    assert "workspace_id='w'" in repr(hook.config)
    assert hook.config.api_key == API_KEY


# -- test_connection ------------------------------------------------------------------------------


def test_test_connection_succeeds(emulator):
    ok, message = BlinkHook().test_connection()

    assert ok is True
    assert message == f"Connected to Blink at {emulator.url}, workspace {WORKSPACE!r}."
    [request] = emulator.requests
    assert request.method == "GET"
    assert json.loads(request.query["q"]) == {"limit": 1}  # one cheap call


def test_a_fresh_process_reads_the_connection_through_airflow_with_a_fernet_key(emulator):
    # As a worker's task process does: a new interpreter, blink_default from AIRFLOW_CONN_BLINK_DEFAULT
    # through Airflow's secrets backends, the password encrypted with the deployment's Fernet key.
    # (Airflow 2.11-3.1 with cryptography 51+ cannot: "MultiFernet object has no attribute 'is_encrypted'",
    # which Airflow logs and then says the connection "isn't defined".)
    assert os.environ["AIRFLOW__CORE__FERNET_KEY"], "conftest configures one, as deployments do"
    script = """
from airflow_provider_blink.hooks.blink import BlinkHook
try:
    print(*BlinkHook().test_connection())
except Exception:
    # Airflow 3 drops each secrets backend's error unlogged: ask the environment's backend directly.
    from airflow.secrets.environment_variables import EnvironmentVariablesBackend
    EnvironmentVariablesBackend().get_connection("blink_default")
    raise
"""

    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)

    # Airflow logs a secrets backend's failure (or the script asks again) and goes on: the first error
    # is the cause.
    logged = done.stdout + done.stderr
    errors = dict.fromkeys(re.findall(r"^[\w.]+(?:Error|Exception): .*$", logged, re.MULTILINE))
    assert f"True Connected to Blink at {emulator.url}" in done.stdout, (
        "a fresh process could not use blink_default; the errors it logged, first to last:\n"
        + "\n".join(errors)
    )


REFUSALS = [
    # the connection's mistake, what the message says, what it never says
    (
        {"key": "not-the-key"},
        ["HTTP 401", "message='Unauthorized'", "invalid or expired API key", "'API Key'"],
        "not-the-key",
    ),
    ({"workspace_id": "ws-typo"}, ["HTTP 404", "message='workspace not found'", "ws-typo"], None),
]


@pytest.mark.parametrize(("mistake", "says", "never_says"), REFUSALS, ids=["wrong-key", "unknown-workspace"])
def test_test_connection_reports_what_blink_refused(emulator, monkeypatch, mistake, says, never_says):
    monkeypatch.setenv("AIRFLOW_CONN_BLINK_DEFAULT", connection_json(emulator, **mistake))

    ok, message = BlinkHook().test_connection()

    assert ok is False
    assert [text for text in says if text not in message] == []
    assert never_says is None or never_says not in message
    assert len(emulator.requests) == 1


def test_test_connection_reports_a_missing_workspace(emulator, monkeypatch):
    conn = json.loads(connection_json(emulator))
    del conn["extra"]["workspace_id"]
    monkeypatch.setenv("AIRFLOW_CONN_BLINK_DEFAULT", json.dumps(conn))

    ok, message = BlinkHook().test_connection()

    assert ok is False
    assert "'Workspace ID'" in message
    assert emulator.requests == []


def test_test_connection_reports_an_unreachable_blink(monkeypatch):
    hook = use_connection(
        monkeypatch,
        host=f"http://127.0.0.1:{closed_port()}",
        password="k",
        extra={"workspace_id": "w", "retry_limit": 0},
    )

    ok, message = hook.test_connection()

    assert ok is False
    assert message.startswith("Blink did not answer GET /api/v1/workspace/w/executions")


def test_test_connection_reports_a_bad_url(monkeypatch):
    ok, message = use_connection(monkeypatch, host="ftp://x", password="k").test_connection()

    assert ok is False
    assert "Blink URL" in message


# -- the connection form --------------------------------------------------------------------------


def test_ui_field_behaviour():
    behaviour = BlinkHook.get_ui_field_behaviour()

    assert behaviour["relabeling"] == {"host": "Blink URL", "password": "API Key"}
    assert sorted(behaviour["hidden_fields"]) == ["login", "port", "schema"]
    assert behaviour["placeholders"]["host"] == "https://app.blinkops.com"
    assert json.loads(behaviour["placeholders"]["extra"])["timeout"] == 30


@pytest.mark.skipif(
    importlib.util.find_spec("flask_appbuilder") is None,
    reason="flask_appbuilder/wtforms are not installed with this Airflow (3.x without the FAB provider); "
    "Airflow 3 reads the Workspace ID box from provider info instead (see test_providers_manager_*)",
)
def test_connection_form_widgets():
    widgets = BlinkHook.get_connection_form_widgets()

    assert list(widgets) == ["workspace_id"]
    field = widgets["workspace_id"]
    assert str(field.args[0]) == "Workspace ID"
    assert "workspace_id=" in field.kwargs["description"]


MODULE_KINDS = ("hooks", "operators", "sensors", "triggers")


def test_provider_info_declares_every_module_and_the_connection_type():
    info = airflow_provider_blink.get_provider_info()

    assert info["package-name"] == "airflow-provider-blink"
    assert info["versions"] == [airflow_provider_blink.__version__]
    modules = {kind: [m for entry in info[kind] for m in entry["python-modules"]] for kind in MODULE_KINDS}
    assert modules == {
        "hooks": ["airflow_provider_blink.hooks.blink"],
        "operators": ["airflow_provider_blink.operators.blink"],
        "sensors": ["airflow_provider_blink.sensors.blink"],
        "triggers": ["airflow_provider_blink.triggers.blink", "airflow_provider_blink.triggers.blink_events"],
    }
    assert all(importlib.util.find_spec(m) is not None for kind in modules.values() for m in kind)
    assert info["extra-links"] == ["airflow_provider_blink.links.blink.BlinkExecutionLink"]
    assert info["notifications"] == ["airflow_provider_blink.notifications.blink.BlinkNotifier"]
    [conn_type] = info["connection-types"]
    assert conn_type["connection-type"] == "blink"
    assert conn_type["hook-class-name"] == HOOK_CLASS
    assert conn_type["ui-field-behaviour"]["relabeling"] == {"host": "Blink URL", "password": "API Key"}
    assert sorted(conn_type["ui-field-behaviour"]["hidden-fields"]) == ["login", "port", "schema"]
    assert conn_type["conn-fields"]["workspace_id"]["label"] == "Workspace ID"


@pytest.fixture(scope="module")
def providers_manager():
    from airflow.providers_manager import ProvidersManager

    return ProvidersManager()


@pytest.mark.filterwarnings("ignore:ProvidersManager.hooks is deprecated")  # Airflow 3: still answers
def test_providers_manager_knows_the_blink_connection(providers_manager):
    hook = providers_manager.hooks["blink"]

    assert hook.hook_class_name == HOOK_CLASS
    assert hook.connection_type == "blink"
    assert hook.hook_name == "Blink"
    assert hook.connection_id_attribute_name == "blink_conn_id"
    assert hook.package_name == "airflow-provider-blink"


#: Where the providers manager can build Blink's form: from provider info (``ui-field-behaviour``,
#: ``conn-fields``) from Airflow 3.2; before that only from the hook's wtforms widgets, which need
#: flask_appbuilder (Airflow 2, or Airflow 3.0/3.1 with the FAB provider).
NEEDS_FORM_FROM_PROVIDER_INFO = pytest.mark.skipif(
    AIRFLOW_V_3_0_PLUS and not AIRFLOW_V_3_2_PLUS and importlib.util.find_spec("flask_appbuilder") is None,
    reason="the connection form from provider info (ui-field-behaviour, conn-fields) arrived in Airflow 3.2; "
    "Airflow 3.0/3.1 build it from the hook's wtforms widgets only with flask_appbuilder (not installed)",
)


@NEEDS_FORM_FROM_PROVIDER_INFO
def test_providers_manager_relabels_the_form(providers_manager):
    behaviour = providers_manager.field_behaviours["blink"]

    assert behaviour["relabeling"] == {"host": "Blink URL", "password": "API Key"}
    assert sorted(behaviour["hidden_fields"]) == ["login", "port", "schema"]


@NEEDS_FORM_FROM_PROVIDER_INFO
def test_providers_manager_adds_the_workspace_id_box(providers_manager):
    widget = providers_manager.connection_form_widgets["extra__blink__workspace_id"]

    assert widget.field_name == "workspace_id"
    assert widget.package_name == "airflow-provider-blink"
    assert not widget.is_sensitive
    field = widget.field
    # Airflow 3 reads a JSON schema from provider info; Airflow 2 the hook's wtforms field.
    label = field["schema"]["title"] if isinstance(field, dict) else str(field.args[0])
    assert label == "Workspace ID"
