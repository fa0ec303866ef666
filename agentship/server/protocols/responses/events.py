"""The Responses API's stream grammar, built once, from openai-python's own types. Pure: no I/O.

Every event and response object that ``/responses`` sends is made by a :class:`ResponseStream`:
live runs (through :mod:`.live`), stored replays, background followers and the resumes of runs
taken over. Events are ``openai.types.responses`` models, validated when made, and leave here
as JSON-ready dicts with exactly the fields that were set, so a field the spec adds is a field
the constructor asks for.

The grammar, per output item, in OpenAI's order:

===============  =================================================================================
item             events
===============  =================================================================================
message          output_item.added, content_part.added, output_text.delta…, output_text.done,
                 content_part.done, output_item.done
reasoning        output_item.added, [reasoning_summary_part.added, reasoning_summary_text.delta…,
                 reasoning_summary_text.done, reasoning_summary_part.done], output_item.done
function_call    output_item.added, function_call_arguments.done, output_item.done
mcp_call         output_item.added, mcp_call.in_progress, mcp_call_arguments.done, …,
                 mcp_call.completed or mcp_call.failed, output_item.done
anything else    output_item.added, output_item.done
===============  =================================================================================

and per response: ``response.created``, then ``response.in_progress`` (a background run opens
with ``response.queued``, and is ``in_progress`` once it runs), the items, then one of
``response.completed``, ``response.incomplete`` or ``response.failed`` (which also ends a
cancelled run, whose status is ``cancelled``).

An item's ``output_index`` is fixed when the item opens, however items interleave; the final
``output`` is ordered by it. Replaying a finished item (:meth:`ResponseStream.replay_item`) goes
through the same steps as the live item did, its text in one delta.
"""

from __future__ import annotations

import json
import typing
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseContentPartAddedEvent,
    ResponseContentPartDoneEvent,
    ResponseCreatedEvent,
    ResponseError,
    ResponseFailedEvent,
    ResponseFunctionCallArgumentsDoneEvent,
    ResponseFunctionToolCall,
    ResponseIncompleteEvent,
    ResponseInProgressEvent,
    ResponseMcpCallArgumentsDoneEvent,
    ResponseMcpCallCompletedEvent,
    ResponseMcpCallFailedEvent,
    ResponseMcpCallInProgressEvent,
    ResponseOutputItem,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseQueuedEvent,
    ResponseReasoningItem,
    ResponseReasoningSummaryPartAddedEvent,
    ResponseReasoningSummaryPartDoneEvent,
    ResponseReasoningSummaryTextDeltaEvent,
    ResponseReasoningSummaryTextDoneEvent,
    ResponseTextDeltaEvent,
    ResponseTextDoneEvent,
)
from openai.types.responses.mcp_tool_call_error import McpToolExecutionError
from openai.types.responses.response_output_item import McpCall
from openai.types.responses.response_reasoning_item import Summary
from pydantic import BaseModel

from agentship.server.protocols.responses.items import OUTPUT_ITEM, shell_of, text_of

type Event = dict[str, Any]
"""A stream event as sent: a JSON-ready dict of an ``openai.types.responses`` event."""

Status = Literal["queued", "in_progress", "completed", "failed", "cancelled", "incomplete"]
OPEN_STATUSES: frozenset[str] = frozenset({"queued", "in_progress"})


@cache
def _type_of(event_class: type[BaseModel]) -> str:
    """The ``type`` literal an event class carries."""
    return str(typing.get_args(event_class.model_fields["type"].annotation)[0])


def frame(event: Event) -> dict[str, str]:
    """An event as a server-sent event, as api.openai.com sends it: ``event:`` and ``data:``."""
    return {"event": str(event["type"]), "data": json.dumps(event)}


def wire(model: BaseModel) -> dict[str, Any]:
    """A model as it goes on the wire: the fields that were set (and no extras a dict brought)."""
    return model.model_dump(mode="json", exclude_unset=True, by_alias=True)


@dataclass
class _Item:
    """An open output item: its fixed index, its shell, and the text sent of it so far."""

    index: int
    shell: ResponseOutputItem
    text: str = ""
    part_open: bool = False


