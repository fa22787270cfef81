#!/usr/bin/env bash
# The whole test suite: lint, format, types, then pytest on several lines of scripts/lines.txt.
#   scripts/test.sh [--all] [PYTEST_ARGS...]
# By default the newest releases and Airflow 2.11 as its users have it (quick); --all runs every line
# there (each Airflow line as its users have it, and the declared floors): what CI runs. Sets up one
# virtualenv per line itself; needs only python3 (>= 3.10).
set -euo pipefail
cd "$(dirname "$0")/.."

lines=(newest 2.11)
if [ "${1:-}" = "--all" ]; then
  shift
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
  if [ "$tests" != all ]; then
    IFS=, read -r -a paths <<<"$tests"
  fi
  echo "== pytest, line $line (packages as of $as_of): $("$venv/bin/python" scripts/versions.py)"
  SECONDS=0
  "$venv/bin/python" -m pytest "${paths[@]}" "$@"
  echo "== line $line: ${SECONDS}s"
done
