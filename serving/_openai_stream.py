"""The agent's events as the OpenAI Responses stream and response object. Pure: no I/O.

:class:`ResponseEncoder` turns :data:`~agentship.events.AgentEvent` values into the event
sequence api.openai.com sends: ``response.created`` and ``response.in_progress``; per item
``output_item.added`` … ``output_item.done``; then ``response.completed`` or
``response.failed``. A non-streaming answer is the same encoder's final response object.

Two rules that clients depend on:

* **Indices.** An item's ``output_index`` is given the first time the item is seen (its
  announcement, its first delta, or its completion) and kept until its ``output_item.done``,
  however items interleave. The final ``output`` is ordered by those indices.
* **Tools the server ran.** A ``function_call`` item asks the *client* to run a tool, so the
  tools that the agent already ran (its function tools, client tools of a Llama Stack agent)
  are shown as ``mcp_call`` items, with the arguments and the output, under the server's
  label. Every OpenAI client treats those as done server-side.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal
from uuid import uuid4

from agentship.events import AgentEvent, Completed, ItemAdded, ItemDone, ReasoningDelta, TextDelta
from agentship.openai_wire import response_object

Status = Literal["queued", "in_progress", "completed", "failed", "cancelled", "incomplete"]


def full_usage(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    """Usage with every field the openai SDK's ``ResponseUsage`` requires; None stays None."""
    if not usage:
        return None
    input_tokens = int(usage.get("input_tokens") or 0)
    output_tokens = int(usage.get("output_tokens") or 0)
    cached = (usage.get("input_tokens_details") or {}).get("cached_tokens")
    reasoning = (usage.get("output_tokens_details") or {}).get("reasoning_tokens")
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": int(cached or 0)},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": int(reasoning or 0)},
        "total_tokens": int(usage.get("total_tokens") or input_tokens + output_tokens),
    }


def text_of(item: dict[str, Any]) -> str:
    parts = item.get("content") or item.get("summary") or []
    return "".join(str(p.get("text", "")) for p in parts if isinstance(p, dict))


@dataclass
class _Item:
    """One output item as it streams: its fixed index, its kind and what was sent of it."""

    index: int
    kind: str
    wire_id: str
    text: str = ""
    part_open: bool = False
    done: dict[str, Any] | None = None


