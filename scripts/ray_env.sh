#!/usr/bin/env bash
# Installs Ray Serve, for tests/ray, in its own venv in a cache outside the clone ($AGENTSHIP_CACHE,
# default ~/.cache/agentship), keyed by the Ray packages and requirements/constraints.txt and reused
# while they are unchanged:
#   $AGENTSHIP_CACHE/ray-<key>/   ray[serve] plus the project's dependencies, pinned as in .venv
# The project itself is not installed there: the tests put the checkout on PYTHONPATH, so the
# Ray workers run this clone's code (the venv is shared by every clone).
# Prints the directory. With --check, installs nothing: prints it if installed, else exits 3.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${AGENTSHIP_CACHE:-$HOME/.cache/agentship}"
mkdir -p "$CACHE"
packages=("ray[serve]==2.60.0")
key=$( (printf '%s\n' "${packages[@]}"; cat requirements/constraints.txt) | sha256sum | cut -c1-16)
dir="$CACHE/ray-$key"
if [ "${1:-}" = "--check" ]; then
  [ -f "$dir/.installed" ] || exit 3
  echo "$dir"
  exit 0
fi
if [ ! -f "$dir/.installed" ]; then
  PY=$(bash scripts/find_python.sh)
  UV=$(bash scripts/uv.sh)
  echo "ray: installing ${packages[*]} and the project's dependencies into $dir (about a minute)" >&2
  start=$(date +%s)
  rm -rf "$dir"
  UV_PYTHON_DOWNLOADS=never "$UV" venv --quiet --python "$PY" "$dir"
  # The project is installed for its dependencies, then removed (PYTHONPATH brings the checkout).
  if ! { "$UV" pip install --python "$dir/bin/python" -c requirements/constraints.txt \
           "${packages[@]}" ".[otlp]" \
         && "$UV" pip uninstall --python "$dir/bin/python" agentship-mlflow; } > "$dir.pip.log" 2>&1; then
    tail -30 "$dir.pip.log" >&2
    echo "ray: install failed (log: $dir.pip.log)" >&2
    exit 1
  fi
  "$dir/bin/ray" --help > /dev/null
  "$dir/bin/python" -c "import ray.serve, mlflow, agents"
  bash scripts/bytecode.sh "$dir"
  touch "$dir/.installed"
  echo "ray: installed in $(( $(date +%s) - start ))s" >&2
fi
bash scripts/bytecode.sh "$dir"   # a venv made before this step was added
echo "$dir"
