"""What an agent is built from, besides its model: tools by import path (both backends load
theirs here), the endpoint's hosted tools, client tools declared per request, guardrails, the
output type, and the run context every tool can read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import jsonschema
from agents.agent_output import AgentOutputSchema, AgentOutputSchemaBase
from agents.exceptions import ModelBehaviorError
from agents.tool import ToolErrorFunction, default_tool_error_function
from agents.tool_context import ToolContext

from agents import (
    CodeInterpreterTool,
    FileSearchTool,
    FunctionTool,
    InputGuardrail,
    OutputGuardrail,
    RunContextWrapper,
    Tool,
    WebSearchTool,
    function_tool,
    input_guardrail,
    output_guardrail,
)
from agentship.errors import ConfigError, InvalidRequestError
from agentship.imports import import_object
from agentship.openai_agents.config import HostedToolConfig


@dataclass
class AgentRunContext:
    """The run context every tool can read (``RunContextWrapper[AgentRunContext]``).

    Tools may write into ``custom_outputs``; it is returned with the response.
    """

    custom_inputs: dict[str, Any] = field(default_factory=dict)
    custom_outputs: dict[str, Any] = field(default_factory=dict)
    conversation_id: str | None = None
    user_id: str | None = None
    client_outputs: dict[str, str] = field(default_factory=dict)
    """The outputs a client sent for its own tools' calls, by call id (for a resumed run)."""


def load_tool(reference: str, on_error: ToolErrorFunction | None = None) -> FunctionTool:
    """The tool at ``module:name``: an ``agents.FunctionTool`` as it is, or a function wrapped.

    Both backends load their tools here (the OpenAI agent's ``tools``, the Llama Stack agent's
    ``client_tools``). ``on_error`` words a wrapped function's failure for the model (the SDK's
    default otherwise); a ready-made ``FunctionTool`` keeps its own.
    """
    obj = import_object(reference)
    if isinstance(obj, FunctionTool):
        return obj
    if callable(obj):
        try:
            return function_tool(obj, failure_error_function=on_error or default_tool_error_function)
        except Exception as exc:
            raise ConfigError(f"cannot describe tool {reference!r}: {exc}") from exc
    raise ConfigError(f"tool {reference!r} is neither a function nor an agents.FunctionTool")


def hosted_tool(config: HostedToolConfig) -> Tool:
    if config.type == "web_search":
        return WebSearchTool(search_context_size=config.search_context_size or "medium")
    if config.type == "file_search":
        return FileSearchTool(
            vector_store_ids=config.vector_store_ids, max_num_results=config.max_num_results
        )
    return CodeInterpreterTool(tool_config={"type": "code_interpreter", "container": {"type": "auto"}})


def load_guardrail(reference: str, kind: Literal["input", "output"]) -> Any:
    """An ``InputGuardrail``/``OutputGuardrail`` by import path (a plain function is wrapped)."""
    obj = import_object(reference)
    wanted = InputGuardrail if kind == "input" else OutputGuardrail
    if isinstance(obj, wanted):
        return obj
    if isinstance(obj, (InputGuardrail, OutputGuardrail)) or not callable(obj):
        raise ConfigError(f"{kind} guardrail {reference!r} is not an agents.{wanted.__name__} or a function")
    return input_guardrail(obj) if kind == "input" else output_guardrail(obj)


class JsonSchemaOutput(AgentOutputSchemaBase):
    """An output type given as a JSON schema: the final answer must be JSON that validates."""

    def __init__(self, schema: Mapping[str, Any], name: str = "final_output", strict: bool = False) -> None:
        try:
            jsonschema.Draft202012Validator.check_schema(dict(schema))
        except jsonschema.SchemaError as exc:
            raise ConfigError(f"the output type is not a valid JSON schema: {exc.message}") from exc
        self._schema = dict(schema)
        self._name = name
        self._strict = strict
        self._validator = jsonschema.Draft202012Validator(self._schema)

    def is_plain_text(self) -> bool:
        return False

    def name(self) -> str:
        return self._name

    def json_schema(self) -> dict[str, Any]:
        return self._schema

    def is_strict_json_schema(self) -> bool:
        return self._strict

    def validate_json(self, json_str: str) -> Any:
        try:
            value = json.loads(json_str)
        except json.JSONDecodeError as exc:
            raise ModelBehaviorError(f"the final answer is not JSON: {exc.msg}") from exc
        if errors := sorted(self._validator.iter_errors(value), key=lambda e: list(e.path)):
            where = "/".join(map(str, errors[0].path)) or "the answer"
            raise ModelBehaviorError(
                f"the final answer does not match the output schema at {where}: {errors[0].message}"
            )
        return value


def load_output_type(spec: dict[str, Any] | str) -> AgentOutputSchemaBase:
    if isinstance(spec, dict):
        return JsonSchemaOutput(spec)
    model = import_object(spec)
    if not isinstance(model, type):
        raise ConfigError(f"output_type {spec!r} is not a class (a pydantic model, say)")
    return AgentOutputSchema(model, strict_json_schema=False)


def request_output_type(text: Any) -> AgentOutputSchemaBase | None:
    """The output type a request asks for in ``text.format`` (``json_schema``), if any."""
    fmt = (text or {}).get("format") if isinstance(text, dict) else None
    if not isinstance(fmt, dict) or fmt.get("type") in (None, "text"):
        return None
    if fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
        raise InvalidRequestError(
            "'text.format' must be {'type': 'json_schema', 'name': ..., 'schema': {...}} or text"
        )
    try:
        return JsonSchemaOutput(
            fmt["schema"], str(fmt.get("name") or "final_output"), bool(fmt.get("strict"))
        )
    except ConfigError as exc:
        raise InvalidRequestError(f"'text.format.schema': {exc.message}") from exc


def client_tools(declared: list[Any] | None) -> list[FunctionTool]:
    """The function tools a request declares for its client to run.

    When the model calls one, the run pauses (like an approval) and the response ends with the
    ``function_call`` for the client; the client's next request carries the output.
    """
    tools = []
    for index, raw in enumerate(declared or []):
        spec = raw.model_dump(exclude_none=True) if hasattr(raw, "model_dump") else dict(raw)
        if spec.get("type") != "function":
            raise InvalidRequestError(
                f"'tools[{index}]' is a {spec.get('type')!r} tool; a request may only declare function tools "
                "(hosted tools are configured on the agent)"
            )
        if not spec.get("name"):
            raise InvalidRequestError(f"'tools[{index}]' has no 'name'")
        tools.append(
            FunctionTool(
                name=str(spec["name"]),
                description=str(spec.get("description") or ""),
                params_json_schema=spec.get("parameters") or {"type": "object", "properties": {}},
                on_invoke_tool=_client_output,
                strict_json_schema=bool(spec.get("strict")),
                needs_approval=True,
            )
        )
    return tools


async def _client_output(ctx: ToolContext[Any], arguments: str) -> str:
    """A client tool's "run": the output the client sent for this call (on resume)."""
    context = ctx.context if isinstance(ctx.context, AgentRunContext) else None
    if context is None or ctx.tool_call_id not in context.client_outputs:
        return "Error: the client did not send this tool call's output."
    return context.client_outputs[ctx.tool_call_id]


__all__ = [
    "AgentRunContext",
    "JsonSchemaOutput",
    "RunContextWrapper",
    "client_tools",
    "hosted_tool",
    "load_guardrail",
    "load_output_type",
    "load_tool",
    "request_output_type",
]
