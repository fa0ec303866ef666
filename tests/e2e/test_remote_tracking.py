"""The production topology of MLflow, run for real: a remote ``mlflow server`` on PostgreSQL with
proxied artifacts. A logging process and two serving processes share nothing but its URL (each
has its own working directory, home and temp dir): ``log_agent.py`` logs, registers and sets an
alias over HTTP; ``python -m serving`` and ``mlflow models serve`` serve ``models:/NAME@alias``;
each request's trace arrives in the server's experiment with its whole span tree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from mlflow import MlflowClient
from mlflow.entities import Trace

from agentship.testing.postgres import PostgresServer
from agentship.testing.processes import ServerProcess, free_port, start_server
from agentship.testing.tracking_server import start_tracking_server
from tests.e2e.helpers import REPO, tracking_uri
from tests.serving.clients import PARIS, TOOL_ANSWER, marker

pytestmark = pytest.mark.e2e

NAME = "remote-agent"
EXPERIMENT = "remote-serving-traces"


@pytest.fixture(scope="module")
def tracking(
    postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory, log_dir: Path
) -> Iterator[ServerProcess]:
    started = time.monotonic()
    server = start_tracking_server(postgres, tmp_path_factory.mktemp("tracking-server"), log_dir)
    print(f"mlflow server on PostgreSQL ready in {time.monotonic() - started:.1f}s", file=sys.stderr)
    yield server
    server.stop()


def subprocess_run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)


def own_environment(home: Path, tracking: ServerProcess, **extra: str) -> dict[str, str]:
    """A process's whole environment: its own home and temp dir, and the tracking server's URL."""
    (home / "tmp").mkdir(parents=True, exist_ok=True)
    return {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": str(home),
        "TMPDIR": str(home / "tmp"),
        "MLFLOW_TRACKING_URI": tracking.url,
        # Which checkout's code runs (a worktree's, say), not state: kept when it is set.
        **({"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}),
        **extra,
    }


@pytest.fixture(scope="module")
def registered(tracking: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> str:
    home = tmp_path_factory.mktemp("logging-process")
    logged = subprocess_run(
        [sys.executable, str(REPO / "logging_scripts" / "log_agent.py"), "--agent", "openai-agents",
         "--registered-model-name", NAME, "--alias", "prod"],
        home, own_environment(home, tracking),
    )  # fmt: skip
    assert logged.returncode == 0, logged.stderr[-3000:]
    kept = {p.name for p in home.iterdir()} & {"mlruns", "mlartifacts", "mlflow.db", "agentship-state.db"}
    assert not kept, f"the logging process stored {kept} locally"
    return logged.stdout.strip().splitlines()[-1]


def test_the_model_went_over_http_into_the_servers_proxied_artifact_store(
    tracking: ServerProcess, registered: str
) -> None:
    client = MlflowClient(tracking_uri=tracking.url)
    version = client.get_model_version_by_alias(NAME, "prod")
    assert registered == f"models:/{NAME}/{version.version}"
    run = client.get_run(version.run_id)
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")
    assert run.data.tags["agentship.version"]
    root = Path(tracking.process.args[tracking.process.args.index("--artifacts-destination") + 1])
    assert list(root.rglob("MLmodel")), "the artifacts are not in the server's destination"


def _serve(
    command: list[str], name: str, port: int, home: Path, tracking: ServerProcess, backend: str, log_dir: Path
) -> ServerProcess:
    env = own_environment(home, tracking, OPENAI_BASE_URL=backend, MLFLOW_EXPERIMENT_NAME=EXPERIMENT)
    # `python -m serving` is the checkout's entry (not in the wheel): it runs from the checkout, as
    # a user runs it; `mlflow models serve` runs anywhere. Either way HOME and TMPDIR are its own.
    cwd = REPO if command[1:3] == ["-m", "serving"] else home
    return start_server(name, command, port=port, log_dir=log_dir, env=env, cwd=cwd, timeout=180)


@pytest.fixture(scope="module", params=["python -m serving", "mlflow models serve"])
def served(
    request: pytest.FixtureRequest,
    registered: str,
    tracking: ServerProcess,
    scripted: ServerProcess,
    tmp_path_factory: pytest.TempPathFactory,
    log_dir: Path,
) -> Iterator[ServerProcess]:
    home, port = tmp_path_factory.mktemp("serving-process"), free_port()
    model = f"models:/{NAME}@prod"
    if request.param == "python -m serving":
        command = [sys.executable, "-m", "serving", "-m", model, "-p", str(port)]
    else:
        command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", model, "-p", str(port),
                   "--host", "127.0.0.1", "--env-manager", "local"]  # fmt: skip
    server = _serve(
        command,
        f"remote-{request.param.split()[-1]}-{port}",
        port,
        home,
        tracking,
        scripted.url + "/v1",
        log_dir,
    )
    yield server
    server.stop()


def _traces(tracking: ServerProcess, mark: str, timeout: float = 60) -> list[Trace]:
    client = MlflowClient(tracking_uri=tracking.url)
    deadline = time.monotonic() + timeout
    while True:
        experiment = client.get_experiment_by_name(EXPERIMENT)
        if experiment is not None:
            with tracking_uri(tracking.url):
                traces = client.search_traces(locations=[experiment.experiment_id], max_results=200)
            found = [t for t in traces if mark in json.dumps(t.data.request)]
            if found:
                return found
        assert time.monotonic() < deadline, f"no trace for {mark} in {EXPERIMENT!r} after {timeout:g}s"
        time.sleep(0.5)


def test_a_request_is_answered_and_traced_into_the_remote_experiment(
    served: ServerProcess, tracking: ServerProcess
) -> None:
    mark = marker()
    body = {"input": [{"role": "user", "content": f"What is the weather in Paris? {mark}"}]}
    reply = httpx.post(f"{served.url}/invocations", json=body, timeout=60)
    assert reply.status_code == 200, reply.text
    assert reply.json()["output"][-1]["content"][0]["text"] == TOOL_ANSWER
    (trace,) = _traces(tracking, mark)
    spans = trace.data.spans
    (root,) = [s for s in spans if s.parent_id is None]
    assert root.span_type == "AGENT"
    by_id = {s.span_id: s for s in spans}
    for span in spans:  # one connected tree under the AGENT span
        seen = span
        while seen.parent_id is not None:
            seen = by_id[seen.parent_id]
        assert seen is root
    assert sum(1 for s in spans if s.span_type == "CHAT_MODEL") >= 2
    (tool,) = [s for s in spans if s.span_type == "TOOL"]
    (call, _, _) = reply.json()["output"]
    assert (tool.name, tool.inputs, tool.outputs) == ("get_weather", {"city": "Paris"}, PARIS)
    assert {k: v for k, v in tool.attributes.items() if k.startswith("gen_ai.")} == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "get_weather",
        "gen_ai.tool.call.id": call["call_id"],
        "gen_ai.tool.type": "function",
    }
    first = next(s for s in spans if s.span_type == "CHAT_MODEL")
    assert first.inputs[1:] == [{"role": "user", "content": f"What is the weather in Paris? {mark}"}]
    usage = first.attributes["mlflow.chat.tokenUsage"]
    assert (
        first.attributes["gen_ai.usage.input_tokens"],
        first.attributes["gen_ai.usage.output_tokens"],
    ) == (
        usage["input_tokens"],
        usage["output_tokens"],
    )
    assert trace.info.token_usage and trace.info.token_usage["total_tokens"] > 0
