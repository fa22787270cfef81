#!/usr/bin/env bash
# Create (or refresh) a virtualenv with this package, its test tools and one Airflow line.
#   scripts/setup-venv.sh VENV_DIR AIRFLOW_REQUIREMENT [EXTRAS] [PINS_FILE]
#   e.g. .venv "apache-airflow>=3,<4" test,e2e    or    .venv-af30 "apache-airflow>=3.0,<3.1" test scripts/pins/airflow-3.0.txt
# PINS_FILE: uv constraints for the line (what Airflow's constraints file for that release implied).
# Needs only python3 (>= 3.10); installs uv into the venv for fast, reproducible resolution.
set -euo pipefail
venv=$1
airflow_req=$2
extras=${3:-test}
pins=${4:-}
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
stamp="$venv/.installed"
want="$(cat pyproject.toml; echo "$airflow_req [$extras]"; if [ -n "$pins" ]; then cat "$pins"; fi)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
"$venv/bin/python" -m pip --version >/dev/null 2>&1 || "$venv/bin/python" -m ensurepip >/dev/null
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check uv
"$venv/bin/python" -m uv pip install --quiet --python "$venv/bin/python" ${pins:+--constraint "$pins"} \
  -e ".[$extras]" "$airflow_req"
printf '%s' "$want" > "$stamp"
