#!/usr/bin/env bash
# The release files: build the sdist and the wheel into dist/ (uv build, the build backend resolved as of
# scripts/lines.txt's newest date), check their metadata as PyPI would (twine check --strict: the long
# description renders), and check what the wheel holds (scripts/check_wheel.py).
#   scripts/package.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh newest docs,release .venv-docs
as_of=$(awk '$1 == "newest" {print $4}' scripts/lines.txt)
rm -rf dist
.venv-docs/bin/python -m uv build --quiet --exclude-newer "$as_of" --out-dir dist
.venv-docs/bin/twine check --strict dist/*
.venv-docs/bin/python scripts/check_wheel.py dist/*.whl dist/*.tar.gz
