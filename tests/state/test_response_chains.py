"""A conversation's history is kept once, in the chain of its stored responses (issue 21).

Before, every response continuing another through ``previous_response_id`` stored a copy of its
whole context (up to ``max_items``): a chain of n turns wrote n²/2 items. Now a chained
response stores only its own items and its parent's id, and the context is read back up the
chain. What the agent sees must not change, and no deletion, expiry or race may take a
descendant's context away. Each test runs on SQLite and PostgreSQL, through the server's own
``StoredResponses`` (prepare, record, save) where a turn is involved.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from uuid import uuid4

import pytest
from sqlalchemy import select, text, update

from agentship.server.protocols.responses.request import parse_body
from agentship.server.protocols.responses.stored import Prepared, StoredResponses
from agentship.state import StateStore, StoredResponse
from agentship.state.chains import anchor_children
from agentship.state.records import as_input_item, trim_history
from agentship.state.schema import responses
from tests.state.test_response_save import completed
from tests.state.test_store import run, settings


def _said(rid: str, words: str) -> dict[str, Any]:
    return {
        "type": "message",
        "id": f"msg_{rid[5:]}",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": words, "annotations": []}],
    }


async def _prepare(store: StateStore, user: str, words: str, previous: str | None) -> tuple[Any, Prepared]:
    body: dict[str, Any] = {"model": "agent", "input": [{"role": "user", "content": words}]}
    if previous is not None:
        body["previous_response_id"] = previous
    checked = parse_body(body)
    return checked, await StoredResponses(store).prepare(checked, user)


async def _turn(
    store: StateStore, user: str, words: str, previous: str | None = None
) -> tuple[str, Prepared]:
    """One turn as the server runs it: prepared against the store, answered, recorded, saved."""
    checked, prepared = await _prepare(store, user, words, previous)
    rid = f"resp_{uuid4().hex[:24]}"
    recorder = StoredResponses(store).recorder(checked, user, prepared, rid)
    recorder.output.append(as_input_item(_said(rid, f"re: {words}")))
    await recorder.save(completed(rid, f"msg_{rid[5:]}", f"re: {words}"))
    return rid, prepared


async def _three_turns(store: StateStore) -> tuple[str, str, str]:
    """alice's chain of three turns, "one", "two", "three": their response ids."""
    first, _ = await _turn(store, "alice", "one")
    second, _ = await _turn(store, "alice", "two", first)
    third, _ = await _turn(store, "alice", "three", second)
    return first, second, third


async def _row(store: StateStore, rid: str) -> Any:
    async with store.engine.connect() as conn:
        return (
            await conn.execute(
                select(responses.c.history, responses.c.parent_id).where(responses.c.id == rid)
            )
        ).one()


async def _context(store: StateStore, rec: StoredResponse) -> list[dict[str, Any]]:
    """What a response continuing ``rec`` is given, read as the server reads it: with the record
    itself, in one statement (which must give back the record exactly as ``get`` does)."""
    found = await store.responses.continued(rec.user_id, rec.id)
    assert found is not None
    assert found[0] == rec
    return found[1]


def _user(words: str) -> dict[str, Any]:
    return {"role": "user", "content": words}


def _reply(rid: str, words: str) -> dict[str, Any]:
    return as_input_item(_said(rid, f"re: {words}"))


@pytest.mark.parametrize("max_items", [5, 1000])
def test_a_chain_stores_each_turns_own_items_and_the_agent_sees_what_a_copy_would_give(
    state_url: str, max_items: int
) -> None:
    """Twelve turns through ``previous_response_id``: each stored response holds its own input
    item and its parent's id (the first, its whole input and none), and at every turn the agent
    is given exactly the history the former copy-per-response store gave it, trimmed at
    ``max_items`` (5: the chain is read only part of the way back) at a turn boundary."""

    async def check() -> None:
        store = await StateStore.open(settings(state_url, max_items=max_items))
        try:
            previous: str | None = None
            copied_context: list[dict[str, Any]] = []  # the former store's context of `previous`
            for n in range(12):
                words = f"turn {n}"
                rid, prepared = await _turn(store, "alice", words, previous)
                copied_history = trim_history([*copied_context, _user(words)], max_items)
                assert prepared.history == copied_history
                row = await _row(store, rid)
                if previous is None:
                    assert (row.history, row.parent_id) == ([_user(words)], None)
                else:
                    assert (row.history, row.parent_id) == ([_user(words)], previous)
                rec = await store.responses.get("alice", rid)
                assert rec is not None
                assert await store.responses.history(rec) == copied_history
                copied_context = [*copied_history, _reply(rid, words)]
                assert await _context(store, rec) == copied_context
                previous = rid
        finally:
            await store.aclose()

    run(check)


