"""The scripted model's rule, as documented in its module docstring."""

from __future__ import annotations

import json

from agentship.testing.scripted_llm.rules import (
    Behaviour,
    Message,
    ToolSpec,
    decide,
    parse_directives,
    split_chunks,
)

WEATHER = ToolSpec(
    "get_weather",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
ADD = ToolSpec(
    "add",
    {
        "type": "object",
        "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
        "required": ["a", "b"],
    },
)


def test_plain_text_echoes_the_latest_user_message() -> None:
    messages = [Message("user", "first"), Message("assistant", "x"), Message("user", "second one")]
    reply = decide(messages, [], Behaviour())
    assert reply.text == "You said: second one"
    assert reply.tool_name is None


def test_tool_is_called_when_named_without_its_verb() -> None:
    reply = decide([Message("user", "What is the weather in Paris?")], [WEATHER], Behaviour())
    assert reply.tool_name == "get_weather"
    assert json.loads(reply.arguments or "") == {"city": "Paris"}


def test_numbers_fill_numeric_parameters_in_order() -> None:
    reply = decide([Message("user", "please add 2 and 40.5")], [ADD], Behaviour())
    assert reply.tool_name == "add"
    assert json.loads(reply.arguments or "") == {"a": 2, "b": 40.5}


def test_json_object_in_the_message_is_used_as_arguments() -> None:
    reply = decide([Message("user", 'use get_weather {"city": "Oslo"}')], [WEATHER], Behaviour())
    assert json.loads(reply.arguments or "") == {"city": "Oslo"}


def test_tool_name_must_be_a_whole_word() -> None:
    reply = decide([Message("user", "my address is secret")], [ADD], Behaviour())
    assert reply.tool_name is None


def test_after_a_tool_result_the_model_quotes_it() -> None:
    messages = [Message("user", "weather in Paris"), Message("tool", "sunny", "get_weather")]
    reply = decide(messages, [WEATHER], Behaviour())
    assert reply.text == "The get_weather tool returned: sunny"


def test_directives_are_parsed_and_removed() -> None:
    behaviour, clean = parse_directives("hello [[ttft=0.5 chunks=3 fail=503*2 reason]] there", Behaviour())
    assert clean.split() == ["hello", "there"]
    assert behaviour.ttft == 0.5
    assert behaviour.chunks == 3
    assert behaviour.fail == 503
    assert behaviour.fail_times == 2
    assert behaviour.reason is True


def test_reason_directive_adds_reasoning() -> None:
    reply = decide([Message("user", "hi there")], [], Behaviour(reason=True))
    assert reply.reasoning and "2 words" in reply.reasoning


def test_split_chunks_keeps_the_text_and_the_count() -> None:
    pieces = split_chunks("abcdefghij", 4)
    assert "".join(pieces) == "abcdefghij"
    assert len(pieces) == 4
    assert split_chunks("ab", 10) == ["a", "b"]
