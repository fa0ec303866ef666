"""The OpenAI Agents SDK backend."""

from agentship.openai_agents.backend import AgentRunContext, OpenAIAgentsBackend
from agentship.openai_agents.config import OpenAIAgentsConfig, parse_config

__all__ = ["AgentRunContext", "OpenAIAgentsBackend", "OpenAIAgentsConfig", "parse_config"]
