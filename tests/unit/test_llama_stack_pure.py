"""Pure parts of the Llama Stack backend: history handling, input conversion, event
translation, mode choice, and config validation per mode."""

from __future__ import annotations

import pytest

from agentship.errors import ConfigError, InvalidRequestError
from agentship.events import ItemDone, TextDelta
from agentship.llama_stack.checks import check_settings
from agentship.llama_stack.config import LlamaStackEnv, parse_config
from agentship.llama_stack.convert import (
    AgentTurnTranslator,
    agent_content,
    agent_turn_messages,
    split_new_messages,
)
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


def test_a_trailing_tool_result_is_the_new_turn_and_is_not_lost() -> None:
    items = [
        {"role": "user", "content": "weather?"},
        {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": '{"city": "Oslo"}'},
        {"type": "function_call_output", "call_id": "c1", "output": "snowing"},
    ]
    earlier, new = split_new_messages(items)
    assert earlier == items[:1] and new == items[1:]
    messages = agent_turn_messages(earlier, new, "be brief")
    assert messages[-1]["role"] == "user"
    assert messages[-1]["content"].splitlines()[1:] == [
        'assistant called get_weather({"city": "Oslo"})',
        "tool result: snowing",
    ]  # before the fix: {"role": "user", "content": ""}


def test_system_messages_other_than_the_instructions_are_refused_by_name() -> None:
    with pytest.raises(InvalidRequestError, match=r"input\[1\] is a 'developer' message"):
        agent_turn_messages(
            [{"role": "user", "content": "hi"}], [{"role": "developer", "content": "be a pirate"}], "be brief"
        )
    resent = agent_turn_messages(
        [], [{"role": "system", "content": "be brief"}, {"role": "user", "content": "x"}], "be brief"
    )
    assert resent == [{"role": "user", "content": "x"}]  # the agent's own instructions: not a user message


def test_images_become_image_content_and_files_are_refused() -> None:
    content = [
        {"type": "input_text", "text": "what is it?"},
        {"type": "input_image", "image_url": "data:image/png;base64,AAAA"},
        {"type": "input_image", "image_url": "https://example.test/cat.png"},
    ]
    assert agent_content(content) == [
        {"type": "text", "text": "what is it?"},
        {"type": "image", "image": {"data": "AAAA"}},
        {"type": "image", "image": {"url": {"uri": "https://example.test/cat.png"}}},
    ]
    with pytest.raises(InvalidRequestError, match="'input_file'"):
        agent_content([{"type": "input_file", "file_id": "file-1"}])
    with pytest.raises(InvalidRequestError, match="file_id"):
        agent_content([{"type": "input_image", "file_id": "file-1"}])


def test_a_tripped_shield_becomes_a_refusal_item() -> None:
    translator = AgentTurnTranslator(client_tools=set())
    translator.feed(
        _payload("step_start", step_type="shield_call", step_id="s1", metadata={"touchpoint": "user-input"})
    )
    translator.feed(
        _payload(
            "step_complete",
            step_type="shield_call",
            step_id="s1",
            step_details={"violation": {"user_message": "No.", "metadata": {"violation_type": "S1"}}},
        )
    )
    [done] = translator.feed(_payload("turn_complete", turn={"turn_id": "t1"}))
    assert isinstance(done, ItemDone)
    assert done.item["content"] == [{"type": "refusal", "refusal": "No."}]
    assert translator.violation == {"stage": "input", "message": "No.", "metadata": {"violation_type": "S1"}}


def _detected(kind: str, prefix: str = "/v1", version: str | None = "0.7.3") -> Detected:
    return Detected(kind, prefix, version)  # type: ignore[arg-type]


ENV = LlamaStackEnv(base_url="http://ls.test")


@pytest.mark.parametrize(
    ("config", "mode", "message"),
    [
        (
            {"toolgroups": ["builtin::websearch"]},
            _detected("responses"),
            r"\['builtin::websearch'\].*mode responses",
        ),
        ({"toolgroups": ["builtin::rag"]}, _detected("chat_completions"), "mode chat_completions@/v1"),
        ({"input_shields": ["g"]}, _detected("chat_completions"), "mode chat_completions"),
        (
            {"input_shields": ["g"], "output_shields": ["g"]},
            _detected("responses", version="1.5.0"),
            "OGX 1.5.0",
        ),
        ({"input_shields": ["g"]}, _detected("responses"), "give both the same shields"),
    ],
)
def test_settings_a_mode_cannot_honour_fail_at_load_naming_it(
    config: dict, mode: Detected, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        check_settings(parse_config(config), ENV, mode)


def test_settings_every_mode_honours_pass() -> None:
    config = parse_config({"toolgroups": ["builtin::rag/knowledge_search"], "max_infer_iters": 3})
    check_settings(config, ENV, _detected("responses"))
    check_settings(
        parse_config({"toolgroups": ["builtin::websearch"], "input_shields": ["g"]}), ENV, _detected("agents")
    )
    with pytest.raises(ConfigError, match="LLAMASTACK_AGENT_ID is set"):
        check_settings(
            parse_config({}), LlamaStackEnv(base_url="http://x", agent_id="a1"), _detected("responses")
        )
