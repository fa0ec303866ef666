"""The batched trace export: its settings and retry rules (pure), its queue against a sink the
test controls (bounds, retries, refusals, shutdown), and, against a real SQLite tracking store,
that it writes exactly what MLflow's own exporter writes, through MLflow's span processor."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow.entities import SpanType, Trace, TraceData, TraceInfo, TraceLocation, TraceState
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, TEMPORARILY_UNAVAILABLE
from mlflow.tracing.provider import _get_trace_exporter

from agentship import trace_export
from agentship.errors import ConfigError
from agentship.trace_export import ExportSettings, Finished
from agentship.trace_export.exporter import QueueingSpanExporter
from agentship.trace_export.pipeline import TracePipeline, backoff, retryable

# -- MLflow's Databricks probe ---------------------------------------------------------------------
_PROBE = """
import importlib.util, json, sys
from mlflow.tracking.request_header.registry import resolve_request_headers
before = resolve_request_headers()
from agentship.trace_export.sinks import skip_absent_probes
absent = skip_absent_probes(("dbruntime", "IPython", "pyspark", "json", "agentship_no_such_module"))
failed = []
for name in absent:
    try:
        __import__(name)
    except ImportError:
        failed.append(name)
print(json.dumps({"absent": absent, "failed": failed, "json_kept": sys.modules["json"] is json,
                  "same_headers": resolve_request_headers() == before}))
