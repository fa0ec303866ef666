"""Request validation, and the event contract's conversions."""

from __future__ import annotations

import pytest
from mlflow.types.responses import ResponsesAgentResponse

from agentship.errors import InvalidRequestError
from agentship.events import (
    Completed,
    ItemAdded,
    ItemDone,
    ReasoningDelta,
    TextDelta,
    from_mlflow,
    from_response,
    reduce,
    reduce_mlflow,
    to_mlflow,
)
from agentship.inputs import parse_request


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({}, "missing the required field 'input'"),
        ({"input": []}, "at least one item"),
        ({"input": 5}, "'input' must be a list"),
        ([{"role": "user"}], "must be a JSON object"),
        ({"input": [{"role": "robot", "content": "hi"}]}, "Invalid role: robot"),
        ({"input": [{"type": "teleport"}]}, "input[0]"),
    ],
)
def test_bad_requests_name_the_problem(body: object, problem: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        parse_request(body)
    assert problem in info.value.message
    assert info.value.get_http_status_code() == 400


def test_a_bare_string_input_is_one_user_message() -> None:
    request = parse_request({"input": "hello"})
    assert request.input[0].model_dump(exclude_none=True) == {
        "role": "user",
        "content": "hello",
        "type": "message",
    }


def test_assistant_output_messages_without_ids_are_accepted() -> None:
    request = parse_request(
        {
            "input": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": [{"type": "output_text", "text": "hello"}]},
                {"role": "user", "content": "again"},
            ]
        }
    )
    assert len(request.input) == 3


ITEM = {"type": "message", "id": "m1", "role": "assistant", "content": [{"type": "output_text", "text": "x"}]}
USAGE = {
    "input_tokens": 3,
    "input_tokens_details": {"cached_tokens": 0},
    "output_tokens": 1,
    "output_tokens_details": {"reasoning_tokens": 0},
    "total_tokens": 4,
}


def test_reduce_keeps_items_usage_and_custom_outputs() -> None:
    events = [
        ItemAdded("m1", "message"),
        TextDelta("m1", "x"),
        ItemDone(ITEM),
        Completed([ITEM], USAGE, {"k": 1}),
    ]
    response = reduce(events)
    assert [o.model_dump(exclude_none=True)["id"] for o in response.output] == ["m1"]
    assert response.usage is not None and response.usage.total_tokens == 4
    assert response.custom_outputs == {"k": 1}


def test_unreported_usage_stays_absent() -> None:
    response = reduce([ItemDone(ITEM), Completed([ITEM], None)])
    assert response.usage is None
    assert "usage" not in to_mlflow(Completed([ITEM], None))[0]["response"]


def test_mlflow_stream_events_round_trip() -> None:
    events = [TextDelta("m1", "x"), ItemDone(ITEM), Completed([ITEM], USAGE, {"k": 1})]
    wire = [w for e in events for w in to_mlflow(e)]
    assert wire[0] == {"type": "response.output_text.delta", "item_id": "m1", "delta": "x"}
    assert [from_mlflow(w) for w in wire] == events
    assert reduce_mlflow(wire) == reduce(events)


def test_openai_only_events_have_no_mlflow_form() -> None:
    assert to_mlflow(ItemAdded("rs_1", "reasoning")) == []
    assert to_mlflow(ReasoningDelta("rs_1", "thinking")) == []
    assert from_mlflow({"type": "response.created"}) is None


def test_a_predict_only_answer_replays_as_a_stream() -> None:
    answer = ResponsesAgentResponse(output=[ITEM], usage=USAGE, custom_outputs={"k": 1})
    events = from_response(answer)
    assert [type(e) for e in events] == [ItemDone, Completed]
    assert reduce(events) == answer
