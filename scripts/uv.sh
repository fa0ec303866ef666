#!/usr/bin/env bash
# Prints the path of a uv binary: `uv` on PATH, else uv from PyPI, bootstrapped once into a cache
# outside the clone, keyed by its version:  $AGENTSHIP_CACHE/uv-<version>/bin/uv
# (AGENTSHIP_CACHE default ~/.cache/agentship; pin another with AGENTSHIP_UV_VERSION).
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v uv > /dev/null 2>&1; then command -v uv; exit 0; fi
CACHE="${AGENTSHIP_CACHE:-$HOME/.cache/agentship}"
VERSION="${AGENTSHIP_UV_VERSION:-0.13.9}"
dir="$CACHE/uv-$VERSION"
if [ ! -x "$dir/bin/uv" ]; then
  PY=$(bash scripts/find_python.sh)
  rm -rf "$dir.tmp"
  "$PY" -m pip install --disable-pip-version-check --quiet --target "$dir.tmp" "uv==$VERSION" >&2
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
fi
echo "$dir/bin/uv"
