"""The real small model (Gemma 3 270M on llama.cpp, from scripts/real_model_env.sh) on loopback,
and agents registered against it. The model is weak: the tests assert structure, never wording,
and force what it cannot do reliably (choosing a tool)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agentship.testing.processes import ServerProcess, free_port, start_server, venv_env
from agentship.testing.real_model import MODEL_ALIAS, find_installation, start_llama_server
from tests.e2e.helpers import run_log_agent

# Every model call is bounded (max_tokens) and given time: llama.cpp answers one call at a time.
GEMMA = [
    "--set", f"model={MODEL_ALIAS}", "--set", "api=chat_completions",
    "--set", "request_timeout_s=180", "--set", "max_turns=4",
]  # fmt: skip


@pytest.fixture(scope="session")
def real_model_dir() -> Path:
    found = find_installation()
    if found is None:
        message = "the real model is not installed: run scripts/real_model_env.sh (scripts/test.sh does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture(scope="session")
def llama(real_model_dir: Path, log_dir: Path) -> Iterator[ServerProcess]:
    """llama.cpp serving Gemma 3 270M, OpenAI-compatible, at ``llama.url + "/v1"``."""
    server = start_llama_server(real_model_dir, log_dir)
    yield server
    server.stop()


def _register(name: str, *overrides: str) -> str:
    result = run_log_agent("--agent", "openai-agents", "--registered-model-name", name, *GEMMA, *overrides)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def gemma_agent() -> str:
    """The example agent on the real model; answers are short (48 tokens)."""
    return _register("realmodel-agent", "--set", "model_settings={temperature: 0, max_tokens: 48}")


@pytest.fixture(scope="session")
def gemma_tool_agent() -> str:
    """The same agent with the tool choice forced to get_weather (the model does not choose tools)."""
    return _register(
        "realmodel-tool-agent",
        "--set",
        "model_settings={temperature: 0, max_tokens: 48, tool_choice: get_weather}",
    )


@pytest.fixture(scope="session")
def start_gemma_serving(llama: ServerProcess, log_dir: Path) -> Iterator[Callable[[str, str], ServerProcess]]:
    started: list[ServerProcess] = []

    def start(model_uri: str, experiment: str) -> ServerProcess:
        port = free_port()
        command = [sys.executable, "-m", "serving", "-m", model_uri, "-p", str(port), "-h", "127.0.0.1"]
        env = venv_env(
            {
                "OPENAI_BASE_URL": llama.url + "/v1",
                "OPENAI_API_KEY": "unused",
                "MLFLOW_EXPERIMENT_NAME": experiment,
            }
        )
        server = start_server(
            f"realmodel-serving-{port}", command, port=port, log_dir=log_dir, env=env, health_path="/ready"
        )
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
