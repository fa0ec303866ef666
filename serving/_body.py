"""Request bodies: read within a size limit, parse as JSON that cannot hurt the server.

:func:`parse_json` is pure. It turns every way a body can be hostile into a 400 that names the
problem: invalid UTF-8 or JSON, nesting deeper than a cap (checked before the parser recurses),
numbers longer than a cap, ``NaN``/``Infinity``, and a top level that is not an object.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.requests import ClientDisconnect, Request

from serving._errors import HttpError, invalid

MAX_DEPTH = 64
"""Deepest nesting of arrays and objects accepted in a body (real requests stay under 10)."""
MAX_NUMBER_CHARS = 40
"""Longest number literal accepted: any real int64 or float fits in far fewer characters."""

_STRING_OR_BRACKET = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


class ClientGone(Exception):
    """The client disconnected before its body arrived: nobody to answer, not an error."""


def nesting_depth(body: bytes) -> int:
    """The deepest nesting of ``[``/``{`` in a JSON text, brackets inside strings ignored.

    A regex scan, no recursion: safe on any input, and cheap (strings are skipped whole).
    """
    depth = deepest = 0
    for match in _STRING_OR_BRACKET.finditer(body):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in (b"]", b"}"):
            depth -= 1
    return deepest


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


def parse_json(body: bytes) -> dict[str, Any]:
    """A request body as a JSON object; :class:`HttpError` (400) naming what is wrong."""
    if not body.strip():
        raise invalid("the request body is empty; send a JSON object with an 'input' field")
    if (depth := nesting_depth(body)) > MAX_DEPTH:
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
    return data


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused (413) as soon as it grows past ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
    except ClientDisconnect as exc:
        raise ClientGone from exc
    return b"".join(chunks)


def _too_large(limit: int) -> HttpError:
    return HttpError(
        413,
        "invalid_request_error",
        f"the request body is larger than the limit of {limit} bytes",
        code="request_too_large",
    )


async def read_json(request: Request, limit: int) -> dict[str, Any]:
    return parse_json(await read_body(request, limit))
