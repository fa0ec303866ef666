"""Each Llama Stack mode once through the user's path: log_agent.py --agent llama-stack, then a
real `mlflow models serve` process, then POST /invocations.

The default example is logged as shipped (no --config) and serves on every line: it names no
vector store, so it loads on a server that has none. The RAG example is logged once too, and
served on every server line with the vector store `agentship llama-stack ingest` made from a
folder (its id in LLAMASTACK_VECTOR_STORE_ID, read at load)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from agentship.model_logging import CONFIGS_DIR
from agentship.testing.processes import ServerProcess, start_mlflow_serve
from tests.e2e.helpers import download_model, files_containing, run_log_agent
from tests.llama_stack.conftest import (
    ALL_TARGETS,
    FACT,
    HANDBOOK,
    RAG_QUESTION,
    SERVER_TARGETS,
    Ingested,
    Target,
)

pytestmark = [pytest.mark.llamastack, pytest.mark.e2e]

LOG_SECRET = "sk-ls-log-SECRET-1b7e"
SERVE_SECRET = "sk-ls-serve-SECRET-5d02"


def _log(name: str, *args: str) -> str:
    logged = run_log_agent(
        "--agent", "llama-stack", "--registered-model-name", name, *args,
        env={"LLAMASTACK_API_KEY": LOG_SECRET, "LLAMASTACK_BASE_URL": "http://127.0.0.1:9"},
    )  # fmt: skip
    assert logged.returncode == 0, logged.stderr
    return logged.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def default_model() -> str:
    """The default example, logged as the issue's user did: no --config."""
    return _log("ls-default")


@pytest.fixture(scope="module")
def rag_model() -> str:
    return _log("ls-rag", "--config", str(CONFIGS_DIR / "llama_stack_rag.yaml"))


def _serve(uri: str, target: Target, log_dir: Path, name: str, **env: str) -> ServerProcess:
    environ = {
        "LLAMASTACK_BASE_URL": target.base_url,
        "LLAMASTACK_MODEL": target.model,
        "LLAMASTACK_API_KEY": SERVE_SECRET,
        "MLFLOW_EXPERIMENT_NAME": name,
        **env,
    }
    return start_mlflow_serve(uri, log_dir, environ, name=name)


@pytest.fixture(params=ALL_TARGETS, ids=lambda p: p.removeprefix("target_"), scope="module")
def served(
    request: pytest.FixtureRequest, default_model: str, log_dir: Path
) -> Iterator[tuple[Target, ServerProcess, str]]:
    target: Target = request.getfixturevalue(request.param)
    server = _serve(default_model, target, log_dir, f"serve-{target.name}")
    yield target, server, default_model
    server.stop()


@pytest.fixture(params=SERVER_TARGETS, ids=lambda p: p.removeprefix("target_"), scope="module")
def served_rag(
    request: pytest.FixtureRequest,
    rag_model: str,
    ingested: Callable[[Target], Ingested],
    log_dir: Path,
) -> Iterator[tuple[Target, ServerProcess, str]]:
    target: Target = request.getfixturevalue(request.param)
    run = ingested(target)
    assert run.returncode == 0, run.stderr
    store = run.stdout.strip()
    server = _serve(rag_model, target, log_dir, f"serve-rag-{target.name}", LLAMASTACK_VECTOR_STORE_ID=store)
    yield target, server, store
    server.stop()


def invoke(server: ServerProcess, body: dict[str, Any]) -> dict[str, Any]:
    reply = httpx.post(f"{server.url}/invocations", json=body, timeout=120)
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_client_tool_through_mlflow_serve(served: tuple[Target, ServerProcess, str]) -> None:
    target, server, _ = served
    body = invoke(server, {"input": [{"role": "user", "content": "What is the weather in Paris?"}]})
    output = body["output"]
    assert [o["type"] for o in output] == ["function_call", "function_call_output", "message"]
    assert output[1]["output"] == "The weather in Paris is 18°C and sunny."
    assert body["custom_outputs"]["llama_stack_mode"].startswith(target.mode_prefix)


def test_the_default_example_served_is_the_shipped_one_and_names_no_vector_store(default_model: str) -> None:
    shipped = yaml.safe_load((CONFIGS_DIR / "llama_stack.yaml").read_text())
    assert shipped["toolgroups"] == []
    assert _logged_config(default_model) == shipped


def test_rag_from_an_ingested_folder_through_mlflow_serve(
    served_rag: tuple[Target, ServerProcess, str],
) -> None:
    target, server, _ = served_rag
    body = invoke(server, {"input": [{"role": "user", "content": RAG_QUESTION}]})
    chunks = _retrieved(body["output"])
    assert chunks[0] == FACT  # the best match first, whole: each file is one chunk
    assert sorted(chunks) == sorted(HANDBOOK.values())
    assert FACT in body["output"][-1]["content"][0]["text"]  # quoted inside the server's tool output
    assert body["custom_outputs"]["llama_stack_mode"].startswith(target.mode_prefix)


def _retrieved(output: list[dict[str, Any]]) -> list[str]:
    """The chunks a turn retrieved: a file_search_call's results (Responses), or the lines of the
    knowledge_search tool's output that carry a chunk (Agents API)."""
    [call] = [o for o in output if o["type"] in ("file_search_call", "function_call_output")]
    if call["type"] == "file_search_call":
        return [r["text"] for r in call["results"]]
    return [
        line.removeprefix("Content: ") for line in call["output"].splitlines() if line.startswith("Content: ")
    ]


def test_conversation_through_mlflow_serve(served: tuple[Target, ServerProcess, str]) -> None:
    target, server, _ = served
    context = {"conversation_id": f"served-{target.name}"}
    invoke(server, {"input": [{"role": "user", "content": "My name is Grace."}], "context": context})
    body = invoke(server, {"input": [{"role": "user", "content": "What is my name?"}], "context": context})
    assert body["output"][-1]["content"][0]["text"] == "You said: What is my name?"
    seen = httpx.get(f"{target.scripted.url}/scripted/requests").json()
    last = next(r for r in reversed(seen) if r["messages"][-1]["text"] == "What is my name?")
    assert "My name is Grace." in [m["text"] for m in last["messages"]]


def _logged_config(uri: str) -> dict[str, Any]:
    from mlflow.models import Model

    return dict(Model.load(uri).flavors["python_function"]["config"])


def test_the_mode_is_logged_and_no_secret_is_anywhere(
    served: tuple[Target, ServerProcess, str], tmp_path: Path
) -> None:
    target, server, uri = served
    invoke(server, {"input": [{"role": "user", "content": "final check"}]})
    log = server.log_text()
    assert f"Llama Stack backend: {target.mode_prefix}" in log
    assert SERVE_SECRET not in log and LOG_SECRET not in log
    local = download_model(uri, tmp_path)
    assert files_containing(local, LOG_SECRET) == [] and files_containing(local, SERVE_SECRET) == []
    # Everything the served model imports is pinned, so `mlflow models serve` can rebuild it.
    pinned = {line.split("==")[0] for line in (local / "requirements.txt").read_text().split()}
    assert {"mlflow", "openai-agents", "openai", "httpx", "pydantic", "pyyaml"} <= pinned
