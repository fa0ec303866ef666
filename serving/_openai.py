"""The OpenAI Responses API face of the server: pure translation, no I/O.

* :func:`agent_request` turns a ``POST /responses`` body into a ResponsesAgent request;
* :class:`StreamEncoder` turns ResponsesAgent stream events (text deltas and
  ``output_item.done``) into the full OpenAI event sequence (``response.created`` …
  ``response.completed``) that the official ``openai`` client expects.
"""

from __future__ import annotations

import time
from typing import Any
from uuid import uuid4

from agentship.errors import InvalidRequestError
from agentship.openai_wire import response_object

_UNSUPPORTED = ("previous_response_id", "background", "prompt")


def agent_request(body: dict[str, Any]) -> dict[str, Any]:
    """A ``POST /responses`` body as a ResponsesAgent request body."""
    for field in _UNSUPPORTED:
        if body.get(field):
            raise InvalidRequestError(
                f"'{field}' is not supported by this server; send the whole conversation in 'input'"
            )
    raw = body.get("input")
    if raw is None:
        raise InvalidRequestError("request is missing the required field 'input'")
    items = [{"role": "user", "content": raw}] if isinstance(raw, str) else raw
    if not isinstance(items, list):
        raise InvalidRequestError("'input' must be a string or a list of input items")
    if body.get("instructions"):
        items = [{"role": "system", "content": str(body["instructions"])}, *items]
    request: dict[str, Any] = {"input": items}
    conversation = body.get("conversation")
    if isinstance(conversation, dict):
        conversation = conversation.get("id")
    context = {k: v for k, v in {"conversation_id": conversation, "user_id": body.get("user")}.items() if v}
    if context:
        request["context"] = context
    if isinstance(body.get("custom_inputs"), dict):
        request["custom_inputs"] = body["custom_inputs"]
    for field in ("temperature", "top_p", "max_output_tokens", "metadata", "tools", "tool_choice"):
        if body.get(field) is not None:
            request[field] = body[field]
    return request


def openai_item(item: dict[str, Any], status: str = "completed") -> dict[str, Any]:
    """An output item completed with the fields the OpenAI types require."""
    out = dict(item)
    kind = out.get("type")
    if kind == "message":
        out.setdefault("role", "assistant")
        out["status"] = status
        out["content"] = [{"annotations": [], **part} for part in out.get("content", [])]
    elif kind in ("function_call", "function_call_output"):
        out["status"] = status
        if kind == "function_call_output":
            out.setdefault("id", f"fco_{out.get('call_id', uuid4().hex[:12])}")
    return out


def _message_text(item: dict[str, Any]) -> str:
    return "".join(p.get("text", "") for p in item.get("content", []) if isinstance(p, dict))


class StreamEncoder:
    """ResponsesAgent stream events → OpenAI Responses stream events, for one response."""

    def __init__(self, model: str) -> None:
        self.response_id = f"resp_{uuid4().hex}"
        self.model = model
        self.created_at = int(time.time())
        self._seq = 0
        self._open: dict[str, int] = {}  # message item id -> output index
        self._texts: dict[str, str] = {}
        self.output: list[dict[str, Any]] = []

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return event

    def response(self, status: str, usage: dict[str, Any] | None = None) -> dict[str, Any]:
        obj = response_object(self.response_id, self.model, self.output, usage, status)
        obj["created_at"] = self.created_at
        return obj

    def start(self) -> list[dict[str, Any]]:
        return [
            self._event("response.created", response=self.response("in_progress")),
            self._event("response.in_progress", response=self.response("in_progress")),
        ]

    def _open_message(self, item_id: str) -> list[dict[str, Any]]:
        index = len(self.output) + len(self._open)
        self._open[item_id] = index
        self._texts[item_id] = ""
        started = {
            "type": "message",
            "id": item_id,
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        part = {"type": "output_text", "text": "", "annotations": []}
        return [
            self._event("response.output_item.added", output_index=index, item=started),
            self._event(
                "response.content_part.added", item_id=item_id, output_index=index, content_index=0, part=part
            ),
        ]

    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        kind = event.get("type")
        if kind == "response.output_text.delta":
            item_id = str(event["item_id"])
            out = [] if item_id in self._open else self._open_message(item_id)
            self._texts[item_id] += event["delta"]
            out.append(
                self._event(
                    "response.output_text.delta",
                    item_id=item_id,
                    output_index=self._open[item_id],
                    content_index=0,
                    delta=event["delta"],
                    logprobs=[],
                )
            )
            return out
        if kind == "response.output_item.done":
            return self._item_done(event["item"])
        return []

    def _item_done(self, raw: dict[str, Any]) -> list[dict[str, Any]]:
        item = openai_item(raw)
        out: list[dict[str, Any]] = []
        if item.get("type") == "message":
            item_id = str(item.get("id"))
            if item_id not in self._open:
                out += self._open_message(item_id)
            index = self._open.pop(item_id)
            text = _message_text(item)
            part = {"type": "output_text", "text": text, "annotations": []}
            out += [
                self._event(
                    "response.output_text.done",
                    item_id=item_id,
                    output_index=index,
                    content_index=0,
                    text=text,
                    logprobs=[],
                ),
                self._event(
                    "response.content_part.done",
                    item_id=item_id,
                    output_index=index,
                    content_index=0,
                    part=part,
                ),
            ]
        else:
            index = len(self.output) + len(self._open)
            started = {**item, "status": "in_progress"}
            if item.get("type") == "function_call":
                started["arguments"] = ""
            out.append(self._event("response.output_item.added", output_index=index, item=started))
            if item.get("type") == "function_call":
                out.append(
                    self._event(
                        "response.function_call_arguments.done",
                        item_id=item.get("id"),
                        output_index=index,
                        arguments=item.get("arguments", ""),
                    )
                )
        self.output.append(item)
        out.append(self._event("response.output_item.done", output_index=len(self.output) - 1, item=item))
        return out

    def completed(self, usage: dict[str, Any] | None) -> dict[str, Any]:
        return self._event("response.completed", response=self.response("completed", usage))

    def error(self, code: str, message: str) -> dict[str, Any]:
        return self._event("error", code=code, message=message, param=None)
