"""A conversation's items between the store and the wire: pure conversions, ids and pages."""

from __future__ import annotations

from typing import Any

import pytest
from agents.models.fake_id import FAKE_RESPONSES_ID
from openai.types.conversations import ConversationItemList

from agentship.server.core.errors import HttpError
from agentship.server.protocols.conversations.items import (
    SDK_PLACEHOLDER_ID,
    identified,
    page,
    to_store,
    to_wire,
    wired,
)
from agentship.state.openai_conversations import SessionItem

CONVERSATION = "conv_" + "a" * 48


def dumped(item: Any) -> dict[str, Any]:
    return dict(item.model_dump(exclude_unset=True))


def test_the_sdk_placeholder_id_is_the_sdks() -> None:
    assert SDK_PLACEHOLDER_ID == FAKE_RESPONSES_ID


@pytest.mark.parametrize(
    ("stored", "wire"),
    [
        pytest.param(
            {"role": "user", "content": "hi"},
            {"type": "message", "id": "msg_1", "role": "user", "status": "completed",
             "content": [{"type": "input_text", "text": "hi"}]},
            id="a user's message, as the SDK keeps a turn's input",
        ),
        pytest.param(
            {"role": "assistant", "content": "hello"},
            {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
             "content": [{"type": "output_text", "text": "hello", "annotations": []}]},
            id="an assistant's message given as text",
        ),
        pytest.param(
            {"id": FAKE_RESPONSES_ID, "type": "message", "role": "assistant", "status": "completed",
             "content": [{"type": "output_text", "text": "ok", "annotations": [], "logprobs": []}]},
            {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
             "content": [{"type": "output_text", "text": "ok", "annotations": [], "logprobs": []}]},
            id="the model's answer, as the SDK keeps it",
        ),
        pytest.param(
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "be brief"}]},
            {"type": "message", "id": "msg_1", "role": "developer", "status": "completed",
             "content": [{"type": "input_text", "text": "be brief"}]},
            id="a developer message",
        ),
        pytest.param(
            {"type": "function_call", "id": FAKE_RESPONSES_ID, "call_id": "c1", "name": "f", "arguments": "{}"},
            {"type": "function_call", "id": "msg_1", "call_id": "c1", "name": "f", "arguments": "{}",
             "status": "completed"},
            id="a tool call",
        ),
        pytest.param(
            {"type": "function_call_output", "call_id": "c1", "output": "42"},
            {"type": "function_call_output", "id": "msg_1", "call_id": "c1", "output": "42", "status": "completed"},
            id="its output",
        ),
        pytest.param(
            {"type": "reasoning", "id": "rs_9", "summary": [{"type": "summary_text", "text": "hmm"}],
             "provider_data": {"x": 1}},
            {"type": "reasoning", "id": "msg_1", "summary": [{"type": "summary_text", "text": "hmm"}]},
            id="reasoning, without the fields the spec does not define",
        ),
    ],
)  # fmt: skip
def test_stored_items_on_the_wire(stored: dict[str, Any], wire: dict[str, Any]) -> None:
    item = to_wire("msg_1", stored)
    assert item is not None and dumped(item) == wire


def test_an_item_the_spec_has_no_type_for_is_left_out() -> None:
    assert to_wire("x", {"type": "no_such_item", "id": "x"}) is None


def test_ids_are_the_items_own_unless_placeholders_or_taken() -> None:
    stored = [
        SessionItem(1, {"role": "user", "content": "a"}),
        SessionItem(2, {"id": "msg_real", "type": "message", "role": "assistant", "content": "b"}),
        SessionItem(
            3,
            {
                "id": FAKE_RESPONSES_ID,
                "type": "function_call",
                "call_id": "c",
                "name": "f",
                "arguments": "{}",
            },
        ),
        SessionItem(4, {"id": "msg_real", "role": "user", "content": "again"}),
        SessionItem(5, {"type": "function_call_output", "call_id": "c", "output": "o"}),
        SessionItem(6, {"type": "reasoning", "summary": []}),
    ]
    ids = [item_id for item_id, _ in identified(CONVERSATION, stored)]
    assert ids[1] == "msg_real"
    assert [i.split("_")[0] for i in ids] == ["msg", "msg", "fc", "msg", "fco", "rs"]
    assert len(set(ids)) == 6 and all(len(i.split("_")[1]) == 48 for i in ids if i != "msg_real")
    assert ids == [item_id for item_id, _ in identified(CONVERSATION, stored)]  # stable
    assert ids[0] != identified("conv_" + "b" * 48, stored)[0][0]  # and the conversation's own


def _listed(n: int) -> list[Any]:
    return wired(CONVERSATION, [SessionItem(row, {"role": "user", "content": str(row)}) for row in range(n)])


def test_pages_in_either_order_after_an_item() -> None:
    items = _listed(5)
    ids = [i.id for i in items]
    first = page(items, "asc", None, 2)
    ConversationItemList.model_validate(first.model_dump())
    assert ([i.id for i in first.data], first.first_id, first.last_id, first.has_more) == (
        ids[:2],
        ids[0],
        ids[1],
        True,
    )
    last = page(items, "asc", ids[2], 2)
    assert ([i.id for i in last.data], last.has_more) == (ids[3:], False)
    newest = page(items, "desc", None, 3)
    assert ([i.id for i in newest.data], newest.has_more) == (ids[::-1][:3], True)
    assert page(items, "desc", ids[0], 3).model_dump() == {
        "object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False,
    }  # fmt: skip
    with pytest.raises(HttpError) as raised:
        page(items, "asc", "msg_gone", 2)
    assert (raised.value.status, raised.value.param) == (400, "after")


def test_an_mcp_call_a_client_adds_is_kept_as_the_call_and_output_the_agent_sees() -> None:
    added = {"type": "mcp_call", "id": "mcp_c7", "server_label": "agent", "name": "get_weather",
             "arguments": '{"city":"Paris"}', "output": "sunny"}  # fmt: skip
    assert to_store([added]) == [
        {
            "type": "function_call",
            "id": "fc_c7",
            "call_id": "c7",
            "name": "get_weather",
            "arguments": '{"city":"Paris"}',
        },
        {"type": "function_call_output", "call_id": "c7", "output": "sunny"},
    ]
