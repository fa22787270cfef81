#!/usr/bin/env bash
# The demo is the quickstart (docs/quickstart.md), run as written: a fresh virtualenv with Airflow and
# this checkout's wheel, `airflow db migrate`, the Blink emulator in the background, its connection line
# pasted, example DAG 1 copied into the DAG folder and run with `airflow dags test` (a deferrable task,
# real Airflow). Builds the wheel first (scripts/package.sh). Needs only python3 (>= 3.10).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/package.sh
exec python3 scripts/quickstart.py
