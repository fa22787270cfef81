#!/usr/bin/env bash
# The whole test suite: lint, format, types, then pytest on several lines of scripts/lines.txt.
#   scripts/test.sh [--all] [PYTEST_ARGS...]
# By default the newest releases and Airflow 2.11 as its users have it (quick); --all runs every line
# there (each Airflow line as its users have it, and the declared floors): what CI runs. Sets up one
# virtualenv per line itself; needs only python3 (>= 3.10).
set -euo pipefail
cd "$(dirname "$0")/.."

# "core" in scripts/lines.txt: the hook, operator, sensor, trigger and notifier tests.
core=(tests/hooks tests/triggers tests/operators/test_blink.py tests/sensors/test_blink.py tests/notifications
  tests/test_connection.py tests/test_retries.py)
lines=(newest 2.11)
all=0
if [ "${1:-}" = "--all" ]; then
  shift
  all=1
  mapfile -t lines < <(awk '!/^#/ && NF {print $1}' scripts/lines.txt)
fi
for line in "${lines[@]}"; do
  scripts/setup-venv.sh "$line" test
done

echo "== ruff (lint + format)"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy"
.venv/bin/mypy
for line in "${lines[@]}"; do
  read -r _ venv _ as_of _ tests <<<"$(awk -v line="$line" '$1 == line' scripts/lines.txt)"
  paths=()
  if [ "$all" = 1 ] && [ "$tests" = core ]; then
    paths=("${core[@]}")
  fi
  echo "== pytest, line $line (packages as of $as_of; ${paths[*]:-the whole suite}): $("$venv/bin/python" scripts/versions.py)"
  SECONDS=0
  "$venv/bin/python" -m pytest "${paths[@]}" "$@"
  echo "== line $line: ${SECONDS}s"
done
