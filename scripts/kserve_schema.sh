#!/usr/bin/env bash
# Downloads KServe's Python SDK wheel (without its dependencies) into a cache outside the clone
# ($AGENTSHIP_CACHE, default ~/.cache/agentship), for tests/unit/test_deploy.py: its generated
# models (kserve/models/*.py, from KServe's OpenAPI spec) are the InferenceService schema the
# manifest is checked against. Prints the wheel's path. With --check, downloads nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${AGENTSHIP_CACHE:-$HOME/.cache/agentship}"
version=0.21.0
dir="$CACHE/kserve-sdk-$version"
wheel="$dir/kserve-$version-py3-none-any.whl"
if [ ! -f "$wheel" ]; then
  [ "${1:-}" != "--check" ] || exit 3
  mkdir -p "$dir"
  PY=$(bash scripts/find_python.sh)
  if ! "$PY" -m pip download --disable-pip-version-check --no-deps -q -d "$dir" "kserve==$version" \
      > "$dir.pip.log" 2>&1; then
    tail -20 "$dir.pip.log" >&2
    exit 1
  fi
fi
echo "$wheel"
