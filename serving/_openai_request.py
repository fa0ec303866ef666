"""``POST /responses`` bodies to ResponsesAgent requests. Pure: no I/O.

The body is checked field by field (:class:`ResponsesBody`), so a wrong type is a 400 that
names the field; unknown top-level fields are ignored, as OpenAI-compatible servers do. Input
items that OpenAI clients send back from earlier turns are mapped for the agent:

* ``mcp_call`` (how this server shows the tools it ran) becomes the ``function_call`` and
  ``function_call_output`` pair the agent's model produced;
* ``mcp_list_tools`` carries no conversation and is skipped;
* ``item_reference`` is refused with a 400 that names it: this server stores no responses yet.
"""

from __future__ import annotations

import re
from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from serving._errors import invalid

_NOT_YET = {
    "previous_response_id": "send the whole conversation in 'input' (stored responses are not kept yet)",
    "background": "background runs are not available yet; run in the foreground, streaming if it is long",
    "prompt": "stored prompts are not available on this server; send 'instructions' instead",
}


class ResponsesBody(BaseModel):
    """The fields of a Responses create request that this server reads (others are ignored)."""

    model_config = ConfigDict(extra="allow")

    input: str | list[Any]
    model: str | None = None
    stream: StrictBool = False
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
    for name, hint in _NOT_YET.items():
        if body.get(name):
            raise invalid(f"'{name}' is not supported by this server yet: {hint}", param=name)
    if "input" not in body:
        raise invalid("the request is missing the required field 'input'", param="input")
    try:
        return ResponsesBody.model_validate(body)
    except pydantic.ValidationError as exc:
        raise invalid(_field_error(exc), param=str(exc.errors()[0]["loc"][0])) from exc


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


def _input_item(index: int, item: Any) -> list[dict[str, Any]]:
    """One input item as the agent's items (none, one, or the pair an ``mcp_call`` stands for)."""
    if not isinstance(item, dict):
        raise invalid(f"'input[{index}]' must be an object, not {type(item).__name__}", param="input")
    kind = item.get("type")
    if kind == "item_reference":
        raise invalid(
            f"'input[{index}]' is an item_reference (to {item.get('id')!r}); this server does not store "
            "responses yet, so send the item itself (with the Vercel AI SDK, set store: false)",
            param="input",
        )
    if kind == "mcp_list_tools":
        return []
    if kind == "mcp_call":
        call_id = str(item.get("id") or f"mcp_{index}")
        call = {
            "type": "function_call",
            "id": call_id,
            "call_id": call_id,
            "name": str(item.get("name") or "tool"),
            "arguments": str(item.get("arguments") or "{}"),
        }
        output = item.get("output")
        if output is None and item.get("error") is not None:
            output = f"error: {_error_text(item['error'])}"
        return [call, {"type": "function_call_output", "call_id": call_id, "output": str(output or "")}]
    return [item]


def agent_request(parsed: ResponsesBody) -> dict[str, Any]:
    """A checked ``POST /responses`` body as a ResponsesAgent request body."""
    raw = parsed.input
    items: list[dict[str, Any]] = []
    if isinstance(raw, str):
        items.append({"role": "user", "content": raw})
    else:
        for index, item in enumerate(raw):
            items += _input_item(index, item)
    if parsed.instructions:
        items.insert(0, {"role": "system", "content": parsed.instructions})
    request: dict[str, Any] = {"input": items}
    conversation = parsed.conversation
    if isinstance(conversation, dict):
        conversation = conversation.get("id")
    context = {k: v for k, v in {"conversation_id": conversation, "user_id": parsed.user}.items() if v}
    if context:
        request["context"] = context
    if parsed.custom_inputs:
        request["custom_inputs"] = parsed.custom_inputs
    for name in ("temperature", "top_p", "max_output_tokens", "metadata", "tools", "tool_choice"):
        value = getattr(parsed, name)
        if value is not None:
            request[name] = value
    return request
