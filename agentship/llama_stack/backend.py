"""The Llama Stack backend: detects the server's API at load, then serves requests in that mode."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

from mlflow.types.responses import ResponsesAgentRequest

from agentship.errors import AgentError, BackendError, BackendStatusError, StateError
from agentship.events import AgentEvent, Completed, with_custom_outputs
from agentship.llama_stack.agents_api import AgentsApiMode
from agentship.llama_stack.checks import check_settings, check_vector_stores
from agentship.llama_stack.config import LlamaStackConfig, LlamaStackEnv, with_vector_stores_from_env
from agentship.llama_stack.conversations import ConversationMap, ConversationState, InMemoryConversationMap
from agentship.llama_stack.detect import Detected, detect, resolve_model
from agentship.llama_stack.http import ServerHTTP
from agentship.llama_stack.runtime import Mode, Runtime, Turn
from agentship.llama_stack.sdk_modes import OpenAIStyleMode
from agentship.llama_stack.stored_conversations import StoredConversationMap
from agentship.llama_stack.tools import load_client_tools
from agentship.state import StateSettings, StateStore, conversation_key
from agentship.state.engine import settled

_logger = logging.getLogger(__name__)


class LlamaStackBackend:
    """Serves Responses requests from a Llama Stack / OGX (or OpenAI-compatible) server.

    ``conversations`` replaces the per-process conversation map (a persistent store, say).
    """

    def __init__(
        self,
        config: LlamaStackConfig,
        environ: Mapping[str, str],
        conversations: ConversationMap | None = None,
    ) -> None:
        self.env = LlamaStackEnv.from_environ(environ)
        self.config = with_vector_stores_from_env(config, environ)
        self.tools = load_client_tools(config.client_tools)
        self._conversations = conversations
        self._state_settings = StateSettings.from_environ(environ)
        self._environ = dict(environ)
        self._mode: Mode | None = None
        self._http: ServerHTTP | None = None
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
            check_settings(self.config, self.env, detected)
            model = await resolve_model(http, self.env.model or self.config.model)
            await check_vector_stores(http, self.config, detected)
            store = await self._open_store()
            mode = self._build(
                Runtime(self.config, self.env, http, model, self.tools, detected.version, self._environ),
                detected,
                store,
            )
            await mode.start()
        except BackendError as exc:
            await http.aclose()
            # At load the operator is the reader: name the server and what it said.
            raise _for_operator(exc) from exc
        except BaseException:
            await http.aclose()
            raise
        self.server_version = detected.version
        self._http, self._mode = http, mode
        if self._conversations is None and store is not None:
            self._conversations = StoredConversationMap(store)
        elif self._conversations is None:  # no state store: this process keeps them
            session = self.config.session
            self._conversations = InMemoryConversationMap(session.max_sessions, session.ttl_s, mode.release)
        _logger.warning(
            "Llama Stack backend: %s (server %s, version %s, model %s)",
            mode.name, self.env.base_url, detected.version or "unknown", model,
        )  # fmt: skip

    async def _open_store(self) -> StateStore | None:
        """The state store, unless conversations are kept elsewhere (given, or in process)."""
        if self._conversations is not None or self._state_settings is None:
            return None
        return await StateStore.open(self._state_settings)

    @staticmethod
    def _build(runtime: Runtime, detected: Detected, store: StateStore | None) -> Mode:
        if detected.kind == "agents":
            return AgentsApiMode(runtime, detected.prefix, store)
        return OpenAIStyleMode(runtime, detected.kind, detected.prefix)

    async def stream(
        self, request: ResponsesAgentRequest, *, deltas: bool = True
    ) -> AsyncIterator[AgentEvent]:
        # Llama Stack's modes always stream from the server: ``deltas`` changes nothing here.
        if self._mode is None or self._conversations is None:
            raise AgentError("the Llama Stack backend is not started")
        mode, conversations = self._mode, self._conversations
        conversation_id = request.context.conversation_id if request.context else None
        extra: dict[str, Any] = {"llama_stack_mode": mode.name}
        if not conversation_id:
            async for event in mode.stream(request, Turn(keep=False)):
                yield with_custom_outputs(event, extra)
            return
        user_id = (request.context.user_id if request.context else None) or ""
        key = conversation_key(user_id, conversation_id)  # one user never continues another's
        async with conversations.lock(key):  # one turn at a time per conversation
            turn = Turn(keep=True, before=await conversations.get(key))
            kept = False
            try:
                async for event in mode.stream(request, turn):
                    if isinstance(event, Completed) and turn.after is not None:
                        await conversations.set(key, turn.after)  # only once it succeeded
                        kept = True
                    server_id = (turn.after or turn.before or ConversationState()).server_id
                    if server_id:
                        extra["llama_stack_conversation"] = server_id
                    yield with_custom_outputs(event, extra)
            except BaseException:
                if not kept:
                    await self._failed(conversations, key, turn)
                raise
            finally:
                if turn.created is not None and turn.after is None:
                    await mode.release(turn.created)  # a failed first turn leaves nothing behind

    async def _failed(self, conversations: ConversationMap, key: str, turn: Turn) -> None:
        """A turn failed: if the server's session may hold part of it, leave that session (the
        next turn starts a fresh one from the history of the turns that succeeded)."""
        reset = turn.after_failure()
        if reset is None or self._mode is None or turn.before is None:
            return
        try:
            await settled(conversations.set(key, reset))
        except StateError:
            _logger.warning("could not leave a server session holding part of a failed turn")
            return
        await self._mode.release(turn.before)

    def health(self) -> dict[str, Any]:
        """The readiness detail: the MCP servers the wrapper calls itself (chat-completions mode)."""
        health = getattr(self._mode, "health", None)
        return dict(health()) if callable(health) else {}

    async def aclose(self) -> None:
        if self._mode is None or self._http is None:
            return
        if self._conversations is not None:
            await self._conversations.aclose()
        await self._mode.aclose()
        await self._http.aclose()


def _for_operator(exc: BackendError) -> BackendError:
    """A load-time error that names the server and what it said (the operator reads it)."""
    message = f"{exc.message}: {exc.detail}" if exc.detail else exc.message
    if isinstance(exc, BackendStatusError):
        return BackendStatusError(message, exc.status, exc.detail, exc.retry_after)
    return type(exc)(message, exc.detail)
