"""Pure conversions between Responses items and the OpenAI Agents SDK."""

from __future__ import annotations

from typing import Any

from agents.items import (
    HandoffOutputItem,
    MessageOutputItem,
    ReasoningItem,
    ToolCallItem,
    ToolCallOutputItem,
)
from agents.models.fake_id import FAKE_RESPONSES_ID
from agents.stream_events import RawResponsesStreamEvent, RunItemStreamEvent
from agents.testing import assistant_message, function_call
from agents.usage import Usage
from openai.types.responses import (
    ResponseOutputItemAddedEvent,
    ResponseReasoningItem,
    ResponseReasoningSummaryTextDeltaEvent,
    ResponseTextDeltaEvent,
)
from openai.types.responses.response_reasoning_item import Summary

from agents import Agent
from agentship.events import ItemAdded, ItemDone, ReasoningDelta, TextDelta
from agentship.openai_agents.convert import (
    StreamTranslator,
    run_item_to_output_item,
    to_run_input,
    usage_to_responses,
)
from agentship.openai_agents.resume import plain_assistant_messages

AGENT = Agent(name="a")


def test_whole_history_becomes_run_input() -> None:
    history = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "weather in Paris?"},
        {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": '{"city":"Paris"}'},
        {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
        {
            "type": "message",
            "role": "assistant",
            "id": "msg_1",
            "content": [{"type": "output_text", "text": "It is sunny.", "annotations": []}],
        },
        {"role": "assistant", "content": "plain assistant text"},
        {"role": "user", "content": [{"type": "input_text", "text": "and tomorrow?"}]},
    ]
    assert to_run_input(history) == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "weather in Paris?"},
        {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": '{"city":"Paris"}'},
        {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
        {"role": "assistant", "content": "It is sunny."},
        {"role": "assistant", "content": "plain assistant text"},
        {"role": "user", "content": [{"type": "input_text", "text": "and tomorrow?"}]},
    ]


def test_message_item_becomes_text_output_item() -> None:
    item = MessageOutputItem(agent=AGENT, raw_item=assistant_message("hello", item_id="msg_a"))
    assert run_item_to_output_item(item) == {
        "id": "msg_a",
        "content": [{"text": "hello", "type": "output_text", "annotations": []}],
        "role": "assistant",
        "type": "message",
    }


def test_tool_call_and_output_become_function_items() -> None:
    call = ToolCallItem(agent=AGENT, raw_item=function_call("get_weather", {"city": "Paris"}, call_id="c9"))
    output = ToolCallOutputItem(
        agent=AGENT,
        raw_item={"type": "function_call_output", "call_id": "c9", "output": "sunny"},
        output="sunny",
    )
    assert run_item_to_output_item(call) == {
        "type": "function_call",
        "id": "c9",
        "call_id": "c9",
        "name": "get_weather",
        "arguments": '{"city":"Paris"}',
    }
    assert run_item_to_output_item(output) == {
        "type": "function_call_output",
        "call_id": "c9",
        "output": "sunny",
    }


def test_non_string_tool_output_is_serialized() -> None:
    output = ToolCallOutputItem(
        agent=AGENT, raw_item={"type": "function_call_output", "call_id": "c", "output": "5"}, output=5
    )
    assert run_item_to_output_item(output)["output"] == "5"  # type: ignore[index]


def test_handoff_output_becomes_function_call_output() -> None:
    item = HandoffOutputItem(
        agent=AGENT,
        raw_item={"type": "function_call_output", "call_id": "h1", "output": '{"assistant": "b"}'},
        source_agent=AGENT,
        target_agent=Agent(name="b"),
    )
    assert run_item_to_output_item(item) == {
        "type": "function_call_output",
        "call_id": "h1",
        "output": '{"assistant": "b"}',
    }


def test_reasoning_item_keeps_its_summary() -> None:
    raw = ResponseReasoningItem(
        id="rs_1", type="reasoning", summary=[Summary(text="thinking", type="summary_text")]
    )
    assert run_item_to_output_item(ReasoningItem(agent=AGENT, raw_item=raw)) == {
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": "thinking"}],
        "id": "rs_1",
    }


def _delta(text: str, item_id: str) -> RawResponsesStreamEvent:
    return RawResponsesStreamEvent(
        data=ResponseTextDeltaEvent(
            type="response.output_text.delta",
            item_id=item_id,
            delta=text,
            output_index=0,
            content_index=0,
            logprobs=[],
            sequence_number=0,
        )
    )


def test_stream_deltas_share_the_id_of_their_done_item() -> None:
    ids = iter(["msg_first", "msg_second"])
    translator = StreamTranslator(id_factory=lambda prefix: next(ids))
    events = []
    for piece in ("Hel", "lo"):
        events += translator.feed(_delta(piece, FAKE_RESPONSES_ID))
    message = MessageOutputItem(agent=AGENT, raw_item=assistant_message("Hello", item_id=FAKE_RESPONSES_ID))
    events += translator.feed(RunItemStreamEvent(name="message_output_created", item=message))
    assert [type(e) for e in events] == [ItemAdded, TextDelta, TextDelta, ItemDone]
    assert {e.item_id for e in events[:3]} | {events[-1].item["id"]} == {"msg_first"}
    assert events[-1].item["content"][0]["text"] == "Hello"
    assert translator.output_items == [events[-1].item]


def _raw(data: Any) -> RawResponsesStreamEvent:
    return RawResponsesStreamEvent(data=data)


def test_reasoning_streamed_before_text_is_announced_first_and_keeps_its_id() -> None:
    """The model streams a reasoning summary, then text; the SDK hands both items over at the end."""
    translator = StreamTranslator(id_factory=lambda prefix: f"{prefix}_ours")
    reasoning_raw = ResponseReasoningItem(id=FAKE_RESPONSES_ID, type="reasoning", summary=[])
    message_raw = assistant_message("Hi", item_id=FAKE_RESPONSES_ID)
    events = translator.feed(
        _raw(
            ResponseOutputItemAddedEvent(
                type="response.output_item.added", item=reasoning_raw, output_index=0, sequence_number=1
            )
        )
    )
    events += translator.feed(
        _raw(
            ResponseReasoningSummaryTextDeltaEvent(
                type="response.reasoning_summary_text.delta",
                item_id=FAKE_RESPONSES_ID,
                output_index=0,
                summary_index=0,
                delta="thinking",
                sequence_number=2,
            )
        )
    )
    events += translator.feed(
        _raw(
            ResponseOutputItemAddedEvent(
                type="response.output_item.added", item=message_raw, output_index=1, sequence_number=3
            )
        )
    )
    events += translator.feed(_delta("Hi", FAKE_RESPONSES_ID))
    finished = ResponseReasoningItem(
        id=FAKE_RESPONSES_ID, type="reasoning", summary=[Summary(type="summary_text", text="thinking")]
    )
    events += translator.feed(
        RunItemStreamEvent(name="reasoning_item_created", item=ReasoningItem(agent=AGENT, raw_item=finished))
    )
    message = MessageOutputItem(agent=AGENT, raw_item=message_raw)
    events += translator.feed(RunItemStreamEvent(name="message_output_created", item=message))
    assert events == [
        ItemAdded("rs_ours", "reasoning"),
        ReasoningDelta("rs_ours", "thinking"),
        ItemAdded("msg_ours", "message"),
        TextDelta("msg_ours", "Hi"),
        ItemDone(
            {"type": "reasoning", "id": "rs_ours", "summary": [{"type": "summary_text", "text": "thinking"}]}
        ),
        ItemDone(translator.output_items[1]),
    ]
    assert translator.output_items[1]["id"] == "msg_ours"


def test_usage_maps_to_responses_usage() -> None:
    usage = Usage(requests=2, input_tokens=10, output_tokens=4, total_tokens=14)
    assert usage_to_responses(usage) == {
        "input_tokens": 10,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 4,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 14,
    }


def test_a_paused_runs_assistant_messages_come_back_as_they_were_given() -> None:
    """The SDK saves an assistant message with output_text parts and a status, which its own Chat
    Completions converter refuses on resume."""
    saved = {
        "original_input": [
            {"role": "user", "content": "What is the weather in Paris?"},
            {
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Sunny"}],
                "status": "completed",
            },
            {
                "type": "message",
                "role": "assistant",
                "id": "msg_1",
                "content": [{"type": "output_text", "text": "x"}],
            },
            {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{}"},
        ],
        "other": 1,
    }
    assert plain_assistant_messages(saved) == {
        "original_input": [
            {"role": "user", "content": "What is the weather in Paris?"},
            {"role": "assistant", "content": "Sunny"},
            saved["original_input"][2],  # a full output message stays one
            saved["original_input"][3],
        ],
        "other": 1,
    }
    assert plain_assistant_messages({"original_input": "hello"}) == {"original_input": "hello"}
