"""A registered agent, and `python -m serving` processes on loopback in front of it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agentship.testing.processes import ServerProcess, free_port, start_scripted_llm, start_server, venv_env
from tests.e2e.helpers import run_log_agent
from tests.serving.clients import Target

TRACE_EXPERIMENT = "serving-traces"
NODE = Path(__file__).resolve().parent / "node"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def serving_model_uri() -> str:
    result = run_log_agent(
        "--agent", "openai-agents", "--registered-model-name", "serving-agent", "--alias", "live"
    )
    assert result.returncode == 0, result.stderr
    return "models:/serving-agent@live"


@pytest.fixture(scope="session")
def start_serving(serving_model_uri: str, log_dir: Path) -> Iterator[Callable[..., ServerProcess]]:
    started: list[ServerProcess] = []

    def start(
        backend_url: str,
        *args: str,
        name: str = "serving",
        experiment: str = TRACE_EXPERIMENT,
        model: str | None = None,
        env: dict[str, str] | None = None,
    ) -> ServerProcess:
        port = free_port()
        command = [
            sys.executable,
            "-m",
            "serving",
            "-m",
            model or serving_model_uri,
            "-p",
            str(port),
            "-h",
            "127.0.0.1",
            *args,
        ]
        environ = venv_env(
            {"OPENAI_BASE_URL": backend_url, "MLFLOW_EXPERIMENT_NAME": experiment, **(env or {})}
        )
        server = start_server(
            f"{name}-{port}",
            command,
            port=port,
            log_dir=log_dir,
            env=environ,
            health_path="/ready",
            timeout=120,
        )
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def serving(start_serving: Callable[..., ServerProcess], scripted: ServerProcess) -> ServerProcess:
    """The default server: scripted backend, default limits."""
    return start_serving(scripted.url + "/v1", name="serving-default")


@pytest.fixture(scope="session")
def a2a_serving(start_serving: Callable[..., ServerProcess], scripted: ServerProcess) -> ServerProcess:
    """A server with its A2A routes on (``--a2a``), scripted backend."""
    return start_serving(scripted.url + "/v1", "--a2a", name="serving-a2a")


@pytest.fixture(scope="session")
def reasoning_scripted(log_dir: Path) -> Iterator[ServerProcess]:
    """A scripted model that streams a reasoning summary before every answer."""
    server = start_scripted_llm(log_dir, "--reason")
    yield server
    server.stop()


@pytest.fixture(scope="session", params=["plain", "reasoning"])
def target(
    request: pytest.FixtureRequest,
    start_serving: Callable[..., ServerProcess],
    serving: ServerProcess,
    scripted: ServerProcess,
) -> Target:
    """The served agent a client test runs against: over a plain model, then a reasoning one."""
    if request.param == "plain":
        return Target("plain", serving, scripted, reasoning=False)
    backend: ServerProcess = request.getfixturevalue("reasoning_scripted")
    server = start_serving(backend.url + "/v1", name="serving-reasoning")
    return Target("reasoning", server, backend, reasoning=True)


@pytest.fixture(scope="session")
def node_clients(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with the scripts of ``tests/serving/node/`` beside the cached ``node_modules``
    (openai-node, the Vercel AI SDK: ``scripts/node_clients.sh``)."""
    if shutil.which("node") is None:
        pytest.fail("node is not installed; the Node.js client tests need it")
    installed = subprocess.run(
        ["bash", str(REPO / "scripts" / "node_clients.sh")],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert installed.returncode == 0, installed.stderr
    work = tmp_path_factory.mktemp("node-clients")
    (work / "node_modules").symlink_to(Path(installed.stdout.strip()) / "node_modules")
    for script in NODE.glob("*.mjs"):
        shutil.copy(script, work / script.name)
    (work / "package.json").write_text(json.dumps({"type": "module"}))
    return work
