"""Loading tools by import path, and the run context every tool can read.

Both backends load their tools here: the OpenAI Agents SDK agent's ``tools`` and the Llama
Stack agent's ``client_tools`` are the same thing, a function or an ``agents.FunctionTool``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agents.tool import ToolErrorFunction, default_tool_error_function

from agents import FunctionTool, function_tool
from agentship.errors import ConfigError
from agentship.imports import import_object


@dataclass
class AgentRunContext:
    """The run context every tool can read (``RunContextWrapper[AgentRunContext]``).

    Tools may write into ``custom_outputs``; it is returned with the response.
    """

    custom_inputs: dict[str, Any] = field(default_factory=dict)
    custom_outputs: dict[str, Any] = field(default_factory=dict)
    conversation_id: str | None = None
    user_id: str | None = None


def load_tool(reference: str, on_error: ToolErrorFunction | None = None) -> FunctionTool:
    """The tool at ``module:name``: an ``agents.FunctionTool`` as it is, or a function wrapped.

    ``on_error`` words a wrapped function's failure for the model (the SDK's default otherwise);
    a ready-made ``FunctionTool`` keeps its own.
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
