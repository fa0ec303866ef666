"""A backend's state for each conversation (a Llama Stack session or server conversation id, or
the history of a server that keeps none), kept in the store so that any replica can continue
any conversation."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from agentship.state.engine import autocommit, transaction
from agentship.state.locks import LOST, LeaseLocks, LeaseLostError
from agentship.state.schema import conversations


class ConversationMap:
    def __init__(
        self, engine: AsyncEngine, backend: str, ttl_s: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.engine = engine
        self.backend = backend
        self.ttl_s = ttl_s
        self.clock = clock

    async def get(self, key: str) -> dict[str, Any] | None:
        """The conversation's state, unless it expired."""
        query = select(conversations.c.server_id, conversations.c.state).where(
            conversations.c.key == key,
            conversations.c.backend == self.backend,
            conversations.c.expires_at > self.clock(),
        )
        async with autocommit(self.engine) as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return dict(row.state) if row.state is not None else {"server_id": row.server_id}

    async def put(self, key: str, state: dict[str, Any], leases: LeaseLocks | None = None) -> None:
        """Write the conversation's state; with ``leases``, only while the conversation's lease is
        still this replica's (else :class:`~agentship.state.locks.LeaseLostError`, nothing written)."""
        now = self.clock()
        insert = pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        values = {
            "backend": self.backend,
            "server_id": state.get("server_id"),
            "state": state,
            "updated_at": now,
            "expires_at": now + self.ttl_s,
        }
        statement = insert(conversations).values(key=key, **values)
        async with transaction(self.engine) as conn:
            if leases is not None and not await leases.fence(conn, key, unexpired=False):
                raise LeaseLostError(LOST)
            await conn.execute(
                statement.on_conflict_do_update(index_elements=[conversations.c.key], set_=values)
            )

    async def forget(self, key: str) -> None:
        async with transaction(self.engine) as conn:
            await conn.execute(delete(conversations).where(conversations.c.key == key))
