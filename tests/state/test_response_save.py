"""A response's save rides out a short outage of the store (issue 20, item 6's retry side).

A `/responses` turn that continues a conversation is kept in the conversation's session before
the response is stored. Before: a store that was restarting at that moment made the request a
503, and the client's retry recorded the kept turn a second time (the large fault campaign found
it). Now the save is tried again for about 10 s, and the stored record is read back whole.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from openai.types.responses import Response, ResponseOutputMessage, ResponseOutputText
from sqlalchemy import text

from agentship.errors import StateError
from agentship.server.protocols.responses import stored
from agentship.server.protocols.responses.events import wire
from agentship.state import StateStore
from tests.state.test_store import record, settings


def completed(rid: str, message_id: str = "msg_saved", words: str = "saved once") -> Response:
    """A completed response whose output is one assistant message, as openai-python types it."""
    return Response(
        id=rid,
        object="response",
        created_at=1_700_000_000,
        model="agent",
        status="completed",
        output=[
            ResponseOutputMessage(
                id=message_id,
                type="message",
                role="assistant",
                status="completed",
                content=[ResponseOutputText(type="output_text", text=words, annotations=[])],
            )
        ],
        parallel_tool_calls=True,
        tool_choice="auto",
        tools=[],
    )


async def _with_store(
    state_url: str, failures: int, monkeypatch: pytest.MonkeyPatch, landed: bool = False
) -> tuple[Any, int]:
    """Save through ``failures`` failed tries (each, with ``landed``, one whose commit landed
    and whose answer was lost), and read the record back."""
    store = await StateStore.open(settings(state_url))
    try:
        real_save = store.responses.save
        calls = 0

        async def away_then_back(rec: Any, **options: Any) -> None:
            nonlocal calls
            calls += 1
            if calls <= failures:
                if landed:
                    await real_save(rec, **options)
                raise StateError("the state store is unavailable; retry later")
            await real_save(rec, **options)

        monkeypatch.setattr(store.responses, "save", away_then_back)
        recorder = stored.Recorder(store, record(store, "resp_saved", status="in_progress"))
        final = completed("resp_saved")
        try:
            await recorder.save(final)
        except StateError as exc:
            return exc, calls
        kept = await store.responses.get("alice", "resp_saved")
        assert kept is not None
        assert (kept.status, kept.response) == ("completed", wire(final))
        item = wire(final)["output"][0]
        assert await store.responses.items("alice", [item["id"], "msg_other"]) == {item["id"]: item}
        return kept, calls
    finally:
        await store.aclose()


def test_a_save_during_a_short_outage_is_stored_once_the_store_is_back(
    state_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stored, "SAVE_RETRY_PAUSES_S", (0.01, 0.02, 0.04))
    kept, calls = asyncio.run(_with_store(state_url, 2, monkeypatch))
    assert not isinstance(kept, StateError) and calls == 3


def test_a_save_whose_answer_was_lost_is_made_again_over_what_landed(
    state_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first try's commit landed, its answer did not: the next try replaces the record and
    its items (a brand-new record's first try skips clearing its items; a retry never does)."""
    monkeypatch.setattr(stored, "SAVE_RETRY_PAUSES_S", (0.01, 0.02, 0.04))
    kept, calls = asyncio.run(_with_store(state_url, 1, monkeypatch, landed=True))
    assert not isinstance(kept, StateError) and calls == 2


def test_a_store_that_stays_away_fails_the_save_after_its_tries(
    state_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stored, "SAVE_RETRY_PAUSES_S", (0.01, 0.02, 0.04))
    error, calls = asyncio.run(_with_store(state_url, 99, monkeypatch))
    assert isinstance(error, StateError) and calls == 4


def test_the_save_waits_about_ten_seconds_in_all() -> None:
    assert sum(stored.SAVE_RETRY_PAUSES_S) == 9.75


def test_a_new_responses_save_writes_it_and_its_items_whole_or_not_at_all(state_url: str) -> None:
    """A response's first save (on PostgreSQL one statement) stores every field, and each output
    item that has an id at its position in the output; a save that fails half-way (its items
    clash with stored ones) leaves what was stored as it was."""

    async def check() -> None:
        store = await StateStore.open(settings(state_url))
        try:
            output = [
                {"type": "reasoning", "summary": []},  # no id: not an item of its own
                {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "f", "arguments": "{}"},
                {
                    "type": "message",
                    "id": "msg_1",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "é"}],
                },
            ]
            first = record(store, "resp_whole", response={"id": "resp_whole", "output": output})
            await store.responses.save(first, fresh=True)
            assert await store.responses.get("alice", "resp_whole") == first
            assert await store.responses.items("alice", ["fc_1", "msg_1"]) == {
                "fc_1": output[1],
                "msg_1": output[2],
            }
            async with store.engine.connect() as conn:
                rows = (await conn.execute(text(
                    "SELECT response_id, position, item_id, user_id FROM agentship_response_items ORDER BY position"
                ))).all()  # fmt: skip
            assert [tuple(r) for r in rows] == [
                ("resp_whole", 1, "fc_1", "alice"),
                ("resp_whole", 2, "msg_1", "alice"),
            ]

            clash = record(
                store, "resp_whole", status="failed", response={"id": "resp_whole", "output": output}
            )
            with pytest.raises(StateError):
                await store.responses.save(clash, fresh=True)  # said fresh, and is not: its items clash
            assert await store.responses.get("alice", "resp_whole") == first
        finally:
            await store.aclose()

    asyncio.run(check())
