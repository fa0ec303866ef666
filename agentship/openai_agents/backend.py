"""The OpenAI Agents SDK backend: builds the agent tree once, runs it per request, maps failures.

The endpoint and the key come from the environment at serve time (``OPENAI_BASE_URL``,
``OPENAI_API_KEY``), so one registered model can be served against OpenAI, vLLM, Ollama or
Llama Stack's OpenAI-compatible endpoint. Clients and agents are built once per event loop; MCP
servers connect once at load. With the state store, conversations live in the SDK's sessions,
and a run that pauses (a tool needing approval, a client's own tool) is kept until answered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import openai
from mlflow.types.responses import ResponsesAgentRequest
from sqlalchemy.exc import SQLAlchemyError

from agents import (
    Agent,
    Model,
    ModelSettings,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    RunConfig,
    Runner,
    RunResult,
    RunResultStreaming,
)
from agentship.errors import AgentError, BackendError, ConfigError, InvalidRequestError, StateError
from agentship.events import AgentEvent, Completed, ItemDone
from agentship.inputs import input_dicts
from agentship.openai_agents.agent_tree import AgentParts, build_agent
from agentship.openai_agents.approvals import ApprovalPolicy, approval_request, call_id_of
from agentship.openai_agents.config import OpenAIAgentsConfig
from agentship.openai_agents.convert import StreamTranslator, to_run_input, usage_to_responses
from agentship.openai_agents.errors import classify
from agentship.openai_agents.lean_client import LeanAsyncOpenAI
from agentship.openai_agents.mcp import McpServers
from agentship.openai_agents.memory import ConversationMemory, TurnSession, turn_input
from agentship.openai_agents.plan import RequestPlan, plan_request
from agentship.openai_agents.resume import Resumption, take_paused, undo_pauses
from agentship.openai_agents.tool_text import text_outputs_filter
from agentship.openai_agents.tools import AgentRunContext, load_tool
from agentship.openai_agents.tracing import TracedChatCompletionsModel, TracedResponsesModel, TracingHooks
from agentship.state import StateSettings, StateStore

__all__ = ["AgentRunContext", "OpenAIAgentsBackend", "load_tool"]

_logger = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://api.openai.com/v1"
_TRACING_HOOKS = TracingHooks()


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
        self._store: StateStore | None = None
        self._memory: ConversationMemory | None = None
        self._mcp = McpServers(config.mcp_servers, environ) if config.mcp_servers else None
        # Import every tool and guardrail now, so a bad reference fails at load.
        self._parts = AgentParts.from_config(config, self._mcp)
        self._policy = ApprovalPolicy.from_config(config)
        self._per_loop: dict[
            asyncio.AbstractEventLoop, tuple[openai.AsyncOpenAI, Agent[AgentRunContext]]
        ] = {}
        self._build(LeanAsyncOpenAI(api_key="unused", base_url=self.endpoint))

    def _build(self, client: openai.AsyncOpenAI) -> Agent[AgentRunContext]:
        settings = self.config

        chat, responses = (
            (TracedChatCompletionsModel, TracedResponsesModel)
            if settings.tracing
            else (OpenAIChatCompletionsModel, OpenAIResponsesModel)
        )

        def model_for(name: str) -> Model:
            if self._model_factory is not None:
                return self._model_factory(name)
            if settings.api == "chat_completions":
                return chat(model=name, openai_client=client)
            return responses(model=name, openai_client=client)

        agent = build_agent(settings, model_for, settings.model, self._parts)
        if settings.api == "chat_completions" and agent.model_settings.include_usage is None:
            agent.model_settings = agent.model_settings.resolve(ModelSettings(include_usage=True))
        return agent

    def _agent(self) -> Agent[AgentRunContext]:
        loop = asyncio.get_running_loop()
        built = self._per_loop.get(loop)
        if built is None:
            client = LeanAsyncOpenAI(
                api_key=self._api_key or "unused",
                base_url=self.endpoint,
                timeout=self.config.request_timeout_s,
                max_retries=self.config.max_retries,
            )
            built = self._per_loop[loop] = (client, self._build(client))
        return built[1]

    async def start(self) -> None:
        """Open the state store and connect the MCP servers; the model client connects on use."""
        if self._state_settings is not None:
            self._store = await StateStore.open(self._state_settings)
            self._memory = ConversationMemory(self._store)
            _logger.info("conversation memory in %s", self._state_settings.describe())
        if self._mcp is not None:
            await self._mcp.start()

    def health(self) -> dict[str, Any]:
        return {"mcp_servers": self._mcp.health()} if self._mcp is not None else {}

    @property
    def sessions_in_store(self) -> bool:
        """Whether its conversations are SDK sessions in the state store (then a conversation of
        the Conversations API is what the agent sees as history)."""
        return self._memory is not None

    # -- a request ------------------------------------------------------------------------------
    async def stream(
        self, request: ResponsesAgentRequest, *, deltas: bool = True
    ) -> AsyncIterator[AgentEvent]:
        items = input_dicts(request)
        plan = plan_request(request, items)
        context = AgentRunContext(
            custom_inputs=dict(request.custom_inputs or {}),
            conversation_id=request.context.conversation_id if request.context else None,
            user_id=request.context.user_id if request.context else None,
            client_outputs=dict(plan.client_outputs),
        )
        call = _Call(items, plan, context, self._agent_for(plan), deltas)
        try:
            call.resumption = await take_paused(self._store, call.agent, plan, context)
            kept = False
            try:
                async for event in self._turn(call):
                    kept = kept or isinstance(event, Completed)
                    yield event
            except BaseException:
                if not (kept or (call.session is not None and call.session.kept)) and self._store is not None:
                    await undo_pauses(self._store, call.resumption, call.paused_run)
                raise
        except SQLAlchemyError as exc:
            raise StateError("the state store is unavailable; retry later") from exc

    async def _turn(self, call: _Call) -> AsyncIterator[AgentEvent]:
        """The run, in its conversation's turn if it has one (kept only if it completes)."""
        conversation = call.context.conversation_id
        if not conversation or self._memory is None:
            async for event in self._run(call):
                yield event
            return
        # The terminal event waits until the turn is kept and has let the conversation go: a
        # client that sends the next turn as soon as it has this answer (to any replica) must
        # not find the conversation still held by this one.
        last: Completed | None = None
        async with self._memory.turn(call.context.user_id or "", conversation) as call.session:
            async for event in self._run(call):
                call.session.follow(event)
                if isinstance(event, Completed):
                    last = event
                else:
                    yield event
        if last is not None:
            yield last

    def _agent_for(self, plan: RequestPlan) -> Agent[AgentRunContext]:
        agent = self._agent()
        if plan.client_tools or plan.output_type is not None:
            agent = agent.clone(
                tools=[*agent.tools, *plan.client_tools],
                output_type=plan.output_type if plan.output_type is not None else agent.output_type,
            )
        return agent

    async def _run(self, call: _Call) -> AsyncIterator[AgentEvent]:
        plan, context, resumption, session = call.plan, call.context, call.resumption, call.session
        arguments: dict[str, Any] = {
            "context": context,
            "max_turns": self.config.max_turns,
            "session": session,
            "hooks": _TRACING_HOOKS if self.config.tracing else None,
            "run_config": RunConfig(
                workflow_name=self.config.name,
                tracing_disabled=not self.config.tracing,
                model_settings=plan.settings,
                call_model_input_filter=text_outputs_filter,  # the live turn's tool outputs as text
            ),
        }
        start = resumption.state if resumption is not None else turn_input(session, to_run_input(call.items))
        translator = StreamTranslator(
            hold=self._policy.needs,
            resumed={k: _function_call(v) for k, v in (resumption.resumed if resumption else {}).items()},
            silent=frozenset(plan.client_outputs) if resumption is not None else frozenset(),
        )
        result: RunResult | RunResultStreaming
        if call.deltas:
            result = Runner.run_streamed(call.agent, start, **arguments)
            try:
                async for event in result.stream_events():
                    for out in translator.feed(event):
                        yield out
            except BaseException as exc:
                result.cancel()
                raise self._map_error(exc) from exc
        else:  # nobody reads the text as it comes: one model answer per call, no chunks to parse
            try:
                result = await Runner.run(call.agent, start, **arguments)
            except BaseException as exc:
                raise self._map_error(exc) from exc
            for run_item in result.new_items:
                for out in translator.item(run_item):
                    yield out
        async for paused_event in self._pause(result, call, translator):
            yield paused_event
        custom_outputs = {**context.custom_outputs, "last_agent": result.last_agent.name}
        usage = result.context_wrapper.usage
        # A backend that reports no usage (llama.cpp's streams, say) gives None, not made-up zeros.
        reported = usage_to_responses(usage) if usage.total_tokens else None
        yield Completed(translator.output_items, reported, custom_outputs)

    async def _pause(
        self, result: Any, call: _Call, translator: StreamTranslator
    ) -> AsyncIterator[AgentEvent]:
        """If the run paused: an approval request per call that needs one, and the run kept."""
        interruptions = list(result.interruptions or [])
        if not interruptions:
            return
        if self._store is None:
            raise InvalidRequestError(
                "this run pauses for approval, which needs the state store (AGENTSHIP_STATE_URL)"
            )
        call.paused_run = await self._store.paused.put(
            call.context.user_id or "", [call_id_of(i) for i in interruptions], result.to_state().to_json()
        )
        for item in interruptions:
            if item.tool_name not in call.plan.client_tool_names:
                request_item = approval_request(item)
                translator.output_items.append(request_item)
                yield ItemDone(request_item)

    def _map_error(self, exc: BaseException) -> BaseException:
        """The package error for a failed run: a client-safe message, the detail logged here."""
        if isinstance(exc, (AgentError, asyncio.CancelledError, GeneratorExit, SQLAlchemyError)):
            return exc  # a store failure is mapped where the session is held
        mapped = classify(exc, self.config.request_timeout_s, self.config.max_turns)
        if isinstance(mapped, BackendError):
            _logger.warning("%s (%s): %s", mapped.message, self.endpoint, mapped.detail)
        return mapped

    async def aclose(self) -> None:
        if self._mcp is not None:
            await self._mcp.aclose()
        for client, _ in list(self._per_loop.values()):
            await client.close()
        self._per_loop.clear()
        if self._store is not None:
            await self._store.aclose()


@dataclass
class _Call:
    """One request, as the backend runs it."""

    items: list[dict[str, Any]]
    plan: RequestPlan
    context: AgentRunContext
    agent: Agent[AgentRunContext]
    deltas: bool
    resumption: Resumption | None = None
    """The paused run it answers, taken from the store (put back if the turn is not kept)."""
    paused_run: str | None = None
    """The id of the run it paused, stored (forgotten if the turn is not kept)."""
    session: TurnSession | None = None
    """Its conversation's session, while its turn is held."""


def _function_call(raw: dict[str, Any]) -> dict[str, Any]:
    """A paused call, as the function_call output item it is shown as when the run resumes."""
    from mlflow.types.responses import create_function_call_item

    item = create_function_call_item(
        str(raw.get("id") or f"fc_{raw.get('call_id')}"),
        str(raw.get("call_id")),
        str(raw.get("name")),
        str(raw.get("arguments") or "{}"),
    )
    if raw.get("server_label"):
        item["server_label"] = raw["server_label"]
    return item
