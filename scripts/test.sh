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
# The lines run side by side, BLINK_TEST_JOBS at a time (default 2: most of a line's time is spent
# waiting on subprocesses, polls and timers, so two lines take little longer than one on two cores).
# Each line writes its own log (artifacts/test-logs/<line>.log), printed whole when the line ends. After
# a line fails, no further line starts, and the script fails once the running ones end.
logs=artifacts/test-logs
mkdir -p "$logs"
run_line() {
  local line=$1
  shift
  read -r _ venv _ as_of _ tests <<<"$(awk -v line="$line" '$1 == line' scripts/lines.txt)"
  local paths=()
  if [ "$all" = 1 ] && [ "$tests" = core ]; then
    paths=("${core[@]}")
  fi
  echo "== pytest, line $line (packages as of $as_of; ${paths[*]:-the whole suite}): $("$venv/bin/python" scripts/versions.py)"
  SECONDS=0
  local status=0
  "$venv/bin/python" -m pytest "${paths[@]}" "$@" || status=$?
  echo "== line $line: ${SECONDS}s, exit status $status"
  return "$status"
}
declare -A running=()
failed=()
finish_one() {
  local pid status=0
  wait -n -p pid || status=$?
  local line=${running[$pid]}
  unset "running[$pid]"
  cat "$logs/$line.log"
  if [ "$status" != 0 ]; then
    failed+=("$line")
  fi
}
for line in "${lines[@]}"; do
  while [ "${#running[@]}" -ge "${BLINK_TEST_JOBS:-2}" ]; do
    finish_one
  done
  [ "${#failed[@]}" = 0 ] || break
  echo "== line $line started ($logs/$line.log)"
  run_line "$line" "$@" >"$logs/$line.log" 2>&1 &
  running[$!]=$line
done
while [ "${#running[@]}" -gt 0 ]; do
  finish_one
done
if [ "${#failed[@]}" != 0 ]; then
  echo "== FAILED: line(s) ${failed[*]} (logs in $logs/)"
  exit 1
fi
