"""Airflow's public REST API, spoken as a user would: Airflow 3's ``/api/v2`` (JWT from ``/auth/token``),
and Airflow 2's ``/api/v1`` (basic auth) where it differs (:class:`Airflow2Api`)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any

import requests
from e2e.harness.waiting import wait_until

TERMINAL_RUN_STATES = frozenset({"success", "failed"})


class AirflowApiError(RuntimeError):
    pass


class AirflowApi:
    """A small client for Airflow 3's public REST API, authenticated like a user (JWT)."""

    #: where the public REST API lives
    prefix = "/api/v2"
    #: the health endpoint (outside the API's authentication)
    health_path = "/api/v2/monitor/health"

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base_url = base_url
        self.username = username
        self.password = password
        self.session = requests.Session()
        self.session.trust_env = False
        #: adds what the deployment knows about a run to :meth:`describe_run` (set by :class:`Deployment`).
        self.explain: Callable[[str, str], str] | None = None

    def login(self) -> str:
        """Fetch a JWT from the simple auth manager's ``/auth/token`` and use it from now on."""
        response = self.session.post(
            f"{self.base_url}/auth/token",
            json={"username": self.username, "password": self.password},
            timeout=30,
        )
        _raise_for(response)
        token = str(response.json()["access_token"])
        self.session.headers["Authorization"] = f"Bearer {token}"
        return token

    def request(self, method: str, path: str, *, ok: Iterable[int] = (200, 201, 204), **kw: Any) -> Any:
        """One API call; a read that times out is asked again, twice (the api-server of a busy 2-core
        deployment can take longer than 30 s to answer)."""
        attempts = 3 if method == "GET" else 1
        for attempt in range(1, attempts + 1):
            try:
                response = self.session.request(
                    method, f"{self.base_url}{self.prefix}{path}", timeout=30, **kw
                )
                break
            except requests.Timeout:
                if attempt == attempts:
                    raise
        if response.status_code not in set(ok):
            _raise_for(response, force=True)
        if not response.content:
            return None
        return response.json()

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params or None)

    # -- DAGs and runs ---------------------------------------------------------------------------

    def dag(self, dag_id: str) -> dict[str, Any] | None:
        response = self.session.get(f"{self.base_url}{self.prefix}/dags/{dag_id}", timeout=30)
        if response.status_code == 404:
            return None
        _raise_for(response)
        return dict(response.json())

    def import_errors(self) -> list[dict[str, Any]]:
        return list(self.get("/importErrors")["import_errors"])

    def trigger(self, dag_id: str, *, run_id: str | None = None, conf: dict[str, Any] | None = None) -> str:
        """Unpause the DAG if needed and start a manual run; returns its run id."""
        dag = self.dag(dag_id)
        if dag is None:
            raise AirflowApiError(f"DAG {dag_id!r} is not known to Airflow")
        if dag["is_paused"]:
            self.request("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
        body: dict[str, Any] = {**self.run_body, "conf": conf or {}}
        if run_id:
            body["dag_run_id"] = run_id
        return str(self.request("POST", f"/dags/{dag_id}/dagRuns", json=body)["dag_run_id"])

    #: what a manual run's request carries besides its id and conf (Airflow 3: no logical date)
    run_body: dict[str, Any] = {"logical_date": None}

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self.get(f"/dags/{dag_id}/dagRuns/{run_id}"))

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return list(self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", limit=100)["task_instances"])

    def mapped_task_instances(self, dag_id: str, run_id: str, task_id: str) -> list[dict[str, Any]]:
        """Every mapped instance of ``task_id`` in a run, by map index (the API pages 100 at a time)."""
        found: list[dict[str, Any]] = []
        while True:
            page = self.get(
                f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/listMapped",
                limit=100,
                offset=len(found),
                order_by="map_index",
            )
            found.extend(page["task_instances"])
            if not page["task_instances"] or len(found) >= page["total_entries"]:
                return found

    def task_instance(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, Any]:
        suffix = "" if map_index < 0 else f"/{map_index}"
        return dict(self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}{suffix}"))

    def task_key(self, ti: dict[str, Any]) -> tuple[str, ...]:
        """What the command line of a process running ``ti`` holds (see :func:`~.processes.worker_processes`)."""
        return (str(ti["id"]),)

    def task_state(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        """The task's ``task_state_store`` entries (Airflow 3.3+), key -> value."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/state-store"
        return {e["key"]: e["value"] for e in self.get(path)["task_state_store"]}

    def set_task_state(self, dag_id: str, run_id: str, task_id: str, state: str) -> Any:
        return self.request(
            "PATCH", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}", json={"new_state": state}
        )

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str, map_index: int = -1) -> Any:
        entry = self.get(
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}",
            map_index=map_index,
            **self.xcom_params,
        )
        return entry["value"]

    #: how to ask for an XCom value as the task pushed it
    xcom_params: dict[str, str] = {"deserialize": "true"}

    def links(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, str | None]:
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/links"
        return dict(self.get(path, map_index=map_index)["extra_links"])

    def task_log_records(
        self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1
    ) -> list[dict[str, Any]]:
        """A task try's log as Airflow serves it (worker and trigger logs merged), one dict per line."""
        response = self.session.get(
            f"{self.base_url}{self.prefix}/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
            params={"map_index": str(map_index), "full_content": "true"},
            headers={"Accept": "application/x-ndjson"},
            timeout=30,
        )
        _raise_for(response)
        return [json.loads(line) for line in response.text.splitlines() if line.strip()]

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1) -> str:
        """The same log as text: ``timestamp level event [error]`` per line."""
        lines = []
        for record in self.task_log_records(dag_id, run_id, task_id, try_number, map_index):
            line = f"{record.get('timestamp') or '':27} {record.get('level') or '':7} {record.get('event')}"
            if record.get("error_detail"):
                line += f" {json.dumps(record['error_detail'])[:600]}"
            lines.append(line)
        return "\n".join(lines)

    def failure_messages(self, records: list[dict[str, Any]]) -> list[str]:
        """The exceptions a task log reports, ``ExcType: message`` (Airflow 3: each record's ``error_detail``)."""
        return [
            f"{detail.get('exc_type')}: {detail.get('exc_value')}"
            for record in records
            for detail in record.get("error_detail") or []
        ]

    def describe_run(self, dag_id: str, run_id: str, *, logs: bool = True) -> str:
        """Run state, each task instance's state and, for failed ones, their log tail."""
        lines = [f"DAG run {dag_id}/{run_id}: {self.dag_run(dag_id, run_id)['state']}"]
        for ti in self.task_instances(dag_id, run_id):
            lines.append(f"  {ti['task_id']}[{ti['map_index']}] try {ti['try_number']}: {ti['state']}")
            if logs and ti["state"] in ("failed", "up_for_retry", "upstream_failed") and ti["try_number"]:
                text = self.task_log(dag_id, run_id, ti["task_id"], ti["try_number"], ti["map_index"])
                lines.extend("    | " + line for line in text.splitlines()[-25:])
        if self.explain is not None:
            lines.append(self.explain(dag_id, run_id))
        return "\n".join(lines)

    def wait_for_run(self, dag_id: str, run_id: str, *, timeout: float, interval: float = 0.5) -> str:
        """Wait until the run is ``success`` or ``failed``; return that state."""

        def finished() -> str | None:
            state = self.dag_run(dag_id, run_id)["state"]
            return state if state in TERMINAL_RUN_STATES else None

        return wait_until(
            f"DAG run {dag_id}/{run_id} to finish",
            finished,
            timeout=timeout,
            interval=interval,
            diagnose=lambda: self.describe_run(dag_id, run_id),
        )


class Airflow2Api(AirflowApi):
    """Airflow 2's stable REST API (``/api/v1`` on ``airflow webserver``), with basic auth."""

    prefix = "/api/v1"
    health_path = "/health"
    run_body: dict[str, Any] = {}
    # Airflow 2 stringifies values unless told otherwise ([api] enable_xcom_deserialize_support on).
    xcom_params = {"deserialize": "true", "stringify": "false"}

    def login(self) -> str:
        """Basic auth on every request (``[api] auth_backends`` = basic_auth), checked once."""
        self.session.auth = (self.username, self.password)
        self.get("/dags", limit=1)
        return ""

    def task_key(self, ti: dict[str, Any]) -> tuple[str, ...]:
        # No task instance id: its runner is "airflow task runner: <dag id> <task id> <run id> <job id>".
        return (ti["dag_id"], ti["task_id"], ti["dag_run_id"])

    def task_state(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        raise NotImplementedError("task_state_store is Airflow 3.3+")

    def links(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, str | None]:
        # Airflow 2 answers with the links themselves, name -> URL.
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/links"
        return dict(self.get(path, map_index=map_index))

    def set_task_state(self, dag_id: str, run_id: str, task_id: str, state: str) -> Any:
        return self.request(
            "PATCH",
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}",
            json={"new_state": state, "dry_run": False},
        )

    def task_log_records(
        self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1
    ) -> list[dict[str, Any]]:
        """Airflow 2 serves a task's log as text: one :func:`text_log_record` per line."""
        response = self.session.get(
            f"{self.base_url}{self.prefix}/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
            params={"map_index": str(map_index), "full_content": "true"},
            headers={"Accept": "text/plain"},
            timeout=30,
        )
        _raise_for(response)
        return [text_log_record(line) for line in response.text.splitlines() if line.strip()]

    def failure_messages(self, records: list[dict[str, Any]]) -> list[str]:
        """Airflow 2 logs a traceback: its exception lines, ``module.ExcType: message``, without the module."""
        found, in_traceback = [], False
        for record in records:
            event = str(record["event"])
            if event == "Traceback (most recent call last):":
                in_traceback = True
            elif in_traceback and "timestamp" not in record and not event.startswith(" ") and ": " in event:
                name, message = event.split(": ", 1)
                found.append(f"{name.rsplit('.', 1)[-1]}: {message}")
                in_traceback = False
        return found

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1) -> str:
        records = self.task_log_records(dag_id, run_id, task_id, try_number, map_index)
        return "\n".join(
            f"{r.get('timestamp') or '':28} {r.get('level') or '':7} {r['event']}" for r in records
        )


