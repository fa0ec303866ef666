"""OpenTelemetry GenAI semantic-convention attributes for the package's spans. Pure.

MLflow's own OTLP export can translate its ``mlflow.*`` attributes into the GenAI conventions
(``MLFLOW_ENABLE_OTEL_GENAI_SEMCONV``), but it then drops the ``mlflow.*`` attributes and
renames the spans. The package's spans carry both instead: MLflow's attributes for the MLflow
UI, and these, as typed OpenTelemetry values, for Phoenix, Langfuse or Jaeger. The names and the
operation for each span type follow MLflow's translator
(``mlflow/tracing/export/genai_semconv/translator.py``) and
https://opentelemetry.io/docs/specs/semconv/gen-ai/gen-ai-spans/.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlflow.entities import SpanType
from mlflow.tracing.constant import GenAiSemconvKey

from agentship.trace_payloads import OtelValue

TOOL_CALL_ID = "gen_ai.tool.call.id"
TOOL_TYPE = "gen_ai.tool.type"
REQUEST_FREQUENCY_PENALTY = "gen_ai.request.frequency_penalty"
REQUEST_PRESENCE_PENALTY = "gen_ai.request.presence_penalty"

OPERATIONS: dict[str, str] = {
    SpanType.CHAT_MODEL: "chat",
    SpanType.LLM: "chat",
    SpanType.TOOL: "execute_tool",
    SpanType.AGENT: "invoke_agent",
}
"""The operation of each span type. An LLM span of this package is a chat call too (MLflow's
translator says ``generate_content`` for LLM spans in general)."""

_REQUEST_PARAMETERS = {
    "temperature": GenAiSemconvKey.REQUEST_TEMPERATURE,
    "top_p": GenAiSemconvKey.REQUEST_TOP_P,
    "max_tokens": GenAiSemconvKey.REQUEST_MAX_TOKENS,
    "max_output_tokens": GenAiSemconvKey.REQUEST_MAX_TOKENS,
    "frequency_penalty": REQUEST_FREQUENCY_PENALTY,
    "presence_penalty": REQUEST_PRESENCE_PENALTY,
}


def _scalar(value: Any) -> OtelValue | None:
    if isinstance(value, bool | int | float | str):
        return value
    return None


def model_call(
    span_type: str,
    model: str | None,
    parameters: Mapping[str, Any] | None = None,
    usage: Mapping[str, Any] | None = None,
    response_id: str | None = None,
    response_model: str | None = None,
) -> dict[str, OtelValue | None]:
    """A model call's attributes: operation, model, sampling parameters, token usage."""
    out: dict[str, OtelValue | None] = {
        GenAiSemconvKey.OPERATION_NAME: OPERATIONS.get(span_type, "chat"),
        GenAiSemconvKey.REQUEST_MODEL: model or None,
        GenAiSemconvKey.RESPONSE_ID: response_id,
        GenAiSemconvKey.RESPONSE_MODEL: response_model,
    }
    for name, key in _REQUEST_PARAMETERS.items():
        if out.get(key) is None:
            out[key] = _scalar((parameters or {}).get(name))
    if usage:
        out[GenAiSemconvKey.USAGE_INPUT_TOKENS] = _scalar(usage.get("input_tokens"))
        out[GenAiSemconvKey.USAGE_OUTPUT_TOKENS] = _scalar(usage.get("output_tokens"))
    return out


def tool_call(name: str, call_id: str | None) -> dict[str, OtelValue | None]:
    """A tool call's attributes: operation, the tool's name and the model's call id."""
    return {
        GenAiSemconvKey.OPERATION_NAME: OPERATIONS[SpanType.TOOL],
        GenAiSemconvKey.TOOL_NAME: name,
        TOOL_CALL_ID: call_id,
        TOOL_TYPE: "function",
    }


def agent(name: str) -> dict[str, OtelValue | None]:
    """An agent's attributes: operation and name."""
    return {GenAiSemconvKey.OPERATION_NAME: OPERATIONS[SpanType.AGENT], GenAiSemconvKey.AGENT_NAME: name}
