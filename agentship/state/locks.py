"""Leases that serialise the turns of one conversation across processes and replicas.

A lease is a row (key, owner, expires_at), taken by compare-and-swap: inserted if absent, or
overwritten if its holder let it expire. Expiry is the database's clock, never a replica's
own. The holder renews it while its turn runs (every third of the lease; a failed renewal is
retried with backoff while the lease still has time left), and a replica that dies simply
stops renewing: its lease runs out and the next turn goes ahead. No connection is held while a
turn runs, so a thousand conversations need no thousand connections. Within one process an
asyncio lock per key queues turns without polling.

A holder that cannot renew in time gives the turn up before the lease runs out: the task
holding it is cancelled, and :meth:`LeaseLocks.hold` raises :class:`LeaseLostError` instead.
Writes made under a lease check it in their own transaction (:meth:`LeaseLocks.fence`), so a
turn whose lease was taken can no longer write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from agentship.errors import StateError, TurnInterruptedError, TurnRejectedError
from agentship.state import double_texting
from agentship.state.double_texting import STOPS, Interrupts, Running
from agentship.state.engine import db_now, settled, transaction
from agentship.state.schema import locks

_logger = logging.getLogger(__name__)

Take = Callable[[], Awaitable[Any]]
"""Takes a lease, with what else belongs with it (in one transaction); None if it is held."""

LOST = "the conversation's lease was lost while its turn ran (the state store was unreachable for too long); retry"
BUSY = "a turn of this conversation is running, and this request's double-texting policy is reject; retry once it ended"
STOPPED = {
    "interrupt": "a newer message of the conversation interrupted this turn; its partial output is kept",
    "rollback": "a newer message of the conversation rolled this turn back; it is not kept",
}


class ConversationBusyError(StateError):
    """Another turn of the conversation held it for longer than the wait allowed."""


class LeaseLostError(StateError):
    """The lease could not be renewed in time, or another replica took it: the turn was stopped."""


@dataclass
class Lease:
    """A held lease, as its holder sees it."""

    key: str
    owner: str
    valid_until: float
    """Monotonic time before which the lease is surely still ours (from the last renewal's start)."""
    lost: bool = False
    released: bool = False
    """Let go already (with the turn's commit): nothing to release at the end."""
    unclean: bool = False
    """Its turn could not be ended cleanly: the row, with the turn's mark, stays for the next holder."""
    begun: Any = None
    """What the ``take`` that took the lease returned (:meth:`LeaseLocks.hold`)."""
    renewals: int = 0
    failed_renewals: int = 0
    stoppable: Running | None = None
    """A turn's registration with :class:`~agentship.state.double_texting.Interrupts` (a newer
    message may stop it), if it is one."""
    _keeper: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def interrupted(self) -> str | None:
        """How a newer message stopped the turn (``interrupt`` or ``rollback``), if it did."""
        return None if self.stoppable is None else self.stoppable.mode

    def stop_keeping(self) -> None:
        """The turn is done: from now on losing the lease, or a newer message, cancels nothing
        (the lease is released next)."""
        if self.stoppable is not None:
            self.stoppable.done = True
        if self._keeper is not None:
            self._keeper.cancel()


class LeaseLocks:
    def __init__(self, engine: AsyncEngine, owner: str, lease_s: float = 15.0, wait_s: float = 120.0) -> None:
        self.engine = engine
        self.owner = owner
        self.lease_s = lease_s
        self.wait_s = wait_s
        self.renew_every_s = lease_s / 3
        self.margin_s = lease_s / 5
        """A holder that has not renewed gives up this long before its lease runs out."""
        self._local: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self.interrupts = Interrupts(engine, owner)

    def upsert(
        self, key: str, also: dict[str, Any] | None = None, again: dict[str, Any] | None = None
    ) -> Any:
        """The statement that takes ``key``'s lease: inserted if absent, overwritten if its holder
        let it expire; no row changed if it is held. ``also``: more columns it writes into a new
        row; ``again``: into an expired one (``also`` if not given)."""
        now = db_now(self.engine)
        insert = pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        statement = insert(locks).values(
            key=key, owner=self.owner, expires_at=now + self.lease_s, **(also or {})
        )
        return statement.on_conflict_do_update(
            index_elements=[locks.c.key],
            set_={
                "owner": self.owner,
                "expires_at": now + self.lease_s,
                "interrupt": None,  # a mark for the holder that let it run out is not the new holder's
                **(again or also or {}),
            },
            where=locks.c.expires_at < now,
        )

    async def try_acquire(self, key: str) -> bool:
        """Take the lease if it is free; whether it was taken."""
        return (await self._try(key, None))[0]

    async def _try(self, key: str, take: Take | None) -> tuple[bool, Any]:
        """(taken, what ``take`` returned): ``take``, if given, takes the lease instead of
        :meth:`upsert`, with whatever else it does (it returns None if the lease is held)."""
        if take is not None:
            begun = await take()
            return begun is not None, begun
        async with transaction(self.engine) as conn:
            return bool((await conn.execute(self.upsert(key))).rowcount), None

    async def renew(self, key: str) -> bool:
        """Extend the lease; False if it is no longer ours (another replica took it)."""
        async with transaction(self.engine) as conn:
            renewed = await conn.execute(
                update(locks)
                .where(locks.c.key == key, locks.c.owner == self.owner)
                .values(expires_at=db_now(self.engine) + self.lease_s)
            )
        return bool(renewed.rowcount)

    async def fence(self, conn: AsyncConnection, key: str, *, unexpired: bool = True) -> bool:
        """Whether ``key`` is still ours (and, with ``unexpired``, not run out), checked in
        ``conn``'s transaction.

        It writes (a no-op update), so the row stays locked until the transaction ends (and on
        SQLite the writer is reserved before anything is read): nobody takes the lease between
        this check and the caller's writes. A lease that ran out but is still ours was taken by
        nobody: nobody else wrote under it either.
        """
        ours = [locks.c.key == key, locks.c.owner == self.owner]
        if unexpired:
            ours.append(locks.c.expires_at > db_now(self.engine))
        held = await conn.execute(update(locks).where(*ours).values(owner=locks.c.owner))
        return bool(held.rowcount)

    async def release(self, key: str) -> None:
        async with transaction(self.engine) as conn:
            await conn.execute(delete(locks).where(locks.c.key == key, locks.c.owner == self.owner))

    async def _acquire(self, key: str, take: Take | None, reject: bool = False) -> Lease:
        deadline = time.monotonic() + self.wait_s
        pause = 0.02
        while True:
            started = time.monotonic()
            taken, begun = await self._try(key, take)
            if taken:
                return Lease(key, self.owner, valid_until=started + self.lease_s, begun=begun)
            if reject:
                raise TurnRejectedError(BUSY)
            if time.monotonic() > deadline:
                raise ConversationBusyError(
                    f"the conversation is busy with another turn for over {self.wait_s:g}s; retry later"
                )
            await asyncio.sleep(pause)
            pause = min(0.5, pause * 2)

    async def _keep(self, lease: Lease, holder: asyncio.Task[Any]) -> None:
        while True:
            await asyncio.sleep(self.renew_every_s)
            if not await self._renewed(lease):
                lease.lost = True
                _logger.warning(
                    "lost the lease on a conversation while its turn ran (%d failed renewals); "
                    "stopping the turn",
                    lease.failed_renewals,
                )
                holder.cancel()
                return

    async def _renewed(self, lease: Lease) -> bool:
        """Renew, retrying with backoff while the lease has time left; False once it is lost."""
        pause = 0.05
        while (left := lease.valid_until - self.margin_s - time.monotonic()) > 0:
            started = time.monotonic()
            try:
                async with asyncio.timeout(left):
                    if not await self.renew(lease.key):
                        return False  # another replica holds it now
                lease.valid_until, lease.renewals = started + self.lease_s, lease.renewals + 1
                return True
            except (StateError, TimeoutError):
                lease.failed_renewals += 1
                _logger.info("could not renew a conversation's lease; retrying (%.1fs left)", left)
            await asyncio.sleep(min(pause, max(0.0, lease.valid_until - self.margin_s - time.monotonic())))
            pause = min(pause * 2, self.renew_every_s / 2)
        return False

    @contextlib.asynccontextmanager
    async def hold(self, key: str, take: Take | None = None, turn: bool = False) -> AsyncIterator[Lease]:
        """Hold ``key`` for the duration of the block, one holder at a time, across replicas.
        ``take`` takes the lease (see :meth:`_try`); what it returned is ``lease.begun``.

        If the lease is lost meanwhile, the block is cancelled and :class:`LeaseLostError` raised.
        A conversation's ``turn`` follows the request's double-texting policy
        (:mod:`~agentship.state.double_texting`): it may be refused while another turn runs, or
        stop that turn; and a newer message may stop it (the block is cancelled, and
        :class:`~agentship.errors.TurnInterruptedError` raised).
        """
        policy = double_texting.current() if turn else "enqueue"
        local = self._local.get(key)
        if local is None:
            local = self._local[key] = asyncio.Lock()
        if policy == "reject" and local.locked():
            raise TurnRejectedError(BUSY)
        if policy in STOPS and not self.interrupts.stop_local(key, policy):
            await double_texting.mark(self.engine, key, policy)
        async with local:
            lease = await self._acquire(key, take, reject=policy == "reject")
            holder = asyncio.current_task()
            assert holder is not None
            cancels = holder.cancelling()
            lease._keeper = asyncio.create_task(self._keep(lease, holder), name="agentship-lease")
            if turn:
                lease.stoppable = self.interrupts.running(key, holder)
            try:
                yield lease
            except BaseException as exc:
                if isinstance(exc, GeneratorExit) or not (lease.lost or lease.interrupted):
                    raise
                if holder.cancelling() > cancels and holder.uncancel() > cancels:
                    raise  # cancelled by someone else as well: that cancellation goes on
                if lease.lost:
                    raise LeaseLostError(LOST) from exc
                mode = str(lease.interrupted)
                raise TurnInterruptedError(STOPPED[mode], mode) from exc
            finally:
                lease.stop_keeping()
                if lease.stoppable is not None:
                    self.interrupts.ended(key, lease.stoppable)
                await settled(self._let_go(lease))

    async def _let_go(self, lease: Lease) -> None:
        if lease._keeper is not None:
            await asyncio.wait({lease._keeper})
        if not (lease.lost or lease.released or lease.unclean):
            with contextlib.suppress(StateError):
                await self.release(lease.key)
