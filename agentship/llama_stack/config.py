"""The Llama Stack agent's configuration.

Two halves: :class:`LlamaStackConfig` is the model config recorded at log time (behaviour, no
secrets); :class:`LlamaStackEnv` is read from the environment when the model is served.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agentship.errors import ConfigError, invalid_config
from agentship.openai_agents.config import McpServerConfig

ApiMode = Literal["auto", "agents", "responses", "chat_completions"]


RAG_PREFIX = "builtin::rag"


class Toolgroup(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Toolgroup id, e.g. 'builtin::rag/knowledge_search'.")
    args: dict[str, Any] = Field(default_factory=dict, description="e.g. {'vector_db_ids': [...]}")
    vector_store_ids_from_env: str | None = Field(
        None,
        description="RAG toolgroups: the serve-time variable holding vector store ids (comma-separated), "
        "added to args' vector_db_ids at load; the load fails while it is unset.",
    )

    @model_validator(mode="after")
    def _from_env_is_for_rag(self) -> Toolgroup:
        if self.vector_store_ids_from_env is not None and not self.name.startswith(RAG_PREFIX):
            raise ValueError(
                f"toolgroup {self.name!r}: vector_store_ids_from_env is for {RAG_PREFIX} toolgroups"
            )
        return self

    def wire(self) -> str | dict[str, Any]:
        """The toolgroup as the Agents API takes it: its id, or ``{name, args}``."""
        return {"name": self.name, "args": self.args} if self.args else self.name


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
            if group.name.startswith(RAG_PREFIX):
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


def with_vector_stores_from_env(config: LlamaStackConfig, environ: Mapping[str, str]) -> LlamaStackConfig:
    """The config with each RAG toolgroup's ``vector_store_ids_from_env`` read into its args. Pure."""
    groups: list[str | Toolgroup] = []
    for group in config.toolgroup_list():
        variable = group.vector_store_ids_from_env
        if variable is None:
            groups.append(group)
            continue
        ids = [i.strip() for i in environ.get(variable, "").split(",") if i.strip()]
        if not ids:
            raise ConfigError(
                f"toolgroup {group.name!r} reads its vector store ids from ${variable}, which is not set: "
                f"make a vector store (agentship llama-stack ingest DIR) and set {variable} to its id"
            )
        key = (
            "vector_store_ids"
            if "vector_store_ids" in group.args and "vector_db_ids" not in group.args
            else "vector_db_ids"
        )
        args = {**group.args, key: [*group.args.get(key, []), *ids]}
        groups.append(Toolgroup(name=group.name, args=args))
    return config.model_copy(update={"toolgroups": groups})


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
