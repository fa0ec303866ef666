"""Child spans for backend steps (model calls, tool calls) under the request's MLflow span, and
the request's conversation and user on its trace.

Tracing is best effort: a failure here is logged at debug level and never fails a request.
Spans are only opened when a request span is active, so nothing becomes a stray trace.
"""

from __future__ import annotations

import logging
from typing import Any

import mlflow
from mlflow.entities import LiveSpan, SpanType
from mlflow.tracing.constant import SpanAttributeKey

_logger = logging.getLogger(__name__)

LLM = SpanType.LLM
TOOL = SpanType.TOOL
GUARDRAIL = SpanType.GUARDRAIL


def tag_conversation(conversation_id: str | None, user_id: str | None) -> None:
    """Record the request's ``conversation_id`` and ``user_id`` on the active trace.

    They become the trace's ``mlflow.trace.session`` and ``mlflow.trace.user`` metadata, which
    MLflow's UI groups traces by (its Sessions view). Without an active trace, nothing happens.
    """
    if not conversation_id and not user_id:
        return
    try:
        if mlflow.get_current_active_span() is None:
            return
        mlflow.update_current_trace(session_id=conversation_id or None, user=user_id or None)
    except Exception:
        _logger.debug("could not record the conversation on the trace", exc_info=True)


class StepSpans:
    """Opens and closes step spans by key, as a stream of backend events goes by."""

    def __init__(self) -> None:
        try:
            self._parent: LiveSpan | None = mlflow.get_current_active_span()
        except Exception:
            _logger.debug("no active MLflow span", exc_info=True)
            self._parent = None
        self._open: dict[str, LiveSpan] = {}

    def start(self, key: str, name: str, span_type: str, inputs: Any = None) -> None:
        if self._parent is None or key in self._open:
            return
        try:
            self._open[key] = mlflow.start_span_no_context(
                name=name, span_type=span_type, parent_span=self._parent, inputs=inputs
            )
        except Exception:
            _logger.debug("could not start span %s", name, exc_info=True)

    def end(
        self, key: str, outputs: Any = None, usage: dict[str, int] | None = None, error: str | None = None
    ) -> None:
        span = self._open.pop(key, None)
        if span is None:
            return
        try:
            attributes = {SpanAttributeKey.CHAT_USAGE: usage} if usage else None
            span.end(outputs=outputs, attributes=attributes, status="ERROR" if error else "OK")
        except Exception:
            _logger.debug("could not end span %s", key, exc_info=True)

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
