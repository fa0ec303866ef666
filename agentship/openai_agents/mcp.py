"""The agent's MCP servers: built from the config with serve-time secrets, connected once at load
(the SDK's ``MCPServerManager``), shared by every request, and kept healthy.

A server that cannot be reached at load is logged and left out (its tools are not offered) and
shows in the readiness detail; every few seconds the connected ones are pinged and the others
reconnected, so a server that died (a stdio server's process, say) is restarted and comes back.
Header and environment values are read from the serve-time variables the config names, and are
never logged or recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

import mcp.shared.exceptions as _mcp_errors
import mcp.types as mcp_types
from agents.mcp import (
    MCPServer,
    MCPServerManager,
    MCPServerSse,
    MCPServerStdio,
    MCPServerStreamableHttp,
    create_static_tool_filter,
)

from agentship.errors import ConfigError
from agentship.openai_agents.config import McpServerConfig
from agentship.openai_agents.tool_text import mcp_content_text

RpcError: type[Exception] = getattr(_mcp_errors, "MCPError", None) or _mcp_errors.McpError  # type: ignore[attr-defined]
"""The JSON-RPC error an MCP server answers with (``MCPError`` in mcp 2, ``McpError`` in mcp 1)."""
_NO_ANSWER = frozenset({-32000, -32001})
"""The codes the client raises itself when no answer came: connection closed, request timeout."""

_logger = logging.getLogger(__name__)


def _from_env(names: Mapping[str, str], environ: Mapping[str, str], what: str, server: str) -> dict[str, str]:
    values = {}
    for key, variable in names.items():
        if variable not in environ:
            raise ConfigError(f"MCP server {server!r}: {what} {key!r} reads ${variable}, which is not set")
        values[key] = environ[variable]
    return values


def _approval(setting: str | list[str]) -> Any:
    if isinstance(setting, list):
        return {"always": {"tool_names": setting}, "never": {"tool_names": []}}
    return setting


class _Tolerant:
    """A server that, when listing its tools fails (it died), offers none instead of failing the
    run, and says so for the next health check to reconnect it; and whose tools answer with one
    text (:func:`~agentship.openai_agents.tool_text.mcp_content_text`), not content blocks."""

    broken: BaseException | None = None
    name: str

    async def list_tools(self, run_context: Any = None, agent: Any = None) -> list[Any]:
        try:
            return await super().list_tools(run_context, agent)  # type: ignore[misc, no-any-return]
        except Exception as exc:  # noqa: BLE001 - a dead server's tools are left out of this run
            _logger.warning("MCP server %r could not list its tools; left out of this run", self.name)
            self.broken = exc
            return []

    async def call_tool(
        self, tool_name: str, arguments: dict[str, Any] | None, meta: dict[str, Any] | None = None
    ) -> mcp_types.CallToolResult:
        result: mcp_types.CallToolResult = await super().call_tool(tool_name, arguments, meta)  # type: ignore[misc]
        text = mcp_types.TextContent(type="text", text=mcp_content_text(result.content))
        return result.model_copy(update={"content": [text]})


class _Stdio(_Tolerant, MCPServerStdio):
    pass


class _Sse(_Tolerant, MCPServerSse):
    pass


class _StreamableHttp(_Tolerant, MCPServerStreamableHttp):
    pass


def build_server(config: McpServerConfig, environ: Mapping[str, str]) -> MCPServer:
    """The SDK's server object for one configured MCP server (not yet connected)."""
    common: dict[str, Any] = {
        "name": config.name,
        "cache_tools_list": config.cache_tools_list,
        "client_session_timeout_seconds": config.timeout_s,
        "max_retry_attempts": config.max_retries,
        "require_approval": _approval(config.require_approval),
        "tool_filter": create_static_tool_filter(
            allowed_tool_names=config.allowed_tools, blocked_tool_names=config.blocked_tools or None
        ),
    }
    if config.transport == "stdio":
        params: dict[str, Any] = {"command": config.command, "args": config.args}
        if config.env_from_env:
            params["env"] = _from_env(config.env_from_env, environ, "variable", config.name)
        if config.cwd:
            params["cwd"] = config.cwd
        return _Stdio(params, **common)  # type: ignore[arg-type]
    url = config.url
    if config.url_from_env:
        url = _from_env({"url": config.url_from_env}, environ, "the", config.name)["url"]
    http: dict[str, Any] = {"url": url, "timeout": config.timeout_s}
    if config.headers_from_env:
        http["headers"] = _from_env(config.headers_from_env, environ, "header", config.name)
    if config.transport == "sse":
        return _Sse(http, **common)  # type: ignore[arg-type]
    return _StreamableHttp(http, **common)  # type: ignore[arg-type]


