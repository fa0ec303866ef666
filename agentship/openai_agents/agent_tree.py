"""The ``agents.Agent`` tree a config describes, built once per model client."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agents.agent_output import AgentOutputSchemaBase

from agents import Agent, Model, ModelSettings, Tool
from agentship.openai_agents.config import OpenAIAgentsConfig, SubAgentConfig, _AgentFields
from agentship.openai_agents.mcp import McpServers
from agentship.openai_agents.tools import (
    AgentRunContext,
    hosted_tool,
    load_guardrail,
    load_output_type,
    load_tool,
)


@dataclass
class AgentParts:
    """What every agent of the tree may share: MCP servers, guardrails, the output type."""

    mcp: McpServers | None = None
    input_guardrails: list[Any] = field(default_factory=list)
    output_guardrails: list[Any] = field(default_factory=list)
    output_type: AgentOutputSchemaBase | None = None
    hosted_tools: list[Tool] = field(default_factory=list)

    @classmethod
    def from_config(cls, config: OpenAIAgentsConfig, mcp: McpServers | None) -> AgentParts:
        return cls(
            mcp=mcp,
            input_guardrails=[load_guardrail(r, "input") for r in config.input_guardrails],
            output_guardrails=[load_guardrail(r, "output") for r in config.output_guardrails],
            output_type=load_output_type(config.output_type) if config.output_type is not None else None,
            hosted_tools=[hosted_tool(t) for t in config.hosted_tools],
        )


def _function_tools(config: _AgentFields) -> list[Tool]:
    tools: list[Tool] = []
    for reference in config.tools:
        tool = load_tool(reference)
        if tool.name in config.needs_approval:
            tool = _with_approval(tool)
        tools.append(tool)
    return tools


def _with_approval(tool: Any) -> Any:
    import dataclasses

    return dataclasses.replace(tool, needs_approval=True)


def build_agent(
    config: OpenAIAgentsConfig | SubAgentConfig,
    model_for: Callable[[str], Model],
    default_model: str,
    parts: AgentParts,
    entry: bool = True,
) -> Agent[AgentRunContext]:
    """The agent tree of ``config``; ``model_for(name)`` makes model objects."""
    model_name = config.model or default_model
    if isinstance(config, OpenAIAgentsConfig):
        mcp_names = None  # the entry agent uses every MCP server
        tools = [*_function_tools(config), *parts.hosted_tools]
    else:
        mcp_names = set(config.mcp_servers)
        tools = _function_tools(config)
    return Agent[AgentRunContext](
        name=config.name,
        instructions=config.instructions or None,
        handoff_description=config.handoff_description,
        model=model_for(model_name),
        model_settings=ModelSettings(**config.model_settings),
        tools=tools,
        mcp_servers=parts.mcp.for_agent(mcp_names)
        if parts.mcp is not None and (mcp_names is None or mcp_names)
        else [],
        input_guardrails=list(parts.input_guardrails) if entry else [],
        output_guardrails=list(parts.output_guardrails),
        output_type=parts.output_type,
        handoffs=[build_agent(sub, model_for, model_name, parts, entry=False) for sub in config.handoffs],
    )
