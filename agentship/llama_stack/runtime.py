"""What every Llama Stack mode shares (config, HTTP, model, client tools), and the mode interface."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from mlflow.types.responses import ResponsesAgentRequest

from agents import FunctionTool
from agentship.errors import ConfigError, InvalidRequestError
from agentship.events import AgentEvent
from agentship.llama_stack.config import LlamaStackConfig, LlamaStackEnv
from agentship.llama_stack.conversations import ConversationState
from agentship.llama_stack.http import ServerHTTP
from agentship.openai_agents.config import McpServerConfig
from agentship.openai_agents.tools import AgentRunContext
from agentship.trace_payloads import PayloadLimit


@dataclass
class Runtime:
    config: LlamaStackConfig
    env: LlamaStackEnv
    http: ServerHTTP
    model: str
    tools: dict[str, FunctionTool]
    server_version: str | None = None
    environ: Mapping[str, str] = field(default_factory=dict)
    """The serving environment (MCP servers' secrets are read from it)."""
    trace_limit: PayloadLimit = field(init=False)
    """The bound on each traced payload (``AGENTSHIP_TRACE_MAX_PAYLOAD_CHARS``)."""

    def __post_init__(self) -> None:
        self.trace_limit = PayloadLimit.from_environ(self.environ)

    def mcp_url(self, server: McpServerConfig) -> str:
        """An MCP server's URL, from the config or the serve-time variable it names."""
        if server.url_from_env:
            if server.url_from_env not in self.environ:
                raise ConfigError(
                    f"MCP server {server.name!r}: its URL reads ${server.url_from_env}, which is not set"
                )
            return self.environ[server.url_from_env]
        return str(server.url)

    def mcp_headers(self, server: McpServerConfig) -> dict[str, str]:
        missing = [v for v in server.headers_from_env.values() if v not in self.environ]
        if missing:
            raise ConfigError(f"MCP server {server.name!r}: its headers read ${missing[0]}, which is not set")
        return {header: self.environ[variable] for header, variable in server.headers_from_env.items()}

    def sampling(self) -> dict[str, Any]:
        return {k: v for k, v in self.config.sampling.model_dump().items() if v is not None}

    def rounds_exceeded(self) -> str:
        return f"the agent needed more than max_tool_rounds={self.config.max_tool_rounds} client-tool rounds"


@dataclass
class Turn:
    """One request's view of its conversation.

    ``before`` is what the conversation map held (None: a new conversation, or none at all);
    the mode sets ``after`` once the turn has succeeded, ``created`` as soon as it makes server
    state (a session, a conversation) that must be released if the turn fails, and ``touched``
    once it sends the turn to the server's own session or conversation (which may then keep
    part of a turn that fails: see :meth:`Turn.after_failure`).
    """

    keep: bool  # the request has a conversation_id: keep state for its next turn
    before: ConversationState | None = None
    after: ConversationState | None = None
    created: ConversationState | None = None
    touched: bool = False

    def continues(self) -> str | None:
        """The server session or conversation this turn continues, if any."""
        return self.before.server_id if self.before is not None else None

    def history(self, turn_items: list[Any]) -> list[Any]:
        """The conversation after this turn, ``turn_items`` being what the run was given and
        made (the whole conversation, when it did not continue a server session)."""
        earlier = self.before.history if self.before is not None and self.continues() else []
        return [*earlier, *turn_items]

    def after_failure(self) -> ConversationState | None:
        """What the conversation must become once this turn failed; None: as it was.

        A server session or conversation that the failed turn reached may hold part of it (the
        user's message, a tool call without its result): it is left, and the next turn starts
        a fresh one, given the history of the turns that succeeded.
        """
        if not (self.touched and self.continues() and self.before is not None and self.before.history):
            return None
        return ConversationState(server_id=None, history=list(self.before.history))


def run_context(request: ResponsesAgentRequest) -> AgentRunContext:
    return AgentRunContext(
        custom_inputs=dict(request.custom_inputs or {}),
        conversation_id=request.context.conversation_id if request.context else None,
        user_id=request.context.user_id if request.context else None,
    )


class Mode(Protocol):
    """One way of talking to the server. Created at load; ``stream`` runs one request."""

    name: str

    async def start(self) -> None: ...

    def stream(self, request: ResponsesAgentRequest, turn: Turn) -> AsyncIterator[AgentEvent]: ...

    async def release(self, state: ConversationState) -> None:
        """Delete what ``state`` holds on the server (a dropped conversation's session)."""
        ...

    async def aclose(self) -> None: ...


def requested_settings(request: ResponsesAgentRequest) -> list[str]:
    """The per-request settings a request sets (its own fields, or ``custom_inputs``)."""
    from agentship.openai_agents.plan import SETTINGS

    custom = request.custom_inputs or {}
    return [
        name for name in SETTINGS if getattr(request, name, None) is not None or custom.get(name) is not None
    ]


def refuse_unsupported(request: ResponsesAgentRequest, mode: str, settings: bool) -> None:
    """A 400 naming what this mode cannot honour for one request, never silent loss."""
    where = f"a Llama Stack agent (mode {mode})"
    if request.tools:
        raise InvalidRequestError(
            f"'tools' cannot be declared per request to {where}: configure client_tools"
        )
    if not settings and (names := requested_settings(request)):
        raise InvalidRequestError(
            f"'{names[0]}' cannot be set per request on {where}, whose agent fixes its sampling at "
            "creation: set it in the model config"
        )
