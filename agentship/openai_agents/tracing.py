"""Agents SDK spans → MLflow spans, nested under the request's active MLflow span.

A small ``TracingProcessor`` instead of ``mlflow.openai.autolog()``: autolog also patches the
OpenAI client and the runner, which doubles the model-call spans and, measured under load,
costs more CPU per request than the rest of the request path. Installed with
:func:`install`, it replaces the SDK's default processors, so nothing is exported to OpenAI.

A span is opened in MLflow when the SDK's starts, and everything it records is read from the
SDK's span data when it ends (:mod:`.span_data`), serialised once and bounded
(:mod:`agentship.trace_payloads`). Two things the span data lacks come from elsewhere: the
tools a model call was offered (:class:`TracedChatCompletionsModel` and
:class:`TracedResponsesModel` report them) and a
tool call's id (:class:`TracingHooks`). Tracing never fails a request: every failure here is
logged at debug level.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import mlflow
from agents.tool_context import ToolContext
from agents.tracing import Span, Trace, TracingProcessor, get_current_span
from mlflow.entities import LiveSpan, SpanEvent, SpanStatus, SpanStatusCode
from mlflow.tracing.constant import SpanAttributeKey

from agents import (
    ModelSettings,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    RunContextWrapper,
    RunHooks,
    Tool,
    set_trace_processors,
)
from agentship.openai_agents.span_data import Offered, describe, record
from agentship.trace_payloads import PayloadLimit, rename, write_otel_attributes, write_payload

_logger = logging.getLogger(__name__)


@dataclass
class _Mirror:
    """An SDK span mirrored in MLflow, with what its data lacks."""

    live: LiveSpan
    kind: str
    offered: Offered | None = None
    call_id: str | None = None


@dataclass(frozen=True)
class _Node:
    """Where an SDK span's children go: its MLflow span, or its parent's if it is not mirrored
    (``owned`` False: ending it ends nothing)."""

    live: LiveSpan
    mirror: _Mirror | None
    owned: bool = False


class MlflowSpanBridge(TracingProcessor):
    def __init__(self, limit: PayloadLimit | None = None) -> None:
        self.limit = limit or PayloadLimit()
        self._lock = threading.Lock()
        self._nodes: dict[str, _Node] = {}  # SDK trace or span id -> where its children go
        self._offers: dict[str, Offered] = {}  # SDK span id -> tools the next model call gets

    # -- what the span data lacks ------------------------------------------------------------
    def offer(self, offered: Offered) -> None:
        """The model call about to start under the current SDK span is given these."""
        current = get_current_span()
        if current is not None:
            with self._lock:
                if current.span_id in self._nodes:
                    self._offers[current.span_id] = offered

    def note_call_id(self, span_id: str, call_id: str) -> None:
        with self._lock:
            node = self._nodes.get(span_id)
        if node is not None and node.owned and node.mirror is not None:
            node.mirror.call_id = call_id

    # -- the processor -----------------------------------------------------------------------
    def on_trace_start(self, trace: Trace) -> None:
        try:
            parent = mlflow.get_current_active_span()
        except Exception:  # noqa: BLE001 - tracing never fails a request
            parent = None
        if parent is not None:
            with self._lock:
                self._nodes[trace.trace_id] = _Node(parent, None)

    def on_trace_end(self, trace: Trace) -> None:
        with self._lock:
            self._nodes.pop(trace.trace_id, None)

    def on_span_start(self, span: Span[Any]) -> None:
        with self._lock:
            parent = self._nodes.get(span.parent_id or "") or self._nodes.get(span.trace_id)
            offered = self._offers.pop(span.parent_id or "", None)
        if parent is None:
            return
        try:
            described = describe(span.span_data)
            if described is None:
                node = _Node(parent.live, parent.mirror)
            else:
                name, span_type = described
                live = mlflow.start_span_no_context(name=name, span_type=span_type, parent_span=parent.live)
                node = _Node(live, _Mirror(live, span.span_data.type, offered), owned=True)
                if offered is not None and parent.mirror is not None and parent.mirror.kind == "agent":
                    parent.mirror.offered = parent.mirror.offered or offered
        except Exception:
            _logger.debug("could not start a span", exc_info=True)
            return
        with self._lock:
            self._nodes[span.span_id] = node

    def on_span_end(self, span: Span[Any]) -> None:
        with self._lock:
            node = self._nodes.pop(span.span_id, None)
            self._offers.pop(span.span_id, None)
        if node is None or node.mirror is None or not node.owned:
            return
        try:
            self._finish(node.mirror, span)
        except Exception:
            _logger.debug("could not end a span", exc_info=True)
            try:
                node.live.end(status="ERROR")
            except Exception:
                _logger.debug("could not close a span", exc_info=True)

    def _finish(self, mirror: _Mirror, span: Span[Any]) -> None:
        live = mirror.live
        done = record(span.span_data, mirror.offered, mirror.call_id)
        if done.inputs is not None:
            write_payload(live, SpanAttributeKey.INPUTS, done.inputs, self.limit)
        if done.outputs is not None:
            write_payload(live, SpanAttributeKey.OUTPUTS, done.outputs, self.limit)
        for key, value in done.attributes.items():
            write_payload(live, key, value, self.limit)
        write_otel_attributes(live, done.otel)
        if done.name:
            rename(live, done.name)
        status: SpanStatus | str = "OK"
        if span.error:
            message = str(span.error.get("message") or "error")
            status = SpanStatus(SpanStatusCode.ERROR, description=message)
            stack = json.dumps(span.error.get("data"), default=str)
            exception: dict[str, Any] = {
                "exception.message": message,
                "exception.type": "",
                "exception.stacktrace": stack,
            }
            live.add_event(SpanEvent(name="exception", attributes=exception))  # type: ignore[abstract]
        live.end(status=status)

    def shutdown(self) -> None:
        with self._lock:
            self._nodes.clear()
            self._offers.clear()

    def force_flush(self) -> None:
        return None


_installed: MlflowSpanBridge | None = None


def install(environ: Mapping[str, str] | None = None) -> MlflowSpanBridge:
    """Route the SDK's spans to MLflow (and nowhere else). Idempotent.

    ``environ`` (default ``os.environ``) gives the payload bound,
    ``AGENTSHIP_TRACE_MAX_PAYLOAD_CHARS``."""
    global _installed
    if _installed is None:
        _installed = MlflowSpanBridge(PayloadLimit.from_environ(os.environ if environ is None else environ))
        set_trace_processors([_installed])
    return _installed


def installed() -> MlflowSpanBridge | None:
    return _installed


class TracingHooks(RunHooks[Any]):
    """Run hooks that tell the installed bridge each tool call's id (the SDK's function span
    does not carry it). Stateless: one instance serves every run."""

    async def on_tool_start(self, context: RunContextWrapper[Any], agent: Any, tool: Tool) -> None:
        bridge = _installed
        if bridge is None or not isinstance(context, ToolContext):
            return
        try:
            current = get_current_span()
            if current is not None and current.span_data.type == "function":
                bridge.note_call_id(current.span_id, context.tool_call_id)
        except Exception:
            _logger.debug("could not note a tool call id", exc_info=True)


class OffersTools:
    """Mixed into a model class: each call reports its tools to the installed bridge first."""

    def _offer(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        bridge = _installed
        if bridge is not None:
            try:
                bridge.offer(_offered(args, kwargs))
            except Exception:
                _logger.debug("could not note the offered tools", exc_info=True)

    async def get_response(self, *args: Any, **kwargs: Any) -> Any:
        self._offer(args, kwargs)
        return await super().get_response(*args, **kwargs)  # type: ignore[misc]

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        self._offer(args, kwargs)
        return super().stream_response(*args, **kwargs)  # type: ignore[misc]


_MODEL_ARGUMENTS = ("system_instructions", "input", "model_settings", "tools", "output_schema", "handoffs")
"""``Model.get_response``'s and ``stream_response``'s leading parameters, in order."""


def _offered(args: Sequence[Any], kwargs: Mapping[str, Any]) -> Offered:
    """What a model call is given besides its input: tools, handoffs, settings, instructions."""
    given = {**dict(zip(_MODEL_ARGUMENTS, args, strict=False)), **kwargs}
    settings = given.get("model_settings")
    return Offered(
        tools=list(given.get("tools") or ()),
        handoffs=list(given.get("handoffs") or ()),
        settings=settings.to_traceable_dict() if isinstance(settings, ModelSettings) else None,
        instructions=given.get("system_instructions"),
    )


class TracedChatCompletionsModel(OffersTools, OpenAIChatCompletionsModel):
    """The SDK's Chat Completions model, reporting each call's tools to the trace."""


class TracedResponsesModel(OffersTools, OpenAIResponsesModel):
    """The SDK's Responses model, reporting each call's tools to the trace."""
