"""Paused runs, kept until a client answers them: serialised Agents SDK ``RunState`` snapshots,
filed under every call they wait on (scoped to the user, so only they can resume them).

Answering a paused run *takes* it: one ``DELETE … RETURNING`` removes every row of the run, so
of two requests answering it at once (a client's retry, say) exactly one gets it, on any
replica, on PostgreSQL and SQLite alike. If the resumed run fails, its taker puts it back
(:meth:`PausedRuns.restore`), so the client can answer again.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from agentship.state.engine import transaction
from agentship.state.records import conversation_key
from agentship.state.schema import run_states


def paused_key(user_id: str, call_id: str) -> str:
    return conversation_key(user_id, f"paused:{call_id}")


@dataclass(frozen=True)
class TakenRun:
    """A paused run as its taker removed it: enough to put it back exactly as it was."""

    state: dict[str, Any]
    run_id: str | None
    rows: tuple[tuple[str, float], ...]
    """Every (key, expires_at) the run was filed under."""


class PausedRuns:
    def __init__(self, engine: AsyncEngine, ttl_s: float, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.ttl_s = ttl_s
        self.clock = clock

    async def put(self, user_id: str, call_ids: list[str], state: dict[str, Any]) -> str:
        """File ``state`` under each call it waits on; returns the run's id."""
        run_id = uuid.uuid4().hex
        keys = [paused_key(user_id, c) for c in call_ids]
        expires_at = self.clock() + self.ttl_s
        rows = [{"key": k, "state": state, "expires_at": expires_at, "run_id": run_id} for k in keys]
        async with transaction(self.engine) as conn:
            await conn.execute(delete(run_states).where(run_states.c.key.in_(keys)))
            if rows:
                await conn.execute(insert(run_states), rows)
        return run_id

    async def take(self, user_id: str, call_id: str) -> TakenRun | None:
        """Remove the user's unexpired run that waits on ``call_id``, with all its rows, and return
        it; None if there is none (never paused, expired, or answered, or being answered, by
        another request)."""
        key = paused_key(user_id, call_id)
        run_of_key = select(run_states.c.run_id).where(run_states.c.key == key).scalar_subquery()
        statement = (
            delete(run_states)
            .where(
                or_(
                    run_states.c.key == key,
                    and_(run_states.c.run_id.is_not(None), run_states.c.run_id == run_of_key),
                ),
                run_states.c.expires_at > self.clock(),
            )
            .returning(run_states.c.key, run_states.c.state, run_states.c.expires_at, run_states.c.run_id)
        )
        async with transaction(self.engine) as conn:
            rows = (await conn.execute(statement)).all()
        mine = next((row for row in rows if row.key == key), None)
        if mine is None:
            return None
        return TakenRun(dict(mine.state), mine.run_id, tuple((row.key, row.expires_at) for row in rows))

    async def restore(self, taken: TakenRun) -> None:
        """Put a taken run back as it was (its resumption failed): it can be answered again."""
        keys = [key for key, _ in taken.rows]
        rows = [
            {"key": key, "state": taken.state, "expires_at": expires_at, "run_id": taken.run_id}
            for key, expires_at in taken.rows
        ]
        async with transaction(self.engine) as conn:
            await conn.execute(delete(run_states).where(run_states.c.key.in_(keys)))
            await conn.execute(insert(run_states), rows)

    async def discard(self, run_id: str) -> None:
        """Forget a run just paused, whose turn then failed (nobody was told what it waits on)."""
        async with transaction(self.engine) as conn:
            await conn.execute(delete(run_states).where(run_states.c.run_id == run_id))
