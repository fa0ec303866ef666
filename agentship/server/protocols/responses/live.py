"""A run's agent events on the Responses grammar (:mod:`.events`). Pure.

:class:`LiveResponse` is fed the agent's :data:`~agentship.events.AgentEvent` values and returns
the stream events they make, through the one :class:`~.events.ResponseStream`: text deltas open
their item on first sight, a server tool's call opens an ``mcp_call`` that its output closes, and
an item announced early (:class:`~agentship.events.ItemAdded`) keeps the index of its
announcement.
"""

from __future__ import annotations

from typing import Any

from openai.types.responses import ResponseOutputItem, ResponseReasoningItem
from openai.types.responses.response_output_item import McpCall

from agentship.events import AgentEvent, Completed, ItemAdded, ItemDone, ReasoningDelta, TextDelta
from agentship.inputs import new_item_id
from agentship.server.protocols.responses import items
from agentship.server.protocols.responses.events import Event, ResponseStream


class LiveResponse:
    """Encodes one run's events. ``client_tools`` are the tools the client runs (their calls stay
    ``function_call`` items); the agent's own tools are ``mcp_call`` items under ``server_label``."""

    def __init__(
        self, stream: ResponseStream, client_tools: frozenset[str] = frozenset(), server_label: str = "agent"
    ) -> None:
        self.stream = stream
        self.client_tools = client_tools
        self.server_label = server_label
        self.usage: dict[str, Any] | None = None
        self._calls: dict[str, McpCall] = {}  # call_id -> the open mcp_call

    def feed(self, event: AgentEvent) -> list[Event]:
        if isinstance(event, TextDelta):
            return self._opened(event.item_id, "message") + self.stream.text(event.item_id, event.delta)
        if isinstance(event, ReasoningDelta):
            return self._opened(event.item_id, "reasoning") + self.stream.text(event.item_id, event.delta)
        if isinstance(event, ItemAdded) and event.kind in ("message", "reasoning"):
            return self._opened(event.item_id, event.kind)
        if isinstance(event, ItemDone):
            return self._done(event.item)
        if isinstance(event, Completed):
            self.usage = event.usage
        return []

    def _opened(self, item_id: str, kind: str) -> list[Event]:
        if self.stream.is_open(item_id):
            return []
        if kind == "message":
            return self.stream.open(items.message_item({}, item_id, status="in_progress"))
        return self.stream.open(ResponseReasoningItem(type="reasoning", id=item_id, summary=[]))

    def _done(self, raw: dict[str, Any]) -> list[Event]:
        kind = str(raw.get("type"))
        if kind == "message":
            item_id = str(raw.get("id") or new_item_id("msg"))
            return self._opened(item_id, kind) + self.stream.close(items.message_item(raw, item_id))
        if kind == "reasoning":
            item_id = str(raw.get("id") or new_item_id("rs"))
            return self._opened(item_id, kind) + self.stream.close(items.reasoning_item(raw, item_id))
        if kind == "function_call" and raw.get("name") in self.client_tools:
            return self._whole(items.client_call(raw))
        if kind == "function_call":
            call = items.mcp_call(raw, self.server_label)
            self._calls[str(raw.get("call_id") or raw.get("id"))] = call
            return self.stream.open(call)
        if kind == "function_call_output":
            opened = self._calls.pop(str(raw.get("call_id")), None)
            if opened is None:
                return []  # the output of a call the client runs: not an output item of this API
            return self.stream.close(items.mcp_result(opened, raw))
        if kind == "mcp_approval_request":
            return self._whole(items.approval_request(raw))
        hosted = items.hosted_item(raw)
        return [] if hosted is None else self._whole(hosted)

    def _whole(self, final: ResponseOutputItem) -> list[Event]:
        return self.stream.open(items.shell_of(final)) + self.stream.close(final)
