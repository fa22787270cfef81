#!/usr/bin/env bash
# The whole test suite: lint, format, types, then pytest on the newest Airflow 3 and on Airflow 2.11.
# Sets up .venv (Airflow 3) and .venv-af2 (Airflow 2.11) itself; needs only python3 (>= 3.10).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh .venv "apache-airflow>=3,<4"
scripts/setup-venv.sh .venv-af2 "apache-airflow>=2.11,<2.12"

echo "== ruff (lint + format)"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy"
.venv/bin/mypy
for venv in .venv .venv-af2; do
  echo "== pytest on Airflow $("$venv/bin/python" -c 'from importlib.metadata import version; print(version("apache-airflow"))')"
  "$venv/bin/python" -m pytest "$@"
done
