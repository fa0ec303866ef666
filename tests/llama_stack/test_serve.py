"""Each Llama Stack mode once through the user's path: log_agent.py --agent llama-stack, then a
real `mlflow models serve` process, then POST /invocations."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from agentship.model_logging import DEFAULT_CONFIGS
from agentship.testing.processes import ServerProcess, start_mlflow_serve
from tests.e2e.helpers import download_model, files_containing, run_log_agent
from tests.llama_stack.conftest import ALL_TARGETS, FACT, RAG_QUESTION, Target

pytestmark = [pytest.mark.llamastack, pytest.mark.e2e]

LOG_SECRET = "sk-ls-log-SECRET-1b7e"
SERVE_SECRET = "sk-ls-serve-SECRET-5d02"


@pytest.fixture(
    params=ALL_TARGETS,
    ids=lambda p: p.removeprefix("target_"),
    scope="module",
)
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, log_dir: Path
) -> Iterator[tuple[Target, ServerProcess, str]]:
    target: Target = request.getfixturevalue(request.param)
    config = yaml.safe_load(DEFAULT_CONFIGS["llama-stack"].read_text())
    config["toolgroups"] = [target.make_knowledge_base(FACT)] if target.make_knowledge_base else []
    work = tmp_path_factory.mktemp(f"serve-{target.name}")
    config_file = work / "config.yaml"
    config_file.write_text(yaml.safe_dump(config))
    name = f"ls-{target.name}"
    logged = run_log_agent(
        "--agent", "llama-stack", "--config", str(config_file), "--registered-model-name", name,
        env={"LLAMASTACK_API_KEY": LOG_SECRET, "LLAMASTACK_BASE_URL": "http://127.0.0.1:9"},
    )  # fmt: skip
    assert logged.returncode == 0, logged.stderr
    uri = logged.stdout.strip().splitlines()[-1]
    env = {
        "LLAMASTACK_BASE_URL": target.base_url,
        "LLAMASTACK_MODEL": target.model,
        "LLAMASTACK_API_KEY": SERVE_SECRET,
        "MLFLOW_EXPERIMENT_NAME": f"serve-{target.name}",
    }
    server = start_mlflow_serve(uri, log_dir, env, name=f"serve-{target.name}")
    yield target, server, uri
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


def test_rag_through_mlflow_serve(served: tuple[Target, ServerProcess, str]) -> None:
    target, server, _ = served
    if target.make_knowledge_base is None:
        pytest.skip("RAG runs on a Llama Stack server; the chat fallback has none")
    body = invoke(server, {"input": [{"role": "user", "content": RAG_QUESTION}]})
    assert FACT in body["output"][-1]["content"][0]["text"]


def test_conversation_through_mlflow_serve(served: tuple[Target, ServerProcess, str]) -> None:
    target, server, _ = served
    context = {"conversation_id": f"served-{target.name}"}
    invoke(server, {"input": [{"role": "user", "content": "My name is Grace."}], "context": context})
    body = invoke(server, {"input": [{"role": "user", "content": "What is my name?"}], "context": context})
    assert body["output"][-1]["content"][0]["text"] == "You said: What is my name?"
    seen = httpx.get(f"{target.scripted.url}/scripted/requests").json()
    last = next(r for r in reversed(seen) if r["messages"][-1]["text"] == "What is my name?")
    assert "My name is Grace." in [m["text"] for m in last["messages"]]


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
