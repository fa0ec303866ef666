"""Traces are grouped by conversation, as MLflow's session view expects: the request's
``context.conversation_id`` becomes the trace's ``mlflow.trace.session`` and its ``user_id``
``mlflow.trace.user``, through `mlflow models serve` (set from inside the agent) and
`python -m serving` (set on the request's span, for any ResponsesAgent)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.entities import Trace
from mlflow.tracing.constant import TraceMetadataKey

from agentship.testing.processes import ServerProcess, free_port, start_mlflow_serve, start_server, venv_env
from tests.e2e.helpers import run_log_agent, settled, wait_for_traces

pytestmark = pytest.mark.e2e

NAME = "session-agent"
ECHO_AGENT = Path(__file__).resolve().parents[1] / "serving" / "models" / "echo_agent.py"


@pytest.fixture(scope="module")
def registered(scripted: ServerProcess) -> str:
    result = run_log_agent("--agent", "openai-agents", "--registered-model-name", NAME)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def _env(scripted: ServerProcess, experiment: str) -> dict[str, str]:
    return {
        "OPENAI_BASE_URL": scripted.url + "/v1",
        "OPENAI_API_KEY": "unused",
        "MLFLOW_EXPERIMENT_NAME": experiment,
    }


def _serving(model_uri: str, log_dir: Path, env: dict[str, str]) -> ServerProcess:
    port = free_port()
    command = [sys.executable, "-m", "serving", "-m", model_uri, "-p", str(port), "-h", "127.0.0.1"]
    return start_server(
        f"sessions-{port}", command, port=port, log_dir=log_dir, env=venv_env(env), health_path="/ready"
    )


def _ask(server: ServerProcess, text: str, **context: str) -> None:
    body: dict[str, object] = {"input": [{"role": "user", "content": text}]}
    if context:
        body["context"] = context
    reply = httpx.post(f"{server.url}/invocations", json=body, timeout=60)
    assert reply.status_code == 200, reply.text


def _by_session(experiment: str, session: str) -> list[Trace]:
    """The conversation's traces whose info has landed whole (see ``settled``)."""
    experiment_id = MlflowClient().get_experiment_by_name(experiment).experiment_id
    found = mlflow.search_traces(
        locations=[experiment_id],
        filter_string=f"metadata.`{TraceMetadataKey.TRACE_SESSION}` = '{session}'",
        return_type="list",
    )
    return [t for t in found if settled(t)]


def _eventually(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Traces are exported asynchronously, in no set order: wait until ``condition`` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the traces did not all arrive"
        time.sleep(0.5)


def _check_conversations(server: ServerProcess, experiment: str) -> None:
    _ask(server, "hello", conversation_id="conv-a", user_id="alice")
    _ask(server, "and again", conversation_id="conv-a", user_id="alice")
    _ask(server, "hi", conversation_id="conv-b", user_id="bob")
    _ask(server, "no context at all")
    wait_for_traces(experiment, lambda _: True)
    _eventually(
        lambda: len(_by_session(experiment, "conv-a")) == 2 and len(_by_session(experiment, "conv-b")) == 1
    )
    conv_a = _by_session(experiment, "conv-a")
    assert {t.info.trace_metadata[TraceMetadataKey.TRACE_USER] for t in conv_a} == {"alice"}
    [conv_b] = _by_session(experiment, "conv-b")
    assert conv_b.info.trace_metadata[TraceMetadataKey.TRACE_USER] == "bob"
    everything = wait_for_traces(
        experiment, lambda t: TraceMetadataKey.TRACE_SESSION not in t.info.trace_metadata
    )
    assert sum(TraceMetadataKey.TRACE_SESSION not in t.info.trace_metadata for t in everything) == 1


def test_mlflow_models_serve_traces_carry_the_session_and_user(
    registered: str, scripted: ServerProcess, log_dir: Path
) -> None:
    server = start_mlflow_serve(registered, log_dir, _env(scripted, "sessions-mlflow-serve"), name="sessions")
    try:
        _check_conversations(server, "sessions-mlflow-serve")
    finally:
        server.stop()


@pytest.fixture(scope="module")
def serving(registered: str, scripted: ServerProcess, log_dir: Path) -> Iterator[ServerProcess]:
    server = _serving(registered, log_dir, _env(scripted, "sessions-serving"))
    yield server
    server.stop()


def test_python_m_serving_traces_carry_the_session_and_user(serving: ServerProcess) -> None:
    _check_conversations(serving, "sessions-serving")


def test_the_responses_api_conversation_and_user_become_the_session(serving: ServerProcess) -> None:
    body = {"model": "agent", "input": "hi there", "conversation": {"id": "conv-r"}, "user": "rita"}
    assert httpx.post(f"{serving.url}/v1/responses", json=body, timeout=60).status_code == 200
    _eventually(lambda: len(_by_session("sessions-serving", "conv-r")) == 1)
    [trace] = _by_session("sessions-serving", "conv-r")
    assert trace.info.trace_metadata[TraceMetadataKey.TRACE_USER] == "rita"


def test_any_responses_agent_served_by_python_m_serving_gets_its_session(
    scripted: ServerProcess, log_dir: Path
) -> None:
    experiment_id = mlflow.create_experiment(f"sessions-echo-{free_port()}")
    with mlflow.start_run(experiment_id=experiment_id):
        info = mlflow.pyfunc.log_model(name="echo", python_model=str(ECHO_AGENT))
    experiment = MlflowClient().get_experiment(experiment_id).name
    server = _serving(info.model_uri, log_dir, _env(scripted, experiment))
    try:
        _ask(server, "echo me", conversation_id="conv-echo", user_id="erin")
        _eventually(lambda: len(_by_session(experiment, "conv-echo")) == 1)
    finally:
        server.stop()
    [trace] = _by_session(experiment, "conv-echo")
    assert trace.info.trace_metadata[TraceMetadataKey.TRACE_USER] == "erin"
