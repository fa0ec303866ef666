"""The conversations of OpenAI's Conversations API: a metadata row over the SDK session that is
the conversation.

A conversation *is* the OpenAI Agents SDK session its turns already use, keyed by
:func:`~agentship.state.conversation_key` (user, conversation id): its items are that session's
``agent_messages`` rows, in order, as the SDK stores them (Responses input items). The row in
``agentship_openai_conversations`` adds what the API shows beyond the items (id, metadata,
creation time) and expires with the store's TTL, a TTL after its last write (a turn's session
write refreshes it too, :class:`~agentship.openai_agents.memory.TurnSession`).

Consistency, per operation:

* every write to the items (:meth:`~OpenAIConversations.append`, :meth:`~OpenAIConversations.remove`,
  :meth:`~OpenAIConversations.delete`) holds the conversation's lease
  (:mod:`agentship.state.locks`), the one a turn holds for its whole run, and checks it in its
  own transaction: an item write waits for a running turn to end and never lands inside it, on
  any replica. It first takes back what an interrupted turn left (:func:`~.turns.take_back`);
* :meth:`~OpenAIConversations.items` reads in one transaction, and leaves out the items after
  the mark of a turn that holds the lease (or was interrupted): it shows kept turns only;
* a new conversation and its first items are written in one transaction, before anyone knows
  its id;
* every operation sees only the caller's own user's conversations.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, delete, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from agentship.state.engine import autocommit, transaction
from agentship.state.locks import LOST, LeaseLocks, LeaseLostError
from agentship.state.purge import trim_session
from agentship.state.records import conversation_key
from agentship.state.schema import agent_messages, agent_sessions, locks, openai_conversations
from agentship.state.settings import StateSettings
from agentship.state.turns import take_back

ID_PREFIX = "conv_"


def new_conversation_id() -> str:
    """An id as OpenAI's look: ``conv_`` and 48 hex digits."""
    return ID_PREFIX + secrets.token_hex(24)


@dataclass(frozen=True)
class ConversationRecord:
    id: str
    user_id: str
    metadata: dict[str, str]
    created_at: float
    expires_at: float


@dataclass(frozen=True)
class SessionItem:
    """One item of a conversation: its row in the session, and the item as the SDK keeps it."""

    row: int
    item: dict[str, Any]


def _record(row: Row[Any]) -> ConversationRecord:
    return ConversationRecord(row.id, row.user_id, dict(row.metadata or {}), row.created_at, row.expires_at)


