#!/usr/bin/env bash
# The performance benchmark: sets up .venv (the newest releases, scripts/lines.txt) and runs `python -m bench` (about 8 minutes, plus under one for
# the answers scenario).
# Arguments go to the benchmark, e.g. `scripts/bench.sh --only triggers --stagger`; see --help.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh newest
exec .venv/bin/python -m bench "$@"
