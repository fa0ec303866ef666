"""Trace export to a remote tracking server never slows or fails a request.

A real ``mlflow server`` on PostgreSQL sits behind a proxy that the tests turn into an outage
(connections refused, or accepted and never answered). ``python -m serving`` serves through it.
While the server is away, requests keep their latency, the queue's depth and drops show on
``/metrics``, and the traces queued meanwhile arrive when it is back. On SIGTERM every answered
request's trace is written before the process exits; with the server away, shutdown gives up in
bounded time and says how many traces it lost. And the batched export writes, over HTTP, what
MLflow's own exporter writes."""

from __future__ import annotations

import json
import os
import signal
import statistics
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.entities import SpanType
from prometheus_client.parser import text_string_to_metric_families

from agentship import trace_export
from agentship.testing.postgres import PostgresServer
from agentship.testing.processes import ServerProcess, free_port, start_server, venv_env
from agentship.testing.proxy import FaultProxy
from agentship.testing.tracking_server import start_tracking_server
from tests.e2e.helpers import tracking_uri
from tests.serving.clients import TOOL_ANSWER, marker

pytestmark = pytest.mark.e2e

NAME = "trace-export-agent"
EXPERIMENT = "trace-export"
EXPORT_TIMEOUT_S = 5.0
"""One export call's timeout: a request that waited on one would take at least this long."""


@pytest.fixture(scope="module")
def tracking(
    postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory, log_dir: Path
) -> Iterator[ServerProcess]:
    server = start_tracking_server(postgres, tmp_path_factory.mktemp("trace-export-server"), log_dir)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def registered(tracking: ServerProcess) -> str:
    from agentship.model_logging import DEFAULT_CONFIGS, load_config, log_agent

    saved = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking.url)
    try:
        mlflow.set_experiment("trace-export-logging")
        config = load_config(DEFAULT_CONFIGS["openai-agents"])
        log_agent("openai-agents", config, registered_model_name=NAME, alias="prod")
    finally:
        mlflow.set_tracking_uri(saved)
        os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
    return f"models:/{NAME}@prod"


@pytest.fixture
def proxy(tracking: ServerProcess) -> Iterator[FaultProxy]:
    with FaultProxy(int(tracking.url.rsplit(":", 1)[1])) as running:
        yield running


def serve(proxy: FaultProxy, model: str, scripted: ServerProcess, log_dir: Path, **env: str) -> ServerProcess:
    port = free_port()
    settings = {
        "MLFLOW_TRACKING_URI": proxy.url,
        "MLFLOW_EXPERIMENT_NAME": EXPERIMENT,
        "OPENAI_BASE_URL": scripted.url + "/v1",
        "AGENTSHIP_STATE_URL": "none",
        "AGENTSHIP_TRACE_EXPORT_TIMEOUT_S": str(EXPORT_TIMEOUT_S),
        "AGENTSHIP_TRACE_RETRY_MAX_S": "1",
        **env,
    }
    command = [sys.executable, "-m", "serving", "-m", model, "-p", str(port)]
    return start_server(
        f"trace-export-{port}", command, port=port, log_dir=log_dir, env=venv_env(settings), timeout=180
    )


def ask(server: ServerProcess, mark: str) -> float:
    """One tool-using request; its duration in seconds."""
    body = {"input": [{"role": "user", "content": f"What is the weather in Paris? {mark}"}]}
    started = time.perf_counter()
    reply = httpx.post(f"{server.url}/invocations", json=body, timeout=60)
    elapsed = time.perf_counter() - started
    assert reply.status_code == 200, reply.text
    assert reply.json()["output"][-1]["content"][0]["text"] == TOOL_ANSWER
    return elapsed


def metrics(server: ServerProcess) -> dict[str, float]:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("agentship_trace_export")
    }


def traced_marks(tracking: ServerProcess, marks: list[str]) -> list[str]:
    """The marks (of ``marks``) whose request has a whole trace in the tracking server: its info
    and its span tree (the AGENT root, two model calls, the tool call)."""
    client = MlflowClient(tracking_uri=tracking.url)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return []
    with tracking_uri(tracking.url):  # spans are read through the server
        traces = client.search_traces(locations=[experiment.experiment_id], max_results=500)
    whole = " ".join(
        trace.info.request_preview or ""
        for trace in traces
        if sorted(s.span_type for s in trace.data.spans).count("CHAT_MODEL") == 2
        and any(s.span_type == "TOOL" for s in trace.data.spans)
    )
    return [mark for mark in marks if mark in whole]


