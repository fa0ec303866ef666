"""``POST /responses`` bodies to ResponsesAgent requests. Pure: no I/O.

The body is checked field by field (:class:`ResponsesBody`), so a wrong type is a 400 that
names the field; unknown top-level fields are ignored, as OpenAI-compatible servers do. Input
items that OpenAI clients send back from earlier turns are mapped for the agent:

* ``mcp_call`` (how this server shows the tools it ran) becomes the ``function_call`` and
  ``function_call_output`` pair the agent's model produced;
* ``mcp_list_tools`` carries no conversation and is skipped;
* ``item_reference`` items are replaced by the stored items they name (the caller looks them
  up: :func:`references` lists them, :func:`substitute` puts them in).
"""

from __future__ import annotations

import re
from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from serving._errors import HttpError, invalid

_NOT_SUPPORTED = {"prompt": "stored prompts are not available on this server; send 'instructions' instead"}
MAX_ID = 255
"""Longest user or conversation id accepted."""


class ResponsesBody(BaseModel):
    """The fields of a Responses create request that this server reads (others are ignored)."""

    model_config = ConfigDict(extra="allow")

    input: str | list[Any]
    model: str | None = None
    stream: StrictBool = False
    store: StrictBool = True
    background: StrictBool = False
    previous_response_id: str | None = Field(None, max_length=MAX_ID)
    include: list[str] | None = None
    instructions: str | None = None
    conversation: str | dict[str, Any] | None = None
    user: str | None = Field(None, max_length=MAX_ID)
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


_UNION_TAG = re.compile(r"^(str|int|float|bool|none|list\[.*\]|dict\[.*\]|function-.*)$")
"""The parts of a pydantic error location that name a union member, not a field."""


def _where(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _UNION_TAG.match(str(part)):
            out += f".{part}" if out else str(part)
    return out or "body"


def _field_error(exc: pydantic.ValidationError) -> str:
    first = exc.errors()[0]
    where = _where(tuple(first["loc"]))
    message = str(first["msg"])
    if first["loc"] and first["loc"][0] == "input" and first["type"] in ("string_type", "list_type"):
        message = "must be a string or a list of input items"
    more = len({str(e["loc"][0]) for e in exc.errors() if e["loc"]}) - 1  # a union's members count once
    return f"'{where}' {message[:1].lower()}{message[1:]}" + (f" (and {more} more problems)" if more else "")


def parse_body(body: dict[str, Any]) -> ResponsesBody:
    """The checked body; :class:`~serving._errors.HttpError` 400 naming the first bad field."""
    for name, hint in _NOT_SUPPORTED.items():
        if body.get(name):
            raise invalid(f"'{name}' is not supported by this server: {hint}", param=name)
    if "input" not in body:
        raise invalid("the request is missing the required field 'input'", param="input")
    try:
        parsed = ResponsesBody.model_validate(body)
    except pydantic.ValidationError as exc:
        raise invalid(_field_error(exc), param=str(exc.errors()[0]["loc"][0])) from exc
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
    return parsed


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


def references(items: list[dict[str, Any]]) -> list[str]:
    """The ids that ``item_reference`` items point at."""
    ids = []
    for index, item in enumerate(items):
        if item.get("type") == "item_reference":
            if not isinstance(item.get("id"), str) or not item["id"]:
                raise invalid(f"'input[{index}]' is an item_reference without an 'id'", param="input")
            ids.append(item["id"])
    return ids


def substitute(items: list[dict[str, Any]], found: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """``items`` with every ``item_reference`` replaced by the stored item; 400 naming a missing one."""
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
                f"'input[{index}]' is an item_reference to {item['id']!r}, which is not a stored item of "
                "this user (it may have expired, or been sent with store: false)",
                param="input",
            )
    return out


def _error_text(error: Any) -> str:
    """An ``mcp_call`` error (a string, or one of the Responses API's error objects) as text."""
    if not isinstance(error, dict):
        return str(error)
    if error.get("message"):
        return str(error["message"])
    content = error.get("content")
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content or error)


def _agent_item(index: int, item: dict[str, Any]) -> list[dict[str, Any]]:
    """One input item as the agent's items (none, one, or the pair an ``mcp_call`` stands for)."""
    kind = item.get("type")
    if kind == "item_reference":
        raise invalid(f"'input[{index}]' is an item_reference that was not resolved", param="input")
    if kind == "mcp_list_tools":
        return []
    if kind == "mcp_call":
        call_id = str(item.get("id") or f"mcp_{index}").removeprefix("mcp_")
        call = {
            "type": "function_call",
            "id": f"fc_{call_id}",
            "call_id": call_id,
            "name": str(item.get("name") or "tool"),
            "arguments": str(item.get("arguments") or "{}"),
        }
        output = item.get("output")
        if output is None and item.get("error") is not None:
            output = f"error: {_error_text(item['error'])}"
        return [call, {"type": "function_call_output", "call_id": call_id, "output": str(output or "")}]
    return [item]


def agent_items(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Input items (references resolved) as the agent's input items."""
    return [out for index, item in enumerate(items) for out in _agent_item(index, item)]


def agent_request(parsed: ResponsesBody, items: list[dict[str, Any]], user_id: str | None) -> dict[str, Any]:
    """A checked body as a ResponsesAgent request over ``items`` (the agent's whole input)."""
    if parsed.instructions:
        items = [{"role": "system", "content": parsed.instructions}, *items]
    request: dict[str, Any] = {"input": items}
    context = {k: v for k, v in {"conversation_id": conversation_id(parsed), "user_id": user_id}.items() if v}
    if context:
        request["context"] = context
    if parsed.custom_inputs:
        request["custom_inputs"] = parsed.custom_inputs
    for name in (
        "temperature",
        "top_p",
        "max_output_tokens",
        "metadata",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "reasoning",
        "text",
    ):
        value = getattr(parsed, name)
        if value is not None:
            request[name] = value
    return request
