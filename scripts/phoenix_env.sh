#!/usr/bin/env bash
# Installs Arize Phoenix, a real OpenTelemetry (OTLP) trace backend, for tests/otlp, in its own
# venv in a cache outside the clone ($AGENTSHIP_CACHE, default ~/.cache/agentship), keyed by the
# package list and reused while it is unchanged (a cold install takes about 3 minutes):
#   $AGENTSHIP_CACHE/phoenix-<key>/   arize-phoenix, with `phoenix serve`
# Prints the directory. With --check, installs nothing: prints it if installed, else exits 3.
# Run it with: PHOENIX_HOST=127.0.0.1 PHOENIX_PORT=P PHOENIX_GRPC_PORT=G PHOENIX_WORKING_DIR=D DIR/bin/phoenix serve
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${AGENTSHIP_CACHE:-$HOME/.cache/agentship}"
mkdir -p "$CACHE"
packages=("arize-phoenix==20.26.1")
key=$(printf '%s\n' "${packages[@]}" | sha256sum | cut -c1-16)
dir="$CACHE/phoenix-$key"
if [ "${1:-}" = "--check" ]; then
  [ -f "$dir/.installed" ] || exit 3
  echo "$dir"
  exit 0
fi
if [ ! -f "$dir/.installed" ]; then
  PY=$(bash scripts/find_python.sh)
  UV=$(bash scripts/uv.sh)
  echo "phoenix: installing ${packages[*]} into $dir (about a minute)" >&2
  start=$(date +%s)
  rm -rf "$dir"
  UV_PYTHON_DOWNLOADS=never "$UV" venv --quiet --python "$PY" "$dir"
  if ! "$UV" pip install --python "$dir/bin/python" "${packages[@]}" > "$dir.pip.log" 2>&1; then
    tail -30 "$dir.pip.log" >&2
    echo "phoenix: install failed (log: $dir.pip.log)" >&2
    exit 1
  fi
  "$dir/bin/phoenix" --help > /dev/null
  bash scripts/bytecode.sh "$dir"
  touch "$dir/.installed"
  echo "phoenix: installed in $(( $(date +%s) - start ))s" >&2
fi
bash scripts/bytecode.sh "$dir"   # a venv made before this step was added
echo "$dir"
