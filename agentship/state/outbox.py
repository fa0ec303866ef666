"""The outbox: notifications to deliver at least once, whichever replica lives.

A notification is written in the same transaction as what it announces (a background response's
final state: :meth:`~agentship.state.responses.RunStore.finish`), one row per destination, due at
once. Any replica's dispatcher then:

* :meth:`Outbox.claim` s due rows by compare-and-swap on a lease (on the database's clock), which
  counts the attempt, so two dispatchers never hold one row and a dispatcher that dies holding
  one gives it back when its lease runs out;
* marks each :meth:`~Outbox.delivered`, or :meth:`~Outbox.retry` s it after a backoff, or gives it
  up after its last attempt: only while it still holds the lease.

A row keeps its event's id across attempts (the receiver's deduplication key), never a
signature or a secret: deliveries are signed when they are sent. Rows expire with the store's TTL.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from agentship.state.engine import autocommit, db_now, transaction
from agentship.state.records import TERMINAL, StoredResponse
from agentship.state.schema import webhook_outbox

RESPONSE = "response"
"""A background response ended (OpenAI's ``response.*`` webhook events)."""
A2A = "a2a"
"""An A2A task's status changed (a push notification)."""


@dataclass(frozen=True)
class Notice:
    """A claimed row: one event for one destination, on its ``attempt`` th attempt."""

    id: str
    event_id: str
    kind: str
    subject: str
    destination: str
    url: str
    user_id: str
    payload: dict[str, Any]
    attempt: int
    created_at: float


def event_id() -> str:
    return f"evt_{uuid.uuid4().hex}"


def response_event(rec: StoredResponse, event: str, created_at: float) -> dict[str, Any]:
    """OpenAI's webhook event for a background response that ended (``response.completed``, …)."""
    return {
        "id": event,
        "object": "event",
        "created_at": int(created_at),
        "type": f"response.{rec.status}",
        "data": {"id": rec.id},
    }


def rows(
    kind: str,
    subject: str,
    user_id: str,
    event: str,
    payload: dict[str, Any],
    destinations: Iterable[tuple[str, str]],
    now: float,
    ttl_s: float,
) -> list[dict[str, Any]]:
    """The outbox rows of one event (its id ``event``, its body ``payload``) to each
    ``(destination, url)``: due at once."""
    return [
        {
            "id": uuid.uuid4().hex,
            "event_id": event,
            "kind": kind,
            "subject": subject,
            "destination": destination,
            "url": url,
            "user_id": user_id,
            "payload": payload,
            "attempts": 0,
            "next_at": 0.0,
            "created_at": now,
            "expires_at": now + ttl_s,
        }
        for destination, url in destinations
    ]


def response_rows(rec: StoredResponse, urls: Sequence[str], now: float, ttl_s: float) -> list[dict[str, Any]]:
    """The rows announcing ``rec``'s end to each webhook URL: none unless it is a background
    response that ended."""
    if not urls or not rec.background or rec.status not in TERMINAL:
        return []
    event = event_id()
    targets = [(f"webhook-{i}", url) for i, url in enumerate(urls)]
    return rows(RESPONSE, rec.id, rec.user_id, event, response_event(rec, event, now), targets, now, ttl_s)


def _notice(row: Any) -> Notice:
    return Notice(
        id=row.id,
        event_id=row.event_id,
        kind=row.kind,
        subject=row.subject,
        destination=row.destination,
        url=row.url,
        user_id=row.user_id,
        payload=dict(row.payload),
        attempt=int(row.attempts),
        created_at=float(row.created_at),
    )


class Outbox:
    def __init__(self, engine: AsyncEngine, owner: str, ttl_s: float, clock: Callable[[], float] = time.time):
        self.engine = engine
        self.owner = owner
        self.ttl_s = ttl_s
        self.clock = clock
        self.written: Callable[[], None] = lambda: None
        """Called after rows were written here (a local dispatcher wakes up)."""

    @staticmethod
    async def write(conn: AsyncConnection, new: list[dict[str, Any]]) -> None:
        """Write ``new`` rows inside the caller's transaction."""
        if new:
            await conn.execute(insert(webhook_outbox), new)

    async def add(self, new: list[dict[str, Any]]) -> None:
        """Write ``new`` rows in a transaction of their own."""
        if not new:
            return
        async with transaction(self.engine) as conn:
            await self.write(conn, new)
        self.written()

    async def claim(self, limit: int, lease_s: float, max_attempts: int) -> list[Notice]:
        """Take up to ``limit`` due rows no live dispatcher holds, oldest first; each claim counts
        as an attempt. A row whose last attempt's claim ran out unsettled (its dispatcher died
        each time) is given up here, never claimed again."""
        o = webhook_outbox.c
        now = db_now(self.engine)
        unsettled = [
            o.delivered_at.is_(None),
            o.given_up_at.is_(None),
            or_(o.lease_until.is_(None), o.lease_until < now),
        ]
        spent = (
            update(webhook_outbox)
            .where(*unsettled, o.attempts >= max_attempts)
            .values(given_up_at=self.clock(), owner=None, lease_until=None)
        )
        free = [*unsettled, o.next_at <= now, o.attempts < max_attempts]
        due = select(o.id).where(*free).order_by(o.created_at).limit(limit)
        if self.engine.dialect.name == "postgresql":
            # evaluated once, as a materialized CTE: as a subquery, PostgreSQL may scan it again
            # for each row it updates, each time skipping the rows it locked, past the limit
            due = due.with_for_update(skip_locked=True)
        chosen = due.cte("due").prefix_with("MATERIALIZED", dialect="postgresql")
        statement = (
            update(webhook_outbox)
            .where(o.id.in_(select(chosen.c.id)), *free)  # the conditions again: a CAS per row
            .values(owner=self.owner, lease_until=now + lease_s, attempts=o.attempts + 1)
            .returning(*webhook_outbox.c)
        )
        async with transaction(self.engine) as conn:
            await conn.execute(spent)
            taken = [_notice(row) for row in await conn.execute(statement)]
        return sorted(taken, key=lambda n: n.created_at)

    async def delivered(self, notice: Notice, status: int) -> bool:
        """Mark ``notice`` delivered; False if this dispatcher no longer held it."""
        return await self._settle(notice, status, delivered_at=self.clock(), next_at=0.0)

    async def retry(self, notice: Notice, status: int, after_s: float, give_up: bool) -> bool:
        """Mark an attempt failed: due again after ``after_s``, or given up."""
        if give_up:
            return await self._settle(notice, status, given_up_at=self.clock(), next_at=0.0)
        return await self._settle(notice, status, next_at=db_now(self.engine) + after_s)

    async def _settle(self, notice: Notice, status: int, **values: Any) -> bool:
        o = webhook_outbox.c
        async with transaction(self.engine) as conn:
            done = await conn.execute(
                update(webhook_outbox)
                .where(o.id == notice.id, o.owner == self.owner, o.delivered_at.is_(None))
                .values(owner=None, lease_until=None, last_status=status, **values)
            )
        return bool(done.rowcount)

    async def of(self, subject: str) -> list[dict[str, Any]]:
        """Every row about ``subject`` (a response or task id), oldest first: for operators' and
        tests' inspection, never a client."""
        query = select(webhook_outbox).where(webhook_outbox.c.subject == subject)
        async with autocommit(self.engine) as conn:
            found = [dict(row._mapping) for row in await conn.execute(query)]
        return sorted(found, key=lambda r: (r["created_at"], r["destination"]))
