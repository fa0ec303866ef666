"""The package's tracing against MLflow's own integration, in process: the same agent (the
example config: two tools and a handoff), the same request, the real Agents SDK runner and
OpenAI models against the scripted model server, traces in the session's MLflow store.

One run is traced by ``mlflow.openai.autolog()``, one by the package's processor; every field
autolog records must be in ours, span by span. Then our trace is read back field by field
against the exact values: the model spans' messages, the tool span's arguments, the agent
span's tools.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pytest
import yaml
from agents.version import __version__ as SDK_VERSION
from mlflow.entities import Span, SpanType, Trace
from mlflow.pyfunc import PythonModelContext
from mlflow.tracing.constant import SpanAttributeKey

from agents import ModelSettings, set_trace_processors
from agentship.openai_agents import OpenAIAgentsBackend, parse_config, tracing
from agentship.responses_agent import AgentBackend, AgentshipResponsesAgent
from agentship.testing.processes import ServerProcess, start_scripted_llm
from tests.conftest import REPO

CONFIG = yaml.safe_load((REPO / "agentship" / "configs" / "openai_agents.yaml").read_text())
QUESTION = "What is the weather in Paris?"
ANSWER = "The weather in Paris is 18°C and sunny."
OWN_KEYS = {
    SpanAttributeKey.SPAN_TYPE,
    SpanAttributeKey.REQUEST_ID,
    SpanAttributeKey.LOG_LEVEL,
    SpanAttributeKey.INPUTS,
    SpanAttributeKey.OUTPUTS,
}
"""Attributes MLflow writes itself on every span; the type is compared on its own (spans are
paired by it)."""


def _tool(name: str, description: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    parameters = {
        "properties": properties,
        "type": "object",
        "required": required,
        "additionalProperties": False,
    }
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": parameters, "strict": True},
    }


CHAT_TOOLS = [
    _tool(
        "get_weather",
        "Get the current weather for a city.",
        {"city": {"type": "string", "description": 'The city\'s name, for example "Paris".'}},
        ["city"],
    ),
    _tool(
        "add",
        "Add two numbers.",
        {
            "a": {"type": "number", "description": "The first number."},
            "b": {"type": "number", "description": "The second number."},
        },
        ["a", "b"],
    ),
    _tool(
        "transfer_to_travel_planner",
        "Handoff to the travel_planner agent to handle the request. Plans trips and itineraries.",
        {},
        [],
    ),
]


class _Agent(AgentshipResponsesAgent):
    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.environ = {
            "OPENAI_BASE_URL": base_url,
            "OPENAI_API_KEY": "unused",
            "AGENTSHIP_STATE_URL": "none",
        }

    def build_backend(self, model_config: Any) -> AgentBackend:
        return OpenAIAgentsBackend(parse_config(dict(model_config)), self.environ)


@pytest.fixture(scope="module")
def model_server(log_dir: Path) -> Iterator[ServerProcess]:
    server = start_scripted_llm(log_dir)
    yield server
    server.stop()


@pytest.fixture
def traced_by_us() -> Iterator[None]:
    set_trace_processors([tracing.install()])
    yield
    set_trace_processors([])


@pytest.fixture
def traced_by_autolog() -> Iterator[None]:
    set_trace_processors([])
    mlflow.openai.autolog()
    yield
    mlflow.openai.autolog(disable=True)
    set_trace_processors([])


def load(server: ServerProcess, api: str) -> _Agent:
    agent = _Agent(server.url + "/v1")
    agent.load_context(PythonModelContext({}, {**CONFIG, "api": api}))
    return agent


def run(agent: _Agent, stream: bool = False) -> tuple[dict[str, Any], Trace]:
    mlflow.set_experiment("trace-parity")
    request = {"input": [{"role": "user", "content": QUESTION}]}
    if stream:
        events = [e.model_dump(exclude_none=True) for e in agent.predict_stream(request)]
        items = [e["item"] for e in events if e["type"] == "response.output_item.done"]
        response = {"output": items}
    else:
        response = agent.predict(request).model_dump(exclude_none=True)
    mlflow.flush_trace_async_logging()
    trace = mlflow.get_trace(mlflow.get_last_active_trace_id())
    assert trace is not None
    return response, trace


_ID = re.compile(r"\b(call|chatcmpl|resp|fc|msg|rs)[_-][0-9a-f]{6,}\b")
_TIMES = {"created_at", "completed_at"}


def same_run(value: Any) -> Any:
    """``value`` with the ids and times that differ between two runs: each kind of id numbered
    by first use."""
    seen: dict[str, str] = {}

    def number(match: re.Match[str]) -> str:
        kind = match.group(1)
        if match.group(0) not in seen:
            seen[match.group(0)] = f"<{kind}{sum(1 for k in seen.values() if k.startswith('<' + kind))}>"
        return seen[match.group(0)]

    def walk(v: Any, key: str = "") -> Any:
        if key in _TIMES and isinstance(v, int | float):
            return "<time>"
        if isinstance(v, str):
            return _ID.sub(number, v)
        if isinstance(v, list):
            return [walk(x) for x in v]
        if isinstance(v, dict):
            return {k: walk(x, k) for k, x in v.items()}
        return v

    return walk(value)


def fields(span: Span) -> dict[str, Any]:
    """Everything a span records besides MLflow's own keys, ids and times numbered."""
    attributes = {k: v for k, v in span.attributes.items() if k not in OWN_KEYS}
    return same_run({"inputs": span.inputs, "outputs": span.outputs, **attributes})


