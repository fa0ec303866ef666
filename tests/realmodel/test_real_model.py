"""The end-to-end suite's structural checks, against the real small model instead of the scripted
one: log; `mlflow models serve` and `python -m serving`; a multi-turn conversation; streaming as
tokens are generated; forced tool calls; usage reported or absent, never invented; traces with
CHAT_MODEL spans. Nothing here depends on what the model says."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import mlflow
import openai
import pytest
from mlflow import MlflowClient
from mlflow.entities import SpanType, Trace
from mlflow.tracing.constant import SpanAttributeKey, TraceMetadataKey

from agentship.client import ServedAgent, answer_text
from agentship.testing.processes import ServerProcess, start_mlflow_serve
from agentship.testing.real_model import MODEL_ALIAS
from tests.e2e.helpers import download_model, settled, wait_for_traces
from tests.serving.test_server import sse_events

pytestmark = [pytest.mark.realmodel, pytest.mark.e2e]

SERVE_EXPERIMENT = "realmodel-mlflow-serve"
SERVING_EXPERIMENT = "realmodel-serving"
TOOL_EXPERIMENT = "realmodel-tools"


def assert_usage_reported_or_absent(usage: dict[str, Any] | None) -> None:
    """llama.cpp's streams report no usage: then there is none. Never made-up zeros."""
    if usage is None:
        return
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


def assert_traced_model_calls(trace: Trace) -> None:
    """An AGENT root, a CHAT_MODEL span per model call, and no usage the backend did not report."""
    types = [span.span_type for span in trace.data.spans]
    assert types[0] == SpanType.AGENT and SpanType.CHAT_MODEL in types
    for span in trace.data.spans:
        usage = span.get_attribute(SpanAttributeKey.CHAT_USAGE)
        assert usage is None or usage["total_tokens"] > 0, f"{span.name} records zero usage"
    assert_usage_reported_or_absent(trace.info.token_usage and dict(trace.info.token_usage))


def message_text(response: dict[str, Any]) -> str:
    return answer_text(response)


def trace_of_session(experiment: str, session: str) -> Trace:
    def match(trace: Trace) -> bool:
        return trace.info.trace_metadata.get(TraceMetadataKey.TRACE_SESSION) == session

    return next(t for t in wait_for_traces(experiment, match) if match(t))


def test_logging_records_the_real_model_and_no_endpoint(gemma_agent: str, tmp_path: Path) -> None:
    local = download_model(gemma_agent, tmp_path)
    mlmodel = (local / "MLmodel").read_text()
    assert f"model: {MODEL_ALIAS}" in mlmodel and "api: chat_completions" in mlmodel
    assert "127.0.0.1" not in mlmodel  # the endpoint comes from OPENAI_BASE_URL when served


@pytest.fixture(scope="module")
def mlflow_serve(gemma_agent: str, llama: ServerProcess, log_dir: Path) -> Iterator[ServerProcess]:
    env = {
        "OPENAI_BASE_URL": llama.url + "/v1",
        "OPENAI_API_KEY": "unused",
        "MLFLOW_EXPERIMENT_NAME": SERVE_EXPERIMENT,
    }
    server = start_mlflow_serve(gemma_agent, log_dir, env, name="realmodel-mlflow-serve")
    yield server
    server.stop()


