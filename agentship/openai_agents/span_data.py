"""What an Agents SDK span records in MLflow, read from its data when it ends. Pure.

The SDK fills a span's data in while the span is open (a function span's ``input`` just after
it starts, a generation's input and output when the model answers, an agent span's tools and
handoffs once they are resolved), so the data is read once, at the end. Each span records what
``mlflow.openai.autolog()`` records for it (``mlflow/openai/_agent_tracer.py``): inputs and
outputs, the model and its settings, token usage, the agent's tools, handoffs and output type,
plus the definitions of the tools offered to the model (``mlflow.chat.tools``, which autolog
takes from the OpenAI client's request) and GenAI semantic-convention attributes for OTLP.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlflow.entities import SpanType
from mlflow.tracing.constant import SpanAttributeKey, TokenUsageKey
from mlflow.types.chat import ChatTool

from agentship import genai_attributes as genai
from agentship.openai_agents.tool_text import parts_as_text
from agentship.trace_payloads import OtelValue
from agentship.tracing import tool_arguments

KINDS = {
    "agent": SpanType.AGENT,
    "generation": SpanType.CHAT_MODEL,
    "response": SpanType.CHAT_MODEL,
    "function": SpanType.TOOL,
    "handoff": SpanType.CHAIN,
    "guardrail": SpanType.GUARDRAIL,
    "custom": SpanType.CHAIN,
}
"""The SDK spans mirrored, and their MLflow types (autolog's). Task and turn spans are not:
their children attach to their parent."""

MESSAGE_FORMAT = "openai-agent"
"""How autolog marks a model span's messages for the MLflow UI's chat view."""


@dataclass
class Offered:
    """What a model call was given besides its input: its tools and handoffs (the SDK's
    objects), its settings (as the SDK traces them) and its system instructions."""

    tools: Sequence[Any] = ()
    handoffs: Sequence[Any] = ()
    settings: Mapping[str, Any] | None = None
    instructions: str | None = None


@dataclass
class SpanRecord:
    """One span's inputs, outputs, MLflow attributes (JSON) and OpenTelemetry attributes."""

    inputs: Any = None
    outputs: Any = None
    attributes: dict[str, Any] = field(default_factory=dict)
    otel: dict[str, OtelValue | None] = field(default_factory=dict)
    name: str | None = None
    """The span's name, when what the SDK knew at the start did not settle it."""


def describe(data: Any) -> tuple[str, str] | None:
    """(name, MLflow span type) of an SDK span; None for spans not mirrored."""
    kind = data.type
    if kind not in KINDS:
        return None
    if kind == "generation":
        return f"generation {data.model or ''}".strip(), KINDS[kind]
    if kind == "response":
        return "response", KINDS[kind]
    if kind == "handoff":  # the SDK names the target after the span starts
        return (f"handoff to {data.to_agent}" if data.to_agent else "handoff"), KINDS[kind]
    return str(getattr(data, "name", None) or kind), KINDS[kind]


def usage(raw: Any) -> dict[str, int] | None:
    """Token usage as MLflow records it; None when unreported (the SDK records zeros then)."""
    if raw is None:
        return None
    get = raw.get if isinstance(raw, Mapping) else (lambda k, d=None: getattr(raw, k, d))
    inputs, outputs = get("input_tokens"), get("output_tokens")
    if not inputs and not outputs:  # llama.cpp's streams report none
        return None
    total = get("total_tokens") or (inputs or 0) + (outputs or 0)
    out = {
        TokenUsageKey.INPUT_TOKENS: int(inputs or 0),
        TokenUsageKey.OUTPUT_TOKENS: int(outputs or 0),
        TokenUsageKey.TOTAL_TOKENS: int(total),
    }
    details = get("input_tokens_details")
    if isinstance(details, Mapping):
        if (cached := details.get("cached_tokens")) is not None:
            out[TokenUsageKey.CACHE_READ_INPUT_TOKENS] = int(cached)
        if (written := details.get("cache_write_tokens")) is not None:
            out[TokenUsageKey.CACHE_CREATION_INPUT_TOKENS] = int(written)
    return out


def _chat_tool(definition: dict[str, Any]) -> dict[str, Any]:
    try:
        return ChatTool(**definition).model_dump(exclude_unset=True)
    except Exception:  # noqa: BLE001 - a schema MLflow's type cannot hold is kept as it is
        return definition


def chat_tools(offered: Offered) -> list[dict[str, Any]]:
    """The offered tools and handoffs as MLflow's ``mlflow.chat.tools`` (its ChatTool form)."""
    from agents.models.chatcmpl_converter import Converter

    definitions = []
    for tool in offered.tools:
        try:
            definition: dict[str, Any] = dict(Converter.tool_to_openai(tool))
        except Exception:  # noqa: BLE001 - a hosted tool: named, as MLflow names built-in tools
            definition = {
                "type": "function",
                "function": {"name": str(getattr(tool, "name", type(tool).__name__))},
            }
        definitions.append(_chat_tool(definition))
    definitions += [_chat_tool(dict(Converter.convert_handoff_tool(h))) for h in offered.handoffs]
    return definitions


def _agent(data: Any, offered: Offered | None) -> SpanRecord:
    attributes: dict[str, Any] = {
        "handoffs": data.handoffs,
        "tools": data.tools,
        "output_type": data.output_type,
    }
    if offered is not None:
        attributes[SpanAttributeKey.CHAT_TOOLS] = chat_tools(offered)
    return SpanRecord(
        inputs={"tools": data.tools or [], "handoffs": data.handoffs or []},
        outputs={"output_type": data.output_type},
        attributes=attributes,
        otel=genai.agent(data.name),
    )


def _generation(data: Any, offered: Offered | None) -> SpanRecord:
    used = usage(data.usage)
    attributes: dict[str, Any] = {
        SpanAttributeKey.MODEL: data.model,
        "model_config": data.model_config,
        SpanAttributeKey.MESSAGE_FORMAT: MESSAGE_FORMAT,
    }
    if used:
        attributes[SpanAttributeKey.CHAT_USAGE] = used
    if offered is not None:
        attributes[SpanAttributeKey.CHAT_TOOLS] = chat_tools(offered)
    otel = genai.model_call(SpanType.CHAT_MODEL, data.model, data.model_config, used)
    return SpanRecord(data.input, data.output, attributes, otel)


def _response(data: Any, offered: Offered | None) -> SpanRecord:
    response = data.response
    dumped: dict[str, Any] = response.model_dump() if response is not None else {}
    used = usage(dumped.get("usage") or data.usage)
    attributes = {k: v for k, v in dumped.items() if k != "output"}
    attributes[SpanAttributeKey.MESSAGE_FORMAT] = MESSAGE_FORMAT
    if dumped.get("model"):
        attributes[SpanAttributeKey.MODEL] = dumped["model"]
    if used:
        attributes[SpanAttributeKey.CHAT_USAGE] = used
    parameters: Mapping[str, Any] = dumped
    if offered is not None:  # what was sent, where the server's echo of it is empty
        attributes[SpanAttributeKey.CHAT_TOOLS] = chat_tools(offered)
        if offered.settings is not None:
            attributes["model_config"] = dict(offered.settings)
            parameters = {**offered.settings, **{k: v for k, v in dumped.items() if v is not None}}
        if not dumped.get("instructions") and offered.instructions:
            attributes["instructions"] = offered.instructions
    elif dumped.get("tools"):
        tools = [
            {"type": "function", "function": {k: v for k, v in t.items() if k != "type"}}
            for t in dumped["tools"]
        ]
        attributes[SpanAttributeKey.CHAT_TOOLS] = [_chat_tool(t) for t in tools]
    model = dumped.get("model")
    otel = genai.model_call(SpanType.CHAT_MODEL, model, parameters, used, dumped.get("id"), model)
    return SpanRecord(data.input, dumped.get("output"), attributes, otel)


def record(data: Any, offered: Offered | None = None, call_id: str | None = None) -> SpanRecord:
    """What the finished SDK span ``data`` records. ``offered``: the tools its model call was
    offered (model and agent spans); ``call_id``: the model's id for a tool call."""
    kind = data.type
    if kind == "agent":
        return _agent(data, offered)
    if kind == "generation":
        return _generation(data, offered)
    if kind == "response":
        return _response(data, offered)
    if kind == "function":
        otel = genai.tool_call(data.name, call_id)
        attributes = {"mcp_data": data.mcp_data} if data.mcp_data else {}
        return SpanRecord(tool_arguments(data.input), parts_as_text(data.output), attributes, otel)
    if kind == "handoff":
        inputs, outputs = {"from_agent": data.from_agent}, {"to_agent": data.to_agent}
        return SpanRecord(inputs, outputs, name=f"handoff to {data.to_agent}")
    if kind == "guardrail":
        return SpanRecord(None, {"triggered": data.triggered})
    if kind == "custom":
        return SpanRecord(None, data.data)
    return SpanRecord()
