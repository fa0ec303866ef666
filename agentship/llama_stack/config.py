"""The Llama Stack agent's configuration.

Two halves: :class:`LlamaStackConfig` is the model config recorded at log time (behaviour, no
secrets); :class:`LlamaStackEnv` is read from the environment when the model is served.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentship.errors import ConfigError, invalid_config
from agentship.openai_agents.config import McpServerConfig

ApiMode = Literal["auto", "agents", "responses", "chat_completions"]


class Toolgroup(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Toolgroup id, e.g. 'builtin::rag/knowledge_search'.")
    args: dict[str, Any] = Field(default_factory=dict, description="e.g. {'vector_db_ids': [...]}")


class Sampling(BaseModel):
    model_config = ConfigDict(extra="forbid")

    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)


class SessionPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_sessions: int = Field(1000, ge=1, description="Conversations kept at once (LRU).")
    ttl_s: float = Field(3600.0, gt=0, description="Idle time after which a conversation is dropped.")


class LlamaStackConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent_type: Literal["llama-stack"] = "llama-stack"
    name: str = Field("llama-stack-agent", min_length=1)
    description: str | None = Field(None, description="What the agent does, for its A2A card.")
    instructions: str = "You are a helpful assistant."
    model: str | None = Field(None, description="Model id; LLAMASTACK_MODEL overrides it.")
    toolgroups: list[str | Toolgroup] = Field(default_factory=list)
    client_tools: list[str] = Field(default_factory=list, description="Python functions, 'module:name'.")
    max_infer_iters: int = Field(
        10, ge=1, le=100, description="Inference steps per turn (the server's bound; chat mode: model calls)."
    )
    max_tool_rounds: int = Field(8, ge=1, le=100, description="Client-tool rounds per request.")
    mcp_servers: list[McpServerConfig] = Field(
        default_factory=list,
        description="MCP servers: a tool group on the Agents API, mcp tools on Responses, called by "
        "the wrapper itself in chat-completions mode.",
    )
    input_shields: list[str] = Field(
        default_factory=list,
        description="Safety shields run on the input (Agents API; Responses: guardrails).",
    )
    output_shields: list[str] = Field(default_factory=list, description="Safety shields run on the answer.")
    sampling: Sampling = Field(default_factory=Sampling)
    session: SessionPolicy = Field(default_factory=SessionPolicy)
    api_mode: ApiMode = Field("auto", description="Force a server API instead of detecting it.")
    request_timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(2, ge=0, le=10)

    def toolgroup_list(self) -> list[Toolgroup]:
        return [Toolgroup(name=t) if isinstance(t, str) else t for t in self.toolgroups]

    def vector_store_ids(self) -> list[str]:
        """Vector stores named by RAG toolgroups (used as file_search in Responses mode)."""
        ids: list[str] = []
        for group in self.toolgroup_list():
            if group.name.startswith("builtin::rag"):
                raw = group.args.get("vector_db_ids") or group.args.get("vector_store_ids") or []
                ids.extend(str(i) for i in raw)
        return ids


class LlamaStackEnv(BaseModel):
    """Serve-time settings, from LLAMASTACK_* environment variables."""

    base_url: str
    agent_id: str | None = None
    model: str | None = None
    api_key: str | None = Field(None, repr=False)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> LlamaStackEnv:
        base_url = (environ.get("LLAMASTACK_BASE_URL") or "").rstrip("/")
        if not base_url:
            raise ConfigError("LLAMASTACK_BASE_URL is not set: give the Llama Stack server's URL (no /v1)")
        if base_url.endswith("/v1"):
            raise ConfigError(f"LLAMASTACK_BASE_URL={base_url!r} must not end with /v1")
        return cls(
            base_url=base_url,
            agent_id=environ.get("LLAMASTACK_AGENT_ID") or None,
            model=environ.get("LLAMASTACK_MODEL") or None,
            api_key=environ.get("LLAMASTACK_API_KEY") or None,
        )


def parse_config(raw: Mapping[str, Any] | None) -> LlamaStackConfig:
    try:
        return LlamaStackConfig.model_validate(dict(raw or {}))
    except ValidationError as exc:
        raise invalid_config(exc, "llama-stack") from exc


def validate_for_logging(raw: dict[str, Any]) -> LlamaStackConfig:
    """Check a config before it is logged: its fields, and that every client tool imports."""
    from agentship.llama_stack.tools import load_client_tools

    config = parse_config(raw)
    load_client_tools(config.client_tools)
    return config