class _Manager(MCPServerManager):
    """The SDK's manager, told about a server that stopped answering after it connected."""

    def mark_failed(self, server: MCPServer, exc: BaseException) -> None:
        self._connected_servers.discard(server)
        self._record_failure(server, exc, phase="health-check")
        self._refresh_active_servers()


class McpServers:
    def __init__(
        self, configs: list[McpServerConfig], environ: Mapping[str, str], check_every_s: float = 5.0
    ) -> None:
        self.configs = {c.name: c for c in configs}
        self.servers = {c.name: build_server(c, environ) for c in configs}
        self.check_every_s = check_every_s
        self._manager = _Manager(
            list(self.servers.values()),
            connect_timeout_seconds=max((c.connect_timeout_s for c in configs), default=10.0),
            drop_failed_servers=True,
            strict=False,
            connect_in_parallel=True,
        )
        self._lists: list[tuple[list[MCPServer], set[str] | None]] = []
        self._monitor: asyncio.Task[None] | None = None

    def for_agent(self, names: set[str] | None) -> list[MCPServer]:
        """A live list of the active servers among ``names`` (all when None), for an Agent's
        ``mcp_servers``: it is updated in place as servers fail and recover."""
        live: list[MCPServer] = []
        self._lists.append((live, names))
        self._refresh()
        return live

    def _refresh(self) -> None:
        active = self._manager.active_servers
        for live, names in self._lists:
            live[:] = [s for s in active if names is None or s.name in names]

    async def start(self) -> None:
        if not self.servers:
            return
        await self._manager.connect_all()
        self._refresh()
        for server, error in self._manager.errors.items():
            _logger.warning(
                "MCP server %r is unavailable, its tools are left out: %s", server.name, type(error).__name__
            )
        self._monitor = asyncio.create_task(self._watch(), name="server-mcp-monitor")

    def health(self) -> dict[str, str]:
        active = {s.name for s in self._manager.active_servers}
        errors = {s.name: e for s, e in self._manager.errors.items()}
        return {
            name: "ok"
            if name in active
            else f"unavailable ({type(errors[name]).__name__})"
            if name in errors
            else "unavailable"
            for name in self.servers
        }

    async def _ping(self, server: MCPServer) -> BaseException | None:
        session = getattr(server, "session", None)
        if session is None:
            return ConnectionError("not connected")
        try:
            await asyncio.wait_for(session.send_ping(), timeout=self.configs[server.name].timeout_s)
        except RpcError as exc:
            if getattr(exc, "code", None) in _NO_ANSWER:
                return exc  # the connection is gone
            return None  # it answered, if only with an error (some servers lack ping): it is alive
        except Exception as exc:  # noqa: BLE001 - no answer at all means the server is unhealthy
            return exc
        return None

    async def check(self) -> None:
        """Ping the connected servers, reconnect the failed ones (a stdio server is restarted)."""
        for server in self._manager.active_servers:
            if (error := await self._ping(server)) is not None:
                _logger.warning(
                    "MCP server %r stopped answering (%s); reconnecting", server.name, type(error).__name__
                )
                self._manager.mark_failed(server, error)
                self._refresh()  # no new run is offered its tools while it reconnects
        for server in self._manager.active_servers:
            if (error := getattr(server, "broken", None)) is not None:
                _logger.warning(
                    "MCP server %r failed a run (%s); reconnecting", server.name, type(error).__name__
                )
                self._manager.mark_failed(server, error)
                server.broken = None  # type: ignore[attr-defined]
                self._refresh()
        if self._manager.failed_servers:
            before = {s.name for s in self._manager.active_servers}
            await self._manager.reconnect(failed_only=True)
            for server in self._manager.active_servers:
                if server.name not in before:
                    _logger.warning("MCP server %r is back", server.name)
        self._refresh()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.check_every_s)
            try:
                await self.check()
            except Exception:
                _logger.exception("MCP health check failed")

    async def aclose(self) -> None:
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
        await self._manager.cleanup_all()
