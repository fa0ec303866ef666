"""The OpenAI Agents SDK agent's model config, recorded with the model at log time.

It holds everything that defines the agent's behaviour and nothing secret: the endpoint and
the key are read from ``OPENAI_BASE_URL`` and ``OPENAI_API_KEY`` when the model is served, and
an MCP server's headers and environment name the serve-time variables that hold their values.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from agents import ModelSettings
from agentship.errors import ConfigError, invalid_config

_LABEL = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_MODEL_SETTINGS = TypeAdapter(ModelSettings)
_SETTING_NAMES = frozenset(f.name for f in dataclasses.fields(ModelSettings))


def check_model_settings(raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` if every key is an ``agents.ModelSettings`` field of the right type; else a
    ValueError naming the field (a typo such as ``temprature`` included)."""
    if unknown := sorted(set(raw) - _SETTING_NAMES):
        raise ValueError(
            f"unknown model setting(s) {', '.join(map(repr, unknown))}; known: {', '.join(sorted(_SETTING_NAMES))}"
        )
    try:
        _MODEL_SETTINGS.validate_python(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ValueError(f"model setting {'.'.join(map(str, first['loc']))!r}: {first['msg']}") from exc
    return raw


class McpServerConfig(BaseModel):
    """One MCP server, connected once at load and shared by every request."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="The server's label: its calls are mcp_call items with this server_label.")
    transport: Literal["stdio", "streamable_http", "sse"]
    command: str | None = Field(None, description="stdio: the executable to start.")
    args: list[str] = Field(default_factory=list, description="stdio: its arguments.")
    cwd: str | None = None
    env_from_env: dict[str, str] = Field(
        default_factory=dict,
        description="stdio: its environment, each value read from the named serve-time variable.",
    )
    url: str | None = Field(None, description="streamable_http / sse: the server's URL.")
    url_from_env: str | None = Field(None, description="… or the serve-time variable that holds it.")
    headers_from_env: dict[str, str] = Field(
        default_factory=dict, description="HTTP headers, each value read from the named serve-time variable."
    )
    allowed_tools: list[str] | None = Field(None, description="Only these of its tools (default: all).")
    blocked_tools: list[str] = Field(default_factory=list, description="Never these of its tools.")
    cache_tools_list: bool = Field(True, description="List its tools once, not on every model call.")
    timeout_s: float = Field(10.0, gt=0, description="Timeout of one call to the server.")
    connect_timeout_s: float = Field(10.0, gt=0, description="Timeout of connecting at load.")
    max_retries: int = Field(1, ge=0, le=5, description="Retries of a failed list or call.")
    require_approval: Literal["never", "always"] | list[str] = Field(
        "never", description="Which of its tools pause the run for a human's approval."
    )

    @field_validator("name")
    @classmethod
    def _label(cls, value: str) -> str:
        if not _LABEL.match(value):
            raise ValueError("must be 1-64 letters, digits, '_' or '-'")
        return value

    @model_validator(mode="after")
    def _transport_fields(self) -> McpServerConfig:
        if self.transport == "stdio" and not self.command:
            raise ValueError(f"MCP server {self.name!r}: transport stdio needs 'command'")
        if self.transport != "stdio" and not (self.url or self.url_from_env):
            raise ValueError(
                f"MCP server {self.name!r}: transport {self.transport} needs 'url' or 'url_from_env'"
            )
        return self


class HostedToolConfig(BaseModel):
    """A tool the model's endpoint runs itself (``api: responses`` only)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["web_search", "file_search", "code_interpreter"]
    vector_store_ids: list[str] = Field(
        default_factory=list, description="file_search: the stores to search."
    )
    max_num_results: int | None = Field(None, ge=1, le=50, description="file_search: results per search.")
    search_context_size: Literal["low", "medium", "high"] | None = Field(None, description="web_search.")

    @model_validator(mode="after")
    def _stores(self) -> HostedToolConfig:
        if self.type == "file_search" and not self.vector_store_ids:
            raise ValueError("a file_search tool needs 'vector_store_ids'")
        return self


class _AgentFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="Agent name; handoff tools are named after it.")
    instructions: str = Field("", description="System prompt of this agent.")
    handoff_description: str | None = Field(None, description="Shown to agents that hand off to it.")
    model: str | None = Field(None, description="Model name; defaults to the parent's.")
    model_settings: dict[str, Any] = Field(default_factory=dict, description="agents.ModelSettings fields.")
    tools: list[str] = Field(default_factory=list, description="Function tools as 'module:name'.")
    needs_approval: list[str] = Field(
        default_factory=list, description="Names of its function tools that pause the run for approval."
    )

    @field_validator("model_settings")
    @classmethod
    def _settings(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_model_settings(value)


class SubAgentConfig(_AgentFields):
    """A handoff target."""

    mcp_servers: list[str] = Field(
        default_factory=list, description="Names of top-level MCP servers it uses."
    )
    handoffs: list[SubAgentConfig] = Field(default_factory=list, description="Agents it may hand off to.")


class OpenAIAgentsConfig(_AgentFields):
    """The whole model config of an OpenAI Agents SDK ResponsesAgent (the entry agent's fields too)."""

    agent_type: Literal["openai-agents"] = "openai-agents"
    description: str | None = Field(None, description="What the agent does, for its A2A card.")
    model: str = Field("gpt-4.1-mini", description="Model name sent to the endpoint.")
    api: Literal["responses", "chat_completions"] = Field(
        "responses", description="Which OpenAI API the endpoint speaks."
    )
    handoffs: list[SubAgentConfig] = Field(default_factory=list, description="Agents it may hand off to.")
    mcp_servers: list[McpServerConfig] = Field(
        default_factory=list, description="MCP servers; the entry agent uses all."
    )
    hosted_tools: list[HostedToolConfig] = Field(
        default_factory=list, description="Tools the endpoint runs (api: responses)."
    )
    input_guardrails: list[str] = Field(
        default_factory=list, description="Input guardrails as 'module:name'."
    )
    output_guardrails: list[str] = Field(
        default_factory=list, description="Output guardrails as 'module:name'."
    )
    output_type: dict[str, Any] | str | None = Field(
        None, description="The final answer's type: a JSON schema, or a pydantic model as 'module:Name'."
    )
    max_turns: int = Field(8, ge=1, le=100, description="Upper bound on model calls per request.")
    request_timeout_s: float = Field(60.0, gt=0, description="Timeout of one model call.")
    max_retries: int = Field(2, ge=0, le=10, description="Retries of a failed model call.")
    tracing: bool = Field(True, description="Trace every request into MLflow.")

    @model_validator(mode="after")
    def _consistent(self) -> OpenAIAgentsConfig:
        if self.hosted_tools and self.api != "responses":
            raise ValueError("hosted_tools need api: responses (the Chat Completions API has none)")
        names = [s.name for s in self.mcp_servers]
        if len(set(names)) != len(names):
            raise ValueError("MCP server names must be unique")

        def check(agent: SubAgentConfig) -> None:
            for name in agent.mcp_servers:
                if name not in names:
                    raise ValueError(
                        f"agent {agent.name!r} uses MCP server {name!r}, which mcp_servers does not define"
                    )
            for sub in agent.handoffs:
                check(sub)

        for sub in self.handoffs:
            check(sub)
        return self


def parse_config(raw: dict[str, Any] | None) -> OpenAIAgentsConfig:
    """Validate a model config dict; raise :class:`ConfigError` naming the bad field."""
    try:
        return OpenAIAgentsConfig.model_validate(raw or {})
    except ValidationError as exc:
        raise invalid_config(exc, "openai-agents") from exc


def validate_for_logging(raw: dict[str, Any]) -> OpenAIAgentsConfig:
    """Check a config before it is logged: its fields, and that every reference imports."""
    from agentship.openai_agents.tools import load_guardrail, load_output_type, load_tool

    config = parse_config(raw)

    def check(agent: _AgentFields, handoffs: list[SubAgentConfig]) -> None:
        loaded = {load_tool(reference).name for reference in agent.tools}
        if missing := sorted(set(agent.needs_approval) - loaded):
            raise ConfigError(f"agent {agent.name!r}: needs_approval names tools it does not have: {missing}")
        for sub in handoffs:
            check(sub, sub.handoffs)

    check(config, config.handoffs)
    for reference in config.input_guardrails:
        load_guardrail(reference, "input")
    for reference in config.output_guardrails:
        load_guardrail(reference, "output")
    if config.output_type is not None:
        load_output_type(config.output_type)
    return config
