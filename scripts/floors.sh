#!/usr/bin/env bash
# Installs the lowest versions pyproject.toml declares into a venv: every direct dependency, the dev
# extra's too, exactly at its floor (scripts/floors.py pins each `>=X` to `==X`; a floor that cannot
# be installed fails here, naming it), and what they pull in by uv's lowest-direct resolution,
# wheels only. The venv is in a cache outside the clone, keyed by pyproject.toml's hash:
#   $AGENTSHIP_CACHE/floors-<key>/   (AGENTSHIP_CACHE default ~/.cache/agentship)
# then this checkout into it (editable, no dependencies). Prints the venv's directory, and writes
# what it resolved to <venv>/floors.txt. tests/e2e/test_floors.py runs the end-to-end subset in it.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${AGENTSHIP_CACHE:-$HOME/.cache/agentship}"
mkdir -p "$CACHE"
UV=$(bash scripts/uv.sh)
export UV_PYTHON_DOWNLOADS=never
key=$(sha256sum pyproject.toml | cut -c1-16)
dir="$CACHE/floors-$key"
if [ ! -f "$dir/.installed" ]; then
  PY=$(bash scripts/find_python.sh)
  echo "floors: installing the declared floors into $dir" >&2
  start=$(date +%s)
  rm -rf "$dir"
  "$UV" venv --quiet --seed --python "$PY" "$dir"
  "$dir/bin/python" scripts/floors.py > "$dir/floors.in"
  "$UV" pip compile --quiet pyproject.toml --extra dev --resolution lowest-direct --only-binary :all: \
    -c "$dir/floors.in" --python "$dir/bin/python" -o "$dir/floors.txt"
  if ! "$UV" pip install --python "$dir/bin/python" -r "$dir/floors.txt" > "$dir/install.log" 2>&1; then
    tail -30 "$dir/install.log" >&2
    echo "floors: install failed (log: $dir/install.log)" >&2
    exit 1
  fi
  bash scripts/bytecode.sh "$dir"
  touch "$dir/.installed"
  echo "floors: installed in $(( $(date +%s) - start ))s" >&2
fi
"$UV" pip install --quiet --python "$dir/bin/python" --no-deps -e . >&2
bash scripts/bytecode.sh "$dir"   # a venv made before this step was added
"$dir/bin/python" -c "import agentship, agents, mlflow" >&2
echo "$dir"
