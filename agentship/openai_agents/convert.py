"""Pure conversions between MLflow Responses items and the OpenAI Agents SDK. No I/O here.

* :func:`to_run_input` turns the whole Responses request input into the SDK's run input.
* :func:`run_item_to_output_item` turns one ``RunResult.new_items`` entry into an output item,
  built with MLflow's item builders.
* :class:`StreamTranslator` turns the SDK's stream events into the package's events: items
  announced in the model's order, text and reasoning deltas that share their item's id, and
  one :class:`~agentship.events.ItemDone` per item.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Literal

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
    create_text_output_item,
)

from agentship.events import AgentEvent, ItemAdded, ItemDone, ReasoningDelta, TextDelta
from agentship.inputs import content_text, new_item_id
from agentship.openai_agents.tool_text import tool_output_text

_HOSTED_CALL_TYPES = {
    "file_search_call",
    "web_search_call",
    "computer_call",
    "code_interpreter_call",
    "mcp_call",
}


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
        elif kind in ("mcp_approval_request", "mcp_approval_response"):
            continue  # answered through the paused run they belong to, not shown to the model
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
        return create_function_call_output_item(call_id, tool_output_text(output))
    if isinstance(item, ReasoningItem):
        texts = [_get(s, "text", "") for s in _get(raw, "summary") or []]
        if not any(texts):
            texts = [_get(c, "text", "") for c in _get(raw, "content") or []]
        return create_reasoning_item(
            item_id or _real_id(_get(raw, "id")) or new_item_id("rs"), "\n".join(texts)
        )
    return None


class StreamTranslator:
    """Turns SDK stream events into :data:`~agentship.events.AgentEvent` values. Pure, one per run.

    Items are announced (:class:`ItemAdded`) when the model starts them, so their order is the
    model's even though the SDK hands over finished items only after the model call ends.
    Message and reasoning ids are ours: the SDK's may be a placeholder shared by every item.
    A call that needs approval is held back (the run pauses on it; the backend reports it as an
    approval request) until its output comes, and MCP calls carry their server's label.
    """

    def __init__(
        self,
        id_factory: Callable[[str], str] = new_item_id,
        hold: Callable[[str, str | None], bool] = lambda name, server: False,
        resumed: Mapping[str, dict[str, Any]] | None = None,
        silent: frozenset[str] = frozenset(),
    ) -> None:
        """``hold(name, server)``: whether a call needs approval; ``resumed``: calls of a paused
        run that this run executes (shown when their output comes); ``silent``: call ids whose
        items the client already has (its own tools' calls and outputs)."""
        self._new_id = id_factory
        self._hold = hold
        self._held: dict[str, dict[str, Any]] = dict(resumed or {})
        self._silent = silent
        self._ids: dict[tuple[str, str], str] = {}  # (kind, SDK item id) -> our item id
        self.output_items: list[dict[str, Any]] = []

    def _announce(self, kind: Literal["message", "reasoning"], sdk_id: str) -> list[AgentEvent]:
        if (kind, sdk_id) in self._ids:
            return []
        our_id = self._ids[(kind, sdk_id)] = self._new_id("msg" if kind == "message" else "rs")
        return [ItemAdded(our_id, kind)]

    def _raw(self, data: Any) -> list[AgentEvent]:
        kind = data.type
        if kind == "response.created":
            self._ids.clear()
        elif kind == "response.output_item.added" and data.item.type in ("message", "reasoning"):
            return self._announce(data.item.type, str(data.item.id))
        elif kind == "response.output_item.added" and data.item.type in _HOSTED_CALL_TYPES:
            return [ItemAdded(str(data.item.id), data.item.type)]  # the endpoint runs it; its id is kept
        elif kind == "response.output_text.delta":
            out = self._announce("message", data.item_id)
            return [*out, TextDelta(self._ids[("message", data.item_id)], data.delta)]
        elif kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            out = self._announce("reasoning", data.item_id)
            return [*out, ReasoningDelta(self._ids[("reasoning", data.item_id)], data.delta)]
        return []

    def _our_id(self, item: RunItem) -> str | None:
        if isinstance(item, MessageOutputItem):
            kind = "message"
        elif isinstance(item, ReasoningItem):
            kind = "reasoning"
        else:
            return None
        sdk_id = str(_get(item.raw_item, "id"))
        return self._ids.pop((kind, sdk_id), None) or self._new_id("msg" if kind == "message" else "rs")

    def _emit(self, output: dict[str, Any]) -> list[AgentEvent]:
        self.output_items.append(output)
        return [ItemDone(output)]

    def item(self, item: RunItem) -> list[AgentEvent]:
        """One finished run item (as `RunResult.new_items` has them, or as the stream ends it)."""
        output = run_item_to_output_item(item, self._our_id(item))
        if output is None:
            return []
        call_id = output.get("call_id")
        if call_id in self._silent:
            return []
        if output["type"] == "function_call":
            origin = getattr(item, "tool_origin", None)
            server = getattr(origin, "mcp_server_name", None) if origin is not None else None
            if server:
                output["server_label"] = server
            if self._hold(str(output["name"]), server):
                self._held[str(call_id)] = output
                return []
        elif output["type"] == "function_call_output" and str(call_id) in self._held:
            return [*self._emit(self._held.pop(str(call_id))), *self._emit(output)]
        return self._emit(output)

    def feed(self, event: StreamEvent) -> list[AgentEvent]:
        if isinstance(event, RawResponsesStreamEvent):
            return self._raw(event.data)
        if isinstance(event, RunItemStreamEvent):
            return self.item(event.item)
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
