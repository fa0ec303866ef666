"""The Llama Stack backend: detects the server's API at load, then serves requests in that mode."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

from mlflow.types.responses import ResponsesAgentRequest

from agentship.errors import AgentError, BackendError, BackendStatusError
from agentship.events import AgentEvent, with_custom_outputs
from agentship.llama_stack.agents_api import AgentsApiMode
from agentship.llama_stack.chat_api import ChatCompletionsMode
from agentship.llama_stack.config import LlamaStackConfig, LlamaStackEnv
from agentship.llama_stack.detect import detect, resolve_model
from agentship.llama_stack.http import ServerHTTP
from agentship.llama_stack.responses_api import ResponsesApiMode
from agentship.llama_stack.runtime import Mode, Runtime
from agentship.llama_stack.sessions import ConversationCache
from agentship.llama_stack.tools import load_client_tools

_logger = logging.getLogger(__name__)


class LlamaStackBackend:
    """Serves Responses requests from a Llama Stack (or OpenAI-compatible) server."""

    def __init__(self, config: LlamaStackConfig, environ: Mapping[str, str]) -> None:
        self.config = config
        self.env = LlamaStackEnv.from_environ(environ)
        self.tools = load_client_tools(config.client_tools)
        self._mode: Mode | None = None
        self._runtime: Runtime | None = None
        self.server_version: str | None = None

    @property
    def mode(self) -> str:
        return self._mode.name if self._mode else "not started"

    async def start(self) -> None:
        http = ServerHTTP(
            self.env.base_url, self.env.api_key, self.config.request_timeout_s, self.config.max_retries
        )
        try:
            detected = await detect(http, self.config.api_mode)
            model = await resolve_model(http, self.env.model or self.config.model)
        except BackendError as exc:
            await http.aclose()
            # At load the operator is the reader: name the server and what it said.
            raise _for_operator(exc) from exc
        except BaseException:
            await http.aclose()
            raise
        self.server_version = detected.version
        cache = ConversationCache(self.config.session.max_sessions, self.config.session.ttl_s)
        runtime = Runtime(self.config, self.env, http, model, self.tools, cache)
        mode: Mode
        if detected.kind == "agents":
            mode = AgentsApiMode(runtime, detected.prefix)
        elif detected.kind == "responses":
            mode = ResponsesApiMode(runtime)
        else:
            mode = ChatCompletionsMode(runtime, detected.prefix)
        await mode.start()
        self._runtime, self._mode = runtime, mode
        _logger.warning(
            "Llama Stack backend: %s (server %s, version %s, model %s)",
            mode.name, self.env.base_url, detected.version or "unknown", model,
        )  # fmt: skip

    async def stream(self, request: ResponsesAgentRequest) -> AsyncIterator[AgentEvent]:
        if self._mode is None or self._runtime is None:
            raise AgentError("the Llama Stack backend is not started")
        mode, cache = self._mode, self._runtime.conversations
        conversation_id = request.context.conversation_id if request.context else None
        extra: dict[str, Any] = {"llama_stack_mode": mode.name}
        if not conversation_id:
            async for event in mode.stream(request, None):
                yield with_custom_outputs(event, extra)
            return
        conversation, evicted = cache.get_or_create(conversation_id)
        for old in evicted:
            await mode.forget(old)
        async with conversation.lock:  # one turn at a time per conversation
            async for event in mode.stream(request, conversation):
                if conversation.server_id:
                    extra["llama_stack_conversation"] = conversation.server_id
                yield with_custom_outputs(event, extra)

    async def aclose(self) -> None:
        if self._mode is None or self._runtime is None:
            return
        for conversation in self._runtime.conversations.drain():
            await self._mode.forget(conversation)
        await self._mode.aclose()
        await self._runtime.http.aclose()


def _for_operator(exc: BackendError) -> BackendError:
    """A load-time error that names the server and what it said (the operator reads it)."""
    message = f"{exc.message}: {exc.detail}" if exc.detail else exc.message
    if isinstance(exc, BackendStatusError):
        return BackendStatusError(message, exc.status, exc.detail, exc.retry_after)
    return type(exc)(message, exc.detail)
