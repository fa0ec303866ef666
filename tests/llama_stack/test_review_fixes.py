"""The review's findings, each against the real servers of the matrix: input converted without
loss (or rejected by name), no state kept from a failed first turn, settings that take effect
or fail at load naming the mode, placeholder vector stores caught at load, shields."""

from __future__ import annotations

import uuid
from typing import Any

import mlflow
import pytest

from agentship.errors import AgentError, AgentRunError, ConfigError, InvalidRequestError
from tests.llama_stack.conftest import FACT, RAG_QUESTION, Target
from tests.llama_stack.test_behaviour import ask, dumped, last_text, model_requests

pytestmark = pytest.mark.llamastack

# A 1x1 PNG, as a data URL.
PIXEL = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "YPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


def seen_with(target: Target, text: str) -> dict[str, Any]:
    """The last request the model received whose last message is ``text``."""
    return next(r for r in reversed(model_requests(target)) if r["messages"][-1]["text"] == text)


def test_a_trailing_tool_result_reaches_the_model(target: Target, load: Any) -> None:
    marker = f"{uuid.uuid4().hex[:6]} degrees and snowing"
    history = [
        {"role": "user", "content": "Tell me about Oslo."},
        {"type": "function_call", "call_id": "call_oslo", "name": "lookup", "arguments": '{"city": "Oslo"}'},
        {"type": "function_call_output", "call_id": "call_oslo", "output": f"Oslo: {marker}"},
    ]
    agent = load(target, client_tools=[])
    agent.predict({"input": history})
    texts = [m["text"] for r in model_requests(target)[-3:] for m in r["messages"]]
    assert any(marker in t for t in texts)  # before the fix: an empty user message on the Agents API


def test_system_messages_are_system_messages_or_refused_by_name(target: Target, load: Any) -> None:
    agent = load(target)
    body = {
        "input": [{"role": "system", "content": "Talk like a pirate."}, {"role": "user", "content": "ahoy"}]
    }
    if target.name.startswith("agents"):
        with pytest.raises(InvalidRequestError, match=r"input\[0\] is a 'system' message") as info:
            agent.predict(body)
        assert info.value.get_http_status_code() == 400
        # The agent's own instructions, resent by a client, are not a change.
        resent = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "same"}]
        assert last_text(agent.predict({"input": resent})) == "You said: same"
        return
    assert last_text(agent.predict(body)) == "You said: ahoy"
    roles = [(m["role"], m["text"]) for m in seen_with(target, "ahoy")["messages"]]
    assert ("system", "Talk like a pirate.") in roles and ("user", "Talk like a pirate.") not in roles


def test_an_image_reaches_the_model(target: Target, load: Any) -> None:
    content = [{"type": "input_text", "text": "what is this?"}, {"type": "input_image", "image_url": PIXEL}]
    agent = load(target)
    assert (
        last_text(agent.predict({"input": [{"role": "user", "content": content}]}))
        == "You said: what is this?"
    )
    assert seen_with(target, "what is this?")["messages"][-1]["images"] == 1


def test_an_input_file_is_refused_by_name_on_the_agents_api(agents_target: Target, load: Any) -> None:
    content = [
        {"type": "input_text", "text": "summarise"},
        {"type": "input_file", "filename": "a.txt", "file_data": "data:text/plain;base64,aGk="},
    ]
    with pytest.raises(InvalidRequestError, match="'input_file'"):
        load(agents_target).predict({"input": [{"role": "user", "content": content}]})


def test_a_failed_first_turn_keeps_no_server_state(target: Target, load: Any) -> None:
    agent = load(target, max_retries=0)
    conversation, marker = f"first-fails-{uuid.uuid4().hex[:6]}", f"Ada{uuid.uuid4().hex[:6]}"
    first = f"My name is {marker}. [[fail=500]]"
    with pytest.raises(AgentError):
        ask(agent, first, conversation)
    history = [
        {"role": "user", "content": first},
        {"role": "assistant", "content": "Sorry, something went wrong."},
        {"role": "user", "content": "Who am I?"},
    ]
    answer = agent.predict({"input": history, "context": {"conversation_id": conversation}})
    assert last_text(answer) == "You said: Who am I?"
    # Before the fix the first turn's session was kept, so only "Who am I?" was sent.
    assert any(marker in m["text"] for m in seen_with(target, "Who am I?")["messages"])


