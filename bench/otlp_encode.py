"""CPU of turning a batch of agent traces' spans into one OTLP request: MLflow's way
(``Span.to_otel_proto`` per span, as ``RestStore.log_spans`` does) against agentship's
(``agentship.trace_export.otlp.export_request``), in one process, alternating.

    MLFLOW_ENABLE_ASYNC_TRACE_LOGGING=false .venv/bin/python bench/otlp_encode.py [--rounds 3]

Each trace is an AGENT root holding 3 turns of history (a user message, a tool call, its output,
a 200-word answer per turn) and a CHAT_MODEL span with the same messages and a tool's schema, as
a model call's span records them; 50 traces per request. It checks that both make the same bytes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WORDS = " ".join(f"word{i}" for i in range(200))


def history(turns: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for turn in range(turns):
        items += [
            {"role": "user", "content": f"question {turn}, café"},
            {
                "type": "function_call",
                "call_id": f"c{turn}",
                "name": "get_weather",
                "arguments": '{"city": "Paris"}',
            },
            {"type": "function_call_output", "call_id": f"c{turn}", "output": "18°C"},
            {"role": "assistant", "content": [{"type": "output_text", "text": WORDS, "annotations": []}]},
        ]
    return items


def agent_trace_spans() -> list[Any]:
    import mlflow
    from mlflow.entities import SpanType

    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
              "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]  # fmt: skip
    messages = history(3)
    with mlflow.start_span("predict", span_type=SpanType.AGENT) as root:
        root.set_inputs({"input": messages})
        model = mlflow.start_span_no_context("generation", span_type=SpanType.CHAT_MODEL, parent_span=root)
        model.set_inputs({"messages": messages, "tools": tools})
        model.set_outputs({"choices": [{"message": {"role": "assistant", "content": WORDS}}]})
        model.end()
        root.set_outputs(
            {"output": [{"type": "message", "content": [{"type": "output_text", "text": WORDS}]}]}
        )
    trace = mlflow.get_trace(root.trace_id)
    assert trace is not None, "set MLFLOW_ENABLE_ASYNC_TRACE_LOGGING=false"
    return list(trace.data.spans)


def mlflows(spans: list[Any]) -> Any:
    from mlflow.tracing.utils.otlp import resource_to_otel_proto
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.CopyFrom(resource_to_otel_proto(getattr(spans[0]._span, "resource", None)))
    resource_spans.scope_spans.add().spans.extend(span.to_otel_proto() for span in spans)
    return request


def main(rounds: int) -> None:
    import mlflow

    from agentship.trace_export.otlp import export_request

    with tempfile.TemporaryDirectory() as scratch:
        mlflow.set_tracking_uri(f"sqlite:///{scratch}/mlflow.db")
        traces = 50
        batch = agent_trace_spans() * traces
        assert mlflows(batch).SerializeToString() == export_request(batch).SerializeToString()
        for n in range(rounds):
            for name, encode in (("mlflow", mlflows), ("agentship", export_request)):
                started = time.process_time()
                for _ in range(20):
                    encode(batch)
                per_trace = (time.process_time() - started) / 20 / traces * 1000
                print(f"round {n + 1} {name:9s} {per_trace:.3f} ms CPU per 2-span trace")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    main(parser.parse_args().rounds)
