"""The body pre-check: exact nesting depth, in linear time on any input."""

from __future__ import annotations

import json
import time

import pytest

from agentship.server.core.errors import HttpError
from agentship.server.http.body import MAX_DEPTH, nesting_depth, parse_json, too_deep


def reference_depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max((reference_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((reference_depth(v) for v in value), default=0)
    return 0


VALID = [
    {"input": "hi"},
    {"input": [{"role": "user", "content": "a [ b { c"}]},
    {"input": 'quotes " and \\ and ] and }', "x": [[[]]]},
    {"a": {"b": {"c": ['\\"[', {"d": "\\"}]}}},
    [],
    "[[[[",
    {"deep": json.loads("[" * 63 + "]" * 63)},
]


@pytest.mark.parametrize("value", VALID, ids=range(len(VALID)))
def test_the_depth_is_the_parsers(value: object) -> None:
    assert nesting_depth(json.dumps(value).encode()) == reference_depth(value)


@pytest.mark.parametrize(
    "body",
    [
        b'{"input":"' + b'\\"' * 500_000,  # the quadratic case of the old scanner: unterminated
        b'{"input":"' + b'\\"' * 500_000 + b'"}',
        b'"' * 1_048_576,
        b"[" * 1_048_576,
        b'{"a":"\\' * 200_000,
        b'"\\\n[' * 250_000,
    ],
    ids=["escaped-quotes-open", "escaped-quotes-closed", "quotes", "brackets", "backslashes", "newlines"],
)
def test_a_hostile_mebibyte_is_scanned_in_linear_time(body: bytes) -> None:
    """Each is a mebibyte; the old scanner took hours on the first. Scanning twice the body
    takes about twice as long, not four times: the check is that it stays linear."""
    started = time.process_time()
    nesting_depth(body[: len(body) // 2])
    half = time.process_time() - started
    started = time.process_time()
    nesting_depth(body)
    whole = time.process_time() - started
    assert whole < max(4 * half, 0.05) + 1.0, (half, whole)


def test_an_unterminated_string_hides_no_brackets_after_it() -> None:
    assert nesting_depth(b'{"a": "open [[[[') == 1
    assert too_deep(b'{"a": "' + b"[" * 100) is None


def test_too_deep_names_the_depth() -> None:
    assert too_deep(b"[" * (MAX_DEPTH + 1)) == MAX_DEPTH + 1
    assert too_deep(b"[" * MAX_DEPTH) is None
    with pytest.raises(HttpError) as raised:
        parse_json(b'{"input":' + b"[" * 100 + b"]" * 100 + b"}")
    assert raised.value.status == 400
    assert raised.value.message == "the request body nests arrays or objects 101 levels deep; the limit is 64"


def test_escaped_quotes_are_a_400_naming_the_json_error() -> None:
    with pytest.raises(HttpError) as raised:
        parse_json(b'{"input":"' + b'\\"' * 500_000)
    assert raised.value.status == 400
    assert raised.value.message.startswith("the request body is not valid JSON: Unterminated string")
