"""Per-key limits and token budgets: what each caller may use, checked before a run and counted
across replicas in the state store (:mod:`agentship.state.usage`).

Set in the key file (or ``AGENTSHIP_API_KEYS``), beside the keys:

.. code-block:: text

    tier default rpm=60 tpd=200000     # everyone without a tier of their own
    tier pro rpm=600 tpd=5000000
    alice:KEY1 tier=pro                # a key in a tier
    bob:KEY2 rpm=10                    # a key's own limit (over its tier's, here the default's)
    ci:KEY3 tier=unlimited             # a tier without limits
    tier unlimited

``rpm`` is requests per minute, ``tpd`` tokens per day (``requests_per_minute`` and
``tokens_per_day`` spelled out work too). A token from the identity provider names its tier in
the claim ``AGENTSHIP_OIDC_TIER_CLAIM``; gateway users and anonymous callers get ``default``.
Limits are per identity: two keys with one name share their counts.

Past a limit, a 429 ``rate_limit_exceeded`` with ``Retry-After`` (until the minute's or the day's
count starts again). Every answer of a limited caller carries OpenAI's ``x-ratelimit-*``
headers. Tokens are what the backend reported, or, when it reported none, an estimate (4
characters a token of the input and output), counted as such on ``/metrics``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass

from mlflow.types.responses import ResponsesAgentRequest
from starlette.types import Scope

from agentship.events import AgentEvent, Completed, reduce
from agentship.server.core.errors import HttpError
from agentship.server.http.identity import AUTH_QUOTA, AUTH_TIER, identify
from agentship.server.observability import metrics
from agentship.state.usage import Quota, Taken, UsageCounters

DEFAULT_TIER = "default"
_OPTION_NAMES = {
    "rpm": "requests_per_minute",
    "requests_per_minute": "requests_per_minute",
    "tpd": "tokens_per_day",
    "tokens_per_day": "tokens_per_day",
}


class QuotaError(ValueError):
    """A tier or a key's limits that cannot be used."""


def parse_options(words: list[str], source: str) -> tuple[str | None, Quota]:
    """A key's or a tier's options (``tier=NAME``, ``rpm=N``, ``tpd=N``): its tier and its own limits."""
    tier: str | None = None
    limits: dict[str, int] = {}
    for word in words:
        name, sep, value = word.partition("=")
        if not sep or not value:
            raise QuotaError(f"{source}: '{word}' is not an option (tier=NAME, rpm=N or tpd=N)")
        if name == "tier":
            tier = value
            continue
        field = _OPTION_NAMES.get(name)
        if field is None:
            raise QuotaError(f"{source}: unknown option '{name}' (tier, rpm, tpd)")
        if not value.isdigit() or int(value) < 1:
            raise QuotaError(f"{source}: {name} must be a whole number >= 1, not '{value}'")
        limits[field] = int(value)
    return tier, Quota(**limits)


def over(own: Quota, tier: Quota | None) -> Quota:
    """A key's own limits over its tier's."""
    if tier is None:
        return own
    return Quota(
        own.requests_per_minute if own.requests_per_minute is not None else tier.requests_per_minute,
        own.tokens_per_day if own.tokens_per_day is not None else tier.tokens_per_day,
    )


@dataclass(frozen=True)
class Admitted:
    """An admitted request of a limited caller: who, under what, and the headers it answers with."""

    subject: str
    quota: Quota
    headers: dict[str, str]


