"""Apache Airflow provider for Blink (BlinkOps) security-automation playbooks."""

from __future__ import annotations

from typing import Any

from airflow_provider_blink.connection_form import provider_connection_type

__version__ = "0.1.0"

_INTEGRATION = "Blink"


def get_provider_info() -> dict[str, Any]:
    """Describe the provider to Airflow's providers manager (entry point ``apache_airflow_provider``)."""
    return {
        "package-name": "airflow-provider-blink",
        "name": "Blink",
        "description": "Run and watch `Blink <https://www.blinkops.com/>`__ security-automation playbooks.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": _INTEGRATION,
                "external-doc-url": "https://docs.blinkops.com/",
                "tags": ["service"],
            }
        ],
        "hooks": [
            {"integration-name": _INTEGRATION, "python-modules": ["airflow_provider_blink.hooks.blink"]}
        ],
        "operators": [
            {"integration-name": _INTEGRATION, "python-modules": ["airflow_provider_blink.operators.blink"]}
        ],
        "sensors": [
            {"integration-name": _INTEGRATION, "python-modules": ["airflow_provider_blink.sensors.blink"]}
        ],
        "triggers": [
            {
                "integration-name": _INTEGRATION,
                "python-modules": [
                    "airflow_provider_blink.triggers.blink",
                    "airflow_provider_blink.triggers.blink_events",
                ],
            }
        ],
        "notifications": ["airflow_provider_blink.notifications.blink.BlinkNotifier"],
        "extra-links": ["airflow_provider_blink.links.blink.BlinkExecutionLink"],
        "connection-types": [provider_connection_type("airflow_provider_blink.hooks.blink.BlinkHook")],
    }
