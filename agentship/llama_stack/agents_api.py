"""Llama Stack's Agents API (``/v1/agents`` in 0.2.x, ``/v1alpha/agents`` in 0.3.x).

One agent per loaded model (given by ``LLAMASTACK_AGENT_ID`` or created at load), one session
per ``conversation_id`` (or a throwaway session per request), streamed turns, and client tools
answered through turn resume.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

from mlflow.types.responses import ResponsesAgentRequest

from agentship.errors import AgentRunError, BackendError, BackendStatusError, ConfigError
from agentship.events import AgentEvent, Completed
from agentship.inputs import input_dicts
from agentship.llama_stack.convert import AgentTurnTranslator, agent_turn_messages, split_new_messages
from agentship.llama_stack.runtime import Runtime
from agentship.llama_stack.sessions import Conversation
from agentship.tracing import LLM, TOOL, StepSpans

_logger = logging.getLogger(__name__)


class AgentsApiMode:
    def __init__(self, runtime: Runtime, prefix: str) -> None:
        self.rt = runtime
        self.prefix = prefix  # "/v1" or "/v1alpha"
        self.name = f"agents@{prefix}"
        self.agent_id: str | None = None
        self._created = False

    def agent_config(self) -> dict[str, Any]:
        config = self.rt.config
        sampling = self.rt.sampling()
        strategy: dict[str, Any] = {"type": "greedy"}
        if "temperature" in sampling and sampling["temperature"] > 0:
            strategy = {
                "type": "top_p",
                "temperature": sampling["temperature"],
                "top_p": sampling.get("top_p", 1.0),
            }
        sampling_params: dict[str, Any] = {"strategy": strategy}
        if "max_tokens" in sampling:
            sampling_params["max_tokens"] = sampling["max_tokens"]
        return {
            "model": self.rt.model,
            "instructions": config.instructions,
            "name": config.name,
            "toolgroups": [g.name if not g.args else g.model_dump() for g in config.toolgroup_list()],
            "client_tools": [t.agents_tool_def() for t in self.rt.tools.values()],
            "max_infer_iters": config.max_infer_iters,
            "sampling_params": sampling_params,
            "enable_session_persistence": True,
        }

    async def start(self) -> None:
        agent_id = self.rt.env.agent_id
        if agent_id:
            try:
                await self.rt.http.get(f"{self.prefix}/agents/{agent_id}")
            except BackendStatusError as exc:
                if exc.status in (400, 404):
                    raise ConfigError(
                        f"LLAMASTACK_AGENT_ID={agent_id!r}: no such agent on {self.rt.http.base_url}"
                    ) from exc
                raise
            self.agent_id = agent_id
            _logger.info("using Llama Stack agent %s", agent_id)
            return
        created = await self.rt.http.post(f"{self.prefix}/agents", {"agent_config": self.agent_config()})
        self.agent_id = str(created["agent_id"])
        self._created = True
        _logger.info("created Llama Stack agent %s", self.agent_id)

    async def _new_session(self, name: str) -> str:
        created = await self.rt.http.post(
            f"{self.prefix}/agents/{self.agent_id}/session", {"session_name": name}
        )
        return str(created["session_id"])

    async def forget(self, conversation: Conversation) -> None:
        if conversation.server_id:
            await self._delete_session(conversation.server_id)

    async def _delete_session(self, session_id: str) -> None:
        try:
            await self.rt.http.delete(f"{self.prefix}/agents/{self.agent_id}/session/{session_id}")
        except Exception:
            _logger.debug("could not delete session %s", session_id, exc_info=True)

    async def stream(
        self, request: ResponsesAgentRequest, conversation: Conversation | None
    ) -> AsyncIterator[AgentEvent]:
        earlier, new = split_new_messages(input_dicts(request))
        if conversation is None:
            session_id = await self._new_session(f"request-{uuid.uuid4().hex[:12]}")
            messages = agent_turn_messages(earlier, new)
        elif conversation.server_id is None:
            session_id = conversation.server_id = await self._new_session(
                f"conversation-{uuid.uuid4().hex[:12]}"
            )
            messages = agent_turn_messages(earlier, new)
        else:
            session_id = conversation.server_id
            messages = agent_turn_messages([], new)
        try:
            async for event in self._turn(session_id, messages):
                yield event
        finally:
            if conversation is None:
                await self._delete_session(session_id)

    async def _turn(self, session_id: str, messages: list[dict[str, Any]]) -> AsyncIterator[AgentEvent]:
        translator = AgentTurnTranslator(set(self.rt.tools))
        spans = StepSpans()
        base = f"{self.prefix}/agents/{self.agent_id}/session/{session_id}/turn"
        path, body = base, {"messages": messages, "stream": True}
        try:
            for _ in range(self.rt.config.max_tool_rounds + 1):
                async for payload in self.rt.http.stream(path, body):
                    event = (payload.get("event") or {}).get("payload") or {}
                    if payload.get("error"):
                        error = payload["error"]
                        detail = error.get("message", error) if isinstance(error, dict) else error
                        raise BackendError("the Llama Stack turn failed", str(detail))
                    self._trace(spans, event, set(self.rt.tools))
                    for out in translator.feed(event):
                        yield out
                if not translator.awaiting_input:
                    break
                responses = []
                for call in translator.pending_calls:
                    output = await self.rt.run_client_tool(
                        spans, call["call_id"], call["name"], call["arguments"]
                    )
                    responses.append(
                        {"call_id": call["call_id"], "tool_name": call["name"], "content": output}
                    )
                    done = translator.tool_result(call["call_id"], output)
                    if done:
                        yield done
                path, body = (
                    f"{base}/{translator.turn_id}/resume",
                    {"tool_responses": responses, "stream": True},
                )
                translator.awaiting_input = False
            else:
                raise AgentRunError(
                    f"the agent needed more than max_tool_rounds={self.rt.config.max_tool_rounds} client-tool rounds"
                )
        except BaseException:
            spans.close_all("the turn failed")
            raise
        yield Completed(translator.output_items, None)

    @staticmethod
    def _trace(spans: StepSpans, event: dict[str, Any], client_tools: set[str]) -> None:
        """An LLM span per inference step, a TOOL span per server-side tool step."""
        kind, step_id, step_type = event.get("event_type"), event.get("step_id", ""), event.get("step_type")
        if kind == "step_start" and step_type == "inference":
            spans.start(step_id, "inference", LLM)
        elif kind == "step_complete" and step_type == "inference":
            spans.end(step_id, (event.get("step_details") or {}).get("model_response"))
        elif kind == "step_complete" and step_type == "tool_execution":
            details = event.get("step_details") or {}
            names = [str(c.get("tool_name")) for c in details.get("tool_calls") or []]
            if names and not set(names) <= client_tools:  # client tools have their own spans
                spans.span(
                    step_id, ", ".join(names), TOOL, details.get("tool_calls"), details.get("tool_responses")
                )

    async def aclose(self) -> None:
        if self._created and self.agent_id:
            try:
                await self.rt.http.delete(f"{self.prefix}/agents/{self.agent_id}")
            except Exception:
                _logger.debug("could not delete agent %s", self.agent_id, exc_info=True)
