"""Idempotency keys: a request's ``Idempotency-Key``, the request it was first used with, and the
answer that request got, kept for a TTL and shared by every replica.

A key belongs to a user (two users' keys never meet). The first request with it *claims* it: one
``INSERT … ON CONFLICT DO NOTHING`` decides, on PostgreSQL and SQLite alike, so of two
concurrent requests exactly one runs. The claimant holds a lease on the key while it runs
(renewed on the database's clock); when it ends, it writes the answer, or lets the key go when
the answer says nothing ran (the retry should run). A claim whose holder died (its lease ran
out with no answer) is taken over by the next request with the key, by compare-and-swap on the
holder and its lease, so again one request runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from agentship.state.engine import autocommit, db_now
from agentship.state.schema import idempotency_keys

Status = Literal["running", "done"]


@dataclass(frozen=True)
class KeyRecord:
    """A key as stored."""

    user_id: str
    key: str
    fingerprint: str
    status: Status
    owner: str | None
    answer: dict[str, Any] | None
    lease_expired: bool
    """Whether the claimant's lease ran out with no answer (it died): the key can be taken over."""


@dataclass(frozen=True)
class Claimed:
    """This request holds the key: it runs, then :meth:`IdempotencyKeys.finish` or ``release``."""


@dataclass(frozen=True)
class Taken:
    """Another request holds or answered the key: here is the row."""

    record: KeyRecord


class IdempotencyKeys:
    def __init__(
        self,
        engine: AsyncEngine,
        owner: str,
        ttl_s: float,
        lease_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.owner = owner
        self.ttl_s = ttl_s
        self.lease_s = lease_s
        self.clock = clock

    def _insert(self) -> Any:
        return pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert

    async def claim(self, user_id: str, key: str, fingerprint: str) -> Claimed | Taken:
        """Claim ``key`` for a request whose body has ``fingerprint``; or the row that holds it.

        An expired key (past its TTL) is claimed afresh, whatever it was used for."""
        while True:  # a key let go between the statements below is claimed again
            outcome = await self._claim_once(user_id, key, fingerprint)
            if outcome is not None:
                return outcome

    async def _claim_once(self, user_id: str, key: str, fingerprint: str) -> Claimed | Taken | None:
        now = self.clock()
        values = {
            "user_id": user_id,
            "key": key,
            "fingerprint": fingerprint,
            "status": "running",
            "owner": self.owner,
            "lease_until": db_now(self.engine) + self.lease_s,
            "answer": None,
            "created_at": now,
            "expires_at": now + self.ttl_s,
        }
        table = idempotency_keys
        async with autocommit(self.engine) as conn:
            inserted = await conn.execute(
                self._insert()(table).values(values).on_conflict_do_nothing().returning(table.c.key)
            )
            if inserted.first() is not None:
                return Claimed()
            # past its TTL (not yet purged), or claimed by a holder that died: take it over
            taken = await conn.execute(
                update(table)
                .where(
                    table.c.user_id == user_id,
                    table.c.key == key,
                    or_(
                        table.c.expires_at < now,
                        and_(
                            table.c.status == "running",
                            table.c.fingerprint == fingerprint,
                            table.c.lease_until < db_now(self.engine),
                        ),
                    ),
                )
                .values(values)
                .returning(table.c.key)
            )
            if taken.first() is not None:
                return Claimed()
            row = (await conn.execute(self._read(user_id, key))).first()
        return None if row is None else Taken(_record(row))

    def _read(self, user_id: str, key: str) -> Any:
        """The key's row, with whether its claimant's lease ran out (on the database's clock)."""
        table = idempotency_keys
        expired = (table.c.lease_until < db_now(self.engine)).label("lease_expired")
        return select(table, expired).where(table.c.user_id == user_id, table.c.key == key)

    async def get(self, user_id: str, key: str) -> KeyRecord | None:
        async with autocommit(self.engine) as conn:
            row = (await conn.execute(self._read(user_id, key))).first()
        return None if row is None else _record(row)

    async def renew(self, user_id: str, key: str) -> bool:
        """Extend this replica's claim; False if it is no longer this replica's."""
        table = idempotency_keys
        async with autocommit(self.engine) as conn:
            done = await conn.execute(
                update(table)
                .where(*self._mine(user_id, key))
                .values(lease_until=db_now(self.engine) + self.lease_s)
                .returning(table.c.key)
            )
            return done.first() is not None

    async def finish(self, user_id: str, key: str, answer: dict[str, Any]) -> bool:
        """Keep ``answer`` as the key's; False if the claim was lost (another request took it)."""
        table = idempotency_keys
        async with autocommit(self.engine) as conn:
            done = await conn.execute(
                update(table)
                .where(*self._mine(user_id, key))
                .values(status="done", answer=answer, lease_until=None, expires_at=self.clock() + self.ttl_s)
                .returning(table.c.key)
            )
            return done.first() is not None

    async def release(self, user_id: str, key: str) -> None:
        """Let the key go unanswered: its next request runs."""
        async with autocommit(self.engine) as conn:
            await conn.execute(delete(idempotency_keys).where(*self._mine(user_id, key)))

    def _mine(self, user_id: str, key: str) -> tuple[Any, ...]:
        table = idempotency_keys
        return (
            table.c.user_id == user_id,
            table.c.key == key,
            table.c.status == "running",
            table.c.owner == self.owner,
        )


def _record(row: Any) -> KeyRecord:
    return KeyRecord(
        user_id=row.user_id,
        key=row.key,
        fingerprint=row.fingerprint,
        status=row.status,
        owner=row.owner,
        answer=row.answer,
        lease_expired=bool(row.lease_expired) and row.status == "running",
    )
