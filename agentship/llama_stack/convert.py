"""Pure conversions for the Llama Stack backend: no I/O here.

* history helpers: which input items are new, and how earlier turns are carried;
* :class:`AgentTurnTranslator`: Agents API turn events → the package's events;
* :class:`ResponsesTranslator`: a server's Responses stream → the package's events;
* :class:`ChatTranslator`: Chat Completions chunks → the package's events.
"""

from __future__ import annotations

import json
from typing import Any

from mlflow.types.responses import (
    create_function_call_item,
    create_function_call_output_item,
    create_reasoning_item,
    create_text_output_item,
)

from agentship.events import AgentEvent, ItemDone, TextDelta
from agentship.inputs import content_text

_NEW_TURN_ROLES = {"user", "system", "developer"}


def split_new_messages(items: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(earlier items, the new turn): the new turn is the trailing run of user/system messages."""
    index = len(items)
    while index > 0:
        item = items[index - 1]
        if (item.get("type") in (None, "message")) and item.get("role") in _NEW_TURN_ROLES:
            index -= 1
        else:
            break
    if index == len(items):  # nothing new at the end: treat the last item as the new turn
        index = max(0, len(items) - 1)
    return items[:index], items[index:]


def transcript(items: list[dict[str, Any]]) -> str:
    """Earlier conversation items as plain text, one line each."""
    lines = []
    for item in items:
        kind = item.get("type") or "message"
        if kind == "message":
            lines.append(f"{item.get('role', 'user')}: {content_text(item.get('content'))}")
        elif kind == "function_call":
            lines.append(f"assistant called {item.get('name')}({item.get('arguments', '')})")
        elif kind == "function_call_output":
            lines.append(f"tool result: {content_text(item.get('output'))}")
    return "\n".join(lines)


def agent_turn_messages(earlier: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages for an Agents API turn, which only takes user (and tool) messages.

    Earlier items that the server's session does not hold travel as a leading user message.
    """
    messages = []
    if earlier:
        messages.append({"role": "user", "content": "Earlier in this conversation:\n" + transcript(earlier)})
    for item in new:
        messages.append({"role": "user", "content": content_text(item.get("content"))})
    return messages


def chat_messages(instructions: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Responses input items as Chat Completions messages, nothing dropped."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": instructions}] if instructions else []
    for item in items:
        kind = item.get("type") or "message"
        if kind == "message":
            role = item.get("role", "user")
            messages.append(
                {
                    "role": "system" if role == "developer" else role,
                    "content": content_text(item.get("content")),
                }
            )
        elif kind == "function_call":
            call = {
                "id": item["call_id"],
                "type": "function",
                "function": {"name": item["name"], "arguments": item.get("arguments") or "{}"},
            }
            if messages and messages[-1]["role"] == "assistant" and not messages[-1].get("content"):
                messages[-1].setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            messages.append(
                {"role": "tool", "tool_call_id": item["call_id"], "content": content_text(item.get("output"))}
            )
    return messages