def recorded(span: Span) -> dict[str, Any]:
    """The fields autolog recorded on a span (what is None was not recorded)."""
    return {k: v for k, v in fields(span).items() if v is not None}


_ABSENT = object()


def assert_holds(theirs: dict[str, Any], ours: dict[str, Any], where: str) -> None:
    """Every field of ``theirs`` is in ``ours`` with the same value."""
    differ = {k: (v, ours.get(k, _ABSENT)) for k, v in theirs.items() if ours.get(k, _ABSENT) != v}
    assert not differ, f"{where}: (autolog's, ours) differ: {differ}"


def _is_unset(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.startswith("<openai.Omit object"))


def check_client_span(client: Span, ours: Span, api: str) -> None:
    """Autolog's extra span for the OpenAI client's call: what it records is on our model span.

    Its request's arguments are its inputs and, again, its attributes; its output is the API's
    whole answer."""
    mine = fields(ours)
    theirs = recorded(client)
    request, answer = theirs.pop("inputs"), theirs.pop("outputs")
    for key in [k for k in theirs if k in request]:
        assert theirs.pop(key) == request[key], key
    if api == "chat_completions":
        assert request.pop("messages") == mine["inputs"]
        assert [choice["message"] for choice in answer["choices"]] == mine["outputs"]
    else:
        assert request.pop("input") == mine["inputs"]
        assert request.pop("instructions") == mine["instructions"] == CONFIG["instructions"]
        assert request.pop("include") == [] and mine["model_config"]["response_include"] is None
        assert answer.pop("output") == mine["outputs"]
        assert_holds({k: v for k, v in answer.items() if v is not None}, mine, "the API's answer")
    assert request.pop("model") == mine[SpanAttributeKey.MODEL] == theirs.pop(SpanAttributeKey.MODEL)
    assert request.pop("temperature") == mine["model_config"]["temperature"] == 0.2
    assert len(request.pop("tools")) == len(mine[SpanAttributeKey.CHAT_TOOLS]) == 3
    assert theirs.pop(SpanAttributeKey.CHAT_TOOLS) == mine[SpanAttributeKey.CHAT_TOOLS] == CHAT_TOOLS
    assert_holds(theirs.pop(SpanAttributeKey.CHAT_USAGE), mine[SpanAttributeKey.CHAT_USAGE], "usage")
    assert theirs.pop(SpanAttributeKey.MESSAGE_FORMAT) == "openai"  # the client's request shape
    # What is left is the client's transport: its header, and what the SDK left unset.
    assert request.pop("extra_headers") == {"User-Agent": f"Agents/Python {SDK_VERSION}"}
    assert theirs == {}, theirs
    assert all(_is_unset(v) for v in request.values()), request


@pytest.mark.parametrize("api", ["chat_completions", "responses"])
def test_every_field_autolog_records_is_in_our_trace(
    model_server: ServerProcess, api: str, request: pytest.FixtureRequest
) -> None:
    agent = load(model_server, api)
    request.getfixturevalue("traced_by_autolog")
    _, theirs = run(agent)
    request.getfixturevalue("traced_by_us")  # replaces autolog's processor with ours
    mlflow.openai.autolog(disable=True)
    _, ours = run(agent)
    agent.close()

    mine = {
        t: [s for s in ours.data.spans if s.span_type == t]
        for t in (SpanType.AGENT, SpanType.CHAT_MODEL, SpanType.TOOL)
    }
    clients = [s for s in theirs.data.spans if s.name in ("AsyncCompletions", "AsyncResponses")]
    model_spans = [s for s in theirs.data.spans if s.span_type == SpanType.CHAT_MODEL and s not in clients]
    assert len(model_spans) == len(mine[SpanType.CHAT_MODEL]) == 2
    for autolog_span, our_span in zip(model_spans, mine[SpanType.CHAT_MODEL], strict=True):
        assert_holds(recorded(autolog_span), fields(our_span), autolog_span.name)
    for client, our_span in zip(clients, mine[SpanType.CHAT_MODEL], strict=True):
        check_client_span(client, our_span, api)
    [their_tool] = [s for s in theirs.data.spans if s.span_type == SpanType.TOOL]
    assert_holds(recorded(their_tool), fields(mine[SpanType.TOOL][0]), "tool")
    [their_agent] = [s for s in theirs.data.spans if s.span_type == SpanType.AGENT and s.name == "assistant"]
    [our_agent] = [s for s in mine[SpanType.AGENT] if s.name == "assistant"]
    assert_holds(recorded(their_agent), fields(our_agent), "agent")
    # The run's span holds the run's input and final output: the request's span has both.
    [run_span] = [s for s in theirs.data.spans if s.name == "AgentRunner.run"]
    root = ours.data.spans[0]
    assert [
        {k: i[k] for k in ("role", "content")} for i in root.inputs["request"]["input"]
    ] == run_span.inputs
    assert root.outputs["output"][-1]["content"][0]["text"] == run_span.outputs
    # The SDK's task and turn spans are structure only: autolog records nothing on them.
    for span in theirs.data.spans:
        if span.span_type == SpanType.CHAIN:
            assert recorded(span) == {}, span.name
    named = {s.name for s in theirs.data.spans} - {s.name for s in model_spans + clients}
    assert named == {"predict", "AgentRunner.run", "assistant", "Unknown", "get_weather"}


