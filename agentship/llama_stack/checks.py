"""Load-time checks: every setting takes effect in the detected mode, or the load fails naming it.

:func:`check_settings` is pure (config, environment, mode → a :class:`ConfigError` or nothing);
:func:`check_vector_stores` asks the server that every configured vector store exists, so a
placeholder such as ``vs_replace_me`` fails at load instead of silently retrieving nothing.
"""

from __future__ import annotations

from agentship.errors import BackendStatusError, ConfigError
from agentship.llama_stack.config import RAG_PREFIX, LlamaStackConfig, LlamaStackEnv
from agentship.llama_stack.detect import Detected
from agentship.llama_stack.http import ServerHTTP


def is_ogx(version: str | None) -> bool:
    """OGX 1.x, Llama Stack renamed: its Responses guardrails take no shield ids."""
    try:
        return int((version or "0").split(".")[0]) >= 1
    except ValueError:
        return False


def check_settings(config: LlamaStackConfig, env: LlamaStackEnv, mode: Detected) -> None:
    where = f"the server speaks the {mode.kind} API (mode {mode.kind}@{mode.prefix})"
    if env.agent_id and mode.kind != "agents":
        raise ConfigError(f"LLAMASTACK_AGENT_ID is set, but {where}: it names an Agents API agent; unset it")
    groups = config.toolgroup_list()
    if mode.kind == "chat_completions" and groups:
        raise ConfigError(
            f"toolgroups {[g.name for g in groups]} cannot run: {where}, which has no server-side tools"
        )
    if mode.kind == "responses":
        other = [g.name for g in groups if not g.name.startswith(RAG_PREFIX)]
        if other:
            raise ConfigError(
                f"toolgroups {other} cannot run: {where}, where only RAG toolgroups "
                "(builtin::rag, as file_search) are supported"
            )
    _check_shields(config, mode, where)
    _check_mcp(config, mode, where)


def _check_mcp(config: LlamaStackConfig, mode: Detected, where: str) -> None:
    """The server runs MCP tools itself on the Agents API and Responses; the wrapper in chat mode."""
    if mode.kind == "chat_completions":
        return
    for server in config.mcp_servers:
        name = f"MCP server {server.name!r}"
        if server.transport == "stdio":
            raise ConfigError(
                f"{name} cannot run: {where}, whose server calls MCP servers itself: give a URL it reaches"
            )
        if server.require_approval != "never":
            raise ConfigError(f"{name}: require_approval is not supported: {where}")
        if mode.kind == "agents" and (
            server.headers_from_env or server.allowed_tools or server.blocked_tools
        ):
            raise ConfigError(
                f"{name}: headers and tool filters are not supported: {where}, which registers an MCP "
                "endpoint URL as a tool group"
            )


def _check_shields(config: LlamaStackConfig, mode: Detected, where: str) -> None:
    if not (config.input_shields or config.output_shields):
        return
    if mode.kind == "chat_completions":
        raise ConfigError(f"input_shields/output_shields cannot run: {where}, which has no safety shields")
    if mode.kind == "responses" and is_ogx(mode.version):
        raise ConfigError(
            f"input_shields/output_shields cannot run: {where} on OGX {mode.version}, whose Responses "
            "guardrails use the server's moderation endpoint rather than named shields"
        )
    if mode.kind == "responses" and set(config.input_shields) != set(config.output_shields):
        raise ConfigError(
            f"input_shields and output_shields differ, but {where}, which applies every guardrail to "
            "the input and the answer alike: give both the same shields"
        )


async def check_vector_stores(http: ServerHTTP, config: LlamaStackConfig, mode: Detected) -> None:
    """Every vector store the RAG toolgroups name must exist on the server."""
    wanted = config.vector_store_ids()
    if not wanted or mode.kind == "chat_completions":
        return
    legacy = mode.kind == "agents" and mode.prefix == "/v1"  # 0.2: /v1/vector-dbs
    path = "/v1/vector-dbs" if legacy else "/v1/vector_stores"
    missing = [i for i in wanted if not await _exists(http, f"{path}/{i}")]
    if missing:
        listing = await http.get(f"{path}?limit=20" if not legacy else path)
        known = [
            str(r.get("identifier") or r.get("id")) for r in listing.get("data", []) if isinstance(r, dict)
        ]
        raise ConfigError(
            f"vector store(s) {missing} named by the RAG toolgroups do not exist on {http.base_url}; "
            f"available: {', '.join(known[:10]) or 'none'} (make one with `agentship llama-stack ingest DIR`, "
            "then use the id it prints)"
        )


async def _exists(http: ServerHTTP, path: str) -> bool:
    try:
        await http.get(path)
    except BackendStatusError as exc:
        if exc.status in (400, 404):
            return False
        raise
    return True
