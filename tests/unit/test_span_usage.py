"""Model-call spans record the usage the backend reported, and none when it reported none (the
Agents SDK records zeros for a stream without usage, as llama.cpp's are)."""

from __future__ import annotations

from agents.tracing import GenerationSpanData
from mlflow.tracing.constant import SpanAttributeKey

from agentship.openai_agents.span_data import record


def _generation(usage: dict[str, object] | None) -> GenerationSpanData:
    return GenerationSpanData(
        input=[{"role": "user", "content": "hi"}],
        output=[{"role": "assistant", "content": "hi"}],
        model="m",
        model_config={},
        usage=usage,
    )


def test_unreported_usage_is_absent_not_zero() -> None:
    assert (
        SpanAttributeKey.CHAT_USAGE
        not in record(_generation({"input_tokens": 0, "output_tokens": 0})).attributes
    )
    assert SpanAttributeKey.CHAT_USAGE not in record(_generation(None)).attributes


def test_reported_usage_is_recorded_with_its_cache_details() -> None:
    reported = {
        "input_tokens": 30,
        "output_tokens": 4,
        "input_tokens_details": {"cached_tokens": 8, "cache_write_tokens": 2},
    }
    assert record(_generation(reported)).attributes[SpanAttributeKey.CHAT_USAGE] == {
        "input_tokens": 30,
        "output_tokens": 4,
        "total_tokens": 34,
        "cache_read_input_tokens": 8,
        "cache_creation_input_tokens": 2,
    }
    assert record(_generation({"input_tokens": 30, "output_tokens": 4})).attributes[
        SpanAttributeKey.CHAT_USAGE
    ] == {"input_tokens": 30, "output_tokens": 4, "total_tokens": 34}
