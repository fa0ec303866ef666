"""What every Llama Stack mode shares: config, HTTP, client tools, conversations, tracing."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from mlflow.types.responses import ResponsesAgentRequest

from agentship.events import AgentEvent
from agentship.llama_stack.config import LlamaStackConfig, LlamaStackEnv
from agentship.llama_stack.http import ServerHTTP
from agentship.llama_stack.sessions import Conversation, ConversationCache
from agentship.llama_stack.tools import ClientTool, run_tool
from agentship.tracing import TOOL, StepSpans

_logger = logging.getLogger(__name__)


@dataclass
class Runtime:
    config: LlamaStackConfig
    env: LlamaStackEnv
    http: ServerHTTP
    model: str
    tools: dict[str, ClientTool]
    conversations: ConversationCache

    def sampling(self) -> dict[str, Any]:
        return {k: v for k, v in self.config.sampling.model_dump().items() if v is not None}

    async def run_client_tool(self, spans: StepSpans, call_id: str, name: str, arguments: str) -> str:
        spans.start(f"tool:{call_id}", name, TOOL, {"arguments": arguments})
        output = await run_tool(self.tools, name, arguments)
        spans.end(f"tool:{call_id}", output, error=output if output.startswith("Error:") else None)
        return output


class Mode(Protocol):
    """One way of talking to the server. Created at load; ``stream`` runs one request."""

    name: str

    async def start(self) -> None: ...

    def stream(
        self, request: ResponsesAgentRequest, conversation: Conversation | None
    ) -> AsyncIterator[AgentEvent]: ...

    async def forget(self, conversation: Conversation) -> None: ...

    async def aclose(self) -> None: ...
