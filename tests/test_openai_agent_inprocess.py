"""The OpenAI Agents SDK ResponsesAgent in process: the real runner and real tools, with the
model scripted by ``agents.testing.ScriptedModel``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from agents.testing import ScriptedModel, assistant_message, function_call
from agents.usage import Usage
from mlflow.pyfunc import PythonModelContext

from agentship.errors import AgentRunError, ConfigError
from agentship.openai_agents import OpenAIAgentsBackend, parse_config
from agentship.responses_agent import AgentBackend, AgentshipResponsesAgent

TOOLS = "agentship.examples.tools"


class ScriptedAgent(AgentshipResponsesAgent):
    def __init__(self, model: ScriptedModel, environ: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self.model = model
        self.environ = dict(environ or {"AGENTSHIP_STATE_URL": "none"})

    def build_backend(self, model_config: Mapping[str, Any]) -> AgentBackend:
        return OpenAIAgentsBackend(
            parse_config(dict(model_config)), self.environ, model_factory=lambda name: self.model
        )


def load(model: ScriptedModel, environ: Mapping[str, str] | None = None, **config: Any) -> ScriptedAgent:
    agent = ScriptedAgent(model, environ)
    base = {"name": "assistant", "instructions": "be helpful", "tracing": False}
    agent.load_context(PythonModelContext({}, {**base, **config}))
    return agent


def types(output: list[Any]) -> list[str]:
    return [item.type for item in output]


def test_tool_round_trip_with_a_real_tool() -> None:
    model = ScriptedModel(
        [
            [function_call("get_weather", {"city": "Paris"}, call_id="call_1")],
            [assistant_message("Paris is sunny.")],
        ],
        default_usage=Usage(requests=1, input_tokens=5, output_tokens=2, total_tokens=7),
    )
    agent = load(model, tools=[f"{TOOLS}:get_weather"])
    response = agent.predict({"input": [{"role": "user", "content": "weather in Paris?"}]})
    model.assert_complete()
    assert types(response.output) == ["function_call", "function_call_output", "message"]
    call, result, message = (o.model_dump(exclude_none=True) for o in response.output)
    assert call["name"] == "get_weather" and call["call_id"] == "call_1"
    assert result == {
        "type": "function_call_output",
        "call_id": "call_1",
        "output": "The weather in Paris is 18°C and sunny.",
    }
    assert message["content"][0]["text"] == "Paris is sunny."
    # The second model call saw the tool's real output.
    assert model.last_call is not None
    assert {"type": "function_call_output", "call_id": "call_1", "output": result["output"]} in [
        {k: i.get(k) for k in ("type", "call_id", "output")}
        for i in model.last_call.input
        if isinstance(i, dict)
    ]
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.total_tokens) == (
        10,
        4,
        14,
    )
    agent.close()


def test_the_whole_conversation_reaches_the_model() -> None:
    model = ScriptedModel([[assistant_message("ok")]])
    agent = load(model)
    history = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "my name is Ada"},
        {"role": "assistant", "content": [{"type": "output_text", "text": "Hello Ada"}]},
        {"type": "function_call", "call_id": "c0", "name": "lookup", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c0", "output": "nothing"},
        {"role": "user", "content": "what is my name?"},
    ]
    agent.predict({"input": history})
    assert model.first_call is not None
    seen = model.first_call.input
    assert isinstance(seen, list) and len(seen) == 6
    assert seen[1] == {"role": "user", "content": "my name is Ada"}
    assert seen[2] == {"role": "assistant", "content": "Hello Ada"}
    assert seen[4]["output"] == "nothing"  # type: ignore[index]
    assert seen[5] == {"role": "user", "content": "what is my name?"}


def test_handoff_runs_the_sub_agent() -> None:
    model = ScriptedModel(
        [[function_call("transfer_to_planner", {}, call_id="h1")], [assistant_message("Day 1: Louvre.")]]
    )
    agent = load(model, handoffs=[{"name": "planner", "instructions": "plan trips"}])
    response = agent.predict({"input": [{"role": "user", "content": "plan my trip"}]})
    model.assert_complete()
    assert types(response.output) == ["function_call", "function_call_output", "message"]
    assert response.custom_outputs == {"last_agent": "planner"}


def test_max_turns_bounds_the_run() -> None:
    loop = [[function_call("add", {"a": 1, "b": 1}, call_id=f"c{i}")] for i in range(5)]
    agent = load(ScriptedModel(loop), tools=[f"{TOOLS}:add"], max_turns=2)
    with pytest.raises(AgentRunError, match="max_turns=2"):
        agent.predict({"input": [{"role": "user", "content": "add forever"}]})


def test_a_tool_that_raises_returns_an_error_to_the_model() -> None:
    model = ScriptedModel(
        [[function_call("failing_tool", {"reason": "test"}, call_id="f1")], [assistant_message("Sorry.")]]
    )
    agent = load(model, tools=[f"{TOOLS}:failing_tool"])
    response = agent.predict({"input": [{"role": "user", "content": "try it"}]})
    result = response.output[1].model_dump()
    assert result["type"] == "function_call_output"
    assert "error occurred while running the tool" in result["output"]  # the SDK hides the exception text
    assert response.output[-1].model_dump()["content"][0]["text"] == "Sorry."


def test_custom_inputs_reach_tools_and_custom_outputs_come_back() -> None:
    model = ScriptedModel([[function_call("whoami", {}, call_id="w1")], [assistant_message("done")]])
    agent = load(model, tools=[f"{TOOLS}:whoami"])
    response = agent.predict(
        {"input": [{"role": "user", "content": "who am I?"}], "custom_inputs": {"user": "ada"}}
    )
    assert response.output[1].model_dump()["output"] == "You are ada."
    assert response.custom_outputs == {"whoami_called": True, "last_agent": "assistant"}


def test_stream_has_deltas_done_items_and_matches_predict() -> None:
    script = [
        [function_call("get_weather", {"city": "Tokyo"}, call_id="c1")],
        [assistant_message("Tokyo is clear.")],
    ]
    streamed = [
        e.model_dump(exclude_none=True)
        for e in load(ScriptedModel(script), tools=[f"{TOOLS}:get_weather"]).predict_stream(
            {"input": "weather?"}
        )
    ]
    predicted = load(ScriptedModel(script), tools=[f"{TOOLS}:get_weather"]).predict({"input": "weather?"})
    kinds = [e["type"] for e in streamed]
    assert kinds[-1] == "response.completed"
    done = [e["item"] for e in streamed if e["type"] == "response.output_item.done"]
    deltas = [e for e in streamed if e["type"] == "response.output_text.delta"]
    assert deltas, "no text deltas were streamed"
    assert "".join(d["delta"] for d in deltas) == "Tokyo is clear."
    assert {d["item_id"] for d in deltas} == {done[-1]["id"]}
    assert kinds.index("response.output_text.delta") < kinds.index("response.output_item.done", 2)

    def strip_ids(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in i.items() if k != "id"} for i in items]

    assert strip_ids(done) == strip_ids([o.model_dump(exclude_none=True) for o in predicted.output])


def test_bad_config_fails_at_load_with_the_field_named() -> None:
    with pytest.raises(ConfigError, match="max_turns"):
        load(ScriptedModel([]), max_turns=0)
    with pytest.raises(ConfigError, match="no_such_tool"):
        load(ScriptedModel([]), tools=[f"{TOOLS}:no_such_tool"])


def test_no_endpoint_is_a_clear_config_error() -> None:
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        OpenAIAgentsBackend(parse_config({"name": "x"}), {})


def _texts(call_input: Any) -> list[tuple[str, str]]:
    """(role or type, text) of each item a model call received."""
    out = []
    for item in call_input:
        if item.get("type") in ("function_call", "function_call_output"):
            out.append((item["type"], str(item.get("output") or item.get("name"))))
        else:
            content = item.get("content")
            text = content if isinstance(content, str) else "".join(p.get("text", "") for p in content)
            out.append((item.get("role", "?"), text))
    return out


def test_a_conversation_id_keeps_the_history_in_the_state_store(tmp_path: Any) -> None:
    model = ScriptedModel(
        [[assistant_message("Hi Zed.")], [assistant_message("You are Zed.")], [assistant_message("ok")]]
    )
    environ = {"AGENTSHIP_STATE_URL": f"sqlite:///{tmp_path / 'state.db'}"}
    agent = load(model, environ)
    context = {"conversation_id": "c-1", "user_id": "zed"}
    agent.predict({"input": [{"role": "user", "content": "I am Zed"}], "context": context})
    agent.predict({"input": [{"role": "user", "content": "Who am I?"}], "context": context})
    # The second call sent only the new message; the model still saw the whole conversation.
    assert _texts(model.calls[1].input) == [
        ("user", "I am Zed"),
        ("assistant", "Hi Zed."),
        ("user", "Who am I?"),
    ]
    agent.close()

    # Another process (a restart, or another replica) continues it; a client that resends the
    # whole history anyway duplicates nothing.
    again = load(model, environ)
    history = [
        {"role": "user", "content": "I am Zed"},
        {"role": "assistant", "content": "Hi Zed."},
        {"role": "user", "content": "Who am I?"},
        {"role": "assistant", "content": "You are Zed."},
        {"role": "user", "content": "Thanks"},
    ]
    again.predict({"input": history, "context": context})
    assert _texts(model.calls[2].input) == [(m["role"], m["content"]) for m in history]
    model.assert_complete()
    # Another user's conversation of the same id is another conversation.
    other = ScriptedModel([[assistant_message("hello")]])
    stranger = load(other, environ)
    stranger.predict({"input": [{"role": "user", "content": "hi"}], "context": {**context, "user_id": "eve"}})
    assert _texts(other.calls[0].input) == [("user", "hi")]
    again.close()
    stranger.close()
