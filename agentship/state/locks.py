"""Leases that serialise the turns of one conversation across processes and replicas.

A lease is a row (key, owner, expires_at), taken by compare-and-swap: inserted if absent, or
overwritten if its holder let it expire. The holder renews it while its turn runs, and a
replica that dies simply stops renewing: its lease runs out and the next turn goes ahead. No
connection is held while a turn runs, so a thousand conversations need no thousand
connections. Within one process an asyncio lock per key queues turns without polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from agentship.errors import StateError
from agentship.state.engine import transaction
from agentship.state.schema import locks

_logger = logging.getLogger(__name__)


class ConversationBusyError(StateError):
    """Another turn of the conversation held it for longer than the wait allowed."""


class LeaseLocks:
    def __init__(
        self,
        engine: AsyncEngine,
        owner: str,
        lease_s: float = 15.0,
        wait_s: float = 120.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.owner = owner
        self.lease_s = lease_s
        self.wait_s = wait_s
        self.clock = clock
        self._local: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def _upsert(self, key: str) -> Any:
        now = self.clock()
        insert = pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        statement = insert(locks).values(key=key, owner=self.owner, expires_at=now + self.lease_s)
        return statement.on_conflict_do_update(
            index_elements=[locks.c.key],
            set_={"owner": self.owner, "expires_at": now + self.lease_s},
            where=locks.c.expires_at < now,
        )

    async def try_acquire(self, key: str) -> bool:
        async with transaction(self.engine) as conn:
            return bool((await conn.execute(self._upsert(key))).rowcount)

    async def renew(self, key: str) -> bool:
        async with transaction(self.engine) as conn:
            renewed = await conn.execute(
                update(locks)
                .where(locks.c.key == key, locks.c.owner == self.owner)
                .values(expires_at=self.clock() + self.lease_s)
            )
        return bool(renewed.rowcount)

    async def release(self, key: str) -> None:
        async with transaction(self.engine) as conn:
            await conn.execute(delete(locks).where(locks.c.key == key, locks.c.owner == self.owner))

    async def _acquire(self, key: str) -> None:
        deadline = self.clock() + self.wait_s
        pause = 0.02
        while not await self.try_acquire(key):
            if self.clock() > deadline:
                raise ConversationBusyError(
                    f"the conversation is busy with another turn for over {self.wait_s:g}s; retry later"
                )
            await asyncio.sleep(pause)
            pause = min(0.5, pause * 2)

    async def _keep(self, key: str) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 3)
            if not await self.renew(key):
                _logger.warning("lost the lease on a conversation while its turn ran")
                return

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        """Hold ``key`` for the duration of the block, one holder at a time, across replicas."""
        local = self._local.get(key)
        if local is None:
            local = self._local[key] = asyncio.Lock()
        async with local:
            await self._acquire(key)
            keeper = asyncio.create_task(self._keep(key), name="agentship-lease")
            try:
                yield
            finally:
                keeper.cancel()
                with contextlib.suppress(asyncio.CancelledError, StateError):
                    await keeper
                with contextlib.suppress(StateError):
                    await asyncio.shield(self.release(key))
