"""The state store against a real SQLite file and a real PostgreSQL: schema, isolation, leases,
retention. Each test gets a fresh database."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from agentship.errors import SchemaTooNewError
from agentship.state import StateSettings, StateStore, StoredResponse, conversation_key
from agentship.state.engine import create_engine
from agentship.state.locks import ConversationBusyError, LeaseLocks
from agentship.state.migrate import HEAD, _config, ensure_schema, head_revision
from agentship.state.records import replay_state, trim_history
from agentship.state.schema import metadata
from agentship.state.settings import parse_url


def run[T](coro: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(coro())  # type: ignore[arg-type]


def settings(url: str, **overrides: Any) -> StateSettings:
    return StateSettings(parse_url(url), **overrides)


def record(store: StateStore, rid: str, user: str = "alice", **fields: Any) -> StoredResponse:
    output = [
        {
            "type": "message",
            "id": f"msg_{rid}",
            "role": "assistant",
            "content": [{"type": "output_text", "text": rid}],
        }
    ]
    values: dict[str, Any] = {
        "status": "completed",
        "request": {"input": "hi"},
        "input": [{"role": "user", "content": "hi"}],
        "history": [{"role": "user", "content": "hi"}],
        "output": output,
        "response": {"id": rid, "object": "response", "output": output},
        **fields,
    }
    return store.responses.new_record(id=rid, user_id=user, **values)


def test_migrations_create_exactly_the_schema_and_are_idempotent(state_url: str) -> None:
    async def check() -> list[Any]:
        engine = create_engine(settings(state_url))
        assert await ensure_schema(engine) == "0011"
        assert await ensure_schema(engine) == "0011"  # a second start changes nothing
        async with engine.connect() as conn:
            diff = await conn.run_sync(lambda c: compare_metadata(MigrationContext.configure(c), metadata))
        await engine.dispose()
        return list(diff)

    assert run(check) == []


_START = """
import asyncio, json, sys
from agentship.state.engine import create_engine
from agentship.state.migrate import ensure_schema
from agentship.state.settings import StateSettings, parse_url

async def start():
    engine = create_engine(StateSettings(parse_url(sys.argv[1])))
    try:
        return await ensure_schema(engine)
    finally:
        await engine.dispose()

