"""Double-texting: what a new message does when a turn of its conversation is already running.

The policy, one of :data:`POLICIES`:

* ``enqueue`` (the default): the new turn waits for the running one, then runs;
* ``reject``: the new message is refused at once (:class:`~agentship.errors.TurnRejectedError`,
  a 409); the running turn goes on;
* ``interrupt``: the running turn is stopped, its partial output kept in the conversation as
  ``incomplete``, then the new turn runs;
* ``rollback``: the running turn is stopped and dropped from the conversation, then the new
  turn runs.

It works across replicas through the conversation's lease row: the new message marks it
(``agentship_locks.interrupt``), and the replica holding the lease sees the mark within
:data:`POLL_S` (one query per process, only while it runs turns), stops the turn, and lets
the conversation go; the new turn, waiting for the lease as ``enqueue`` does, then takes it.
The stopped turn answers :class:`~agentship.errors.TurnInterruptedError`, which ``/responses``
turns into a response whose status is ``incomplete`` (interrupt) or ``cancelled`` (rollback).

The request's policy travels to the lease in a context variable (:data:`DOUBLE_TEXTING`), set
by the server for each request (a header, a metadata key, or the server's default).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal, get_args

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from agentship.errors import StateError
from agentship.state.engine import autocommit
from agentship.state.schema import locks

_logger = logging.getLogger(__name__)

Policy = Literal["enqueue", "reject", "interrupt", "rollback"]
POLICIES: tuple[Policy, ...] = get_args(Policy)
STOPS: frozenset[str] = frozenset({"interrupt", "rollback"})
"""The policies that stop the running turn."""

DOUBLE_TEXTING: ContextVar[Policy | None] = ContextVar("agentship_double_texting", default=None)
"""The policy of the request being served (what a turn it starts does to a running one); None:
the process's default."""

_default: list[Policy] = ["enqueue"]


def set_default(value: Policy) -> None:
    """The policy of requests that name none (the server's ``--double-texting``), process-wide."""
    _default[0] = value


def current() -> Policy:
    """The policy of the request being served."""
    return DOUBLE_TEXTING.get() or _default[0]


POLL_S = 0.5
"""How often a process that runs turns looks for marks that stop them."""


def policy(value: str) -> Policy:
    """``value`` as a policy; ValueError naming the choices if it is not one."""
    if value not in POLICIES:
        raise ValueError(f"must be one of {', '.join(POLICIES)}, not {value!r}")
    return value  # type: ignore[return-value]


async def mark(engine: AsyncEngine, key: str, mode: Policy) -> bool:
    """Ask the holder of ``key``'s lease, whoever it is, to stop its turn (``mode``: interrupt or
    rollback); whether a lease row was there to mark."""
    async with autocommit(engine) as conn:
        marked = await conn.execute(update(locks).where(locks.c.key == key).values(interrupt=mode))
    return bool(marked.rowcount)


@dataclass
class Running:
    """A turn of this process that a newer message may stop."""

    task: asyncio.Task[object]
    mode: str | None = None
    done: bool = False
    """The turn is ending (keeping or undoing itself): nothing stops it any more."""

    def interrupt(self, mode: str) -> bool:
        if self.done or self.mode is not None:
            return False
        self.mode = mode
        self.task.cancel(f"agentship: {mode} by a newer message")
        return True


class Interrupts:
    """This process's stoppable turns, and the watch for marks on their lease rows."""

    def __init__(self, engine: AsyncEngine, owner: str) -> None:
        self.engine = engine
        self.owner = owner
        self._running: dict[str, Running] = {}
        self._watch: asyncio.Task[None] | None = None

    def running(self, key: str, task: asyncio.Task[object]) -> Running:
        """Register ``task`` as running a stoppable turn of ``key`` (until :meth:`ended`)."""
        entry = self._running[key] = Running(task)
        if self._watch is None or self._watch.done():
            self._watch = asyncio.create_task(self._watching(), name="agentship-double-texting")
        return entry

    def ended(self, key: str, entry: Running) -> None:
        if self._running.get(key) is entry:
            del self._running[key]

    def stop_local(self, key: str, mode: str) -> bool:
        """Stop ``key``'s turn if this process runs it; whether it did."""
        entry = self._running.get(key)
        return entry is not None and entry.interrupt(mode)

    async def _watching(self) -> None:
        """While this process runs turns: every :data:`POLL_S`, one query for marks on its rows."""
        query = select(locks.c.key, locks.c.interrupt).where(
            locks.c.owner == self.owner, locks.c.interrupt.is_not(None)
        )
        while self._running:
            await asyncio.sleep(POLL_S)
            if not self._running:
                return
            try:
                async with autocommit(self.engine) as conn:
                    marked = (await conn.execute(query)).all()
            except StateError:
                continue  # the store is away: the lease's own renewals handle that
            for key, mode in marked:
                if self.stop_local(key, mode):
                    _logger.info("a newer message stops a running turn (%s)", mode)

    async def aclose(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