@dataclass
class ResponseEncoder:
    """Encodes one response. Feed it the agent's events; it returns the OpenAI events to send."""

    model: str
    server_label: str = "agent"
    client_tools: frozenset[str] = frozenset()
    """Tools the client runs: their calls stay ``function_call`` items (the client's to run)."""
    response_id: str = field(default_factory=lambda: f"resp_{uuid4().hex}")
    created_at: int = field(default_factory=lambda: int(time.time()))
    echo: dict[str, Any] = field(default_factory=dict)
    """Request fields echoed in the response object (instructions, temperature, metadata, …)."""
    usage: dict[str, Any] | None = None
    first_index: int = 0
    """The output index of the first item (a run taken over continues after the earlier attempt's)."""
    _seq: int = 0
    _items: dict[str, _Item] = field(default_factory=dict)  # by item id (server tools: by call_id)
    _calls: dict[str, dict[str, Any]] = field(default_factory=dict)  # call_id -> the open mcp_call

    # -- the response object -------------------------------------------------------------
    def response(self, status: Status, error: dict[str, Any] | None = None) -> dict[str, Any]:
        done = sorted((i for i in self._items.values() if i.done is not None), key=lambda i: i.index)
        open_status = status in ("queued", "in_progress")
        output = [] if open_status else [i.done for i in done if i.done is not None]
        usage = None if open_status else full_usage(self.usage)
        obj = response_object(self.response_id, self.model, output, usage, status)
        obj.update(self.echo)
        obj.update(created_at=self.created_at, error=error)
        return obj

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return event

    def start(self) -> list[dict[str, Any]]:
        return [
            self._event("response.created", response=self.response("in_progress")),
            self._event("response.in_progress", response=self.response("in_progress")),
        ]

    def completed(self, metadata: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """Close what is still open, then ``response.completed``."""
        out = self.close_pending("the run ended before the tool returned")
        if metadata:
            self.echo["metadata"] = {**(self.echo.get("metadata") or {}), **metadata}
        return [*out, self._event("response.completed", response=self.response("completed"))]

    def failed(self, code: str | None, message: str, status: Status = "failed") -> list[dict[str, Any]]:
        """Close what is still open, then ``response.failed`` (``status`` "cancelled" for a cancel)."""
        out = self.close_pending(message)
        error = {"code": code or "server_error", "message": message}
        return [*out, self._event("response.failed", response=self.response(status, error))]

    def event(self, kind: str, **fields: Any) -> dict[str, Any]:
        """An event in this response's sequence (for the events of a run taken over)."""
        return self._event(kind, **fields)

    def replace_end(self, code: str | None, message: str) -> list[dict[str, Any]]:
        """``response.failed`` in place of the terminal event just made (not sent): same number."""
        self._seq -= 1
        return self.failed(code, message)

    # -- events ------------------------------------------------------------------------------
    def feed(self, event: AgentEvent) -> list[dict[str, Any]]:
        if isinstance(event, TextDelta):
            return self._delta(event.item_id, "message", event.delta)
        if isinstance(event, ReasoningDelta):
            return self._delta(event.item_id, "reasoning", event.delta)
        if isinstance(event, ItemAdded):
            return self._opened(event.item_id, event.kind)[1]
        if isinstance(event, ItemDone):
            return self._item_done(event.item)
        if isinstance(event, Completed):
            self.usage = event.usage
        return []

    def _open(self, key: str, kind: str, announced: dict[str, Any]) -> tuple[_Item, dict[str, Any]]:
        item = self._items[key] = _Item(self.first_index + len(self._items), kind, str(announced.get("id")))
        return item, self._event("response.output_item.added", output_index=item.index, item=announced)

    def _close(self, item: _Item, final: dict[str, Any]) -> dict[str, Any]:
        item.done = final
        return self._event("response.output_item.done", output_index=item.index, item=final)

    def _where(self, item: _Item, **more: Any) -> dict[str, Any]:
        return {"item_id": item.wire_id, "output_index": item.index, **more}

    def _opened(self, item_id: str, kind: str) -> tuple[_Item, list[dict[str, Any]]]:
        """The item ``item_id``, opened (announced) on first sight."""
        existing = self._items.get(item_id)
        if existing is not None:
            return existing, []
        if kind not in ("message", "reasoning"):  # a hosted call the endpoint runs
            item, added = self._open(item_id, kind, {"type": kind, "id": item_id, "status": "in_progress"})
            return item, [added]
        if kind == "message":
            started = {
                "type": "message",
                "id": item_id,
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            }
        else:
            started = {"type": "reasoning", "id": item_id, "summary": []}
        item, added = self._open(item_id, kind, started)
        if kind != "message":
            return item, [added]
        item.part_open = True
        part = {"type": "output_text", "text": "", "annotations": []}
        return item, [
            added,
            self._event("response.content_part.added", **self._where(item, content_index=0), part=part),
        ]

    def _delta(self, item_id: str, kind: Literal["message", "reasoning"], delta: str) -> list[dict[str, Any]]:
        item, out = self._opened(item_id, kind)
        item.text += delta
        if kind == "message":
            where = self._where(item, content_index=0)
            return [*out, self._event("response.output_text.delta", **where, delta=delta, logprobs=[])]
        where = self._where(item, summary_index=0)
        if not item.part_open:
            item.part_open = True
            part = {"type": "summary_text", "text": ""}
            out.append(self._event("response.reasoning_summary_part.added", **where, part=part))
        return [*out, self._event("response.reasoning_summary_text.delta", **where, delta=delta)]

    def _item_done(self, raw: dict[str, Any]) -> list[dict[str, Any]]:
        kind = str(raw.get("type"))
        if kind == "message":
            return self._message_done(raw)
        if kind == "reasoning":
            return self._reasoning_done(raw)
        if kind == "function_call" and raw.get("name") in self.client_tools:
            return self._client_call(raw)
        if kind == "function_call":
            return self._server_call(raw)
        if kind == "function_call_output":
            return self._server_call_output(raw)
        item_id = str(raw.get("id") or f"{kind}_{uuid4().hex[:12]}")
        final = {**raw, "id": item_id, "status": raw.get("status") or "completed"}
        if (announced := self._items.get(item_id)) is not None and announced.done is None:
            return [self._close(announced, final)]
        item, added = self._open(item_id, kind, {**final, "status": "in_progress"})
        return [added, self._close(item, final)]

    def _message_done(self, raw: dict[str, Any]) -> list[dict[str, Any]]:
        item, out = self._opened(str(raw.get("id") or f"msg_{uuid4().hex[:24]}"), "message")
        text = text_of(raw)
        where = self._where(item, content_index=0)
        parts = [{"annotations": [], **p} for p in raw.get("content") or [] if isinstance(p, dict)]
        final = {
            "type": "message",
            "id": item.wire_id,
            "status": "completed",
            "role": "assistant",
            "content": parts,
        }
        out += [
            self._event("response.output_text.done", **where, text=text, logprobs=[]),
            self._event(
                "response.content_part.done",
                **where,
                part={"type": "output_text", "text": text, "annotations": []},
            ),
        ]
        return [*out, self._close(item, final)]

    def _reasoning_done(self, raw: dict[str, Any]) -> list[dict[str, Any]]:
        item, out = self._opened(str(raw.get("id") or f"rs_{uuid4().hex[:24]}"), "reasoning")
        text = text_of(raw)
        summary = [{"type": "summary_text", "text": text}] if text else []
        if item.part_open:
            where = self._where(item, summary_index=0)
            out += [
                self._event("response.reasoning_summary_text.done", **where, text=text),
                self._event(
                    "response.reasoning_summary_part.done",
                    **where,
                    part=summary[0] if summary else {"type": "summary_text", "text": ""},
                ),
            ]
        return [*out, self._close(item, {"type": "reasoning", "id": item.wire_id, "summary": summary})]

    def _client_call(self, raw: dict[str, Any]) -> list[dict[str, Any]]:
        call_id = str(raw.get("call_id"))
        final = {k: v for k, v in raw.items() if k != "server_label"}
        final.update(id=str(raw.get("id") or f"fc_{call_id}"), status="completed")
        item, added = self._open(
            call_id, "function_call", {**final, "arguments": "", "status": "in_progress"}
        )
        where = self._where(item)
        done = self._event(
            "response.function_call_arguments.done", **where, arguments=final.get("arguments", "")
        )
        return [added, done, self._close(item, final)]

    def _server_call(self, raw: dict[str, Any]) -> list[dict[str, Any]]:
        call_id = str(raw.get("call_id") or raw.get("id"))
        started = {
            "type": "mcp_call",
            "id": f"mcp_{call_id}",
            "server_label": str(raw.get("server_label") or self.server_label),
            "name": str(raw.get("name")),
            "arguments": str(raw.get("arguments") or "{}"),
            "output": None,
            "error": None,
            "status": "in_progress",
        }
        item, added = self._open(call_id, "mcp_call", started)
        self._calls[call_id] = started
        return [
            added,
            self._event("response.mcp_call.in_progress", **self._where(item)),
            self._event(
                "response.mcp_call_arguments.done", **self._where(item), arguments=started["arguments"]
            ),
        ]

    def _server_call_output(self, raw: dict[str, Any]) -> list[dict[str, Any]]:
        call_id = str(raw.get("call_id"))
        started = self._calls.pop(call_id, None)
        if started is None:
            return []  # the output of a call the client runs: not an output item in this API
        item = self._items[call_id]
        final = {**started, "output": str(raw.get("output") or ""), "status": "completed"}
        return [self._event("response.mcp_call.completed", **self._where(item)), self._close(item, final)]

    def close_pending(self, message: str) -> list[dict[str, Any]]:
        """Close what never finished (the run ended or failed first): tool calls as failed."""
        out: list[dict[str, Any]] = []
        for call_id, started in list(self._calls.items()):
            item = self._items[call_id]
            error = {"type": "mcp_tool_execution_error", "content": [{"type": "text", "text": message}]}
            final = {**started, "status": "failed", "error": error}
            out += [self._event("response.mcp_call.failed", **self._where(item)), self._close(item, final)]
        self._calls.clear()
        for item in list(self._items.values()):
            if item.done is None and item.kind == "message":
                closing = self._message_done(
                    {
                        "type": "message",
                        "id": item.wire_id,
                        "content": [{"type": "output_text", "text": item.text}],
                    }
                )
                closing[-1]["item"]["status"] = "incomplete"
                out += closing
            elif item.done is None and item.kind == "reasoning":
                out += self._reasoning_done(
                    {
                        "type": "reasoning",
                        "id": item.wire_id,
                        "summary": [{"type": "summary_text", "text": item.text}],
                    }
                )
        return out
