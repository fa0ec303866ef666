"""The evaluation as a user runs it: evaluate_agent.py (and `mlflow run . -e evaluate`) against a
registered agent, a `python -m serving` URL and a `mlflow models serve` URL, the scripted model as
the agent's backend and as the simulated user. Real tracking store, registry and servers."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.entities import SpanType, Trace
from mlflow.tracing.constant import TraceMetadataKey

from agentship.testing.processes import ServerProcess, free_port, start_mlflow_serve, start_server, venv_env
from tests.e2e.helpers import REPO, run_log_agent

pytestmark = pytest.mark.e2e

NAME = "eval-agent"
EXPERIMENT = "eval-tests"
DATASET = REPO / "datasets" / "example_agent.jsonl"


OFFLINE = {"MLFLOW_MODEL_CATALOG_URI": ""}
"""MLflow's judges would fetch a model catalog from the internet; this machine has none."""


def run_evaluate(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python logging_scripts/evaluate_agent.py ARGS`` in a fresh process."""
    return subprocess.run(
        [sys.executable, str(REPO / "logging_scripts" / "evaluate_agent.py"), *args],
        env={**os.environ, "MLFLOW_EXPERIMENT_NAME": EXPERIMENT, **OFFLINE, **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def run_id_of(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout.strip().splitlines()[-1]


def run_traces(run_id: str) -> list[Trace]:
    run = MlflowClient().get_run(run_id)
    return mlflow.search_traces(locations=[run.info.experiment_id], run_id=run_id, return_type="list")


def span_types(trace: Trace) -> list[str]:
    return [str(span.span_type) for span in trace.data.spans]


@pytest.fixture(scope="module")
def backend(scripted: ServerProcess) -> dict[str, str]:
    return {"OPENAI_BASE_URL": scripted.url + "/v1", "OPENAI_API_KEY": "sk-unused"}


@pytest.fixture(scope="module")
def registered() -> str:
    result = run_log_agent("--agent", "openai-agents", "--registered-model-name", NAME, "--alias", "champion")
    assert result.returncode == 0, result.stderr
    return f"models:/{NAME}@champion"


def test_a_registered_alias_is_evaluated_in_a_run_linked_to_its_version(
    registered: str, backend: dict[str, str]
) -> None:
    result = run_evaluate(registered, "--dataset", str(DATASET), env=backend)
    assert result.returncode == 0, result.stderr
    run = MlflowClient().get_run(run_id_of(result))
    metrics = run.data.metrics
    assert metrics["expected_tool_called/mean"] == 1.0
    assert metrics["expected_facts/mean"] == 1.0
    assert metrics["latency_ms/mean"] > 0 and metrics["total_tokens/mean"] > 0
    version = MlflowClient().get_model_version_by_alias(NAME, "champion")
    assert run.data.tags["agentship.eval.model_uri"] == f"models:/{NAME}/{version.version}"
    assert version.tags["agentship.eval.run_id"] == run.info.run_id
    logged_model = MlflowClient().get_logged_model(version.source.removeprefix("models:/"))
    assert {(m.key, m.run_id) for m in logged_model.metrics or []} >= {
        ("expected_facts/mean", run.info.run_id)
    }
    traces = run_traces(run.info.run_id)
    assert len(traces) == len(DATASET.read_text().splitlines())
    for trace in traces:
        assert trace.info.trace_metadata.get(TraceMetadataKey.MODEL_ID) == version.source.removeprefix(
            "models:/"
        )
        assert {a.name for a in trace.info.assessments} >= {"latency_ms", "total_tokens"}
    tool_traces = [t for t in traces if SpanType.TOOL in span_types(t)]
    assert len(tool_traces) == 4
    # The agent's own spans only: one CHAT_MODEL span per model call (no autolog doubles).
    assert all(span_types(t).count(SpanType.CHAT_MODEL) == 2 for t in tool_traces)


def test_the_gate_moves_an_alias_only_when_the_scores_pass(registered: str, backend: dict[str, str]) -> None:
    version = MlflowClient().get_model_version_by_alias(NAME, "champion").version
    failed = run_evaluate(
        registered, "--dataset", str(DATASET), "--promote", "canary",
        "--min-score", "expected_tool_called=1", "--max-score", "latency_ms=0.001", env=backend,
    )  # fmt: skip
    assert failed.returncode == 1, failed.stderr
    assert "FAIL  latency_ms/mean <= 0.001" in failed.stderr and "gate: failed" in failed.stderr
    assert "canary" not in MlflowClient().get_registered_model(NAME).aliases
    assert MlflowClient().get_run(run_id_of(failed)).data.tags["agentship.eval.gate"] == "failed"

    passed = run_evaluate(
        registered, "--dataset", str(DATASET), "--promote", "production",
        "--min-score", "expected_tool_called=1", "--min-score", "expected_facts=0.9", env=backend,
    )  # fmt: skip
    assert passed.returncode == 0, passed.stderr
    assert MlflowClient().get_registered_model(NAME).aliases["production"] == int(version)
    assert MlflowClient().get_model_version(NAME, version).tags["agentship.eval.gate"] == "passed"


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--dataset", str(DATASET), "--promote", "production"], "--promote needs at least one"),
        (["--dataset", "/nonexistent.jsonl"], "cannot read dataset file"),
        ([], "give a dataset"),
        (["--dataset", str(DATASET), "--min-score", "expected_facts"], "is not NAME=VALUE"),
    ],
)
def test_usage_errors_exit_2_with_a_message(
    registered: str, backend: dict[str, str], args: list[str], problem: str
) -> None:
    result = run_evaluate(registered, *args, env=backend)
    assert result.returncode == 2, result.stderr
    assert problem in result.stderr


def test_an_unknown_model_is_a_usage_error(backend: dict[str, str]) -> None:
    result = run_evaluate("models:/no-such-agent@champion", "--dataset", str(DATASET), env=backend)
    assert result.returncode == 2 and "no registered model version" in result.stderr


def _runs() -> list[str]:
    experiment = MlflowClient().get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return []
    return [r.info.run_id for r in MlflowClient().search_runs([experiment.experiment_id])]


def _version_tags() -> dict[str, str]:
    return dict(MlflowClient().get_model_version_by_alias(NAME, "champion").tags)


def _error_line(result: subprocess.CompletedProcess[str]) -> str:
    return result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--dataset", "/nonexistent.jsonl"],
            "cannot read dataset file /nonexistent.jsonl: No such file or directory",
        ),
        (["--dataset", "{broken}"], "{broken}:2: not valid JSON: Expecting value"),
        (
            ["--dataset", str(DATASET), "--min-score", "expeced_facts=1"],
            "--min-score expeced_facts/mean: no scorer of this evaluation produces it; it produces "
            "expected_facts/mean, expected_tool_called/mean, latency_ms/max, latency_ms/mean, latency_ms/p90, "
            "total_tokens/max, total_tokens/mean",
        ),
        (  # a judge's metric, without a judge model
            ["--dataset", str(DATASET), "--max-score", "relevance_to_query/mean=2"],
            "--max-score relevance_to_query/mean: no scorer of this evaluation produces it; it produces "
            "expected_facts/mean, expected_tool_called/mean, latency_ms/max, latency_ms/mean, latency_ms/p90, "
            "total_tokens/max, total_tokens/mean",
        ),
        (
            ["--conversations", "/nonexistent.jsonl", "--simulator-model", "openai:/scripted-model"],
            "cannot read dataset file /nonexistent.jsonl: No such file or directory",
        ),
    ],
    ids=[
        "missing-dataset",
        "unparsable-dataset",
        "unknown-metric",
        "judge-metric-without-judge",
        "missing-cases",
    ],
)
def test_a_usage_error_is_found_before_anything_is_loaded_or_logged(
    registered: str, backend: dict[str, str], args: list[str], message: str, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"inputs": {"input": "hi"}}\n{"inputs": \n')
    args = [str(broken) if a == "{broken}" else a for a in args]
    message = message.replace("{broken}", str(broken))
    runs, tags = _runs(), _version_tags()
    result = run_evaluate(registered, *args, env=backend)
    assert (result.returncode, _error_line(result)) == (2, f"error: {message}"), result.stderr
    assert _runs() == runs  # no run was opened
    assert _version_tags() == tags  # and the version is as it was
    # Nothing is loaded first: with a target that cannot load, the usage error is still the one.
    unloadable = run_evaluate(f"runs:/{'0' * 32}/agent", *args, env=backend)
    assert (unloadable.returncode, _error_line(unloadable)) == (2, f"error: {message}"), unloadable.stderr


def test_an_evaluation_that_fails_midway_leaves_the_version_untagged(
    registered: str, backend: dict[str, str]
) -> None:
    # The records are scored; then the simulated user's endpoint is down, so MLflow's simulator
    # produces no conversation and its evaluate raises.
    env = {**backend, "OPENAI_API_BASE": f"http://127.0.0.1:{free_port()}/v1"}
    conversations = REPO / "datasets" / "example_conversations.jsonl"
    runs, tags = _runs(), _version_tags()
    result = run_evaluate(
        registered, "--dataset", str(DATASET), "--conversations", str(conversations),
        "--simulator-model", "openai:/scripted-model", "--max-turns", "2", env=env,
    )  # fmt: skip
    [failed] = [r for r in _runs() if r not in runs]
    simulator = (
        "Simulation produced no traces. This may indicate that all conversations failed during "
        "simulation. Check the logs above for error details."
    )
    assert (result.returncode, _error_line(result)) == (
        3,
        f"error: the evaluation failed: {simulator} (run {failed} is marked FAILED; the version was not tagged)",
    ), result.stderr
    run = MlflowClient().get_run(failed)
    assert run.info.status == "FAILED" and run.data.metrics["expected_tool_called/mean"] == 1.0
    assert _version_tags() == tags


@pytest.fixture(scope="module")
def python_serving(registered: str, backend: dict[str, str], log_dir: Path) -> Iterator[ServerProcess]:
    port = free_port()
    command = [sys.executable, "-m", "serving", "-m", registered, "-p", str(port), "-h", "127.0.0.1"]
    env = venv_env({**backend, "MLFLOW_EXPERIMENT_NAME": "eval-served"})
    server = start_server(
        f"eval-serving-{port}", command, port=port, log_dir=log_dir, env=env, health_path="/ready"
    )
    yield server
    server.stop()


def test_a_served_agent_is_evaluated_with_its_server_trace_merged(
    python_serving: ServerProcess, backend: dict[str, str]
) -> None:
    result = run_evaluate(python_serving.url, "--dataset", str(DATASET), env=backend)
    assert result.returncode == 0, result.stderr
    run = MlflowClient().get_run(run_id_of(result))
    assert run.data.metrics["expected_tool_called/mean"] == 1.0
    assert run.data.metrics["total_tokens/mean"] > 0
    traces = run_traces(run.info.run_id)
    assert all(t.data.spans[0].name == "served_agent" for t in traces)
    merged = [t for t in traces if SpanType.TOOL in span_types(t)]
    assert len(merged) == 4 and all(SpanType.CHAT_MODEL in span_types(t) for t in merged)


def test_an_agent_behind_mlflow_models_serve_is_scored_from_its_responses(
    registered: str, backend: dict[str, str], log_dir: Path
) -> None:
    server = start_mlflow_serve(registered, log_dir, backend, name="eval-mlflow-serve")
    try:
        result = run_evaluate(server.url, "--dataset", str(DATASET), env=backend)
    finally:
        server.stop()
    assert result.returncode == 0, result.stderr
    metrics = MlflowClient().get_run(run_id_of(result)).data.metrics
    assert metrics["expected_tool_called/mean"] == 1.0 and metrics["expected_facts/mean"] == 1.0


def test_an_mlflow_evaluation_dataset_can_be_the_dataset(registered: str, backend: dict[str, str]) -> None:
    from mlflow.genai.datasets import create_dataset

    from agentship.evaluation.dataset import load_records

    experiment = mlflow.set_experiment(EXPERIMENT)
    created = create_dataset(name="example-agent-records", experiment_id=experiment.experiment_id)
    created.merge_records(load_records(DATASET)[:2])
    result = run_evaluate(registered, "--dataset-name", "example-agent-records", env=backend)
    assert result.returncode == 0, result.stderr
    run = MlflowClient().get_run(run_id_of(result))
    assert run.data.metrics["expected_tool_called/mean"] == 1.0
    assert [d.dataset.name for d in run.inputs.dataset_inputs] == ["example-agent-records"]


def test_simulated_conversations_are_scored_per_session(
    registered: str, backend: dict[str, str], scripted: ServerProcess
) -> None:
    # MLflow's simulator reads its endpoint from OPENAI_API_BASE; the agent, from OPENAI_BASE_URL.
    env = {**backend, "OPENAI_API_BASE": scripted.url + "/v1"}
    conversations = REPO / "datasets" / "example_conversations.jsonl"
    result = run_evaluate(
        registered, "--conversations", str(conversations),
        "--simulator-model", "openai:/scripted-model", "--max-turns", "2", env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    run = MlflowClient().get_run(run_id_of(result))
    # The scripted user never answers the goal check in JSON: every conversation runs 2 turns.
    assert run.data.metrics["conversation_turns/mean"] == 2.0
    assert run.data.metrics["conversation_answered/mean"] == 1.0
    sessions: dict[str, list[Trace]] = {}
    for trace in run_traces(run.info.run_id):
        sessions.setdefault(trace.info.trace_metadata[TraceMetadataKey.TRACE_SESSION], []).append(trace)
    assert len(sessions) == len(conversations.read_text().splitlines())
    assert all(len(turns) == 2 for turns in sessions.values())


def test_the_evaluation_runs_as_an_mlproject_entry_point(registered: str, backend: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mlflow", "run", str(REPO), "-e", "evaluate", "--env-manager", "local",
         "--experiment-name", EXPERIMENT, "-P", f"target={registered}", "-P", "promote=mlproject",
         "-P", "min_score=expected_tool_called=1"],
        env=venv_env(backend), capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "mlproject" in MlflowClient().get_registered_model(NAME).aliases
