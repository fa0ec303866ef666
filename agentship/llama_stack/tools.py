"""Client tools: functions (or ``agents.FunctionTool``s) the wrapper runs itself.

They load through the one loader both backends share (:func:`agentship.openai_agents.tools.
load_tool`). The Agents SDK runs them in the chat and responses modes; the Agents API mode runs
them here, through the same ``FunctionTool.on_invoke_tool``, and describes them to the server.
"""

from __future__ import annotations

import json
from typing import Any

from agents.tool_context import ToolContext

from agents import FunctionTool, RunContextWrapper
from agentship.openai_agents.tools import AgentRunContext, load_tool


def tool_error_text(ctx: RunContextWrapper[Any], error: Exception) -> str:
    """What the model reads when a client tool raises (a result, never a failed request)."""
    name = getattr(ctx, "tool_name", None) or "tool"
    return f"Error: the tool {name} failed: {type(error).__name__}: {error}"


def load_client_tools(references: list[str]) -> dict[str, FunctionTool]:
    tools = [load_tool(reference, on_error=tool_error_text) for reference in references]
    return {tool.name: tool for tool in tools}


def agents_tool_def(tool: FunctionTool, prefix: str) -> dict[str, Any]:
    """As a Llama Stack Agents API tool: a JSON schema on 0.3 (``/v1alpha``), a parameter list on 0.2."""
    schema = tool.params_json_schema
    if prefix == "/v1alpha":
        return {"name": tool.name, "description": tool.description, "input_schema": schema}
    props: dict[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", []))
    return {
        "name": tool.name,
        "description": tool.description,
        "parameters": [
            {
                "name": name,
                "parameter_type": str(spec.get("type", "string")),
                "description": str(spec.get("description", name)),
                "required": name in required,
            }
            for name, spec in props.items()
        ],
    }


async def run_tool(
    tools: dict[str, FunctionTool], context: AgentRunContext, call_id: str, name: str, arguments: str
) -> str:
    """Run one client-tool call as the Agents SDK would; failures come back as error text."""
    tool = tools.get(name)
    if tool is None:
        return f"Error: there is no client tool named {name!r}"
    ctx = ToolContext(context=context, tool_name=name, tool_call_id=call_id, tool_arguments=arguments)
    result = await tool.on_invoke_tool(ctx, arguments or "{}")
    return result if isinstance(result, str) else json.dumps(result, default=str)
