"""A conversation's turn in its Agents SDK session, all or nothing, under the conversation's lease.

A turn's items are written into the session before the turn is kept: all at once as it ends
(:class:`~agentship.openai_agents.memory.TurnSession` holds them until then), or earlier when the
SDK reads the session back during the turn. So that a turn that fails leaves nothing behind,
whatever kills it, between those writes and the keep too:

* :func:`~agentship.state.turn_io.start_turn` takes the lease and records on its row the
  session's last item id (the turn's *mark*), then reads the session's history: if the previous
  holder left its mark (it was killed, or lost the store, half-way), the mark stays that one,
  and the items after it, that turn's, are deleted: nobody else wrote since (every write checks
  the lease, :meth:`~agentship.state.locks.LeaseLocks.fence`);
* :func:`keep_turn` ends a turn that succeeded: the lease row goes with its mark, at once;
* :func:`undo_turn` ends a turn that failed: its items go with the lease row, at once (also
  when the lease ran out, as long as nobody took it over);
* :func:`kept_after_all` settles a :func:`keep_turn` whose answer was lost (the store went away
  during its commit): the commit may have landed, and a client told "failed" would send the turn
  again, recording it twice.

A write to the session outside a turn (the Conversations API's items) holds the same lease and
calls :func:`take_back` first, in its own fenced transaction.

Each is one transaction, and each checks that the lease is still this replica's.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from sqlalchemy import Float, String, bindparam, delete, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from agentship.state.engine import autocommit, clock_sql, db_now, transaction
from agentship.state.locks import LOST, LeaseLocks, LeaseLostError
from agentship.state.schema import agent_messages, locks, openai_conversations

_logger = logging.getLogger(__name__)


async def take_back(conn: AsyncConnection, key: str) -> None:
    """In a transaction fenced by ``key``'s lease: delete what an interrupted turn of session
    ``key`` left (the items after the mark its holder left on the lease row), and clear the mark."""
    stale = (await conn.execute(select(locks.c.turn_mark).where(locks.c.key == key))).scalar()
    if stale is None:
        return
    undone = await conn.execute(
        delete(agent_messages).where(agent_messages.c.session_id == key, agent_messages.c.id > stale)
    )
    await conn.execute(update(locks).where(locks.c.key == key).values(turn_mark=None))
    _logger.warning("took back %d session items of an interrupted turn", undone.rowcount or 0)


async def keep_turn(leases: LeaseLocks, key: str, expires_at: float | None = None) -> None:
    """The turn succeeded: drop the lease row and its mark in one go (this is the commit); with
    ``expires_at``, a conversation of the Conversations API lives until then.

    Raises :class:`LeaseLostError` if the lease is no longer this replica's: then the turn is
    not kept (the next holder takes it back).
    """
    if leases.engine.dialect.name == "postgresql":  # one statement: one round trip
        values: dict[str, Any] = {"lease_key": key, "lease_owner": leases.owner}
        if expires_at is not None:
            values["conversation_expires_at"] = expires_at
        async with autocommit(leases.engine) as conn:
            if not (await conn.execute(_pg_keep(expires_at is not None), values)).scalar():
                raise LeaseLostError(LOST)
        return
    ours = [locks.c.key == key, locks.c.owner == leases.owner, locks.c.expires_at > db_now(leases.engine)]
    async with transaction(leases.engine) as conn:
        if not (await conn.execute(delete(locks).where(*ours))).rowcount:
            raise LeaseLostError(LOST)
        if expires_at is not None:
            await conn.execute(
                update(openai_conversations)
                .where(openai_conversations.c.key == key)
                .values(expires_at=expires_at)
            )


@functools.cache
def _pg_keep(touch: bool) -> Any:
    """:func:`keep_turn` on PostgreSQL, built once: the lease row goes (if it is still ours) and,
    with ``touch``, the conversation's expiry moves, in one statement; how many rows went."""
    key, owner = bindparam("lease_key", type_=String), bindparam("lease_owner", type_=String)
    ours = [locks.c.key == key, locks.c.owner == owner, locks.c.expires_at > clock_sql("postgresql")]
    released = delete(locks).where(*ours).returning(locks.c.key).cte("released")
    kept = select(func.count()).select_from(released)
    if not touch:
        return kept
    touched = (
        update(openai_conversations)
        .where(openai_conversations.c.key.in_(select(released.c.key)))
        .values(expires_at=bindparam("conversation_expires_at", type_=Float))
        .returning(openai_conversations.c.key)
        .cte("touched")
    )
    return kept.add_cte(touched)


async def undo_turn(leases: LeaseLocks, key: str, mark: int) -> int:
    """The turn failed: delete the session items it added and let the conversation go; returns
    how many items went. Raises :class:`LeaseLostError` if another replica holds the lease now
    (it took the turn back when it began its own)."""
    async with transaction(leases.engine) as conn:
        if not await leases.fence(conn, key, unexpired=False):
            raise LeaseLostError(LOST)
        undone = await conn.execute(
            delete(agent_messages).where(agent_messages.c.session_id == key, agent_messages.c.id > mark)
        )
        await conn.execute(delete(locks).where(locks.c.key == key, locks.c.owner == leases.owner))
    return undone.rowcount or 0


async def kept_after_all(leases: LeaseLocks, key: str, last_item: int) -> bool | None:
    """Whether a turn whose :func:`keep_turn` lost its answer was kept, read from the store:
    True if it was (its last item, ``last_item``, is there and no lease row carries a mark from
    before it), False if it was not and cannot be any more, None if the lease row is still this
    replica's (the commit did not land; :func:`keep_turn` can be tried again)."""
    async with transaction(leases.engine) as conn:
        row = (await conn.execute(select(locks.c.owner, locks.c.turn_mark).where(locks.c.key == key))).first()
        if row is not None and row.owner == leases.owner:
            return None
        there = (await conn.execute(select(exists().where(agent_messages.c.id == last_item)))).scalar()
    # A row of another replica's with a mark before our items took our expired lease over: its
    # turn takes ours back when it begins. A row without a mark, or marked after our items, began
    # after our commit.
    inherited = row is not None and row.turn_mark is not None and row.turn_mark < last_item
    return bool(there) and not inherited
