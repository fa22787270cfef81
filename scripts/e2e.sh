#!/usr/bin/env bash
# End-to-end suite: a real Airflow 3 deployment (PostgreSQL, api-server, scheduler with LocalExecutor,
# dag-processor, triggerer; each its own process) runs the example DAGs against the Blink emulator,
# and headless Chromium checks the web UI. Installs what it needs on a fresh Debian machine.
#   scripts/e2e.sh [pytest args...]      e.g. scripts/e2e.sh -k triggerer
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-debian-packages.sh postgresql chromium chromium-driver

# Its own virtualenv: the newest Airflow 3 plus Playwright (driving the system Chromium, never a
# downloaded browser) and the PostgreSQL drivers Airflow needs (psycopg2 for the ORM, asyncpg async);
# shared with scripts/e2e-scale.sh, whose "scale" extra (the Celery provider) it installs too.
scripts/setup-venv.sh newest test,e2e,scale .venv-e2e

echo "== end-to-end suite on Airflow $(.venv-e2e/bin/python -c 'from importlib.metadata import version; print(version("apache-airflow"))')"
exec .venv-e2e/bin/python -m pytest tests/e2e --ignore=tests/e2e/scale -p no:cacheprovider -v --durations=20 "$@"
