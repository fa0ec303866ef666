#!/usr/bin/env bash
# Sets up the project (scripts/setup.sh), the Llama Stack test servers, the real small model and
# a headless browser, checks style and types, and runs the whole test suite.
# Extra arguments go to pytest, e.g. scripts/test.sh -k serve -x
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/llama_stack_envs.sh   # real Llama Stack servers for tests/llama_stack (cached in ~/.cache/agentship)
bash scripts/node_clients.sh > /dev/null   # openai-node and the Vercel AI SDK for tests/serving (same cache)
bash scripts/postgres.sh   # PostgreSQL binaries for the state-store tests (Debian's package, where missing)
real_model=$(bash scripts/real_model_env.sh)   # llama.cpp and Gemma 3 270M for tests/realmodel (same cache)
ui_tools=$(bash scripts/ui_tools.sh)   # chromium and playwright-core for the MLflow UI test (same cache)
export AGENTSHIP_REAL_MODEL_DIR="$real_model" AGENTSHIP_UI_TOOLS="$ui_tools"
export PATH="$PWD/.venv/bin:$PATH"
ruff check .
ruff format --check .
mypy
exec python -m pytest "$@"
