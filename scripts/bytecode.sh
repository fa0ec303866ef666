#!/usr/bin/env bash
# Compiles a venv's installed packages to bytecode, once: bytecode.sh VENV [--again]
# uv installs without compiling, and where PYTHONDONTWRITEBYTECODE is set (this project's CI
# machines set it) Python then compiles every module it imports from source, in every process:
# about 3 s of CPU per server start, most of a warm launch. compileall writes the .pyc files
# whatever that variable says, and skips those that are up to date. --again compiles what is new
# since (after an install into the venv); without it a venv already done is left alone.
set -euo pipefail
venv="$1"
marker="$venv/.agentship-bytecode"
if [ -f "$marker" ] && [ "${2:-}" != "--again" ]; then
  exit 0
fi
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# Some packages ship files that are not Python 3 (templates, tests of old versions): compileall
# reports them and goes on; they are never imported.
"$venv/bin/python" -m compileall -q -j 0 "$site" > "$venv/bytecode.log" 2>&1 || true
touch "$marker"
