"""
A worker dies (SIGKILL) while its task waits for the playbook; the retry follows the same execution.

Real Airflow runs the tries (``support.crashes``): a worker process forks the task's process, the
task starts the playbook, and the test SIGKILLs both once Blink has the execution. Airflow fails
that try (the worker stopped heartbeating), schedules the retry, and another worker runs it. On
Airflow 3.3+ the retry finds the execution id in ``task_state_store``; before, it asks Blink.
"""

from __future__ import annotations

from pathlib import Path

from support.crashes import Deployment
from support.dag_runs import xcom
from support.emulator import finishing, new_one, once_read, requests_to

DAG_FILE = Path(__file__).resolve().parent.parent / "support" / "dags" / "blink_worker_crash.py"
TASK_ID = "wait_in_worker"
#: seconds a worker gets to start, parse the DAG and reach Blink (2 busy cores).
WORKER_START = 180.0


def test_a_retry_after_a_worker_crash_follows_the_running_execution(airflow_db, emulator, tmp_path):
    deployment = Deployment(DAG_FILE, "blink_worker_crash", tmp_path)
    assert deployment.schedule(TASK_ID) == 1
    first_try = deployment.start_try(TASK_ID)
    (execution,) = first_try.meanwhile(lambda: emulator.executions, timeout=WORKER_START)

    killed = first_try.kill()

    assert len(killed) >= 2, "the task ran in a process of its own, under the worker"
    assert emulator.execution(execution["id"])["state_ui"] == "In Progress", (
        "the playbook outlives the worker"
    )
    assert deployment.worker_lost(TASK_ID) == "up_for_retry"
    assert deployment.schedule(TASK_ID) == 2
    # Finish the execution once the retry polls it, or a second one at once if the retry started another.
    polled, another = once_read(emulator, execution["id"], reads=2), new_one(emulator)
    with finishing(emulator, lambda: polled() or another()) as seen:
        retry = deployment.start_try(TASK_ID)
        assert retry.wait(WORKER_START + 60) == 0, retry.output()

    assert seen == ["In Progress"], "the retry met the execution still running"
    assert len(requests_to(emulator, "POST", "/execute")) == 1, "exactly one execution was started"
    assert [e["id"] for e in emulator.executions] == [execution["id"]]
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = deployment.task_instance(TASK_ID, session)
        assert (ti.state, ti.try_number) == ("success", 2)
        summary = xcom(deployment.dag_run(session), TASK_ID)
    assert (summary["execution_id"], summary["state_ui"]) == (execution["id"], "Completed")
    assert summary["output"] == {"answer": 42}