def _duration(seconds: float) -> str:
    """A reset time as OpenAI writes it: ``1s``, ``6m0s``, ``2h3m4s``."""
    whole = max(1, math.ceil(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def ratelimit_headers(quota: Quota, taken: Taken) -> dict[str, str]:
    """OpenAI's ``x-ratelimit-*`` headers for the limits ``quota`` sets."""
    headers: dict[str, str] = {}
    if quota.requests_per_minute is not None:
        headers["x-ratelimit-limit-requests"] = str(quota.requests_per_minute)
        headers["x-ratelimit-remaining-requests"] = str(max(0, quota.requests_per_minute - taken.requests))
        headers["x-ratelimit-reset-requests"] = _duration(taken.minute_reset_s)
    if quota.tokens_per_day is not None:
        headers["x-ratelimit-limit-tokens"] = str(quota.tokens_per_day)
        headers["x-ratelimit-remaining-tokens"] = str(max(0, quota.tokens_per_day - taken.tokens))
        headers["x-ratelimit-reset-tokens"] = _duration(taken.day_reset_s)
    return headers


def _refused(quota: Quota, taken: Taken) -> HttpError:
    if taken.refused == "tokens":
        message = f"this caller has used its {quota.tokens_per_day} tokens for the day; retry after the reset"
        wait = taken.day_reset_s
    else:
        message = (
            f"this caller is over its {quota.requests_per_minute} requests per minute; retry after the reset"
        )
        wait = taken.minute_reset_s
    headers = {**ratelimit_headers(quota, taken), "Retry-After": str(max(1, math.ceil(wait)))}
    return HttpError(429, "rate_limit_error", message, code="rate_limit_exceeded", headers=headers)


class Limiter:
    """Admits the requests of limited callers and counts what they spend, in the state store.
    ``tiers`` gives the tiers as they are now (a key file is re-read when it changes)."""

    def __init__(self, counters: UsageCounters, tiers: Callable[[], Mapping[str, Quota]]) -> None:
        self.counters = counters
        self.tiers = tiers

    def quota(self, own: Quota | None, tier: str | None) -> Quota:
        """A caller's limits: its own (a key's, over its tier's), else its tier's, else the default's."""
        tiers = self.tiers()
        named = tiers.get(tier) if tier is not None else None
        base = named if named is not None else tiers.get(DEFAULT_TIER)
        return over(own or Quota(), base)

    async def admit_scope(self, scope: Scope) -> Admitted | None:
        """:meth:`admit` the request of ``scope``: its authenticated caller (or gateway user, or
        anonymous: a body's own claim to a user is no identity to count against)."""
        subject = identify(scope, None).user
        return await self.admit(subject, self.quota(scope.get(AUTH_QUOTA), scope.get(AUTH_TIER)))

    async def admit(self, subject: str, quota: Quota) -> Admitted | None:
        """Count the request under ``quota`` (None: it has no limits); a 429 when over one."""
        if not quota:
            return None
        taken = await self.counters.take(subject, quota)
        if taken.refused is not None:
            metrics.observe_rate_limited(taken.refused)
            raise _refused(quota, taken)
        return Admitted(subject, quota, ratelimit_headers(quota, taken))

    async def spend(self, admitted: Admitted, tokens: int, estimated: bool) -> None:
        metrics.observe_spent(tokens, estimated)
        if admitted.quota.tokens_per_day is not None:
            await self.counters.spend(admitted.subject, tokens)


def estimate_tokens(request: ResponsesAgentRequest, events: list[AgentEvent]) -> int:
    """Tokens of a run whose backend reported no usage: 4 characters a token (rounded up) of its
    input and its output, as JSON."""
    output = reduce(events).model_dump(exclude_none=True).get("output") or []
    sent = json.dumps(request.model_dump(exclude_none=True).get("input") or [], ensure_ascii=False)
    return math.ceil(len(sent) / 4) + math.ceil(len(json.dumps(output, ensure_ascii=False)) / 4)


def reported_tokens(events: list[AgentEvent]) -> int | None:
    """The run's tokens as its backend reported them (None: it reported none)."""
    for event in reversed(events):
        if isinstance(event, Completed) and event.usage:
            total = event.usage.get("total_tokens")
            if isinstance(total, int):
                return total
    return None


@dataclass(frozen=True)
class Meter:
    """What an admitted request's run spends, counted when it ends (:data:`METER`)."""

    limiter: Limiter
    admitted: Admitted

    async def spent(self, request: ResponsesAgentRequest, events: list[AgentEvent]) -> None:
        tokens = reported_tokens(events)
        estimated = tokens is None
        if tokens is None:
            tokens = estimate_tokens(request, events)
        await self.limiter.spend(self.admitted, tokens, estimated)


METER: ContextVar[Meter | None] = ContextVar("agentship_meter", default=None)
"""The meter of the request being served, if its caller is limited: a run it starts (a
background one too) counts its tokens through it."""
