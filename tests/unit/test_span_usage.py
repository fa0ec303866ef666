"""Model-call spans record the usage the backend reported, and none when it reported none (the
Agents SDK records zeros for a stream without usage, as llama.cpp's are)."""

from __future__ import annotations

from types import SimpleNamespace

from mlflow.tracing.constant import SpanAttributeKey

from agentship.openai_agents.tracing import outcome


def _generation(usage: object) -> SimpleNamespace:
    return SimpleNamespace(type="generation", usage=usage, output=[{"role": "assistant", "content": "hi"}])


def test_unreported_usage_is_absent_not_zero() -> None:
    assert outcome(_generation({"input_tokens": 0, "output_tokens": 0}))[1] == {}
    assert outcome(_generation(None))[1] == {}


def test_reported_usage_is_recorded() -> None:
    _, attributes = outcome(_generation({"input_tokens": 30, "output_tokens": 4}))
    assert attributes == {
        SpanAttributeKey.CHAT_USAGE: {"input_tokens": 30, "output_tokens": 4, "total_tokens": 34}
    }
