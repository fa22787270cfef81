#!/usr/bin/env bash
# End-to-end suite: a real Airflow deployment (PostgreSQL, api-server, scheduler with LocalExecutor,
# dag-processor, triggerer; each its own process) runs the example DAGs against the Blink emulator,
# and headless Chromium checks the web UI. Installs what it needs on a fresh Debian machine.
#   scripts/e2e.sh [pytest args...]      e.g. scripts/e2e.sh -k triggerer
#
# BLINK_E2E_LINE picks the Airflow line (a row of scripts/lines.txt); default "newest", the whole
# suite. On an older line (2.11, 3.0, ...) it runs the lighter variant, the tests marked
# "older_lines" (the deferrable example, a worker SIGKILL whose retry follows the running execution,
# durable=False retries that start their own run, the steps in the task log, and start_from_trigger),
# on that line's own Airflow; on 2.11 the deployment is webserver, scheduler (parsing the DAGs itself)
# and triggerer.
#   BLINK_E2E_LINE=3.0 scripts/e2e.sh      BLINK_E2E_LINE=2.11 scripts/e2e.sh
set -euo pipefail
cd "$(dirname "$0")/.."
line=${BLINK_E2E_LINE:-newest}
began=$SECONDS

if [ "$line" = newest ]; then
  scripts/install-debian-packages.sh postgresql chromium chromium-driver
  # Its own virtualenv: the newest Airflow 3 plus Playwright (driving the system Chromium, never a
  # downloaded browser) and the PostgreSQL drivers Airflow needs (psycopg2 for the ORM, asyncpg
  # async); shared with scripts/e2e-scale.sh, whose "scale" group (the Celery provider) it installs.
  venv=.venv-e2e
  scripts/setup-venv.sh newest test,e2e,scale "$venv"
  selection=()
else
  scripts/install-debian-packages.sh postgresql  # no browser: the web UI test is the newest line's
  venv=.venv-e2e-af${line//./}
  [ "$line" = 2.11 ] && venv=.venv-e2e-af2
  scripts/setup-venv.sh "$line" test,e2e "$venv"
  selection=(-m older_lines)
fi

airflow=$("$venv/bin/python" -c 'from importlib.metadata import version; print(version("apache-airflow"))')
echo "== end-to-end suite on Airflow $airflow (line $line${selection[*]:+, ${selection[*]}})"
status=0
"$venv/bin/python" -m pytest tests/e2e --ignore=tests/e2e/scale -p no:cacheprovider -v --durations=20 \
  "${selection[@]}" "$@" || status=$?
echo "== end-to-end suite on Airflow $airflow (line $line): exit $status after $((SECONDS - began)) s wall time"
exit $status