class ResponseStream:
    """The events of one response, numbered from ``next_seq``; its items from ``next_index``.

    ``response`` is the response object as it was created (id, model, created_at, the request's
    echoed fields); its status, output and usage are set as the stream goes."""

    def __init__(self, response: Response, next_seq: int = 0, next_index: int = 0) -> None:
        self.response = response
        self.next_seq = next_seq
        self._next_index = next_index
        self._open: dict[str, _Item] = {}
        self._done: list[tuple[int, ResponseOutputItem]] = []

    # -- numbering ----------------------------------------------------------------------------------
    def _event(self, event_class: type[BaseModel], **fields: Any) -> Event:
        event = event_class(type=_type_of(event_class), sequence_number=self.next_seq, **fields)
        self.next_seq += 1
        return wire(event)

    # -- the response ---------------------------------------------------------------------------------
    def snapshot(self, status: Status, **fields: Any) -> Response:
        """The response object with ``status`` (its output and usage only once it has ended)."""
        update: dict[str, Any] = {"status": status, **fields}
        if status in OPEN_STATUSES:
            update.update(output=[], usage=None, error=None)
        else:
            update.setdefault("output", self.output())
        return self.response.model_copy(update=update)

    def output(self) -> list[ResponseOutputItem]:
        return [item for _, item in sorted(self._done, key=lambda done: done[0])]

    def opened(self, background: bool = False) -> list[Event]:
        """``response.created`` and ``response.in_progress`` (``queued`` for a background run)."""
        status: Status = "queued" if background else "in_progress"
        created = self._event(ResponseCreatedEvent, response=self.snapshot(status))
        if background:
            return [created, self._event(ResponseQueuedEvent, response=self.snapshot("queued"))]
        return [created, self.running()]

    def running(self, **fields: Any) -> Event:
        """``response.in_progress``: a queued run has started (or restarted, ``fields`` say how)."""
        return self._event(ResponseInProgressEvent, response=self.snapshot("in_progress", **fields))

    def ended(self, response: Response) -> Event:
        """The terminal event for a finished ``response`` (see :meth:`finish`)."""
        if response.status == "completed":
            return self._event(ResponseCompletedEvent, response=response)
        if response.status == "incomplete":
            return self._event(ResponseIncompleteEvent, response=response)
        return self._event(ResponseFailedEvent, response=response)

    def finish(
        self, status: Status, error: ResponseError | None = None, **fields: Any
    ) -> tuple[list[Event], Response]:
        """Close what is still open (tool calls as failed, text as incomplete): the events that
        close them, and the final response object (not sent yet: store it, then send
        :meth:`ended`)."""
        closing = self.close_pending(error.message if error else "the run ended before the tool returned")
        return closing, self.snapshot(status, error=error, **fields)

    # -- items ----------------------------------------------------------------------------------------
    def is_open(self, item_id: str) -> bool:
        return item_id in self._open

    def open(self, shell: ResponseOutputItem) -> list[Event]:
        """Open an item: announce it and start what it streams (a text part, an MCP call)."""
        item = self._open[str(shell.id)] = _Item(self._next_index, shell)
        self._next_index += 1
        out = [self._event(ResponseOutputItemAddedEvent, output_index=item.index, item=shell)]
        where = {"item_id": str(shell.id), "output_index": item.index}
        if isinstance(shell, ResponseOutputMessage):
            item.part_open = True
            part = ResponseOutputText(type="output_text", text="", annotations=[])
            out.append(self._event(ResponseContentPartAddedEvent, **where, content_index=0, part=part))
        elif isinstance(shell, McpCall):
            out.append(self._event(ResponseMcpCallInProgressEvent, **where))
            out.append(self._event(ResponseMcpCallArgumentsDoneEvent, **where, arguments=shell.arguments))
        return out

    def text(self, item_id: str, delta: str) -> list[Event]:
        """A piece of an open message's text, or of a reasoning item's summary."""
        item = self._open[item_id]
        item.text += delta
        where = {"item_id": item_id, "output_index": item.index}
        if isinstance(item.shell, ResponseOutputMessage):
            return [self._event(ResponseTextDeltaEvent, **where, content_index=0, delta=delta, logprobs=[])]
        out = []
        if not item.part_open:
            item.part_open = True
            part = {"type": "summary_text", "text": ""}
            out.append(
                self._event(ResponseReasoningSummaryPartAddedEvent, **where, summary_index=0, part=part)
            )
        out.append(self._event(ResponseReasoningSummaryTextDeltaEvent, **where, summary_index=0, delta=delta))
        return out

    def close(self, final: ResponseOutputItem) -> list[Event]:
        """Close an open item with its final form."""
        item = self._open.pop(str(final.id))
        where = {"item_id": str(final.id), "output_index": item.index}
        out: list[Event] = []
        if isinstance(final, ResponseOutputMessage):
            text = text_of(final)
            part = ResponseOutputText(type="output_text", text=text, annotations=[])
            out.append(self._event(ResponseTextDoneEvent, **where, content_index=0, text=text, logprobs=[]))
            out.append(self._event(ResponseContentPartDoneEvent, **where, content_index=0, part=part))
        elif isinstance(final, ResponseReasoningItem) and item.part_open:
            text = text_of(final)
            summary = {"type": "summary_text", "text": text}
            out.append(
                self._event(ResponseReasoningSummaryTextDoneEvent, **where, summary_index=0, text=text)
            )
            out.append(
                self._event(ResponseReasoningSummaryPartDoneEvent, **where, summary_index=0, part=summary)
            )
        elif isinstance(final, ResponseFunctionToolCall):
            out.append(
                self._event(ResponseFunctionCallArgumentsDoneEvent, **where, arguments=final.arguments)
            )
        elif isinstance(final, McpCall):
            ended = ResponseMcpCallFailedEvent if final.status == "failed" else ResponseMcpCallCompletedEvent
            out.append(self._event(ended, **where))
        self._done.append((item.index, final))
        out.append(self._event(ResponseOutputItemDoneEvent, output_index=item.index, item=final))
        return out

    def replay_item(self, final: ResponseOutputItem) -> list[Event]:
        """A finished item, through the same steps it took live (its text in one delta)."""
        out = self.open(shell_of(final))
        if isinstance(final, ResponseOutputMessage | ResponseReasoningItem) and (text := text_of(final)):
            out += self.text(str(final.id), text)
        return out + self.close(final)

    def absorb(self, events: list[Event]) -> Response | None:
        """Take in events this stream sent before (a run's stored log, in order, page by page):
        its numbering, its open items with their text, its finished items. The final response if
        the events end it."""
        for event in events:
            self.next_seq = max(self.next_seq, int(event["sequence_number"]) + 1)
            kind = event["type"]
            if kind == "response.output_item.added":
                item = OUTPUT_ITEM.validate_python(event["item"])
                self._open[str(item.id)] = _Item(int(event["output_index"]), item)
                self._next_index = max(self._next_index, int(event["output_index"]) + 1)
            elif kind in _TEXT_DELTAS and (opened := self._open.get(str(event["item_id"]))) is not None:
                opened.text += str(event["delta"])
                opened.part_open = True
            elif kind == "response.output_item.done":
                item = OUTPUT_ITEM.validate_python(event["item"])
                self._open.pop(str(item.id), None)
                self._done.append((int(event["output_index"]), item))
            elif kind in TERMINAL_EVENTS:
                return Response.model_validate(event["response"])
        return None

    def close_pending(self, message: str) -> list[Event]:
        """Close what never finished: MCP calls as failed, text as incomplete."""
        out: list[Event] = []
        for item in sorted(self._open.values(), key=lambda open_item: open_item.index):
            out += self.close(_unfinished(item, message))
        return out


