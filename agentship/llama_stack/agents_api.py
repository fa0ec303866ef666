"""Llama Stack's Agents API (``/v1/agents`` in 0.2.x, ``/v1alpha/agents`` in 0.3.x).

One agent per loaded model (given by ``LLAMASTACK_AGENT_ID`` or created at load), one session
per ``conversation_id`` (or a throwaway session per request), streamed turns, and client tools
answered through turn resume.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

from mlflow.types.responses import ResponsesAgentRequest

from agentship.errors import AgentRunError, BackendStatusError, ConfigError, InvalidRequestError
from agentship.events import AgentEvent, Completed
from agentship.inputs import input_dicts
from agentship.llama_stack.conversations import ConversationState
from agentship.llama_stack.convert import AgentTurnTranslator, agent_turn_messages, split_new_messages
from agentship.llama_stack.runtime import Runtime, Turn, refuse_unsupported, run_context
from agentship.llama_stack.tools import agents_tool_def, run_tool
from agentship.openai_agents.tools import AgentRunContext, request_output_type
from agentship.state import StateStore
from agentship.tracing import GUARDRAIL, LLM, TOOL, StepSpans, tool_arguments

_logger = logging.getLogger(__name__)


class AgentsApiMode:
    def __init__(self, runtime: Runtime, prefix: str, store: StateStore | None = None) -> None:
        """With a ``store``, every replica shares one agent per config (its id is kept there), so
        any of them continues any conversation's session; it is then left on the server at close."""
        self.rt = runtime
        self.prefix = prefix  # "/v1" or "/v1alpha"
        self.name = f"agents@{prefix}"
        self.agent_id: str | None = None
        self._created = False
        self._store = store

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
            "toolgroups": [
                *(g.wire() for g in config.toolgroup_list()),
                *(f"mcp::{s.name}" for s in config.mcp_servers),
            ],
            "client_tools": [agents_tool_def(t, self.prefix) for t in self.rt.tools.values()],
            "max_infer_iters": config.max_infer_iters,
            "input_shields": config.input_shields,
            "output_shields": config.output_shields,
            "sampling_params": sampling_params,
            "enable_session_persistence": True,
        }

    async def start(self) -> None:
        await self._check_shields()
        await self._register_mcp()
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
        if self._store is not None:
            self.agent_id = await self._shared_agent(self._store)
            return
        created = await self.rt.http.post(f"{self.prefix}/agents", {"agent_config": self.agent_config()})
        self.agent_id = str(created["agent_id"])
        self._created = True
        _logger.info("created Llama Stack agent %s", self.agent_id)

    async def _shared_agent(self, store: StateStore) -> str:
        """The agent every replica of this config uses: found in the store, or created once."""
        config = json.dumps(self.agent_config(), sort_keys=True, default=str)
        digest = hashlib.sha256(f"{self.rt.http.base_url}{self.prefix}{config}".encode()).hexdigest()
        key, agents = f"llama-stack-agent:{digest}", store.conversations("llama-stack-agent")
        async with store.locks.hold(key):  # replicas that start together create one agent
            known = await agents.get(key)
            if known and known.get("server_id"):
                try:
                    await self.rt.http.get(f"{self.prefix}/agents/{known['server_id']}")
                    _logger.info("using the shared Llama Stack agent %s", known["server_id"])
                    return str(known["server_id"])
                except BackendStatusError as exc:
                    if exc.status not in (400, 404):
                        raise  # else the server lost it: make another
            created = await self.rt.http.post(f"{self.prefix}/agents", {"agent_config": self.agent_config()})
            await agents.put(key, {"server_id": str(created["agent_id"])})
            _logger.info("created the shared Llama Stack agent %s", created["agent_id"])
            return str(created["agent_id"])

    async def _register_mcp(self) -> None:
        """Each MCP server as a tool group ``mcp::NAME`` on the server, which calls it itself."""
        for server in self.rt.config.mcp_servers:
            body = {
                "toolgroup_id": f"mcp::{server.name}",
                "provider_id": "model-context-protocol",
                "mcp_endpoint": {"uri": self.rt.mcp_url(server)},
            }
            await self.rt.http.post("/v1/toolgroups", body)

    async def _check_shields(self) -> None:
        config = self.rt.config
        for shield in dict.fromkeys([*config.input_shields, *config.output_shields]):
            try:
                await self.rt.http.get(f"/v1/shields/{shield}")
            except BackendStatusError as exc:
                if exc.status not in (400, 404):
                    raise
                raise ConfigError(f"shield {shield!r} is not registered on {self.rt.http.base_url}") from exc

    async def _new_session(self, name: str) -> str:
        created = await self.rt.http.post(
            f"{self.prefix}/agents/{self.agent_id}/session", {"session_name": name}
        )
        return str(created["session_id"])

    async def release(self, state: ConversationState) -> None:
        if state.server_id:
            await self._delete_session(state.server_id)

    async def _delete_session(self, session_id: str) -> None:
        try:
            await self.rt.http.delete(f"{self.prefix}/agents/{self.agent_id}/session/{session_id}")
        except Exception:
            _logger.debug("could not delete session %s", session_id, exc_info=True)

    async def stream(self, request: ResponsesAgentRequest, turn: Turn) -> AsyncIterator[AgentEvent]:
        refuse_unsupported(request, self.name, settings=False)
        if request_output_type(request.text) is not None:
            raise InvalidRequestError(f"'text.format' is not supported on the Agents API (mode {self.name})")
        earlier, new = split_new_messages(input_dicts(request))
        instructions = self.rt.config.instructions
        if turn.before is not None and turn.before.server_id:
            session_id = turn.before.server_id  # the session holds the earlier turns
            messages = agent_turn_messages([], new, instructions)
        else:
            if turn.before is not None and turn.before.history:  # after a failed turn: a fresh session
                earlier = list(turn.before.history)
            messages = agent_turn_messages(earlier, new, instructions)  # raises before a session exists
            session_id = await self._new_session(
                f"{'conversation' if turn.keep else 'request'}-{uuid.uuid4().hex[:12]}"
            )
            turn.created = ConversationState(server_id=session_id)
        turn.touched = True
        try:
            async for event in self._turn(session_id, messages, run_context(request)):
                if isinstance(event, Completed) and turn.keep:
                    # the history too: a failed turn starts a fresh session from it
                    said = [*(new if turn.continues() else [*earlier, *new]), *event.output]
                    turn.after = ConversationState(server_id=session_id, history=turn.history(said))
                yield event
        finally:
            if not turn.keep:
                await self._delete_session(session_id)

    async def _turn(
        self, session_id: str, messages: list[dict[str, Any]], context: AgentRunContext
    ) -> AsyncIterator[AgentEvent]:
        translator = AgentTurnTranslator(set(self.rt.tools))
        spans = StepSpans(self.rt.trace_limit)
        given: list[Any] = list(messages)  # what this turn's next inference step is given
        base = f"{self.prefix}/agents/{self.agent_id}/session/{session_id}/turn"
        path, body = base, {"messages": messages, "stream": True}
        try:
            for _ in range(self.rt.config.max_tool_rounds + 1):
                async for payload in self.rt.http.stream(path, body):
                    event = (payload.get("event") or {}).get("payload") or {}
                    self._trace(spans, event, set(self.rt.tools), given)
                    for out in translator.feed(event):
                        yield out
                if not translator.awaiting_input:
                    break
                responses = []
                for call in translator.pending_calls:
                    output = await self._run_tool(spans, context, call)
                    responses.append(
                        {"call_id": call["call_id"], "tool_name": call["name"], "content": output}
                    )
                    done = translator.tool_result(call["call_id"], output)
                    if done:
                        yield done
                given.extend(responses)
                path, body = (
                    f"{base}/{translator.turn_id}/resume",
                    {"tool_responses": responses, "stream": True},
                )
                translator.awaiting_input = False
            else:
                raise AgentRunError(self.rt.rounds_exceeded())
        except BaseException:
            spans.close_all("the turn failed")
            raise
        custom = {**context.custom_outputs}
        if translator.violation is not None:
            custom["guardrail_triggered"] = self._tripped(translator.violation)
        yield Completed(translator.output_items, None, custom)

    def _tripped(self, violation: dict[str, Any]) -> dict[str, Any]:
        config = self.rt.config
        shields = config.input_shields if violation["stage"] == "input" else config.output_shields
        return {"shields": shields, **violation}

    async def _run_tool(self, spans: StepSpans, context: AgentRunContext, call: dict[str, str]) -> str:
        call_id, name = call["call_id"], call["name"]
        arguments = tool_arguments(call["arguments"])
        spans.start(f"tool:{call_id}", name, TOOL, arguments, call_id=call_id)
        output = await run_tool(self.rt.tools, context, call_id, name, call["arguments"])
        spans.end(f"tool:{call_id}", output, error=output if output.startswith("Error:") else None)
        return output

    def _trace(
        self, spans: StepSpans, event: dict[str, Any], client_tools: set[str], given: list[Any]
    ) -> None:
        """An LLM span per inference step (given the turn's messages and the steps before it in
        the turn: the session on the server holds the earlier turns), a TOOL span per
        server-side tool step."""
        kind, step_id, step_type = event.get("event_type"), event.get("step_id", ""), event.get("step_type")
        details = event.get("step_details") or {}
        if kind == "step_start" and step_type == "inference":
            inputs = {"messages": list(given)}
            spans.start(step_id, "inference", LLM, inputs, model=self.rt.model, parameters=self.rt.sampling())
        elif kind == "step_complete" and step_type == "inference":
            response = details.get("model_response")
            spans.end(step_id, response)
            if response is not None:
                given.append(response)
        elif kind == "step_complete" and step_type == "shield_call":
            violation = details.get("violation")
            spans.span(step_id, "shield", GUARDRAIL, None, violation or "no violation")
        elif kind == "step_complete" and step_type == "tool_execution":
            names = [str(c.get("tool_name")) for c in details.get("tool_calls") or []]
            if names and not set(names) <= client_tools:  # client tools: their own spans and inputs
                given.extend(details.get("tool_responses") or [])
                spans.span(
                    step_id, ", ".join(names), TOOL, details.get("tool_calls"), details.get("tool_responses")
                )

    async def aclose(self) -> None:
        if self._created and self.agent_id:
            try:
                await self.rt.http.delete(f"{self.prefix}/agents/{self.agent_id}")
            except Exception:
                _logger.debug("could not delete agent %s", self.agent_id, exc_info=True)
