"""Child spans for backend steps (model calls, tool calls) under the request's MLflow span, and
the request's conversation and user on its trace.

Tracing is best effort: a failure here is logged at debug level and never fails a request.
Spans are only opened when a request span is active, so nothing becomes a stray trace.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import mlflow
from mlflow.entities import LiveSpan, SpanEvent, SpanStatus, SpanStatusCode, SpanType
from mlflow.tracing.constant import GenAiSemconvKey, SpanAttributeKey

from agentship import genai_attributes as genai
from agentship.trace_payloads import PayloadLimit, write_otel_attributes, write_payload

_logger = logging.getLogger(__name__)

LLM = SpanType.LLM
TOOL = SpanType.TOOL
GUARDRAIL = SpanType.GUARDRAIL


def tag_conversation(conversation_id: str | None, user_id: str | None) -> None:
    """Record the request's ``conversation_id`` and ``user_id`` on the active trace.

    They become the trace's ``mlflow.trace.session`` and ``mlflow.trace.user`` metadata, which
    MLflow's UI groups traces by (its Sessions view), and the conversation the request span's
    ``gen_ai.conversation.id``, for OTLP readers. Without an active trace, nothing happens.
    """
    if not conversation_id and not user_id:
        return
    try:
        span = mlflow.get_current_active_span()
        if span is None:
            return
        mlflow.update_current_trace(session_id=conversation_id or None, user=user_id or None)
        write_otel_attributes(span, {GenAiSemconvKey.CONVERSATION_ID: conversation_id or None})
    except Exception:
        _logger.debug("could not record the conversation on the trace", exc_info=True)


def tool_arguments(raw: Any) -> Any:
    """A tool call's arguments as JSON data, as MLflow's integrations record them (the text if it
    is not JSON)."""
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


@dataclass
class _Step:
    span: LiveSpan
    span_type: str
    inputs: Any
    model: str | None
    parameters: Mapping[str, Any] | None
    call_id: str | None


class StepSpans:
    """Opens and closes step spans by key, as a stream of backend events goes by.

    A step's payloads (its inputs, given when it starts, and its outputs) are written when it
    ends, serialised once and bounded by ``limit``; an LLM step records its model, settings and
    usage, a tool step its call id, each with the GenAI semantic-convention attributes.
    """

    def __init__(self, limit: PayloadLimit | None = None) -> None:
        self._limit = limit or PayloadLimit()
        try:
            self._parent: LiveSpan | None = mlflow.get_current_active_span()
        except Exception:
            _logger.debug("no active MLflow span", exc_info=True)
            self._parent = None
        self._open: dict[str, _Step] = {}

    def start(
        self,
        key: str,
        name: str,
        span_type: str,
        inputs: Any = None,
        *,
        model: str | None = None,
        parameters: Mapping[str, Any] | None = None,
        call_id: str | None = None,
    ) -> None:
        if self._parent is None or key in self._open:
            return
        try:
            span = mlflow.start_span_no_context(name=name, span_type=span_type, parent_span=self._parent)
        except Exception:
            _logger.debug("could not start span %s", name, exc_info=True)
            return
        self._open[key] = _Step(span, span_type, inputs, model, parameters, call_id)

    def end(
        self, key: str, outputs: Any = None, usage: dict[str, int] | None = None, error: str | None = None
    ) -> None:
        step = self._open.pop(key, None)
        if step is None:
            return
        try:
            _finish(step, outputs, usage, error, self._limit)
        except Exception:
            _logger.debug("could not end span %s", key, exc_info=True)
            try:
                step.span.end(status="ERROR")
            except Exception:
                _logger.debug("could not close span %s", key, exc_info=True)

    def span(
        self,
        key: str,
        name: str,
        span_type: str,
        inputs: Any,
        outputs: Any,
        usage: dict[str, int] | None = None,
    ) -> None:
        """A span for a step that is already finished."""
        self.start(key, name, span_type, inputs)
        self.end(key, outputs, usage)

    def close_all(self, error: str | None = None) -> None:
        for key in list(self._open):
            self.end(key, error=error or "the request ended before this step finished")


def _finish(
    step: _Step, outputs: Any, usage: dict[str, int] | None, error: str | None, limit: PayloadLimit
) -> None:
    span = step.span
    if step.inputs is not None:
        write_payload(span, SpanAttributeKey.INPUTS, step.inputs, limit)
    if outputs is not None:
        write_payload(span, SpanAttributeKey.OUTPUTS, outputs, limit)
    if usage:
        write_payload(span, SpanAttributeKey.CHAT_USAGE, usage, limit)
    if step.span_type == LLM:
        if step.model:
            write_payload(span, SpanAttributeKey.MODEL, step.model, limit)
        if step.parameters:
            write_payload(span, "model_config", dict(step.parameters), limit)
        write_otel_attributes(span, genai.model_call(LLM, step.model, step.parameters, usage))
    elif step.span_type == TOOL:
        write_otel_attributes(span, genai.tool_call(span.name, step.call_id))
    status: SpanStatus | str = "OK"
    if error:
        status = SpanStatus(SpanStatusCode.ERROR, description=error)
        span.add_event(SpanEvent(name="exception", attributes={"exception.message": error}))  # type: ignore[abstract]
    span.end(status=status)
