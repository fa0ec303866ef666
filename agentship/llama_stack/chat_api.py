"""The fallback: Chat Completions with a client-side tool loop.

Serves Llama Stack servers without an agents API and any OpenAI-compatible server (vLLM,
Ollama). Conversations are kept client-side, per ``conversation_id``, in the bounded cache.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from mlflow.types.responses import ResponsesAgentRequest, create_function_call_output_item

from agentship.errors import AgentRunError, BackendError
from agentship.events import AgentEvent, Completed, ItemDone
from agentship.inputs import input_dicts, new_item_id
from agentship.llama_stack.convert import ChatTranslator, add_usage, chat_messages, split_new_messages
from agentship.llama_stack.runtime import Runtime
from agentship.llama_stack.sessions import Conversation
from agentship.tracing import LLM, StepSpans


class ChatCompletionsMode:
    def __init__(self, runtime: Runtime, prefix: str) -> None:
        self.rt = runtime
        self.prefix = prefix  # "/v1" or "/v1/openai/v1"
        self.name = f"chat_completions@{prefix}"

    async def start(self) -> None:
        return None

    async def forget(self, conversation: Conversation) -> None:
        conversation.history.clear()

    async def stream(
        self, request: ResponsesAgentRequest, conversation: Conversation | None
    ) -> AsyncIterator[AgentEvent]:
        items = input_dicts(request)
        if conversation is not None and conversation.history:
            messages = conversation.history + chat_messages("", split_new_messages(items)[1])
        else:
            messages = chat_messages(self.rt.config.instructions, items)
        tools = [t.chat_tool() for t in self.rt.tools.values()]
        body: dict[str, Any] = {
            "model": self.rt.model,
            "stream": True,
            "stream_options": {"include_usage": True},
            **self.rt.sampling(),
        }
        if tools:
            body["tools"] = tools
        spans = StepSpans()
        outputs: list[dict[str, Any]] = []
        usage: dict[str, Any] | None = None
        try:
            for round_index in range(self.rt.config.max_tool_rounds + 1):
                translator = ChatTranslator(new_item_id("msg"))
                spans.start(f"llm:{round_index}", "chat.completions", LLM, {"messages": list(messages)})
                try:
                    async for chunk in self.rt.http.stream(
                        f"{self.prefix}/chat/completions", {**body, "messages": messages}
                    ):
                        for out in translator.feed(chunk):
                            yield out
                except ValueError as exc:
                    raise BackendError("the model server's stream failed", str(exc)) from exc
                done, calls = translator.finish()
                spans.end(f"llm:{round_index}", [e.item for e in done], translator.usage)
                usage = add_usage(usage, translator.usage)
                for event in done:
                    outputs.append(event.item)
                    yield event
                assistant: dict[str, Any] = {"role": "assistant", "content": translator.text or None}
                if calls:
                    assistant["tool_calls"] = [
                        {
                            "id": c["id"],
                            "type": "function",
                            "function": {"name": c["name"], "arguments": c["arguments"] or "{}"},
                        }
                        for c in calls
                    ]
                messages = [*messages, assistant]
                if not calls:
                    break
                for call in calls:
                    output = await self.rt.run_client_tool(
                        spans, call["id"], call["name"], call["arguments"] or "{}"
                    )
                    item = create_function_call_output_item(call["id"], output)
                    outputs.append(item)
                    yield ItemDone(item)
                    messages.append({"role": "tool", "tool_call_id": call["id"], "content": output})
            else:
                raise AgentRunError(
                    f"the agent needed more than max_tool_rounds={self.rt.config.max_tool_rounds} tool rounds"
                )
        except BaseException:
            spans.close_all("the request failed")
            raise
        if conversation is not None:
            conversation.history = messages
        yield Completed(outputs, usage)

    async def aclose(self) -> None:
        return None
