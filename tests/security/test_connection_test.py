"""
The connection test shows what Blink said, but of any other answer only its status and content type:
an admin who points the Blink URL at an internal service learns nothing of that service from it.
"""

from __future__ import annotations

import pytest

from airflow_provider_blink.hooks.blink import BlinkHook

from support.hostile import Answer, HostileServer, json_answer

INTERNAL = "internal-only-9b3d"

FOREIGN_ANSWERS = {
    "html-200": Answer(200, f"<html>{INTERNAL} admin console</html>".encode(), {"Content-Type": "text/html"}),
    "text-500": Answer(500, f"stack trace in {INTERNAL}".encode(), {"Content-Type": "text/plain"}),
    "json-200-not-blink": json_answer({"users": [INTERNAL]}),
    "json-404-not-blink": json_answer({"error": INTERNAL}, status=404),
    "empty-502": Answer(502, b"", {"Content-Type": "text/html"}),
}


@pytest.mark.parametrize("answer", FOREIGN_ANSWERS.values(), ids=FOREIGN_ANSWERS.keys())
def test_a_foreign_answer_shows_status_and_content_type_only(use_blink, answer):
    with HostileServer(answer) as server:
        use_blink(server.url, retry_limit=0)

        ok, message = BlinkHook().test_connection()

    assert not ok
    assert INTERNAL not in message
    assert f"HTTP {answer.status}" in message
    assert answer.headers.get("Content-Type", "application/json") in message
    assert "Blink URL" in message


def test_blinks_own_error_is_still_shown(use_blink):
    blink_error = {"status": 401, "message": "invalid api key", "details": "", "identifier": "abc-1"}
    with HostileServer(json_answer(blink_error, status=401)) as server:
        use_blink(server.url)

        ok, message = BlinkHook().test_connection()

    assert not ok
    assert "invalid api key" in message
    assert "abc-1" in message
