"""``python -m serving`` with the trace export's steps timed on the export thread's CPU clock:
SIGUSR2 appends each step's calls and CPU seconds since the last signal to
``$AGENTSHIP_EXPORT_TIMES`` (one JSON object per line).

    python bench/_timed_export_serve.py -m MODEL -p PORT ...   (bench/tracing_profile.py runs it)

``AGENTSHIP_BENCH_SOURCE=DIR`` serves another checkout's code (``git worktree add DIR REV``) with
the same steps timed, to compare before and after a change.
"""

from __future__ import annotations

import functools
import json
import os
import runpy
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, os.environ.get("AGENTSHIP_BENCH_SOURCE") or str(Path(__file__).resolve().parents[1]))

from mlflow.entities import Span

from agentship.trace_export import sinks

_times: dict[str, list[float]] = {}
_lock = threading.Lock()


def _timed(step: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return function(*args, **kwargs)
        finally:
            spent = time.thread_time() - started
            with _lock:
                entry = _times.setdefault(step, [0, 0.0])
                entry[0] += 1
                entry[1] += spent

    return timed


sinks.add_size_stats_to_trace_metadata = _timed("size stats", sinks.add_size_stats_to_trace_metadata)
sinks.RestSink._start_body = staticmethod(_timed("start_trace body", sinks.RestSink._start_body))  # type: ignore[method-assign]
sinks.RestSink._post_json = _timed("start_trace call", sinks.RestSink._post_json)  # type: ignore[method-assign]
if hasattr(sinks, "export_request"):
    sinks.export_request = _timed("span encoding", sinks.export_request)
Span.to_otel_proto = _timed("span encoding (MLflow's, per span)", Span.to_otel_proto)  # type: ignore[method-assign]
sinks.RestSink._post_spans = _timed("span encoding and OTLP call", sinks.RestSink._post_spans)  # type: ignore[method-assign]
sinks.RestSink.write = _timed("write", sinks.RestSink.write)  # type: ignore[method-assign]


def _dump(*_: Any) -> None:
    with _lock:
        line = json.dumps({step: {"calls": n, "cpu_s": s} for step, (n, s) in _times.items()})
        _times.clear()
    with open(os.environ["AGENTSHIP_EXPORT_TIMES"], "a") as out:
        out.write(line + "\n")


signal.signal(signal.SIGUSR2, _dump)
sys.argv = ["serving", *sys.argv[1:]]
runpy.run_module("serving", run_name="__main__", alter_sys=True)
