"""One ``/responses`` request as a :class:`~agentship.server.protocols.turn.Turn`. Pure, but for
the store it writes through (:class:`~.stored.Recorder`).

A turn holds the agent request (its input resolved against the store, its user decided by the
identity rule), the :class:`~.live.LiveResponse` that encodes the run on the one grammar, and,
when the response is stored, the recorder that keeps it: the response is stored *before* the
client sees its end, so the next turn can continue from it on any replica. A response that
cannot be stored ends ``failed`` instead of ``completed``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

from mlflow.types.responses import ResponsesAgentRequest
from openai.types.responses import Response, ResponseError
from openai.types.responses.response import Conversation

from agentship.errors import StateError
from agentship.events import AgentEvent
from agentship.server.core.errors import HttpError, classify
from agentship.server.protocols.invocations import agent_request as checked_agent_request
from agentship.server.protocols.responses import items
from agentship.server.protocols.responses.events import Event, Status, frame, wire
from agentship.server.protocols.responses.live import LiveResponse
from agentship.server.protocols.responses.request import Checked, conversation_id
from agentship.server.protocols.responses.stored import Recorder

_logger = logging.getLogger("agentship.server")

_SETTINGS = ("temperature", "top_p", "max_output_tokens", "parallel_tool_calls", "metadata")
"""Per-request settings the agent receives as the client sent them."""


def spec_code(error: HttpError) -> str:
    """An error as one of the codes the spec allows in a response object (the specific code is
    the HTTP answer's, and the log's)."""
    if error.status == 429 or error.code in ("upstream_rate_limited", "server_busy"):
        return "rate_limit_exceeded"
    if error.status == 400:
        return "invalid_prompt"
    return "server_error"


def response_error(error: HttpError) -> ResponseError:
    """An error as a response object carries it: the spec's code, and the specific one (the HTTP
    answer's ``code``: ``upstream_timeout``, ``input_guardrail``, …) as its original ``type``."""
    return ResponseError(
        code=spec_code(error),  # type: ignore[arg-type]
        message=error.message,
        type=error.code or error.type,
        param=error.param,
    )


def cancelled_error() -> ResponseError:
    return ResponseError(code="server_error", message="the response was cancelled", type="cancelled")


def new_response(checked: Checked, model: str, response_id: str | None = None) -> Response:
    """The response object a checked request makes: its id and the request's echoed fields."""
    body = checked.body
    conversation = conversation_id(body)
    response = Response(
        id=response_id or f"resp_{uuid4().hex}",
        object="response",
        created_at=int(time.time()),
        model=body.model or model,
        output=[],
        error=None,
        incomplete_details=None,
        instructions=body.instructions,
        metadata=dict(body.metadata or {}),
        parallel_tool_calls=True if body.parallel_tool_calls is None else body.parallel_tool_calls,
        temperature=body.temperature,
        top_p=body.top_p,
        tool_choice=checked.tool_choice or "auto",
        tools=checked.tools,
        usage=None,
        background=body.background,
        store=body.store,
    )
    optional: dict[str, Any] = {
        "max_output_tokens": body.max_output_tokens,
        "previous_response_id": body.previous_response_id,
        "reasoning": checked.reasoning,
        "text": checked.text,
        "conversation": Conversation(id=conversation) if conversation is not None else None,
    }
    return response.model_copy(update={k: v for k, v in optional.items() if v is not None})


def agent_input(checked: Checked, history: list[dict[str, Any]], user: str) -> ResponsesAgentRequest:
    """The agent request of a checked body over ``history`` (the agent's whole input)."""
    body = checked.body
    if body.instructions:
        history = [{"role": "system", "content": body.instructions}, *history]
    data: dict[str, Any] = {"input": history}
    context = {k: v for k, v in {"conversation_id": conversation_id(body), "user_id": user}.items() if v}
    if context:
        data["context"] = context
    if body.custom_inputs:
        data["custom_inputs"] = body.custom_inputs
    data.update({name: getattr(body, name) for name in _SETTINGS if getattr(body, name) is not None})
    if checked.tools:
        data["tools"] = [wire(tool) for tool in checked.tools]
    for name in ("tool_choice", "reasoning", "text"):
        value = getattr(checked, name)
        if value is not None:
            data[name] = value if isinstance(value, str) else wire(value)
    return checked_agent_request(data)


def client_tools(checked: Checked) -> frozenset[str]:
    """The tools the client runs itself: its own function tools."""
    return frozenset(
        str(getattr(t, "name", "")) for t in checked.tools if getattr(t, "type", "") == "function"
    )


@dataclass
class ResponsesTurn:
    request: ResponsesAgentRequest
    live: LiveResponse
    stream: bool = False
    background: bool = False
    recorder: Recorder | None = None
    return_trace: bool = False
    end_marker: str | None = None
    final: Response | None = None
    answered: bool = False
    _unkept: HttpError | None = None

    @property
    def response_id(self) -> str:
        return self.live.stream.response.id

    def opening(self) -> list[Event]:
        return self.live.stream.opened(background=self.background)

    def feed(self, event: AgentEvent) -> list[Event]:
        if self.recorder is not None:
            self.recorder.feed(event)
        return self.live.feed(event)

    async def finish(self, trace_id: str | None) -> list[Event]:
        metadata = self.live.stream.response.metadata or {}
        if self.return_trace and trace_id:
            metadata = {**metadata, "trace_id": trace_id}
        return await self._end("completed", usage=items.usage(self.live.usage), metadata=metadata)

    async def fail(self, error: HttpError) -> list[Event]:
        """A failed run ends ``failed``; one a newer message of its conversation stopped ends
        ``incomplete`` (interrupted: its output so far, kept in the conversation) or
        ``cancelled`` (rolled back), as a whole answer."""
        if error.code == "turn_interrupted":
            self.answered = True
            return await self._end("incomplete", usage=items.usage(self.live.usage))
        if error.code == "turn_rolled_back":
            self.answered = True
            return await self._end("cancelled", error=response_error(error))
        return await self._end("failed", error=response_error(error))

    async def cancelled(self) -> list[Event]:
        return await self._end("cancelled", error=cancelled_error())

    async def _end(self, status: Status, **fields: Any) -> list[Event]:
        stream = self.live.stream
        closing, final = stream.finish(status, **fields)
        if self.recorder is not None:
            try:
                await self.recorder.save(final)
            except StateError as exc:
                self._unkept = classify(exc)
                if status == "completed":  # it cannot be continued from: say so, not "completed"
                    final = stream.snapshot("failed", error=response_error(self._unkept))
                else:
                    _logger.warning("could not store the %s response %s", status, final.id)
        self.final = final
        return [*closing, stream.ended(final)]

    def result(self) -> dict[str, Any]:
        if self._unkept is not None:
            raise self._unkept
        assert self.final is not None, "result() before finish()"
        return wire(self.final)

    def frame(self, event: Event) -> dict[str, str]:
        return frame(event)