revision = asyncio.run(start())
print(json.dumps({"revision": revision, "alembic": sorted(m for m in sys.modules if m.split(".")[0] == "alembic")}))
"""


def _start_in_a_fresh_process(state_url: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", _START, state_url], capture_output=True, text=True, check=True, timeout=120
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_a_store_at_the_head_revision_starts_without_alembic(
    state_url: str, request: pytest.FixtureRequest
) -> None:
    """The head alembic reads from the scripts is HEAD. A new store is created with alembic; a
    store already at HEAD is recognised without importing it; one behind HEAD (made by alembic at
    the revision before, with a response in it) is upgraded, its response kept."""
    assert head_revision() == HEAD
    created = _start_in_a_fresh_process(state_url)
    assert created["revision"] == HEAD and created["alembic"]
    assert _start_in_a_fresh_process(state_url) == {"revision": HEAD, "alembic": []}

    if state_url.startswith("sqlite"):
        behind = state_url.replace("state.db", "behind.db")
    else:
        server = request.getfixturevalue("postgres")
        behind = server.url(server.create_database())

    async def at_previous_revision() -> None:
        engine = create_engine(settings(behind))
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: command.upgrade(_config(c), "0010"))
            await conn.execute(
                text(
                    "INSERT INTO agentship_responses (id, user_id, status, background, request, input, history, "
                    "output, created_at, updated_at, expires_at, attempt, released, cancel_requested) VALUES "
                    "('resp_old', 'alice', 'completed', false, '{}', '[]', :history, '[]', 1, 1, 9e12, 1, 0, false)"
                ),
                {"history": json.dumps([{"role": "user", "content": "hi"}])},
            )
        await engine.dispose()

    run(at_previous_revision)
    upgraded = _start_in_a_fresh_process(behind)
    assert upgraded["revision"] == HEAD and upgraded["alembic"]
    assert _start_in_a_fresh_process(behind) == {"revision": HEAD, "alembic": []}

    async def kept() -> StoredResponse | None:
        store = await StateStore.open(settings(behind))
        try:
            return await store.responses.get("alice", "resp_old")
        finally:
            await store.aclose()

    old = run(kept)
    assert old is not None
    assert (old.history, old.parent_id, old.status) == (
        [{"role": "user", "content": "hi"}],
        None,
        "completed",
    )


def test_replicas_starting_together_migrate_once(state_url: str) -> None:
    async def together() -> list[str]:
        engines = [create_engine(settings(state_url)) for _ in range(3)]
        try:
            return list(await asyncio.gather(*(ensure_schema(e) for e in engines)))
        finally:
            for engine in engines:
                await engine.dispose()

    assert run(together) == ["0011"] * 3


def test_a_schema_newer_than_this_agentship_is_refused(state_url: str) -> None:
    async def check() -> None:
        engine = create_engine(settings(state_url))
        await ensure_schema(engine)
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        try:
            with pytest.raises(SchemaTooNewError, match="revision '9999', newer than this agentship knows"):
                await StateStore.open(settings(state_url))
        finally:
            await engine.dispose()

    run(check)


def test_responses_are_scoped_to_their_user(state_url: str) -> None:
    async def check() -> None:
        store = await StateStore.open(settings(state_url))
        try:
            await store.responses.save(record(store, "resp_a", user="alice"))
            assert (await store.responses.get("alice", "resp_a")) is not None
            assert await store.responses.get("bob", "resp_a") is None
            assert await store.responses.items("bob", ["msg_resp_a"]) == {}
            items = await store.responses.items("alice", ["msg_resp_a", "msg_missing"])
            assert list(items) == ["msg_resp_a"] and items["msg_resp_a"]["content"][0]["text"] == "resp_a"
            assert not await store.responses.delete("bob", "resp_a")
            assert await store.responses.delete("alice", "resp_a")
            assert await store.responses.get("alice", "resp_a") is None
            assert await store.responses.items("alice", ["msg_resp_a"]) == {}
        finally:
            await store.aclose()

    run(check)


def test_a_background_run_has_one_owner_at_a_time(state_url: str) -> None:
    async def check() -> None:
        a = await StateStore.open(settings(state_url), owner="replica-a")
        b = await StateStore.open(settings(state_url), owner="replica-b")
        try:
            rec = record(a, "resp_bg", status="queued", background=True)
            rec.response = None
            await a.responses.save(rec)
            claims = await asyncio.gather(
                a.responses.claim("resp_bg", "replica-a", 0.5), b.responses.claim("resp_bg", "replica-b", 0.5)
            )
            winner, loser = ("replica-a", b) if claims[0] else ("replica-b", a)
            assert sum(c is not None for c in claims) == 1
            assert await loser.responses.append("resp_bg", loser.owner, 0, [{"type": "x"}]) is False
            assert await (a if winner == "replica-a" else b).responses.append(
                "resp_bg", winner, 0, [{"type": "x"}]
            )
            await asyncio.sleep(0.7)  # the winner stops renewing: its lease runs out
            assert await loser.responses.orphans() == ["resp_bg"]
            taken = await loser.responses.claim("resp_bg", loser.owner, 5)
            assert taken is not None and taken.attempt == 2
            control = await (a if winner == "replica-a" else b).responses.heartbeat("resp_bg", winner, 5)
            assert control.still_owner is False
            await loser.responses.request_cancel("alice", "resp_bg")
            assert (await loser.responses.heartbeat("resp_bg", loser.owner, 5)).cancel_requested
            assert await loser.responses.events_after("resp_bg", -1) == [{"type": "x"}]
        finally:
            await a.aclose()
            await b.aclose()

    run(check)


def test_conversation_leases_serialise_turns_across_replicas(state_url: str) -> None:
    async def check() -> list[str]:
        a = await StateStore.open(settings(state_url), owner="replica-a")
        b = await StateStore.open(settings(state_url), owner="replica-b")
        order: list[str] = []
        key = conversation_key("alice", "c1")

        async def turn(store: StateStore, name: str) -> None:
            async with store.locks.hold(key):
                order.append(f"{name} in")
                await asyncio.sleep(0.3)
                order.append(f"{name} out")

        try:
            await asyncio.gather(turn(a, "a"), turn(b, "b"), turn(a, "a2"))
        finally:
            await a.aclose()
            await b.aclose()
        return order

    order = run(check)
    assert all(
        order[i].endswith("in") and order[i + 1] == order[i].replace("in", "out") for i in range(0, 6, 2)
    )


def test_a_dead_holders_lease_runs_out(state_url: str) -> None:
    async def check() -> None:
        store = await StateStore.open(settings(state_url))
        try:
            dead = LeaseLocks(store.engine, "dead-replica", lease_s=0.3)
            assert await dead.try_acquire("k")
            patient = LeaseLocks(store.engine, "live-replica", wait_s=0.1)
            with pytest.raises(ConversationBusyError):
                async with patient.hold("k"):
                    pass
            await asyncio.sleep(0.4)
            async with LeaseLocks(store.engine, "live-replica", wait_s=2).hold("k"):
                assert not await dead.renew("k")
        finally:
            await store.aclose()

    run(check)


def test_expired_state_is_purged(state_url: str) -> None:
    async def check() -> None:
        store = await StateStore.open(settings(state_url, ttl_s=0.2))
        try:
            await store.responses.save(record(store, "resp_old"))
            await store.conversations("llama-stack").put("k", {"server_id": "session-1"})
            await asyncio.sleep(0.3)
            assert await store.responses.get("alice", "resp_old") is None  # expired: unseen at once
            assert await store.purge() >= 3
            assert await store.conversations("llama-stack").get("k") is None
        finally:
            await store.aclose()

    run(check)


def test_history_is_cut_at_a_turn_boundary() -> None:
    turn = [
        {"role": "user", "content": "q"},
        {"type": "function_call", "call_id": "c", "name": "t", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c", "output": "o"},
        {"type": "message", "role": "assistant", "content": "a"},
    ]
    assert trim_history(turn * 3, 12) == turn * 3
    assert trim_history(turn * 3, 6) == turn  # never starts with a tool output
    assert trim_history(turn, 2) == turn[-1:]


def test_replay_state_knows_what_is_still_open() -> None:
    events = [
        {"type": "response.created", "sequence_number": 0},
        {"type": "response.output_item.added", "sequence_number": 1, "output_index": 0, "item": {"id": "rs"}},
        {"type": "response.output_item.done", "sequence_number": 2, "output_index": 0, "item": {"id": "rs"}},
        {
            "type": "response.output_item.added",
            "sequence_number": 3,
            "output_index": 1,
            "item": {"id": "msg"},
        },
    ]
    state = replay_state(events)
    assert (state.next_seq, state.next_index, list(state.open_items), state.terminal) == (4, 2, [1], False)


def test_keys_of_different_users_never_collide() -> None:
    assert conversation_key("a:b", "c") != conversation_key("a", "b:c")
    assert conversation_key('a"', "b") != conversation_key("a", '"b')