def test_mlflow_models_serve_answers_with_a_message_and_honest_usage(mlflow_serve: ServerProcess) -> None:
    reply = httpx.post(
        f"{mlflow_serve.url}/invocations",
        json={
            "input": [{"role": "user", "content": "Say hello to Ada."}],
            "context": {"conversation_id": "rm-1"},
        },
        timeout=300,
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["output"] and body["output"][-1]["type"] == "message"
    assert isinstance(message_text(body), str)
    assert_usage_reported_or_absent(body.get("usage"))
    assert body["custom_outputs"]["last_agent"] == "assistant"
    trace = trace_of_session(SERVE_EXPERIMENT, "rm-1")
    assert_traced_model_calls(trace)


def test_a_multi_turn_history_is_answered(mlflow_serve: ServerProcess) -> None:
    history = [
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": "Hello Ada!"},
        {"role": "user", "content": "What is my name?"},
    ]
    reply = httpx.post(f"{mlflow_serve.url}/invocations", json={"input": history}, timeout=300)
    assert reply.status_code == 200, reply.text
    assert reply.json()["output"][-1]["type"] == "message"


@pytest.fixture(scope="module")
def serving(gemma_agent: str, start_gemma_serving: Callable[[str, str], ServerProcess]) -> ServerProcess:
    return start_gemma_serving(gemma_agent, SERVING_EXPERIMENT)


def test_the_stream_arrives_as_the_tokens_are_generated(serving: ServerProcess) -> None:
    body = {"input": [{"role": "user", "content": "Count from one to twenty, in words."}], "stream": True}
    events = [(t, json.loads(d)) for t, d in sse_events(serving, "/invocations", body) if d != "[DONE]"]
    deltas = [(t, e) for t, e in events if e["type"] == "response.output_text.delta"]
    [(done_at, completed)] = [(t, e) for t, e in events if e["type"] == "response.completed"]
    assert len(deltas) >= 2, events
    assert len({e["item_id"] for _, e in deltas}) == 1
    # Tokens come one by one over the generation, not all at once at the end.
    assert deltas[-1][0] - deltas[0][0] > 0.05 and done_at - deltas[0][0] > 0.05
    text = "".join(e["delta"] for _, e in deltas)
    assert message_text(completed["response"]) == text
    assert_usage_reported_or_absent(completed["response"].get("usage"))


def test_the_responses_api_streams_through_the_openai_client(serving: ServerProcess) -> None:
    client = openai.OpenAI(base_url=serving.url, api_key="unused", max_retries=0, timeout=300)
    deltas = []
    with client.responses.stream(model="agent", input="Name three colours.") as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = stream.get_final_response()
    assert deltas and final.output_text == "".join(deltas)
    assert_usage_reported_or_absent(final.usage.model_dump() if final.usage else None)


def test_a_conversation_keeps_its_turns_and_its_session(serving: ServerProcess) -> None:
    agent = ServedAgent(serving.url, conversation_id="rm-conversation")
    for question in ("Hello, my name is Ada.", "What did I just tell you?"):
        response = agent.ask(question)
        assert response["output"][-1]["type"] == "message"
    assert len(agent.conversation.history) >= 4
    wait_for_traces(
        SERVING_EXPERIMENT,
        lambda _: len(_session_traces(SERVING_EXPERIMENT, "rm-conversation")) == 2,
    )
    for trace in _session_traces(SERVING_EXPERIMENT, "rm-conversation"):
        assert_traced_model_calls(trace)


def _session_traces(experiment: str, session: str) -> list[Trace]:
    experiment_id = MlflowClient().get_experiment_by_name(experiment).experiment_id
    found = mlflow.search_traces(
        locations=[experiment_id],
        filter_string=f"metadata.`{TraceMetadataKey.TRACE_SESSION}` = '{session}'",
        return_type="list",
    )
    return [t for t in found if settled(t)]


@pytest.fixture(scope="module")
def tool_serving(
    gemma_tool_agent: str, start_gemma_serving: Callable[[str, str], ServerProcess]
) -> ServerProcess:
    return start_gemma_serving(gemma_tool_agent, TOOL_EXPERIMENT)


def test_a_forced_tool_choice_calls_the_tool_and_returns_its_output(tool_serving: ServerProcess) -> None:
    body = {
        "input": [{"role": "user", "content": "What is the weather in Paris?"}],
        "context": {"conversation_id": "rm-tool"},
    }
    reply = httpx.post(f"{tool_serving.url}/invocations", json=body, timeout=300)
    assert reply.status_code == 200, reply.text
    output = reply.json()["output"]
    calls = [o for o in output if o["type"] == "function_call"]
    results = [o for o in output if o["type"] == "function_call_output"]
    assert calls and calls[0]["name"] == "get_weather"
    assert isinstance(json.loads(calls[0]["arguments"]).get("city"), str)  # grammar-constrained JSON
    assert results[0]["call_id"] == calls[0]["call_id"] and results[0]["output"]
    assert_usage_reported_or_absent(reply.json().get("usage"))
    trace = trace_of_session(TOOL_EXPERIMENT, "rm-tool")
    assert_traced_model_calls(trace)
    assert [s.name for s in trace.data.spans if s.span_type == SpanType.TOOL][:1] == ["get_weather"]
