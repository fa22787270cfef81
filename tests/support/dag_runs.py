"""Run a DAG through ``dag.test()`` and read back what Airflow kept: task instances, XCom, extra links."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest


def dagbag(folder: Path | str) -> Any:
    """The DAGs in ``folder``, parsed as the DAG processor would (Airflow's own examples are off: conftest)."""
    try:
        from airflow.dag_processing.dagbag import DagBag  # Airflow 3
    except ImportError:
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]  # Airflow 2
    return DagBag(dag_folder=str(folder))


def register(dag: Any) -> None:
    """
    Store a DAG built in a test as the DAG processor would, so ``dag.test()`` can run it.

    Airflow 3's ``dag.test()`` only runs DAGs found in the metadata database (it syncs the DAG
    bundles, which hold the example DAGs but not the tests); Airflow 2 runs any DAG object.
    """
    try:
        from airflow.dag_processing.bundles.manager import DagBundlesManager
        from airflow.dag_processing.collection import update_dag_parsing_results_in_db
        from airflow.serialization.serialized_objects import LazyDeserializedDAG
    except ImportError:
        return
    from airflow.utils.session import create_session

    manager = DagBundlesManager()
    with create_session() as session:
        manager.sync_bundles_to_db(session=session)
    bundle = next(iter(manager.get_all_dag_bundles()))
    if hasattr(LazyDeserializedDAG, "from_dag"):
        lazy = LazyDeserializedDAG.from_dag(dag)
    else:  # Airflow 3.0, before from_dag: relative_fileloc set as its DagBag does for a file outside the bundle
        from airflow.serialization.serialized_objects import SerializedDAG

        dag.relative_fileloc = dag.relative_fileloc or dag.fileloc
        lazy = LazyDeserializedDAG(data=SerializedDAG.to_dict(dag))  # type: ignore[attr-defined]
    # Airflow 3.1 added parse_duration.
    parameters = inspect.signature(update_dag_parsing_results_in_db).parameters
    timing: dict[str, Any] = {"parse_duration": None} if "parse_duration" in parameters else {}
    with create_session() as session:
        update_dag_parsing_results_in_db(
            bundle.name,
            None,
            [lazy],
            import_errors={},
            warnings=set(),
            session=session,
            **timing,
        )


def run(dag: Any) -> Any:
    """Run ``dag`` once with ``dag.test()``; the DAG run."""
    dag_run = dag.test()
    assert dag_run is not None
    return dag_run


def task_instance(dag_run: Any, task_id: str, map_index: int = -1) -> Any:
    """The one task instance of ``task_id`` (and ``map_index``) in ``dag_run``."""
    tis = [ti for ti in dag_run.get_task_instances() if ti.task_id == task_id and ti.map_index == map_index]
    assert len(tis) == 1, [(ti.task_id, ti.map_index) for ti in dag_run.get_task_instances()]
    return tis[0]


def reschedules(dag_run: Any, task_id: str) -> int:
    """TaskReschedule rows Airflow wrote for the task (one per time a sensor gave its slot back)."""
    from airflow.models.taskreschedule import TaskReschedule
    from airflow.utils.session import create_session

    ti = task_instance(dag_run, task_id)
    with create_session() as session:
        rows = session.query(TaskReschedule).all()
    if hasattr(TaskReschedule, "ti_id"):  # Airflow 3
        return sum(1 for row in rows if row.ti_id == ti.id)
    return sum(1 for row in rows if (row.dag_id, row.run_id, row.task_id) == (ti.dag_id, ti.run_id, task_id))


def xcom(dag_run: Any, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
    """Read an XCom the way the UI would: straight from the metadata database."""
    try:
        from airflow.models.xcom import XComModel  # Airflow 3
    except ImportError:
        from airflow.models.xcom import XCom

        return XCom.get_one(
            key=key, run_id=dag_run.run_id, dag_id=dag_run.dag_id, task_id=task_id, map_index=map_index
        )
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        value = session.scalar(
            select(XComModel.value).where(
                XComModel.key == key,
                XComModel.run_id == dag_run.run_id,
                XComModel.dag_id == dag_run.dag_id,
                XComModel.task_id == task_id,
                XComModel.map_index == map_index,
            )
        )
    return XComModel.deserialize_value(_Value(value)) if value is not None else None


class _Value:
    def __init__(self, value: Any) -> None:
        self.value = value


def extra_link(dag: Any, dag_run: Any, task_id: str, name: str = "Blink") -> str | None:
    """The extra link as the web UI resolves it: from the serialized DAG, for the run's task instance."""
    from airflow.serialization import serialized_objects

    serialization: Any = getattr(serialized_objects, "DagSerialization", None)  # Airflow 3
    serialization = serialization or serialized_objects.SerializedDAG  # Airflow 2
    serialized = serialization.deserialize_dag(serialization.serialize_dag(dag))
    return serialized.get_task(task_id).get_extra_links(task_instance(dag_run, task_id), name)


def on_defer(
    monkeypatch: pytest.MonkeyPatch, task_classes: Iterable[type], seen: Callable[[Any, Any], None]
) -> None:
    """Call ``seen(task, trigger)`` each time a task of ``task_classes`` defers; the real ``defer`` still runs."""
    for cls in task_classes:
        original: Callable[..., Any] = cls.defer  # type: ignore[attr-defined]

        def recording_defer(
            self: Any, *args: Any, _original: Callable[..., Any] = original, **kwargs: Any
        ) -> Any:
            seen(self, kwargs["trigger"])
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "defer", recording_defer)
