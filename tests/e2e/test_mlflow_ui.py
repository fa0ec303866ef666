"""The MLflow UI shows a request's trace: a real `mlflow server` over the tests' tracking store,
its REST API (what the UI reads), and the page itself in headless chromium."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.entities import SpanType

from agentship.testing.mlflow_ui import page_text, screenshot, start_mlflow_ui, trace_url
from agentship.testing.processes import ServerProcess, start_mlflow_serve
from tests.e2e.helpers import run_log_agent, wait_for_traces

pytestmark = pytest.mark.e2e

EXPERIMENT = "ui-traces"


@pytest.fixture(scope="module")
def traced_request(scripted: ServerProcess, log_dir: Path) -> tuple[str, str]:
    """(experiment id, trace id) of one served request that called a tool."""
    logged = run_log_agent("--agent", "openai-agents", "--registered-model-name", "ui-agent")
    assert logged.returncode == 0, logged.stderr
    env = {
        "OPENAI_BASE_URL": scripted.url + "/v1",
        "OPENAI_API_KEY": "unused",
        "MLFLOW_EXPERIMENT_NAME": EXPERIMENT,
    }
    served = start_mlflow_serve(logged.stdout.strip().splitlines()[-1], log_dir, env, name="ui-serve")
    try:
        body = {"input": [{"role": "user", "content": "What is the weather in Paris?"}]}
        assert httpx.post(f"{served.url}/invocations", json=body, timeout=60).status_code == 200
        [trace] = wait_for_traces(EXPERIMENT, lambda t: True)
    finally:
        served.stop()
    return trace.info.experiment_id, trace.info.trace_id


@pytest.fixture(scope="module")
def ui(log_dir: Path) -> Iterator[ServerProcess]:
    server = start_mlflow_ui(os.environ["MLFLOW_TRACKING_URI"], log_dir)
    yield server
    server.stop()


def test_the_ui_serves_the_trace_with_its_spans(ui: ServerProcess, traced_request: tuple[str, str]) -> None:
    _, trace_id = traced_request
    trace = MlflowClient(tracking_uri=ui.url).get_trace(trace_id)  # through the server's REST API
    kinds = {span.name: span.span_type for span in trace.data.spans}
    assert kinds["predict"] == SpanType.AGENT and kinds["get_weather"] == SpanType.TOOL
    assert list(kinds.values()).count(SpanType.CHAT_MODEL) >= 1
    assert trace.info.token_usage and trace.info.token_usage["total_tokens"] > 0
    assert mlflow.get_tracking_uri() != ui.url  # the tests' own client still reads the store


def test_the_trace_page_shows_the_span_tree_in_a_browser(
    ui: ServerProcess, traced_request: tuple[str, str], ui_tools: Path, tmp_path: Path
) -> None:
    experiment_id, trace_id = traced_request
    url = trace_url(ui, experiment_id, trace_id)
    text = page_text(ui_tools, url, wait=["get_weather"])
    for span in ("predict", "assistant", "generation scripted-model", "get_weather"):
        assert span in text
    assert f"{trace_id[3:11]}" in text  # the trace's id, as the page heads it
    assert "tokens" in text
    shot = screenshot(ui_tools, url, tmp_path / "trace.png", wait=["get_weather"], full_screen=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
