#!/usr/bin/env bash
# Sets up the project (scripts/setup.sh) and the Llama Stack test servers, checks style and
# types, and runs the whole test suite.
# Extra arguments go to pytest, e.g. scripts/test.sh -k serve -x
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/llama_stack_envs.sh   # real Llama Stack servers for tests/llama_stack (cached in ~/.cache/agentship)
bash scripts/node_clients.sh > /dev/null   # openai-node and the Vercel AI SDK for tests/serving (same cache)
bash scripts/postgres.sh   # PostgreSQL binaries for the state-store tests (Debian's package, where missing)
export PATH="$PWD/.venv/bin:$PATH"
ruff check .
ruff format --check .
mypy
exec python -m pytest "$@"
