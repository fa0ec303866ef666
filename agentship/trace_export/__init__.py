"""Batched trace export for the serving process: traces leave the hot path, in bounded batches.

MLflow's exporter writes each trace in several transactions (its spans five at a time, then the
trace info, merged into the row the spans created, after an experiment lookup), on threads fed
by unbounded retries: measured on a 2-core machine, about 27 ms of CPU per 5-span trace into
SQLite, more than the agent run itself. ``install`` keeps MLflow's span processor (trace ids,
metadata, sessions, the in-memory trace manager) and swaps its exporter for one that queues each
finished trace; one writer thread writes the queue in batches (:mod:`.sinks`), about 5 ms of CPU
per trace. The queue is bounded and its drops are counted; a tracking server that is down or
slow costs requests nothing, and the traces queued meanwhile are written when it is back.

Settings (``AGENTSHIP_TRACE_*``) are in :mod:`.settings`; ``AGENTSHIP_TRACE_EXPORT=mlflow``
keeps MLflow's own exporter. Stores other than a SQL database or an MLflow tracking server
(a file store, Databricks) keep MLflow's exporter too. OTLP export (``OTEL_EXPORTER_OTLP_*``) is
MLflow's, beside this, untouched.
"""

from __future__ import annotations

import atexit
import logging
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import mlflow
from mlflow.tracing import provider as _provider
from mlflow.tracing.client import TracingClient
from mlflow.utils.uri import is_databricks_uri
from opentelemetry.sdk.trace import SpanProcessor

from agentship.trace_export.exporter import QueueingSpanExporter
from agentship.trace_export.pipeline import ExportListener, ExportStats, Finished, TracePipeline
from agentship.trace_export.settings import ExportSettings
from agentship.trace_export.sinks import RestSink, StoreSink

__all__ = ["ExportListener", "ExportSettings", "ExportStats", "Finished", "TraceExport", "install"]

_logger = logging.getLogger(__name__)


@dataclass
class TraceExport:
    """The batched export installed in this process."""

    tracking_uri: str
    pipeline: TracePipeline
    exporter: QueueingSpanExporter
    _restore: Callable[[], None]

    def stats(self) -> ExportStats:
        return self.pipeline.stats()

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Write every trace finished so far; False if that took longer than ``timeout_s``."""
        return self.pipeline.flush(timeout_s)

    def close(self, timeout_s: float | None = None) -> ExportStats:
        """Write what is left (within the shutdown timeout) and give tracing back to MLflow."""
        self.exporter.shutdown()
        stats = self.pipeline.close(timeout_s)
        self._restore()
        return stats

    def describe(self) -> str:
        return f"batched to {self.pipeline.sink.describe()} ({self.pipeline.settings.describe()})"


_installed: TraceExport | None = None


def _is(store: object, module: str, name: str) -> bool:
    """Whether ``store`` is MLflow's ``module.name``, without importing the module: MLflow imported
    it if it made a store of it (the SQL store's module alone takes about a second to import)."""
    kind = getattr(sys.modules.get(module), name, None)
    return isinstance(kind, type) and isinstance(store, kind)


def install(environ: Mapping[str, str], listener: ExportListener | None = None) -> TraceExport | None:
    """Batch this process's traces to MLflow's tracking URI; None when MLflow keeps exporting."""
    global _installed
    settings = ExportSettings.from_environ(environ)
    if settings is None:
        return None
    try:
        client = TracingClient(mlflow.get_tracking_uri())
        store = client.store
    except Exception as exc:  # noqa: BLE001 - MLflow's own tracing will say what is wrong
        _logger.warning("trace export: MLflow's own (the tracking store cannot be opened: %s)", exc)
        return None
    if _is(store, "mlflow.store.tracking.sqlalchemy_store", "SqlAlchemyStore"):
        sink: StoreSink | RestSink = StoreSink(client)
    elif _is(store, "mlflow.store.tracking.rest_store", "RestStore") and not is_databricks_uri(
        client.tracking_uri
    ):
        sink = RestSink(client, settings.timeout_s)
    else:
        _logger.info("trace export: MLflow's own, for a %s", type(store).__name__)
        return None
    if _installed is not None:
        _installed.close()
    pipeline = TracePipeline(sink, settings, listener)
    exporter = QueueingSpanExporter(pipeline)
    restore = _use_exporter(exporter, client.tracking_uri)
    _installed = TraceExport(client.tracking_uri, pipeline, exporter, restore)
    atexit.register(_close_at_exit, _installed)
    return _installed


def _use_exporter(exporter: QueueingSpanExporter, tracking_uri: str) -> Callable[[], None]:
    """Make MLflow's span processor for ``tracking_uri`` use ``exporter``, synchronously.

    MLflow builds its processor in ``mlflow.tracing.provider._get_mlflow_span_processor``, each
    time the tracer provider is (re)initialised; wrapping that keeps the swap across MLflow's
    own resets. ``use_batch_processor=False`` because the exporter is its own queue: OpenTelemetry's
    batch processor would add a second queue and thread per span. tests/unit/test_trace_export.py
    pins this against the installed MLflow.
    """
    from mlflow.tracing.processor.mlflow_v3 import MlflowV3SpanProcessor

    original = _provider._get_mlflow_span_processor

    def processor(tracking_uri: str) -> SpanProcessor:
        if tracking_uri != exporter_uri:
            return original(tracking_uri)
        return MlflowV3SpanProcessor(
            span_exporter=exporter,
            export_metrics=_provider.should_export_otlp_metrics(),
            use_batch_processor=False,
        )

    exporter_uri = tracking_uri
    _provider._get_mlflow_span_processor = processor
    _provider.provider.reset()

    def restore() -> None:
        global _installed
        if _provider._get_mlflow_span_processor is processor:
            _provider._get_mlflow_span_processor = original
            _provider.provider.reset()
        _installed = None

    return restore


def _close_at_exit(export: TraceExport) -> None:
    if _installed is export:
        stats = export.close()
        if stats.dropped or stats.waiting:
            _logger.warning("trace export at exit: %d traces dropped", stats.dropped + stats.waiting)
