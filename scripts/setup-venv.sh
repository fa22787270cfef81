#!/usr/bin/env bash
# Create (or refresh) the virtualenv of one line of scripts/lines.txt: this package (editable), the
# extras asked for, and that line's Airflow, every package resolved as of the line's date.
#   scripts/setup-venv.sh LINE [EXTRAS] [VENV_DIR]
#   e.g. scripts/setup-venv.sh newest    or    scripts/setup-venv.sh 3.0 test,e2e .venv-e2e-af30
# Needs only python3 (>= 3.10); installs a pinned uv into the venv to resolve and install.
set -euo pipefail
cd "$(dirname "$0")/.."
line=$1
extras=${2:-test}
UV_VERSION=0.13.9  # uv itself is pinned: a new uv could resolve differently
row=$(awk -v line="$line" '$1 == line' scripts/lines.txt)
if [ -z "$row" ]; then
  echo "setup-venv.sh: no line '$line' in scripts/lines.txt" >&2
  exit 2
fi
read -r _ default_venv airflow_req as_of resolution _ <<<"$row"
venv=${3:-$default_venv}
stamp="$venv/.installed"
want="$(cat pyproject.toml; echo "$row [$extras] uv $UV_VERSION")"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
# Anything else is built anew (uv's cache makes that quick): an install into an older venv would keep
# whatever newer packages it already holds.
rm -rf "$venv"
"${PYTHON:-python3}" -m venv "$venv"
echo "== setting up $venv: $airflow_req [$extras], packages as of $as_of ($resolution)"
"$venv/bin/python" -m pip --version >/dev/null 2>&1 || "$venv/bin/python" -m ensurepip >/dev/null
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
# --reinstall-package: the editable package's own metadata (entry points, dependencies) stays current.
"$venv/bin/python" -m uv pip install --quiet --python "$venv/bin/python" \
  --exclude-newer "$as_of" --resolution "$resolution" --reinstall-package airflow-provider-blink \
  -e ".[$extras]" "$airflow_req"
if [ "$resolution" = lowest-direct ]; then
  "$venv/bin/python" scripts/versions.py --check-floors
fi
printf '%s' "$want" > "$stamp"
