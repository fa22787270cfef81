"""
A Blink API emulator for tests, demos and users' own DAG tests.

Importing this package does not import Airflow. Typical use::

    from airflow_provider_blink.testing import BlinkEmulator, ScriptedPlaybook

    with BlinkEmulator(api_key="k", playbooks=[ScriptedPlaybook(id="pb", workspace_id="ws")]) as emu:
        os.environ.update(emu.connection_env())
        ...  # run the DAG / hook against emu.url
"""

from __future__ import annotations

from airflow_provider_blink.testing.emulator import BlinkEmulator
from airflow_provider_blink.testing.faults import Fault
from airflow_provider_blink.testing.playbooks import (
    DEMO_PLAYBOOKS,
    DEMO_WORKSPACE,
    Outcome,
    Phase,
    ScriptedPlaybook,
)
from airflow_provider_blink.testing.server import RequestRecord
from airflow_provider_blink.testing.state import LookupFailed, NotHeld

__all__ = [
    "DEMO_PLAYBOOKS",
    "DEMO_WORKSPACE",
    "BlinkEmulator",
    "Fault",
    "LookupFailed",
    "NotHeld",
    "Outcome",
    "Phase",
    "RequestRecord",
    "ScriptedPlaybook",
]