"""


def test_absent_databricks_probes_fail_at_once_and_mlflows_headers_stay_the_same() -> None:
    """In a fresh interpreter: the probes that are not installed are marked absent (importing them
    fails), an installed module is untouched, and MLflow resolves the same request headers."""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=120
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    absent = ["dbruntime", "IPython", "pyspark", "agentship_no_such_module"]
    assert result == {"absent": absent, "failed": absent, "json_kept": True, "same_headers": True}


# -- settings and rules -----------------------------------------------------------------------------
def test_settings_default_to_batched_and_mlflow_keeps_mlflows_exporter() -> None:
    assert ExportSettings.from_environ({}) == ExportSettings()
    assert ExportSettings.from_environ({"AGENTSHIP_TRACE_EXPORT": "mlflow"}) is None
    tuned = ExportSettings.from_environ(
        {"AGENTSHIP_TRACE_QUEUE_SIZE": "50", "AGENTSHIP_TRACE_EXPORT_TIMEOUT_S": "2.5"}
    )
    assert tuned is not None and (tuned.queue_size, tuned.timeout_s) == (50, 2.5)


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("AGENTSHIP_TRACE_EXPORT", "kafka", "must be one of batched, mlflow"),
        ("AGENTSHIP_TRACE_QUEUE_SIZE", "lots", "must be a number"),
        ("AGENTSHIP_TRACE_BATCH_SIZE", "0", "must be at least 1"),
        ("AGENTSHIP_TRACE_FLUSH_INTERVAL_S", "-1", "must be at least"),
    ],
)
def test_bad_settings_name_the_variable(name: str, value: str, says: str) -> None:
    with pytest.raises(ConfigError, match=name) as raised:
        ExportSettings.from_environ({name: value})
    assert says in raised.value.message


def test_only_a_client_error_is_not_worth_retrying() -> None:
    assert not retryable(MlflowException("bad trace", error_code=INVALID_PARAMETER_VALUE))
    assert retryable(MlflowException("later", error_code=TEMPORARILY_UNAVAILABLE))
    assert retryable(ConnectionRefusedError())
    assert retryable(TimeoutError())
    assert [backoff(n, 0.5, 4.0) for n in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 4.0]


# -- the queue against a sink this test controls ----------------------------------------------------
def finished(n: int) -> Finished:
    info = TraceInfo(
        trace_id=f"tr-{n:04d}",
        trace_location=TraceLocation.from_experiment_id("0"),
        request_time=0,
        state=TraceState.OK,
    )
    return Finished(Trace(info=info, data=TraceData(spans=[])))


class Sink:
    """Writes into a list; fails while ``down``; refuses the trace ids in ``bad``."""

    def __init__(self) -> None:
        self.written: list[str] = []
        self.batches: list[int] = []
        self.down = threading.Event()
        self.bad: set[str] = set()
        self.calls = 0

    def write(self, batch: Sequence[Finished]) -> None:
        self.calls += 1
        if self.down.is_set():
            raise ConnectionRefusedError("the tracking server is away")
        ids = [f.trace.info.trace_id for f in batch]
        if self.bad & set(ids):
            raise MlflowException("invalid trace", error_code=INVALID_PARAMETER_VALUE)
        self.batches.append(len(batch))
        self.written.extend(ids)

    def describe(self) -> str:
        return "a list"


class Listener:
    def __init__(self) -> None:
        self.drops = 0
        self.exports = 0
        self.depths: list[int] = []

    def depth(self, traces: int) -> None:
        self.depths.append(traces)

    def dropped(self, traces: int) -> None:
        self.drops += traces

    def exported(self, traces: int) -> None:
        self.exports += traces


@pytest.fixture
def sink() -> Sink:
    return Sink()


def pipeline(sink: Sink, listener: Listener | None = None, **settings: Any) -> TracePipeline:
    base = {"interval_s": 0.05, "max_backoff_s": 0.05, "shutdown_timeout_s": 2.0, **settings}
    return TracePipeline(sink, ExportSettings(**base), listener)


def test_traces_are_written_in_order_in_batches_of_at_most_batch_size(sink: Sink) -> None:
    listener = Listener()
    queue = pipeline(sink, listener, batch_size=40)
    for n in range(250):
        assert queue.offer(finished(n))
    assert queue.flush(10)
    assert sink.written == [f"tr-{n:04d}" for n in range(250)]
    assert max(sink.batches) <= 40 and len(sink.batches) < 250
    stats = queue.close()
    assert (stats.exported, stats.dropped, stats.failed, stats.waiting) == (250, 0, 0, 0)
    assert listener.exports == 250 and listener.depths[-1] == 0


def test_a_full_queue_drops_new_traces_and_counts_them_and_keeps_the_rest_for_later(sink: Sink) -> None:
    listener = Listener()
    sink.down.set()
    queue = pipeline(sink, listener, queue_size=5)
    accepted = [queue.offer(finished(n)) for n in range(12)]
    assert accepted == [True] * 5 + [False] * 7
    assert queue.stats().dropped == 7 and listener.drops == 7
    deadline = time.monotonic() + 5
    while not listener.depths or listener.depths[-1] != 5:  # the writer retries and reports the backlog
        assert time.monotonic() < deadline, listener.depths
        time.sleep(0.01)
    sink.down.clear()
    assert queue.flush(10)
    assert sink.written == [f"tr-{n:04d}" for n in range(5)]
    stats = queue.close()
    assert (stats.exported, stats.dropped, stats.waiting) == (5, 7, 0) and stats.retries >= 1


def test_a_refused_trace_does_not_take_its_batch_with_it(sink: Sink) -> None:
    sink.bad = {"tr-0003"}
    queue = pipeline(sink, batch_size=10)
    for n in range(8):
        queue.offer(finished(n))
    assert queue.flush(10)
    stats = queue.close()
    assert sorted(sink.written) == [f"tr-{n:04d}" for n in range(8) if n != 3]
    assert (stats.exported, stats.failed, stats.dropped) == (7, 1, 0)
    assert "invalid trace" in (stats.last_error or "")


def test_shutdown_with_the_server_away_gives_up_in_time_and_counts_what_it_lost(sink: Sink) -> None:
    sink.down.set()
    queue = pipeline(sink, max_backoff_s=30.0)  # a long backoff must not hold shutdown
    for n in range(6):
        queue.offer(finished(n))
    time.sleep(0.3)  # the writer is in its backoff
    started = time.monotonic()
    stats = queue.close(timeout_s=1.0)
    assert time.monotonic() - started < 3.0
    assert (stats.exported, stats.dropped, stats.waiting) == (0, 6, 0)
    assert not queue.offer(finished(99)) and queue.stats().dropped == 7


def test_shutdown_writes_what_is_queued(sink: Sink) -> None:
    queue = pipeline(sink, interval_s=30.0)  # nothing would be written for 30 s but for shutdown
    for n in range(30):
        queue.offer(finished(n))
    stats = queue.close()
    assert stats.exported == 30 and len(sink.written) == 30


# -- through MLflow's span processor, into a real SQLite store ---------------------------------------
@pytest.fixture
def store(tmp_path: Path) -> Iterator[str]:
    saved = mlflow.get_tracking_uri()
    uri = f"sqlite:///{tmp_path / 'traces.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("trace-export")
    yield uri
    mlflow.set_tracking_uri(saved)


def agent_trace(label: str) -> str:
    with mlflow.start_span("predict_stream", span_type=SpanType.AGENT) as root:
        root.set_inputs({"input": [{"role": "user", "content": f"hello {label}"}]})
        mlflow.update_current_trace(client_request_id=f"resp_{label}", tags={"route": "/responses"})
        mlflow.update_current_trace(session_id=f"conv-{label}", user="ada")
        model = mlflow.start_span_no_context("generation", span_type=SpanType.CHAT_MODEL, parent_span=root)
        model.set_attribute(
            "mlflow.chat.tokenUsage", {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}
        )
        model.end()
        tool = mlflow.start_span_no_context("get_weather", span_type=SpanType.TOOL, parent_span=root)
        tool.set_outputs("sunny")
        tool.end()
        root.set_outputs(
            {"output": [{"type": "message", "content": [{"type": "output_text", "text": "hi"}]}]}
        )
        return root.trace_id


def seen(trace_id: str) -> dict[str, Any]:
    """What a user of the trace sees, minus what differs by trace id."""
    trace = mlflow.get_trace(trace_id)
    assert trace is not None
    info = trace.info
    volatile = ("mlflow.artifactLocation",)
    return {
        "state": info.state,
        "client_request_id": (info.client_request_id or "").rsplit("_", 1)[0],
        "previews": (info.request_preview[:5] if info.request_preview else None, info.response_preview),
        "tags": {k: v for k, v in info.tags.items() if k not in volatile},
        "metadata": sorted(k for k in info.trace_metadata if k != "mlflow.trace.session"),
        "session": info.trace_metadata["mlflow.trace.session"].startswith("conv-"),
        "usage": info.token_usage,
        "spans": sorted((s.name, s.span_type, s.parent_id is None) for s in trace.data.spans),
        "timed": info.execution_duration is not None and info.execution_duration >= 0,
    }


def test_it_writes_what_mlflows_exporter_writes_and_hands_tracing_back_on_close(store: str) -> None:
    export = trace_export.install({"AGENTSHIP_TRACE_FLUSH_INTERVAL_S": "0.05"})
    assert export is not None
    ours = [agent_trace(f"ours{n}") for n in range(3)]
    assert isinstance(_get_trace_exporter(), QueueingSpanExporter), "MLflow's processor is not using it"
    assert export.flush(30)
    assert export.stats().exported == 3
    stats = export.close()
    assert (stats.exported, stats.dropped, stats.failed) == (3, 0, 0)
    assert not isinstance(_get_trace_exporter(), QueueingSpanExporter)

    theirs = agent_trace("theirs")
    mlflow.flush_trace_async_logging()
    reference = seen(theirs)
    assert reference["usage"] == {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}
    for trace_id in ours:
        assert seen(trace_id) == reference


def test_a_file_store_keeps_mlflows_exporter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    saved = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(str(tmp_path / "mlruns"))
    try:
        assert trace_export.install({}) is None
    finally:
        mlflow.set_tracking_uri(saved)
