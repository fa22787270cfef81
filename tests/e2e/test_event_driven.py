"""Blink executions schedule DAG runs (AssetWatcher + BlinkExecutionEventTrigger), across a triggerer restart."""

from __future__ import annotations

import signal
from typing import Any

import pytest
from e2e.harness.blink import BlinkApi
from e2e.harness.deployment import Deployment
from e2e.harness.events import finished, start_execution, unpause_and_parse, wait_for_runs_covering
from e2e.harness.processes import ComponentFailed
from e2e.harness.waiting import utcnow, wait_until

pytestmark = pytest.mark.e2e


def test_each_finished_execution_starts_one_dag_run_across_a_triggerer_restart(
    deployment: Deployment, blink: BlinkApi
) -> None:
    unpause_and_parse(deployment)

    first = start_execution(blink)
    wait_for_runs_covering(deployment, [first])

    # The triggerer stops; an execution finishes while it is gone.
    triggerer = deployment.components["triggerer"]
    down = utcnow()
    triggerer.send(signal.SIGTERM)
    if not triggerer.wait_exit(60):
        raise ComponentFailed(f"triggerer did not exit within 60 s of SIGTERM\n{triggerer.tail()}")
    while_down = start_execution(blink)
    wait_until(
        "the execution to finish while the triggerer is down", lambda: finished(blink, while_down), timeout=30
    )
    triggerer.start()
    deployment.wait_healthy(["triggerer"], timeout=120, heartbeat_after=down)

    wait_for_runs_covering(deployment, [first, while_down])
    after = start_execution(blink)
    wait_for_runs_covering(deployment, [first, while_down, after])
    # A sentinel: events come in finish order, so a repeat of an earlier one would precede it.
    sentinel = start_execution(blink)
    runs = wait_for_runs_covering(deployment, [first, while_down, after, sentinel])

    fired: list[Any] = [e for run in runs for e in run]
    assert sorted(fired) == sorted([first, while_down, after, sentinel]), f"lost or repeated: {runs}"
    assert runs == [[first], [while_down], [after], [sentinel]], f"one DAG run per execution: {runs}"
