"""The OpenAI Agents SDK agent's model config, recorded with the model at log time.

It holds everything that defines the agent's behaviour and nothing secret: the endpoint and
the key are read from ``OPENAI_BASE_URL`` and ``OPENAI_API_KEY`` when the model is served.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentship.errors import invalid_config


class SubAgentConfig(BaseModel):
    """One agent of the tree: the entry agent, or a handoff target."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="Agent name; handoff tools are named after it.")
    instructions: str = Field("", description="System prompt of this agent.")
    handoff_description: str | None = Field(None, description="Shown to agents that hand off to it.")
    model: str | None = Field(None, description="Model name; defaults to the parent's.")
    model_settings: dict[str, Any] = Field(default_factory=dict, description="agents.ModelSettings fields.")
    tools: list[str] = Field(default_factory=list, description="Function tools as 'module:name'.")
    handoffs: list[SubAgentConfig] = Field(default_factory=list, description="Agents it may hand off to.")


class OpenAIAgentsConfig(SubAgentConfig):
    """The whole model config of an OpenAI Agents SDK ResponsesAgent."""

    agent_type: Literal["openai-agents"] = "openai-agents"
    description: str | None = Field(None, description="What the agent does, for its A2A card.")
    model: str = Field("gpt-4.1-mini", description="Model name sent to the endpoint.")
    api: Literal["responses", "chat_completions"] = Field(
        "responses", description="Which OpenAI API the endpoint speaks."
    )
    max_turns: int = Field(8, ge=1, le=100, description="Upper bound on model calls per request.")
    request_timeout_s: float = Field(60.0, gt=0, description="Timeout of one model call.")
    max_retries: int = Field(2, ge=0, le=10, description="Retries of a failed model call.")
    tracing: bool = Field(True, description="Trace every request into MLflow.")


def parse_config(raw: dict[str, Any] | None) -> OpenAIAgentsConfig:
    """Validate a model config dict; raise :class:`ConfigError` naming the bad field."""
    try:
        return OpenAIAgentsConfig.model_validate(raw or {})
    except ValidationError as exc:
        raise invalid_config(exc, "openai-agents") from exc


def validate_for_logging(raw: dict[str, Any]) -> OpenAIAgentsConfig:
    """Check a config before it is logged: its fields, and that every tool imports."""
    from agentship.openai_agents.backend import load_tool

    config = parse_config(raw)

    def check(agent: SubAgentConfig) -> None:
        for reference in agent.tools:
            load_tool(reference)
        for sub in agent.handoffs:
            check(sub)

    check(config)
    return config
