"""A2A messages in, the agent's events out as A2A task events. Pure: no I/O.

In: an A2A ``Message`` becomes the agent's request. Its text parts are the user's words, a
data part is sent as its JSON text; file parts (``raw``, ``url``) are refused. The message's
``contextId`` is the request's ``context.conversation_id``, so the state store continues the
conversation.

Out, for one task (the conventions of kagent and ADK, so their UIs show it):

* text deltas stream as ``TaskArtifactUpdateEvent`` chunks of one artifact per message item
  (``artifactId`` = the item id; the first chunk opens it, the next ones ``append``); the
  message's ``output_item.done`` closes it with ``lastChunk`` and the whole text, replacing the
  chunks (``append: false``), so the stored task holds the answer in one part;
* a tool the agent ran is two closed artifacts, each one data part: ``{"id", "name", "args"}``
  with part metadata ``kagent_type: function_call``, then ``{"id", "name", "response":
  {"result"}}`` with ``kagent_type: function_response``;
* reasoning is not sent (it is in the request's MLflow trace);
* the end is a ``TaskStatusUpdateEvent``: ``completed`` with ``agentship_usage`` (the Responses
  usage object, when the backend reported one) and ``agentship_trace_id`` in its metadata,
  which the task store merges into the task's; ``failed`` with the client-safe message of
  :func:`agentship.server.core.errors.classify`; or ``canceled``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from a2a.helpers import new_data_part, new_text_part
from a2a.types.a2a_pb2 import (
    Artifact,
    Message,
    Part,
    Role,
    Task,
    TaskArtifactUpdateEvent,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)
from a2a.utils.errors import ContentTypeNotSupportedError, InvalidParamsError
from google.protobuf.json_format import MessageToDict
from google.protobuf.timestamp_pb2 import Timestamp
from mlflow.types.responses import ResponsesAgentRequest

from agentship.events import AgentEvent, Completed, ItemDone, OutputItem, TextDelta, Usage
from agentship.server.core.errors import HttpError

TYPE_KEY = "kagent_type"
"""Part metadata naming a data part's kind, as kagent's and ADK's A2A executors set it."""
FUNCTION_CALL, FUNCTION_RESPONSE = "function_call", "function_response"
USAGE_KEY, TRACE_KEY = "agentship_usage", "agentship_trace_id"

type TaskEvent = Task | TaskStatusUpdateEvent | TaskArtifactUpdateEvent


# -- in ---------------------------------------------------------------------------------------
def part_text(part: Part) -> str:
    """One part of a user message as text; file parts are refused (-32005)."""
    if part.HasField("text"):
        return part.text
    if part.HasField("data"):
        return json.dumps(MessageToDict(part.data), ensure_ascii=False)
    kind = "raw" if part.HasField("raw") else "url" if part.HasField("url") else "empty"
    raise ContentTypeNotSupportedError(
        message=f"this agent reads text and data parts; a {kind} part cannot be sent to it"
    )


def message_text(message: Message) -> str:
    """The user's words: the text of every part, joined by newlines; -32602 when there are none."""
    text = "\n".join(part_text(part) for part in message.parts)
    if not text.strip():
        raise InvalidParamsError(message="the message has no text: send at least one non-empty text part")
    return text


def agent_request(message: Message, context_id: str, user_id: str | None) -> ResponsesAgentRequest:
    """The agent request for an A2A message: the new user turn, in the A2A context's conversation."""
    return ResponsesAgentRequest(
        input=[{"role": "user", "content": message_text(message)}],
        context={"conversation_id": context_id, "user_id": user_id},
    )


# -- out --------------------------------------------------------------------------------------
def _now() -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(datetime.now(UTC))
    return stamp


def _item_text(item: OutputItem) -> str:
    return "".join(str(part.get("text", "")) for part in item.get("content") or [] if isinstance(part, dict))


def _arguments(raw: Any) -> Any:
    """A function call's arguments as JSON data (they arrive as a JSON string)."""
    if not isinstance(raw, str):
        return raw if raw is not None else {}
    try:
        return json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError:
        return {"raw": raw}


def _tool_part(data: dict[str, Any], kind: str) -> Part:
    part = new_data_part(data)
    part.metadata.update({TYPE_KEY: kind})
    return part


