#!/usr/bin/env bash
# Scale-out suite: a distributed Airflow 3 deployment (PostgreSQL, Redis, api-server, scheduler with
# the CeleryExecutor, dag-processor, two triggerers, two Celery workers; each its own process) runs
# hundreds of deferred Blink tasks, loses a triggerer and a worker mid-wait, runs one unmapped fan-out
# started in the triggerer and the same one deferrable, and prints figures.
# Installs what it needs on a fresh Debian machine.
#   scripts/e2e-scale.sh [pytest args...]      e.g. BLINK_SCALE_TASKS=100 scripts/e2e-scale.sh -k fan_out
# BLINK_SCALE_TASKS: mapped tasks of the fan-out (default 500); BLINK_SCALE_UNMAPPED: tasks of each
# unmapped fan-out (default 50).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-debian-packages.sh postgresql redis-server

# The same virtualenv as scripts/e2e.sh (its "scale" group adds the Celery provider).
scripts/setup-venv.sh newest test,e2e,scale .venv-e2e

echo "== scale-out suite on Airflow $(.venv-e2e/bin/python -c 'from importlib.metadata import version; print(version("apache-airflow"))')"
exec .venv-e2e/bin/python -m pytest tests/e2e/scale -p no:cacheprovider -v --durations=10 "$@"
