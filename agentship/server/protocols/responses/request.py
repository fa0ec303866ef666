"""``POST /responses`` bodies, checked. Pure: no I/O.

The body is checked field by field (:class:`ResponsesBody`), so a wrong type is a 400 that names
the field; unknown top-level fields are ignored, as OpenAI-compatible servers do. The fields a
response repeats (``tools``, ``tool_choice``, ``reasoning``, ``text``) are the spec's own
``openai.types.responses`` models, each tool checked as the type it names. ``item_reference``
inputs are replaced by the stored items they name (:func:`references` lists them, the caller
looks them up, :func:`substitute` puts them in).
"""

from __future__ import annotations

import re
import typing
from functools import cache
from typing import Any

import pydantic
from openai.types.responses import ResponseTextConfig, Tool
from openai.types.responses.response import ToolChoice
from openai.types.shared import Reasoning
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from agentship.server.core.errors import HttpError, invalid
from agentship.server.http.identity import MAX_ID

_NOT_SUPPORTED = {"prompt": "stored prompts are not available on this server; send 'instructions' instead"}


class ResponsesBody(BaseModel):
    """The fields of a Responses create request that this server reads (others are ignored)."""

    model_config = ConfigDict(extra="allow")

    input: str | list[Any]
    model: str | None = None
    stream: StrictBool = False
    store: StrictBool = True
    background: StrictBool = False
    previous_response_id: str | None = Field(None, min_length=1, max_length=MAX_ID)
    include: list[str] | None = None
    instructions: str | None = None
    conversation: str | dict[str, Any] | None = None
    user: str | None = None
    metadata: dict[str, str] | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    max_output_tokens: int | None = Field(None, ge=1)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: StrictBool | None = None
    reasoning: dict[str, Any] | None = None
    text: dict[str, Any] | None = None
    custom_inputs: dict[str, Any] | None = None


class Checked(typing.NamedTuple):
    """A body, and its fields that the response repeats, as the spec's types."""

    body: ResponsesBody
    tools: list[Tool]
    tool_choice: ToolChoice | None
    reasoning: Reasoning | None
    text: ResponseTextConfig | None


_UNION_TAG = re.compile(r"^(str|int|float|bool|none|list\[.*\]|dict\[.*\]|function-.*|[A-Z]\w*)$")
"""The parts of a pydantic error location that name a union member or a model, not a field."""