@dataclass
class TaskEncoder:
    """Turns one run's :data:`~agentship.events.AgentEvent` stream into A2A task events."""

    task_id: str
    context_id: str
    new_id: Callable[[], str] = field(default=lambda: uuid.uuid4().hex)
    _open: set[str] = field(default_factory=set)
    _tools: dict[str, str] = field(default_factory=dict)
    usage: Usage | None = None

    def submitted(self, message: Message) -> Task:
        """The task as it starts (the first event of a new task)."""
        status = TaskStatus(state=TaskState.TASK_STATE_SUBMITTED, timestamp=_now())
        return Task(id=self.task_id, context_id=self.context_id, status=status, history=[message])

    def working(self) -> TaskStatusUpdateEvent:
        return self._status(TaskState.TASK_STATE_WORKING)

    def feed(self, event: AgentEvent) -> list[TaskEvent]:
        if isinstance(event, TextDelta):
            return [self._text_chunk(event)] if event.delta else []
        if isinstance(event, ItemDone):
            return list(self._item(event.item))
        if isinstance(event, Completed):
            self.usage = event.usage
        return []

    def completed(self, trace_id: str | None) -> TaskStatusUpdateEvent:
        metadata: dict[str, Any] = {}
        if self.usage is not None:
            metadata[USAGE_KEY] = self.usage
        if trace_id:
            metadata[TRACE_KEY] = trace_id
        return self._status(TaskState.TASK_STATE_COMPLETED, metadata=metadata)

    def failed(self, error: HttpError) -> TaskStatusUpdateEvent:
        """The failure, as the client may see it: the safe message, its code and HTTP status."""
        details = {"error_code": error.code or error.type, "error_status": error.status}
        return self._status(TaskState.TASK_STATE_FAILED, error.message, details)

    def cancelled(self, reason: str) -> TaskStatusUpdateEvent:
        return self._status(TaskState.TASK_STATE_CANCELED, reason)

    # -- helpers ----------------------------------------------------------------------------
    def _status(
        self, state: TaskState, text: str | None = None, metadata: dict[str, Any] | None = None
    ) -> TaskStatusUpdateEvent:
        status = TaskStatus(state=state, timestamp=_now())
        if text:
            status.message.CopyFrom(self._agent_message(text, metadata))
        return TaskStatusUpdateEvent(
            task_id=self.task_id, context_id=self.context_id, status=status, metadata=metadata or None
        )

    def _agent_message(self, text: str, metadata: dict[str, Any] | None) -> Message:
        return Message(
            message_id=self.new_id(),
            role=Role.ROLE_AGENT,
            task_id=self.task_id,
            context_id=self.context_id,
            parts=[new_text_part(text)],
            metadata=metadata or None,
        )

    def _artifact(
        self, artifact_id: str, parts: list[Part], *, append: bool, last: bool
    ) -> TaskArtifactUpdateEvent:
        return TaskArtifactUpdateEvent(
            task_id=self.task_id,
            context_id=self.context_id,
            artifact=Artifact(artifact_id=artifact_id, parts=parts),
            append=append,
            last_chunk=last,
        )

    def _text_chunk(self, event: TextDelta) -> TaskArtifactUpdateEvent:
        item_id = event.item_id or "message"
        append = item_id in self._open
        self._open.add(item_id)
        return self._artifact(item_id, [new_text_part(event.delta)], append=append, last=False)

    def _item(self, item: OutputItem) -> Iterable[TaskEvent]:
        kind = item.get("type")
        if kind == "message":
            item_id = str(item.get("id") or self.new_id())
            self._open.discard(item_id)
            yield self._artifact(item_id, [new_text_part(_item_text(item))], append=False, last=True)
        elif kind == "function_call":
            call_id = str(item.get("call_id") or item.get("id") or self.new_id())
            self._tools[call_id] = str(item.get("name", ""))
            data = {"id": call_id, "name": self._tools[call_id], "args": _arguments(item.get("arguments"))}
            yield self._artifact(
                f"call-{call_id}", [_tool_part(data, FUNCTION_CALL)], append=False, last=True
            )
        elif kind == "function_call_output":
            call_id = str(item.get("call_id") or self.new_id())
            data = {
                "id": call_id,
                "name": self._tools.get(call_id, call_id),
                "response": {"result": item.get("output")},
            }
            part = _tool_part(data, FUNCTION_RESPONSE)
            yield self._artifact(f"result-{call_id}", [part], append=False, last=True)
