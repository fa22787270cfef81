"""The Blink the tests run against: its key, workspace and playbooks, and reading back what it saw."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import requests

from airflow_provider_blink.testing import DEMO_WORKSPACE, BlinkEmulator, Fault, ScriptedPlaybook

from support.background import meanwhile

#: A key distinctive enough to search for in logs, XCom and messages.
API_KEY = "blink-test-key-7f3a9c2e51d84b06"
WORKSPACE = DEMO_WORKSPACE
#: A read-only (Viewer) key, for emulators that have one.
VIEWER_KEY = "blink-viewer-key-0b1c2d3e4f"

#: A request timeout short enough for tests that need one to expire (connection extra ``timeout``), yet
#: far above how long the in-process emulator takes to answer, even on a loaded machine with a GC pause.
SHORT_TIMEOUT = 1.5
#: How long a ``slow``/``slow_after`` fault holds its answer: well past :data:`SHORT_TIMEOUT` (tests wait for it).
SLOWER_THAN_TIMEOUT = 2 * SHORT_TIMEOUT

#: Quick playbooks for tests, beside the demo ones (enrich-ioc, isolate-host, failing-playbook).
TEST_PLAYBOOKS = [
    ScriptedPlaybook(
        id="quick-ok",
        name="Quick success",
        workspace_id=WORKSPACE,
        duration=0.3,
        final_state="Completed",
        output={"answer": 42},
    ),
    ScriptedPlaybook(
        id="quick-fail",
        name="Quick failure",
        workspace_id=WORKSPACE,
        duration=0.3,
        final_state="Failed",
        error_details={"message": "step 'lookup' failed: upstream returned 500", "error_code": "STEP_FAILED"},
    ),
    # Runs for an hour: "still running" whatever the machine's load (a test that needs it ended cancels it).
    ScriptedPlaybook(
        id="slow", name="Slow", workspace_id=WORKSPACE, duration=3600.0, final_state="Completed"
    ),
    # Runs until a test finishes it (BlinkEmulator.finish): a worker crash and a retry fit in.
    ScriptedPlaybook(
        id="until-finished",
        name="Until finished",
        workspace_id=WORKSPACE,
        duration=3600.0,
        final_state="Completed",
        output={"answer": 42},
    ),
]

#: An execute body with every field Blink's execute endpoint takes, each with a value.
EXECUTE_BODY: dict[str, Any] = {
    "input_values": {"ip": "203.0.113.9", "tags": ["phishing"]},
    "event": {"alert": {"id": 7, "severity": "high"}},
    "runner": "runner-group-eu",
    "trigger_type": "airflow",
    "callback": {
        "url": "https://hooks.example.com/blink",
        "method": "POST",
        "headers": {"X-Token": "t"},
        "body": {"ticket": "SEC-1"},
        "disableSSL": False,
        "excludeDefaultMetadata": True,
    },
    "past_exec_ref": "exec-0",
}


def start_directly(
    emulator: BlinkEmulator,
    playbook_id: str,
    body: Mapping[str, Any] | None = None,
    workspace_id: str = WORKSPACE,
) -> str:
    """Start a run in the emulator over HTTP, not through the provider (as another tool or a person would)."""
    response = requests.post(
        f"{emulator.url}/api/v1/workspace/{workspace_id}/playbooks/{playbook_id}/execute",
        headers={"BLINK-API-KEY": emulator.api_key},
        json=dict(body or {}),
        timeout=5,
    )
    response.raise_for_status()
    return str(response.json()["execution_id"])


def unfiltered(emulator: BlinkEmulator) -> BlinkEmulator:
    """
    From now on every list answer ignores its filter and ``limit``, and a get finds a run in any workspace.

    No document promises more: blink-api-contract.md#documented-list shows a page's shape, not that Blink applies the RQL asked
    for; what a lookup takes is checked on the record it reads itself (docs/blink-api-contract.md).
    """
    return inject(emulator, [Fault("list", "unfiltered", times=None), Fault("get", "unfiltered", times=None)])


def inject(emulator: BlinkEmulator, faults: Iterable[Fault]) -> BlinkEmulator:
    """Queue each of ``faults`` in ``emulator``, in order; the emulator."""
    for fault in faults:
        emulator.inject(fault)
    return emulator


def requests_to(emulator: BlinkEmulator, method: str, suffix: str) -> list[Any]:
    """The requests the emulator received with ``method`` to a path ending in ``suffix``, oldest first."""
    return [r for r in emulator.requests if r.method == method and r.path.endswith(suffix)]


def url_of(emulator: BlinkEmulator, playbook_id: str, execution_id: str) -> str:
    """The execution's page in the emulated Blink UI (what the extra link and the summary point at)."""
    return f"{emulator.url}/workspace/{WORKSPACE}/workflow/{playbook_id}/edit?execution_id={execution_id}"


