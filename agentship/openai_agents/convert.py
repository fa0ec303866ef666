"""Pure conversions between MLflow Responses items and the OpenAI Agents SDK. No I/O here.

* :func:`to_run_input` turns the whole Responses request input into the SDK's run input.
* :func:`run_item_to_output_item` turns one ``RunResult.new_items`` entry into an output item,
  built with MLflow's item builders.
* :class:`StreamTranslator` turns the SDK's stream events into Responses stream events: text
  deltas that share their item's id, and one ``response.output_item.done`` per item.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from agents.items import (
    HandoffCallItem,
    HandoffOutputItem,
    MessageOutputItem,
    ReasoningItem,
    RunItem,
    ToolCallItem,
    ToolCallOutputItem,
    TResponseInputItem,
)
from agents.models.fake_id import FAKE_RESPONSES_ID
from agents.stream_events import RawResponsesStreamEvent, RunItemStreamEvent, StreamEvent
from agents.usage import Usage
from mlflow.types.responses import (
    create_function_call_item,
    create_function_call_output_item,
    create_reasoning_item,
    create_text_delta,
    create_text_output_item,
)

from agentship.requests import content_text, new_item_id

_HOSTED_CALL_TYPES = {"file_search_call", "web_search_call", "computer_call"}


def _get(raw: Any, name: str, default: Any = None) -> Any:
    if isinstance(raw, Mapping):
        return raw.get(name, default)
    return getattr(raw, name, default)


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str)


def _as_dict(raw: Any) -> dict[str, Any]:
    if hasattr(raw, "model_dump"):
        return dict(raw.model_dump(exclude_none=True))
    return {k: v for k, v in dict(raw).items() if v is not None}


def to_run_input(items: list[dict[str, Any]]) -> list[TResponseInputItem]:
    """Convert every Responses input item (as dicts) into SDK run input; nothing is dropped.

    Assistant messages become plain ``{"role": "assistant", "content": text}`` messages, so
    that history from any client (with or without item ids) is valid for both model APIs.
    """
    converted: list[dict[str, Any]] = []
    for item in items:
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind == "message":
            role = item.get("role", "user")
            content = item.get("content", "")
            if role == "assistant":
                converted.append({"role": "assistant", "content": content_text(content)})
            else:
                converted.append({"role": role, "content": content})
        elif kind == "function_call":
            converted.append(
                {
                    "type": "function_call",
                    "call_id": item["call_id"],
                    "name": item["name"],
                    "arguments": item.get("arguments") or "{}",
                }
            )
        elif kind == "function_call_output":
            output = item.get("output", "")
            converted.append(
                {
                    "type": "function_call_output",
                    "call_id": item["call_id"],
                    "output": output if isinstance(output, (str, list)) else _as_text(output),
                }
            )
        else:
            converted.append({k: v for k, v in item.items() if v is not None})
    return converted  # type: ignore[return-value]


def _real_id(raw_id: Any) -> str | None:
    if isinstance(raw_id, str) and raw_id and raw_id != FAKE_RESPONSES_ID:
        return raw_id
    return None


def run_item_to_output_item(item: RunItem, item_id: str | None = None) -> dict[str, Any] | None:
    """One ``RunResult.new_items`` entry as a Responses output item, or None if it has none."""
    raw = item.raw_item
    if isinstance(item, MessageOutputItem):
        text = content_text(_get(raw, "content"))
        return create_text_output_item(text, item_id or _real_id(_get(raw, "id")) or new_item_id("msg"))
    if isinstance(item, (ToolCallItem, HandoffCallItem)):
        kind = _get(raw, "type")
        if kind == "function_call":
            return create_function_call_item(
                item_id or _real_id(_get(raw, "id")) or new_item_id("fc"),
                _get(raw, "call_id"),
                _get(raw, "name"),
                _get(raw, "arguments") or "{}",
            )
        if kind in _HOSTED_CALL_TYPES:
            return _as_dict(raw)
        return None
    if isinstance(item, (ToolCallOutputItem, HandoffOutputItem)):
        call_id = _get(raw, "call_id")
        if call_id is None:
            return None
        output = item.output if isinstance(item, ToolCallOutputItem) else _get(raw, "output")
        return create_function_call_output_item(call_id, _as_text(output))
    if isinstance(item, ReasoningItem):
        texts = [_get(s, "text", "") for s in _get(raw, "summary") or []]
        if not any(texts):
            texts = [_get(c, "text", "") for c in _get(raw, "content") or []]
        return create_reasoning_item(
            item_id or _real_id(_get(raw, "id")) or new_item_id("rs"), "\n".join(texts)
        )
    return None


class StreamTranslator:
    """Turns SDK stream events into Responses stream events (dicts). Pure, one per run."""

    def __init__(self, id_factory: Callable[[str], str] = new_item_id) -> None:
        self._new_id = id_factory
        self._message_ids: dict[str, str] = {}
        self.output_items: list[dict[str, Any]] = []

    def feed(self, event: StreamEvent) -> list[dict[str, Any]]:
        if isinstance(event, RawResponsesStreamEvent):
            data = event.data
            if data.type == "response.created":
                self._message_ids.clear()
            elif data.type == "response.output_text.delta":
                our_id = self._message_ids.get(data.item_id)
                if our_id is None:
                    our_id = self._message_ids[data.item_id] = self._new_id("msg")
                return [create_text_delta(data.delta, our_id)]
            return []
        if isinstance(event, RunItemStreamEvent):
            item_id = None
            if isinstance(event.item, MessageOutputItem):
                sdk_id = _get(event.item.raw_item, "id")
                item_id = self._message_ids.pop(sdk_id, None) or self._new_id("msg")
            output = run_item_to_output_item(event.item, item_id)
            if output is None:
                return []
            self.output_items.append(output)
            return [
                {
                    "type": "response.output_item.done",
                    "output_index": len(self.output_items) - 1,
                    "item": output,
                }
            ]
        return []


def usage_to_responses(usage: Usage) -> dict[str, Any]:
    """SDK usage as a Responses ``usage`` object."""
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {"cached_tokens": usage.input_tokens_details.cached_tokens or 0},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.output_tokens_details.reasoning_tokens or 0},
        "total_tokens": usage.total_tokens,
    }
