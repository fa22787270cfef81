#!/usr/bin/env bash
# Create (or refresh) the virtualenv of one line of scripts/lines.txt: this package (editable), the
# dependency groups asked for (pyproject.toml's [dependency-groups]: developer tools, never published),
# and that line's Airflow, every package resolved as of the line's date.
#   scripts/setup-venv.sh LINE [GROUPS] [VENV_DIR]
#   e.g. scripts/setup-venv.sh newest    or    scripts/setup-venv.sh 3.0 test,e2e .venv-e2e-af30
# GROUPS without the package: "docs" and "release" alone (scripts/docs.sh, scripts/package.sh) install
# only those groups: mkdocstrings reads the source and twine reads the built files, neither imports them.
# Needs only python3 (>= 3.10); installs a pinned uv into the venv to resolve and install.
set -euo pipefail
cd "$(dirname "$0")/.."
line=$1
groups=${2:-test}
UV_VERSION=0.13.9  # uv itself is pinned: a new uv could resolve differently
row=$(awk -v line="$line" '$1 == line' scripts/lines.txt)
if [ -z "$row" ]; then
  echo "setup-venv.sh: no line '$line' in scripts/lines.txt" >&2
  exit 2
fi
read -r _ default_venv airflow_req as_of resolution _ <<<"$row"
venv=${3:-$default_venv}
stamp="$venv/.installed"
want="$(cat pyproject.toml; echo "$row [$groups] uv $UV_VERSION")"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
# Anything else is built anew (uv's cache makes that quick): an install into an older venv would keep
# whatever newer packages it already holds.
rm -rf "$venv"
"${PYTHON:-python3}" -m venv "$venv"
echo "== setting up $venv: $airflow_req [$groups], packages as of $as_of ($resolution)"
"$venv/bin/python" -m pip --version >/dev/null 2>&1 || "$venv/bin/python" -m ensurepip >/dev/null
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
group_args=()
IFS=, read -r -a group_list <<<"$groups"
for group in "${group_list[@]}"; do
  group_args+=(--group "pyproject.toml:$group")
done
uv_pip=("$venv/bin/python" -m uv pip install --quiet --python "$venv/bin/python" --exclude-newer "$as_of"
  --resolution "$resolution")
case "$groups" in
  docs | release | docs,release | release,docs)
    "${uv_pip[@]}" "${group_args[@]}"
    ;;
  *)
    # --reinstall-package: the editable package's own metadata (entry points, dependencies) stays current.
    "${uv_pip[@]}" --reinstall-package airflow-provider-blink -e . "${group_args[@]}" "$airflow_req"
    ;;
esac
if [ "$resolution" = lowest-direct ]; then
  "$venv/bin/python" scripts/versions.py --check-floors
fi
printf '%s' "$want" > "$stamp"
