"""Helpers for end-to-end tests: run the logging script as a user would, inspect artifacts."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Trace
from mlflow.tracing.constant import TraceMetadataKey

REPO = Path(__file__).resolve().parents[2]


def run_log_agent(
    *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``python logging_scripts/log_agent.py ARGS`` in a fresh process."""
    return subprocess.run(
        [sys.executable, str(REPO / "logging_scripts" / "log_agent.py"), *args],
        env={**os.environ, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def files_containing(root: Path, needle: str) -> list[Path]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and needle.encode() in path.read_bytes():
            hits.append(path)
    return hits


def download_model(model_uri: str, dest: Path) -> Path:
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(dest)))


_FINALIZED = getattr(TraceMetadataKey, "TRACE_INFO_FINALIZED", None)


def settled(trace: Trace) -> bool:
    """Whether the trace's info has landed whole.

    MLflow's exporter sends a trace's spans and its info separately, and from MLflow 3.17 on a
    SQL store makes the trace's row from whichever arrives first: a trace made from its spans
    already has its session but not yet its user, tags or state. ``start_trace`` marks the info
    as landed (older versions make the row only from the info).
    """
    return _FINALIZED is None or _FINALIZED in trace.info.trace_metadata


def wait_for_traces(
    experiment_name: str, match: Callable[[Trace], bool], timeout: float = 30.0
) -> list[Trace]:
    """All settled traces of the experiment once one matches (traces are exported
    asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        experiment = MlflowClient().get_experiment_by_name(experiment_name)
        traces: list[Trace] = []
        if experiment is not None:
            found = mlflow.search_traces(
                locations=[experiment.experiment_id], return_type="list", max_results=200
            )
            traces = [t for t in found if settled(t)]
            if any(match(t) for t in traces):
                return traces
        if time.monotonic() > deadline:
            raise AssertionError(
                f"no matching trace in {experiment_name!r} after {timeout:g}s ({len(traces)} traces)"
            )
        time.sleep(0.5)


@contextmanager
def tracking_uri(uri: str) -> Iterator[None]:
    """This process's MLflow pointed at ``uri`` for a while (spans download through it)."""
    saved = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(saved)
