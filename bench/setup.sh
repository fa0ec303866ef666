#!/usr/bin/env bash
# The benchmark's load generator: wrk, from Debian, when it can be installed (root or sudo).
# Without it bench/run.py falls back to a Python load generator and says so in its figures.
# And the profilers bench/store_profile.py uses (py-spy, yappi), into the project's venv.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x .venv/bin/python ]; then
  if command -v uv >/dev/null; then uv pip install -q --python .venv/bin/python py-spy yappi
  else .venv/bin/python -m pip install -q py-spy yappi; fi
fi
if command -v wrk >/dev/null; then
  exit 0
fi
if [ "$(id -u)" = 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  SUDO="sudo -n"
else
  echo "bench/setup.sh: cannot install wrk (not root); the Python load generator will be used" >&2
  exit 0
fi
$SUDO apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wrk >/dev/null
echo "bench/setup.sh: installed $(wrk --version 2>&1 | head -1)" >&2
