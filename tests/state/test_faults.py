"""The state store under faults, against a real SQLite file and a real PostgreSQL: leases that
cannot be renewed, are taken over, or are judged by a replica's skewed clock; approvals answered
twice at once; a delete by the wrong user; a burst larger than the pool (issue 20)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import event, select, text, update

from agentship.errors import ConfigError, StateError
from agentship.state import StateSettings, StateStore, conversation_key
from agentship.state.engine import create_engine, transaction
from agentship.state.locks import LeaseLocks, LeaseLostError
from agentship.state.migrate import MIGRATIONS
from agentship.state.responses import RunStore
from agentship.state.runstates import paused_key
from agentship.state.schema import locks
from agentship.state.settings import parse_url
from tests.state.test_store import record, run, settings

HOUR = 3600.0


async def until(condition: Callable[[], bool], deadline_s: float = 30.0) -> None:
    """Wait for ``condition``, polling; fail the test if it does not hold within the deadline."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not hold within the deadline")
        await asyncio.sleep(0.02)


class FlakyLeases(LeaseLocks):
    """Leases whose next ``fail`` renewals fail as if the store were unreachable."""

    def __init__(self, *args: Any, fail: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fail = fail
        self.renewed = 0

    async def renew(self, key: str) -> bool:
        if self.fail > 0:
            self.fail -= 1
            raise StateError("the state store is unavailable; retry later")
        kept = await super().renew(key)
        self.renewed += kept
        return kept


async def lease_row(store: StateStore, key: str) -> tuple[str, int | None] | None:
    async with transaction(store.engine) as conn:
        row = (await conn.execute(select(locks.c.owner, locks.c.turn_mark).where(locks.c.key == key))).first()
    return None if row is None else (row.owner, row.turn_mark)


# -- item 4: leases ---------------------------------------------------------------------------------
def test_a_failed_renewal_is_retried_and_the_lease_kept(state_url: str) -> None:
    """Before: the first failed renewal ended the keeper; the lease ran out under the running turn
    and another replica's turn ran beside it."""

    async def check() -> tuple[list[str], int]:
        store = await StateStore.open(settings(state_url))
        key = conversation_key("alice", "flaky")
        holder = FlakyLeases(store.engine, "replica-a", lease_s=6.0, fail=2)
        rival = LeaseLocks(store.engine, "replica-b", lease_s=6.0, wait_s=60)
        order: list[str] = []

        async def turn() -> None:
            async with holder.hold(key):
                order.append("a in")
                await until(lambda: holder.renewed >= 3 or "b in" in order)  # > one lease long
                order.append("a out")

        async def other_turn() -> None:
            await until(lambda: "a in" in order)
            async with rival.hold(key):
                order.append("b in")

        try:
            await asyncio.gather(turn(), other_turn())
        finally:
            await store.aclose()
        return order, holder.fail

    assert run(check) == (["a in", "a out", "b in"], 0)  # (and both injected failures happened)


def test_a_lease_that_cannot_be_renewed_stops_its_turn_before_it_runs_out(state_url: str) -> None:
    async def check() -> None:
        store = await StateStore.open(settings(state_url))
        key = conversation_key("alice", "unreachable")
        holder = FlakyLeases(store.engine, "replica-a", lease_s=8.0, fail=10**6)
        seen: dict[str, float] = {}

        async def turn() -> None:
            async with holder.hold(key) as lease:
                seen["valid_until"] = lease.valid_until
                try:
                    await asyncio.Event().wait()  # a turn that would run on and on
                except asyncio.CancelledError:
                    seen["cancelled_at"] = time.monotonic()
                    raise

        try:
            with pytest.raises(LeaseLostError, match="lease was lost while its turn ran") as lost:
                async with asyncio.timeout(30):
                    await turn()
            assert isinstance(lost.value, StateError)  # a 503 state_unavailable, to retry
            assert seen["cancelled_at"] < seen["valid_until"]  # given up before it could run out
            assert await lease_row(store, key) == ("replica-a", None)  # not ours to release now
        finally:
            await store.aclose()

    run(check)


def test_a_lease_taken_over_stops_its_turn_at_the_next_renewal(state_url: str) -> None:
    async def check() -> None:
        store = await StateStore.open(settings(state_url))
        key = conversation_key("alice", "taken")
        holder = LeaseLocks(store.engine, "replica-a", lease_s=3.0)
        try:
            with pytest.raises(LeaseLostError):
                async with asyncio.timeout(30), holder.hold(key):
                    async with transaction(store.engine) as conn:  # as a replica that took it over
                        await conn.execute(update(locks).where(locks.c.key == key).values(owner="replica-b"))
                    await asyncio.Event().wait()
            assert await lease_row(store, key) == ("replica-b", None)  # the new holder's, untouched
        finally:
            await store.aclose()

    run(check)


def test_conversation_leases_are_judged_by_the_databases_clock(
    state_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replica whose clock is an hour slow writes a lease that, on its own clock, would already
    have run out for every other replica."""
    real_time = time.time

    async def check() -> None:
        store = await StateStore.open(settings(state_url))
        key = conversation_key("alice", "clocks")
        try:
            monkeypatch.setattr(time, "time", lambda: real_time() - HOUR)
            assert await LeaseLocks(store.engine, "slow-replica", lease_s=60).try_acquire(key)
            monkeypatch.setattr(time, "time", real_time)
            assert not await LeaseLocks(store.engine, "replica-b").try_acquire(key)
            assert await lease_row(store, key) == ("slow-replica", None)
        finally:
            await store.aclose()

    run(check)


def test_background_run_leases_are_judged_by_the_databases_clock(state_url: str) -> None:
    """Before: a replica an hour slow wrote leases that others took as an hour expired, and took
    over every run it was running; one an hour fast took over every other replica's runs."""

    async def check() -> None:
        store = await StateStore.open(settings(state_url))
        slow = RunStore(store.engine, store.settings, store.outbox, clock=lambda: time.time() - HOUR)
        fast = RunStore(store.engine, store.settings, store.outbox, clock=lambda: time.time() + HOUR)
        try:
            queued = record(store, "resp_clock", status="queued", background=True, response=None)
            queued.owner, queued.lease_until = "slow-replica", slow.clock() + 30  # as serving submits it
            await slow.save(queued)
            assert await fast.orphans() == []
            assert await fast.claim("resp_clock", "fast-replica", 30) is None
            assert (await slow.heartbeat("resp_clock", "slow-replica", 30)).still_owner
            assert await fast.orphans() == []
            await slow.release("resp_clock", "slow-replica")  # given up: anyone may take it at once
            assert await fast.orphans() == ["resp_clock"]
            taken = await fast.claim("resp_clock", "fast-replica", 30)
            assert taken is not None and (taken.owner, taken.attempt) == ("fast-replica", 1)
            assert await slow.claim("resp_clock", "slow-replica", 30) is None  # held, on any clock
        finally:
            await store.aclose()

    run(check)


# -- item 5: approvals -------------------------------------------------------------------------------
def test_a_paused_run_is_taken_by_exactly_one_of_its_answers(state_url: str) -> None:
    async def check() -> None:
        a = await StateStore.open(settings(state_url), owner="replica-a")
        b = await StateStore.open(settings(state_url), owner="replica-b")
        state = {
            "$schemaVersion": "1.0",
            "interruptions": [{"call_id": "call_1"}, {"call_id": "call_2"}],
            "é": [1.5],
        }
        try:
            run_id = await a.paused.put("alice", ["call_1", "call_2"], state)
            takes = await asyncio.gather(
                a.paused.take("alice", "call_1"),
                b.paused.take("alice", "call_1"),
                b.paused.take("alice", "call_2"),
            )
            won = [t for t in takes if t is not None]
            assert len(won) == 1
            taken = won[0]
            assert (taken.state, taken.run_id) == (state, run_id)
            assert {key for key, _ in taken.rows} == {
                paused_key("alice", "call_1"),
                paused_key("alice", "call_2"),
            }
            assert len({expires for _, expires in taken.rows}) == 1
            assert await a.paused.take("alice", "call_2") is None  # the whole run went at once
            await a.paused.restore(taken)  # its resumption failed: it can be answered again
            assert await b.paused.take("bob", "call_1") is None  # never another user's
            again = await b.paused.take("alice", "call_2")
            assert again is not None and (again.state, again.run_id, set(again.rows)) == (
                state,
                run_id,
                set(taken.rows),
            )
        finally:
            await a.aclose()
            await b.aclose()

    run(check)


def upgrade_to_0003(connection: Any) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "0003")


def test_runs_paused_before_revision_0004_are_still_taken_once(state_url: str) -> None:
    """The migration adds run ids to a store with paused runs and leases in it: those keep working."""

    async def check() -> None:
        engine = create_engine(settings(state_url))
        async with transaction(engine) as conn:
            await conn.run_sync(upgrade_to_0003)
            await conn.execute(
                text("INSERT INTO agentship_run_states (key, state, expires_at) VALUES (:k, :s, :e)"),
                {"k": paused_key("alice", "call_old"), "s": '{"old": true}', "e": time.time() + HOUR},
            )
            await conn.execute(
                text("INSERT INTO agentship_locks (key, owner, expires_at) VALUES ('k', 'replica-a', 0)")
            )
        await engine.dispose()
        store = await StateStore.open(settings(state_url))  # upgrades to 0004
        try:
            taken = await store.paused.take("alice", "call_old")
            assert taken is not None and (taken.state, taken.run_id) == ({"old": True}, None)
            assert await store.paused.take("alice", "call_old") is None
            assert await lease_row(store, "k") == ("replica-a", None)
            assert await LeaseLocks(store.engine, "replica-b").try_acquire("k")  # it had run out
        finally:
            await store.aclose()

    run(check)


# -- item 17: delete --------------------------------------------------------------------------------
def test_another_users_delete_removes_nothing(state_url: str) -> None:
    """Before: bob's delete of alice's response removed its items and events, then found no row."""

    async def check() -> None:
        store = await StateStore.open(settings(state_url), owner="replica-a")
        events = [
            {"type": "response.created", "sequence_number": 0, "response": {"id": "resp_del"}},
            {"type": "response.in_progress", "sequence_number": 1, "response": {"id": "resp_del"}},
        ]
        try:
            rec = record(store, "resp_del", user="alice", background=True, owner="replica-a")
            await store.responses.save(rec)
            assert await store.responses.append("resp_del", "replica-a", 0, events)
            assert await store.responses.delete("bob", "resp_del") is False
            assert await store.responses.get("alice", "resp_del") == rec
            assert await store.responses.items("alice", ["msg_resp_del"]) == {
                "msg_resp_del": rec.response["output"][0]  # type: ignore[index]
            }
            assert await store.responses.events_after("resp_del", -1) == events
            assert await store.responses.delete("alice", "resp_del") is True
            assert await store.responses.get("alice", "resp_del") is None
            assert await store.responses.items("alice", ["msg_resp_del"]) == {}
            assert await store.responses.events_after("resp_del", -1) == []
        finally:
            await store.aclose()

    run(check)


# -- item 18: pools ---------------------------------------------------------------------------------
def test_an_engine_opens_at_most_its_pool_and_overflow(state_url: str) -> None:
    async def check() -> int:
        environ = {
            "AGENTSHIP_STATE_URL": state_url,
            "AGENTSHIP_STATE_POOL_SIZE": "2",
            "AGENTSHIP_STATE_POOL_OVERFLOW": "1",
        }
        state_settings = StateSettings.from_environ(environ)
        assert state_settings is not None
        assert (state_settings.pool_size, state_settings.pool_overflow) == (2, 1)
        engine = create_engine(state_settings)
        out, peak = 0, 0

        def checkout(*_: Any) -> None:
            nonlocal out, peak
            out += 1
            peak = max(peak, out)

        def checkin(*_: Any) -> None:
            nonlocal out
            out -= 1

        event.listen(engine.sync_engine, "checkout", checkout)
        event.listen(engine.sync_engine, "checkin", checkin)

        async def query() -> int:
            async with transaction(engine) as conn:
                await until(lambda: peak >= 3)  # hold the connection until the pool is all out
                return int((await conn.execute(text("SELECT 1"))).scalar() or 0)

        sqlite = state_settings.is_sqlite
        try:
            assert engine.pool.size() == (1 if sqlite else 2)  # type: ignore[attr-defined]
            if sqlite:  # one connection, whatever the settings: SQLite has one writer at a time
                assert await asyncio.gather(*(plain(engine) for _ in range(12))) == [1] * 12
            else:
                assert await asyncio.gather(*(query() for _ in range(12))) == [1] * 12
        finally:
            await engine.dispose()
        return peak

    assert run(check) == (1 if state_url.startswith("sqlite") else 3)  # all used, never more


async def plain(engine: Any) -> int:
    async with transaction(engine) as conn:
        await asyncio.sleep(0.01)
        return int((await conn.execute(text("SELECT 1"))).scalar() or 0)


def test_pool_settings_are_checked() -> None:
    url = "postgresql://agent@db/agents"
    with pytest.raises(ConfigError, match="AGENTSHIP_STATE_POOL_SIZE must be an integer >= 1, not '0'"):
        StateSettings.from_environ({"AGENTSHIP_STATE_URL": url, "AGENTSHIP_STATE_POOL_SIZE": "0"})
    with pytest.raises(ConfigError, match="AGENTSHIP_STATE_POOL_OVERFLOW must be an integer >= 0, not 'x'"):
        StateSettings.from_environ({"AGENTSHIP_STATE_URL": url, "AGENTSHIP_STATE_POOL_OVERFLOW": "x"})
    defaults = StateSettings.from_environ({"AGENTSHIP_STATE_URL": url})
    assert defaults == StateSettings(parse_url(url), pool_size=5, pool_overflow=5, lease_s=15.0)
