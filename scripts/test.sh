#!/usr/bin/env bash
# The whole test suite: lint, format, types, then pytest on several Airflow lines.
#   scripts/test.sh [--all] [PYTEST_ARGS...]
# By default the newest Airflow 3 and Airflow 2.11 (quick); --all adds the newest patch of 3.0, 3.1
# and 3.2 (what CI runs). Sets up one virtualenv per line itself; needs only python3 (>= 3.10).
set -euo pipefail
cd "$(dirname "$0")/.."

# venv | Airflow requirement | pins (uv constraints, see the file's comments) — the quick lines first.
lines=(
  ".venv|apache-airflow>=3,<4|"
  ".venv-af2|apache-airflow>=2.11,<2.12|"
)
if [ "${1:-}" = "--all" ]; then
  shift
  lines+=(
    ".venv-af30|apache-airflow>=3.0,<3.1|scripts/pins/airflow-3.0.txt"
    ".venv-af31|apache-airflow>=3.1,<3.2|"
    ".venv-af32|apache-airflow>=3.2,<3.3|scripts/pins/airflow-3.2.txt"
  )
fi
for line in "${lines[@]}"; do
  IFS='|' read -r venv requirement pins <<<"$line"
  scripts/setup-venv.sh "$venv" "$requirement" test "$pins"
done

echo "== ruff (lint + format)"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy"
.venv/bin/mypy
for line in "${lines[@]}"; do
  venv=${line%%|*}
  echo "== pytest on Airflow $("$venv/bin/python" -c 'from importlib.metadata import version; print(version("apache-airflow"))')"
  "$venv/bin/python" -m pytest "$@"
done
