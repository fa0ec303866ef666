"""Traces over OTLP, through MLflow's own export, into a real OpenTelemetry backend: Arize Phoenix
(``scripts/phoenix_env.sh``), beside the MLflow store or instead of it. Real ``python -m serving``
processes in front of the scripted model."""

from __future__ import annotations

import asyncio
import json
import socket
import statistics
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
import yaml

from agentship.testing.phoenix import find_phoenix, spans, start_phoenix
from agentship.testing.processes import ServerProcess, free_port, start_server, venv_env
from tests.e2e.helpers import REPO, wait_for_traces

pytestmark = pytest.mark.e2e

HEADER_SECRET = "otlp-SECRET-5e21c"
HEADERS = f"x-otlp-token={HEADER_SECRET},Authorization=Bearer%20{HEADER_SECRET}"
INSTRUCTIONS = yaml.safe_load((REPO / "agentship" / "configs" / "openai_agents.yaml").read_text())[
    "instructions"
]
SPAN_NAMES = [
    "assistant",
    "generation scripted-model",
    "generation scripted-model",
    "get_weather",
    "predict_stream",
]


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory, log_dir: Path) -> Iterator[ServerProcess]:
    venv = find_phoenix()
    if venv is None:
        pytest.skip("Arize Phoenix is not installed: run scripts/phoenix_env.sh")
    server = start_phoenix(venv, tmp_path_factory.mktemp("phoenix"), log_dir)
    yield server
    server.stop()


def start_traced(
    model_uri: str, backend: ServerProcess, log_dir: Path, name: str, otlp: dict[str, str], *args: str
) -> ServerProcess:
    port = free_port()
    command = [sys.executable, "-m", "serving", "-m", model_uri, "-p", str(port), *args]
    env = venv_env({"OPENAI_BASE_URL": backend.url + "/v1", "MLFLOW_EXPERIMENT_NAME": f"otlp-{name}", **otlp})
    return start_server(
        f"otlp-{name}-{port}", command, port=port, log_dir=log_dir, env=env, health_path="/ready"
    )


@pytest.fixture(scope="module")
def dual(
    serving_model_uri: str, scripted: ServerProcess, phoenix: ServerProcess, log_dir: Path
) -> Iterator[ServerProcess]:
    """Traces to Phoenix and to the MLflow store, with headers, logging at debug level."""
    otlp = {
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{phoenix.url}/v1/traces",
        "MLFLOW_TRACE_ENABLE_OTLP_DUAL_EXPORT": "true",
        "OTEL_EXPORTER_OTLP_HEADERS": HEADERS,
        "OTEL_BSP_SCHEDULE_DELAY": "500",
    }
    server = start_traced(serving_model_uri, scripted, log_dir, "dual", otlp, "--log-level", "debug")
    yield server
    server.stop()


def ask(server: ServerProcess, city: str) -> dict[str, Any]:
    body = {"input": [{"role": "user", "content": f"What is the weather in {city}?"}]}
    reply = httpx.post(f"{server.url}/invocations", json=body, timeout=120)
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def city() -> str:
    return f"Zq{uuid.uuid4().hex[:10]}"


def _attribute(span: dict[str, Any], name: str) -> Any:
    raw = span["attributes"].get(name)
    return json.loads(raw) if isinstance(raw, str) else raw


def traces_by_city(found: list[dict[str, Any]], cities: set[str]) -> dict[str, list[list[dict[str, Any]]]]:
    """The traces (their spans) whose root's input names each city. Pure."""
    by_trace: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for span in found:
        by_trace[span["context"]["trace_id"]].append(span)
    out: dict[str, list[list[dict[str, Any]]]] = defaultdict(list)
    for trace in by_trace.values():
        roots = [s for s in trace if s["parent_id"] is None]
        if len(roots) != 1:
            continue
        named = [c for c in cities if c in json.dumps(_attribute(roots[0], "mlflow.spanInputs"))]
        for name in named:
            out[name].append(trace)
    return out


def wait_in_phoenix(
    phoenix: ServerProcess, cities: set[str], timeout: float = 120
) -> tuple[dict[str, list[list[dict[str, Any]]]], list[dict[str, Any]]]:
    """Once every city's trace has all its spans: the traces by city, and every span seen."""
    deadline = time.monotonic() + timeout
    while True:
        found = spans(phoenix)
        traces = traces_by_city(found, cities)
        if all(c in traces and len(traces[c][0]) >= len(SPAN_NAMES) for c in cities):
            time.sleep(1.0)  # anything duplicated or late would arrive now
            found = spans(phoenix)
            return traces_by_city(found, cities), found
        missing = len([c for c in cities if c not in traces])
        assert time.monotonic() < deadline, f"{missing} of {len(cities)} traces never reached Phoenix"
        time.sleep(1.0)


