#!/usr/bin/env bash
# Creates .venv (Python >= 3.12) and installs the project with its dev extras, pinned by
# requirements/constraints.txt. Re-running is cheap: it reinstalls only when those files change.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${AGENTSHIP_VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  PY=$(bash scripts/find_python.sh)
  echo "setup: creating $VENV with $PY ($("$PY" --version 2>&1))" >&2
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.agentship-install"
want=$(cat pyproject.toml requirements/constraints.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing the project into $VENV" >&2
  if ! "$VENV/bin/python" -m pip install --disable-pip-version-check \
      -c requirements/constraints.txt -e ".[dev]" > "$VENV/pip-install.log" 2>&1; then
    tail -40 "$VENV/pip-install.log" >&2
    echo "setup: pip install failed; full log in $VENV/pip-install.log" >&2
    exit 1
  fi
  "$VENV/bin/python" -c "import agentship, agents, mlflow"
  echo "$want" > "$stamp"
fi
