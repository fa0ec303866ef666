"""OpenAI's Conversations API on real ``python -m serving`` replicas, with the clients as OpenAI's
docs use them: openai-python (``conversations.create``, ``.items.list``, ``.items.create``,
``responses.create(conversation=...)``) and the OpenAI Agents SDK's ``OpenAIConversationsSession``.

Two replicas over a real PostgreSQL and one over the SQLite default, each asked the same. Every
body is read back exactly and validated with openai-python's own types.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai
import pytest
from agents.memory import OpenAIConversationsSession
from openai.types.conversations import (
    Conversation,
    ConversationDeletedResource,
    ConversationItem,
    ConversationItemList,
)

from agentship.testing.processes import ServerProcess
from tests.serving.clients import (
    CONVERSATION_ID,
    MODEL,
    PARIS,
    TOOL_ANSWER,
    answered,
    listed_assistant,
    listed_user,
    marker,
    shown,
)
from tests.serving.cluster import Cluster, client, start_cluster

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def cluster(
    request: pytest.FixtureRequest,
    start_serving: Callable[..., ServerProcess],
    scripted: ServerProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    started = start_cluster(request, start_serving, scripted, tmp_path_factory.mktemp("conversations"))
    yield started
    for replica in started.replicas:
        replica.stop()


def user_message(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def raw_items(server: ServerProcess, conversation_id: str, user: str, **query: Any) -> ConversationItemList:
    """``GET …/items``, its body validated as openai-python's ``ConversationItemList``."""
    reply = httpx.get(
        f"{server.url}/v1/conversations/{conversation_id}/items",
        params={"order": "asc", **query},
        headers={"x-user-id": user},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    return ConversationItemList.model_validate(reply.json())


def everything(c: openai.OpenAI, conversation_id: str) -> list[ConversationItem]:
    return list(c.conversations.items.list(conversation_id, order="asc", limit=100))


# -- create, retrieve, update, delete ------------------------------------------------------------------
def test_a_conversation_is_created_read_updated_and_deleted(cluster: Cluster) -> None:
    a, b = client(cluster.a, "alice"), client(cluster.b, "alice")
    mark = marker()
    before = int(time.time())
    raw = a.conversations.with_raw_response.create(
        items=[user_message(f"Hello {mark}"), {"role": "assistant", "content": "Hi there"}],
        metadata={"topic": "demo"},
    )
    created = Conversation.model_validate(raw.http_response.json())
    assert CONVERSATION_ID.fullmatch(created.id)
    assert (created.object, created.metadata) == ("conversation", {"topic": "demo"})
    assert before <= created.created_at <= int(time.time())
    assert b.conversations.retrieve(created.id) == created

    updated = b.conversations.update(created.id, metadata={"topic": "changed", "n": "2"})
    assert updated == created.model_copy(update={"metadata": {"topic": "changed", "n": "2"}})
    assert a.conversations.retrieve(created.id) == updated

    page = raw_items(cluster.b, created.id, "alice")
    assert [shown(i) for i in page.data] == [listed_user(f"Hello {mark}"), listed_assistant("Hi there")]
    ids = [i.id for i in page.data]
    assert all(i.startswith("msg_") for i in ids) and len(set(ids)) == 2
    assert (page.first_id, page.last_id, page.has_more) == (ids[0], ids[-1], False)
    newest_first = a.conversations.items.list(created.id)  # the default order is desc
    assert [i.id for i in newest_first.data] == ids[::-1]

    deleted = b.conversations.with_raw_response.delete(created.id)
    assert ConversationDeletedResource.model_validate(
        deleted.http_response.json()
    ) == ConversationDeletedResource(id=created.id, object="conversation.deleted", deleted=True)
    with pytest.raises(openai.NotFoundError):
        a.conversations.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        a.conversations.items.list(created.id)


def test_an_empty_conversation_and_its_empty_page(cluster: Cluster) -> None:
    a = client(cluster.a, "alice")
    created = a.conversations.create()
    assert created.metadata == {}
    reply = httpx.get(f"{cluster.b.url}/v1/conversations/{created.id}/items", headers={"x-user-id": "alice"})
    assert reply.json() == {
        "object": "list",
        "data": [],
        "first_id": None,
        "last_id": None,
        "has_more": False,
    }


# -- items --------------------------------------------------------------------------------------------
def test_items_are_listed_in_pages_retrieved_and_deleted_one_by_one(cluster: Cluster) -> None:
    a, b = client(cluster.a, "alice"), client(cluster.b, "alice")
    mark = marker()
    texts = [f"item {n} {mark}" for n in range(5)]
    conv = a.conversations.create(items=[user_message(t) for t in texts[:2]])
    added = b.conversations.items.with_raw_response.create(
        conv.id, items=[user_message(t) for t in texts[2:]]
    )
    answer = ConversationItemList.model_validate(added.http_response.json())
    assert [shown(i) for i in answer.data] == [listed_user(t) for t in texts[2:]]

    listed = everything(a, conv.id)
    assert [shown(i) for i in listed] == [listed_user(t) for t in texts]
    assert [i.id for i in listed[2:]] == [i.id for i in answer.data]
    assert (answer.first_id, answer.last_id) == (listed[2].id, listed[4].id)
    # pages of two, both ways, as the client pages them (after = the page's last id)
    assert [i.id for i in a.conversations.items.list(conv.id, order="asc", limit=2)] == [i.id for i in listed]
    assert [i.id for i in b.conversations.items.list(conv.id, order="desc", limit=2)] == [
        i.id for i in listed
    ][::-1]
    first = a.conversations.items.list(conv.id, order="asc", limit=2)
    assert (first.has_more, first.last_id) == (True, listed[1].id)
    after = a.conversations.items.list(conv.id, order="asc", limit=2, after=listed[1].id)
    assert [i.id for i in after.data] == [listed[2].id, listed[3].id]

    for item in listed:
        assert b.conversations.items.retrieve(item.id, conversation_id=conv.id) == item
    remaining = a.conversations.items.delete(listed[2].id, conversation_id=conv.id)
    assert remaining == a.conversations.retrieve(conv.id)
    assert [i.id for i in everything(b, conv.id)] == [i.id for i in listed[:2] + listed[3:]]
    with pytest.raises(openai.NotFoundError):
        b.conversations.items.retrieve(listed[2].id, conversation_id=conv.id)
    with pytest.raises(openai.NotFoundError):
        b.conversations.items.delete(listed[2].id, conversation_id=conv.id)


# -- turns ----------------------------------------------------------------------------------------------
def _model_turn(cluster: Cluster, text: str) -> list[tuple[str, str]]:
    return [(m["role"], m["text"]) for m in cluster.target().model_saw(text) if m["role"] != "system"]


def test_responses_continue_a_conversation_whose_items_are_the_history(cluster: Cluster) -> None:
    a, b = client(cluster.a, "alice"), client(cluster.b, "alice")
    mark = marker()
    conv = a.conversations.create(items=[{"role": "user", "content": f"My name is Ada {mark}"}])
    first = a.responses.create(
        model=MODEL, input=f"What is the weather in Paris? {mark}", conversation=conv.id
    )
    assert (first.output_text, first.conversation and first.conversation.id) == (TOOL_ANSWER, conv.id)
    assert _model_turn(cluster, f"Paris? {mark}") == [  # the model's second call, with the tool's answer
        ("user", f"My name is Ada {mark}"),
        ("user", f"What is the weather in Paris? {mark}"),
        ("assistant", ""),
        ("tool", PARIS),
    ]

    listed = everything(b, conv.id)
    assert [i.type for i in listed] == [
        "message",
        "message",
        "function_call",
        "function_call_output",
        "message",
    ]
    assert [shown(i) for i in (listed[0], listed[1], listed[4])] == [
        listed_user(f"My name is Ada {mark}"),
        listed_user(f"What is the weather in Paris? {mark}"),
        answered(TOOL_ANSWER),
    ]
    call, output = listed[2], listed[3]
    assert call.type == "function_call" and output.type == "function_call_output"
    assert (call.name, json.loads(call.arguments), call.status) == (
        "get_weather",
        {"city": "Paris"},
        "completed",
    )
    assert (output.call_id, output.output, output.status) == (call.call_id, PARIS, "completed")
    assert len({i.id for i in listed}) == 5

    b.conversations.items.create(conv.id, items=[{"role": "user", "content": f"Remember blue {mark}"}])
    second = b.responses.create(model=MODEL, input=f"Thanks {mark}-second", conversation={"id": conv.id})
    assert second.output_text == f"You said: Thanks {mark}-second"
    assert _model_turn(cluster, f"{mark}-second") == [
        ("user", f"My name is Ada {mark}"),
        ("user", f"What is the weather in Paris? {mark}"),
        ("assistant", ""),
        ("tool", PARIS),
        ("assistant", TOOL_ANSWER),
        ("user", f"Remember blue {mark}"),
        ("user", f"Thanks {mark}-second"),
    ]
    after = everything(a, conv.id)
    assert [i.id for i in after[:5]] == [i.id for i in listed]  # ids are stable
    assert [shown(i) for i in after[5:]] == [
        listed_user(f"Remember blue {mark}"),
        listed_user(f"Thanks {mark}-second"),
        answered(f"You said: Thanks {mark}-second"),
    ]


def test_two_item_writes_and_a_turn_at_once_keep_the_conversation_consistent(cluster: Cluster) -> None:
    """Item writes wait for the running turn and never land inside it: the turn's items stay
    together, each write's items stay together, and the next turn sees exactly the list."""
    a, b = client(cluster.a, "alice"), client(cluster.b, "alice")
    mark = marker()
    conv = a.conversations.create(items=[user_message(f"seed {mark}")])
    slow = f"slow answer {mark} [[latency=3 chunks=12]]"
    writes = {
        "A": [user_message(f"A1 {mark}"), user_message(f"A2 {mark}")],
        "B": [user_message(f"B1 {mark}"), user_message(f"B2 {mark}")],
    }
    with (
        a.responses.stream(model=MODEL, input=slow, conversation=conv.id) as stream,
        ThreadPoolExecutor(2) as pool,
    ):
        for event in stream:
            if event.type == "response.output_text.delta":
                break  # the turn holds the conversation now, mid-answer
        assert [shown(i) for i in everything(b, conv.id)] == [
            listed_user(f"seed {mark}")
        ]  # not its items yet
        answers = {
            "A": pool.submit(b.conversations.items.create, conv.id, items=writes["A"]),
            "B": pool.submit(a.conversations.items.create, conv.id, items=writes["B"]),
        }
        for _ in stream:
            pass
        final = stream.get_final_response()
        created = {name: future.result(timeout=120) for name, future in answers.items()}
    assert final.output_text == f"You said: slow answer {mark}"

    listed = everything(b, conv.id)
    groups = {name: [shown(i) for i in created[name].data] for name in created}
    assert groups == {
        name: [listed_user(i["content"][0]["text"]) for i in items] for name, items in writes.items()
    }
    turn = [listed_user(f"seed {mark}"), listed_user(slow), answered(f"You said: slow answer {mark}")]
    orders = [turn + groups["A"] + groups["B"], turn + groups["B"] + groups["A"]]
    assert [shown(i) for i in listed] in orders, json.dumps([shown(i) for i in listed], indent=1)
    by_id = {i.id: i for i in listed}
    for name in created:
        assert [by_id[i.id] for i in created[name].data] == created[name].data

    b.responses.create(model=MODEL, input=f"next {mark}-after", conversation=conv.id)
    texts = [(i.role, i.content[0].text) for i in listed if i.type == "message"]
    assert _model_turn(cluster, f"{mark}-after") == [*texts, ("user", f"next {mark}-after")]


# -- users ----------------------------------------------------------------------------------------------
def test_another_users_conversation_does_not_exist_on_any_route(cluster: Cluster) -> None:
    alice = openai.OpenAI(
        base_url=cluster.a.url, api_key="unused", max_retries=0, default_query={"user": "alice"}
    )
    mark = marker()
    conv = alice.conversations.create(items=[user_message(f"mine {mark}")], metadata={"owner": "alice"})
    item = everything(alice, conv.id)[0]
    base = f"{cluster.b.url}/v1/conversations/{conv.id}"
    attempts = [
        ("GET", base, None),
        ("POST", base, {"metadata": {"owner": "bob"}}),
        ("DELETE", base, None),
        ("GET", f"{base}/items", None),
        ("POST", f"{base}/items", {"items": [user_message("sneaked in")]}),
        ("GET", f"{base}/items/{item.id}", None),
        ("DELETE", f"{base}/items/{item.id}", None),
    ]
    missing = {
        "message": f"Conversation with id '{conv.id}' not found.",
        "type": "invalid_request_error",
        "param": "conversation_id",
        "code": None,
    }
    for who in ({"headers": {"x-user-id": "bob"}}, {"params": {"user": "bob"}}, {}):
        for method, url, body in attempts:
            reply = httpx.request(method, url, json=body, timeout=30, **who)  # type: ignore[arg-type]
            assert (reply.status_code, reply.json()) == (404, {"error": missing}), (method, url, who)
        turn = httpx.post(
            f"{cluster.b.url}/v1/responses", json={"input": "hi", "conversation": conv.id}, timeout=30, **who
        )  # type: ignore[arg-type]
        assert (turn.status_code, turn.json()) == (404, {"error": {**missing, "param": "conversation"}})
    assert alice.conversations.retrieve(conv.id) == conv
    assert everything(alice, conv.id) == [item]


# -- the Agents SDK's session over the API -------------------------------------------------------------
def test_the_agents_sdk_keeps_its_session_in_a_conversation(cluster: Cluster) -> None:
    mark = marker()

    async def run() -> None:
        sdk = openai.AsyncOpenAI(
            base_url=cluster.a.url, api_key="unused", max_retries=0, default_headers={"x-user-id": "sdk"}
        )
        session = OpenAIConversationsSession(openai_client=sdk)
        added: list[Any] = [
            {"role": "user", "content": f"Hi {mark}"},
            {"role": "assistant", "content": "Hello"},
        ]
        await session.add_items(added)
        conversation_id = session.session_id
        listed = [
            i.model_dump(exclude_unset=True) for i in everything(client(cluster.b, "sdk"), conversation_id)
        ]
        assert await session.get_items() == listed
        assert [{k: v for k, v in i.items() if k != "id"} for i in listed] == [
            listed_user(f"Hi {mark}"),
            listed_assistant("Hello"),
        ]
        assert await session.pop_item() == listed[-1]
        assert await session.get_items() == listed[:1]
        await session.clear_session()
        with pytest.raises(openai.NotFoundError):
            await sdk.conversations.retrieve(conversation_id)

    asyncio.run(run())
