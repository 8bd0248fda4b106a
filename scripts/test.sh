#!/usr/bin/env bash
# Set everything up, then run the lint and the whole test suite (real DuckDB, real FUSE).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test-tools  # also LibreOffice, for the spreadsheet mount test
.venv/bin/ruff check core n4afs tests scripts
.venv/bin/ruff format --check core n4afs tests scripts
exec .venv/bin/python -m pytest "$@"