def assert_one_whole_trace(trace: list[dict[str, Any]], name: str) -> None:
    assert sorted(s["name"] for s in trace) == SPAN_NAMES
    by_id = {s["context"]["span_id"]: s for s in trace}
    (root,) = [s for s in trace if s["parent_id"] is None]
    assert _attribute(root, "mlflow.spanType") == "AGENT"
    for span in trace:  # one tree under the request's span, nothing pointing outside the trace
        seen = span
        while seen["parent_id"] is not None:
            seen = by_id[seen["parent_id"]]
        assert seen is root
    assert_span_fields(trace, name)


def assert_span_fields(trace: list[dict[str, Any]], name: str) -> None:
    """What each span carries on the receiving side, exactly: MLflow's inputs and outputs, and
    the GenAI attributes Phoenix reads (it derives its span kinds, model and tokens from them)."""
    (root,) = [s for s in trace if s["parent_id"] is None]
    answer = f"No forecast is available for {name}."
    (tool,) = [s for s in trace if _attribute(s, "mlflow.spanType") == "TOOL"]
    (agent,) = [s for s in trace if s["name"] == "assistant"]
    first, second = sorted(
        (s for s in trace if s["name"].startswith("generation")), key=lambda s: s["start_time"]
    )
    [call, output, _] = _attribute(root, "mlflow.spanOutputs")["output"]
    assert output == {"type": "function_call_output", "call_id": call["call_id"], "output": answer}
    assert (_attribute(tool, "mlflow.spanInputs"), _attribute(tool, "mlflow.spanOutputs")) == (
        {"city": name},
        answer,
    )
    assert {k: v for k, v in tool["attributes"].items() if k.startswith(("gen_ai.", "tool."))} == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "get_weather",
        "gen_ai.tool.call.id": call["call_id"],
        "gen_ai.tool.type": "function",
        "tool.name": "get_weather",  # Phoenix's own, from the GenAI attributes
        "tool.id": call["call_id"],
    }
    assert (tool["span_kind"], agent["span_kind"], first["span_kind"], second["span_kind"]) == (
        "TOOL",
        "AGENT",
        "LLM",
        "LLM",
    )
    assert _attribute(agent, "mlflow.spanInputs") == {
        "tools": ["get_weather", "add"],
        "handoffs": ["travel_planner"],
    }
    assert (agent["attributes"]["gen_ai.operation.name"], agent["attributes"]["gen_ai.agent.name"]) == (
        "invoke_agent",
        "assistant",
    )
    system = {"content": INSTRUCTIONS, "role": "system"}
    user = {"role": "user", "content": f"What is the weather in {name}?"}
    assert _attribute(first, "mlflow.spanInputs") == [system, user]
    assert _attribute(second, "mlflow.spanInputs")[-1] == {
        "role": "tool",
        "tool_call_id": call["call_id"],
        "content": answer,
    }
    for model in (first, second):
        usage = _attribute(model, "mlflow.chat.tokenUsage")
        attributes = model["attributes"]
        assert {k: v for k, v in attributes.items() if k.startswith("gen_ai.")} == {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "scripted-model",
            "gen_ai.request.temperature": 0.2,
            "gen_ai.usage.input_tokens": usage["input_tokens"],
            "gen_ai.usage.output_tokens": usage["output_tokens"],
        }
        assert (attributes["llm.model_name"], attributes["llm.token_count.prompt"]) == (
            "scripted-model",
            usage["input_tokens"],
        )


def test_the_span_tree_and_token_usage_arrive_in_phoenix_and_in_mlflow(
    dual: ServerProcess, phoenix: ServerProcess
) -> None:
    name = city()
    answer = ask(dual, name)
    traces, _ = wait_in_phoenix(phoenix, {name})
    (trace,) = traces[name]
    assert_one_whole_trace(trace, name)
    models = [s for s in trace if _attribute(s, "mlflow.spanType") == "CHAT_MODEL"]
    usage = [_attribute(s, "mlflow.chat.tokenUsage") for s in models]
    assert sum(u["input_tokens"] for u in usage) == answer["usage"]["input_tokens"]
    assert sum(u["output_tokens"] for u in usage) == answer["usage"]["output_tokens"]
    # Dual export: the same request is in the MLflow store, with the same span tree.
    stored = wait_for_traces("otlp-dual", lambda t: name in json.dumps(t.data.request))
    (mlflow_trace,) = [t for t in stored if name in json.dumps(t.data.request)]
    assert sorted(s.name for s in mlflow_trace.data.spans) == SPAN_NAMES
    assert mlflow_trace.info.token_usage["total_tokens"] == answer["usage"]["total_tokens"]
    (stored_tool,) = [s for s in mlflow_trace.data.spans if s.span_type == "TOOL"]
    (phoenix_tool,) = [s for s in trace if s["name"] == "get_weather"]
    assert (stored_tool.inputs, stored_tool.outputs) == (
        {"city": name},
        f"No forecast is available for {name}.",
    )
    assert stored_tool.attributes["gen_ai.tool.call.id"] == phoenix_tool["attributes"]["gen_ai.tool.call.id"]


