"""Code-based scorers: they need no judge model, and read what they score from the trace.

* ``expected_tool_called``: every tool in ``expectations.expected_tool_calls`` was called (an
  empty list: no tool was). Calls are the trace's TOOL spans (MLflow's own extraction); a trace
  without them (an agent behind a URL whose trace the evaluator cannot read) falls back to the
  ``function_call``/``mcp_call`` items of the response recorded as the trace's output.
* ``expected_facts``: the share of ``expectations.expected_facts`` found in the answer
  (case-insensitive).
* ``latency_ms``: the call's duration (for an agent behind a URL, the HTTP round trip).
* ``total_tokens``: the trace's token usage as the backend reported it; no value when it
  reported none (never a made-up zero).
* ``conversation_turns`` and ``conversation_answered``: session-level, for simulated
  conversations: the number of turns, and whether every turn got an answer.

The helpers are pure functions of traces and outputs, tested on their own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mlflow.entities import AssessmentSource, AssessmentSourceType, Feedback, Span, Trace
from mlflow.entities.trace_state import TraceState
from mlflow.genai.scorers import Scorer, scorer
from mlflow.genai.utils.trace_utils import extract_tools_called_from_trace, parse_outputs_to_str

from agentship.evaluation.targets import REQUEST_MS_ATTRIBUTE

_TOOL_ITEMS = ("function_call", "mcp_call")


def _code_feedback(value: Any, rationale: str) -> Feedback:
    return Feedback(value=value, rationale=rationale, source=AssessmentSource(AssessmentSourceType.CODE))


def _response_of(outputs: Any) -> Mapping[str, Any]:
    if isinstance(outputs, list) and outputs:  # PyFuncModel.predict may wrap the answer in a list
        outputs = outputs[0]
    return outputs if isinstance(outputs, Mapping) else {}


def tool_calls_in_output(outputs: Any) -> list[str]:
    """Names of the tools a Responses response says were called, in order."""
    items = _response_of(outputs).get("output") or []
    return [str(i.get("name")) for i in items if isinstance(i, Mapping) and i.get("type") in _TOOL_ITEMS]


def _root(trace: Trace) -> Span | None:
    return next((span for span in trace.data.spans if span.parent_id is None), None)


def root_outputs(trace: Trace) -> Any:
    """The outputs of the trace's root span (the agent's response)."""
    root = _root(trace)
    return root.outputs if root is not None else None


def tools_called(trace: Trace | None, outputs: Any) -> list[str]:
    """Tool names from the trace's TOOL spans, else from the response's tool-call items."""
    if trace is not None:
        spans = extract_tools_called_from_trace(trace)
        if spans:
            return [str(call.name) for call in spans]
        if outputs is None:
            outputs = root_outputs(trace)
    return tool_calls_in_output(outputs)


def judge_tool_calls(expected: Sequence[Mapping[str, Any]], called: Sequence[str]) -> tuple[bool, str]:
    """(passed, rationale): every expected tool was called; an empty expectation means none."""
    names = [str(call["name"]) for call in expected]
    if not names:
        return (not called, "no tool was expected" + (f", but {called} were called" if called else ""))
    missing = [name for name in names if name not in called]
    if missing:
        return False, f"expected {names}, called {list(called) or 'no tool'}; missing {missing}"
    return True, f"called {list(called)}"


def _normalize(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


def facts_found(answer: str, facts: Iterable[str]) -> tuple[list[str], list[str]]:
    """(found, missing): which facts occur in the answer, ignoring case and spacing."""
    haystack = _normalize(answer)
    found: list[str] = []
    missing: list[str] = []
    for fact in facts:
        (found if _normalize(str(fact)) in haystack else missing).append(str(fact))
    return found, missing


def answer_text(outputs: Any) -> str:
    """The assistant's final text, as MLflow's judges read it."""
    return "" if outputs is None else parse_outputs_to_str(outputs).strip()


@scorer(name="expected_tool_called")
def expected_tool_called(trace: Trace, outputs: Any, expectations: dict[str, Any]) -> Feedback | None:
    expected = (expectations or {}).get("expected_tool_calls")
    if expected is None:
        return None
    passed, rationale = judge_tool_calls(expected, tools_called(trace, outputs))
    return _code_feedback(passed, rationale)


@scorer(name="expected_facts")
def expected_facts(outputs: Any, expectations: dict[str, Any]) -> Feedback | None:
    facts = (expectations or {}).get("expected_facts")
    if not facts:
        return None
    found, missing = facts_found(answer_text(outputs), facts)
    rationale = f"found {found}" + (f"; missing {missing}" if missing else "")
    return _code_feedback(len(found) / len(facts), rationale)


def latency_of(trace: Trace) -> float | None:
    """The call's duration: a served call's HTTP round trip, else the whole trace's."""
    root = _root(trace)
    measured = root.get_attribute(REQUEST_MS_ATTRIBUTE) if root is not None else None
    if isinstance(measured, int | float):
        return float(measured)
    duration = trace.info.execution_duration
    return None if duration is None else float(duration)


@scorer(name="latency_ms", aggregations=["mean", "p90", "max"])
def latency_ms(trace: Trace) -> float | None:
    return None if trace is None else latency_of(trace)


@scorer(name="total_tokens", aggregations=["mean", "max"])
def total_tokens(trace: Trace) -> Feedback | None:
    usage = trace.info.token_usage if trace is not None else None
    if not usage or not usage.get("total_tokens"):
        return None  # the backend reported none: absent, not zero
    rationale = f"input={usage.get('input_tokens')} output={usage.get('output_tokens')}"
    return _code_feedback(int(usage["total_tokens"]), rationale)


def _answered(trace: Trace) -> bool:
    return trace.info.state == TraceState.OK and bool(answer_text(root_outputs(trace)))


@scorer(name="conversation_turns")
def conversation_turns(session: list[Trace]) -> int:
    return len(session)


@scorer(name="conversation_answered")
def conversation_answered(session: list[Trace]) -> Feedback:
    unanswered = [i + 1 for i, trace in enumerate(session) if not _answered(trace)]
    rationale = (
        f"turns without an answer: {unanswered}" if unanswered else f"all {len(session)} turns answered"
    )
    return _code_feedback(not unanswered and bool(session), rationale)


def code_scorers() -> list[Scorer]:
    """The single-turn code-based scorers."""
    return [expected_tool_called, expected_facts, latency_ms, total_tokens]


def session_scorers() -> list[Scorer]:
    """The code-based scorers of simulated conversations."""
    return [conversation_turns, conversation_answered]
