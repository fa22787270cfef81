"""
Transport settings fail closed, and the key is clean.

``verify`` is true/false (in their usual spellings) or an existing CA bundle; anything else, ``""``
included, is a configuration error naming the extra. ``verify: false`` is warned about once per hook
or trigger, not per poll. Plain ``http://`` to a host that is not loopback is refused unless the
connection sets ``allow_insecure_http: true``. The async client honours ``HTTPS_PROXY``/``NO_PROXY``
as the sync client does, unless the connection sets ``proxies``. A key read with surrounding
whitespace (a secrets file's newline) is stripped; one with control characters inside is a
configuration error that does not echo it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from airflow_provider_blink.exceptions import BlinkConfigurationError
from airflow_provider_blink.hooks.blink import BlinkHook
from airflow_provider_blink.triggers.blink import BlinkExecutionTrigger

from support.emulator import API_KEY, WORKSPACE
from support.hostile import HostileServer, blink_answers, call_blink
from support.triggers import next_event


def use_connection(monkeypatch: pytest.MonkeyPatch, host: str, password: str = API_KEY, **extra: Any) -> None:
    extra = {"workspace_id": WORKSPACE, "retry_limit": 0, "timeout": 5, **extra}
    conn = {"conn_type": "blink", "host": host, "password": password, "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_BLINK_DEFAULT", json.dumps(conn))


# -- verify ---------------------------------------------------------------------------------------

VERIFY_OK = {
    "true": (True, True),
    "false": (False, False),
    "string-true": ("True", True),
    "string-yes": ("yes", True),
    "string-on": ("on", True),
    "string-1": ("1", True),
    "string-false": ("FALSE", False),
    "string-no": (" no ", False),
    "string-off": ("off", False),
    "string-0": ("0", False),
}


@pytest.mark.parametrize(("value", "expected"), VERIFY_OK.values(), ids=VERIFY_OK.keys())
def test_verify_accepts_true_false_and_their_spellings(monkeypatch, value, expected):
    use_connection(monkeypatch, "https://blink.example.com", verify=value)

    assert BlinkHook().config.verify is expected


def test_verify_accepts_an_existing_ca_bundle(monkeypatch, certificate):
    use_connection(monkeypatch, "https://blink.example.com", verify=str(certificate.cert))

    assert BlinkHook().config.verify == str(certificate.cert)


VERIFY_BAD = {
    "empty": "",
    "blank": "  ",
    "missing-file": "/no/such/ca-bundle.pem",
    "word": "maybe",
    "number": 2,
    "list": ["true"],
    "null": None,
}


@pytest.mark.parametrize("value", VERIFY_BAD.values(), ids=VERIFY_BAD.keys())
def test_any_other_verify_is_a_configuration_error(monkeypatch, value):
    use_connection(monkeypatch, "https://blink.example.com", verify=value)

    with pytest.raises(BlinkConfigurationError, match="extra 'verify'"):
        _ = BlinkHook().config


def warnings_about_verification(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> int:
    """How often the log says verification is off (Airflow 3 logs hooks to stdout, Airflow 2 to caplog)."""
    out, err = capfd.readouterr()
    text = "TLS certificate verification is off"
    return max(caplog.text.count(text), (out + err).count(text))  # Airflow 2 may show it in both


def test_verify_false_is_warned_about_once_per_hook(use_blink, certificate, caplog, capfd):
    with HostileServer(blink_answers, tls=certificate.server_context()) as blink:
        use_blink(blink.url, verify=False)
        hook = BlinkHook()
        with caplog.at_level(logging.WARNING):
            for _ in range(3):
                hook.get_execution("exec-1")

    assert len(blink.requests) == 3
    assert warnings_about_verification(caplog, capfd) == 1


def test_verify_false_is_warned_about_once_per_trigger(use_blink, certificate, caplog, capfd):
    polls = 0

    def running_then_done(request: Any) -> Any:
        nonlocal polls
        polls += 1
        from support.hostile import json_answer

        return json_answer({"id": "exec-1", "state_ui": "Running" if polls < 4 else "Completed"})

    with HostileServer(running_then_done, tls=certificate.server_context()) as blink:
        use_blink(blink.url, verify=False)

        with caplog.at_level(logging.WARNING):
            event = asyncio.run(next_event(BlinkExecutionTrigger(execution_id="exec-1", poll_interval=0.01)))

    assert event["status"] == "success"
    assert polls == 4
    assert warnings_about_verification(caplog, capfd) == 1


# -- plain http -----------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["http://blink.example.com", "http://10.0.0.7:8080", "blink.example.com"])
def test_plain_http_to_another_host_is_refused(monkeypatch, host):
    use_connection(monkeypatch, host, schema="http")
    if "://" not in host:  # a bare host with Schema "http"
        conn = json.loads(__import__("os").environ["AIRFLOW_CONN_BLINK_DEFAULT"])
        conn["schema"] = "http"
        monkeypatch.setenv("AIRFLOW_CONN_BLINK_DEFAULT", json.dumps(conn))

    with pytest.raises(BlinkConfigurationError, match="allow_insecure_http") as info:
        _ = BlinkHook().config

    assert "cleartext" in str(info.value)


@pytest.mark.parametrize("allow", [True, "true"])
def test_plain_http_is_allowed_when_the_connection_says_so(monkeypatch, allow):
    use_connection(monkeypatch, "http://blink.internal:8080", allow_insecure_http=allow)

    assert BlinkHook().config.url == "http://blink.internal:8080"


@pytest.mark.parametrize("host", ["http://127.0.0.1:8765", "http://localhost:8765", "http://[::1]:8765"])
def test_plain_http_on_loopback_is_fine(monkeypatch, host):
    use_connection(monkeypatch, host)

    assert BlinkHook().config.url == host


def test_allow_insecure_http_must_be_a_boolean(monkeypatch):
    use_connection(monkeypatch, "http://blink.internal", allow_insecure_http="sometimes")

    with pytest.raises(BlinkConfigurationError, match="extra 'allow_insecure_http'"):
        _ = BlinkHook().config


# -- proxies from the environment -----------------------------------------------------------------


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.mark.parametrize("client", ["sync", "async"])
def test_both_clients_use_the_proxy_from_the_environment(use_blink, monkeypatch, no_proxy_env, client):
    with HostileServer(blink_answers) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        use_blink("http://127.0.0.1:9")  # nothing listens there: only the proxy can answer

        call_blink(client, "get")

    [request] = proxy.requests
    assert request.target == f"http://127.0.0.1:9/api/v1/workspace/{WORKSPACE}/executions/exec-1"


@pytest.mark.parametrize("client", ["sync", "async"])
def test_no_proxy_is_honoured(use_blink, monkeypatch, no_proxy_env, client):
    with HostileServer(blink_answers) as proxy, HostileServer(blink_answers) as blink:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        use_blink(blink.url)

        call_blink(client, "get")

    assert proxy.requests == []
    assert len(blink.requests) == 1


@pytest.mark.parametrize("client", ["sync", "async"])
def test_the_connections_proxies_win_over_the_environment(use_blink, monkeypatch, no_proxy_env, client):
    with HostileServer(blink_answers) as env_proxy, HostileServer(blink_answers) as conn_proxy:
        monkeypatch.setenv("HTTP_PROXY", env_proxy.url)
        use_blink("http://127.0.0.1:9", proxies={"http": conn_proxy.url})

        call_blink(client, "get")

    assert env_proxy.requests == []
    assert len(conn_proxy.requests) == 1


# -- the key --------------------------------------------------------------------------------------


@pytest.mark.parametrize("client", ["sync", "async"])
@pytest.mark.parametrize("padding", ["\n", "\r\n", " ", "\t \n"], ids=["lf", "crlf", "space", "mixed"])
def test_a_key_with_surrounding_whitespace_is_stripped(monkeypatch, client, padding):
    with HostileServer(blink_answers) as blink:
        use_connection(monkeypatch, blink.url, password=f"{padding}{API_KEY}{padding}")

        call_blink(client, "get")

    [request] = blink.requests
    assert request.headers["blink-api-key"] == API_KEY


@pytest.mark.parametrize("inner", ["\n", "\r", "\x00", "\x1b", "\x7f"], ids=["lf", "cr", "nul", "esc", "del"])
def test_a_key_with_control_characters_inside_is_refused_without_echoing_it(monkeypatch, inner):
    half = len(API_KEY) // 2
    key = f"{API_KEY[:half]}{inner}{API_KEY[half:]}"
    use_connection(monkeypatch, "https://blink.example.com", password=key)

    with pytest.raises(BlinkConfigurationError, match="API Key") as info:
        _ = BlinkHook().config

    message = str(info.value)
    assert API_KEY[:half] not in message
    assert API_KEY[half:] not in message
    assert repr(key)[1:-1] not in message


def test_the_connection_test_never_shows_a_key_with_a_newline(monkeypatch):
    use_connection(monkeypatch, "https://blink.example.com", password=f"{API_KEY}\nextra")

    ok, message = BlinkHook().test_connection()

    assert not ok
    assert API_KEY not in message
