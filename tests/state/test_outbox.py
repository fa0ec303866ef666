"""The webhook outbox (:mod:`agentship.state.outbox`) against a real SQLite file and a real
PostgreSQL, two stores standing for two replicas:

* a background run's end and its notices are written in one transaction, by its owner only;
* concurrent claims on both replicas take each notice once;
* a lease that ran out is claimed again and counts the attempt; the first claimant can no longer
  settle it;
* a failed attempt is due again after its wait, or given up; expired notices are purged, except
  one a dispatcher still holds.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any

import pytest

from agentship.errors import StateError
from agentship.state import StateStore
from agentship.state.outbox import RESPONSE, Outbox, rows
from agentship.state.purge import purge_expired
from tests.state.test_store import record, run, settings

URLS = ("http://127.0.0.1:9/a", "http://127.0.0.1:9/b")
MAX = 8


async def two(url: str) -> tuple[StateStore, StateStore]:
    return await StateStore.open(settings(url)), await StateStore.open(settings(url))


def notices(count: int, now: float | None = None, ttl_s: float = 3600.0) -> list[dict[str, Any]]:
    now = time.time() if now is None else now
    return [
        row
        for i in range(count)
        for row in rows(
            RESPONSE,
            f"resp_{i}",
            "alice",
            f"evt_{i}",
            {"id": f"evt_{i}"},
            [("webhook-0", URLS[0])],
            now,
            ttl_s,
        )
    ]


def test_a_runs_end_and_its_notices_are_written_at_once_by_its_owner_only(
    state_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def check() -> None:
        a, b = await two(state_url)
        try:
            a.responses.webhook_urls = b.responses.webhook_urls = URLS
            rec = replace(record(a, "run1"), background=True, status="in_progress", owner=a.owner)
            rec.lease_until = time.time() + 60
            await a.responses.save(rec)
            done = replace(rec, status="completed")
            assert not await b.responses.finish(done, b.owner, 0, [])  # b does not own it
            assert await a.outbox.of(rec.id) == []
            assert await a.responses.finish(done, a.owner, 0, [])
            written = await b.outbox.of(rec.id)
            event = written[0]["event_id"]
            payload = {
                "id": event,
                "object": "event",
                "created_at": int(written[0]["created_at"]),
                "type": "response.completed",
                "data": {"id": "run1"},
            }
            assert [
                {k: v for k, v in row.items() if k not in ("id", "created_at", "expires_at")}
                for row in written
            ] == [
                {
                    "event_id": event,
                    "kind": RESPONSE,
                    "subject": "run1",
                    "destination": f"webhook-{i}",
                    "url": url,
                    "user_id": "alice",
                    "payload": payload,
                    "attempts": 0,
                    "next_at": 0.0,
                    "owner": None,
                    "lease_until": None,
                    "last_status": None,
                    "delivered_at": None,
                    "given_up_at": None,
                }
                for i, url in enumerate(URLS)
            ]
            assert all(row["expires_at"] == row["created_at"] + a.settings.ttl_s for row in written)

            # the notices cannot be written: the run's end is not either
            rec2 = replace(record(a, "run2"), background=True, status="in_progress", owner=a.owner)
            rec2.lease_until = time.time() + 60
            await a.responses.save(rec2)

            async def broken(*_: Any) -> None:
                raise StateError("the outbox is full")

            monkeypatch.setattr(Outbox, "write", staticmethod(broken))
            with pytest.raises(StateError):
                await a.responses.finish(replace(rec2, status="completed"), a.owner, 0, [])
            monkeypatch.undo()
            kept = await b.responses.get_any("run2")
            assert kept is not None and (kept.status, kept.owner) == ("in_progress", a.owner)
            assert await b.outbox.of("run2") == []
        finally:
            await a.aclose()
            await b.aclose()

    run(check)


def test_concurrent_claims_on_two_replicas_take_each_notice_once(state_url: str) -> None:
    async def check() -> None:
        a, b = await two(state_url)
        try:
            await a.outbox.add(notices(10))
            batches = await asyncio.gather(*(s.outbox.claim(4, 60.0, MAX) for s in (a, b, a, b)))
            assert all(len(batch) <= 4 for batch in batches)
            taken = [n for batch in batches for n in batch]
            assert sorted(n.subject for n in taken) == sorted(f"resp_{i}" for i in range(10))
            assert {n.attempt for n in taken} == {1}
            assert await a.outbox.claim(4, 60.0, MAX) == [] and await b.outbox.claim(4, 60.0, MAX) == []
        finally:
            await a.aclose()
            await b.aclose()

    run(check)


def test_a_lease_that_ran_out_is_claimed_again_and_its_first_claimant_cannot_settle_it(
    state_url: str,
) -> None:
    async def check() -> None:
        a, b = await two(state_url)
        try:
            await a.outbox.add(notices(1))
            [first] = await a.outbox.claim(4, 0.3, MAX)  # (a claim held is never taken: the test above)
            await asyncio.sleep(0.5)
            [again] = await b.outbox.claim(4, 60.0, MAX)
            assert (again.id, again.event_id, first.attempt, again.attempt) == (first.id, "evt_0", 1, 2)
            assert not await a.outbox.delivered(first, 200)
            assert await b.outbox.delivered(again, 200)
            [row] = await a.outbox.of("resp_0")
            assert (
                row["attempts"],
                row["last_status"],
                row["owner"],
                row["lease_until"],
                row["given_up_at"],
            ) == (
                2,
                200,
                None,
                None,
                None,
            )
            assert row["delivered_at"] is not None
            assert await a.outbox.claim(4, 60.0, MAX) == [] and await b.outbox.claim(4, 60.0, MAX) == []
        finally:
            await a.aclose()
            await b.aclose()

    run(check)


def test_a_failed_attempt_is_due_again_after_its_wait_or_given_up(state_url: str) -> None:
    async def check() -> None:
        a, b = await two(state_url)
        try:
            await a.outbox.add(notices(2))
            later, soon = sorted(await a.outbox.claim(4, 60.0, MAX), key=lambda n: n.subject)
            assert await a.outbox.retry(later, 503, after_s=3600.0, give_up=False)
            assert await a.outbox.retry(soon, 0, after_s=0.2, give_up=False)
            [row] = await a.outbox.of("resp_0")
            assert (
                row["attempts"],
                row["last_status"],
                row["owner"],
                row["lease_until"],
                row["delivered_at"],
            ) == (
                1,
                503,
                None,
                None,
                None,
            )
            assert time.time() + 3500 < row["next_at"] < time.time() + 3700  # on the database's clock
            await asyncio.sleep(0.4)
            [again] = await b.outbox.claim(4, 60.0, MAX)  # the one due again; the other waits its hour
            assert (again.subject, again.attempt) == ("resp_1", 2)
            assert await b.outbox.retry(again, 0, after_s=0.0, give_up=True)
            [row] = await a.outbox.of("resp_1")
            assert (row["attempts"], row["last_status"], row["owner"], row["delivered_at"]) == (
                2,
                0,
                None,
                None,
            )
            assert row["given_up_at"] is not None
            await asyncio.sleep(0.1)
            assert await a.outbox.claim(4, 60.0, MAX) == []  # given up for good, and the other not due
        finally:
            await a.aclose()
            await b.aclose()

    run(check)


def test_expired_notices_are_purged_except_one_still_held(state_url: str) -> None:
    async def check() -> None:
        store = await StateStore.open(settings(state_url))
        try:
            await store.outbox.add(notices(2, now=time.time() - 100, ttl_s=10))
            [held] = await store.outbox.claim(1, 60.0, MAX)
            await purge_expired(store.engine, store.settings)
            assert [r["subject"] for r in await store.outbox.of(held.subject)] == [held.subject]
            other = "resp_1" if held.subject == "resp_0" else "resp_0"
            assert await store.outbox.of(other) == []
        finally:
            await store.aclose()

    run(check)


def test_a_notice_whose_every_claim_ran_out_unsettled_is_given_up_not_claimed_forever(state_url: str) -> None:
    async def check() -> None:
        a, b = await two(state_url)
        try:
            await a.outbox.add(notices(1))
            [first] = await a.outbox.claim(4, 0.3, 2)  # its dispatcher dies: never settled
            await asyncio.sleep(0.5)
            [second] = await b.outbox.claim(4, 0.3, 2)  # so does the next
            assert (first.attempt, second.attempt) == (1, 2)
            await asyncio.sleep(0.5)
            assert await a.outbox.claim(4, 60.0, 2) == []  # its last attempt was spent
            [row] = await b.outbox.of("resp_0")
            assert (row["attempts"], row["owner"], row["lease_until"], row["delivered_at"]) == (
                2,
                None,
                None,
                None,
            )
            assert row["given_up_at"] is not None
            assert not await b.outbox.delivered(second, 200)  # the dead claim can no longer settle it
        finally:
            await a.aclose()
            await b.aclose()

    run(check)
