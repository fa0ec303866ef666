"""The stream contract between the package's backends and its faces. Pure: no I/O.

Every backend yields :data:`AgentEvent` values, small frozen dataclasses tagged by ``type``;
every face (MLflow's ``predict_stream``, ``/invocations``, ``/responses``) encodes them. Items
are Responses output items as MLflow's factories build them (``mlflow.types.responses``).

The contract, for one request:

* :class:`ItemAdded` (optional) announces that an item has started, in the model's order, so
  that an encoder gives indices in that order even when items finish out of order;
* :class:`TextDelta` and :class:`ReasoningDelta` carry an item's text as it is generated;
  the deltas of one item share its ``item_id``;
* :class:`ItemDone` carries each output item once, complete; ``item["id"]`` is the
  ``item_id`` of its announcement and deltas;
* :class:`Completed` comes last, once: ``usage`` is None when the backend reported none.

Failures are exceptions (:mod:`agentship.errors`), never events.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from mlflow.types.responses import ResponsesAgentResponse, create_text_delta

type OutputItem = dict[str, Any]
"""A Responses output item: ``message``, ``function_call``, ``function_call_output``, ``reasoning``, …"""

type Usage = dict[str, Any]
"""A Responses ``usage`` object: ``input_tokens``, ``output_tokens``, ``total_tokens``, details."""


@dataclass(frozen=True, slots=True)
class ItemAdded:
    """An output item has started: a ``message``, a ``reasoning``, or a hosted tool's call
    (``web_search_call``, …) that the model's endpoint runs."""

    item_id: str
    kind: str
    type: ClassVar[str] = "response.output_item.added"


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of a message item's text."""

    item_id: str
    delta: str
    type: ClassVar[str] = "response.output_text.delta"


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """A piece of a reasoning item's summary text."""

    item_id: str
    delta: str
    type: ClassVar[str] = "response.reasoning_summary_text.delta"


@dataclass(frozen=True, slots=True)
class ItemDone:
    """An output item, complete."""

    item: OutputItem
    type: ClassVar[str] = "response.output_item.done"


@dataclass(frozen=True, slots=True)
class Completed:
    """The end of a successful run: every output item, the usage (None if unreported)."""

    output: list[OutputItem]
    usage: Usage | None = None
    custom_outputs: dict[str, Any] = field(default_factory=dict)
    type: ClassVar[str] = "response.completed"


type AgentEvent = ItemAdded | TextDelta | ReasoningDelta | ItemDone | Completed


def with_custom_outputs(event: AgentEvent, extra: Mapping[str, Any]) -> AgentEvent:
    """``event`` with ``extra`` merged into its custom outputs, if it is the :class:`Completed`."""
    if isinstance(event, Completed):
        return Completed(event.output, event.usage, {**event.custom_outputs, **extra})
    return event


# -- MLflow's stream format ---------------------------------------------------------------------
_MLFLOW_ITEM_TYPES = frozenset(
    {
        "message",
        "function_call",
        "function_call_output",
        "reasoning",
        "mcp_approval_request",
        "mcp_approval_response",
        "file_search_call",
        "web_search_call",
        "computer_call",
    }
)


def mlflow_items(item: OutputItem) -> list[OutputItem]:
    """An output item in MLflow's item types: a hosted call MLflow has no type for (a
    ``code_interpreter_call``, say) becomes the ``function_call`` and output it amounts to."""
    if item.get("type") in _MLFLOW_ITEM_TYPES:
        return [item]
    call_id = str(item.get("id") or item.get("type"))
    if item.get("type") == "mcp_call":  # a server's MCP call: its tool, arguments and output
        call: dict[str, Any] = {"type": "function_call", "id": call_id, "call_id": call_id}
        call.update(name=str(item.get("name")), arguments=str(item.get("arguments") or "{}"))
        call["server_label"] = item.get("server_label")
        output = item.get("output") if item.get("output") is not None else f"error: {item.get('error')}"
        return [call, {"type": "function_call_output", "call_id": call_id, "output": str(output)}]
    name = str(item.get("type")).removesuffix("_call")
    arguments = {k: v for k, v in item.items() if k not in ("type", "id", "status", "outputs")}
    outputs = item.get("outputs") or item.get("output") or ""
    return [
        {
            "type": "function_call",
            "id": call_id,
            "call_id": call_id,
            "name": name,
            "arguments": json.dumps(arguments),
        },
        {
            "type": "function_call_output",
            "call_id": call_id,
            "output": outputs if isinstance(outputs, str) else json.dumps(outputs),
        },
    ]


def to_mlflow(event: AgentEvent) -> list[dict[str, Any]]:
    """The event as MLflow ``ResponsesAgentStreamEvent`` dicts (none if MLflow has no such event).

    MLflow's stream is text deltas, ``output_item.done`` and ``response.completed``; the
    announcements and reasoning deltas exist only on the OpenAI face.
    """
    if isinstance(event, TextDelta):
        return [create_text_delta(event.delta, event.item_id)]
    if isinstance(event, ItemDone):
        return [{"type": ItemDone.type, "item": item} for item in mlflow_items(event.item)]
    if isinstance(event, Completed):
        output = [i for item in event.output for i in mlflow_items(item)]
        response: dict[str, Any] = {"output": output, "status": "completed"}
        if event.usage is not None:
            response["usage"] = event.usage
        out: dict[str, Any] = {"type": Completed.type, "response": response}
        if event.custom_outputs:
            out["custom_outputs"] = event.custom_outputs
        return [out]
    return []


def from_mlflow(data: Mapping[str, Any]) -> AgentEvent | None:
    """An MLflow stream event (from any ResponsesAgent) as an :data:`AgentEvent`, or None."""
    kind = data.get("type")
    if kind == TextDelta.type:
        return TextDelta(str(data.get("item_id") or ""), str(data.get("delta") or ""))
    if kind == ItemDone.type and isinstance(data.get("item"), Mapping):
        return ItemDone(dict(data["item"]))
    if kind == Completed.type:
        response = data.get("response") or {}
        return Completed(
            list(response.get("output") or []),
            response.get("usage") or None,
            dict(data.get("custom_outputs") or {}),
        )
    return None


def from_response(response: ResponsesAgentResponse) -> list[AgentEvent]:
    """A non-streaming ResponsesAgent answer as the events a stream of it would have had."""
    output = [item.model_dump(exclude_none=True) for item in response.output]
    usage = response.usage.model_dump(exclude_none=True) if response.usage is not None else None
    return [
        *(ItemDone(item) for item in output),
        Completed(output, usage, dict(response.custom_outputs or {})),
    ]


def reduce(events: Iterable[AgentEvent]) -> ResponsesAgentResponse:
    """The non-streaming answer built from the stream: one code path for both."""
    output: list[OutputItem] = []
    usage: Usage | None = None
    custom_outputs: dict[str, Any] | None = None
    for event in events:
        if isinstance(event, ItemDone):
            output += mlflow_items(event.item)
        elif isinstance(event, Completed):
            usage, custom_outputs = event.usage, event.custom_outputs or None
    return ResponsesAgentResponse(output=output, usage=usage, custom_outputs=custom_outputs)


def reduce_mlflow(events: Iterable[Mapping[str, Any]]) -> ResponsesAgentResponse:
    """:func:`reduce` over MLflow stream event dicts (a client reading ``/invocations``, say)."""
    return reduce(e for e in map(from_mlflow, events) if e is not None)