def wait_for_traces(tracking: ServerProcess, marks: list[str], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while (found := traced_marks(tracking, marks)) != marks:
        missing = sorted(set(marks) - set(found))
        assert time.monotonic() < deadline, f"{len(missing)} traces never arrived: {missing[:5]}"
        time.sleep(0.5)


def wait_for_metric(server: ServerProcess, name: str, value: float, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while (seen := metrics(server).get(name)) != value:
        assert time.monotonic() < deadline, f"{name} is {seen}, never {value}"
        time.sleep(0.2)


@pytest.mark.parametrize("outage", ["refuse", "stall"])
def test_requests_keep_their_latency_while_the_server_is_away_and_their_traces_arrive_when_it_is_back(
    outage: str,
    proxy: FaultProxy,
    registered: str,
    tracking: ServerProcess,
    scripted: ServerProcess,
    log_dir: Path,
) -> None:
    server = serve(proxy, registered, scripted, log_dir)
    try:
        before = [marker() for _ in range(5)]
        healthy = [ask(server, mark) for mark in before]
        wait_for_traces(tracking, before)

        proxy.set_mode(outage)  # type: ignore[arg-type]
        during = [marker() for _ in range(10)]
        away = [ask(server, mark) for mark in during]
        assert max(away) < EXPORT_TIMEOUT_S / 2, f"a request waited on the export: {away}"
        assert statistics.median(away) < 2 * statistics.median(healthy) + 0.25, (healthy, away)
        wait_for_metric(server, "agentship_trace_export_queue_depth", 10.0)
        assert traced_marks(tracking, during) == []

        proxy.set_mode("pass")
        wait_for_traces(tracking, during)
        wait_for_metric(server, "agentship_trace_export_exported_total", 15.0)
        seen = metrics(server)
        assert seen["agentship_trace_export_dropped_total"] == 0
        assert seen["agentship_trace_export_queue_depth"] == 0
        assert "trace export to the tracking server failed" in server.log_text()
    finally:
        server.stop()


def test_a_full_queue_drops_new_traces_counts_them_and_exports_the_rest_later(
    proxy: FaultProxy, registered: str, tracking: ServerProcess, scripted: ServerProcess, log_dir: Path
) -> None:
    server = serve(proxy, registered, scripted, log_dir, AGENTSHIP_TRACE_QUEUE_SIZE="4")
    try:
        proxy.set_mode("refuse")
        marks = [marker() for _ in range(10)]
        for mark in marks:
            ask(server, mark)
        seen = metrics(server)
        assert seen["agentship_trace_export_dropped_total"] == 6
        proxy.set_mode("pass")
        wait_for_traces(tracking, marks[:4])
        wait_for_metric(server, "agentship_trace_export_exported_total", 4.0)
        assert traced_marks(tracking, marks[4:]) == []
        assert "trace export queue full (4 traces)" in server.log_text()
    finally:
        server.stop()


def test_sigterm_writes_every_answered_requests_trace_before_exiting(
    proxy: FaultProxy, registered: str, tracking: ServerProcess, scripted: ServerProcess, log_dir: Path
) -> None:
    server = serve(proxy, registered, scripted, log_dir, AGENTSHIP_TRACE_FLUSH_INTERVAL_S="30")
    try:
        marks = [marker() for _ in range(24)]
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda mark: ask(server, mark), marks))
        assert traced_marks(tracking, marks) == []  # still queued: a 30 s interval, 100 per batch
        os.kill(server.process.pid, signal.SIGTERM)
        assert server.process.wait(timeout=60) in (0, -signal.SIGTERM)
        assert traced_marks(tracking, marks) == marks
        assert "traces: 24 exported, 0 dropped" in server.log_text()
    finally:
        server.stop()


def test_with_the_server_away_shutdown_gives_up_in_bounded_time_and_says_what_it_lost(
    proxy: FaultProxy, registered: str, scripted: ServerProcess, log_dir: Path
) -> None:
    server = serve(proxy, registered, scripted, log_dir, AGENTSHIP_TRACE_SHUTDOWN_TIMEOUT_S="2")
    try:
        proxy.set_mode("stall")
        for _ in range(3):
            ask(server, marker())
        stopping = time.monotonic()
        os.kill(server.process.pid, signal.SIGTERM)
        assert server.process.wait(timeout=60) in (0, -signal.SIGTERM)
        took = time.monotonic() - stopping
        # the 2 s budget, plus at most one export call still waiting on its timeout
        assert took < 2 + EXPORT_TIMEOUT_S + 5, took
        assert "traces: 0 exported, 3 dropped" in server.log_text()
    finally:
        server.stop()


def test_over_http_it_writes_what_mlflows_exporter_writes(tracking: ServerProcess) -> None:
    saved = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking.url)
    try:
        mlflow.set_experiment("trace-export-fidelity")
        export = trace_export.install({"AGENTSHIP_TRACE_FLUSH_INTERVAL_S": "0.05"})
        assert export is not None and "tracking server" in export.describe()
        ours = _one_trace("ours")
        assert export.flush(30)
        assert export.close().exported == 1
        theirs = _one_trace("theirs")
        mlflow.flush_trace_async_logging()
        assert _seen(ours) == _seen(theirs)
    finally:
        mlflow.set_tracking_uri(saved)
        os.environ.pop("MLFLOW_EXPERIMENT_ID", None)


def _one_trace(label: str) -> str:
    with mlflow.start_span("predict_stream", span_type=SpanType.AGENT) as root:
        root.set_inputs({"input": [{"role": "user", "content": "hello"}]})
        mlflow.update_current_trace(
            client_request_id=f"resp-{label}", tags={"route": "/responses"}, user="ada"
        )
        model = mlflow.start_span_no_context("generation", span_type=SpanType.CHAT_MODEL, parent_span=root)
        model.set_attribute(
            "mlflow.chat.tokenUsage", {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}
        )
        model.end()
        root.set_outputs({"output": "hi"})
        return root.trace_id


def _seen(trace_id: str) -> str:
    deadline = time.monotonic() + 30
    while (trace := mlflow.get_trace(trace_id)) is None or len(trace.data.spans) < 2:
        assert time.monotonic() < deadline, f"trace {trace_id} never arrived whole"
        time.sleep(0.2)
    info = trace.info
    return json.dumps(
        {
            "state": str(info.state),
            "client": (info.client_request_id or "").startswith("resp-"),
            "previews": [info.request_preview, info.response_preview],
            "tags": {k: v for k, v in info.tags.items() if k != "mlflow.artifactLocation"},
            "metadata": sorted(info.trace_metadata),
            "usage": info.token_usage,
            "spans": sorted([s.name, s.span_type, s.inputs, s.outputs] for s in trace.data.spans),
        },
        sort_keys=True,
        default=str,
    )
