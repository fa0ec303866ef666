"""Per-key limits and token budgets, counted in the store so every replica sees one count.

A *subject* (a key's or a user's identity) has a row per UTC minute (``m<n>``: requests
admitted) and per UTC day (``d<n>``: requests and tokens). :meth:`UsageCounters.take` admits a
request, or says which limit refuses it:

* tokens per day: the day's spent tokens are read; at or over the budget, the request is refused;
* requests per minute: the minute's row is incremented only while it is under the limit (one
  ``INSERT … ON CONFLICT DO UPDATE … WHERE requests < limit``), so of concurrent requests on any
  number of replicas exactly ``limit`` are admitted in a minute.

:meth:`UsageCounters.spend` adds a finished request's tokens to its day. Windows are fixed (a
burst at a minute's end and the next minute's start gets twice the limit in a minute's span,
as with any fixed window); they are UTC minutes and days of the replica's clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from agentship.state.engine import autocommit, transaction
from agentship.state.schema import usage

MINUTE, DAY = 60, 86_400

Limit = Literal["requests", "tokens"]


@dataclass(frozen=True)
class Quota:
    """What a subject may use: requests per minute and tokens per day (None: unlimited)."""

    requests_per_minute: int | None = None
    tokens_per_day: int | None = None

    def __bool__(self) -> bool:
        return self.requests_per_minute is not None or self.tokens_per_day is not None


@dataclass(frozen=True)
class Taken:
    """A request's admission: ``refused`` names the limit that refused it (None: admitted)."""

    refused: Limit | None
    requests: int
    """The minute's admitted requests, this one included if it was admitted."""
    tokens: int
    """The day's spent tokens."""
    minute_reset_s: float
    """Seconds until the minute's count starts again."""
    day_reset_s: float
    """Seconds until the day's budget starts again."""


class UsageCounters:
    def __init__(self, engine: AsyncEngine, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock

    def _upsert(self, subject: str, period: str, expires_at: float, tokens: int, below: int | None) -> Any:
        """One more request (and ``tokens``) in ``period``: only while its requests are ``below``."""
        insert = pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        statement = insert(usage).values(
            subject=subject, period=period, requests=1, tokens=tokens, expires_at=expires_at
        )
        return statement.on_conflict_do_update(
            index_elements=[usage.c.subject, usage.c.period],
            set_={"requests": usage.c.requests + 1, "tokens": usage.c.tokens + tokens},
            where=None if below is None else usage.c.requests < below,
        ).returning(usage.c.requests)

    async def take(self, subject: str, quota: Quota) -> Taken:
        """Admit one request of ``subject`` under ``quota``, or say which limit refuses it."""
        now = self.clock()
        minute, day = int(now // MINUTE), int(now // DAY)
        minute_reset, day_reset = (minute + 1) * MINUTE - now, (day + 1) * DAY - now
        async with transaction(self.engine) as conn:
            spent = (
                await conn.execute(
                    select(usage.c.tokens).where(usage.c.subject == subject, usage.c.period == f"d{day}")
                )
            ).scalar() or 0
            if quota.tokens_per_day is not None and spent >= quota.tokens_per_day:
                return Taken("tokens", 0, int(spent), minute_reset, day_reset)
            if quota.requests_per_minute is None:
                return Taken(None, 0, int(spent), minute_reset, day_reset)
            counted = (
                await conn.execute(
                    self._upsert(subject, f"m{minute}", (minute + 2) * MINUTE, 0, quota.requests_per_minute)
                )
            ).scalar()
            if counted is None:
                limit = quota.requests_per_minute or 0
                return Taken("requests", limit, int(spent), minute_reset, day_reset)
        return Taken(None, int(counted), int(spent), minute_reset, day_reset)

    async def spend(self, subject: str, tokens: int) -> None:
        """Add a finished request's tokens (and the request) to its subject's day."""
        now = self.clock()
        day = int(now // DAY)
        async with autocommit(self.engine) as conn:
            await conn.execute(self._upsert(subject, f"d{day}", (day + 2) * DAY, max(0, tokens), None))
