"""
The demo: example DAG 1 through real Airflow (``airflow dags test``) against the bundled Blink emulator.

Starts the emulator in its own process, prepares a private Airflow home, runs the DAG and prints
the execution id, state and playbook output that Airflow received. Run it with ``make demo``.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from airflow_provider_blink.testing.launcher import EmulatorDidNotStart, EmulatorProcess

REPO = Path(__file__).resolve().parent.parent
DAG_ID = "example_blink_enrich_pipeline"
API_KEY = "blink-demo-key"
WORKSPACE = "demo-workspace"
RESULT_MARKER = "Blink result: "


def airflow_env(blink: EmulatorProcess) -> dict[str, str]:
    home = REPO / ".airflow-home" / "demo"
    home.mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "example_dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        **blink.connection_env(),
        "BLINK_EXAMPLE_POLL_INTERVAL": "1",
    }


def airflow(env: dict[str, str], *args: str, log: Path) -> int:
    with log.open("wb") as out:
        return subprocess.run(
            [sys.executable, "-m", "airflow", *args], env=env, stdout=out, stderr=subprocess.STDOUT
        ).returncode


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="blink-demo-"))
    blink = EmulatorProcess(api_key=API_KEY, workspace_id=WORKSPACE, log_path=workdir / "emulator.log")
    try:
        blink.start(timeout=30)
    except EmulatorDidNotStart as exc:
        sys.exit(f"The Blink emulator did not start: {exc}")
    try:
        print(f"Blink emulator (separate process) at {blink.url}, workspace {WORKSPACE!r}")
        env = airflow_env(blink)
        if airflow(env, "db", "migrate", log=workdir / "db-migrate.log") != 0:
            sys.exit(f"airflow db migrate failed; see {workdir / 'db-migrate.log'}")
        print(f"Running DAG {DAG_ID!r} with `airflow dags test` (deferrable task, real Airflow) ...")
        run_log = workdir / "dags-test.log"
        code = airflow(env, "dags", "test", DAG_ID, log=run_log)
        lines = run_log.read_text(errors="replace").splitlines()
        results = [line.split(RESULT_MARKER, 1)[1] for line in lines if RESULT_MARKER in line]
        if code != 0 or not results:
            print("\n".join(lines[-40:]))
            print(f"\nThe DAG run failed (exit code {code}); full log: {run_log}")
            return 1
        result = ast.literal_eval(results[-1])
        print(f"DAG run succeeded; full log: {run_log}")
        print(f"  execution id : {result['execution_id']}")
        print(f"  state        : {result['state']}")
        print(f"  output       : {json.dumps(result['output'])}")
        print(f"  block the IP : {result['block_ip']}")
        return 0
    finally:
        blink.stop(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
