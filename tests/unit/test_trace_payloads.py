"""Span payloads: serialised as MLflow serialises them, bounded, the cut marked; the bound read
from AGENTSHIP_TRACE_MAX_PAYLOAD_CHARS."""

from __future__ import annotations

import json

import pytest
from mlflow.tracing.utils import dump_span_attribute_value

from agentship.errors import ConfigError
from agentship.trace_payloads import DEFAULT_MAX_PAYLOAD_CHARS, MAX_PAYLOAD_ENV, PayloadLimit, bounded_json

LIMIT = PayloadLimit(1024)


def test_a_payload_within_the_bound_is_mlflows_own_json() -> None:
    value = {"messages": [{"role": "user", "content": "Grüße, 18°C"}], "n": 3, "ok": None}
    assert bounded_json(value, LIMIT) == dump_span_attribute_value(value)


def test_a_long_string_is_cut_and_the_rest_keeps_its_shape() -> None:
    long = "x" * 5000
    value = [{"role": "system", "content": "be brief"}, {"role": "tool", "content": long}]
    text = bounded_json(value, LIMIT)
    assert len(text) <= 1024
    assert json.loads(text) == [
        {"role": "system", "content": "be brief"},
        {"role": "tool", "content": "x" * 256 + "…[cut 4744 of 5000 characters]"},
    ]


def test_a_payload_too_big_even_so_becomes_its_cut_json_text() -> None:
    value = [f"item {i}" for i in range(1000)]
    whole = dump_span_attribute_value(value)
    text = bounded_json(value, LIMIT)
    cut = json.loads(text)
    assert len(text) <= 1024 and isinstance(cut, str)
    kept = cut.index("…[cut ")
    assert cut == whole[:kept] + f"…[cut {len(whole) - kept} of {len(whole)} characters]"


def test_escapes_do_not_break_the_bound() -> None:
    value = ['"\\' * 50 for _ in range(100)]  # each character escaped in JSON: twice as long
    text = bounded_json(value, LIMIT)
    assert len(text) <= 1024 and json.loads(text).endswith(" characters]")


def test_no_bound_keeps_everything() -> None:
    value = "y" * 100_000
    assert bounded_json(value, PayloadLimit(0)) == json.dumps(value)


def test_the_bound_comes_from_the_environment() -> None:
    assert PayloadLimit.from_environ({}) == PayloadLimit(DEFAULT_MAX_PAYLOAD_CHARS) == PayloadLimit(65_536)
    assert PayloadLimit.from_environ({MAX_PAYLOAD_ENV: " 4096 "}) == PayloadLimit(4096)
    assert PayloadLimit.from_environ({MAX_PAYLOAD_ENV: "0"}) == PayloadLimit(0)
    with pytest.raises(
        ConfigError, match=f"{MAX_PAYLOAD_ENV} must be a whole number of characters, not 'lots'"
    ):
        PayloadLimit.from_environ({MAX_PAYLOAD_ENV: "lots"})
    with pytest.raises(ConfigError, match=f"{MAX_PAYLOAD_ENV} must be 0 .no bound. or at least 1024, not 10"):
        PayloadLimit.from_environ({MAX_PAYLOAD_ENV: "10"})
