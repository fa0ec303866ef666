"""Paused runs, kept until a client answers them: serialised Agents SDK ``RunState`` snapshots,
filed under every call they wait on (scoped to the user, so only they can resume them)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from agentship.state.engine import transaction
from agentship.state.records import conversation_key
from agentship.state.schema import run_states


def paused_key(user_id: str, call_id: str) -> str:
    return conversation_key(user_id, f"paused:{call_id}")


class PausedRuns:
    def __init__(self, engine: AsyncEngine, ttl_s: float, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.ttl_s = ttl_s
        self.clock = clock

    async def put(self, user_id: str, call_ids: list[str], state: dict[str, Any]) -> None:
        keys = [paused_key(user_id, c) for c in call_ids]
        rows = [{"key": k, "state": state, "expires_at": self.clock() + self.ttl_s} for k in keys]
        async with transaction(self.engine) as conn:
            await conn.execute(delete(run_states).where(run_states.c.key.in_(keys)))
            if rows:
                await conn.execute(insert(run_states), rows)

    async def get(self, user_id: str, call_id: str) -> dict[str, Any] | None:
        query = select(run_states.c.state).where(
            run_states.c.key == paused_key(user_id, call_id), run_states.c.expires_at > self.clock()
        )
        async with transaction(self.engine) as conn:
            state = (await conn.execute(query)).scalar()
        return None if state is None else dict(state)

    async def forget(self, user_id: str, call_ids: list[str]) -> None:
        async with transaction(self.engine) as conn:
            await conn.execute(
                delete(run_states).where(run_states.c.key.in_([paused_key(user_id, c) for c in call_ids]))
            )
