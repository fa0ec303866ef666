"""Llama Stack 0.4+: Responses + Conversations.

One server conversation per ``conversation_id`` (later turns send only the new messages),
function tools for the client tools, and ``file_search`` over the RAG toolgroups' vector stores.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from mlflow.types.responses import ResponsesAgentRequest, create_function_call_output_item

from agentship.errors import AgentRunError, BackendError
from agentship.events import AgentEvent, Completed, ItemDone
from agentship.inputs import input_dicts
from agentship.llama_stack.convert import ResponsesTranslator, add_usage, responses_input, split_new_messages
from agentship.llama_stack.runtime import Runtime
from agentship.llama_stack.sessions import Conversation
from agentship.tracing import LLM, TOOL, StepSpans


class ResponsesApiMode:
    name = "responses"

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    async def start(self) -> None:
        return None

    def tools(self) -> list[dict[str, Any]]:
        tools = [t.function_tool() for t in self.rt.tools.values()]
        if vector_stores := self.rt.config.vector_store_ids():
            tools.append({"type": "file_search", "vector_store_ids": vector_stores})
        return tools

    async def forget(self, conversation: Conversation) -> None:
        return None  # server conversations are kept; the server owns their lifetime

    async def stream(
        self, request: ResponsesAgentRequest, conversation: Conversation | None
    ) -> AsyncIterator[AgentEvent]:
        items = input_dicts(request)
        body: dict[str, Any] = {
            "model": self.rt.model,
            "instructions": self.rt.config.instructions,
            "stream": True,
            **self._sampling(),
        }
        if tools := self.tools():
            body["tools"] = tools
        if conversation is not None:
            if conversation.server_id is None:
                created = await self.rt.http.post("/v1/conversations", {})
                conversation.server_id = str(created["id"])
                turn_input = responses_input(items)
            else:
                turn_input = responses_input(split_new_messages(items)[1])
            body["conversation"] = conversation.server_id
        else:
            turn_input = responses_input(items)
        spans = StepSpans()
        outputs: list[dict[str, Any]] = []
        usage: dict[str, Any] | None = None
        try:
            for round_index in range(self.rt.config.max_tool_rounds + 1):
                translator = ResponsesTranslator()
                spans.start(f"llm:{round_index}", "responses.create", LLM, {"input": turn_input})
                try:
                    async for event in self.rt.http.stream("/v1/responses", {**body, "input": turn_input}):
                        for out in translator.feed(event):
                            yield out
                except ValueError as exc:
                    raise BackendError("the Llama Stack response failed", str(exc)) from exc
                spans.end(f"llm:{round_index}", translator.output_items, translator.usage)
                self._trace_retrieval(spans, translator.output_items)
                outputs += translator.output_items
                usage = add_usage(usage, translator.usage)
                calls = [c for c in translator.function_calls if c.get("name") in self.rt.tools]
                if not calls:
                    break
                turn_input = []
                for call in calls:
                    output = await self.rt.run_client_tool(
                        spans, call["call_id"], call["name"], call.get("arguments") or "{}"
                    )
                    item = create_function_call_output_item(call["call_id"], output)
                    outputs.append(item)
                    yield ItemDone(item)
                    turn_input.append(
                        {"type": "function_call_output", "call_id": call["call_id"], "output": output}
                    )
                if conversation is None:
                    body["previous_response_id"] = translator.response_id
            else:
                raise AgentRunError(
                    f"the agent needed more than max_tool_rounds={self.rt.config.max_tool_rounds} client-tool rounds"
                )
        except BaseException:
            spans.close_all("the request failed")
            raise
        yield Completed(outputs, usage)

    def _sampling(self) -> dict[str, Any]:
        sampling = self.rt.sampling()
        if "max_tokens" in sampling:
            sampling["max_output_tokens"] = sampling.pop("max_tokens")
        return sampling

    @staticmethod
    def _trace_retrieval(spans: StepSpans, items: list[dict[str, Any]]) -> None:
        for item in items:
            if item.get("type") == "file_search_call":
                spans.span(
                    f"fs:{item.get('id')}",
                    "file_search",
                    TOOL,
                    {"queries": item.get("queries")},
                    item.get("results"),
                )

    async def aclose(self) -> None:
        return None
