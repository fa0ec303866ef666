"""Agents SDK spans → MLflow spans, nested under the request's active MLflow span.

A small ``TracingProcessor`` instead of ``mlflow.openai.autolog()``: autolog also patches the
OpenAI client and the runner, which doubles the model-call spans and, measured under load,
costs more CPU per request than the rest of the request path. Installed with
:func:`install`, it replaces the SDK's default processors, so nothing is exported to OpenAI.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import mlflow
from agents.tracing import Span, Trace, TracingProcessor
from mlflow.entities import LiveSpan, SpanType
from mlflow.tracing.constant import SpanAttributeKey

from agents import set_trace_processors

_logger = logging.getLogger(__name__)

_KINDS = {
    "agent": SpanType.AGENT,
    "generation": SpanType.CHAT_MODEL,
    "response": SpanType.CHAT_MODEL,
    "function": SpanType.TOOL,
    "handoff": SpanType.CHAIN,
    "guardrail": SpanType.CHAIN,
    "custom": SpanType.CHAIN,
}


def _usage(raw: Any) -> dict[str, int] | None:
    if raw is None:
        return None
    get = raw.get if isinstance(raw, dict) else (lambda k, d=None: getattr(raw, k, d))
    inputs, outputs = get("input_tokens"), get("output_tokens")
    if not inputs and not outputs:  # unreported: the SDK records zeros (llama.cpp's streams)
        return None
    total = get("total_tokens") or (inputs or 0) + (outputs or 0)
    return {"input_tokens": int(inputs or 0), "output_tokens": int(outputs or 0), "total_tokens": int(total)}


def describe(data: Any) -> tuple[str, str, Any] | None:
    """(name, MLflow span type, inputs) for an SDK span; None for spans not mirrored."""
    kind = data.type
    if kind not in _KINDS:
        return None  # task, turn, speech, ...: their children attach to the parent
    if kind == "agent":
        return data.name, _KINDS[kind], {"tools": data.tools, "handoffs": data.handoffs}
    if kind == "generation":
        return f"generation {data.model or ''}".strip(), _KINDS[kind], data.input
    if kind == "response":
        return "response", _KINDS[kind], data.input
    if kind == "function":
        return data.name, _KINDS[kind], data.input
    if kind == "handoff":
        return f"handoff to {data.to_agent}", _KINDS[kind], {"from_agent": data.from_agent}
    return getattr(data, "name", kind), _KINDS[kind], None


def outcome(data: Any) -> tuple[Any, dict[str, Any]]:
    """(outputs, attributes) of a finished SDK span."""
    kind = data.type
    if kind == "generation":
        usage = _usage(data.usage)
        return data.output, ({SpanAttributeKey.CHAT_USAGE: usage} if usage else {})
    if kind == "response":
        response = data.response
        usage = _usage(getattr(response, "usage", None) or data.usage)
        output = (
            [item.model_dump(exclude_none=True) for item in response.output] if response is not None else None
        )
        return output, ({SpanAttributeKey.CHAT_USAGE: usage} if usage else {})
    if kind == "function":
        return data.output, {}
    if kind == "handoff":
        return {"to_agent": data.to_agent}, {}
    return None, {}


class MlflowSpanBridge(TracingProcessor):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parents: dict[str, LiveSpan] = {}  # SDK trace or span id -> MLflow span

    def on_trace_start(self, trace: Trace) -> None:
        try:
            parent = mlflow.get_current_active_span()
        except Exception:  # noqa: BLE001 - tracing never fails a request
            parent = None
        if parent is not None:
            with self._lock:
                self._parents[trace.trace_id] = parent

    def on_trace_end(self, trace: Trace) -> None:
        with self._lock:
            self._parents.pop(trace.trace_id, None)

    def on_span_start(self, span: Span[Any]) -> None:
        with self._lock:
            parent = self._parents.get(span.parent_id or "") or self._parents.get(span.trace_id)
        if parent is None:
            return
        try:
            described = describe(span.span_data)
            if described is None:
                live = parent
            else:
                name, span_type, inputs = described
                live = mlflow.start_span_no_context(
                    name=name, span_type=span_type, parent_span=parent, inputs=inputs
                )
        except Exception:
            _logger.debug("could not start a span", exc_info=True)
            return
        with self._lock:
            self._parents[span.span_id] = live

    def on_span_end(self, span: Span[Any]) -> None:
        with self._lock:
            live = self._parents.pop(span.span_id, None)
        if live is None or describe(span.span_data) is None:
            return
        try:
            outputs, attributes = outcome(span.span_data)
            live.end(outputs=outputs, attributes=attributes or None, status="ERROR" if span.error else "OK")
        except Exception:
            _logger.debug("could not end a span", exc_info=True)

    def shutdown(self) -> None:
        with self._lock:
            self._parents.clear()

    def force_flush(self) -> None:
        return None


_installed = False


def install() -> None:
    """Route the SDK's spans to MLflow (and nowhere else). Idempotent."""
    global _installed
    if not _installed:
        set_trace_processors([MlflowSpanBridge()])
        _installed = True
