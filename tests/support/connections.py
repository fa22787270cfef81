"""The one builder of ``blink`` Airflow connections for the tests (``AIRFLOW_CONN_...`` JSON)."""

from __future__ import annotations

import json
from typing import Any

from airflow_provider_blink.testing import BlinkEmulator

from support.emulator import API_KEY, WORKSPACE

#: Retries fast enough for tests: two retries after the first attempt, 10 ms apart, 5 s per request.
FAST_RETRIES: dict[str, Any] = {"retry_limit": 2, "retry_delay": 0.01, "timeout": 5}


def connection_json(to: BlinkEmulator | str, *, key: str | None = None, **extra: Any) -> str:
    """
    A ``blink`` connection to an emulator or to a URL, in :data:`WORKSPACE`, with fast retries.

    :param to: the emulator (its URL and key), or a URL (with :data:`API_KEY`).
    :param key: the API key to send instead.
    :param extra: connection extras, overriding :data:`FAST_RETRIES` and the workspace.
    """
    host, own_key = (to, API_KEY) if isinstance(to, str) else (to.url, to.api_key)
    return json.dumps(
        {
            "conn_type": "blink",
            "host": host,
            "password": own_key if key is None else key,
            "extra": {"workspace_id": WORKSPACE, **FAST_RETRIES, **extra},
        }
    )
