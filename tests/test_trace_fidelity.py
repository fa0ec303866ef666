"""What the package's traces hold beyond the parity run, in process (the real Agents SDK runner and
OpenAI models, the scripted model server, the session's MLflow store): a handoff, a failing tool,
a tripped guardrail, a payload over the bound, no secret, and a tracing failure that costs the
request nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import mlflow
import pytest
from mlflow.entities import Span, SpanType, Trace
from mlflow.pyfunc import PythonModelContext

from agents import set_trace_processors
from agentship.errors import GuardrailTriggeredError
from agentship.openai_agents import OpenAIAgentsBackend, parse_config, tracing
from agentship.responses_agent import AgentBackend, AgentshipResponsesAgent
from agentship.testing.processes import ServerProcess
from agentship.trace_payloads import MAX_PAYLOAD_ENV, PayloadLimit

SECRET = "sk-trace-SECRET-1b7e"
TOOLS = "agentship.examples.tools"
BASE = {"name": "assistant", "instructions": "be brief", "model": "scripted-model", "api": "chat_completions"}


class _Agent(AgentshipResponsesAgent):
    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.environ = {"OPENAI_BASE_URL": base_url, "OPENAI_API_KEY": SECRET, "AGENTSHIP_STATE_URL": "none"}

    def build_backend(self, model_config: Any) -> AgentBackend:
        return OpenAIAgentsBackend(parse_config(dict(model_config)), self.environ)


@pytest.fixture
def bridge() -> Iterator[tracing.MlflowSpanBridge]:
    installed = tracing.install()
    set_trace_processors([installed])
    yield installed
    set_trace_processors([])


@pytest.fixture
def load(scripted: ServerProcess, bridge: tracing.MlflowSpanBridge) -> Iterator[Any]:
    loaded: list[_Agent] = []

    def _load(**config: Any) -> _Agent:
        agent = _Agent(scripted.url + "/v1")
        agent.load_context(PythonModelContext({}, {**BASE, **config}))
        loaded.append(agent)
        return agent

    yield _load
    for agent in loaded:
        agent.close()


def ask(agent: _Agent, text: str) -> tuple[list[dict[str, Any]], Trace]:
    mlflow.set_experiment("trace-fidelity")
    try:
        output = [o.model_dump(exclude_none=True) for o in agent.predict({"input": text}).output]
    finally:
        mlflow.flush_trace_async_logging()
    trace = mlflow.get_trace(mlflow.get_last_active_trace_id())
    assert trace is not None
    return output, trace


def of_type(trace: Trace, span_type: str) -> list[Span]:
    return [s for s in trace.data.spans if s.span_type == span_type]


def test_a_handoff_is_a_span_and_each_agent_shows_its_own_tools(load: Any) -> None:
    planner = {"name": "travel_planner", "instructions": "plan trips", "tools": [f"{TOOLS}:get_weather"]}
    agent = load(tools=[f"{TOOLS}:get_weather", f"{TOOLS}:add"], handoffs=[planner])
    _, trace = ask(agent, "Please transfer to travel planner")
    assert [s.name for s in trace.data.spans] == [
        "predict",
        "assistant",
        "generation scripted-model",
        "handoff to travel_planner",
        "travel_planner",
        "generation scripted-model",
    ]
    _, entry, _, handoff, second, _ = trace.data.spans
    assert (handoff.span_type, handoff.inputs, handoff.outputs) == (
        SpanType.CHAIN,
        {"from_agent": "assistant"},
        {"to_agent": "travel_planner"},
    )
    assert entry.inputs == {"tools": ["get_weather", "add"], "handoffs": ["travel_planner"]}
    assert second.inputs == {"tools": ["get_weather"], "handoffs": []}
    assert [t["function"]["name"] for t in second.attributes["mlflow.chat.tools"]] == ["get_weather"]


def test_a_failing_tool_is_an_error_span_with_the_sdks_error(load: Any) -> None:
    agent = load(tools=[f"{TOOLS}:failing_tool"])
    output, trace = ask(agent, "Please run failing tool because Testing")
    [tool] = of_type(trace, SpanType.TOOL)
    assert (tool.name, tool.inputs, tool.outputs) == (
        "failing_tool",
        {"reason": "Testing"},
        output[1]["output"],
    )
    assert tool.status.status_code == "ERROR"
    assert tool.status.description == "Error running tool (non-fatal)"
    [event] = tool.events
    assert event.name == "exception"
    assert event.attributes["exception.message"] == "Error running tool (non-fatal)"


def test_a_tripped_guardrail_is_a_guardrail_span(load: Any) -> None:
    agent = load(input_guardrails=["agentship.examples.guardrails:no_passwords"])
    with pytest.raises(GuardrailTriggeredError):
        ask(agent, "What is my password?")
    trace = mlflow.get_trace(mlflow.get_last_active_trace_id())
    assert trace is not None
    [guardrail] = of_type(trace, SpanType.GUARDRAIL)
    assert (guardrail.name, guardrail.outputs) == ("no_passwords", {"triggered": True})


def test_a_payload_over_the_bound_is_cut_with_a_marker(load: Any, bridge: tracing.MlflowSpanBridge) -> None:
    bridge.limit = PayloadLimit.from_environ({MAX_PAYLOAD_ENV: "1024"})
    try:
        long = "word " * 600  # 3000 characters
        _, trace = ask(load(), long)
    finally:
        bridge.limit = PayloadLimit()
    [model] = of_type(trace, SpanType.CHAT_MODEL)
    assert model.inputs == [
        {"content": "be brief", "role": "system"},
        {"role": "user", "content": long[:256] + "…[cut 2744 of 3000 characters]"},
    ]
    answer = f"You said: {long.strip()}"
    assert (
        model.outputs[0]["content"]
        == answer[:256] + f"…[cut {len(answer) - 256} of {len(answer)} characters]"
    )


def test_no_secret_reaches_the_trace(load: Any) -> None:
    _, trace = ask(load(tools=[f"{TOOLS}:get_weather"]), "What is the weather in Paris?")
    assert len(trace.data.spans) == 5
    assert SECRET not in trace.to_json()


def test_a_tracing_failure_costs_the_request_nothing(load: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any) -> None:
        raise RuntimeError("the trace store is on fire")

    monkeypatch.setattr(tracing, "write_payload", broken)
    output, trace = ask(load(tools=[f"{TOOLS}:get_weather"]), "What is the weather in Paris?")
    assert (
        output[-1]["content"][0]["text"]
        == "The get_weather tool returned: The weather in Paris is 18°C and sunny."
    )
    # The spans are still closed (marked failed), so the trace is whole.
    assert [(s.name, s.status.status_code) for s in trace.data.spans[1:]] == [
        ("assistant", "ERROR"),
        ("generation scripted-model", "ERROR"),
        ("get_weather", "ERROR"),
        ("generation scripted-model", "ERROR"),
    ]
