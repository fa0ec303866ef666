#!/usr/bin/env bash
# Installs what drives a real browser over the MLflow UI (scripts/screenshots.py and
# tests/e2e/test_mlflow_ui.py): Debian's chromium (apt-get, as root, when it is missing) and
# playwright-core, pinned by scripts/ui/package-lock.json, into a cache outside the clone:
#   $AGENTSHIP_CACHE/ui-tools-<hash>/node_modules   (AGENTSHIP_CACHE default ~/.cache/agentship)
# playwright-core never downloads a browser: it drives /usr/bin/chromium. Prints the directory.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${AGENTSHIP_CACHE:-$HOME/.cache/agentship}"
if ! command -v chromium > /dev/null; then
  echo "ui tools: installing Debian's chromium" >&2
  { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium fonts-dejavu-core; } \
    > "$CACHE/chromium-apt.log" 2>&1 || { tail -20 "$CACHE/chromium-apt.log" >&2; echo "ui tools: apt-get failed" >&2; exit 1; }
fi
src=scripts/ui
key=$(cat "$src/package.json" "$src/package-lock.json" | sha256sum | cut -c1-16)
dir="$CACHE/ui-tools-$key"
if [ ! -f "$dir/.installed" ]; then
  command -v npm > /dev/null || { echo "ui tools: npm is not installed" >&2; exit 1; }
  rm -rf "$dir.tmp"
  mkdir -p "$dir.tmp"
  cp "$src/package.json" "$src/package-lock.json" "$dir.tmp/"
  (cd "$dir.tmp" && npm ci --no-audit --no-fund --loglevel=error > npm-install.log 2>&1) || {
    tail -20 "$dir.tmp/npm-install.log" >&2
    echo "ui tools: npm ci failed" >&2
    exit 1
  }
  touch "$dir.tmp/.installed"
  rm -rf "$dir"
  mv "$dir.tmp" "$dir"
fi
echo "$dir"
