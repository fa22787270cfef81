"""The sensor in ``reschedule`` mode, through real Airflow: it gives its worker slot back between pokes."""

from __future__ import annotations

from datetime import datetime

from airflow_provider_blink.operators.blink import BlinkExecutePlaybookOperator
from airflow_provider_blink.sensors.blink import BlinkExecutionSensor

from support.dag_runs import register, reschedules, run, task_instance, xcom
from support.emulator import finished_once_read


def test_reschedule_mode_waits_for_the_execution_and_returns_its_record(airflow_db, emulator):
    from airflow_provider_blink.compat import DAG

    with DAG("blink_sensor_reschedule", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
        start = BlinkExecutePlaybookOperator(task_id="start", playbook_id="held", wait_for_completion=False)
        wait = BlinkExecutionSensor(
            task_id="wait",
            execution_id="{{ ti.xcom_pull(task_ids='start', key='execution_id') }}",
            mode="reschedule",
            poke_interval=0.5,
            timeout=60,
            deferrable=False,
        )
        start >> wait
    register(dag)

    with finished_once_read(emulator, {"held": ("Completed", None)}):  # running until poked twice
        dag_run = run(dag)

    assert dag_run.state == "success"
    (execution,) = emulator.executions
    record = xcom(dag_run, "wait")
    assert record["id"] == execution["id"]
    assert record["state_ui"] == "Completed"
    gets = [r for r in emulator.requests if r.method == "GET" and r.path.endswith(execution["id"])]
    assert len(gets) >= 2, "poked more than once: it was rescheduled while the playbook ran"
    assert task_instance(dag_run, "wait").state == "success"
    assert reschedules(dag_run, "wait") >= 1, "the sensor went up_for_reschedule between pokes"
