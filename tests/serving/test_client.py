"""serving/client.py as a user runs it: against a served agent, in process, with MLflow logging."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from agentship.client import ServedAgent
from agentship.testing.processes import ServerProcess, free_port, venv_env
from tests.e2e.helpers import REPO

pytestmark = pytest.mark.e2e

CLIENT = str(REPO / "serving" / "client.py")


def run_client(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, CLIENT, *args],
        env=venv_env(env),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_served_prints_the_tool_call_and_the_answer(serving: ServerProcess) -> None:
    result = run_client("served", serving.url, "What is the weather in Paris?")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        '[tool call] get_weather({"city": "Paris"})',
        "[tool result] The weather in Paris is 18°C and sunny.",
        "The get_weather tool returned: The weather in Paris is 18°C and sunny.",
    ]


def test_served_stream_prints_live(serving: ServerProcess) -> None:
    process = subprocess.Popen(
        [sys.executable, CLIENT, "served", serving.url, "tell me more [[ttft=0.1 latency=3 chunks=6]]", "--stream"],
        stdout=subprocess.PIPE, env=venv_env(), text=False,
    )  # fmt: skip
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], 30)
    assert ready, "nothing was printed"
    first = os.read(process.stdout.fileno(), 100)
    assert first and process.poll() is None, "the answer was only printed after it was complete"
    rest = process.stdout.read()
    assert process.wait(timeout=30) == 0
    assert (first + rest).decode().strip() == "You said: tell me more"


def test_local_runs_the_same_exchange_in_process_and_leaves_its_trace(
    serving_model_uri: str, scripted: ServerProcess
) -> None:
    """In process, the run's trace is written before the command returns (MLflow's export queue
    would otherwise be cut at interpreter exit, with a traceback), and stderr stays clean."""
    experiment = f"local-{time.time_ns()}"
    mlflow.set_experiment(experiment)  # made here, so the command has nothing to announce
    os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
    result = run_client(
        "local",
        serving_model_uri,
        "What is the weather in Berlin?",
        env={"OPENAI_BASE_URL": scripted.url + "/v1", "MLFLOW_EXPERIMENT_NAME": experiment},
    )
    assert result.returncode == 0, result.stderr
    assert (
        result.stdout.splitlines()[-1]
        == "The get_weather tool returned: The weather in Berlin is 15°C and cloudy."
    )
    assert result.stderr == ""
    found = MlflowClient().get_experiment_by_name(experiment)
    assert found is not None
    (trace,) = mlflow.search_traces(locations=[found.experiment_id], return_type="list")
    assert trace.info.state == "OK"
    assert trace.data.request is not None and "What is the weather in Berlin?" in trace.data.request
    assert [s.name for s in trace.data.spans if s.span_type == "TOOL"] == ["get_weather"]


def test_exchanges_are_logged_to_mlflow(serving: ServerProcess, tmp_path: Path) -> None:
    experiment = f"exchanges-{time.time_ns()}"
    result = run_client(
        "served",
        serving.url,
        "What is the weather in Tokyo?",
        "--conversation-id",
        "conv-7",
        "--log-to-mlflow",
        "--experiment",
        experiment,
    )
    assert result.returncode == 0, result.stderr
    found = MlflowClient().get_experiment_by_name(experiment)
    assert found is not None
    runs = MlflowClient().search_runs([found.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.data.tags["session_id"] == "conv-7"
    assert run.data.tags["agent_name"] == "assistant"
    assert run.data.tags["model"] == "scripted-model"
    assert run.data.tags["tools_count"] == "2"
    assert run.data.metrics["latency_ms"] > 0 and run.data.metrics["total_tokens"] > 0
    assert run.data.metrics["response_length"] == len(
        "The get_weather tool returned: The weather in Tokyo is 22°C and clear."
    )
    files = {a.path for a in MlflowClient().list_artifacts(run.info.run_id)}
    assert files == {"question.txt", "answer.txt", "response.json", "history.json"}
    local = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, dst_path=str(tmp_path)))
    assert (local / "question.txt").read_text() == "What is the weather in Tokyo?"


def test_logging_failures_never_fail_the_call(serving: ServerProcess) -> None:
    dead_tracking = f"http://127.0.0.1:{free_port()}"
    result = run_client(
        "served",
        serving.url,
        "hello",
        "--log-to-mlflow",
        env={"MLFLOW_TRACKING_URI": dead_tracking, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"},
    )
    assert result.returncode == 0
    assert result.stdout.strip() == "You said: hello"


def test_the_library_keeps_the_conversation(serving: ServerProcess) -> None:
    agent = ServedAgent(serving.url, conversation_id="lib-1")
    agent.ask("My name is Ada.")
    response = agent.ask("Who am I?")
    assert response["output"][-1]["content"][0]["text"] == "You said: Who am I?"
    assert [m.get("content") for m in agent.conversation.history if m.get("role") == "user"] == [
        "My name is Ada.",
        "Who am I?",
    ]
