"""Request validation and response assembly."""

from __future__ import annotations

import pytest

from agentship.errors import InvalidRequestError
from agentship.requests import completed_event, parse_request, reduce_events


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


def test_reduce_events_keeps_items_usage_and_custom_outputs() -> None:
    item = {
        "type": "message",
        "id": "m1",
        "role": "assistant",
        "content": [{"type": "output_text", "text": "x"}],
    }
    usage = {
        "input_tokens": 3,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 1,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 4,
    }
    events = [
        {"type": "response.output_text.delta", "item_id": "m1", "delta": "x"},
        {"type": "response.output_item.done", "item": item},
        completed_event([item], usage, {"k": 1}),
    ]
    response = reduce_events(events)
    assert [o.model_dump(exclude_none=True)["id"] for o in response.output] == ["m1"]
    assert response.usage is not None and response.usage.total_tokens == 4
    assert response.custom_outputs == {"k": 1}