def test_deleting_a_response_leaves_its_descendants_their_whole_context(state_url: str) -> None:
    """Deleting the middle of a three-turn chain writes the third's whole history into it first:
    it keeps its context, stands on its own, and a fourth turn continues it. Another user's
    delete of the same id changes nothing."""

    async def check() -> None:
        store = await StateStore.open(settings(state_url))
        try:
            first, second, third = await _three_turns(store)
            rec = await store.responses.get("alice", third)
            assert rec is not None
            before = await _context(store, rec)
            assert before == [
                _user("one"), _reply(first, "one"), _user("two"), _reply(second, "two"),
                _user("three"), _reply(third, "three"),
            ]  # fmt: skip

            assert await store.responses.delete("bob", second) is False
            assert (await _row(store, third)).parent_id == second

            assert await store.responses.delete("alice", second) is True
            assert await store.responses.get("alice", second) is None
            row = await _row(store, third)
            assert (row.history, row.parent_id) == (before[:-1], None)
            rec = await store.responses.get("alice", third)
            assert rec is not None
            assert await _context(store, rec) == before
            assert (await _row(store, first)).parent_id is None  # the grandparent is untouched

            fourth, prepared = await _turn(store, "alice", "four", third)
            assert prepared.history == [*before, _user("four")]
            assert (await _row(store, fourth)).parent_id == third
        finally:
            await store.aclose()

    run(check)


def test_a_response_that_outlives_its_parent_keeps_its_context_through_the_purge(state_url: str) -> None:
    """A chain's first response expires before the second (each a TTL after its creation): the
    purge writes the second's whole history into it before deleting the first."""

    async def check() -> None:
        store = await StateStore.open(settings(state_url))
        try:
            first, second, third = await _three_turns(store)
            async with store.engine.begin() as conn:
                await conn.execute(update(responses).where(responses.c.id == first).values(expires_at=0.0))
            assert await store.purge() >= 1
            assert await store.responses.get_any(first) is None
            whole = [_user("one"), _reply(first, "one"), _user("two")]
            assert tuple(await _row(store, second)) == (whole, None)
            assert tuple(await _row(store, third)) == ([_user("three")], second)
            rec = await store.responses.get("alice", third)
            assert rec is not None
            assert await _context(store, rec) == [
                *whole, _reply(second, "two"), _user("three"), _reply(third, "three")
            ]  # fmt: skip

            # a whole chain expired at once goes at once, the child with its parent
            async with store.engine.begin() as conn:
                await conn.execute(
                    update(responses).where(responses.c.id.in_([second, third])).values(expires_at=0.0)
                )
            assert await store.purge() >= 2
            assert await store.responses.get_any(second) is None
            assert await store.responses.get_any(third) is None
        finally:
            await store.aclose()

    run(check)


@pytest.mark.parametrize("background", [False, True])
def test_a_response_saved_onto_a_parent_deleted_meanwhile_stands_on_its_own(
    state_url: str, background: bool
) -> None:
    """The parent is deleted after the turn read its context and before its response is saved
    (the foreign key refuses the chained save): the response is saved with its whole history,
    as the agent saw it. ``background``: the first save writes the run's opening events too."""

    async def check() -> None:
        store = await StateStore.open(settings(state_url))
        try:
            first, _ = await _turn(store, "alice", "one")
            checked, prepared = await _prepare(store, "alice", "two", first)
            assert prepared.parent_id == first
            assert await store.responses.delete("alice", first) is True
            rid = f"resp_{uuid4().hex[:24]}"
            rec = StoredResponses(store).recorder(checked, "alice", prepared, rid).record
            rec.output = [_reply(rid, "two")]
            events = [{"type": "response.queued", "sequence_number": 0}] if background else None
            await store.responses.save(rec, events, fresh=True)
            whole = [_user("one"), _reply(first, "one"), _user("two")]
            assert (rec.history, rec.parent_id, rec.inherited) == (whole, None, None)
            assert tuple(await _row(store, rid)) == (whole, None)
            if background:
                assert await store.responses.events_after(rid, -1) == events
        finally:
            await store.aclose()

    run(check)


