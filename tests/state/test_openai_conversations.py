"""The Conversations API's conversations in the state store, against a real SQLite file and a real
PostgreSQL: a conversation is its SDK session, and its item writes take the turn's lease.

A turn is played here by another replica's :class:`LeaseLocks` and the turn functions the SDK
session's turn uses (:mod:`agentship.state.turns`), writing its items as the SDK does.
"""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import insert, select, update

from agentship.state import StateStore, conversation_key
from agentship.state.engine import transaction
from agentship.state.locks import LeaseLocks
from agentship.state.openai_conversations import ID_PREFIX, OpenAIConversations
from agentship.state.purge import purge_expired
from agentship.state.schema import agent_messages, agent_sessions, locks, openai_conversations
from agentship.state.turn_io import TurnStart, start_turn
from agentship.state.turns import keep_turn
from tests.state.test_store import run, settings


def said(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


async def _write_as_the_sdk(store: StateStore, key: str, items: list[dict[str, Any]]) -> None:
    async with transaction(store.engine) as conn:
        for item in items:
            await conn.execute(insert(agent_messages).values(session_id=key, message_data=json.dumps(item)))


async def _texts(store: StateStore, user: str, conversation_id: str) -> list[str] | None:
    found = await store.openai_conversations.items(user, conversation_id)
    return None if found is None else [i.item["content"] for i in found]


def test_a_conversation_is_its_session_and_only_its_users(state_url: str) -> None:
    async def check() -> None:
        store = await StateStore.open(settings(state_url))
        try:
            rec, first = await store.openai_conversations.create(
                "alice", {"k": "v"}, [said("one"), said("two")]
            )
            assert rec.id.startswith(ID_PREFIX) and len(rec.id) == len(ID_PREFIX) + 48
            key = conversation_key("alice", rec.id)
            async with transaction(store.engine) as conn:
                rows = (
                    await conn.execute(select(agent_messages).where(agent_messages.c.session_id == key))
                ).all()
            assert [(r.id, json.loads(r.message_data)) for r in rows] == [(i.row, i.item) for i in first]
            assert await store.openai_conversations.get("alice", rec.id) == rec
            for other in ("bob", ""):  # another user, anonymous: it does not exist for them
                assert await store.openai_conversations.get(other, rec.id) is None
                assert await store.openai_conversations.items(other, rec.id) is None
                assert await store.openai_conversations.append(other, rec.id, [said("x")]) is None
                assert await store.openai_conversations.remove(other, rec.id, first[0].row) is None
                assert await store.openai_conversations.update(other, rec.id, {}) is None
                assert not await store.openai_conversations.delete(other, rec.id)
            assert await _texts(store, "alice", rec.id) == ["one", "two"]
            assert await store.openai_conversations.remove("alice", rec.id, first[0].row)
            assert not await store.openai_conversations.remove("alice", rec.id, first[0].row)
            assert await store.openai_conversations.delete("alice", rec.id)
            async with transaction(store.engine) as conn:
                for table, column in (
                    (agent_messages, agent_messages.c.session_id),
                    (agent_sessions, agent_sessions.c.session_id),
                ):
                    assert (await conn.execute(select(table).where(column == key))).first() is None
        finally:
            await store.aclose()

    run(check)


def test_the_items_of_a_running_turn_are_not_the_conversations_until_it_is_kept(state_url: str) -> None:
    async def check() -> None:
        store = await StateStore.open(settings(state_url))
        replica = LeaseLocks(store.engine, "another-replica")
        try:
            rec, _ = await store.openai_conversations.create("alice", {}, [said("before")])
            key = conversation_key("alice", rec.id)

            async def take() -> TurnStart | None:
                return await start_turn(replica, key, 1000)

            async with replica.hold(key, take):
                await _write_as_the_sdk(store, key, [said("the turn's input")])
                assert await _texts(store, "alice", rec.id) == ["before"]
                await keep_turn(replica, key)
            assert await _texts(store, "alice", rec.id) == ["before", "the turn's input"]
        finally:
            await store.aclose()

    run(check)


def test_an_item_write_takes_back_what_an_interrupted_turn_left(state_url: str) -> None:
    """A replica died mid-turn: its lease ran out with its mark on it. The next writer of the
    conversation, an item write here, takes the turn's items back before it writes."""

    async def check() -> None:
        store = await StateStore.open(settings(state_url))
        try:
            rec, written = await store.openai_conversations.create("alice", {}, [said("kept")])
            key = conversation_key("alice", rec.id)
            async with transaction(store.engine) as conn:
                await conn.execute(
                    insert(locks).values(
                        key=key, owner="dead", expires_at=time.time() - 60, turn_mark=written[-1].row
                    )
                )
            await _write_as_the_sdk(store, key, [said("half a turn")])
            assert await _texts(store, "alice", rec.id) == ["kept"]
            added = await store.openai_conversations.append("alice", rec.id, [said("added")])
            assert added is not None and [i.item for i in added] == [said("added")]
            assert await _texts(store, "alice", rec.id) == ["kept", "added"]
            async with transaction(store.engine) as conn:
                assert (await conn.execute(select(locks).where(locks.c.key == key))).first() is None
        finally:
            await store.aclose()

    run(check)


def test_a_conversation_expires_with_the_ttl_after_its_last_write(state_url: str) -> None:
    async def check() -> None:
        store = await StateStore.open(settings(state_url, ttl_s=100))
        now = [1_000_000.0]
        conversations = OpenAIConversations(store.engine, store.locks, store.settings, clock=lambda: now[0])
        try:
            old, _ = await conversations.create("alice", {}, [said("old")])
            used, _ = await conversations.create("alice", {}, [said("used")])
            now[0] += 90
            assert await conversations.append("alice", used.id, [said("again")]) is not None
            now[0] += 20  # the first is 110 s past its last write, the second 20 s
            assert await conversations.get("alice", old.id) is None
            assert await conversations.get("alice", used.id) is not None
            assert await purge_expired(store.engine, store.settings, clock=lambda: now[0]) >= 3
            async with transaction(store.engine) as conn:
                kept = (await conn.execute(select(openai_conversations.c.id))).scalars().all()
                sessions = (await conn.execute(select(agent_sessions.c.session_id))).scalars().all()
            assert (kept, sessions) == ([used.id], [conversation_key("alice", used.id)])
            await conversations.update("alice", used.id, {"k": "v"})  # a metadata write is a use too
            async with transaction(store.engine) as conn:
                expiry = (await conn.execute(select(openai_conversations.c.expires_at))).scalar()
                await conn.execute(update(openai_conversations).values(expires_at=0))
            assert expiry == now[0] + 100
            assert await conversations.items("alice", used.id) is None
        finally:
            await store.aclose()

    run(check)
