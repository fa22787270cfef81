#!/usr/bin/env bash
# The documentation site: mkdocs-material and mkdocstrings (the API reference, read from the docstrings
# without importing the package) build docs/ into site/ in strict mode: a broken link or anchor, a page
# left out of the nav, or a code include whose file or [START]/[END] marker is gone fails the build.
#   scripts/docs.sh [serve]    (serve: a live preview on http://127.0.0.1:8000)
# Sets up .venv-docs (the "docs" and "release" dependency groups, as of scripts/lines.txt's newest date).
set -euo pipefail
export NO_MKDOCS_2_WARNING=1  # mkdocs-material's notice about its successor, printed on every build
cd "$(dirname "$0")/.."
scripts/setup-venv.sh newest docs,release .venv-docs
if [ "${1:-}" = serve ]; then
  exec .venv-docs/bin/mkdocs serve
fi
.venv-docs/bin/mkdocs build --strict --clean
echo "== docs built: site/index.html"
