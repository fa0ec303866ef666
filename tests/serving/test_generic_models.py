"""`python -m serving` with any ResponsesAgent, and with several workers."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import mlflow
import openai
import pytest

from agentship.testing.processes import ServerProcess, free_port, start_server, venv_env
from tests.serving.test_server import sse_events

pytestmark = pytest.mark.e2e

MODELS = Path(__file__).resolve().parent / "models"


def _serve(code: Path, log_dir: Path) -> ServerProcess:
    experiment_id = mlflow.create_experiment(f"{code.stem}-{free_port()}")
    with mlflow.start_run(experiment_id=experiment_id):
        info = mlflow.pyfunc.log_model(name=code.stem, python_model=str(code))
    port = free_port()
    command = [sys.executable, "-m", "serving", "-m", info.model_uri, "-p", str(port)]
    return start_server(
        f"serving-{code.stem}",
        command,
        port=port,
        log_dir=log_dir,
        env=venv_env(),
        health_path="/ready",
        timeout=120,
    )


@pytest.fixture(scope="module")
def echo_server(log_dir: Path) -> Iterator[ServerProcess]:
    server = _serve(MODELS / "echo_agent.py", log_dir)
    yield server
    server.stop()


def test_a_predict_only_responses_agent_is_served_through_predict(log_dir: Path) -> None:
    server = _serve(MODELS / "predict_only_agent.py", log_dir)
    try:
        assert httpx.get(f"{server.url}/version").json()["runner"] == "threaded-predict"
        reply = httpx.post(f"{server.url}/invocations", json={"input": "hi"}, timeout=30)
        assert reply.status_code == 200 and reply.json()["output"][0]["content"][0]["text"] == "predicted: hi"
        events = [
            json.loads(d) for _, d in sse_events(server, "/invocations", {"input": "hi", "stream": True})[:-1]
        ]
        assert [e["type"] for e in events] == ["response.output_item.done", "response.completed"]
        client = openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0)
        with client.responses.stream(model="p", input="via openai") as stream:
            final = stream.get_final_response()
        assert final.output_text == "predicted: via openai" and final.usage is not None
        assert final.usage.total_tokens == 5
    finally:
        server.stop()


def test_a_plain_responses_agent_is_served_on_threads(echo_server: ServerProcess) -> None:
    assert httpx.get(f"{echo_server.url}/version").json()["runner"] == "threaded"
    reply = httpx.post(f"{echo_server.url}/invocations", json={"input": "hello world"}, timeout=30)
    assert reply.json()["output"][0]["content"][0]["text"] == "echo: hello world"
    events = [
        json.loads(d)
        for _, d in sse_events(echo_server, "/invocations", {"input": "a b c", "stream": True})[:-1]
    ]
    assert [e["delta"] for e in events if e["type"] == "response.output_text.delta"] == [
        "echo: ",
        "a ",
        "b ",
        "c ",
    ]
    client = openai.OpenAI(base_url=echo_server.url, api_key="unused", max_retries=0)
    assert client.responses.create(model="echo", input="via openai").output_text == "echo: via openai"


def test_the_conversations_api_is_not_offered_for_an_agent_that_keeps_none(
    echo_server: ServerProcess,
) -> None:
    """Only an OpenAI Agents SDK agent's conversations are its sessions in the store: for any other
    agent every conversation route says so, and a ``conv_…`` conversation on /responses stays the
    client's own id (the agent gets it as ``context.conversation_id``)."""
    unavailable = {
        "message": "this agent keeps its conversations itself: the Conversations API serves the "
        "conversations of OpenAI Agents SDK agents",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    conversation = "conv_" + "1" * 48
    for method, path in [
        ("POST", "/v1/conversations"),
        ("GET", f"/v1/conversations/{conversation}"),
        ("GET", f"/v1/conversations/{conversation}/items"),
    ]:
        reply = httpx.request(
            method, echo_server.url + path, json={} if method == "POST" else None, timeout=30
        )
        assert (reply.status_code, reply.json()) == (404, {"error": unavailable}), path
    turn = httpx.post(
        f"{echo_server.url}/v1/responses", json={"input": "hello", "conversation": conversation}, timeout=30
    )
    assert turn.status_code == 200 and turn.json()["conversation"] == {"id": conversation}


def test_several_workers(start_serving: Callable[..., ServerProcess], scripted: ServerProcess) -> None:
    server = start_serving(scripted.url + "/v1", "-w", "2", name="serving-workers")
    replies = [
        httpx.post(f"{server.url}/invocations", json={"input": f"worker check {i}"}, timeout=60)
        for i in range(6)
    ]
    assert [r.json()["output"][-1]["content"][0]["text"] for r in replies] == [
        f"You said: worker check {i}" for i in range(6)
    ]
