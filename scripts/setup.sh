#!/usr/bin/env bash
# Creates .venv (Python >= 3.12) and installs the project with its dev extras, pinned by
# requirements/constraints.txt, with uv (scripts/uv.sh bootstraps it from PyPI when it is not
# installed). Re-running is cheap: it reinstalls only when those files change.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${AGENTSHIP_VENV:-.venv}"
UV=$(bash scripts/uv.sh)
export UV_PYTHON_DOWNLOADS=never  # the interpreter is the one find_python.sh found, never a download
if [ ! -x "$VENV/bin/python" ]; then
  PY=$(bash scripts/find_python.sh)
  echo "setup: creating $VENV with $PY ($("$PY" --version 2>&1))" >&2
  "$UV" venv --quiet --seed --python "$PY" "$VENV"
fi
stamp="$VENV/.agentship-install"
want=$(cat pyproject.toml requirements/constraints.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing the project into $VENV" >&2
  # an earlier checkout's editable install under the old distribution name would shadow nothing,
  # but would leave a second `agentship` entry point behind
  "$UV" pip uninstall --quiet --python "$VENV/bin/python" agentship > /dev/null 2>&1 || true
  if ! "$UV" pip install --python "$VENV/bin/python" -c requirements/constraints.txt -e ".[dev]" \
      > "$VENV/install.log" 2>&1; then
    tail -40 "$VENV/install.log" >&2
    echo "setup: installing failed; full log in $VENV/install.log" >&2
    exit 1
  fi
  bash scripts/bytecode.sh "$VENV" --again
  "$VENV/bin/python" -c "import agentship, agents, mlflow"
  echo "$want" > "$stamp"
fi
bash scripts/bytecode.sh "$VENV"   # a venv made before this step was added
# this checkout's own modules too (Python checks them against their sources on every import)
"$VENV/bin/python" -m compileall -q agentship serving logging_scripts > /dev/null