def _where(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _UNION_TAG.match(str(part)):
            out += f".{part}" if out else str(part)
    return out or "body"


def field_error(exc: pydantic.ValidationError, prefix: str = "") -> str:
    """The first problem of a validation error, naming its field (``input[0].content``)."""
    first = exc.errors()[0]
    where = _where((*(prefix.split(".") if prefix else ()), *first["loc"]))
    message = str(first["msg"])
    if first["loc"] and first["loc"][0] == "input" and first["type"] in ("string_type", "list_type"):
        message = "must be a string or a list of input items"
    more = len({str(e["loc"][0]) for e in exc.errors() if e["loc"]}) - 1  # a union's members count once
    return f"'{where}' {message[:1].lower()}{message[1:]}" + (f" (and {more} more problems)" if more else "")


@cache
def _tool_types() -> dict[str, type[BaseModel]]:
    """The spec's tool classes by the ``type`` they carry."""
    members = typing.get_args(typing.get_args(Tool)[0])
    return {
        literal: member
        for member in members
        for literal in typing.get_args(member.model_fields["type"].annotation)
    }


def _tool(index: int, raw: dict[str, Any]) -> Tool:
    kind = raw.get("type")
    model = _tool_types().get(str(kind))
    if model is None:
        raise invalid(
            f"'tools[{index}].type' is not a tool type of the Responses API: {kind!r}", param="tools"
        )
    try:
        return typing.cast(Tool, model.model_validate(raw))
    except pydantic.ValidationError as exc:
        raise invalid(field_error(exc, f"tools.{index}"), param="tools") from exc


_CHOICE: pydantic.TypeAdapter[ToolChoice] = pydantic.TypeAdapter(ToolChoice)
_REASONING: pydantic.TypeAdapter[Reasoning] = pydantic.TypeAdapter(Reasoning)
_TEXT: pydantic.TypeAdapter[ResponseTextConfig] = pydantic.TypeAdapter(ResponseTextConfig)


def _typed[T](value: dict[str, Any] | str | None, adapter: pydantic.TypeAdapter[T], name: str) -> T | None:
    if value is None:
        return None
    try:
        return adapter.validate_python(value)
    except pydantic.ValidationError as exc:
        raise invalid(f"'{name}' is not a valid {name} setting of the Responses API", param=name) from exc


def parse_body(body: dict[str, Any]) -> Checked:
    """The checked body; :class:`~agentship.server.core.errors.HttpError` 400 naming the first
    bad field."""
    for name, hint in _NOT_SUPPORTED.items():
        if body.get(name):
            raise invalid(f"'{name}' is not supported by this server: {hint}", param=name)
    if "input" not in body:
        raise invalid("the request is missing the required field 'input'", param="input")
    try:
        parsed = ResponsesBody.model_validate(body)
    except pydantic.ValidationError as exc:
        raise invalid(field_error(exc), param=str(exc.errors()[0]["loc"][0])) from exc
    if parsed.previous_response_id and parsed.conversation:
        raise invalid(
            "'previous_response_id' and 'conversation' cannot be used together: continue either a "
            "stored response or a conversation",
            param="previous_response_id",
        )
    if parsed.background and not parsed.store:
        raise invalid("a background response must be stored: set 'store' to true", param="background")
    conversation = conversation_id(parsed)
    if conversation is not None and (not conversation or len(conversation) > MAX_ID):
        raise invalid(f"'conversation' must be an id of 1 to {MAX_ID} characters", param="conversation")
    return Checked(
        parsed,
        [_tool(i, t) for i, t in enumerate(parsed.tools or [])],
        _typed(parsed.tool_choice, _CHOICE, "tool_choice"),
        _typed(parsed.reasoning, _REASONING, "reasoning"),
        _typed(parsed.text, _TEXT, "text"),
    )


def conversation_id(parsed: ResponsesBody) -> str | None:
    conversation = parsed.conversation
    if isinstance(conversation, dict):
        conversation = conversation.get("id")
    return None if conversation is None else str(conversation)


def input_items(parsed: ResponsesBody) -> list[dict[str, Any]]:
    """The request's input as items (a string is one user message)."""
    if isinstance(parsed.input, str):
        return [{"role": "user", "content": parsed.input}]
    for index, item in enumerate(parsed.input):
        if not isinstance(item, dict):
            raise invalid(f"'input[{index}]' must be an object, not {type(item).__name__}", param="input")
    return list(parsed.input)


def references(items: list[dict[str, Any]], param: str = "input") -> list[str]:
    """The ids that ``item_reference`` items point at."""
    ids = []
    for index, item in enumerate(items):
        if item.get("type") == "item_reference":
            if not isinstance(item.get("id"), str) or not item["id"]:
                raise invalid(f"'{param}[{index}]' is an item_reference without an 'id'", param=param)
            ids.append(item["id"])
    return ids


def substitute(
    items: list[dict[str, Any]], found: dict[str, dict[str, Any]], param: str = "input"
) -> list[dict[str, Any]]:
    """``items`` (the request's ``param``) with every ``item_reference`` replaced by the stored
    item; 400 naming a missing one."""
    out = []
    for index, item in enumerate(items):
        if item.get("type") != "item_reference":
            out.append(item)
        elif item["id"] in found:
            out.append(found[item["id"]])
        else:
            raise HttpError(
                400,
                "invalid_request_error",
                f"'{param}[{index}]' is an item_reference to {item['id']!r}, which is not a stored item "
                "of this user (it may have expired, or been sent with store: false)",
                param=param,
            )
    return out
