"""The user's path, end to end: log_agent.py, then `mlflow models serve`, then POST /invocations,
against the scripted model server. Real tracking store, registry, server processes and tools."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import mlflow
import pytest
from mlflow import MlflowClient

from agentship.testing.processes import ServerProcess, free_port, start_mlflow_serve, start_scripted_llm
from tests.e2e.helpers import download_model, files_containing, run_log_agent, wait_for_traces

pytestmark = pytest.mark.e2e

NAME = "e2e-openai-agents"
LOG_SECRET = "sk-log-time-SECRET-4f1c9e"
SERVE_SECRET = "sk-serve-time-SECRET-77ab01"
TRACE_EXPERIMENT = "e2e-openai-serve-traces"


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Log and register with a key in the environment and no backend reachable."""
    dead = f"http://127.0.0.1:{free_port()}/v1"
    result = run_log_agent(
        "--agent", "openai-agents", "--registered-model-name", NAME, "--alias", "champion",
        env={"OPENAI_API_KEY": LOG_SECRET, "OPENAI_BASE_URL": dead},
        cwd=tmp_path_factory.mktemp("log-cwd"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def served(logged: str, scripted: ServerProcess, log_dir: Path) -> Iterator[ServerProcess]:
    env = {
        "OPENAI_BASE_URL": scripted.url + "/v1",
        "OPENAI_API_KEY": SERVE_SECRET,
        "MLFLOW_EXPERIMENT_NAME": TRACE_EXPERIMENT,
    }
    server = start_mlflow_serve(f"models:/{NAME}@champion", log_dir, env, name="serve-openai-agents")
    yield server
    server.stop()


def invoke(server: ServerProcess, body: object, timeout: float = 60) -> httpx.Response:
    return httpx.post(f"{server.url}/invocations", json=body, timeout=timeout)


def test_logging_registers_a_version_and_prints_its_uri(logged: str) -> None:
    assert logged.startswith(f"models:/{NAME}/")
    version = logged.rsplit("/", 1)[1]
    assert str(MlflowClient().get_model_version_by_alias(NAME, "champion").version) == version


def test_logged_model_carries_code_config_and_pinned_requirements(logged: str, tmp_path: Path) -> None:
    local = download_model(logged, tmp_path)
    assert (local / "code" / "agentship" / "responses_agent.py").is_file()
    requirements = (local / "requirements.txt").read_text().split()
    assert f"mlflow=={mlflow.__version__}" in requirements
    assert any(r.startswith("openai-agents==") for r in requirements)
    mlmodel = (local / "MLmodel").read_text()
    assert "agentship.examples.tools:get_weather" in mlmodel
    assert "task: agent/v1/responses" in mlmodel


def test_api_key_at_log_time_is_in_no_model_file(logged: str, tmp_path: Path) -> None:
    local = download_model(logged, tmp_path)
    assert files_containing(local, LOG_SECRET) == []
    assert files_containing(local, SERVE_SECRET) == []


def test_tool_call_its_output_and_the_final_answer(served: ServerProcess) -> None:
    reply = invoke(served, {"input": [{"role": "user", "content": "What is the weather in Paris?"}]})
    assert reply.status_code == 200, reply.text
    output = reply.json()["output"]
    assert [o["type"] for o in output] == ["function_call", "function_call_output", "message"]
    assert output[0]["name"] == "get_weather" and json.loads(output[0]["arguments"]) == {"city": "Paris"}
    assert output[1] == {
        "type": "function_call_output",
        "call_id": output[0]["call_id"],
        "output": "The weather in Paris is 18°C and sunny.",
    }
    assert (
        output[2]["content"][0]["text"]
        == "The get_weather tool returned: The weather in Paris is 18°C and sunny."
    )


def test_usage_and_custom_outputs_are_returned(served: ServerProcess) -> None:
    body = invoke(served, {"input": [{"role": "user", "content": "hello"}]}).json()
    usage = body["usage"]
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert body["custom_outputs"] == {"last_agent": "assistant"}


def test_a_multi_turn_history_reaches_the_model_intact(
    served: ServerProcess, scripted: ServerProcess
) -> None:
    httpx.delete(f"{scripted.url}/scripted/requests")
    history = [
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": [{"type": "output_text", "text": "Hello Ada!"}]},
        {"role": "user", "content": "What is the weather in Tokyo?"},
        {
            "type": "function_call",
            "call_id": "call_old",
            "name": "get_weather",
            "arguments": '{"city": "Tokyo"}',
        },
        {"type": "function_call_output", "call_id": "call_old", "output": "22°C and clear"},
        {"role": "assistant", "content": "It is 22°C and clear in Tokyo."},
        {"role": "user", "content": "Thanks, and who am I?"},
    ]
    reply = invoke(served, {"input": history})
    assert reply.status_code == 200, reply.text
    assert reply.json()["output"][-1]["content"][0]["text"] == "You said: Thanks, and who am I?"
    seen = httpx.get(f"{scripted.url}/scripted/requests").json()[-1]["messages"]
    assert [(m["role"], m["text"]) for m in seen] == [
        ("system", seen[0]["text"]),
        ("user", "My name is Ada."),
        ("assistant", "Hello Ada!"),
        ("user", "What is the weather in Tokyo?"),
        ("assistant", ""),  # the assistant turn that carried the tool call
        ("tool", "22°C and clear"),
        ("assistant", "It is 22°C and clear in Tokyo."),
        ("user", "Thanks, and who am I?"),
    ]
    assert "concise assistant" in seen[0]["text"]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"input": []}, "'input' must contain at least one item"),
        ({"input": [{"role": "robot", "content": "hi"}]}, "Invalid role: robot"),
        ({"messages": [{"role": "user", "content": "hi"}]}, "input"),
    ],
)
def test_bad_input_gets_a_4xx_naming_the_problem(served: ServerProcess, body: object, problem: str) -> None:
    reply = invoke(served, body)
    assert 400 <= reply.status_code < 500
    assert problem in reply.text
    assert invoke(served, {"input": [{"role": "user", "content": "still there?"}]}).status_code == 200


