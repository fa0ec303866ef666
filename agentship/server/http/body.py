"""Request bodies: read within a size limit, parse as JSON that cannot hurt the server.

:func:`parse_json` is pure. It turns every way a body can be hostile into a 400 that names the
problem: invalid UTF-8 or JSON, nesting deeper than a cap (checked before the parser recurses),
numbers longer than a cap, ``NaN``/``Infinity``, and a top level that is not an object.
"""

from __future__ import annotations

import asyncio
import json
import operator
import re
import time
from dataclasses import dataclass
from itertools import accumulate, repeat
from typing import Any

from starlette.requests import Request

from agentship.server.core.errors import HttpError, invalid

MAX_DEPTH = 64
"""Deepest nesting of arrays and objects accepted in a body (real requests stay under 10)."""
MAX_NUMBER_CHARS = 40
"""Longest number literal accepted: any real int64 or float fits in far fewer characters."""

_STRING = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"?', re.DOTALL)
"""A JSON string, or an unterminated one to the end of the body. Possessive quantifiers and the
optional closing quote mean that no match ever fails and backtracks: one pass over the body."""
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEPS = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")


class ClientGone(Exception):
    """The client disconnected before its body arrived: nobody to answer, not an error."""


def nesting_depth(body: bytes) -> int:
    """The deepest nesting of ``[``/``{`` in a JSON text, brackets inside strings ignored.

    Linear in the body's length on any input, and at C speed: strings are cut out in one regex
    pass that cannot backtrack, the brackets left are mapped to steps of +1/-1, and the deepest
    running sum is found by ``itertools.accumulate``. No Python code runs per byte.
    """
    steps = _STRING.sub(b"", body).translate(None, _NOT_BRACKETS).translate(_STEPS)
    return max(0, max(accumulate(map(operator.sub, steps, repeat(1))), default=0))


def too_deep(body: bytes) -> int | None:
    """The body's nesting depth if it is over :data:`MAX_DEPTH` (None otherwise; most bodies have
    too few brackets to need the scan)."""
    if body.count(b"[") + body.count(b"{") <= MAX_DEPTH:
        return None
    depth = nesting_depth(body)
    return depth if depth > MAX_DEPTH else None


def _number(kind: type[int] | type[float]) -> Any:
    def convert(literal: str) -> int | float:
        if len(literal) > MAX_NUMBER_CHARS:
            raise ValueError(f"a number in the body is {len(literal)} characters long")
        value = kind(literal)
        if isinstance(value, float) and value in (float("inf"), float("-inf")):
            raise ValueError(f"the number {literal} is out of range")
        return value

    return convert


def _no_constants(literal: str) -> Any:
    raise ValueError(f"{literal} is not a valid JSON number")


def _where(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "body"


def _unstorable(value: Any, path: tuple[str | int, ...] = ()) -> str | None:
    """The first string (key or value) no store keeps, and why: a NUL character (PostgreSQL's
    text and JSON refuse it), or half a surrogate pair (not UTF-8). None if there is none."""
    if isinstance(value, str):
        if "\x00" in value:
            return f"'{_where(path)}' contains a NUL character (\\u0000)"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return f"'{_where(path)}' contains half of a surrogate pair, which is not text"
        return None
    children: Any = (
        value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    )
    for key, child in children:
        if isinstance(key, str) and (problem := _unstorable(key, path)):
            owner = f"a key of '{_where(path)}'" if path else "a key of the request body"
            return problem.replace(f"'{_where(path)}'", owner, 1)
        if problem := _unstorable(child, (*path, key)):
            return problem
    return None


def parse_json(body: bytes, needs: str = "with an 'input' field") -> dict[str, Any]:
    """A request body as a JSON object; :class:`HttpError` (400) naming what is wrong. ``needs``
    says what an empty body lacks."""
    if not body.strip():
        raise invalid(f"the request body is empty; send a JSON object {needs}".rstrip())
    if (depth := too_deep(body)) is not None:
        raise invalid(
            f"the request body nests arrays or objects {depth} levels deep; the limit is {MAX_DEPTH}"
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise invalid(f"the request body is not valid UTF-8 (byte {exc.start})") from exc
    try:
        data = json.loads(
            text, parse_int=_number(int), parse_float=_number(float), parse_constant=_no_constants
        )
    except json.JSONDecodeError as exc:
        raise invalid(
            f"the request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    except (ValueError, RecursionError) as exc:
        raise invalid(f"the request body is not acceptable JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise invalid(f"the request body must be a JSON object, not {type(data).__name__}")
    if problem := _unstorable(data):
        raise invalid(problem)
    return data


@dataclass(frozen=True)
class BodyLimits:
    """How much of a body the server accepts, and how slowly."""

    max_bytes: int = 1_048_576
    """The largest body (413 beyond it)."""
    idle_s: float = 10.0
    """The longest wait for the next piece of a body, and the grace before ``min_rate`` applies."""
    min_rate: float = 16_384.0
    """Bytes per second a body must average once ``idle_s`` has passed (408 below it)."""


async def read_body(request: Request, limits: BodyLimits) -> bytes:
    """The raw body, refused (413) as soon as it grows past ``limits.max_bytes``, and (408) as
    soon as it stalls for ``limits.idle_s`` or falls below ``limits.min_rate``: a client that sends
    a body slowly, or part of it and then nothing, holds the server for seconds, not forever."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limits.max_bytes:
        raise _too_large(limits.max_bytes)
    chunks: list[bytes] = []
    size = 0
    started = time.monotonic()
    while True:
        allowed = started + limits.idle_s + size / limits.min_rate - time.monotonic()
        try:
            async with asyncio.timeout(min(limits.idle_s, allowed)):
                message = await request.receive()
        except TimeoutError as exc:
            raise _too_slow(limits, size, time.monotonic() - started) from exc
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limits.max_bytes:
            raise _too_large(limits.max_bytes)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _too_slow(limits: BodyLimits, size: int, waited: float) -> HttpError:
    return HttpError(
        408,
        "invalid_request_error",
        f"the request body did not arrive in time ({size} bytes in {waited:.1f}s): send it with no "
        f"pause over {limits.idle_s:g}s, at {limits.min_rate:g} bytes per second or more",
        code="request_timeout",
    )


def _too_large(limit: int) -> HttpError:
    return HttpError(
        413,
        "invalid_request_error",
        f"the request body is larger than the limit of {limit} bytes",
        code="request_too_large",
    )


async def read_json(request: Request, limits: BodyLimits) -> dict[str, Any]:
    return parse_json(await read_body(request, limits))


async def until_disconnect(request: Request) -> None:
    """Return when the client goes away (its request already read)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
