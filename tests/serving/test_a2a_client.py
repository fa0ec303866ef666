"""`serving/client.py a2a` and `A2AAgent` against A2A agents: a kagent stand-in built from the
a2a-sdk's server parts, and `python -m serving --a2a`; what lands in a real MLflow store."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.entities import Run, Trace

from agentship.client.a2a import A2AAgent, A2ATaskError
from agentship.client.exchange_log import ExchangeLogger
from agentship.testing.processes import ServerProcess, free_port, venv_env
from tests.e2e.helpers import settled
from tests.serving.a2a_standin import StandIn, kagent_standin
from tests.serving.test_client import CLIENT, run_client

pytestmark = pytest.mark.e2e

PARIS = "The get_weather tool returned: The weather in Paris is 18°C and sunny."


@pytest.fixture(scope="module")
def kagent() -> Iterator[StandIn]:
    with kagent_standin() as standin:
        yield standin


def runs_of(experiment: str) -> list[Run]:
    found = MlflowClient().get_experiment_by_name(experiment)
    assert found is not None, f"nothing was logged to {experiment}"
    return list(MlflowClient().search_runs([found.experiment_id], order_by=["attributes.start_time ASC"]))


def session_traces(experiment: str, session: str, count: int, timeout: float = 30) -> list[Trace]:
    """The experiment's settled traces in ``session`` (MLflow's Sessions view), once there are
    ``count``."""
    found = MlflowClient().get_experiment_by_name(experiment)
    assert found is not None
    deadline = time.monotonic() + timeout
    while True:
        traces = mlflow.search_traces(
            locations=[found.experiment_id],
            filter_string=f"metadata.`mlflow.trace.session` = '{session}'",
            return_type="list",
        )
        traces = [t for t in traces if settled(t)]
        if len(traces) >= count or time.monotonic() > deadline:
            return traces
        time.sleep(0.5)


def test_pattern_1_a_kagent_agent_logged_out_of_band(kagent: StandIn, tmp_path: Path) -> None:
    experiment = f"a2a-kagent-{time.time_ns()}"
    result = run_client("a2a", kagent.url, "How many pods?", "--log-to-mlflow", "--experiment", experiment)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        '[tool call] get_pods({"namespace": "default"})',
        "[tool result] 3 pods",
        "kagent says: How many pods?",
    ]
    (run,) = runs_of(experiment)
    tags, metrics = run.data.tags, run.data.metrics
    context_id = kagent.contexts[-1]
    assert tags["a2a_url"] == kagent.url and tags["context_id"] == context_id
    assert tags["session_id"] == context_id and tags["task_id"]
    assert tags["agent_name"] == "k8s-agent" and tags["tools_count"] == "1"
    assert metrics["latency_ms"] > 0 and metrics["response_length"] == len("kagent says: How many pods?")
    assert (metrics["input_tokens"], metrics["output_tokens"], metrics["total_tokens"]) == (11, 7, 18)
    files = {a.path for a in MlflowClient().list_artifacts(run.info.run_id)}
    assert files == {"question.txt", "answer.txt", "response.json", "history.json"}
    local = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, dst_path=str(tmp_path)))
    assert (local / "answer.txt").read_text() == "kagent says: How many pods?"
    assert tags["task_id"] in (local / "response.json").read_text()
    (trace,) = session_traces(experiment, context_id, 1)
    assert trace.info.trace_metadata["mlflow.sourceRun"] == run.info.run_id
    assert trace.info.tags["task_id"] == tags["task_id"]


def test_the_context_id_is_sent_and_the_stream_is_printed(kagent: StandIn) -> None:
    result = run_client("a2a", kagent.url, "Again?", "--context-id", "ctx-given", "--stream")
    assert result.returncode == 0, result.stderr
    assert kagent.contexts[-1] == "ctx-given"
    assert result.stdout.splitlines()[-1] == "kagent says: Again?"


def test_pattern_2_our_server_over_a2a_prints_the_stream_live(a2a_serving: ServerProcess) -> None:
    question = "tell me more [[ttft=0.1 latency=3 chunks=6]]"
    process = subprocess.Popen(
        [sys.executable, CLIENT, "a2a", a2a_serving.url, question, "--stream"],
        stdout=subprocess.PIPE, env=venv_env(), text=False,
    )  # fmt: skip
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], 60)
    assert ready, "nothing was printed"
    first = os.read(process.stdout.fileno(), 100)
    assert first and process.poll() is None, "the answer was only printed after it was complete"
    rest = process.stdout.read()
    assert process.wait(timeout=30) == 0
    assert (first + rest).decode().strip() == "You said: tell me more"


def test_a_conversation_with_our_server_groups_by_session(a2a_serving: ServerProcess) -> None:
    experiment = f"a2a-ours-{time.time_ns()}"
    logger = ExchangeLogger(experiment)
    agent = A2AAgent(a2a_serving.url, logger=logger, user_id="ada")
    try:
        first = agent.ask("What is the weather in Paris?")
        second = agent.ask("Thanks")
    finally:
        agent.close()
        logger.close()
    assert second["contextId"] == first["contextId"] == agent.context_id
    assert second["artifacts"][-1]["parts"][0]["text"] == "You said: Thanks"
    runs = runs_of(experiment)
    assert [r.data.tags["task_id"] for r in runs] == [first["id"], second["id"]]
    assert {r.data.tags["context_id"] for r in runs} == {agent.context_id}
    assert runs[0].data.metrics["total_tokens"] > 0
    assert runs[0].data.metrics["response_length"] == len(PARIS)
    traces = session_traces(experiment, str(agent.context_id), 2)
    assert len(traces) == 2 and {t.info.trace_metadata["mlflow.trace.user"] for t in traces} == {"ada"}


def test_a_failed_task_fails_the_call_with_its_safe_message(a2a_serving: ServerProcess) -> None:
    result = run_client("a2a", a2a_serving.url, "boom [[fail=500]]")
    assert result.returncode == 1
    assert (
        result.stderr.strip() == "error: the agent's task ended failed: the model backend failed (HTTP 500)"
    )
    agent = A2AAgent(a2a_serving.url)
    try:
        with pytest.raises(A2ATaskError) as raised:
            list(agent.stream("boom [[fail=500]]"))
    finally:
        agent.close()
    assert raised.value.task["status"]["state"] == "TASK_STATE_FAILED"


def test_logging_failures_never_fail_an_a2a_call(kagent: StandIn) -> None:
    dead_tracking = f"http://127.0.0.1:{free_port()}"
    result = run_client(
        "a2a",
        kagent.url,
        "hello",
        "--log-to-mlflow",
        env={"MLFLOW_TRACKING_URI": dead_tracking, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "kagent says: hello"
