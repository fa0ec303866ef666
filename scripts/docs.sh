#!/usr/bin/env bash
# Builds the docs site (mkdocs-material, mkdocs.yml) with --strict: a broken link or anchor, a
# missing page or a page left out of the nav fails the build, and so this script.
#   bash scripts/docs.sh            build into a temp dir, then remove it (what CI runs)
#   bash scripts/docs.sh DIR        build into DIR and keep it (open DIR/index.html)
#   bash scripts/docs.sh serve      serve it with live reload on http://127.0.0.1:8001
# First the reference pages are generated from the code (scripts/gen_ref.py, with the project's
# Python: ${AGENTSHIP_VENV:-.venv}, made by scripts/setup.sh when missing). The tools
# (requirements/docs.txt) live in their own venv in a cache outside the clone ($AGENTSHIP_CACHE,
# default ~/.cache/agentship), keyed by that file's hash and reused while it is unchanged:
#   $AGENTSHIP_CACHE/docs-<key>/   mkdocs, mkdocs-material, pymdown-extensions
set -euo pipefail
export NO_MKDOCS_2_WARNING=1   # mkdocs-material's banner about its successor
cd "$(dirname "$0")/.."
CACHE="${AGENTSHIP_CACHE:-$HOME/.cache/agentship}"
mkdir -p "$CACHE"
key=$(sha256sum requirements/docs.txt | cut -c1-16)
dir="$CACHE/docs-$key"
if [ ! -f "$dir/.installed" ]; then
  PY=$(bash scripts/find_python.sh)
  UV=$(bash scripts/uv.sh)
  echo "docs: installing requirements/docs.txt into $dir" >&2
  start=$(date +%s)
  rm -rf "$dir"
  UV_PYTHON_DOWNLOADS=never "$UV" venv --quiet --python "$PY" "$dir"
  if ! "$UV" pip install --python "$dir/bin/python" -r requirements/docs.txt > "$dir.pip.log" 2>&1; then
    tail -30 "$dir.pip.log" >&2
    echo "docs: install failed (log: $dir.pip.log)" >&2
    exit 1
  fi
  "$dir/bin/mkdocs" --version > /dev/null
  touch "$dir/.installed"
  echo "docs: installed in $(( $(date +%s) - start ))s" >&2
fi

project_py="${AGENTSHIP_VENV:-.venv}/bin/python"
[ -x "$project_py" ] || bash scripts/setup.sh
"$project_py" scripts/gen_ref.py > /dev/null

if [ "${1:-}" = "serve" ]; then
  exec "$dir/bin/mkdocs" serve --strict -a 127.0.0.1:8001
fi
if [ -n "${1:-}" ]; then
  site="$1"
else
  site=$(mktemp -d -t agentship-docs.XXXXXX)
  trap 'rm -rf "$site"' EXIT
fi
start=$(date +%s)
"$dir/bin/mkdocs" build --strict --clean -d "$site"
echo "docs: built with --strict in $(( $(date +%s) - start ))s" >&2
