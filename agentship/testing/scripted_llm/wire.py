"""Wire formats of the scripted model: request parsing and response building, all pure."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from agentship.testing.scripted_llm.rules import Message, Reply, ToolSpec, count_tokens


def _content_text(content: Any) -> str:
    """Text of a message content given as a string or as a list of parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict):
                parts.append(str(part.get("text") or part.get("refusal") or ""))
        return "".join(parts)
    return str(content)


def _images(content: Any) -> int:
    """How many image parts a message content has (the model records it, to prove they arrive)."""
    if not isinstance(content, list):
        return 0
    return sum(1 for p in content if isinstance(p, dict) and p.get("type") in ("image_url", "input_image"))


def _role(raw: Any) -> str:
    role = str(raw or "user")
    return "system" if role == "developer" else role


def parse_chat_request(body: dict[str, Any]) -> tuple[list[Message], list[ToolSpec]]:
    messages: list[Message] = []
    call_names: dict[str, str] = {}
    last_name = "unknown"
    for m in body.get("messages") or []:
        role = _role(m.get("role"))
        for call in m.get("tool_calls") or []:
            last_name = (call.get("function") or {}).get("name") or last_name
            call_names[call.get("id") or ""] = last_name
        if role == "tool":
            # Match the result to its call by id; some servers rewrite ids, so fall back to the
            # tool named in the message, then to the latest call.
            name = call_names.get(m.get("tool_call_id") or "") or m.get("name") or last_name
            messages.append(Message("tool", _content_text(m.get("content")), name))
        elif role in ("system", "user", "assistant"):
            content = m.get("content")
            messages.append(Message(role, _content_text(content), images=_images(content)))  # type: ignore[arg-type]
    tools = [
        ToolSpec(t["function"]["name"], t["function"].get("parameters") or {})
        for t in body.get("tools") or []
        if t.get("type") == "function" and "function" in t
    ]
    return messages, tools


def parse_responses_request(body: dict[str, Any]) -> tuple[list[Message], list[ToolSpec]]:
    messages: list[Message] = []
    if body.get("instructions"):
        messages.append(Message("system", str(body["instructions"])))
    raw_input = body.get("input")
    items = [{"role": "user", "content": raw_input}] if isinstance(raw_input, str) else raw_input
    call_names: dict[str, str] = {}
    for item in items or []:
        kind = item.get("type") or "message"
        if kind == "message":
            role = _role(item.get("role"))
            if role in ("system", "user", "assistant"):
                content = item.get("content")
                messages.append(Message(role, _content_text(content), images=_images(content)))  # type: ignore[arg-type]
        elif kind == "function_call":
            call_names[item.get("call_id", "")] = item.get("name", "")
        elif kind == "function_call_output":
            name = call_names.get(item.get("call_id", ""), "unknown")
            messages.append(Message("tool", _content_text(item.get("output")), name))
    tools = [
        ToolSpec(t["name"], t.get("parameters") or {})
        for t in body.get("tools") or []
        if t.get("type") == "function" and "name" in t
    ]
    return messages, tools


def tool_results(body: dict[str, Any]) -> list[Any]:
    """Each tool result of a request exactly as it came (a string, or a list of content parts):
    recorded so that tests can see the shape the model was given, not just its text."""
    if "messages" in body:
        return [m.get("content") for m in body.get("messages") or [] if m.get("role") == "tool"]
    items = body.get("input")
    if not isinstance(items, list):
        return []
    return [i.get("output") for i in items if isinstance(i, dict) and i.get("type") == "function_call_output"]


def prompt_tokens(messages: list[Message]) -> int:
    return sum(count_tokens(m.text) for m in messages)


def reply_tokens(reply: Reply) -> int:
    return count_tokens((reply.text or "") + (reply.arguments or "") + (reply.reasoning or ""))


# ---------------------------------------------------------------- chat completions


def chat_completion(reply: Reply, model: str, rid: str, call_id: str, usage_in: int) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text}
    if reply.tool_name:
        message["tool_calls"] = [
            {
                "id": call_id,
                "type": "function",
                "function": {"name": reply.tool_name, "arguments": reply.arguments or "{}"},
            }
        ]
    if reply.reasoning:
        message["reasoning_content"] = reply.reasoning
    out = reply_tokens(reply)
    return {
        "id": rid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if reply.tool_name else "stop",
            }
        ],
        "usage": {"prompt_tokens": usage_in, "completion_tokens": out, "total_tokens": usage_in + out},
    }


def chat_chunk(rid: str, model: str, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": rid,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def chat_usage_chunk(rid: str, model: str, usage_in: int, usage_out: int) -> dict[str, Any]:
    return {
        "id": rid,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [],
        "usage": {
            "prompt_tokens": usage_in,
            "completion_tokens": usage_out,
            "total_tokens": usage_in + usage_out,
        },
    }


# ---------------------------------------------------------------- responses


def response_items(reply: Reply, ids: Iterator[str]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if reply.hosted_call:
        items.append(
            {**reply.hosted_call, "id": f"{reply.hosted_call['type'].removesuffix('_call')}_{next(ids)}"}
        )
    if reply.reasoning:
        items.append(
            {
                "type": "reasoning",
                "id": f"rs_{next(ids)}",
                "summary": [{"type": "summary_text", "text": reply.reasoning}],
            }
        )
    if reply.tool_name:
        items.append(
            {
                "type": "function_call",
                "id": f"fc_{next(ids)}",
                "call_id": f"call_{next(ids)}",
                "name": reply.tool_name,
                "arguments": reply.arguments or "{}",
                "status": "completed",
            }
        )
    else:
        items.append(
            {
                "type": "message",
                "id": f"msg_{next(ids)}",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": reply.text or "", "annotations": []}],
            }
        )
    return items


def sse(data: dict[str, Any] | str) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data)
    return f"data: {payload}\n\n".encode()


# ---------------------------------------------------------------- steering (both APIs)

SETTING_FIELDS = (
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "max_output_tokens",
    "tool_choice",
    "parallel_tool_calls",
    "reasoning_effort",
    "reasoning",
    "metadata",
)


def steering(body: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None, frozenset[str]]:
    """(forced tool, JSON schema of the answer, hosted tool types) a request asks for."""
    choice = body.get("tool_choice")
    forced = None
    if choice == "required":
        forced = "required"
    elif isinstance(choice, dict):
        forced = choice.get("name") or (choice.get("function") or {}).get("name")
    schema = None
    chat_format = body.get("response_format") or {}
    if chat_format.get("type") == "json_schema":
        schema = (chat_format.get("json_schema") or {}).get("schema")
    text_format = (body.get("text") or {}).get("format") or {}
    if text_format.get("type") == "json_schema":
        schema = text_format.get("schema")
    hosted = {
        str(t.get("type")).removesuffix("_preview")
        for t in body.get("tools") or []
        if t.get("type") != "function"
    }
    return forced, schema, frozenset(hosted)


def settings_of(body: dict[str, Any]) -> dict[str, Any]:
    """The sampling and control fields a request carried (recorded for tests to inspect)."""
    return {k: body[k] for k in SETTING_FIELDS if body.get(k) is not None}