def test_malformed_json_gets_a_400(served: ServerProcess) -> None:
    reply = httpx.post(
        f"{served.url}/invocations", content=b'{"input": [', headers={"content-type": "application/json"}
    )
    assert reply.status_code == 400
    assert "valid JSON" in reply.json()["message"]


def test_each_request_is_one_trace_with_model_and_tool_spans(served: ServerProcess) -> None:
    reply = invoke(served, {"input": [{"role": "user", "content": "What is the weather in Berlin?"}]})
    traces = wait_for_traces(TRACE_EXPERIMENT, lambda t: "Berlin" in json.dumps(t.data.request))
    berlin = [t for t in traces if "Berlin" in json.dumps(t.data.request)]
    assert len(berlin) == 1, "expected exactly one trace for the request"
    trace = berlin[0]
    spans = trace.data.spans
    roots = [s for s in spans if s.parent_id is None]
    assert len(roots) == 1 and roots[0].span_type == "AGENT"
    models = [s for s in spans if s.span_type == "CHAT_MODEL"]
    assert len(models) == 2
    tools = [s for s in spans if s.span_type == "TOOL"]
    call = reply.json()["output"][0]
    # Under stock `mlflow models serve`, each span holds its inputs too.
    assert [(s.name, s.inputs, s.outputs) for s in tools] == [
        ("get_weather", {"city": "Berlin"}, "The weather in Berlin is 15°C and cloudy.")
    ]
    assert tools[0].attributes["gen_ai.tool.call.id"] == call["call_id"]
    assert models[0].inputs[1:] == [{"role": "user", "content": "What is the weather in Berlin?"}]
    assert models[1].inputs[-1] == {
        "role": "tool",
        "tool_call_id": call["call_id"],
        "content": "The weather in Berlin is 15°C and cloudy.",
    }
    [agent] = [s for s in spans if s.name == "assistant"]
    assert agent.inputs == {"tools": ["get_weather", "add"], "handoffs": ["travel_planner"]}
    assert trace.info.token_usage and trace.info.token_usage["total_tokens"] > 0
    for t in traces:
        assert SERVE_SECRET not in t.to_json()


def test_no_secret_in_the_server_log(served: ServerProcess) -> None:
    invoke(served, {"input": [{"role": "user", "content": "log check"}]})
    text = served.log_text()
    assert SERVE_SECRET not in text
    assert LOG_SECRET not in text


def test_backend_down_is_a_clear_error_and_the_server_keeps_serving(
    logged: str, log_dir: Path, tmp_path: Path
) -> None:
    port = free_port()
    server = start_mlflow_serve(
        logged, log_dir, {"OPENAI_BASE_URL": f"http://127.0.0.1:{port}/v1"}, name="serve-backend-down"
    )
    try:
        reply = invoke(server, {"input": [{"role": "user", "content": "hi"}]})
        assert reply.status_code == 503
        assert "the model backend is unreachable" in reply.json()["message"]
        assert f"127.0.0.1:{port}" not in reply.text  # the internal URL stays in the server's log
        assert f"127.0.0.1:{port}" in server.log_text()
        assert "Traceback" not in reply.text
        assert httpx.get(f"{server.url}/health").status_code == 200
        backend = start_scripted_llm(tmp_path, port=port)
        try:
            recovered = invoke(server, {"input": [{"role": "user", "content": "hi again"}]})
            assert recovered.status_code == 200
            assert recovered.json()["output"][-1]["content"][0]["text"] == "You said: hi again"
        finally:
            backend.stop()
    finally:
        server.stop()
