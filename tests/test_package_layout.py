"""
The package's rooms: no import cycle between them, few modules for the hooks, Blink's paths in one place.

A room is a subpackage (``hooks``, ``triggers`` ...) or a top-level module (``api``, ``tasks`` ...).
Imports are read from the source, those inside functions and under ``TYPE_CHECKING`` included.
"""

from __future__ import annotations

import ast
import asyncio
import re
import sys
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

import airflow_provider_blink
from airflow_provider_blink.compat import TaskDeferred
from airflow_provider_blink.hooks import blink as _hook  # noqa: F401  imported as a worker has it, not in the trace
from airflow_provider_blink.operators.blink import BlinkExecutePlaybookOperator
from airflow_provider_blink.triggers import blink as _trigger  # noqa: F401

from support.task_instance import RecordingTI, context_for
from support.triggers import next_event

PACKAGE = Path(airflow_provider_blink.__file__).parent
NAME = PACKAGE.name


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def room(module: str) -> str:
    """``airflow_provider_blink.hooks.blink`` -> ``hooks``; ``airflow_provider_blink.api`` -> ``api``."""
    return module.split(".")[1] if "." in module else module


def imported_modules(path: Path) -> set[str]:
    """The package's modules (and packages) that ``path`` imports, anywhere in it."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if name.startswith(f"{NAME}.") and _exists(name)}


def _exists(module: str) -> bool:
    relative = Path(*module.split(".")[1:])
    return (PACKAGE / relative).with_suffix(".py").exists() or (PACKAGE / relative).is_dir()


def room_graph() -> dict[str, set[str]]:
    """Which rooms each room imports from."""
    graph: dict[str, set[str]] = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        here = room(module_name(path))
        graph[here].update(room(name) for name in imported_modules(path) if room(name) != here)
    return graph


def cycle_in(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as the rooms along it, or ``None``."""
    visiting: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> list[str] | None:
        if node in visiting:
            return [*visiting[visiting.index(node) :], node]
        if node in done:
            return None
        visiting.append(node)
        for following in sorted(graph.get(node, ())):
            if (found := visit(following)) is not None:
                return found
        visiting.pop()
        done.add(node)
        return None

    return next((found for node in sorted(graph) if (found := visit(node)) is not None), None)


def test_no_import_cycle_between_the_rooms():
    assert cycle_in(room_graph()) is None


def test_the_cycle_check_finds_a_cycle():
    assert cycle_in({"hooks": {"api"}, "api": {"tasks"}, "tasks": {"hooks"}}) == [
        "api",
        "tasks",
        "hooks",
        "api",
    ]
    assert cycle_in({"hooks": {"api"}, "tasks": {"hooks", "api"}}) is None


def test_the_hooks_are_at_most_five_modules():
    modules = sorted(path.name for path in (PACKAGE / "hooks").glob("*.py") if path.name != "__init__.py")
    assert len(modules) <= 5, modules


def test_blinks_api_paths_are_written_only_in_the_registry():
    """Every path of Blink's API lives in endpoints.py: no other module spells one out."""
    path_like = re.compile(r"""["'][^"']*/(?:executions|playbooks/|execute\b|steps\b|cancel\b)""")
    spelled = [
        f"{path.relative_to(PACKAGE)}:{number}"
        for path in PACKAGE.rglob("*.py")
        if path.name != "endpoints.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if path_like.search(line)
    ]
    assert spelled == []


def test_one_deferred_run_crosses_at_most_ten_modules(emulator):
    """From the operator's ``execute`` through the trigger to ``execute_complete``: the package modules whose code runs."""
    crossed: set[str] = set()

    def note(frame: Any, event: str, arg: Any) -> None:
        name = frame.f_globals.get("__name__", "")
        if (
            event == "call"
            and frame.f_code.co_name != "<module>"  # a lazy import, not a step of the run
            and name.startswith(f"{NAME}.")
            and not name.startswith(f"{NAME}.testing")
        ):
            crossed.add(name.removeprefix(f"{NAME}."))

    ti = RecordingTI()
    task = BlinkExecutePlaybookOperator(task_id="run", playbook_id="slow", deferrable=True, poll_interval=0.1)
    threading.setprofile(note)  # the connection is read in a worker thread in the triggerer
    sys.setprofile(note)
    try:
        with pytest.raises(TaskDeferred) as deferred:
            task.execute(context_for(ti))
        emulator.finish(ti.pushed["execution_id"], "Completed")
        event = asyncio.run(next_event(deferred.value.trigger))
        result = task.execute_complete(context_for(ti), event, **(deferred.value.kwargs or {}))
    finally:
        sys.setprofile(None)
        threading.setprofile(None)

    assert result["state_ui"] == "Completed"
    assert {"operators.blink", "triggers.blink", "hooks.poller"} <= crossed, "the whole deferred path ran"
    assert len(crossed) <= 10, f"{len(crossed)}: {sorted(crossed)}"