#: How a held playbook ends: its final ``state_ui`` and ``error_details``.
Ending = tuple[str, "dict[str, Any] | None"]


@contextlib.contextmanager
def finished_once_read(
    emulator: BlinkEmulator, endings: Mapping[str, Ending], reads: int = 2
) -> Iterator[None]:
    """
    Hold the executions of the playbooks in ``endings`` running until each has been read ``reads`` times.

    Then finish it as its ending says. A test that must see a waiting task poll more than once needs
    no timing: however slow the machine, the execution ends only after it has been watched.
    """
    for playbook_id in endings:
        emulator.add_playbook(ScriptedPlaybook(id=playbook_id, workspace_id=WORKSPACE, duration=3600))
    done: set[str] = set()

    def finish_those_read() -> bool:
        for execution in emulator.executions:
            ending = endings.get(execution["playbook_id"])
            if ending and execution["id"] not in done and reads_of(emulator, execution["id"]) >= reads:
                emulator.finish(execution["id"], ending[0], error_details=ending[1])
                done.add(execution["id"])
        return False  # until the block ends: executions started later are held too

    with meanwhile(finish_those_read):
        yield


def reads_of(emulator: BlinkEmulator, execution_id: str) -> int:
    """How many times the execution was read with the single GET."""
    return len(requests_to(emulator, "GET", f"/executions/{execution_id}"))


@contextlib.contextmanager
def finishing(emulator: BlinkEmulator, which: Callable[[], str | None]) -> Iterator[list[str]]:
    """
    While the block runs, wait until ``which()`` names an execution, then finish it (Completed).

    Yields a list that then holds the state the execution was in just before it was finished.
    """
    seen: list[str] = []

    def finish_when_named() -> bool:
        if (execution_id := which()) is None:
            return False
        seen.append(emulator.execution(execution_id)["state_ui"])
        emulator.finish(execution_id)
        return True

    with meanwhile(finish_when_named):
        yield seen


def once_read(emulator: BlinkEmulator, execution_id: str, reads: int) -> Callable[[], str | None]:
    """For :func:`finishing`: ``execution_id`` once read ``reads`` more times with GET (its reader met it running)."""
    first = reads_of(emulator, execution_id)
    return lambda: execution_id if reads_of(emulator, execution_id) >= first + reads else None


def new_one(emulator: BlinkEmulator) -> Callable[[], str | None]:
    """For :func:`finishing`: the first execution started from now on."""
    before = len(emulator.executions)
    return lambda: executions[before]["id"] if len(executions := emulator.executions) > before else None


def listed_ids(emulator: BlinkEmulator) -> list[set[str]]:
    """For each list call the emulator received, oldest first, the ids its RQL ``$or`` filter asked for."""
    calls = []
    for record in emulator.requests:
        if record.endpoint == "list":
            alternatives = json.loads(record.query["q"])["filter"]["$or"]
            calls.append({alternative["id"] for alternative in alternatives})
    return calls


def read_ids(emulator: BlinkEmulator) -> list[str]:
    """The execution ids of the single GETs the emulator received, oldest first."""
    return [record.path.rsplit("/", 1)[-1] for record in emulator.requests if record.endpoint == "get"]