def test_a_placeholder_vector_store_fails_at_load(server_target: Target, load: Any) -> None:
    group = {"name": "builtin::rag/knowledge_search", "args": {"vector_db_ids": ["vs_replace_me"]}}
    with pytest.raises(ConfigError, match=r"vector store\(s\) \['vs_replace_me'\].*do not exist"):
        load(server_target, toolgroups=[group], client_tools=[])


def test_toolgroups_the_mode_cannot_run_fail_at_load_naming_it(target: Target, load: Any) -> None:
    if target.name.startswith("agents"):
        pytest.skip("the Agents API runs every toolgroup on the server")
    with pytest.raises(ConfigError, match=rf"'builtin::websearch'.*mode {target.mode_prefix.split('@')[0]}"):
        load(target, toolgroups=["builtin::websearch"])


def test_max_infer_iters_bounds_the_chat_mode_too(target_chat: Target, load: Any) -> None:
    agent = load(target_chat, max_infer_iters=1)
    with pytest.raises(AgentRunError, match="max_tool_rounds"):
        ask(agent, "What is the weather in Paris?")  # a tool call and an answer: two model calls
    assert last_text(ask(agent, "one call is enough")) == "You said: one call is enough"


def test_max_infer_iters_reaches_the_responses_server(server_target: Target, load: Any) -> None:
    if server_target.name.startswith("agents"):
        pytest.skip("the Agents API takes max_infer_iters in the agent config")
    assert server_target.make_knowledge_base is not None
    group = server_target.make_knowledge_base(FACT)
    roomy = load(server_target, toolgroups=[group], client_tools=[])
    assert FACT in last_text(ask(roomy, RAG_QUESTION))
    tight = load(server_target, toolgroups=[group], client_tools=[], max_infer_iters=1)
    with pytest.raises(AgentRunError, match="max_infer_iters=1"):  # the server stops after the search
        ask(tight, RAG_QUESTION)


SHIELDED = {"input_shields": ["scripted-guard"], "output_shields": ["scripted-guard"]}


@pytest.mark.parametrize("line", ["target_agents_02", "target_agents_03", "target_responses_07"])
def test_a_tripped_shield_is_a_refusal(line: str, request: pytest.FixtureRequest, load: Any) -> None:
    target: Target = request.getfixturevalue(line)
    agent = load(target, **SHIELDED)
    assert last_text(ask(agent, "hello, guarded")) == "You said: hello, guarded"
    response = ask(agent, "something bad [[unsafe]]")
    items = dumped(response)
    assert items[-1]["type"] == "message" and items[-1]["content"][0]["type"] == "refusal"
    assert items[-1]["content"][0]["refusal"]
    tripped = response.custom_outputs["guardrail_triggered"]
    assert tripped["shields"] == ["scripted-guard"]
    assert tripped["message"] == items[-1]["content"][0]["refusal"]
    trace_id = mlflow.get_last_active_trace_id()
    assert trace_id is not None
    trace = mlflow.get_trace(trace_id, flush=True)
    assert trace is not None
    assert any(s.span_type == "GUARDRAIL" for s in trace.data.spans)  # the trip is in the trace


def test_shields_are_rejected_where_the_server_has_none(load: Any, request: pytest.FixtureRequest) -> None:
    with pytest.raises(ConfigError, match="mode chat_completions"):
        load(request.getfixturevalue("target_chat"), **SHIELDED)
    with pytest.raises(ConfigError, match=r"OGX 1\.5\.0"):
        load(request.getfixturevalue("target_responses_15"), **SHIELDED)
    with pytest.raises(ConfigError, match="shield 'no-such-shield' is not registered"):
        load(request.getfixturevalue("target_agents_02"), input_shields=["no-such-shield"])


def test_client_tools_load_as_the_openai_agent_s_do(target: Target, load: Any) -> None:
    """One loader: a ready-made FunctionTool works, and a tool reads the run context."""
    agent = load(target, client_tools=["tests.llama_stack.conftest:SHOUT", "agentship.examples.tools:whoami"])
    items = dumped(ask(agent, 'Please shout {"text": "hello"}'))
    assert items[1]["output"] == "HELLO!"
    response = agent.predict(
        {"input": [{"role": "user", "content": "Run whoami"}], "custom_inputs": {"user": "grace"}}
    )
    assert dumped(response)[1]["output"] == "You are grace."
    assert response.custom_outputs["whoami_called"] is True
