"""Human approval of tool calls, and the calls a client runs: the run pauses (the SDK's
``RunState`` interruptions), the response says what it waits for, and a later request with the
answers resumes it. Pure, but for :class:`~agentship.state.runstates.PausedRuns` doing the storing.

* A tool that needs approval gives an ``mcp_approval_request`` item (``id`` is ``mcpr_`` and the
  call id); the client answers with an ``mcp_approval_response`` (approve or reject, with an
  optional reason). A rejected call returns the rejection to the model.
* A client tool's call is a ``function_call`` item; the client answers with its
  ``function_call_output``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agents.items import ToolApprovalItem

from agentship.openai_agents.config import OpenAIAgentsConfig, SubAgentConfig
from agentship.openai_agents.plan import APPROVAL_PREFIX

DEFAULT_LABEL = "agent"
REJECTED = "The user rejected this tool call."


@dataclass(frozen=True)
class ApprovalPolicy:
    """Which tool calls need approval: function tools by name, MCP tools by server and name."""

    function_tools: frozenset[str] = frozenset()
    mcp_servers: frozenset[str] = frozenset()
    mcp_tools: frozenset[tuple[str, str]] = frozenset()

    @classmethod
    def from_config(cls, config: OpenAIAgentsConfig) -> ApprovalPolicy:
        names: set[str] = set(config.needs_approval)

        def walk(agent: SubAgentConfig) -> None:
            names.update(agent.needs_approval)
            for sub in agent.handoffs:
                walk(sub)

        for sub in config.handoffs:
            walk(sub)
        servers = {s.name for s in config.mcp_servers if s.require_approval == "always"}
        tools = {
            (s.name, t)
            for s in config.mcp_servers
            if isinstance(s.require_approval, list)
            for t in s.require_approval
        }
        return cls(frozenset(names), frozenset(servers), frozenset(tools))

    def needs(self, name: str, server: str | None) -> bool:
        if server is not None:
            return server in self.mcp_servers or (server, name) in self.mcp_tools
        return name in self.function_tools


def call_id_of(item: ToolApprovalItem) -> str:
    raw = item.raw_item
    value = raw.get("call_id") if isinstance(raw, dict) else getattr(raw, "call_id", None)
    return str(value or (raw.get("id") if isinstance(raw, dict) else getattr(raw, "id", "")))


def server_of(item: Any) -> str | None:
    origin = getattr(item, "tool_origin", None)
    return getattr(origin, "mcp_server_name", None) if origin is not None else None


def approval_request(item: ToolApprovalItem) -> dict[str, Any]:
    """The ``mcp_approval_request`` output item for a paused call."""
    raw = item.raw_item
    arguments = raw.get("arguments") if isinstance(raw, dict) else getattr(raw, "arguments", None)
    return {
        "type": "mcp_approval_request",
        "id": f"{APPROVAL_PREFIX}{call_id_of(item)}",
        "server_label": server_of(item) or DEFAULT_LABEL,
        "name": str(item.tool_name),
        "arguments": str(arguments or "{}"),
    }
