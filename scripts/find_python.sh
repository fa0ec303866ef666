#!/usr/bin/env bash
# Prints the path of a Python >= 3.12 interpreter: $AGENTSHIP_PYTHON, then python3.12/3.13/python3
# on PATH, then any pyenv-installed 3.12+ (pyenv's version shims only work with PYENV_VERSION set).
set -uo pipefail
ok() { "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1; }
for cand in "${AGENTSHIP_PYTHON:-}" python3.12 python3.13 python3; do
  [ -n "$cand" ] || continue
  path=$(command -v "$cand" 2>/dev/null) || continue
  if ok "$path"; then echo "$path"; exit 0; fi
done
if command -v pyenv >/dev/null 2>&1; then
  for v in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.1[2-9](\.[0-9]+)?$' | sort -V); do
    path=$(PYENV_VERSION="$v" pyenv which python 2>/dev/null) || continue
    if ok "$path"; then echo "$path"; exit 0; fi
  done
fi
echo "error: no Python >= 3.12 found; install one or set AGENTSHIP_PYTHON=/path/to/python3.12" >&2
exit 1