def responses_input(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Responses input items as a Responses API server accepts them (assistant text flattened)."""
    out: list[dict[str, Any]] = []
    for item in items:
        kind = item.get("type") or "message"
        if kind == "message":
            out.append({"role": item.get("role", "user"), "content": content_text(item.get("content"))})
        elif kind == "function_call":
            out.append(
                {
                    "type": "function_call",
                    "call_id": item["call_id"],
                    "name": item["name"],
                    "arguments": item.get("arguments") or "{}",
                }
            )
        elif kind == "function_call_output":
            out.append(
                {
                    "type": "function_call_output",
                    "call_id": item["call_id"],
                    "output": content_text(item.get("output")),
                }
            )
    return out


def _done(item: dict[str, Any]) -> ItemDone:
    return ItemDone(item)


def _arguments(call: dict[str, Any]) -> str:
    raw = call.get("arguments_json") or call.get("arguments") or {}
    return raw if isinstance(raw, str) else json.dumps(raw)


class AgentTurnTranslator:
    """Agents API (0.2 / 0.3) turn events → Responses stream events, for one request."""

    def __init__(self, client_tools: set[str]) -> None:
        self._client_tools = client_tools
        self.output_items: list[dict[str, Any]] = []
        self.turn_id: str | None = None
        self.awaiting_input = False
        self.pending_calls: list[dict[str, Any]] = []  # client-tool calls to run: call_id, name, arguments
        self._answered: set[str] = set()
        self.tool_names: dict[str, str] = {}

    def _emit(self, item: dict[str, Any]) -> ItemDone:
        self.output_items.append(item)
        return _done(item)

    def feed(self, payload: dict[str, Any]) -> list[AgentEvent]:
        kind = payload.get("event_type")
        if kind == "step_progress" and payload.get("step_type") == "inference":
            delta = payload.get("delta") or {}
            if delta.get("type") == "text" and delta.get("text"):
                return [TextDelta(f"msg_{payload.get('step_id')}", delta["text"])]
            return []
        if kind == "step_complete":
            details = payload.get("step_details") or {}
            self.turn_id = details.get("turn_id") or self.turn_id
            if payload.get("step_type") == "inference":
                return self._inference_done(payload.get("step_id", ""), details.get("model_response") or {})
            if payload.get("step_type") == "tool_execution":
                return self._tool_results(details.get("tool_responses") or [])
            return []
        if kind in ("turn_complete", "turn_awaiting_input"):
            turn = payload.get("turn") or {}
            self.turn_id = turn.get("turn_id") or self.turn_id
            self.awaiting_input = kind == "turn_awaiting_input"
        return []

    def _inference_done(self, step_id: str, message: dict[str, Any]) -> list[AgentEvent]:
        events: list[AgentEvent] = []
        text = content_text(message.get("content"))
        if text:
            events.append(self._emit(create_text_output_item(text, f"msg_{step_id}")))
        self.pending_calls = []
        for call in message.get("tool_calls") or []:
            call_id, name = str(call.get("call_id")), str(call.get("tool_name"))
            self.tool_names[call_id] = name
            events.append(
                self._emit(create_function_call_item(f"fc_{call_id}", call_id, name, _arguments(call)))
            )
            if name in self._client_tools:
                self.pending_calls.append({"call_id": call_id, "name": name, "arguments": _arguments(call)})
        return events

    def _tool_results(self, responses: list[dict[str, Any]]) -> list[AgentEvent]:
        return [
            e
            for r in responses
            if (e := self.tool_result(str(r.get("call_id")), content_text(r.get("content"))))
        ]

    def tool_result(self, call_id: str, output: str) -> ItemDone | None:
        """The output item for a tool call, once per call id (the server echoes client tools)."""
        if call_id in self._answered:
            return None
        self._answered.add(call_id)
        return self._emit(create_function_call_output_item(call_id, output))


def _responses_item(item: dict[str, Any]) -> dict[str, Any] | None:
    kind = item.get("type")
    if kind == "message":
        return create_text_output_item(content_text(item.get("content")), str(item.get("id")))
    if kind == "function_call":
        return create_function_call_item(
            str(item.get("id") or f"fc_{item['call_id']}"),
            item["call_id"],
            item["name"],
            item.get("arguments") or "{}",
        )
    if kind == "reasoning":
        texts = [s.get("text", "") for s in item.get("summary") or []] or [
            c.get("text", "") for c in item.get("content") or []
        ]
        return create_reasoning_item(str(item.get("id")), "\n".join(texts))
    if kind in ("file_search_call", "web_search_call"):
        return {k: v for k, v in item.items() if v is not None}
    return None


class ResponsesTranslator:
    """A server's Responses stream events → ours, for one ``responses.create`` call."""

    def __init__(self) -> None:
        self.output_items: list[dict[str, Any]] = []
        self.function_calls: list[dict[str, Any]] = []
        self.usage: dict[str, Any] | None = None
        self.response_id: str | None = None

    def feed(self, event: dict[str, Any]) -> list[AgentEvent]:
        kind = event.get("type")
        if kind == "response.output_text.delta" and event.get("delta"):
            return [TextDelta(str(event.get("item_id")), event["delta"])]
        if kind == "response.output_item.done":
            raw = event.get("item") or {}
            item = _responses_item(raw)
            if item is None:
                return []
            if raw.get("type") == "function_call":
                self.function_calls.append(raw)
            self.output_items.append(item)
            return [_done(item)]
        if kind in ("response.completed", "response.incomplete"):
            response = event.get("response") or {}
            self.usage = response.get("usage") or self.usage
            self.response_id = response.get("id") or self.response_id
        if kind in ("response.failed", "error"):
            error = (event.get("response") or {}).get("error") or event.get("error") or event
            raise ValueError(str(error.get("message") if isinstance(error, dict) else error))
        return []


class ChatTranslator:
    """Chat Completions stream chunks → Responses stream events, for one model call."""

    def __init__(self, message_id: str) -> None:
        self._message_id = message_id
        self.text = ""
        self.calls: dict[int, dict[str, str]] = {}
        self.usage: dict[str, Any] | None = None

    def feed(self, chunk: dict[str, Any]) -> list[AgentEvent]:
        if chunk.get("error"):
            error = chunk["error"]
            raise ValueError(str(error.get("message") if isinstance(error, dict) else error))
        if chunk.get("usage"):
            u = chunk["usage"]
            self.usage = {
                "input_tokens": int(u.get("prompt_tokens") or 0),
                "output_tokens": int(u.get("completion_tokens") or 0),
                "total_tokens": int(u.get("total_tokens") or 0),
            }
        events: list[AgentEvent] = []
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("content"):
                self.text += delta["content"]
                events.append(TextDelta(self._message_id, delta["content"]))
            for call in delta.get("tool_calls") or []:
                slot = self.calls.setdefault(
                    int(call.get("index", 0)), {"id": "", "name": "", "arguments": ""}
                )
                function = call.get("function") or {}
                slot["id"] = call.get("id") or slot["id"]
                slot["name"] += function.get("name") or ""
                slot["arguments"] += function.get("arguments") or ""
        return events

    def finish(self) -> tuple[list[ItemDone], list[dict[str, Any]]]:
        """(done events, function calls) once the stream has ended."""
        items = []
        if self.text:
            items.append(create_text_output_item(self.text, self._message_id))
        calls = [self.calls[i] for i in sorted(self.calls)]
        for call in calls:
            items.append(
                create_function_call_item(
                    f"fc_{call['id']}", call["id"], call["name"], call["arguments"] or "{}"
                )
            )
        return [_done(i) for i in items], calls


def add_usage(total: dict[str, Any] | None, more: dict[str, Any] | None) -> dict[str, Any] | None:
    """Sum two Responses usage objects (either may be None)."""
    if not more:
        return total
    if not total:
        total = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
    summed = {
        k: int(total.get(k) or 0) + int(more.get(k) or 0)
        for k in ("input_tokens", "output_tokens", "total_tokens")
    }
    return {
        **summed,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens_details": {"reasoning_tokens": 0},
    }
