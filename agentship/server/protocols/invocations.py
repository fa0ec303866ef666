"""MLflow's ``/invocations``, exactly as ``mlflow models serve`` speaks it. Pure, but for reading
the request's headers.

The body is a ResponsesAgent request; the answer is the ResponsesAgent response, or ``data:``
lines of its stream events and ``data: [DONE]``. Server-run tools are ``function_call`` and
``function_call_output`` items. With the request header ``x-mlflow-return-trace-id: true`` the
MLflow trace id comes back as MLflow's AgentServer returns it: ``metadata.trace_id`` in the
body, and a final ``{"trace_id": …}`` event when streaming.

The request's user is decided by the identity rule (:mod:`agentship.server.http.identity`):
``context.user_id`` is only the request's claim, which a key or a gateway's header overrides.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from mlflow.types.responses import ResponsesAgentRequest
from starlette.requests import Request

from agentship.errors import InvalidRequestError
from agentship.events import AgentEvent, reduce, to_mlflow
from agentship.inputs import parse_request
from agentship.server.core.errors import HttpError, invalid
from agentship.server.http.identity import checked_id, identify
from agentship.server.protocols.turn import Event

RETURN_TRACE_HEADER = "x-mlflow-return-trace-id"


class InvocationsBody(ResponsesAgentRequest):
    """A ``POST /invocations`` body: a ResponsesAgent request, and whether to stream it."""

    stream: bool = False


def returns_trace(request: Request) -> bool:
    return request.headers.get(RETURN_TRACE_HEADER, "").lower() == "true"


def agent_request(data: dict[str, Any]) -> ResponsesAgentRequest:
    try:
        return parse_request(data)
    except InvalidRequestError as exc:
        raise invalid(exc.message) from exc


def _claimed(context: Any) -> str | None:
    user = context.get("user_id") if isinstance(context, dict) else None
    return user if isinstance(user, str) else None


@dataclass
class InvocationsTurn:
    request: ResponsesAgentRequest
    stream: bool
    return_trace: bool = False
    response_id: str | None = None
    end_marker: str | None = "[DONE]"
    _events: list[AgentEvent] = field(default_factory=list)
    _trace_id: str | None = None
    answered: bool = False

    def opening(self) -> list[Event]:
        return []

    def feed(self, event: AgentEvent) -> list[Event]:
        self._events.append(event)
        return to_mlflow(event)

    async def finish(self, trace_id: str | None) -> list[Event]:
        self._trace_id = trace_id
        return [{"trace_id": trace_id}] if self.return_trace and trace_id else []

    async def fail(self, error: HttpError) -> list[Event]:
        return [{"type": "error", "code": error.code or error.type, "message": error.message, "param": None}]

    def result(self) -> dict[str, Any]:
        out = reduce(self._events).model_dump(exclude_none=True)
        if self.return_trace and self._trace_id:
            out["metadata"] = {**(out.get("metadata") or {}), "trace_id": self._trace_id}
        return out

    def frame(self, event: Event) -> dict[str, str]:
        return {"data": json.dumps(event)}


class InvocationsProtocol:
    def claimed_user(self, body: dict[str, Any]) -> str | None:
        return _claimed(body.get("context"))

    async def open(self, body: dict[str, Any], request: Request) -> InvocationsTurn:
        stream = body.get("stream", False)
        if not isinstance(stream, bool):
            raise invalid("'stream' must be true or false", param="stream")
        data = {k: v for k, v in body.items() if k != "stream"}
        context = data.get("context")
        if isinstance(context, dict):
            conversation = context.get("conversation_id")
            if isinstance(conversation, str):
                checked_id(conversation, "'context.conversation_id'", param="context")
        identity = identify(request.scope, _claimed(context))
        if isinstance(context, dict | None):
            context = {k: v for k, v in (context or {}).items() if k != "user_id"}
            if identity.user:
                context["user_id"] = identity.user
            data["context"] = context or None
        return InvocationsTurn(agent_request(data), stream, returns_trace(request))
