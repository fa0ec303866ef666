#!/usr/bin/env bash
# Sets up the project (scripts/setup.sh), the Llama Stack test servers, the real small model, a
# headless browser, Arize Phoenix and Ray Serve, checks style and types, and runs the whole suite.
# Beside it, the end-to-end subset in tests/floors.txt runs at the lowest versions pyproject.toml
# declares (scripts/floors.sh; AGENTSHIP_FLOORS=0 skips it). Both must pass.
# Extra arguments go to the whole suite's pytest, e.g. scripts/test.sh -k serve -x
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# llama.cpp compiles for minutes on a cold cache: it builds while the rest installs and the checks
# run, and the tests wait for it (its output is shown when it is done).
real_model_out=$(mktemp) real_model_err=$(mktemp)
bash scripts/real_model_env.sh > "$real_model_out" 2> "$real_model_err" &   # llama.cpp and Gemma 3 270M for tests/realmodel (same cache)
real_model_pid=$!
trap 'kill "$real_model_pid" 2> /dev/null || true' EXIT
bash scripts/llama_stack_envs.sh   # real Llama Stack servers for tests/llama_stack (cached in ~/.cache/agentship)
bash scripts/node_clients.sh > /dev/null   # openai-node and the Vercel AI SDK for tests/serving (same cache)
bash scripts/postgres.sh   # PostgreSQL binaries for the state-store tests (Debian's package, where missing)
ui_tools=$(bash scripts/ui_tools.sh)   # chromium and playwright-core for the MLflow UI test (same cache)
phoenix=$(bash scripts/phoenix_env.sh)   # Arize Phoenix, an OTLP backend, for tests/serving/test_otlp.py (same cache)
ray=$(bash scripts/ray_env.sh)   # Ray Serve and the project's dependencies, for tests/ray (same cache)
bash scripts/kserve_schema.sh > /dev/null   # KServe's SDK wheel: the InferenceService schema (same cache)
bash scripts/compose_tool.sh   # a docker compose client for `docker compose config` (Debian's, where missing)
openai_newest=$(bash scripts/openai_newest.sh)   # the newest openai-python, to validate our wire objects against
export AGENTSHIP_OPENAI_NEWEST="$openai_newest"
export AGENTSHIP_UI_TOOLS="$ui_tools"
export AGENTSHIP_PHOENIX_DIR="$phoenix" AGENTSHIP_RAY_DIR="$ray"
export PATH="$PWD/.venv/bin:$PATH"
bash scripts/docs.sh   # the docs site, built --strict: a broken link or a missing page fails (tools in the same cache)
ruff check .
ruff format --check .
mypy
status=0
wait "$real_model_pid" || status=$?
cat "$real_model_err" >&2
[ "$status" -eq 0 ] || { echo "test.sh: installing the real model failed" >&2; exit "$status"; }
export AGENTSHIP_REAL_MODEL_DIR="$(cat "$real_model_out")"
rm -f "$real_model_out" "$real_model_err"
trap - EXIT
if [ "${AGENTSHIP_FLOORS:-1}" = 1 ]; then
  floors=$(bash scripts/floors.sh)
  floors_tmp=$(mktemp -d -t agentship-floors.XXXXXX)
  grep -v '^#' tests/floors.txt | xargs "$floors/bin/python" -m pytest -q -p no:cacheprovider \
    --basetemp="$floors_tmp/tmp" > "$floors_tmp/pytest.log" 2>&1 &
  floors_pid=$!
fi
status=0
python -m pytest "$@" || status=$?
if [ -n "${floors_pid:-}" ]; then
  if wait "$floors_pid"; then
    echo "floors: $(grep -E ' (passed|failed|error)' "$floors_tmp/pytest.log" | tail -1) (tests/floors.txt at the declared floors)"
  else
    grep -E '^(FAILED|ERROR)|^E  ' "$floors_tmp/pytest.log" | head -60 >&2
    echo "floors: the subset failed at the declared floors: $(grep -E ' (passed|failed|error)' "$floors_tmp/pytest.log" | tail -1)" >&2
    status=1
  fi
  rm -rf "$floors_tmp"
fi
exit "$status"
