"""Pure conversions for the Llama Stack backend: no I/O here.

* history helpers: which input items are new, and how earlier turns are carried;
* :func:`agent_turn_messages`: Responses input → Agents API turn messages, nothing lost;
* :class:`AgentTurnTranslator`: Agents API turn events → the package's events.

(The chat-completions and responses modes run on the Agents SDK, whose converters they reuse.)
"""

from __future__ import annotations

import json
from typing import Any

from mlflow.types.responses import (
    create_function_call_item,
    create_function_call_output_item,
    create_text_output_item,
)
from mlflow.types.responses_helpers import Content, ResponseOutputMessage, ResponseOutputRefusal

from agentship.errors import InvalidRequestError
from agentship.events import AgentEvent, ItemDone, TextDelta
from agentship.inputs import content_text

_NEW_TURN_ROLES = {"user", "system", "developer"}


def split_new_messages(items: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(earlier items, the new turn).

    The new turn is the trailing run of user/system messages; when the input ends with tool
    results instead, it is the trailing run of tool calls and results; else the last item.
    """
    index = len(items)
    while index > 0 and _is_new_message(items[index - 1]):
        index -= 1
    if index == len(items):
        while index > 0 and items[index - 1].get("type") in ("function_call", "function_call_output"):
            index -= 1
    if index == len(items):
        index = max(0, len(items) - 1)
    return items[:index], items[index:]


def _is_new_message(item: dict[str, Any]) -> bool:
    return item.get("type") in (None, "message") and item.get("role") in _NEW_TURN_ROLES


def transcript(items: list[dict[str, Any]]) -> str:
    """Earlier conversation items as plain text, one line each."""
    lines = []
    for item in items:
        kind = item.get("type") or "message"
        if kind == "message" and item.get("role") in ("system", "developer"):
            continue  # only the agent's own instructions get this far, and the agent has them
        if kind == "message":
            lines.append(f"{item.get('role', 'user')}: {content_text(item.get('content'))}")
        elif kind == "function_call":
            lines.append(f"assistant called {item.get('name')}({item.get('arguments', '')})")
        elif kind == "function_call_output":
            lines.append(f"tool result: {content_text(item.get('output'))}")
    return "\n".join(lines)


def agent_turn_messages(
    earlier: list[dict[str, Any]], new: list[dict[str, Any]], instructions: str
) -> list[dict[str, Any]]:
    """Messages for an Agents API turn, which takes user (and tool) messages only; pure.

    Earlier items that the server's session does not hold travel as a leading user message, and
    so do tool calls and results at the end of the input (the server is waiting on none of
    them). Images become image content; what the API cannot carry raises
    :class:`InvalidRequestError` naming it: a ``system``/``developer`` message (or the request's
    ``instructions``) other than the agent's own instructions, and ``input_file`` parts.
    """
    for index, item in enumerate([*earlier, *new]):
        _check_system_message(index, item, instructions)
    messages = []
    if earlier:
        messages.append(_transcript_message("Earlier in this conversation:", earlier))
    tools = [i for i in new if i.get("type") in ("function_call", "function_call_output")]
    if tools:
        messages.append(_transcript_message("Tool calls and their results:", tools))
    for item in new:
        if (item.get("type") or "message") == "message" and item.get("role") == "user":
            messages.append({"role": "user", "content": agent_content(item.get("content"))})
    return messages


def _check_system_message(index: int, item: dict[str, Any], instructions: str) -> None:
    role = item.get("role")
    if (item.get("type") or "message") != "message" or role not in ("system", "developer"):
        return
    if content_text(item.get("content")).strip() == instructions.strip():
        return  # the agent's own instructions, resent by the client
    raise InvalidRequestError(
        f"input[{index}] is a {role!r} message (or the request's 'instructions'): the Llama Stack "
        "Agents API fixes the system prompt when the agent is created; put it in the model "
        "config's 'instructions' instead"
    )


def _transcript_message(title: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    text = title + "\n" + transcript(items)
    images = [
        part
        for item in items
        if (item.get("type") or "message") == "message" and item.get("role") == "user"
        for part in _parts(item.get("content"))
        if part["type"] == "image"
    ]
    return {"role": "user", "content": [{"type": "text", "text": text}, *images] if images else text}


def agent_content(content: Any) -> str | list[dict[str, Any]]:
    """A Responses message content as Agents API content: a string, or text and image items."""
    if isinstance(content, str):
        return content
    parts = _parts(content)
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def _parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    out: list[dict[str, Any]] = []
    for part in content or []:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text"):
            out.append({"type": "text", "text": str(part.get("text") or "")})
        elif kind == "input_image" and isinstance(part.get("image_url"), str):
            url: str = part["image_url"]
            if url.startswith("data:") and ";base64," in url:
                out.append({"type": "image", "image": {"data": url.split(";base64,", 1)[1]}})
            else:
                out.append({"type": "image", "image": {"url": {"uri": url}}})
        else:
            what = "an input_image given by file_id" if kind == "input_image" else f"a {kind!r} part"
            raise InvalidRequestError(
                f"the Llama Stack Agents API cannot take {what}: send text, or images by URL"
            )
    return out


def refusal_item(item_id: str, text: str) -> dict[str, Any]:
    """A tripped shield's message as a message item with a refusal part (the Responses API's way)."""
    part = Content.model_validate(ResponseOutputRefusal(refusal=text).model_dump())
    message = ResponseOutputMessage(id=item_id, content=[part], status="completed")
    return message.model_dump(exclude_none=True)


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
        self.violation: dict[str, Any] | None = None  # a tripped shield: stage, message, metadata
        self._shield_stage = "input"

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
            if payload.get("step_type") == "shield_call" and details.get("violation"):
                self._shield_tripped(details["violation"])
            return []
        if kind == "step_start" and payload.get("step_type") == "shield_call":
            touchpoint = str((payload.get("metadata") or {}).get("touchpoint", ""))
            self._shield_stage = "output" if "output" in touchpoint else "input"
        if kind in ("turn_complete", "turn_awaiting_input"):
            turn = payload.get("turn") or {}
            self.turn_id = turn.get("turn_id") or self.turn_id
            self.awaiting_input = kind == "turn_awaiting_input"
            if self.violation is not None and kind == "turn_complete":
                return [self._refusal(turn.get("turn_id") or "turn")]
        return []

    def _shield_tripped(self, violation: dict[str, Any]) -> None:
        self.violation = {
            "stage": self._shield_stage,
            "message": str(violation.get("user_message") or "The request was blocked by a safety shield."),
            "metadata": violation.get("metadata") or {},
        }

    def _refusal(self, turn_id: str) -> ItemDone:
        assert self.violation is not None
        return self._emit(refusal_item(f"msg_refusal_{turn_id}", self.violation["message"]))

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