def _mine(span: Span) -> dict[str, Any]:
    return {k: v for k, v in span.attributes.items() if k not in OWN_KEYS}


def _generation(usage: dict[str, int], model_config: dict[str, Any]) -> dict[str, Any]:
    return {
        SpanAttributeKey.MODEL: "scripted-model",
        "model_config": model_config,
        SpanAttributeKey.MESSAGE_FORMAT: "openai-agent",
        SpanAttributeKey.CHAT_USAGE: {
            **usage,
            "cache_read_input_tokens": 0,
            "cache_creation_input_tokens": 0,
        },
        SpanAttributeKey.CHAT_TOOLS: CHAT_TOOLS,
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "scripted-model",
        "gen_ai.request.temperature": 0.2,
        "gen_ai.usage.input_tokens": usage["input_tokens"],
        "gen_ai.usage.output_tokens": usage["output_tokens"],
    }


def _assert_agent_and_tool(agent_span: Span, tool: Span, call_id: str) -> None:
    assert agent_span.inputs == {"tools": ["get_weather", "add"], "handoffs": ["travel_planner"]}
    assert agent_span.outputs == {"output_type": "str"}
    assert _mine(agent_span) == {
        "tools": ["get_weather", "add"],
        "handoffs": ["travel_planner"],
        "output_type": "str",
        SpanAttributeKey.CHAT_TOOLS: CHAT_TOOLS,
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "assistant",
    }
    assert tool.inputs == {"city": "Paris"}
    assert tool.outputs == ANSWER
    assert _mine(tool) == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "get_weather",
        "gen_ai.tool.call.id": call_id,
        "gen_ai.tool.type": "function",
    }


@pytest.mark.parametrize("stream", [False, True], ids=["predict", "predict_stream"])
def test_our_trace_reads_back_exactly(model_server: ServerProcess, traced_by_us: None, stream: bool) -> None:
    agent = load(model_server, "chat_completions")
    response, trace = run(agent, stream=stream)
    agent.close()
    call_id = response["output"][0]["call_id"]
    assert [(s.name, s.span_type) for s in trace.data.spans] == [
        ("predict_stream" if stream else "predict", "AGENT"),
        ("assistant", "AGENT"),
        ("generation scripted-model", "CHAT_MODEL"),
        ("get_weather", "TOOL"),
        ("generation scripted-model", "CHAT_MODEL"),
    ]
    _, agent_span, first, tool, second = trace.data.spans
    _assert_agent_and_tool(agent_span, tool, call_id)
    system = {"content": CONFIG["instructions"], "role": "system"}
    user = {"role": "user", "content": QUESTION}
    arguments = json.dumps({"city": "Paris"})
    call = {"id": call_id, "type": "function", "function": {"name": "get_weather", "arguments": arguments}}
    assert first.inputs == [system, user]
    assert second.inputs == [
        system,
        user,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call_id, "content": ANSWER},
    ]
    model_config = {
        **ModelSettings(temperature=0.2, include_usage=True).to_traceable_dict(),
        "base_url": f"{model_server.url}/v1/",
    }
    assert _mine(first) == _generation(
        {"input_tokens": 28, "output_tokens": 2, "total_tokens": 30}, model_config
    )
    assert _mine(second) == _generation(
        {"input_tokens": 36, "output_tokens": 12, "total_tokens": 48}, model_config
    )
    if not stream:  # a streamed call's output is the SDK's whole Response object
        assert first.outputs == [_assistant(None, [_call(call_id, arguments)])]
        assert second.outputs == [_assistant(f"The get_weather tool returned: {ANSWER}", None)]
        usage = response["usage"]
        assert (usage["input_tokens"], usage["output_tokens"], usage["total_tokens"]) == (64, 14, 78)


def _call(call_id: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "function": {"arguments": arguments, "name": "get_weather"}, "type": "function"}


def _assistant(content: str | None, tool_calls: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {
        "content": content,
        "refusal": None,
        "role": "assistant",
        "annotations": None,
        "audio": None,
        "function_call": None,
        "tool_calls": tool_calls,
    }
