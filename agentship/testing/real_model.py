"""The real small model: Gemma 3 270M on llama.cpp, for the ``realmodel`` tests, judges and demos.

``scripts/real_model_env.sh`` installs it into a cache outside the clone; ``scripts/test.sh``
exports its directory as ``AGENTSHIP_REAL_MODEL_DIR``. :func:`start_llama_server` serves it as an
OpenAI-compatible endpoint on loopback (``/v1/chat/completions``, streaming or not; tool calls
through llama-cpp-python's ``chatml-function-calling`` format, grammar-constrained when the tool
choice is forced), with OpenAI's ``json_schema`` response format accepted as well
(``agentship/testing/llama_cpp_server.py``).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from agentship.testing.processes import ServerProcess, free_port, start_server

REAL_MODEL_DIR_ENV = "AGENTSHIP_REAL_MODEL_DIR"
MODEL_ALIAS = "gemma3"
"""The model name the server answers to (``--set model=gemma3``, ``openai:/gemma3``)."""

_REPO = Path(__file__).resolve().parents[2]
_SERVER_SCRIPT = Path(__file__).resolve().with_name("llama_cpp_server.py")


def find_installation(environ: Mapping[str, str] | None = None) -> Path | None:
    """The installed real-model directory, or None: ``$AGENTSHIP_REAL_MODEL_DIR``, else the cache."""
    environ = os.environ if environ is None else environ
    if explicit := environ.get(REAL_MODEL_DIR_ENV):
        path = Path(explicit)
        return path if (path / ".installed").is_file() else None
    script = _REPO / "scripts" / "real_model_env.sh"
    if not script.is_file():
        return None
    found = subprocess.run(
        ["bash", str(script), "--check"], capture_output=True, text=True, check=False, timeout=30
    )
    return Path(found.stdout.strip()) if found.returncode == 0 and found.stdout.strip() else None


def start_llama_server(
    installation: Path, log_dir: Path, *, port: int | None = None, n_ctx: int = 8192
) -> ServerProcess:
    """llama.cpp serving the model on loopback, ready when ``/v1/models`` answers."""
    port = port or free_port()
    command = [
        str(installation / "bin" / "python"), str(_SERVER_SCRIPT),
        "--model", str(installation / "model.gguf"), "--model_alias", MODEL_ALIAS,
        "--chat_format", "chatml-function-calling", "--n_ctx", str(n_ctx),
        "--seed", "0",  # one sampling sequence per server: a run that fails can be run again
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    return start_server(
        f"llama-cpp-{port}", command, port=port, log_dir=log_dir, health_path="/v1/models", timeout=120
    )