_TEXT_DELTAS = frozenset({"response.output_text.delta", "response.reasoning_summary_text.delta"})
TERMINAL_EVENTS = frozenset({"response.completed", "response.failed", "response.incomplete"})


def replay(final: Response) -> list[Event]:
    """A finished response as the stream that carried it: its items through the same steps they
    took live, each one's text in one delta."""
    stream = ResponseStream(final)
    events = stream.opened()
    for item in final.output:
        events += stream.replay_item(item)
    return [*events, stream.ended(final)]


def _unfinished(item: _Item, message: str) -> ResponseOutputItem:
    shell = item.shell
    if isinstance(shell, McpCall):
        error = McpToolExecutionError(
            type="mcp_tool_execution_error", content=[{"type": "text", "text": message}]
        )
        return shell.model_copy(update={"status": "failed", "error": error})
    if isinstance(shell, ResponseOutputMessage):
        part = ResponseOutputText(type="output_text", text=item.text, annotations=[])
        return shell.model_copy(update={"status": "incomplete", "content": [part]})
    if isinstance(shell, ResponseReasoningItem):
        summary = [Summary(type="summary_text", text=item.text)] if item.text else []
        return shell.model_copy(update={"summary": summary})
    update = {"status": "incomplete"} if "status" in type(shell).model_fields else {}
    return shell.model_copy(update=update)
