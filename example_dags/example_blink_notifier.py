"""
Example 4: a failing Airflow task starts a Blink response playbook (``BlinkNotifier``).

The notifier sends the dag, task, run, try number, error text and log URL as playbook inputs.
"""

from __future__ import annotations

from datetime import datetime

try:
    from airflow.sdk import dag, task
except ImportError:  # Airflow 2
    from airflow.decorators import dag, task
from airflow_provider_blink.notifications.blink import BlinkNotifier


@dag(schedule=None, start_date=datetime(2026, 1, 1), catchup=False, tags=["blink", "example"])
def example_blink_notifier() -> None:
    # [START howto_notifier_blink]
    open_incident = BlinkNotifier(
        playbook_id="isolate-host",
        input_values={"severity": "high", "dag_owner": "{{ dag.owner }}"},
    )

    @task(on_failure_callback=open_incident)
    def load_firewall_logs() -> int:
        return 42  # a failure here would start the playbook

    # [END howto_notifier_blink]

    load_firewall_logs()


example_blink_notifier()
