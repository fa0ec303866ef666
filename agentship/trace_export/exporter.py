"""The span exporter MLflow's span processor calls: it queues whole traces, nothing else.

MLflow's processor hands every ended span to its exporter. This one ignores all but root spans;
when a root span ends (and no span of its trace is still open), it takes the finished trace out
of MLflow's in-memory trace manager, exactly as MLflow's exporter does, and offers it to the
:class:`~agentship.trace_export.pipeline.TracePipeline`. That is the whole cost a request pays.
A root span that ends while a child is still open (a span from a background thread) waits until
that child ends, as in MLflow.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from mlflow.tracing.trace_manager import InMemoryTraceManager
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from agentship.trace_export.pipeline import Finished, TracePipeline


class QueueingSpanExporter(SpanExporter):
    def __init__(self, pipeline: TracePipeline) -> None:
        self.pipeline = pipeline
        self._deferred: dict[int, ReadableSpan] = {}
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        manager = InMemoryTraceManager.get_instance()
        if self._deferred:
            self._release_deferred(manager)
        for span in spans:
            if span.parent is not None or span.context is None:
                continue
            trace_id = span.context.trace_id
            if manager.has_open_spans(trace_id):
                with self._lock:
                    self._deferred[trace_id] = span
                continue
            self._offer(manager, trace_id)
        return SpanExportResult.SUCCESS

    def _release_deferred(self, manager: InMemoryTraceManager) -> None:
        with self._lock:
            waiting = list(self._deferred)
        for trace_id in waiting:
            if manager.has_open_spans(trace_id):
                continue
            with self._lock:
                if self._deferred.pop(trace_id, None) is None:
                    continue
            self._offer(manager, trace_id)

    def _offer(self, manager: InMemoryTraceManager, otel_trace_id: int) -> None:
        managed = manager.pop_trace(otel_trace_id)
        if managed is not None:
            self.pipeline.offer(Finished(trace=managed.trace, prompts=tuple(managed.prompts or ())))

    def shutdown(self) -> None:
        """Queue the traces whose root waited for a child that never ended (the pipeline stays)."""
        manager = InMemoryTraceManager.get_instance()
        with self._lock:
            waiting = list(self._deferred)
            self._deferred.clear()
        for trace_id in waiting:
            self._offer(manager, trace_id)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.pipeline.flush(timeout_millis / 1000)
