"""Pure parts of the Llama Stack backend: history handling, event translation, mode choice,
and config validation."""

from __future__ import annotations

import pytest

from agentship.errors import ConfigError
from agentship.events import ItemDone, TextDelta
from agentship.llama_stack.config import LlamaStackEnv, parse_config
from agentship.llama_stack.convert import AgentTurnTranslator, agent_turn_messages, split_new_messages
from agentship.llama_stack.detect import Detected, choose

HISTORY = [
    {"role": "user", "content": "hi"},
    {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "hello"}]},
    {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{}"},
    {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
    {"role": "user", "content": "and tomorrow?"},
]


def test_the_new_turn_is_the_trailing_user_messages() -> None:
    earlier, new = split_new_messages(HISTORY)
    assert earlier == HISTORY[:4]
    assert new == HISTORY[4:]


def test_earlier_history_travels_as_a_transcript_for_the_agents_api() -> None:
    earlier, new = split_new_messages(HISTORY)
    messages = agent_turn_messages(earlier, new, "be brief")
    assert messages[0]["role"] == "user"
    assert messages[0]["content"].splitlines() == [
        "Earlier in this conversation:",
        "user: hi",
        "assistant: hello",
        "assistant called get_weather({})",
        "tool result: sunny",
    ]
    assert messages[1] == {"role": "user", "content": "and tomorrow?"}


def _payload(kind: str, **fields: object) -> dict:
    return {"event_type": kind, **fields}


def test_agent_turn_events_become_responses_events() -> None:
    translator = AgentTurnTranslator(client_tools={"get_weather"})
    events = []
    events += translator.feed(
        _payload("step_progress", step_type="inference", step_id="s1", delta={"type": "text", "text": "Hel"})
    )
    events += translator.feed(
        _payload("step_progress", step_type="inference", step_id="s1", delta={"type": "text", "text": "lo"})
    )
    events += translator.feed(
        _payload(
            "step_complete",
            step_type="inference",
            step_id="s1",
            step_details={
                "turn_id": "t1",
                "model_response": {
                    "content": "Hello",
                    "tool_calls": [
                        {"call_id": "c9", "tool_name": "get_weather", "arguments": {"city": "Oslo"}}
                    ],
                },
            },
        )
    )
    events += translator.feed(_payload("turn_awaiting_input", turn={"turn_id": "t1"}))
    assert [type(e) for e in events] == [TextDelta, TextDelta, ItemDone, ItemDone]
    assert events[0].item_id == events[2].item["id"] == "msg_s1"
    assert events[3].item["arguments"] == '{"city": "Oslo"}'
    assert translator.awaiting_input and translator.turn_id == "t1"
    assert translator.pending_calls == [
        {"call_id": "c9", "name": "get_weather", "arguments": '{"city": "Oslo"}'}
    ]
    # The wrapper answers the call; the server's echo of the same result is not emitted twice.
    assert translator.tool_result("c9", "sunny") is not None
    echo = _payload(
        "step_complete",
        step_type="tool_execution",
        step_id="s2",
        step_details={"tool_responses": [{"call_id": "c9", "content": "sunny"}]},
    )
    assert translator.feed(echo) == []


@pytest.mark.parametrize(
    ("routes", "forced", "expected"),
    [
        ({"/v1/agents", "/v1/openai/v1/chat/completions"}, "auto", Detected("agents", "/v1", None)),
        (
            {"/v1alpha/agents", "/v1/responses", "/v1/conversations"},
            "auto",
            Detected("agents", "/v1alpha", None),
        ),
        (
            {"/v1/responses", "/v1/conversations", "/v1/chat/completions"},
            "auto",
            Detected("responses", "/v1", None),
        ),
        ({"/v1/chat/completions"}, "auto", Detected("chat_completions", "/v1", None)),
        (
            {"/v1/agents", "/v1/openai/v1/chat/completions"},
            "chat_completions",
            Detected("chat_completions", "/v1/openai/v1", None),
        ),
        ({"/v1/responses", "/v1/conversations"}, "agents", None),
    ],
)
def test_mode_choice(routes: set[str], forced: str, expected: Detected | None) -> None:
    assert choose(routes, forced) == expected  # type: ignore[arg-type]


def test_env_is_required_and_checked() -> None:
    with pytest.raises(ConfigError, match="LLAMASTACK_BASE_URL is not set"):
        LlamaStackEnv.from_environ({})
    with pytest.raises(ConfigError, match="must not end with /v1"):
        LlamaStackEnv.from_environ({"LLAMASTACK_BASE_URL": "http://x:8321/v1"})
    env = LlamaStackEnv.from_environ(
        {"LLAMASTACK_BASE_URL": "http://x:8321/", "LLAMASTACK_API_KEY": "sk-secret"}
    )
    assert env.base_url == "http://x:8321"
    assert "sk-secret" not in repr(env)


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match="api_mode"):
        parse_config({"api_mode": "telepathy"})
    assert parse_config(
        {"toolgroups": [{"name": "builtin::rag/knowledge_search", "args": {"vector_db_ids": ["vs_1"]}}]}
    ).vector_store_ids() == ["vs_1"]
