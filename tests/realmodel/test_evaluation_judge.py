"""The whole evaluation offline, with the real small model as MLflow's LLM judge and as the
simulated user, and the scripted model as the agent's backend. The judge is weak: the test checks
that MLflow got a well-formed verdict from it for every record, not what the verdict is."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.entities import AssessmentSourceType, Feedback
from mlflow.tracing.constant import TraceMetadataKey

from agentship.testing.processes import ServerProcess
from agentship.testing.real_model import MODEL_ALIAS
from tests.e2e.helpers import REPO, run_log_agent
from tests.e2e.test_evaluate_agent import run_evaluate, run_id_of, run_traces

pytestmark = [pytest.mark.realmodel, pytest.mark.e2e]

JUDGE = f"openai:/{MODEL_ALIAS}"


def _judged(feedbacks: list[Feedback], name: str) -> Feedback:
    """The judge's verdict as MLflow's judge schema fixes it: a string result and a string rationale
    from the real model. What they say is the model's (a 270M judge may well say nothing)."""
    [feedback] = [f for f in feedbacks if f.name == name]
    assert feedback.error is None, feedback.error  # first: a failed judge call says why here
    assert feedback.source.source_type == AssessmentSourceType.LLM_JUDGE
    assert feedback.source.source_id == JUDGE
    assert isinstance(feedback.value, str)
    assert isinstance(feedback.rationale, str)
    return feedback


@pytest.mark.timeout(900)
def test_the_real_model_judges_records_and_plays_the_user(
    scripted: ServerProcess, llama: ServerProcess, tmp_path: Path
) -> None:
    logged = run_log_agent("--agent", "openai-agents", "--registered-model-name", "judged-agent")
    assert logged.returncode == 0, logged.stderr
    records = tmp_path / "records.jsonl"
    records.write_text("\n".join((REPO / "datasets" / "example_agent.jsonl").read_text().splitlines()[:1]))
    conversation = tmp_path / "conversation.jsonl"
    conversation.write_text((REPO / "datasets" / "example_conversations.jsonl").read_text().splitlines()[0])
    env = {
        "OPENAI_BASE_URL": scripted.url + "/v1",  # the agent's backend (the openai SDK reads this)
        "OPENAI_API_KEY": "unused",
        "OPENAI_API_BASE": llama.url + "/v1",  # MLflow's judge and simulator (MLflow reads this first)
        "MLFLOW_GENAI_EVAL_MAX_WORKERS": "2",  # llama.cpp answers one call at a time
    }
    result = run_evaluate(
        "models:/judged-agent/1", "--dataset", str(records), "--conversations", str(conversation),
        "--judge-model", JUDGE, "--simulator-model", JUDGE, "--max-turns", "1", env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    run = MlflowClient().get_run(run_id_of(result))
    assert run.data.metrics["expected_tool_called/mean"] == 1.0
    assert run.data.tags["agentship.eval.judge_model"] == JUDGE
    traces = run_traces(run.info.run_id)
    single = [t for t in traces if not t.info.trace_metadata.get(TraceMetadataKey.TRACE_SESSION)]
    assert len(single) == 1
    for trace in single:
        feedbacks = [a for a in trace.info.assessments if isinstance(a, Feedback)]
        _judged(feedbacks, "relevance_to_query")
        _judged(feedbacks, "correctness")
    # The simulated user (the real model) held a conversation; MLflow's session judges scored it.
    simulated = [t for t in traces if t.info.trace_metadata.get(TraceMetadataKey.TRACE_SESSION)]
    assert len(simulated) == 1
    assert len({t.info.trace_metadata[TraceMetadataKey.TRACE_SESSION] for t in simulated}) == 1
    assert run.data.metrics["conversation_turns/mean"] == 1
    session_feedbacks = [a for t in simulated for a in t.info.assessments if isinstance(a, Feedback)]
    _judged(session_feedbacks, "conversation_completeness")
    _judged(session_feedbacks, "user_frustration")
