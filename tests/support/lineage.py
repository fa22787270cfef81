"""The OpenLineage events a test's DAG runs emit, written by the OpenLineage provider's file transport."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Any

TRANSPORT = "AIRFLOW__OPENLINEAGE__TRANSPORT"


def configure_openlineage(home: Path) -> None:
    """
    Give the session an OpenLineage transport, a file in ``home``, with selective enable.

    Airflow registers the provider's listener only when a transport is configured as it loads its plugins,
    once per process: so the session has one from the start, and only the DAGs a test enables
    (``enable_lineage``) emit events. Without the provider installed, nothing reads these settings.
    """
    if TRANSPORT in os.environ:
        return
    path = home / "openlineage-events.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")
    os.environ[TRANSPORT] = json.dumps({"type": "file", "log_file_path": str(path), "append": True})
    os.environ["AIRFLOW__OPENLINEAGE__SELECTIVE_ENABLE"] = "True"


class Lineage:
    """The events written to the session's file since this was made, each a dict as the file holds it."""

    def __init__(self) -> None:
        self.path = Path(json.loads(os.environ[TRANSPORT])["log_file_path"])
        self._start = self.path.stat().st_size if self.path.exists() else 0

    def events(self, namespace: str | None, name: str) -> list[dict[str, Any]]:
        """The events of one job (of any namespace when ``namespace`` is ``None``), in the order written."""
        with self.path.open() as written:
            written.seek(self._start)
            lines = written.read().split("\n")[
                :-1
            ]  # each event ends its line; a line still being written waits
        return [
            event
            for event in map(json.loads, lines)
            if event["job"]["name"] == name and namespace in (None, event["job"]["namespace"])
        ]


def kinds(events: list[dict[str, Any]]) -> list[str]:
    """
    The events' types, a repeated START of one run as one.

    A task that defers runs again when its trigger fires, and the listener reports each run's START.
    """
    runs = itertools.groupby((event["eventType"], event["run"]["runId"]) for event in events)
    return [kind for (kind, _), _ in runs]