def test_the_headers_are_never_logged(dual: ServerProcess) -> None:
    ask(dual, city())
    log = dual.log_text()
    assert "DEBUG" in log and "traces: OTLP http/protobuf to" in log
    assert HEADER_SECRET not in log


class _Recorder(BaseHTTPRequestHandler):
    """An OTLP receiver stand-in that records what it was sent (to see the headers arrive)."""

    received: ClassVar[list[dict[str, str]]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        type(self).received.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_otlp_instead_of_mlflow_sends_the_headers(
    serving_model_uri: str, scripted: ServerProcess, log_dir: Path
) -> None:
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    otlp = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.server_address[1]}",
        "OTEL_EXPORTER_OTLP_HEADERS": HEADERS,
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }
    server = start_traced(serving_model_uri, scripted, log_dir, "only", otlp)
    try:
        name = city()
        ask(server, name)
        deadline = time.monotonic() + 30
        while not _Recorder.received:
            assert time.monotonic() < deadline, "nothing was exported"
            time.sleep(0.2)
    finally:
        server.stop()
        receiver.shutdown()
    sent = _Recorder.received[0]
    assert sent["path"] == "/v1/traces" and sent["content-type"] == "application/x-protobuf"
    assert sent["x-otlp-token"] == HEADER_SECRET and sent["authorization"] == f"Bearer {HEADER_SECRET}"
    with pytest.raises(AssertionError):  # OTLP instead of the MLflow store
        wait_for_traces("otlp-only", lambda t: name in json.dumps(t.data.request), timeout=3)


def test_256_concurrent_requests_leave_256_whole_separate_traces(
    serving_model_uri: str, scripted: ServerProcess, phoenix: ServerProcess, log_dir: Path
) -> None:
    otlp = {
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{phoenix.url}/v1/traces",
        "OTEL_BSP_SCHEDULE_DELAY": "500",
    }
    server = start_traced(serving_model_uri, scripted, log_dir, "load", otlp)
    cities = [city() for _ in range(256)]

    async def one(client: httpx.AsyncClient, name: str) -> None:
        body = {"input": [{"role": "user", "content": f"What is the weather in {name}?"}]}
        reply = await client.post(f"{server.url}/invocations", json=body)
        assert reply.status_code == 200, reply.text
        assert name in reply.json()["output"][-1]["content"][0]["text"]

    async def everyone() -> None:
        limits = httpx.Limits(max_connections=256)
        async with httpx.AsyncClient(timeout=180, limits=limits) as client:
            await asyncio.gather(*(one(client, name) for name in cities))

    try:
        asyncio.run(everyone())
        traces, found = wait_in_phoenix(phoenix, set(cities), timeout=180)
    finally:
        server.stop()
    for name in cities:
        assert len(traces[name]) == 1, f"{name}: {len(traces[name])} traces"
        assert_one_whole_trace(traces[name][0], name)
    ids = [s["context"]["span_id"] for s in found]
    assert len(ids) == len(set(ids)), "a span arrived twice"


class _Stall:
    """A port that accepts connections and never answers: an OTLP backend that hangs."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"

    def close(self) -> None:
        self.socket.close()


def _latencies(server: ServerProcess, count: int) -> list[float]:
    out = []
    for _ in range(count):
        started = time.perf_counter()
        ask(server, city())
        out.append(time.perf_counter() - started)
    return out


@pytest.mark.parametrize("down", ["refused", "stalled"])
def test_a_down_otlp_backend_does_not_touch_requests(
    down: str, serving_model_uri: str, scripted: ServerProcess, serving: ServerProcess, log_dir: Path
) -> None:
    stall = _Stall() if down == "stalled" else None
    endpoint = stall.url if stall else f"http://127.0.0.1:{free_port()}"
    otlp = {
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{endpoint}/v1/traces",
        "MLFLOW_TRACE_ENABLE_OTLP_DUAL_EXPORT": "true",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    server = start_traced(serving_model_uri, scripted, log_dir, f"down-{down}", otlp)
    try:
        baseline = statistics.median(_latencies(serving, 10))  # a server without OTLP
        latencies = _latencies(server, 20)
        assert statistics.median(latencies) < baseline * 3 + 0.25, (baseline, latencies)
        assert max(latencies) < 5, latencies
        name = city()
        ask(server, name)  # and the MLflow store still gets every trace
        wait_for_traces(f"otlp-down-{down}", lambda t: name in json.dumps(t.data.request))
        started = time.monotonic()
    finally:
        server.stop(timeout=60)
        if stall:
            stall.close()
    print(f"stopped in {time.monotonic() - started:.1f}s with the OTLP backend {down}", file=sys.stderr)
