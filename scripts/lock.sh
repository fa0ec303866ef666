#!/usr/bin/env bash
# Regenerates requirements/constraints.txt from the project's .venv (after changing pyproject).
set -euo pipefail
cd "$(dirname "$0")/.."
{
  echo "# Versions the project is tested with (pip install -c requirements/constraints.txt). Regenerate with scripts/lock.sh."
  .venv/bin/python -m pip freeze --exclude-editable | grep -v '^agentship'
} > requirements/constraints.txt
