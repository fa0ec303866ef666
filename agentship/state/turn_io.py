"""A conversation's turn, its reads and writes in as few round trips as the database allows.

On PostgreSQL each of these is one statement in autocommit (a data-modifying CTE where it
writes two tables), so one round trip, with no BEGIN and COMMIT: the statement is the
transaction. The lease's row is locked by the statement that checks it, so nobody takes the
lease between that check and the write (:meth:`~agentship.state.locks.LeaseLocks.fence`). On
SQLite, where a transaction costs no round trip, they are the same steps in a transaction.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Float, String, Text, bindparam, delete, func, insert, select, text, true, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from agentship.state.engine import autocommit, clock_sql, transaction
from agentship.state.locks import LOST, LeaseLocks, LeaseLostError
from agentship.state.schema import agent_messages, agent_sessions, locks

_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TurnStart:
    """A turn's start: its mark, and the history read as its lease was taken."""

    mark: int
    """The session's last item id before the turn (0: none)."""
    history: list[str]
    """The session's newest items (``limit`` at most), oldest first, as the SDK stored them."""
    count: int | None
    """How many items the session holds, if fewer than ``limit`` (None: ``limit`` or more)."""


def _last_item(key: str) -> Any:
    query = select(func.coalesce(func.max(agent_messages.c.id), 0)).where(agent_messages.c.session_id == key)
    return query.scalar_subquery()


def _take(leases: LeaseLocks, key: str) -> Any:
    """The lease's upsert, writing the turn's mark: the session's last item id, or the mark an
    interrupted turn left (the lease it let run out still carries it)."""
    interrupted_or_now = func.coalesce(locks.c.turn_mark, _last_item(key))
    statement = leases.upsert(key, {"turn_mark": _last_item(key)}, {"turn_mark": interrupted_or_now})
    return statement.returning(locks.c.turn_mark)


def _session_row(key: str) -> Any:
    """The session's row made, or touched (SQLite; PostgreSQL's is in :func:`_pg_start`)."""
    return (
        sqlite_insert(agent_sessions)
        .values(session_id=key)
        .on_conflict_do_update(
            index_elements=[agent_sessions.c.session_id], set_={"updated_at": text("CURRENT_TIMESTAMP")}
        )
    )


async def _newest(conn: AsyncConnection, key: str, limit: int | None) -> list[Any]:
    """The session's newest items, oldest first, ordered as the SDK's own read orders them."""
    query = (
        select(agent_messages.c.id, agent_messages.c.message_data)
        .where(agent_messages.c.session_id == key)
        .order_by(agent_messages.c.created_at.desc(), agent_messages.c.id.desc())
    )
    return list(reversed((await conn.execute(query if limit is None else query.limit(limit))).all()))


async def _read(conn: AsyncConnection, key: str, mark: int, limit: int | None) -> TurnStart:
    rows = await _newest(conn, key, limit)
    if rows and rows[-1].id > mark:  # an interrupted turn's items: take them back
        undone = await conn.execute(
            delete(agent_messages).where(agent_messages.c.session_id == key, agent_messages.c.id > mark)
        )
        _logger.warning("took back %d session items of an interrupted turn", undone.rowcount or 0)
        rows = await _newest(conn, key, limit)
    count = len(rows) if limit is None or len(rows) < limit else None
    return TurnStart(mark, [row.message_data for row in rows], count)


async def start_turn(leases: LeaseLocks, key: str, limit: int | None) -> TurnStart | None:
    """Take the lease on session ``key`` for a turn, mark the turn's start, make sure of the
    session's row, and read the history; None if another holder has the lease. On PostgreSQL
    two round trips: the lease and the session's row in one statement, then the read (the lease
    is held by then: nobody else writes the session)."""
    engine = leases.engine
    if engine.dialect.name != "postgresql":
        async with transaction(engine) as conn:
            row = (await conn.execute(_take(leases, key))).first()
            if row is None:
                return None
            await conn.execute(_session_row(key))
            return await _read(conn, key, int(row.turn_mark or 0), limit)
    async with autocommit(engine) as conn:
        taken = await conn.execute(
            _pg_start(), {"lease_key": key, "lease_owner": leases.owner, "lease_seconds": leases.lease_s}
        )
        row = taken.first()
        if row is None:
            return None
        return await _read(conn, key, int(row.turn_mark or 0), limit)


