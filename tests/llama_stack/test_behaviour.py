"""One behavioural suite, run against each mode: Agents API on real Llama Stack 0.2.24 and 0.3.5,
Responses + Conversations on real Llama Stack 0.7.3 and OGX 1.5.0, and the chat-completions fallback
pointed at the scripted model server. In process, through the ResponsesAgent."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import mlflow
import pytest

from agentship.errors import (
    AgentError,
    BackendError,
    BackendTimeoutError,
    BackendUnavailableError,
    ConfigError,
)
from agentship.testing.processes import free_port
from tests.llama_stack.conftest import FACT, RAG_QUESTION, SECRET, Target

pytestmark = pytest.mark.llamastack


def ask(agent: Any, text: str, conversation_id: str | None = None, **extra: Any) -> Any:
    body: dict[str, Any] = {"input": [{"role": "user", "content": text}], **extra}
    if conversation_id:
        body["context"] = {"conversation_id": conversation_id}
    return agent.predict(body)


def dumped(response: Any) -> list[dict[str, Any]]:
    return [o.model_dump(exclude_none=True) for o in response.output]


def last_text(response: Any) -> str:
    return dumped(response)[-1]["content"][0]["text"]


def model_requests(target: Target) -> list[dict[str, Any]]:
    return httpx.get(f"{target.scripted.url}/scripted/requests").json()


def test_plain_answer(target: Target, load: Any) -> None:
    agent = load(target)
    response = ask(agent, "hello there")
    assert last_text(response) == "You said: hello there"
    assert response.custom_outputs["llama_stack_mode"].startswith(target.mode_prefix)


def test_conversations_continue_and_stay_isolated(target: Target, load: Any) -> None:
    agent = load(target)
    a, b = f"conv-a-{uuid.uuid4().hex[:6]}", f"conv-b-{uuid.uuid4().hex[:6]}"
    ask(agent, "My name is Ada.", a)
    ask(agent, "My name is Bob.", b)
    response = ask(agent, "Who am I?", a)  # only the new message is sent
    assert last_text(response) == "You said: Who am I?"
    seen = next(r for r in reversed(model_requests(target)) if r["messages"][-1]["text"] == "Who am I?")
    texts = [m["text"] for m in seen["messages"]]
    assert "My name is Ada." in texts
    assert "My name is Bob." not in texts


def test_full_history_without_a_conversation_id_reaches_the_model(target: Target, load: Any) -> None:
    agent = load(target)
    marker = f"Quux{uuid.uuid4().hex[:6]}"
    history = [
        {"role": "user", "content": f"Remember the word {marker}."},
        {"role": "assistant", "content": "Noted."},
        {"role": "user", "content": "Which word?"},
    ]
    assert last_text(agent.predict({"input": history})) == "You said: Which word?"
    seen = next(r for r in reversed(model_requests(target)) if r["messages"][-1]["text"] == "Which word?")
    assert any(marker in m["text"] for m in seen["messages"][:-1])


def test_client_tool_round_trip(target: Target, load: Any) -> None:
    response = ask(load(target), "What is the weather in Tokyo?")
    items = dumped(response)
    assert [i["type"] for i in items] == ["function_call", "function_call_output", "message"]
    assert items[0]["name"] == "get_weather"
    assert items[1] == {
        "type": "function_call_output",
        "call_id": items[0]["call_id"],
        "output": "The weather in Tokyo is 22°C and clear.",
    }
    assert (
        items[2]["content"][0]["text"]
        == "The get_weather tool returned: The weather in Tokyo is 22°C and clear."
    )


def test_a_client_tool_that_raises_returns_an_error_result(target: Target, load: Any) -> None:
    response = ask(load(target), 'Run failing_tool {"reason": "testing"}')
    items = dumped(response)
    assert (
        items[1]["output"]
        == "Error: the tool failing_tool failed: RuntimeError: failing_tool refused: testing"
    )
    assert items[-1]["content"][0]["text"].startswith("The failing_tool tool returned: Error:")


def test_rag_retrieves_on_the_server(server_target: Target, load: Any) -> None:
    assert server_target.make_knowledge_base is not None
    toolgroup = server_target.make_knowledge_base(FACT)
    response = ask(load(server_target, toolgroups=[toolgroup], client_tools=[]), RAG_QUESTION)
    items = dumped(response)
    kinds = [i["type"] for i in items]
    if server_target.name.startswith("agents"):
        assert kinds == ["function_call", "function_call_output", "message"]
        assert items[0]["name"] == "knowledge_search"
        assert FACT in items[1]["output"]
    else:
        assert kinds == ["file_search_call", "message"]
        assert any(FACT in r["text"] for r in items[0]["results"])
    assert FACT in items[-1]["content"][0]["text"]


def test_streaming_is_incremental(target: Target, load: Any) -> None:
    agent = load(target)
    started = time.monotonic()
    arrivals = [(time.monotonic() - started, e.model_dump(exclude_none=True)) for e in agent.predict_stream(
        {"input": [{"role": "user", "content": "a long story [[ttft=0.1 latency=1.5 chunks=10]]"}]}
    )]  # fmt: skip
    deltas = [(t, e) for t, e in arrivals if e["type"] == "response.output_text.delta"]
    done = [e for _, e in arrivals if e["type"] == "response.output_item.done"]
    total = arrivals[-1][0]
    assert len(deltas) == 10 and total >= 1.5
    # The model paces its ten chunks about 0.1 s apart, so delivered as they come, the first and last
    # deltas arrive about 1 s apart; buffered anywhere on the way, they arrive together. The time the
    # server takes before the model starts does not count, and a busy server only widens the gaps.
    spread = deltas[-1][0] - deltas[0][0]
    assert spread >= 0.5, f"the deltas arrived within {spread:.2f}s of each other"
    assert {e["item_id"] for _, e in deltas} == {done[-1]["item"]["id"]}
    assert "".join(e["delta"] for _, e in deltas) == done[-1]["item"]["content"][0]["text"]
    assert arrivals[-1][1]["type"] == "response.completed"


def test_usage_is_returned_where_the_server_reports_it(target: Target, load: Any) -> None:
    response = ask(load(target), "count my tokens")
    if target.name.startswith("agents"):  # the Agents API (0.2, 0.3) reports no token usage
        assert response.usage is None
    else:
        assert response.usage is not None and response.usage.total_tokens > 0


def test_steps_are_traced_as_llm_and_tool_spans(target: Target, load: Any) -> None:
    question = "What is the weather in Berlin?"
    response = ask(load(target), question)
    trace_id = mlflow.get_last_active_trace_id()
    assert trace_id is not None
    trace = mlflow.get_trace(trace_id, flush=True)
    assert trace is not None
    spans = trace.data.spans
    root = next(s for s in spans if s.parent_id is None)
    assert root.span_type == "AGENT"
    llm = [s for s in spans if s.span_type == "LLM"]
    tools = [s for s in spans if s.span_type == "TOOL"]
    assert len(llm) == 2 and all(s.parent_id == root.span_id for s in llm)
    answer = "The weather in Berlin is 15°C and cloudy."
    [call] = [o for o in dumped(response) if o["type"] == "function_call"]
    assert [(s.name, s.inputs, s.outputs) for s in tools] == [("get_weather", {"city": "Berlin"}, answer)]
    assert {k: v for k, v in tools[0].attributes.items() if k.startswith("gen_ai.")} == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "get_weather",
        "gen_ai.tool.call.id": call["call_id"],
        "gen_ai.tool.type": "function",
    }
    # What each model call was given: the question first; the tool's answer next.
    first, second = (s.inputs for s in llm)
    if target.name.startswith("agents"):  # the turn's messages, then the steps before it
        assert first == {"messages": [{"role": "user", "content": question}]}
        assert second["messages"][0] == first["messages"][0]
        assert second["messages"][-1] == {
            "call_id": call["call_id"],
            "tool_name": "get_weather",
            "content": answer,
        }
    else:  # the instructions and the SDK's input items
        assert first == {"instructions": "You are terse.", "input": [{"role": "user", "content": question}]}
        assert second["instructions"] == "You are terse." and second["input"][0] == first["input"][0]
        assert second["input"][-1] == {
            "call_id": call["call_id"],
            "output": answer,
            "type": "function_call_output",
        }
    for span in llm:
        model = target.served_model or target.model
        assert span.attributes["mlflow.llm.model"] == span.attributes["gen_ai.request.model"] == model
        assert span.attributes["gen_ai.operation.name"] == "chat"
    if not target.name.startswith("agents"):  # the Agents API reports no usage
        assert all(s.attributes.get("mlflow.chat.tokenUsage", {}).get("total_tokens", 0) > 0 for s in llm)
    assert SECRET not in trace.to_json()


def test_failure_mid_turn_is_a_clear_error_and_the_next_turn_works(target: Target, load: Any) -> None:
    agent = load(target, max_retries=0)
    with pytest.raises(AgentError) as info:
        ask(agent, "break please [[fail=500]]")
    assert isinstance(info.value, BackendError)
    assert info.value.get_http_status_code() == 503
    # What the server said is the operator's (the log's), not the client's.
    assert "500" in f"{info.value.message} {info.value.detail}"
    assert "scripted failure" not in info.value.message
    assert last_text(ask(agent, "still alive?")) == "You said: still alive?"


def test_a_hung_backend_times_out(target: Target, load: Any) -> None:
    agent = load(target, request_timeout_s=2, max_retries=0)
    started = time.monotonic()
    with pytest.raises(AgentError) as info:
        ask(agent, "hang now [[hang=8]]")
    assert time.monotonic() - started < 7
    assert isinstance(info.value, BackendTimeoutError)
    assert "did not answer" in info.value.message and "within 2s" in info.value.message


def test_unreachable_server_at_load_names_the_url(load: Any, target_chat: Target) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    dead = Target("dead", url, "m", "", target_chat.scripted)
    with pytest.raises(BackendUnavailableError) as info:
        load(dead, max_retries=0)
    # At load the reader is the operator: the message names the server and what failed.
    assert "the Llama Stack server is unreachable" in info.value.message and url in info.value.message


def test_unknown_model_lists_the_available_ones(target: Target, load: Any) -> None:
    with pytest.raises(ConfigError, match=r"model 'no-such-model' is not served by .*scripted-model"):
        load(target, environ={"LLAMASTACK_MODEL": "no-such-model"})


def test_forcing_a_mode_the_server_lacks_is_a_clear_error(target_responses_07: Target, load: Any) -> None:
    with pytest.raises(ConfigError, match="offers no agents API"):
        load(target_responses_07, api_mode="agents")


def test_forced_chat_mode_on_a_llama_stack_server(target_agents_02: Target, load: Any) -> None:
    agent = load(target_agents_02, api_mode="chat_completions")
    response = ask(agent, "hi via chat")
    assert response.custom_outputs["llama_stack_mode"] == "chat_completions@/v1/openai/v1"
    assert last_text(response) == "You said: hi via chat"
