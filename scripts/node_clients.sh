#!/usr/bin/env bash
# Installs the JavaScript clients the serving tests run (openai-node, the Vercel AI SDK), pinned
# by tests/serving/node/package-lock.json, into a cache outside the clone, keyed by that lock:
#   $AGENTSHIP_CACHE/node-clients-<hash>/node_modules   (AGENTSHIP_CACHE default ~/.cache/agentship)
# Prints the directory. Reused while the lock is unchanged; needs node and npm.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${AGENTSHIP_CACHE:-$HOME/.cache/agentship}"
src=tests/serving/node
key=$(cat "$src/package.json" "$src/package-lock.json" | sha256sum | cut -c1-16)
dir="$CACHE/node-clients-$key"
if [ ! -f "$dir/.installed" ]; then
  command -v npm > /dev/null || { echo "node_clients: npm is not installed" >&2; exit 1; }
  rm -rf "$dir.tmp"
  mkdir -p "$dir.tmp"
  cp "$src/package.json" "$src/package-lock.json" "$dir.tmp/"
  (cd "$dir.tmp" && npm ci --no-audit --no-fund --loglevel=error > npm-install.log 2>&1) || {
    tail -20 "$dir.tmp/npm-install.log" >&2
    echo "node_clients: npm ci failed" >&2
    exit 1
  }
  touch "$dir.tmp/.installed"
  rm -rf "$dir"
  mv "$dir.tmp" "$dir"
fi
echo "$dir"
