"""
The "Testing your DAGs" recipe (docs/testing.md) works as written on this Airflow line.

Its two files (docs/recipes/test-your-dags/) are what the page shows; they run here as a user runs
them: copied to a project of their own, in their own pytest process, without this suite's conftest.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

RECIPE = Path(__file__).resolve().parent.parent / "docs" / "recipes" / "test-your-dags"


def test_the_documented_recipe_passes(tmp_path, airflow_db):
    project = tmp_path / "my-project"
    shutil.copytree(RECIPE, project)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "PYTEST_"))}
    # The suite's Airflow home: its database is migrated already (the recipe migrates it again: quick).
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "1 passed" in result.stdout
