"""What one request asks of the OpenAI Agents SDK agent beyond its input. Pure: no I/O.

* per-request model settings (``temperature``, ``top_p``, ``max_output_tokens``,
  ``tool_choice``, ``parallel_tool_calls``, ``reasoning``, ``metadata``), from the request's own
  fields or from ``custom_inputs``; they override the config for this request;
* the output type that ``text.format`` asks for;
* the function tools its client runs (``tools``);
* the answers its input ends with: outputs of the client's tool calls and approval decisions,
  which resume a paused run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agents.agent_output import AgentOutputSchemaBase
from mlflow.types.responses import ResponsesAgentRequest
from openai.types.shared import Reasoning

from agents import FunctionTool, ModelSettings
from agentship.errors import InvalidRequestError
from agentship.openai_agents.tools import client_tools, request_output_type

SETTINGS = (
    "temperature",
    "top_p",
    "max_output_tokens",
    "tool_choice",
    "parallel_tool_calls",
    "reasoning",
    "metadata",
)
APPROVAL_PREFIX = "mcpr_"
"""An approval request's id is this prefix and the id of the tool call it is about."""


@dataclass(frozen=True)
class Approval:
    approve: bool
    reason: str | None = None


@dataclass
class RequestPlan:
    settings: ModelSettings | None = None
    output_type: AgentOutputSchemaBase | None = None
    client_tools: list[FunctionTool] = field(default_factory=list)
    client_outputs: dict[str, str] = field(default_factory=dict)
    approvals: dict[str, Approval] = field(default_factory=dict)
    """Decisions by tool call id."""

    @property
    def client_tool_names(self) -> frozenset[str]:
        return frozenset(t.name for t in self.client_tools)

    @property
    def answered(self) -> list[str]:
        """The call ids this request answers (a paused run waits on some of them)."""
        return [*self.client_outputs, *self.approvals]


def _tool_choice(value: Any) -> Any:
    if isinstance(value, dict):
        if value.get("type") == "function" and value.get("name"):
            return value["name"]
        raise InvalidRequestError(
            "'tool_choice' must be auto, none, required or {'type': 'function', 'name': …}"
        )
    return value


def model_settings(request: ResponsesAgentRequest) -> ModelSettings | None:
    """The request's overrides of the agent's model settings (None when it sets none)."""
    custom = request.custom_inputs or {}
    values: dict[str, Any] = {}
    for name in SETTINGS:
        value = getattr(request, name, None)
        value = value if value is not None else custom.get(name)
        if value is None:
            continue
        if hasattr(value, "model_dump"):
            value = value.model_dump(exclude_none=True)
        values[name] = value
    if not values:
        return None
    if "max_output_tokens" in values:
        values["max_tokens"] = values.pop("max_output_tokens")
    if "tool_choice" in values:
        values["tool_choice"] = _tool_choice(values["tool_choice"])
    if "reasoning" in values:
        values["reasoning"] = Reasoning(**values["reasoning"])
    try:
        return ModelSettings(**values)
    except TypeError as exc:
        raise InvalidRequestError(f"invalid model settings in the request: {exc}") from exc


def answers(items: list[dict[str, Any]]) -> tuple[dict[str, str], dict[str, Approval]]:
    """The tool outputs and approval decisions the input ends with, by tool call id."""
    outputs: dict[str, str] = {}
    approvals: dict[str, Approval] = {}
    for item in reversed(items):
        kind = item.get("type")
        if kind == "function_call_output":
            output = item.get("output")
            outputs[str(item.get("call_id"))] = output if isinstance(output, str) else str(output)
        elif kind == "mcp_approval_response":
            call_id = str(item.get("approval_request_id") or "").removeprefix(APPROVAL_PREFIX)
            approvals[call_id] = Approval(bool(item.get("approve")), item.get("reason"))
        else:
            break
    return outputs, approvals


def plan_request(request: ResponsesAgentRequest, items: list[dict[str, Any]]) -> RequestPlan:
    outputs, approvals = answers(items)
    return RequestPlan(
        settings=model_settings(request),
        output_type=request_output_type(request.text),
        client_tools=client_tools(request.tools),
        client_outputs=outputs,
        approvals=approvals,
    )
