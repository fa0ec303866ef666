"""Client tools: Python functions the wrapper runs itself, described to the server by schema."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agents.function_schema import function_schema

from agentship.errors import ConfigError
from agentship.imports import import_object

_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClientTool:
    name: str
    description: str
    parameters: dict[str, Any]
    func: Callable[..., Any]

    def function_tool(self) -> dict[str, Any]:
        """As an OpenAI function tool (Responses API shape)."""
        return {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
        }

    def chat_tool(self) -> dict[str, Any]:
        """As a Chat Completions tool."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }

    def agents_tool_def(self) -> dict[str, Any]:
        """As a Llama Stack Agents API ``ToolDef`` (a parameter list)."""
        props: dict[str, Any] = self.parameters.get("properties", {})
        required = set(self.parameters.get("required", []))
        return {
            "name": self.name,
            "description": self.description,
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

    async def run(self, arguments: str | dict[str, Any]) -> str:
        """Run the function; any failure becomes an error text for the model, never a raise."""
        try:
            args = json.loads(arguments or "{}") if isinstance(arguments, str) else dict(arguments)
            if not isinstance(args, dict):
                raise TypeError("arguments must be a JSON object")
            if inspect.iscoroutinefunction(self.func):
                result = await self.func(**args)
            else:
                result = await asyncio.to_thread(self.func, **args)
        except Exception as exc:  # noqa: BLE001 - reported to the model
            _logger.info("client tool %s failed: %s", self.name, exc)
            return f"Error: the tool {self.name} failed: {type(exc).__name__}: {exc}"
        return result if isinstance(result, str) else json.dumps(result, default=str)


def load_client_tools(references: list[str]) -> dict[str, ClientTool]:
    tools: dict[str, ClientTool] = {}
    for reference in references:
        func = import_object(reference)
        if not callable(func):
            raise ConfigError(f"client tool {reference!r} is not a function")
        try:
            schema = function_schema(func)
        except Exception as exc:
            raise ConfigError(f"cannot describe client tool {reference!r}: {exc}") from exc
        tools[schema.name] = ClientTool(
            name=schema.name,
            description=schema.description or schema.name,
            parameters=schema.params_json_schema,
            func=func,
        )
    return tools


async def run_tool(tools: dict[str, ClientTool], name: str, arguments: str | dict[str, Any]) -> str:
    tool = tools.get(name)
    if tool is None:
        return f"Error: there is no client tool named {name!r}"
    return await tool.run(arguments)