def test_the_chain_is_read_within_its_user(state_url: str) -> None:
    """A record naming another user's response as its parent (never written by the server: a
    forged row) reads none of that user's items: every step of the walk is bound to the user."""

    async def check() -> None:
        store = await StateStore.open(settings(state_url))
        try:
            alices, _ = await _turn(store, "alice", "a secret")
            parent = alices
            for rid, words in (("resp_forged_root", "first"), ("resp_forged", "second")):
                forged = store.responses.new_record(
                    id=rid,
                    user_id="bob",
                    status="completed",
                    request={},
                    input=[],
                    history=[_user(words)],
                    output=[],
                    parent_id=parent,
                )
                await store.responses.save(forged, fresh=True)
                parent = rid
            for rid, context in (
                ("resp_forged_root", [_user("first")]),
                ("resp_forged", [_user("first"), _user("second")]),  # the walk's every step, too
            ):
                rec = await store.responses.get("bob", rid)
                assert rec is not None
                assert await _context(store, rec) == context
                assert await store.responses.history(rec) == context
        finally:
            await store.aclose()

    run(check)


def test_a_purge_under_way_and_a_save_onto_its_parent_race_without_losing_the_context(
    postgres_url: str,
) -> None:
    """PostgreSQL, two connections: the purge has locked the expired parent and anchored its
    children (none yet) when a chained save arrives. The save waits on the parent's row lock,
    the purge deletes the parent and commits, and the save, refused by the foreign key, stores
    its whole history instead. Nothing is left pointing at a deleted parent."""

    async def check() -> None:
        store = await StateStore.open(settings(postgres_url))
        try:
            first, _ = await _turn(store, "alice", "one")
            checked, prepared = await _prepare(store, "alice", "two", first)
            rid = f"resp_{uuid4().hex[:24]}"
            rec = StoredResponses(store).recorder(checked, "alice", prepared, rid).record
            rec.output = [_reply(rid, "two")]
            async with store.engine.begin() as purge:
                expired = select(responses.c.id).where(responses.c.id == first)
                await purge.execute(expired.with_for_update())
                await anchor_children(purge, expired, store.settings.max_items, live_after=0.0)
                save = asyncio.create_task(store.responses.save(rec, fresh=True))
                await _until_waiting_on_a_lock(store)
                await purge.execute(text("DELETE FROM agentship_responses WHERE id = :id"), {"id": first})
            await save
            whole = [_user("one"), _reply(first, "one"), _user("two")]
            assert tuple(await _row(store, rid)) == (whole, None)
        finally:
            await store.aclose()

    run(check)


async def _until_waiting_on_a_lock(store: StateStore, deadline_s: float = 60.0) -> None:
    """Until a session of this test's database waits on a row lock (the save, on the purge's)."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        async with store.engine.connect() as conn:
            if (await conn.execute(query)).scalar():
                return
        await asyncio.sleep(0.01)
    raise AssertionError("the save never waited on the purge's lock")


@pytest.fixture
def postgres_url(postgres: Any) -> str:
    return str(postgres.url(postgres.create_database()))


def test_a_stored_response_is_read_back_with_its_parent(state_url: str) -> None:
    """``get`` gives back the record as stored: its own items, and its parent."""

    async def check() -> None:
        store = await StateStore.open(settings(state_url))
        try:
            first, _ = await _turn(store, "alice", "one")
            second, _ = await _turn(store, "alice", "two", first)
            rec = await store.responses.get("alice", second)
            assert isinstance(rec, StoredResponse)
            assert (rec.history, rec.parent_id, rec.previous_response_id) == ([_user("two")], first, first)
            assert rec.output == [_reply(second, "two")]
        finally:
            await store.aclose()

    run(check)
