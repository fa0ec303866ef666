"""The OpenAI Agents SDK backend: builds the agent tree once, runs it, maps its failures.

The endpoint and the key come from the environment at serve time (``OPENAI_BASE_URL``,
``OPENAI_API_KEY``), so one registered model can be served against OpenAI, vLLM, Ollama or
Llama Stack's OpenAI-compatible endpoint. Clients and agents are built once per event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import openai
from mlflow.types.responses import ResponsesAgentRequest

from agents import (
    Agent,
    Model,
    ModelSettings,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    RunConfig,
    Runner,
)
from agentship.errors import AgentError, BackendError, ConfigError
from agentship.events import AgentEvent, Completed
from agentship.inputs import input_dicts
from agentship.openai_agents.config import OpenAIAgentsConfig, SubAgentConfig
from agentship.openai_agents.convert import StreamTranslator, to_run_input, usage_to_responses
from agentship.openai_agents.tools import AgentRunContext, load_tool
from agentship.upstream import Upstream, classify

__all__ = ["AgentRunContext", "OpenAIAgentsBackend", "build_agent", "load_tool"]

_logger = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://api.openai.com/v1"


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
        self._upstream = Upstream(
            "the model backend",
            config.request_timeout_s,
            f"the agent did not finish within max_turns={config.max_turns}",
        )
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
        """Nothing to do: the OpenAI client connects on first use."""

    async def stream(self, request: ResponsesAgentRequest) -> AsyncIterator[AgentEvent]:
        context = AgentRunContext(
            custom_inputs=dict(request.custom_inputs or {}),
            conversation_id=request.context.conversation_id if request.context else None,
            user_id=request.context.user_id if request.context else None,
        )
        result = Runner.run_streamed(
            self._agent(),
            to_run_input(input_dicts(request)),
            context=context,
            max_turns=self.config.max_turns,
            run_config=RunConfig(workflow_name=self.config.name, tracing_disabled=not self.config.tracing),
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
        if isinstance(exc, (AgentError, asyncio.CancelledError, GeneratorExit)):
            return exc
        mapped = self._classify(exc)
        if isinstance(mapped, BackendError):
            _logger.warning("%s (%s): %s", mapped.message, self.endpoint, mapped.detail)
        return mapped

    def _classify(self, exc: BaseException) -> BaseException:
        return classify(exc, self._upstream)

    async def aclose(self) -> None:
        for client, _ in list(self._per_loop.values()):
            await client.close()
        self._per_loop.clear()
