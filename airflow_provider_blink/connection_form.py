"""How the ``blink`` connection looks in Airflow's Connections form: one definition for 2.x and 3.x."""

from __future__ import annotations

from typing import Any

CONN_TYPE = "blink"
DEFAULT_CONN_ID = "blink_default"
DEFAULT_BLINK_URL = "https://app.blinkops.com"

#: Boxes relabelled, hidden and explained; Airflow 3 reads this from provider info, 2.x from the hook.
UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden_fields": ["schema", "port", "login"],
    "relabeling": {"host": "Blink URL", "password": "API Key"},
    "placeholders": {
        "host": DEFAULT_BLINK_URL,
        "password": "Blink API key (user settings -> API Keys)",
        "extra": '{"timeout": 30, "verify": true, "proxies": {"https": "http://proxy:3128"}}',
    },
}

#: Extra fields shown as their own boxes (stored in the connection's extra JSON).
CONN_FIELDS: dict[str, dict[str, Any]] = {
    "workspace_id": {
        "label": "Workspace ID",
        "description": "Default Blink workspace; each task may override it with workspace_id=...",
        "schema": {"type": ["string", "null"]},
    },
}


def provider_connection_type(hook_class_name: str) -> dict[str, Any]:
    """Return the ``connection-types`` entry of provider info (the Airflow 3.2+ declarative form)."""
    return {
        "connection-type": CONN_TYPE,
        "hook-class-name": hook_class_name,
        "hook-name": "Blink",
        "ui-field-behaviour": {
            "hidden-fields": UI_FIELD_BEHAVIOUR["hidden_fields"],
            "relabeling": UI_FIELD_BEHAVIOUR["relabeling"],
            "placeholders": UI_FIELD_BEHAVIOUR["placeholders"],
        },
        "conn-fields": CONN_FIELDS,
    }
