"""Conversation memory for the OpenAI Agents SDK agent: the SDK's own ``SQLAlchemySession``,
over the state store's database.

With a ``conversation_id``, a run reads the conversation's history from its session, and the
SDK appends the turn's items when it ends. Turns of one conversation run one at a time, across
replicas (a lease in the store), and the session is kept to the store's item limit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from agents.extensions.memory.sqlalchemy_session import SQLAlchemySession
from agents.memory import SessionSettings

from agentship.inputs import new_turn
from agentship.state import StateStore, conversation_key


def keep_new_turn(history: list[Any], new_items: list[Any]) -> list[Any]:
    """The SDK's ``session_input_callback``: the stored history, then only the new turn.

    When the session already holds the conversation, of what the client sent only the trailing
    new turn counts (a client that resends the whole history duplicates nothing); a new session
    is seeded with everything the client sent.
    """
    return [*history, *(new_turn(new_items) if history else new_items)]


class ConversationMemory:
    def __init__(self, store: StateStore) -> None:
        self.store = store
        # The SDK adds its SQLite "connect" listener to the engine when it first makes a session
        # over it. Let it happen now, once: added while another connection is being opened (its
        # listeners iterated across an await), it breaks that connection.
        SQLAlchemySession("agentship-warmup", engine=store.engine, create_tables=False)

    @asynccontextmanager
    async def turn(self, user_id: str, conversation_id: str) -> AsyncIterator[SQLAlchemySession]:
        """The conversation's session, held for one turn; trimmed to the limit afterwards."""
        key = conversation_key(user_id, conversation_id)
        async with self.store.locks.hold(key):
            yield SQLAlchemySession(
                key,
                engine=self.store.engine,
                create_tables=False,  # the store's migrations own the schema
                session_settings=SessionSettings(limit=self.store.settings.max_items),
                ensure_ascii=False,
            )
            await self.store.trim_session(key)
