"""Limits tiers and keys' own limits in the key file, and OpenAI's ``x-ratelimit-*`` headers
(:mod:`agentship.server.http.quotas`). Pure."""

from __future__ import annotations

import pytest

from agentship.server.http.auth import ApiKey, KeysError, parse_key_file
from agentship.server.http.quotas import _duration, over, ratelimit_headers
from agentship.state.usage import Quota, Taken

FILE = """
tier default rpm=60 tpd=200000   # everyone without a tier of their own
tier pro requests_per_minute=600 tokens_per_day=5000000
tier unlimited
alice:k1 tier=pro
bob:k2 rpm=10, carol:k3
"""


def test_a_key_file_holds_keys_with_their_limits_and_tiers() -> None:
    parsed = parse_key_file(FILE, "keys")
    assert parsed.tiers == {
        "default": Quota(60, 200_000),
        "pro": Quota(600, 5_000_000),
        "unlimited": Quota(),
    }
    assert parsed.keys == [
        ApiKey("alice", b"k1", "pro", Quota()),
        ApiKey("bob", b"k2", None, Quota(10, None)),
        ApiKey("carol", b"k3", None, Quota()),
    ]
    assert over(Quota(10, None), parsed.tiers["default"]) == Quota(10, 200_000)
    assert over(Quota(), None) == Quota()
    assert not Quota() and Quota(1, None) and Quota(None, 1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("alice:k1 rpm=0", "keys: key alice: rpm must be a whole number >= 1, not '0'"),
        ("alice:k1 rpm=ten", "keys: key alice: rpm must be a whole number >= 1, not 'ten'"),
        ("alice:k1 burst=5", "keys: key alice: unknown option 'burst' (tier, rpm, tpd)"),
        ("alice:k1 pro", "keys: key alice: 'pro' is not an option (tier=NAME, rpm=N or tpd=N)"),
        ("tier", "keys: a tier is 'tier NAME' and its limits (rpm=N, tpd=N)"),
        ("tier rpm=5", "keys: a tier is 'tier NAME' and its limits (rpm=N, tpd=N)"),
        ("tier pro tier=gold", "keys: tier pro: a tier cannot be in another tier"),
        ("tier pro rpm=5\ntier pro rpm=6", "keys: tier pro is defined twice"),
    ],
)
def test_limits_that_cannot_be_used_are_refused_naming_why(text: str, message: str) -> None:
    with pytest.raises(KeysError) as refused:
        parse_key_file(text, "keys")
    assert str(refused.value) == message


def test_the_ratelimit_headers_are_openais() -> None:
    taken = Taken(None, requests=3, tokens=1_200, minute_reset_s=12.2, day_reset_s=3 * 3600 + 61)
    assert ratelimit_headers(Quota(10, 5_000), taken) == {
        "x-ratelimit-limit-requests": "10",
        "x-ratelimit-remaining-requests": "7",
        "x-ratelimit-reset-requests": "13s",
        "x-ratelimit-limit-tokens": "5000",
        "x-ratelimit-remaining-tokens": "3800",
        "x-ratelimit-reset-tokens": "3h1m1s",
    }
    assert ratelimit_headers(Quota(10, None), taken) == {
        "x-ratelimit-limit-requests": "10",
        "x-ratelimit-remaining-requests": "7",
        "x-ratelimit-reset-requests": "13s",
    }
    assert [_duration(s) for s in (0.1, 59.5, 60, 360, 7325)] == ["1s", "1m0s", "1m0s", "6m0s", "2h2m5s"]
