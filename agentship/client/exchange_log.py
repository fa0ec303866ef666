"""Out-of-band MLflow logging of client exchanges: the observability path beside the live one.

Each exchange becomes one MLflow run with tags (session_id, agent_name, model, tools_count, and
for an A2A agent a2a_url, task_id, context_id), metrics (latency_ms, response_length, token
counts) and artifacts (question.txt, answer.txt, response.json, history.json), and one trace
linked to the run, whose ``mlflow.trace.session`` (the conversation) and ``mlflow.trace.user``
metadata group the exchanges by conversation in MLflow's UI. A background thread does the
logging from a bounded queue, so it never slows or fails the call; when the queue is full,
exchanges are dropped with a warning.
"""

from __future__ import annotations

import json
import logging
import queue
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import SpanType
from mlflow.tracing.constant import TraceMetadataKey
from mlflow.tracking import MlflowClient

_logger = logging.getLogger("agentship.client")


@dataclass(frozen=True)
class Exchange:
    question: str
    answer: str
    response: dict[str, Any]
    latency_ms: float
    session_id: str
    history: list[dict[str, Any]] = field(default_factory=list)
    agent: dict[str, Any] = field(default_factory=dict)  # name, model, tools_count when known
    tags: dict[str, str] = field(default_factory=dict)
    """More run tags (an A2A exchange's a2a_url, task_id and context_id)."""
    usage: dict[str, Any] | None = None
    """Token usage, when the response does not carry it as Responses ``usage``."""
    user_id: str | None = None
    ended_at: float = field(default_factory=time.time)


def exchange_tags(exchange: Exchange) -> dict[str, str]:
    return {
        "session_id": exchange.session_id,
        "agent_name": str(exchange.agent.get("name", "unknown")),
        "model": str(exchange.agent.get("model", "unknown")),
        "tools_count": str(exchange.agent.get("tools_count", "unknown")),
        **exchange.tags,
    }


def exchange_metrics(exchange: Exchange) -> dict[str, float]:
    usage = exchange.usage or exchange.response.get("usage") or {}
    metrics = {"latency_ms": exchange.latency_ms, "response_length": float(len(exchange.answer))}
    for key in ("input_tokens", "output_tokens", "total_tokens"):
        if usage.get(key) is not None:
            metrics[key] = float(usage[key])
    return metrics


class ExchangeLogger:
    """Logs exchanges to MLflow in the background. Call :meth:`close` to flush at exit."""

    def __init__(
        self, experiment: str = "agent-exchanges", tracking_uri: str | None = None, max_pending: int = 1000
    ) -> None:
        self._experiment = experiment
        self._tracking_uri = tracking_uri
        # Traces go where MLflow's tracing sends them: only log them when that is this store.
        self._traces = tracking_uri is None or tracking_uri == mlflow.get_tracking_uri()
        self._queue: queue.Queue[Exchange | None] = queue.Queue(maxsize=max_pending)
        self.logged = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._work, name="exchange-logger", daemon=True)
        self._thread.start()

    def submit(self, exchange: Exchange) -> None:
        """Queue an exchange; never blocks, never raises."""
        try:
            self._queue.put_nowait(exchange)
        except queue.Full:
            _logger.warning("exchange log queue is full; dropping an exchange")

    def close(self, timeout: float = 30.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)
        try:
            mlflow.flush_trace_async_logging()
        except Exception:
            _logger.debug("could not flush the exchange traces", exc_info=True)

    def _work(self) -> None:
        client = MlflowClient(tracking_uri=self._tracking_uri)
        experiment_id: str | None = None
        while (exchange := self._queue.get()) is not None:
            try:
                if experiment_id is None:
                    found = client.get_experiment_by_name(self._experiment)
                    experiment_id = (
                        found.experiment_id if found else client.create_experiment(self._experiment)
                    )
                run_id = self._log(client, experiment_id, exchange)
                self.logged += 1
            except Exception:
                self.failed += 1
                _logger.warning("could not log an exchange to MLflow", exc_info=True)
                continue
            if self._traces:
                try:
                    _log_trace(experiment_id, run_id, exchange)
                except Exception:
                    _logger.warning("could not log an exchange's trace to MLflow", exc_info=True)

    @staticmethod
    def _log(client: MlflowClient, experiment_id: str, exchange: Exchange) -> str:
        run = client.create_run(
            experiment_id, tags=exchange_tags(exchange), run_name=f"exchange-{exchange.session_id}"
        )
        run_id = run.info.run_id
        for key, value in exchange_metrics(exchange).items():
            client.log_metric(run_id, key, value)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            (folder / "question.txt").write_text(exchange.question)
            (folder / "answer.txt").write_text(exchange.answer)
            (folder / "response.json").write_text(json.dumps(exchange.response, indent=2))
            (folder / "history.json").write_text(json.dumps(exchange.history, indent=2))
            client.log_artifacts(run_id, str(folder))
        client.set_terminated(run_id)
        return run_id


def _log_trace(experiment_id: str, run_id: str, exchange: Exchange) -> None:
    """The exchange as a trace of the run, in the exchange's session (and user) for MLflow's UI."""
    metadata = {TraceMetadataKey.TRACE_SESSION: exchange.session_id, TraceMetadataKey.SOURCE_RUN: run_id}
    if exchange.user_id:
        metadata[TraceMetadataKey.TRACE_USER] = exchange.user_id
    ended_ns = int(exchange.ended_at * 1e9)
    span = mlflow.start_span_no_context(
        "exchange",
        span_type=SpanType.AGENT,
        inputs={"question": exchange.question},
        tags=exchange_tags(exchange),
        metadata=metadata,
        experiment_id=experiment_id,
        start_time_ns=ended_ns - int(exchange.latency_ms * 1e6),
    )
    span.end(outputs={"answer": exchange.answer}, end_time_ns=ended_ns)


__all__ = ["Exchange", "ExchangeLogger"]
