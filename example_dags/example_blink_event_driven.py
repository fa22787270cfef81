"""
Example 6: a DAG runs whenever Blink's ``enrich-ioc`` playbook completes (Airflow 3 event scheduling).

``BlinkExecutionEventTrigger`` polls Blink for finished executions and fires one asset event per
execution; the event's payload (execution id, playbook, state, timings) reaches the DAG run.
"""

from __future__ import annotations

from datetime import datetime

from airflow_provider_blink.compat import AIRFLOW_V_3_0_PLUS

if AIRFLOW_V_3_0_PLUS:  # AssetWatcher and event-driven scheduling arrived in Airflow 3.0
    from airflow.sdk import Asset, AssetWatcher, dag, task

    from airflow_provider_blink.triggers.blink_events import BlinkExecutionEventTrigger

    # [START howto_trigger_blink_events]
    enrichment_done = Asset(
        "blink_enrich_ioc_completed",
        watchers=[
            AssetWatcher(
                name="blink_enrich_ioc_watcher",
                trigger=BlinkExecutionEventTrigger(
                    playbook_id="enrich-ioc", states=["Completed"], poll_interval=5
                ),
            )
        ],
    )

    @dag(
        schedule=[enrichment_done], start_date=datetime(2026, 1, 1), catchup=False, tags=["blink", "example"]
    )
    def example_blink_event_driven() -> None:
        @task
        def handle_finished_executions(**context) -> list[str]:
            """Each triggering asset event carries one finished execution (none on a manual run)."""
            executions = [
                event.extra["payload"]
                for events in context["triggering_asset_events"].values()
                for event in events
                if "payload" in event.extra
            ]
            for execution in executions:
                print(
                    f"Blink {execution['execution_id']} of {execution['playbook_id']}: {execution['state']}"
                )
            return [execution["execution_id"] for execution in executions]

        handle_finished_executions()

    # [END howto_trigger_blink_events]

    example_blink_event_driven()
