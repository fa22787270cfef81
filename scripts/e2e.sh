#!/usr/bin/env bash
# End-to-end suite: a real Airflow 3 deployment (PostgreSQL, api-server, scheduler with LocalExecutor,
# dag-processor, triggerer; each its own process) runs the example DAGs against the Blink emulator,
# and headless Chromium checks the web UI. Installs what it needs on a fresh Debian machine.
#   scripts/e2e.sh [pytest args...]      e.g. scripts/e2e.sh -k triggerer
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=(postgresql)
[ -x /usr/bin/chromium ] || missing+=(chromium chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
  echo "== apt-get install ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# Debian's package starts its own cluster on 5432; the suite runs a private one on a free port instead.

# Its own virtualenv: the newest Airflow 3 plus Playwright (driving the system Chromium, never a
# downloaded browser) and the PostgreSQL drivers Airflow needs (psycopg2 for the ORM, asyncpg async).
scripts/setup-venv.sh .venv-e2e "apache-airflow>=3,<4" test,e2e,scale

echo "== end-to-end suite on Airflow $(.venv-e2e/bin/python -c 'from importlib.metadata import version; print(version("apache-airflow"))')"
exec .venv-e2e/bin/python -m pytest tests/e2e --ignore=tests/e2e/scale -p no:cacheprovider -v --durations=20 "$@"
