"""Per-key limits counted in the store (:mod:`agentship.state.usage`), against a real SQLite file
and a real PostgreSQL, with two stores standing for two replicas:

* of concurrent requests on both, exactly the limit is admitted in a minute, and the next
  minute admits again;
* a day's spent tokens refuse the next request once they reach the budget, and the next day
  admits again; a refused request counts nothing;
* subjects are counted apart, and expired counts are purged.
"""

from __future__ import annotations

import asyncio

from agentship.state import StateStore
from agentship.state.usage import DAY, MINUTE, Quota, UsageCounters
from tests.state.test_store import run, settings

START = 1_700_000_000.0 - 1_700_000_000.0 % DAY + 30  # 30 s into a UTC day of 2023 (and its first minute)


def test_exactly_the_limit_is_admitted_across_replicas(state_url: str) -> None:
    async def check() -> None:
        a, b = await StateStore.open(settings(state_url)), await StateStore.open(settings(state_url))
        now = [START]
        counters = [UsageCounters(s.engine, clock=lambda: now[0]) for s in (a, b)]
        try:
            quota = Quota(requests_per_minute=5)
            taken = await asyncio.gather(*(counters[i % 2].take("alice", quota) for i in range(12)))
            assert sorted(t.refused or "admitted" for t in taken) == ["admitted"] * 5 + ["requests"] * 7
            assert sorted(t.requests for t in taken if t.refused is None) == [1, 2, 3, 4, 5]
            assert {t.minute_reset_s for t in taken} == {30.0}
            assert (await counters[1].take("bob", quota)).refused is None  # bob is counted apart
            now[0] += MINUTE
            assert (await counters[0].take("alice", quota)).requests == 1  # a new minute
        finally:
            await a.aclose()
            await b.aclose()

    run(check)


def test_a_days_tokens_refuse_the_next_request_once_spent(state_url: str) -> None:
    async def check() -> None:
        store = await StateStore.open(settings(state_url))
        now = [START]
        counters = UsageCounters(store.engine, clock=lambda: now[0])
        try:
            quota = Quota(requests_per_minute=100, tokens_per_day=1_000)
            first = await counters.take("alice", quota)
            assert (first.refused, first.requests, first.tokens, first.day_reset_s) == (None, 1, 0, DAY - 30)
            await counters.spend("alice", 600)
            assert (await counters.take("alice", quota)).tokens == 600
            await counters.spend("alice", 450)
            refused = await counters.take("alice", quota)
            assert (refused.refused, refused.tokens) == ("tokens", 1_050)
            assert (
                await counters.take("alice", Quota(requests_per_minute=100))
            ).requests == 3  # refused: uncounted
            now[0] += DAY
            assert (await counters.take("alice", quota)).refused is None
            assert await store.purge() == 3  # two minutes' counts and a day's, all long gone
        finally:
            await store.aclose()

    run(check)
