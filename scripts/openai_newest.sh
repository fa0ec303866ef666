#!/usr/bin/env bash
# Installs the newest openai-python release on the index (the package alone, no dependencies)
# into a cache outside the clone, keyed by its version:
#   $AGENTSHIP_CACHE/openai-<version>   (AGENTSHIP_CACHE default ~/.cache/agentship)
# Prints the directory. The wire tests validate every body and event against its types, beside
# the release the constraints pin (tests/serving/openai_types.py).
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${AGENTSHIP_CACHE:-$HOME/.cache/agentship}"
PY="${AGENTSHIP_VENV:-.venv}/bin/python"
newest=$("$PY" -m pip index versions openai --disable-pip-version-check 2>/dev/null | sed -n 's/^openai (\(.*\))$/\1/p')
[ -n "$newest" ] || { echo "openai_newest: could not read openai's versions from the index" >&2; exit 1; }
dir="$CACHE/openai-$newest"
if [ ! -f "$dir/.installed" ]; then
  rm -rf "$dir.tmp"
  "$PY" -m pip install --disable-pip-version-check --quiet --no-deps --target "$dir.tmp" "openai==$newest" >&2
  touch "$dir.tmp/.installed"
  rm -rf "$dir"
  mv "$dir.tmp" "$dir"
fi
echo "$dir"
