#!/usr/bin/env bash
# The demo: sets up .venv (the newest releases, scripts/lines.txt) and runs example DAG 1 against the Blink emulator.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh newest
exec .venv/bin/python scripts/demo.py
