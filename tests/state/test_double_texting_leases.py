"""Double-texting at the lease (:mod:`agentship.state.double_texting`), against a real SQLite file
and a real PostgreSQL: two lease holders with different owners stand for two replicas.

* ``reject`` refuses at once while another replica's turn runs, and leaves that turn alone;
* ``interrupt`` and ``rollback`` stop the other replica's turn (it raises
  :class:`TurnInterruptedError` with the mode), then take the lease; the mark is gone;
* a mark left on a lease that ran out is not the next holder's;
* a holder that is not a turn (a Conversations API write) is never stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from sqlalchemy import select

from agentship.errors import TurnInterruptedError, TurnRejectedError
from agentship.state import StateStore
from agentship.state.double_texting import DOUBLE_TEXTING, Policy, mark
from agentship.state.locks import LeaseLocks
from agentship.state.schema import locks
from tests.state.test_store import run, settings


async def row(store: StateStore, key: str) -> tuple[str, str | None] | None:
    async with store.engine.connect() as conn:
        found = (
            await conn.execute(select(locks.c.owner, locks.c.interrupt).where(locks.c.key == key))
        ).first()
    return None if found is None else (found.owner, found.interrupt)


async def running_turn(leases: LeaseLocks, key: str, started: asyncio.Event, turn: bool = True) -> str:
    """Hold ``key`` as a turn for up to 30 s; how it ended."""
    try:
        async with leases.hold(key, turn=turn):
            started.set()
            await asyncio.sleep(30)
    except TurnInterruptedError as exc:
        return exc.mode
    return "ran to its end"


async def stopped(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def with_policy(policy: Policy, call: Any) -> Any:
    DOUBLE_TEXTING.set(policy)  # this task's own context: the request's policy
    return await call


def test_reject_refuses_at_once_and_leaves_the_running_turn(state_url: str) -> None:
    async def check() -> None:
        store = await StateStore.open(settings(state_url))
        a, b = LeaseLocks(store.engine, "replica-a"), LeaseLocks(store.engine, "replica-b", wait_s=3600)
        try:
            started = asyncio.Event()
            turn = asyncio.create_task(running_turn(a, "k", started))
            await started.wait()

            async def second() -> None:
                async with b.hold("k", turn=True):
                    pass

            with pytest.raises(TurnRejectedError) as refused:  # at once: b would wait an hour to enqueue
                await asyncio.create_task(with_policy("reject", second()))
            assert refused.value.message == (
                "a turn of this conversation is running, and this request's double-texting policy "
                "is reject; retry once it ended"
            )
            assert await row(store, "k") == ("replica-a", None)
            assert not turn.done()
            await stopped(turn)
        finally:
            await store.aclose()

    run(check)


@pytest.mark.parametrize("policy", ["interrupt", "rollback"])
def test_a_stopping_policy_stops_the_other_replicas_turn_then_takes_the_lease(
    state_url: str, policy: Policy
) -> None:
    async def check() -> None:
        store = await StateStore.open(settings(state_url))
        a, b = LeaseLocks(store.engine, "replica-a"), LeaseLocks(store.engine, "replica-b")
        try:
            started = asyncio.Event()
            turn = asyncio.create_task(running_turn(a, "k", started))
            await started.wait()
            seen: list[Any] = []

            async def second() -> None:
                async with b.hold("k", turn=True):
                    seen.append(await row(store, "k"))

            await asyncio.wait_for(asyncio.create_task(with_policy(policy, second())), timeout=10)
            assert await turn == policy
            assert seen == [("replica-b", None)]  # b's lease, without the mark that stopped a's
            assert await row(store, "k") is None  # let go
        finally:
            await store.aclose()

    run(check)


def test_a_mark_on_a_lease_that_ran_out_is_not_the_next_holders(state_url: str) -> None:
    async def check() -> None:
        store = await StateStore.open(settings(state_url))
        dead = LeaseLocks(store.engine, "dead-replica", lease_s=0.3)
        live = LeaseLocks(store.engine, "live-replica", wait_s=5)
        try:
            assert await dead.try_acquire("k")
            assert await mark(store.engine, "k", "interrupt")
            assert await row(store, "k") == ("dead-replica", "interrupt")
            await asyncio.sleep(0.4)
            started = asyncio.Event()
            turn = asyncio.create_task(running_turn(live, "k", started))
            await started.wait()
            assert await row(store, "k") == ("live-replica", None)
            await asyncio.sleep(1.2)  # two of the watch's looks
            assert not turn.done()
            await stopped(turn)
            assert not await mark(store.engine, "gone", "rollback")  # no lease, nothing marked
        finally:
            await store.aclose()

    run(check)


def test_a_holder_that_is_not_a_turn_is_never_stopped(state_url: str) -> None:
    async def check() -> None:
        store = await StateStore.open(settings(state_url))
        a, b = LeaseLocks(store.engine, "replica-a"), LeaseLocks(store.engine, "replica-b", wait_s=5)
        try:
            started = asyncio.Event()
            write = asyncio.create_task(running_turn(a, "k", started, turn=False))
            await started.wait()

            async def second() -> None:
                async with b.hold("k", turn=True):
                    pass

            waiting = asyncio.create_task(with_policy("interrupt", second()))
            await asyncio.sleep(1.2)
            assert not write.done() and not waiting.done()
            assert await row(store, "k") == ("replica-a", "interrupt")
            await stopped(write)
            await asyncio.wait_for(waiting, timeout=5)  # the write ended: the turn runs
        finally:
            await store.aclose()

    run(check)
