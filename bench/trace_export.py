"""CPU per trace of MLflow's exporter against agentship's batched one, in one process.

    .venv/bin/python bench/trace_export.py [--traces 200] [--tracking-uri URI]

Each variant runs in a fresh subprocess: it makes 5-span agent traces (an AGENT root, two
CHAT_MODEL spans with token usage, a TOOL span, a 200-word answer) with MLflow's fluent API and
waits until they are written; the figure is the process's CPU (all threads) per trace. Without
--tracking-uri, traces go into a fresh SQLite store.

With a tracking server (``--tracking-uri http://...``) a third variant, ``agentship-spans-only``,
measures what an upstream bulk call would leave: agentship's export without its one
``start_trace`` REST call per trace, so a batch is one OTLP request. Its traces arrive, from
their spans, without their metadata, previews and client request id; MLflow's OTLP endpoint
already takes a trace's tags from its root span's ``mlflow.traceTag.*`` attributes, and the
upstream change would take those three the same way (docs/upstream.md).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPANS_ONLY = "agentship-spans-only"
WORDS = " ".join(f"word{i}" for i in range(200))


def one_trace() -> None:
    import mlflow
    from mlflow.entities import SpanType

    answer = {"output": [{"type": "message", "content": [{"type": "output_text", "text": WORDS}]}]}
    with mlflow.start_span("predict_stream", span_type=SpanType.AGENT) as root:
        root.set_inputs({"input": [{"role": "user", "content": "What is the weather in Paris?"}]})
        agent = mlflow.start_span_no_context("assistant", span_type=SpanType.AGENT, parent_span=root)
        for output, tokens in (({"tool_call": "get_weather"}, 30), (answer, 300)):
            model = mlflow.start_span_no_context(
                "generation", span_type=SpanType.CHAT_MODEL, parent_span=agent
            )
            model.set_attribute(
                "mlflow.chat.tokenUsage",
                {"input_tokens": 20, "output_tokens": tokens, "total_tokens": 20 + tokens},
            )
            model.set_outputs(output)
            model.end()
            if tokens == 30:
                tool = mlflow.start_span_no_context("get_weather", span_type=SpanType.TOOL, parent_span=agent)
                tool.set_outputs("18°C and sunny")
                tool.end()
        agent.end()
        root.set_outputs(answer)


def child(variant: str, count: int) -> None:
    import mlflow

    mlflow.set_experiment("trace-export-bench")
    export = None
    if variant.startswith("agentship"):
        sys.path.insert(0, str(REPO))
        from agentship import trace_export
        from agentship.trace_export.sinks import RestSink

        if variant == SPANS_ONLY:  # the per-trace start_trace call left out: see the docstring
            RestSink._post_json = lambda *_, **__: None  # type: ignore[method-assign]
        export = trace_export.install(os.environ)
    flush = export.flush if export is not None else mlflow.flush_trace_async_logging
    for _ in range(20):
        one_trace()
    flush()
    started = time.process_time()
    for _ in range(count):
        one_trace()
    flush()
    print(f"{(time.process_time() - started) / count * 1000:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--traces", type=int, default=200)
    parser.add_argument("--tracking-uri")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.traces)
        return 0
    remote = (args.tracking_uri or "").startswith("http")
    for variant in ("mlflow", "agentship", *([SPANS_ONLY] if remote else [])):
        with tempfile.TemporaryDirectory() as scratch:
            uri = args.tracking_uri or f"sqlite:///{scratch}/mlflow.db"
            env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
            done = subprocess.run([sys.executable, __file__, "--child", variant, "--traces", str(args.traces)],
                                  env=env, capture_output=True, text=True, check=True)  # fmt: skip
            print(
                f"{variant:21s} {done.stdout.strip().splitlines()[-1]} ms CPU per trace ({uri.split(':')[0]})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