async def append_items(leases: LeaseLocks, key: str, data: Sequence[str]) -> list[int]:
    """Append items (the SDK's serialized form) to session ``key`` while its lease is this
    replica's and unexpired; their ids. Raises :class:`LeaseLostError` (nothing written) if not."""
    engine = leases.engine
    if engine.dialect.name != "postgresql":
        async with transaction(engine) as conn:
            if not await leases.fence(conn, key):
                raise LeaseLostError(LOST)
            rows = [{"session_id": key, "message_data": d} for d in data]
            return list(
                (await conn.execute(insert(agent_messages).returning(agent_messages.c.id), rows)).scalars()
            )
    async with autocommit(engine) as conn:
        written = await conn.execute(
            _pg_append(), {"lease_key": key, "lease_owner": leases.owner, "new_items": list(data)}
        )
        ids = list(written.scalars())
    if not ids:
        raise LeaseLostError(LOST)
    return ids


# PostgreSQL's statements, built once: SQLAlchemy builds and keys a statement on every call
# otherwise (a third of these operations' CPU, in a profile), and asyncpg prepares each one
# once per connection.
# (named apart from every column: an UPDATE given a parameter named as a column sets that column)
_KEY, _OWNER = bindparam("lease_key", type_=String), bindparam("lease_owner", type_=String)


@functools.cache
def _pg_start() -> Any:
    """The lease (with the turn's mark) and the session's row, in one statement."""
    now = clock_sql("postgresql")
    expires = now + bindparam("lease_seconds", type_=Float)
    last_item = (
        select(func.coalesce(func.max(agent_messages.c.id), 0))
        .where(agent_messages.c.session_id == _KEY)
        .scalar_subquery()
    )
    taken = (
        pg_insert(locks)
        .values(key=_KEY, owner=_OWNER, expires_at=expires, turn_mark=last_item)
        .on_conflict_do_update(
            index_elements=[locks.c.key],
            set_={
                "owner": _OWNER,
                "expires_at": expires,
                "turn_mark": func.coalesce(locks.c.turn_mark, last_item),
                "interrupt": None,
            },
            where=locks.c.expires_at < now,
        )
        .returning(locks.c.turn_mark)
        .cte("taken")
    )
    session = (
        pg_insert(agent_sessions)
        .from_select(["session_id"], select(_KEY).select_from(taken))
        .on_conflict_do_update(
            index_elements=[agent_sessions.c.session_id], set_={"updated_at": text("CURRENT_TIMESTAMP")}
        )
        .returning(agent_sessions.c.session_id)
        .cte("session")
    )
    return select(taken.c.turn_mark).add_cte(session)


@functools.cache
def _pg_append() -> Any:
    """The items, in order, if the lease is held: the lease's row locked by the same statement."""
    ours = [locks.c.key == _KEY, locks.c.owner == _OWNER, locks.c.expires_at > clock_sql("postgresql")]
    held = update(locks).where(*ours).values(owner=locks.c.owner).returning(locks.c.key).cte("held")
    new = (
        func.unnest(bindparam("new_items", type_=ARRAY(Text)))
        .table_valued("data", with_ordinality="n")
        .render_derived(name="new_items")
    )
    in_order = select(held.c.key, new.c.data).join_from(held, new, true()).order_by(new.c.n)
    return (
        insert(agent_messages)
        .from_select(["session_id", "message_data"], in_order)
        .returning(agent_messages.c.id)
    )