#: A line of Airflow 2's text logs: ``[timestamp] {file.py:123} LEVEL - message``.
_TEXT_LINE = re.compile(r"^\[(?P<timestamp>[^]]+)\] \{(?P<logger>[^}]*)\} (?P<level>[A-Z]+) - (?P<event>.*)$")
#: The triggerer's line for an event (Airflow 3 logs it as ``Trigger fired event`` with ``result``).
_FIRED = re.compile(r"^Trigger (?P<name>.+) fired: (?P<result>TriggerEvent<.*)$")


def text_log_record(line: str) -> dict[str, Any]:
    """One line of an Airflow 2 text log as Airflow 3 logs it (``event``, ``level``, ``timestamp``; a
    trigger's event as ``{"event": "Trigger fired event", "name": ..., "result": ...}``); a line of
    another shape (a traceback's) as ``{"event": line}``."""
    match = _TEXT_LINE.match(line)
    if match is None:
        return {"event": line}
    record: dict[str, Any] = {
        "timestamp": match["timestamp"],
        "level": match["level"].lower(),
        "logger": match["logger"],
        "event": match["event"],
    }
    if fired := _FIRED.match(match["event"]):
        record.update(event="Trigger fired event", name=fired["name"], result=fired["result"])
    return record


def _raise_for(response: requests.Response, *, force: bool = False) -> None:
    if force or response.status_code >= 400:
        raise AirflowApiError(
            f"{response.request.method} {response.url} -> HTTP {response.status_code}: {response.text[:2000]}"
        )