class OpenAIConversations:
    def __init__(
        self,
        engine: AsyncEngine,
        leases: LeaseLocks,
        settings: StateSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.leases = leases
        self.settings = settings
        self.clock = clock

    # -- the conversation ---------------------------------------------------------------------------
    async def create(
        self, user_id: str, metadata: dict[str, str], items: list[dict[str, Any]]
    ) -> tuple[ConversationRecord, list[SessionItem]]:
        """A new conversation with its first ``items``, in one transaction."""
        now = self.clock()
        rec = ConversationRecord(new_conversation_id(), user_id, metadata, now, now + self.settings.ttl_s)
        key = conversation_key(user_id, rec.id)
        async with transaction(self.engine) as conn:
            await conn.execute(
                insert(openai_conversations).values(
                    key=key,
                    id=rec.id,
                    user_id=user_id,
                    metadata=metadata,
                    created_at=now,
                    expires_at=rec.expires_at,
                )
            )
            written = await self._insert(conn, key, items)
        return rec, written

    async def get(self, user_id: str, conversation_id: str) -> ConversationRecord | None:
        """The conversation, unless it does not exist for this user or has expired."""
        async with autocommit(self.engine) as conn:
            return await self._live(conn, conversation_key(user_id, conversation_id))

    async def update(
        self, user_id: str, conversation_id: str, metadata: dict[str, str]
    ) -> ConversationRecord | None:
        """Replace the conversation's metadata; None if it does not exist for this user."""
        key = conversation_key(user_id, conversation_id)
        async with transaction(self.engine) as conn:
            if await self._live(conn, key) is None:
                return None
            await conn.execute(
                update(openai_conversations)
                .where(openai_conversations.c.key == key)
                .values(metadata=metadata, expires_at=self.clock() + self.settings.ttl_s)
            )
            return await self._live(conn, key)

    async def delete(self, user_id: str, conversation_id: str) -> bool:
        """Delete the conversation and its items (after any running turn); False if it did not
        exist for this user."""
        key = conversation_key(user_id, conversation_id)
        if await self.get(user_id, conversation_id) is None:
            return False  # (no lease taken for an id that is not there)
        async with self.leases.hold(key), transaction(self.engine) as conn:
            await self._fence(conn, key)
            if await self._live(conn, key) is None:
                return False
            await conn.execute(delete(agent_messages).where(agent_messages.c.session_id == key))
            await conn.execute(delete(agent_sessions).where(agent_sessions.c.session_id == key))
            await conn.execute(delete(openai_conversations).where(openai_conversations.c.key == key))
            return True

    # -- its items ----------------------------------------------------------------------------------
    async def items(self, user_id: str, conversation_id: str) -> list[SessionItem] | None:
        """The conversation's items in order, those of kept turns only; None if it does not exist
        for this user."""
        key = conversation_key(user_id, conversation_id)
        where = [agent_messages.c.session_id == key]
        async with transaction(self.engine) as conn:
            if await self._live(conn, key) is None:
                return None
            mark = (await conn.execute(select(locks.c.turn_mark).where(locks.c.key == key))).scalar()
            if mark is not None:  # a turn runs (or was cut short): its items are not the conversation's yet
                where.append(agent_messages.c.id <= mark)
            rows = await conn.execute(
                select(agent_messages.c.id, agent_messages.c.message_data)
                .where(*where)
                .order_by(agent_messages.c.id)
            )
            return [SessionItem(row.id, item) for row in rows if (item := _parsed(row.message_data))]

    async def append(
        self, user_id: str, conversation_id: str, items: list[dict[str, Any]]
    ) -> list[SessionItem] | None:
        """Add ``items`` at the end, under the conversation's lease; None if it does not exist for
        this user. The conversation is then kept to the store's item limit, as after a turn."""
        key = conversation_key(user_id, conversation_id)
        if await self.get(user_id, conversation_id) is None:
            return None
        async with self.leases.hold(key):
            async with transaction(self.engine) as conn:
                await self._fence(conn, key)
                if await self._live(conn, key) is None:
                    return None
                await take_back(conn, key)
                written = await self._insert(conn, key, items)
                await self._touch(conn, key)
            await trim_session(self.engine, key, self.settings.max_items)
        return written

    async def remove(self, user_id: str, conversation_id: str, row: int) -> bool | None:
        """Delete one item, under the conversation's lease: whether it was there; None if the
        conversation does not exist for this user."""
        key = conversation_key(user_id, conversation_id)
        if await self.get(user_id, conversation_id) is None:
            return None
        async with self.leases.hold(key), transaction(self.engine) as conn:
            await self._fence(conn, key)
            if await self._live(conn, key) is None:
                return None
            await take_back(conn, key)
            done = await conn.execute(
                delete(agent_messages).where(agent_messages.c.session_id == key, agent_messages.c.id == row)
            )
            await self._touch(conn, key)
            return bool(done.rowcount)

    # -- in a transaction ---------------------------------------------------------------------------
    async def _live(self, conn: AsyncConnection, key: str) -> ConversationRecord | None:
        row = (
            await conn.execute(
                select(openai_conversations).where(
                    openai_conversations.c.key == key, openai_conversations.c.expires_at > self.clock()
                )
            )
        ).first()
        return None if row is None else _record(row)

    async def _fence(self, conn: AsyncConnection, key: str) -> None:
        if not await self.leases.fence(conn, key):
            raise LeaseLostError(LOST)

    async def _touch(self, conn: AsyncConnection, key: str) -> None:
        await conn.execute(
            update(openai_conversations)
            .where(openai_conversations.c.key == key)
            .values(expires_at=self.clock() + self.settings.ttl_s)
        )
        await conn.execute(
            update(agent_sessions)
            .where(agent_sessions.c.session_id == key)
            .values(updated_at=text("CURRENT_TIMESTAMP"))
        )

    async def _insert(
        self, conn: AsyncConnection, key: str, items: list[dict[str, Any]]
    ) -> list[SessionItem]:
        """The rows of ``items``, written at the session's end (the session made if it is new)."""
        if not items:
            return []
        upsert = pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        await conn.execute(upsert(agent_sessions).values(session_id=key).on_conflict_do_nothing())
        rows = [
            {"session_id": key, "message_data": json.dumps(i, ensure_ascii=False, separators=(",", ":"))}
            for i in items
        ]
        ids = await conn.execute(
            insert(agent_messages).returning(agent_messages.c.id, sort_by_parameter_order=True), rows
        )
        return [SessionItem(row_id, item) for row_id, item in zip(ids.scalars(), items, strict=True)]


def _parsed(message_data: str) -> dict[str, Any] | None:
    """A row's item; None for a row that is not a JSON object (the SDK skips those too)."""
    try:
        item = json.loads(message_data)
    except (json.JSONDecodeError, TypeError):
        return None
    return item if isinstance(item, dict) else None
