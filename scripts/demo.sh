#!/usr/bin/env bash
# The demo: sets up .venv (newest Airflow 3) and runs example DAG 1 against the Blink emulator.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh .venv "apache-airflow>=3,<4"
exec .venv/bin/python scripts/demo.py
