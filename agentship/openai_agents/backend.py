"""The OpenAI Agents SDK backend: builds the agent tree once, runs it, maps its failures.

The endpoint and the key come from the environment at serve time (``OPENAI_BASE_URL``,
``OPENAI_API_KEY``), so one registered model can be served against OpenAI, vLLM, Ollama or
Llama Stack's OpenAI-compatible endpoint. Clients and agents are built once per event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import openai
from agents.exceptions import AgentsException, MaxTurnsExceeded, ModelBehaviorError
from agents.memory import Session
from mlflow.types.responses import ResponsesAgentRequest
from sqlalchemy.exc import SQLAlchemyError

from agents import (
    Agent,
    FunctionTool,
    Model,
    ModelSettings,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    RunConfig,
    Runner,
    function_tool,
)
from agentship.errors import (
    AgentError,
    AgentRunError,
    BackendError,
    BackendStatusError,
    BackendTimeoutError,
    BackendUnavailableError,
    ConfigError,
    StateError,
    backend_status_message,
)
from agentship.events import AgentEvent, Completed
from agentship.imports import import_object
from agentship.inputs import input_dicts
from agentship.openai_agents.config import OpenAIAgentsConfig, SubAgentConfig
from agentship.openai_agents.convert import StreamTranslator, to_run_input, usage_to_responses
from agentship.openai_agents.memory import ConversationMemory, keep_new_turn
from agentship.state import StateSettings, StateStore

_logger = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://api.openai.com/v1"


@dataclass
class AgentRunContext:
    """The run context every tool can read (``RunContextWrapper[AgentRunContext]``).

    Tools may write into ``custom_outputs``; it is returned with the response.
    """

    custom_inputs: dict[str, Any] = field(default_factory=dict)
    custom_outputs: dict[str, Any] = field(default_factory=dict)
    conversation_id: str | None = None
    user_id: str | None = None


def load_tool(reference: str) -> FunctionTool:
    obj = import_object(reference)
    if isinstance(obj, FunctionTool):
        return obj
    if callable(obj):
        return function_tool(obj)
    raise ConfigError(f"tool {reference!r} is neither a function nor an agents.FunctionTool")


def build_agent(config: SubAgentConfig, model_for: Any, default_model: str) -> Agent[AgentRunContext]:
    """Build the agent tree described by ``config``; ``model_for(name)`` makes model objects."""
    model_name = config.model or default_model
    return Agent[AgentRunContext](
        name=config.name,
        instructions=config.instructions or None,
        handoff_description=config.handoff_description,
        model=model_for(model_name),
        model_settings=ModelSettings(**config.model_settings),
        tools=[load_tool(ref) for ref in config.tools],
        handoffs=[build_agent(sub, model_for, model_name) for sub in config.handoffs],
    )


def _retry_after(response: Any) -> float | None:
    try:
        return float(response.headers.get("retry-after", ""))
    except (AttributeError, TypeError, ValueError):
        return None


def _error_message(exc: openai.APIStatusError) -> str:
    try:
        body = exc.response.json()
        detail = body.get("error", {}).get("message") if isinstance(body, dict) else None
    except (ValueError, json.JSONDecodeError):
        detail = None
    return str(detail or exc.message)


class OpenAIAgentsBackend:
    """Runs an ``agents.Agent`` tree for Responses requests. Safe to share across requests."""

    def __init__(
        self,
        config: OpenAIAgentsConfig,
        environ: Mapping[str, str],
        model_factory: Callable[[str], Model] | None = None,
    ) -> None:
        """``model_factory(name)``, when given, replaces the OpenAI models (other providers, tests)."""
        self.config = config
        self._model_factory = model_factory
        self.base_url = environ.get("OPENAI_BASE_URL") or None
        self._api_key = environ.get("OPENAI_API_KEY") or None
        if not self.base_url and not self._api_key and model_factory is None:
            raise ConfigError(
                "no model endpoint: set OPENAI_API_KEY (for OpenAI) or OPENAI_BASE_URL "
                "(for an OpenAI-compatible server) in the serving environment"
            )
        self.endpoint = self.base_url or DEFAULT_ENDPOINT
        self._state_settings = StateSettings.from_environ(environ)
        self._memory: ConversationMemory | None = None
        self._per_loop: dict[
            asyncio.AbstractEventLoop, tuple[openai.AsyncOpenAI, Agent[AgentRunContext]]
        ] = {}
        # Import every tool now, so a bad reference fails at load, not at the first request.
        self._build(openai.AsyncOpenAI(api_key="unused", base_url=self.endpoint))

    def _build(self, client: openai.AsyncOpenAI) -> Agent[AgentRunContext]:
        settings = self.config

        def model_for(name: str) -> Model:
            if self._model_factory is not None:
                return self._model_factory(name)
            if settings.api == "chat_completions":
                return OpenAIChatCompletionsModel(model=name, openai_client=client)
            return OpenAIResponsesModel(model=name, openai_client=client)

        agent = build_agent(settings, model_for, settings.model)
        if settings.api == "chat_completions" and agent.model_settings.include_usage is None:
            agent.model_settings = agent.model_settings.resolve(ModelSettings(include_usage=True))
        return agent

    def _agent(self) -> Agent[AgentRunContext]:
        loop = asyncio.get_running_loop()
        built = self._per_loop.get(loop)
        if built is None:
            client = openai.AsyncOpenAI(
                api_key=self._api_key or "unused",
                base_url=self.endpoint,
                timeout=self.config.request_timeout_s,
                max_retries=self.config.max_retries,
            )
            built = self._per_loop[loop] = (client, self._build(client))
        return built[1]

    async def start(self) -> None:
        """Open the state store (conversation memory); the OpenAI client connects on first use."""
        if self._state_settings is not None:
            store = await StateStore.open(self._state_settings)
            self._memory = ConversationMemory(store)
            _logger.info("conversation memory in %s", self._state_settings.describe())

    async def stream(self, request: ResponsesAgentRequest) -> AsyncIterator[AgentEvent]:
        context = AgentRunContext(
            custom_inputs=dict(request.custom_inputs or {}),
            conversation_id=request.context.conversation_id if request.context else None,
            user_id=request.context.user_id if request.context else None,
        )
        if context.conversation_id and self._memory is not None:
            try:
                async with self._memory.turn(context.user_id or "", context.conversation_id) as session:
                    async for event in self._run(request, context, session):
                        yield event
            except SQLAlchemyError as exc:
                raise StateError("the state store is unavailable; retry later") from exc
            return
        async for event in self._run(request, context, None):
            yield event

    async def _run(
        self, request: ResponsesAgentRequest, context: AgentRunContext, session: Session | None
    ) -> AsyncIterator[AgentEvent]:
        result = Runner.run_streamed(
            self._agent(),
            to_run_input(input_dicts(request)),
            context=context,
            max_turns=self.config.max_turns,
            session=session,
            run_config=RunConfig(
                workflow_name=self.config.name,
                tracing_disabled=not self.config.tracing,
                session_input_callback=keep_new_turn if session is not None else None,
            ),
        )
        translator = StreamTranslator()
        try:
            async for event in result.stream_events():
                for out in translator.feed(event):
                    yield out
        except BaseException as exc:
            result.cancel()
            raise self._map_error(exc) from exc
        custom_outputs = {**context.custom_outputs, "last_agent": result.last_agent.name}
        usage = result.context_wrapper.usage
        # A backend that reports no usage (llama.cpp's streams, say) gives None, not made-up zeros.
        reported = usage_to_responses(usage) if usage.total_tokens else None
        yield Completed(translator.output_items, reported, custom_outputs)

    def _map_error(self, exc: BaseException) -> BaseException:
        """The package error for a failed run: a client-safe message, the detail logged here."""
        if isinstance(exc, (AgentError, asyncio.CancelledError, GeneratorExit, SQLAlchemyError)):
            return exc  # a store failure is mapped where the session is held
        mapped = self._classify(exc)
        if isinstance(mapped, BackendError):
            _logger.warning("%s (%s): %s", mapped.message, self.endpoint, mapped.detail)
        return mapped

    def _classify(self, exc: BaseException) -> BaseException:
        if isinstance(exc, openai.APITimeoutError):
            return BackendTimeoutError(
                f"the model backend did not answer within {self.config.request_timeout_s:g}s", str(exc)
            )
        if isinstance(exc, openai.APIConnectionError):
            return BackendUnavailableError("the model backend is unreachable", str(exc.__cause__ or exc))
        if isinstance(exc, openai.APIStatusError):
            return BackendStatusError(
                backend_status_message(exc.status_code),
                exc.status_code,
                detail=f"HTTP {exc.status_code}: {_error_message(exc)}",
                retry_after=_retry_after(exc.response),
            )
        if isinstance(exc, MaxTurnsExceeded):
            return AgentRunError(f"the agent did not finish within max_turns={self.config.max_turns}")
        if isinstance(exc, (ModelBehaviorError, ValueError, openai.APIError)):
            return BackendError("the model backend sent a malformed response", str(exc))
        if isinstance(exc, AgentsException):
            return AgentRunError(f"the agent run failed: {exc}")
        return exc

    async def aclose(self) -> None:
        for client, _ in list(self._per_loop.values()):
            await client.close()
        self._per_loop.clear()
        if self._memory is not None:
            await self._memory.store.aclose()
