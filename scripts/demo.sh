#!/usr/bin/env bash
# Sets up the project, then logs, registers, serves and calls the example agent (scripts/demo.py).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python scripts/demo.py "$@"
