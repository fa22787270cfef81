"""
A worker dies (SIGKILL) mid-try; the retry follows the execution the dead try started, and no other.

Real Airflow runs the tries (``support.crashes``): a worker process forks the task's process, the
task starts the playbook, and the test SIGKILLs both. Airflow fails that try (the worker stopped
heartbeating), schedules the retry, and another worker runs it. The try's record of its start lives
where Airflow keeps it on each line: ``task_state_store`` on 3.3+, an Airflow Variable before.

- Killed while waiting: the retry follows the execution by its recorded id.
- Killed after recording its start as in flight, before Blink's answer: the retry looks in Blink,
  among the runs created since that start was sent, and follows the one it made.
- Killed before it recorded a start: the retry starts afresh, whatever identical run someone else
  started meanwhile.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from airflow_provider_blink.testing import Fault

from support.crashes import Deployment, Worker
from support.dag_runs import xcom
from support.emulator import finishing, new_one, once_read, requests_to, start_directly

DAG_FILE = Path(__file__).resolve().parent.parent / "support" / "dags" / "blink_worker_crash.py"
TASK_ID = "wait_in_worker"
#: seconds a worker gets to start, parse the DAG and reach Blink (2 busy cores).
WORKER_START = 180.0
#: How long Blink holds its answer to the killed try's start: longer than the test.
ANSWER_HELD = 1800.0


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


def killed(deployment: Deployment, worker: Worker) -> None:
    """SIGKILL the worker; Airflow fails the try and schedules the retry."""
    worker.kill()
    assert deployment.worker_lost(TASK_ID) == "up_for_retry"
    assert deployment.schedule(TASK_ID) == 2


def summary(deployment: Deployment) -> dict:
    """The finished task's result; it succeeded on its second try."""
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = deployment.task_instance(TASK_ID, session)
        assert (ti.state, ti.try_number) == ("success", 2)
        return xcom(deployment.dag_run(session), TASK_ID)


def test_a_retry_after_a_worker_killed_before_blinks_answer_looks_and_follows_the_run(
    airflow_db, emulator, tmp_path
):
    """
    The start reached Blink, the answer never reached the task. An identical run someone else started
    earlier in the DAG run (before this start was sent) is no candidate: only the one this start made is.
    """
    now = datetime.now(timezone.utc)
    deployment = Deployment(DAG_FILE, "blink_worker_crash_gated", tmp_path, started=now - timedelta(hours=3))
    finished = int((now - timedelta(minutes=30)).timestamp() * 1000)
    (someone_elses,) = emulator.seed_executions("until-finished", 1, finished_at=finished)
    assert deployment.schedule(TASK_ID) == 1
    emulator.inject(Fault("execute", "slow_after", delay=ANSWER_HELD))
    first_try = deployment.start_try(TASK_ID)
    (made,) = first_try.meanwhile(
        lambda: [e for e in emulator.executions if e["id"] != someone_elses], timeout=WORKER_START
    )

    killed(deployment, first_try)
    # Finish the run once the retry polls it, or a new one at once if the retry started another.
    polled, another = once_read(emulator, made["id"], reads=2), new_one(emulator)
    with finishing(emulator, lambda: polled() or another()) as seen:
        retry = deployment.start_try(TASK_ID)
        assert retry.wait(WORKER_START + 60) == 0, retry.output()

    assert seen == ["In Progress"], "the retry met the run its first try made, still running"
    assert len(requests_to(emulator, "GET", "/executions")) == 1, "the retry looked in Blink"
    assert len(emulator.executions) == 2, "and started nothing (the held start is logged once answered)"
    assert summary(deployment)["execution_id"] == made["id"]


def test_a_retry_after_a_worker_killed_before_it_recorded_a_start_starts_afresh(
    airflow_db, emulator, tmp_path, monkeypatch
):
    gate = tmp_path / "gate"
    gate.mkdir()
    (gate / "shut").touch()
    monkeypatch.setenv("BLINK_TEST_GATE", str(gate))
    (logs := tmp_path / "logs").mkdir()
    deployment = Deployment(DAG_FILE, "blink_worker_crash_gated", logs)
    assert deployment.schedule(TASK_ID) == 1
    first_try = deployment.start_try(TASK_ID)
    first_try.meanwhile(lambda: (gate / "reached").exists(), timeout=WORKER_START)
    someone_elses = start_directly(emulator, "until-finished")  # the same request, meanwhile

    killed(deployment, first_try)
    (gate / "shut").unlink()
    with finishing(emulator, new_one(emulator)):
        retry = deployment.start_try(TASK_ID)
        assert retry.wait(WORKER_START + 60) == 0, retry.output()

    assert not requests_to(emulator, "GET", "/executions"), "nothing to look for"
    assert len(emulator.executions) == 2, "one run for each"
    assert summary(deployment)["execution_id"] != someone_elses
    assert emulator.execution(someone_elses)["state_ui"] == "In Progress", "left alone"
