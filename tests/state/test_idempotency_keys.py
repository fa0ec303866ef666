"""Idempotency keys in the state store, on a real SQLite file and a real PostgreSQL: one claimant
among concurrent requests and replicas, the answer read back exactly as written, a dead
claimant's key taken over once, expiry and purge."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select, update

from agentship.errors import ConfigError
from agentship.state import StateSettings, StateStore
from agentship.state.idempotency import Claimed, KeyRecord, Taken
from agentship.state.schema import idempotency_keys
from agentship.state.settings import parse_url

ANSWER = {
    "status": 200,
    "headers": {"retry-after": "1"},
    "body": '{"id": "resp_1", "output": []}',
    "frames": None,
}


async def _open(url: str, owner: str, **overrides: Any) -> StateStore:
    return await StateStore.open(StateSettings(parse_url(url), **overrides), owner=owner)


def test_of_concurrent_claims_on_two_replicas_exactly_one_runs(state_url: str) -> None:
    async def check() -> list[Claimed | Taken]:
        a, b = await _open(state_url, "replica-a"), await _open(state_url, "replica-b")
        try:
            claims = [a.idempotency.claim("alice", "k1", "f" * 64) for _ in range(4)]
            claims += [b.idempotency.claim("alice", "k1", "f" * 64) for _ in range(4)]
            return list(await asyncio.gather(*claims))
        finally:
            await a.aclose()
            await b.aclose()

    outcomes = asyncio.run(check())
    assert sum(isinstance(o, Claimed) for o in outcomes) == 1
    for taken in (o for o in outcomes if isinstance(o, Taken)):
        record = taken.record
        assert (record.user_id, record.key, record.fingerprint, record.status) == (
            "alice",
            "k1",
            "f" * 64,
            "running",
        )
        assert record.owner in ("replica-a", "replica-b")
        assert (record.answer, record.lease_expired) == (None, False)


def test_the_answer_is_read_back_exactly_and_keys_are_per_user(state_url: str) -> None:
    async def check() -> None:
        a, b = await _open(state_url, "replica-a"), await _open(state_url, "replica-b")
        try:
            assert isinstance(await a.idempotency.claim("alice", "k", "1" * 64), Claimed)
            assert isinstance(await b.idempotency.claim("bob", "k", "2" * 64), Claimed)  # bob's own key
            assert await b.idempotency.finish("alice", "k", ANSWER) is False  # not b's claim
            assert await a.idempotency.finish("alice", "k", ANSWER) is True
            again = await b.idempotency.claim("alice", "k", "1" * 64)
            assert again == Taken(KeyRecord("alice", "k", "1" * 64, "done", "replica-a", ANSWER, False))
            assert await b.idempotency.get("bob", "k") == KeyRecord(
                "bob", "k", "2" * 64, "running", "replica-b", None, False
            )
            assert await a.idempotency.get("carol", "k") is None
        finally:
            await a.aclose()
            await b.aclose()

    asyncio.run(check())


def test_a_released_key_is_claimed_again(state_url: str) -> None:
    async def check() -> None:
        a = await _open(state_url, "replica-a")
        try:
            assert isinstance(await a.idempotency.claim("alice", "k", "1" * 64), Claimed)
            await a.idempotency.release("alice", "k")
            assert await a.idempotency.get("alice", "k") is None
            assert isinstance(await a.idempotency.claim("alice", "k", "1" * 64), Claimed)
        finally:
            await a.aclose()

    asyncio.run(check())


def test_a_dead_claimants_key_is_taken_over_once_and_it_can_no_longer_answer(state_url: str) -> None:
    async def check() -> None:
        a = await _open(state_url, "replica-a", lease_s=1.0)
        b = await _open(state_url, "replica-b", lease_s=1.0)
        c = await _open(state_url, "replica-c", lease_s=1.0)
        try:
            assert isinstance(await a.idempotency.claim("alice", "k", "1" * 64), Claimed)
            held = await b.idempotency.claim("alice", "k", "1" * 64)
            assert isinstance(held, Taken) and held.record.lease_expired is False
            await asyncio.sleep(1.5)  # a stops renewing (it died)
            assert (await b.idempotency.get("alice", "k")) == KeyRecord(
                "alice", "k", "1" * 64, "running", "replica-a", None, True
            )
            other = await b.idempotency.claim("alice", "k", "9" * 64)  # another body does not take it
            assert isinstance(other, Taken) and other.record.owner == "replica-a"
            claims = await asyncio.gather(
                b.idempotency.claim("alice", "k", "1" * 64), c.idempotency.claim("alice", "k", "1" * 64)
            )
            assert sum(isinstance(x, Claimed) for x in claims) == 1
            assert await a.idempotency.finish("alice", "k", ANSWER) is False  # a's late answer is refused
            assert await a.idempotency.renew("alice", "k") is False
        finally:
            for store in (a, b, c):
                await store.aclose()

    asyncio.run(check())


def test_an_expired_key_is_claimed_afresh_and_purged(state_url: str) -> None:
    async def check() -> None:
        a = await _open(state_url, "replica-a")
        try:
            for key in ("old", "older"):
                assert isinstance(await a.idempotency.claim("alice", key, "1" * 64), Claimed)
                assert await a.idempotency.finish("alice", key, ANSWER)
            async with a.engine.begin() as conn:
                await conn.execute(update(idempotency_keys).values(expires_at=1.0))
            # past its TTL, the key is anyone's, for any body
            assert isinstance(await a.idempotency.claim("alice", "old", "2" * 64), Claimed)
            assert await a.purge() >= 1
            async with a.engine.connect() as conn:
                left = (await conn.execute(select(idempotency_keys.c.key))).scalars().all()
            assert left == ["old"]
        finally:
            await a.aclose()

    asyncio.run(check())


def test_the_ttl_comes_from_the_environment_and_is_checked() -> None:
    assert StateSettings.from_environ({}).idempotency_ttl_s == 86400.0  # type: ignore[union-attr]
    assert StateSettings.from_environ({"AGENTSHIP_IDEMPOTENCY_TTL_S": "60"}).idempotency_ttl_s == 60.0  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="AGENTSHIP_IDEMPOTENCY_TTL_S"):
        StateSettings.from_environ({"AGENTSHIP_IDEMPOTENCY_TTL_S": "0"})
