"""The OpenAI-style modes, run by the OpenAI Agents SDK: its runner is the one tool loop.

* ``responses`` (Llama Stack 0.4+, OGX 1.x): ``OpenAIResponsesModel`` against the server's
  ``/v1/responses``; one server conversation per ``conversation_id`` (later turns send only the
  new items), and ``file_search`` over the RAG toolgroups' vector stores.
* ``chat_completions`` (any Llama Stack, or any OpenAI-compatible server):
  ``OpenAIChatCompletionsModel``; the conversation's history is kept in the conversation map.

What is Llama-Stack-specific lives here: server conversations, vector stores, and the server's
own settings (``max_infer_iters``, guardrails). Rounds, tool calls, usage and the stream are
the SDK's (translated by the OpenAI backend's :class:`StreamTranslator`); errors are mapped by
:func:`agentship.upstream.classify`, like the OpenAI backend's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Literal

from agents.exceptions import ModelRefusalError
from agents.items import MessageOutputItem
from agents.stream_events import RunItemStreamEvent, StreamEvent
from agents.tool_context import ToolContext
from mlflow.types.responses import ResponsesAgentRequest
from openai.types.responses import ResponseOutputRefusal

from agents import (
    Agent,
    FileSearchTool,
    HostedMCPTool,
    Model,
    ModelResponse,
    ModelSettings,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    RunConfig,
    RunContextWrapper,
    RunHooks,
    Runner,
    Tool,
)
from agentship.errors import AgentError, AgentRunError
from agentship.events import AgentEvent, Completed, ItemDone
from agentship.inputs import input_dicts, new_item_id
from agentship.llama_stack.conversations import ConversationState
from agentship.llama_stack.convert import refusal_item, split_new_messages
from agentship.llama_stack.runtime import Runtime, Turn, refuse_unsupported, run_context
from agentship.openai_agents.config import McpServerConfig
from agentship.openai_agents.convert import StreamTranslator, to_run_input, usage_to_responses
from agentship.openai_agents.mcp import McpServers
from agentship.openai_agents.plan import model_settings
from agentship.openai_agents.tool_text import parts_as_text, text_outputs_filter
from agentship.openai_agents.tools import AgentRunContext, request_output_type
from agentship.tracing import GUARDRAIL, LLM, TOOL, StepSpans, tool_arguments
from agentship.upstream import Upstream

Kind = Literal["responses", "chat_completions"]


def _hosted_mcp(runtime: Runtime, server: McpServerConfig) -> HostedMCPTool:
    """An MCP server the Responses server calls itself (its ``mcp`` tool), secrets from the env."""
    config: dict[str, Any] = {
        "type": "mcp",
        "server_label": server.name,
        "server_url": runtime.mcp_url(server),
        "require_approval": "never",
    }
    if server.headers_from_env:
        config["headers"] = runtime.mcp_headers(server)
    if server.allowed_tools is not None:
        config["allowed_tools"] = [t for t in server.allowed_tools if t not in server.blocked_tools]
    return HostedMCPTool(tool_config=config)  # type: ignore[arg-type]


class _StepSpanHooks(RunHooks[AgentRunContext]):
    """An LLM span per model call and a TOOL span per tool run, under the request's span.

    A model call records what it was given (the instructions and the input items), the model
    and the settings of this request; a tool run its arguments and call id."""

    def __init__(self, spans: StepSpans, llm_name: str, model: str, settings: dict[str, Any]) -> None:
        self.spans = spans
        self._llm_name = llm_name
        self._model = model
        self._settings = settings
        self._calls = 0

    async def on_llm_start(
        self,
        context: RunContextWrapper[AgentRunContext],
        agent: Agent[Any],
        system_prompt: Any,
        input_items: Any,
    ) -> None:
        given = {"instructions": system_prompt, "input": list(input_items)}
        self.spans.start(
            f"llm:{self._calls}", self._llm_name, LLM, given, model=self._model, parameters=self._settings
        )

    async def on_llm_end(
        self, context: RunContextWrapper[AgentRunContext], agent: Agent[Any], response: ModelResponse
    ) -> None:
        usage = response.usage
        outputs = [item.model_dump(exclude_none=True) for item in response.output]
        totals = {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
                  "total_tokens": usage.total_tokens}  # fmt: skip
        self.spans.end(f"llm:{self._calls}", outputs, totals if usage.total_tokens else None)
        self._calls += 1
        for item in outputs:  # retrieval the server ran within this call
            if item.get("type") == "file_search_call":
                self.spans.span(
                    f"fs:{item.get('id')}", "file_search", TOOL, {"queries": item.get("queries")},
                    item.get("results"),
                )  # fmt: skip

    @staticmethod
    def _key(context: RunContextWrapper[AgentRunContext], tool: Tool) -> str:
        return f"tool:{context.tool_call_id if isinstance(context, ToolContext) else tool.name}"

    async def on_tool_start(
        self, context: RunContextWrapper[AgentRunContext], agent: Any, tool: Tool
    ) -> None:
        arguments, call_id = None, None
        if isinstance(context, ToolContext):
            arguments, call_id = tool_arguments(context.tool_arguments), context.tool_call_id
        self.spans.start(self._key(context, tool), tool.name, TOOL, arguments, call_id=call_id)

    async def on_tool_end(
        self, context: RunContextWrapper[AgentRunContext], agent: Any, tool: Tool, result: object
    ) -> None:
        output = parts_as_text(result)
        text = output if isinstance(output, str) else str(result)
        self.spans.end(self._key(context, tool), output, error=text if text.startswith("Error:") else None)


class OpenAIStyleMode:
    """One Agents SDK agent, built at load, pointed at the server's OpenAI-compatible API."""

    def __init__(self, runtime: Runtime, kind: Kind, prefix: str) -> None:
        self.rt = runtime
        self.kind = kind
        self.name = "responses" if kind == "responses" else f"chat_completions@{prefix}"
        config = runtime.config
        self._shields = list(dict.fromkeys([*config.input_shields, *config.output_shields]))
        self._upstream = Upstream(
            runtime.http.upstream.who, config.request_timeout_s, runtime.rounds_exceeded()
        )
        client = runtime.http.openai_client(prefix)
        model: Model = (
            OpenAIResponsesModel(model=runtime.model, openai_client=client)
            if kind == "responses"
            else OpenAIChatCompletionsModel(model=runtime.model, openai_client=client)
        )
        tools: list[Tool] = list(runtime.tools.values())
        if kind == "responses" and (stores := config.vector_store_ids()):
            tools.append(FileSearchTool(vector_store_ids=stores))
        self._mcp: McpServers | None = None
        mcp_servers: list[Any] = []
        if kind == "responses":  # the server calls them itself
            tools += [_hosted_mcp(runtime, s) for s in config.mcp_servers]
        elif config.mcp_servers:  # the wrapper calls them: connected at start, shared by requests
            self._mcp = McpServers(config.mcp_servers, runtime.environ)
            mcp_servers = self._mcp.for_agent(None)
        self.agent = Agent[AgentRunContext](
            name=config.name, instructions=config.instructions or None, model=model,
            model_settings=self._settings(), tools=tools, mcp_servers=mcp_servers,
        )  # fmt: skip
        # Model calls per request: one per client-tool round and the answer; in chat mode each
        # is also one inference iteration (in responses mode the server bounds its own).
        self.max_turns = config.max_tool_rounds + 1
        if kind == "chat_completions":
            self.max_turns = min(self.max_turns, config.max_infer_iters)

    def _settings(self) -> ModelSettings:
        config = self.rt.config
        sampling = self.rt.sampling()
        extra: dict[str, Any] = {}
        if self.kind == "responses":
            extra["max_infer_iters"] = config.max_infer_iters
            if self._shields:
                extra["guardrails"] = self._shields
        return ModelSettings(
            temperature=sampling.get("temperature"),
            top_p=sampling.get("top_p"),
            max_tokens=sampling.get("max_tokens"),
            include_usage=True if self.kind == "chat_completions" else None,
            extra_body=extra or None,
        )

    async def start(self) -> None:
        if self._mcp is not None:
            await self._mcp.start()

    def health(self) -> dict[str, Any]:
        return {"mcp_servers": self._mcp.health()} if self._mcp is not None else {}

    async def release(self, state: ConversationState) -> None:
        if self.kind == "responses" and state.server_id:
            try:
                await self.rt.http.delete(f"/v1/conversations/{state.server_id}")
            except AgentError:
                pass  # best effort: the server owns its conversations' lifetime

    async def _run_input(self, request: ResponsesAgentRequest, turn: Turn) -> tuple[list[Any], str | None]:
        """(the SDK run input, the server conversation id) for this turn."""
        items = input_dicts(request)
        before = turn.before
        if self.kind == "chat_completions":
            if before is not None and before.history:
                return [*before.history, *to_run_input(split_new_messages(items)[1])], None
            return to_run_input(items), None
        if not turn.keep:
            return to_run_input(items), None
        if before is not None and before.server_id:
            return to_run_input(split_new_messages(items)[1]), before.server_id
        created = await self.rt.http.post("/v1/conversations", {})
        turn.created = ConversationState(server_id=str(created["id"]))
        if before is not None and before.history:  # a fresh server conversation, after a failed turn
            return [*before.history, *to_run_input(split_new_messages(items)[1])], turn.created.server_id
        return to_run_input(items), turn.created.server_id

    async def stream(self, request: ResponsesAgentRequest, turn: Turn) -> AsyncIterator[AgentEvent]:
        refuse_unsupported(request, self.name, settings=True)
        agent = self.agent
        if (output_type := request_output_type(request.text)) is not None:
            agent = agent.clone(output_type=output_type)
        run_input, conversation_id = await self._run_input(request, turn)
        context = run_context(request)
        settings = model_settings(request)
        resolved = agent.model_settings.resolve(settings).to_traceable_dict()
        name = "responses.create" if self.kind == "responses" else "chat.completions"
        hooks = _StepSpanHooks(StepSpans(self.rt.trace_limit), name, self.rt.model, resolved)
        config = RunConfig(
            tracing_disabled=True, model_settings=settings, call_model_input_filter=text_outputs_filter
        )
        turn.touched = True
        result = Runner.run_streamed(
            agent, run_input, context=context, max_turns=self.max_turns, hooks=hooks,
            conversation_id=conversation_id, run_config=config,
        )  # fmt: skip
        translator = StreamTranslator()
        refusals: list[str] = []
        try:
            async for event in result.stream_events():
                for out in translator.feed(event):
                    yield self._refusal(out, event, translator, refusals)
        except ModelRefusalError as exc:  # the server's guardrail answered with a refusal alone
            if not refusals:  # (else its item has been streamed already)
                refusals.append(exc.refusal)
                item = refusal_item(new_item_id("msg"), exc.refusal)
                translator.output_items.append(item)
                yield ItemDone(item)
        except BaseException as exc:
            result.cancel()
            hooks.spans.close_all("the request failed")
            raise self._mapped(exc) from exc
        if turn.keep:  # the history too where the server keeps it: a failed turn starts afresh from it
            turn.after = ConversationState(
                server_id=conversation_id, history=turn.history(result.to_input_list())
            )
        usage = result.context_wrapper.usage
        custom = dict(context.custom_outputs)
        if refusals:
            tripped = {"shields": self._shields, "message": "\n".join(refusals)}
            hooks.spans.span("guardrails", "guardrails", GUARDRAIL, {"shields": self._shields}, tripped)
            custom["guardrail_triggered"] = tripped
        yield Completed(
            translator.output_items, usage_to_responses(usage) if usage.total_tokens else None, custom
        )

    def _mapped(self, exc: BaseException) -> BaseException:
        if isinstance(exc, (AgentError, asyncio.CancelledError, GeneratorExit)):
            return exc
        if "max_iterations_exceeded" in str(exc):  # the server's own bound (responses mode)
            limit = self.rt.config.max_infer_iters
            return AgentRunError(f"the agent needed more than max_infer_iters={limit} inference steps")
        return self.rt.http.mapped(exc, self._upstream)

    @staticmethod
    def _refusal(
        out: AgentEvent, event: StreamEvent, translator: StreamTranslator, refusals: list[str]
    ) -> AgentEvent:
        """A message the server's guardrail replaced by a refusal stays a refusal item."""
        if not (isinstance(out, ItemDone) and isinstance(event, RunItemStreamEvent)):
            return out
        if not isinstance(event.item, MessageOutputItem):
            return out
        parts = [p.refusal for p in event.item.raw_item.content if isinstance(p, ResponseOutputRefusal)]
        if not parts:
            return out
        refusals.extend(parts)
        item = refusal_item(str(out.item.get("id")), "\n".join(parts))
        translator.output_items[translator.output_items.index(out.item)] = item
        return ItemDone(item)

    async def aclose(self) -> None:
        if self._mcp is not None:
            await self._mcp.aclose()
