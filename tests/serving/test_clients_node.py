"""The JavaScript clients people use, against a real ``python -m serving``'s ``/responses``.

openai-node (``responses.create``, ``responses.stream()``, the ``conversations`` resource) and the Vercel AI SDK
(``@ai-sdk/openai`` with ``generateText``/``streamText``), installed by
``scripts/node_clients.sh`` from ``tests/serving/node/package-lock.json`` into the cache (the
``node_clients`` fixture). The scripts in ``tests/serving/node/`` run the conversation; these
tests check what they saw.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from openai.types.conversations import Conversation, ConversationItem, ConversationItemList
from pydantic import TypeAdapter

from agentship.testing.processes import ServerProcess
from tests.serving.clients import (
    CONVERSATION_ID,
    MODEL,
    PARIS,
    TOOL_ANSWER,
    Target,
    answered,
    assert_history_reached_the_model,
    listed_user,
    marker,
    run_node,
    shown,
)

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("mode", ["create", "stream"])
def test_openai_node(target: Target, node_clients: Path, mode: str) -> None:
    mark = marker()
    seen = run_node(node_clients, "openai_node.mjs", target.url, mode, mark)
    plain, tool, second = seen["plain"], seen["tool"], seen["second"]
    assert plain["text"] == f"You said: Hello there {mark}"
    assert plain["types"] == target.types("message")
    assert plain["model"] == MODEL and plain["status"] == "completed"
    assert plain["usage"]["total_tokens"] > 0
    assert tool["text"] == TOOL_ANSWER
    assert tool["types"] == target.types("mcp_call", "message")
    assert tool["mcp"] == [{"name": "get_weather", "output": PARIS, "status": "completed"}]
    assert second["text"] == f"You said: Thanks, noted {mark}-second"
    if mode == "stream":
        for turn in (plain, tool, second):
            assert "".join(turn["deltas"]) == turn["text"]
            assert (turn["first"], turn["last"]) == ("response.created", "response.completed")
    assert_history_reached_the_model(target, mark)


@pytest.mark.parametrize("mode", ["generate", "stream"])
def test_vercel_ai_sdk(target: Target, node_clients: Path, mode: str) -> None:
    mark = marker()
    seen = run_node(node_clients, "ai_sdk.mjs", target.url, mode, mark)
    plain, tool, second = seen["plain"], seen["tool"], seen["second"]
    assert plain["text"] == f"You said: Hello there {mark}"
    assert plain["finishReason"] == "stop" and plain["modelId"] == MODEL
    assert plain["usage"]["totalTokens"] > 0
    assert tool["text"] == TOOL_ANSWER
    # The tool ran on the server: the AI SDK shows it as provider-executed and makes one step.
    calls = [p for p in tool["parts"] if p["type"] in ("tool-call", "tool-result")]
    assert [(p["type"], p["toolName"], p["providerExecuted"]) for p in calls] == [
        ("tool-call", "mcp.get_weather", True),
        ("tool-result", "mcp.get_weather", True),
    ]
    assert tool["steps"] == 1 and tool["finishReason"] == "stop"
    assert any(p["type"] == "reasoning" for p in tool["parts"]) == target.reasoning
    assert second["text"] == f"You said: Thanks, noted {mark}-second"
    if mode == "stream":
        for turn in (plain, tool, second):
            assert "".join(turn["deltas"]) == turn["text"]
    # With store: false the AI SDK sends no server tool calls back, only the messages.
    assert_history_reached_the_model(target, mark, tool_output_sent=False)
    # With the default store it sends item_reference items: the server resolves them from its store.
    assert seen["stored"] == {"ok": True, "text": f"You said: Again {mark}-stored"}, seen["stored"]
    seen_stored = target.model_saw(f"{mark}-stored")
    assert any(m["role"] == "tool" and m["text"] == PARIS for m in seen_stored), seen_stored


@pytest.mark.parametrize("mode", ["generate", "stream"])
def test_vercel_ai_sdk_runs_its_own_tool_and_the_agent_resumes(
    serving: ServerProcess, node_clients: Path, mode: str
) -> None:
    seen = run_node(node_clients, "ai_sdk_tools.mjs", serving.url, mode)
    assert seen["ran"] == ["NODE"]  # the client ran its tool once
    assert (
        seen["text"] == '"NODE is at 12.34"'
        or seen["text"] == "The get_stock_price tool returned: NODE is at 12.34"
    )
    assert seen["steps"] == 2


def test_openai_node_conversations(serving: ServerProcess, node_clients: Path) -> None:
    """openai-node's ``conversations`` resource, as OpenAI's docs use it: create with an item and
    metadata, two turns through ``responses.create({conversation})``, the items listed in pages of
    two, one item added, read and deleted, the metadata updated, the conversation deleted."""
    mark = marker()
    seen = run_node(node_clients, "openai_node_conversations.mjs", f"{serving.url}/v1", f"node-{mark}", mark)
    created = Conversation.model_validate(seen["created"])
    assert CONVERSATION_ID.fullmatch(created.id)
    assert (created.object, created.metadata) == ("conversation", {"topic": "weather"})
    assert seen["retrieved"] == seen["created"]
    assert seen["first"] == {"text": TOOL_ANSWER, "conversation": {"id": created.id}, "status": "completed"}
    assert seen["second"] == {"text": f"You said: Thanks {mark}-second", "conversation": {"id": created.id}}

    items = [ITEM.validate_python(item) for item in seen["items"]]
    assert [item.type for item in items] == [
        "message", "message", "function_call", "function_call_output", "message", "message", "message",
    ]  # fmt: skip
    messages = [shown(items[i]) for i in (0, 1, 4, 5, 6)]
    assert messages == [
        listed_user(f"My name is Ada {mark}"),
        listed_user(f"What is the weather in Paris? {mark}"),
        answered(TOOL_ANSWER),
        listed_user(f"Thanks {mark}-second"),
        answered(f"You said: Thanks {mark}-second"),
    ]
    call, output = items[2], items[3]
    assert call.type == "function_call" and output.type == "function_call_output"
    assert (call.name, json.loads(call.arguments), call.status) == (
        "get_weather",
        {"city": "Paris"},
        "completed",
    )
    assert (output.call_id, output.output, output.status) == (call.call_id, PARIS, "completed")
    assert len({item.id for item in items}) == 7

    added = ConversationItemList.model_validate(seen["added"])
    (one,) = added.data
    assert shown(one) == listed_user(f"Remember blue {mark}")
    assert (added.first_id, added.last_id, added.has_more) == (one.id, one.id, False)
    assert seen["one"] == seen["added"]["data"][0]
    assert Conversation.model_validate(seen["afterItemDelete"]) == created
    assert seen["countAfterItemDelete"] == 7
    assert seen["updated"] == {**seen["created"], "metadata": {"topic": "travel"}}
    assert seen["deleted"] == {"id": created.id, "object": "conversation.deleted", "deleted": True}
    assert seen["gone"] == {"status": 404, "type": "NotFoundError"}


ITEM: TypeAdapter[ConversationItem] = TypeAdapter(ConversationItem)
