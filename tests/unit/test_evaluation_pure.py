"""The evaluation's pure parts: datasets, the gate, the scorers' helpers, request building,
and the real-model server's request rewriting."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow.entities import SpanType

from agentship.errors import ConfigError
from agentship.evaluation import dataset, gate
from agentship.evaluation.cli import build_parser, options_from, report
from agentship.evaluation.judges import judge_scorers, model_from
from agentship.evaluation.plan import plan_evaluation
from agentship.evaluation.runner import EvaluationOptions, EvaluationOutcome
from agentship.evaluation.scorers import (
    expected_facts,
    expected_tool_called,
    facts_found,
    judge_tool_calls,
    tool_calls_in_output,
    tools_called,
)
from agentship.evaluation.targets import request_body, usage_attribute
from agentship.testing.llama_cpp_server import StructuredOutputs, rewrite_request

REPO = Path(__file__).resolve().parents[2]


# -- datasets ---------------------------------------------------------------------------------
def test_the_example_datasets_parse() -> None:
    records = dataset.load_records(REPO / "datasets" / "example_agent.jsonl")
    assert len(records) >= 4
    assert all(isinstance(r["inputs"]["input"], list) for r in records)
    assert {"expected_tool_calls", "expected_facts"} <= dataset.expectation_keys(records)
    cases = dataset.load_test_cases(REPO / "datasets" / "example_conversations.jsonl")
    assert cases and all(c["goal"] for c in cases)


def test_a_string_input_becomes_a_user_message() -> None:
    [record] = dataset.parse_records(['{"inputs": {"input": "hi"}}'])
    assert record["inputs"]["input"] == [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("not json", "not valid JSON"),
        ("[1]", "JSON object"),
        ('{"goal": "x"}', "needs an 'inputs' object"),
        ('{"inputs": {"input": ""}}', "non-empty"),
        ('{"inputs": {"question": "x", "input": "y"}}', "unknown inputs field(s) ['question']"),
        ('{"inputs": {"input": "x"}, "expectations": {"expected_facts": "Paris"}}', "must be a list"),
        ('{"inputs": {"input": "x"}, "expectations": {"expected_tool_calls": ["get_weather"]}}', "'name'"),
    ],
)
def test_bad_records_are_named_by_line(line: str, problem: str) -> None:
    with pytest.raises(ConfigError, match="ds:2") as info:
        dataset.parse_records(["# a comment", line], "ds")
    assert problem in info.value.message


def test_an_empty_file_and_a_goalless_case_are_refused() -> None:
    with pytest.raises(ConfigError, match="holds no records"):
        dataset.parse_records(["", "# only a comment"])
    with pytest.raises(ConfigError, match="needs a 'goal'"):
        dataset.parse_test_cases(['{"persona": "x"}'])
    with pytest.raises(ConfigError, match="unknown field"):
        dataset.parse_test_cases(['{"goal": "x", "turns": 3}'])


# -- the gate ---------------------------------------------------------------------------------
def test_thresholds_default_to_the_mean_and_compare_both_ways() -> None:
    low = gate.parse_threshold("expected_facts=0.8", "min")
    high = gate.parse_threshold("latency_ms/p90 = 5000", "max")
    assert (low.metric, high.metric) == ("expected_facts/mean", "latency_ms/p90")
    passing = gate.check({"expected_facts/mean": 0.8, "latency_ms/p90": 4000.0}, [low, high])
    assert passing.passed
    failing = gate.check({"expected_facts/mean": 0.79, "latency_ms/p90": 4000.0}, [low, high])
    assert not failing.passed
    assert [c.passed for c in failing.checks] == [False, True]


def test_a_missing_or_nan_metric_fails_and_no_threshold_is_no_pass() -> None:
    threshold = gate.parse_threshold("correctness=0.5", "min")
    assert not gate.check({}, [threshold]).passed
    assert not gate.check({"correctness/mean": float("nan")}, [threshold]).passed
    assert "missing" in gate.check({}, [threshold]).checks[0].describe()
    assert not gate.check({"x/mean": 1.0}, []).passed


@pytest.mark.parametrize("text", ["expected_facts", "=1", "expected_facts=high"])
def test_malformed_thresholds_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError):
        gate.parse_threshold(text, "min")


# -- scorers ----------------------------------------------------------------------------------
def test_expected_tools_pass_when_each_was_called_and_an_empty_list_means_none() -> None:
    assert judge_tool_calls([{"name": "get_weather"}], ["get_weather", "add"])[0]
    passed, rationale = judge_tool_calls([{"name": "get_weather"}, {"name": "add"}], ["get_weather"])
    assert not passed and "missing ['add']" in rationale
    assert judge_tool_calls([], [])[0]
    assert not judge_tool_calls([], ["add"])[0]


def test_facts_are_found_ignoring_case_and_spacing() -> None:
    found, missing = facts_found("It is 18°C and\n SUNNY in Paris.", ["18°C", "sunny in paris", "rain"])
    assert (found, missing) == (["18°C", "sunny in paris"], ["rain"])


def _response(*items: dict[str, Any]) -> dict[str, Any]:
    return {"object": "response", "output": list(items)}


TEXT = {
    "type": "message",
    "id": "m",
    "role": "assistant",
    "content": [{"type": "output_text", "text": "It is sunny."}],
}


def test_tool_calls_are_read_from_tool_spans_else_from_the_response() -> None:
    response = _response(
        {"type": "function_call", "name": "get_weather", "call_id": "c", "arguments": "{}"},
        {"type": "mcp_call", "name": "add", "server_label": "agent"},
        TEXT,
    )
    assert tool_calls_in_output(response) == ["get_weather", "add"]
    assert tool_calls_in_output([response]) == ["get_weather", "add"]  # as PyFuncModel wraps it
    with mlflow.start_span("root", span_type=SpanType.AGENT) as root:
        with mlflow.start_span("lookup", span_type=SpanType.TOOL):
            pass
        root.set_outputs(_response(TEXT))
    trace = mlflow.get_trace(root.trace_id, flush=True)
    assert trace is not None
    assert tools_called(trace, None) == ["lookup"]
    with mlflow.start_span("root", span_type=SpanType.AGENT) as bare:
        bare.set_outputs(response)
    bare_trace = mlflow.get_trace(bare.trace_id, flush=True)
    assert bare_trace is not None
    assert tools_called(bare_trace, None) == ["get_weather", "add"]


def test_scorers_skip_records_without_their_expectation() -> None:
    assert expected_tool_called(trace=None, outputs=_response(TEXT), expectations={}) is None
    assert expected_facts(outputs=_response(TEXT), expectations={"expected_facts": []}) is None
    feedback = expected_facts(outputs=_response(TEXT), expectations={"expected_facts": ["sunny", "rain"]})
    assert feedback is not None and feedback.value == 0.5


# -- targets ----------------------------------------------------------------------------------
def test_the_simulator_session_becomes_the_conversation_id() -> None:
    body = request_body("hi", mlflow_session_id="sim-1", user_id="u")
    assert body == {
        "input": [{"role": "user", "content": "hi"}],
        "context": {"conversation_id": "sim-1", "user_id": "u"},
    }
    given = request_body([{"role": "user", "content": "x"}], {"conversation_id": "mine"}, {"k": 1}, "sim-1")
    assert given["context"] == {"conversation_id": "mine"} and given["custom_inputs"] == {"k": 1}
    assert request_body("x") == {"input": [{"role": "user", "content": "x"}]}


def test_usage_is_copied_only_when_reported() -> None:
    assert usage_attribute({"usage": None}) is None
    assert usage_attribute({"usage": {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}}) is None
    assert usage_attribute({"usage": {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5}}) == {
        "input_tokens": 3,
        "output_tokens": 2,
        "total_tokens": 5,
    }


# -- judges and the command line --------------------------------------------------------------
def test_judges_apply_by_expectation_and_models_are_checked() -> None:
    assert [s.name for s in judge_scorers("openai:/m", set())] == ["relevance_to_query"]
    names = [s.name for s in judge_scorers("openai:/m", {"expected_facts", "guidelines"})]
    assert names == ["relevance_to_query", "correctness", "expectations_guidelines"]
    assert model_from(None, {"AGENTSHIP_JUDGE_MODEL": "openai:/m"}, "AGENTSHIP_JUDGE_MODEL") == "openai:/m"
    assert model_from("openai:/flag", {"X": "openai:/env"}, "X") == "openai:/flag"
    assert model_from(None, {}, "X") is None
    with pytest.raises(ConfigError, match="model URI"):
        model_from("gpt-4", {}, "X")


def test_the_command_line_parses_into_options() -> None:
    argv = "models:/a@b --dataset d.jsonl --promote prod --min-score x=1 --max-score latency_ms/p90=9"
    args = build_parser().parse_args(argv.split())
    options = options_from(args, {"AGENTSHIP_SIMULATOR_MODEL": "openai:/sim"})
    assert options.simulator_model == "openai:/sim" and options.judge_model is None
    assert [t.describe() for t in options.thresholds] == ["x/mean >= 1", "latency_ms/p90 <= 9"]
    outcome = EvaluationOutcome(
        "run1", {"x/mean": 1.0}, None, gate.check({"x/mean": 1.0}, options.thresholds)
    )
    lines = report(outcome)
    assert any(line.startswith("x/mean") for line in lines) and lines[-1] == "gate: failed"


# -- the real-model server's compatibility layer ----------------------------------------------
def test_openai_request_forms_are_rewritten_for_llama_cpp() -> None:
    schema = {"type": "object", "properties": {"result": {"type": "string"}}}
    body = {
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "c"}]},
        ],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "r", "schema": schema, "strict": True},
        },
    }
    out = rewrite_request(body)
    free = {"type": "string", "maxLength": 600, "pattern": '^[^"\\\\<]{0,600}$'}
    bounded = {"type": "object", "properties": {"result": free}}
    assert out["response_format"] == {"type": "json_object", "schema": bounded}
    assert out["messages"][1]["content"] == "" and out["messages"][0] == body["messages"][0]
    plain = {"messages": [], "response_format": {"type": "json_object"}}
    assert rewrite_request(plain) == plain


def test_the_middleware_rewrites_only_chat_completion_posts() -> None:
    seen: list[bytes] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((await receive())["body"])

    body = {"messages": [{"role": "assistant", "content": None}]}
    chunks = iter([json.dumps(body).encode()[:10], json.dumps(body).encode()[10:]])

    async def receive() -> dict[str, Any]:
        chunk = next(chunks, None)
        return {"type": "http.request", "body": chunk or b"", "more_body": chunk is not None}

    wrapped = StructuredOutputs(app)
    asyncio.run(wrapped({"type": "http", "method": "POST", "path": "/v1/chat/completions"}, receive, None))
    assert json.loads(seen[0]) == {"messages": [{"role": "assistant", "content": ""}]}

    async def untouched() -> dict[str, Any]:
        return {"type": "http.request", "body": b"raw", "more_body": False}

    asyncio.run(wrapped({"type": "http", "method": "GET", "path": "/v1/models"}, untouched, None))
    assert seen[1] == b"raw"


# -- the plan: arguments checked before anything runs ------------------------------------------
def test_the_plan_reads_the_data_and_knows_the_metrics_its_scorers_produce() -> None:
    options = EvaluationOptions(target="models:/x@y", dataset=REPO / "datasets" / "example_agent.jsonl")
    plan = plan_evaluation(options)
    assert plan.records == dataset.load_records(REPO / "datasets" / "example_agent.jsonl")
    assert plan.metrics() == {
        "expected_tool_called/mean",
        "expected_facts/mean",
        "latency_ms/mean",
        "latency_ms/p90",
        "latency_ms/max",
        "total_tokens/mean",
        "total_tokens/max",
    }
    judged = plan_evaluation(
        EvaluationOptions(target="x", dataset=options.dataset, judge_model="openai:/judge")
    )
    assert judged.metrics() - plan.metrics() == {"relevance_to_query/mean", "correctness/mean"}
    unsimulated = plan_evaluation(
        EvaluationOptions(target="x", conversations=REPO / "datasets" / "example_conversations.jsonl")
    )
    assert (unsimulated.records, unsimulated.simulation, unsimulated.metrics()) == (None, None, set())
    assert unsimulated.notes == [
        "conversations skipped: no user simulator (AGENTSHIP_SIMULATOR_MODEL or --simulator-model)"
    ]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_turns": 0}, "--max-turns must be at least 1, not 0"),
        ({"promote_alias": "prod"}, "--promote needs at least one --min-score or --max-score to gate on"),
        (
            {"thresholds": (gate.parse_threshold("latency_ms/p99=9", "max"),)},
            "--max-score latency_ms/p99: no scorer of this evaluation produces it; it produces "
            "expected_facts/mean, expected_tool_called/mean, latency_ms/max, latency_ms/mean, latency_ms/p90, "
            "total_tokens/max, total_tokens/mean",
        ),
    ],
)
def test_the_plan_refuses_what_cannot_run(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        plan_evaluation(
            EvaluationOptions(target="x", dataset=REPO / "datasets" / "example_agent.jsonl", **options)
        )
    assert info.value.message == message
