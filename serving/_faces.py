"""The two faces of the server: MLflow's ``/invocations`` and OpenAI's ``/responses``. Pure.

A face turns a parsed JSON body into a :class:`Call` (the agent request, whether to stream,
and an encoder), and frames the encoder's events as server-sent events:

* ``/invocations`` speaks MLflow's format, exactly as ``mlflow models serve`` does: the
  ResponsesAgent response, or ``data:`` lines of its stream events and ``data: [DONE]``;
  server-run tools are ``function_call`` + ``function_call_output`` items.
* ``/responses`` speaks the OpenAI Responses API (:mod:`serving._openai_stream`), with
  ``event:`` and ``data:`` lines as api.openai.com sends them, and no ``[DONE]``.

With the request header ``x-mlflow-return-trace-id: true`` the MLflow trace id comes back as
MLflow's AgentServer returns it: ``metadata.trace_id`` in the body, and when streaming a final
``{"trace_id": …}`` event (``/invocations``) or ``response.completed``'s ``metadata``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from mlflow.types.responses import ResponsesAgentRequest

from agentship.errors import InvalidRequestError
from agentship.events import AgentEvent, reduce, to_mlflow
from agentship.inputs import parse_request
from serving._errors import HttpError, invalid
from serving._openai_request import (
    ResponsesBody,
    agent_items,
    agent_request,
    conversation_id,
    input_items,
    parse_body,
    references,
)
from serving._openai_stream import ResponseEncoder
from serving._stored import Prepared, Recorder, StoredResponses

RETURN_TRACE_HEADER = "x-mlflow-return-trace-id"


class Encoder(Protocol):
    """Encodes one run's events for one face."""

    def start(self) -> list[dict[str, Any]]: ...

    def feed(self, event: AgentEvent) -> list[dict[str, Any]]: ...

    def finish(self, trace_id: str | None) -> list[dict[str, Any]]:
        """The events that end a successful stream."""
        ...

    def fail(self, error: HttpError) -> list[dict[str, Any]]:
        """The events that end a failed stream."""
        ...

    def body(self, trace_id: str | None) -> dict[str, Any]:
        """The non-streaming answer, once every event was fed."""
        ...

    def replace_end(self, error: HttpError) -> list[dict[str, Any]]:
        """A failure to send instead of the end :meth:`finish` returned (not sent yet)."""
        ...


@dataclass(frozen=True)
class RequestInfo:
    """What a face reads off the request besides its body."""

    return_trace: bool = False
    user: str | None = None
    authenticated: bool = False
    """``user`` is the identity the server authenticated (then it overrides the body's user)."""


@dataclass
class Call:
    request: ResponsesAgentRequest
    stream: bool
    encoder: Encoder
    response_id: str | None = None
    recorder: Recorder | None = None
    """Stores the response when it ends (``store: true`` on ``/responses``)."""
    background: bool = False


class Face(Protocol):
    name: str
    end_marker: str | None

    async def parse(self, body: dict[str, Any], info: RequestInfo) -> Call: ...

    def frame(self, event: dict[str, Any]) -> dict[str, str]: ...


def _agent_request(data: dict[str, Any]) -> ResponsesAgentRequest:
    try:
        return parse_request(data)
    except InvalidRequestError as exc:
        raise invalid(exc.message) from exc


# -- /invocations ---------------------------------------------------------------------------------
@dataclass
class InvocationsEncoder:
    return_trace: bool = False
    events: list[AgentEvent] = field(default_factory=list)

    def start(self) -> list[dict[str, Any]]:
        return []

    def feed(self, event: AgentEvent) -> list[dict[str, Any]]:
        self.events.append(event)
        return to_mlflow(event)

    def finish(self, trace_id: str | None) -> list[dict[str, Any]]:
        return [{"trace_id": trace_id}] if self.return_trace and trace_id else []

    def fail(self, error: HttpError) -> list[dict[str, Any]]:
        return [{"type": "error", "code": error.code or error.type, "message": error.message, "param": None}]

    def replace_end(self, error: HttpError) -> list[dict[str, Any]]:
        return self.fail(error)

    def body(self, trace_id: str | None) -> dict[str, Any]:
        out = reduce(self.events).model_dump(exclude_none=True)
        if self.return_trace and trace_id:
            out["metadata"] = {**(out.get("metadata") or {}), "trace_id": trace_id}
        return out


class InvocationsFace:
    name = "invocations"
    end_marker: str | None = "[DONE]"

    async def parse(self, body: dict[str, Any], info: RequestInfo) -> Call:
        stream = body.get("stream", False)
        if not isinstance(stream, bool):
            raise invalid("'stream' must be true or false", param="stream")
        data = {k: v for k, v in body.items() if k != "stream"}
        context = data.get("context")
        if info.authenticated and info.user and isinstance(context, dict | None):
            data["context"] = {**(context or {}), "user_id": info.user}  # who authenticated
        request = _agent_request(data)
        return Call(request, stream, InvocationsEncoder(info.return_trace))

    def frame(self, event: dict[str, Any]) -> dict[str, str]:
        return {"data": json.dumps(event)}


# -- /responses -----------------------------------------------------------------------------------
_ECHOED = (
    "instructions",
    "temperature",
    "top_p",
    "max_output_tokens",
    "tool_choice",
    "parallel_tool_calls",
    "previous_response_id",
    "store",
    "background",
    "tools",
    "reasoning",
    "text",
)


@dataclass
class ResponsesEncoder:
    encoder: ResponseEncoder
    return_trace: bool = False
    recorder: Recorder | None = None
    final: dict[str, Any] | None = None
    """The response object once the stream ended (what is stored)."""

    def start(self) -> list[dict[str, Any]]:
        return self.encoder.start()

    def feed(self, event: AgentEvent) -> list[dict[str, Any]]:
        if self.recorder is not None:
            self.recorder.feed(event)
        return self.encoder.feed(event)

    def _trace(self, trace_id: str | None) -> dict[str, str] | None:
        return {"trace_id": trace_id} if self.return_trace and trace_id else None

    def finish(self, trace_id: str | None) -> list[dict[str, Any]]:
        events = self.encoder.completed(self._trace(trace_id))
        self.final = events[-1]["response"]
        return events

    def fail(self, error: HttpError) -> list[dict[str, Any]]:
        events = self.encoder.failed(error.code or error.type, error.message)
        self.final = events[-1]["response"]
        return events

    def replace_end(self, error: HttpError) -> list[dict[str, Any]]:
        events = self.encoder.replace_end(error.code or error.type, error.message)
        self.final = events[-1]["response"]
        return events

    def body(self, trace_id: str | None) -> dict[str, Any]:
        return dict(self.finish(trace_id)[-1]["response"])


def echo_fields(parsed: ResponsesBody) -> dict[str, Any]:
    """The request fields a response object repeats."""
    echo: dict[str, Any] = {k: getattr(parsed, k) for k in _ECHOED if getattr(parsed, k, None) is not None}
    echo["metadata"] = dict(parsed.metadata or {})
    if (conversation := conversation_id(parsed)) is not None:
        echo["conversation"] = {"id": conversation}
    return echo


def user_of(parsed: ResponsesBody, info: RequestInfo) -> str:
    """Who the request acts for: the gateway's header, else the body's ``user``, else anonymous."""
    return info.user or parsed.user or ""


@dataclass
class ResponsesFace:
    default_model: str
    stored: StoredResponses | None = None
    server_label: str = "agent"
    name: str = "responses"
    end_marker: str | None = None

    async def _prepare(self, parsed: ResponsesBody, user: str) -> Prepared:
        if self.stored is not None:
            return await self.stored.prepare(parsed, user)
        items = input_items(parsed)
        if parsed.previous_response_id or parsed.background or references(items):
            raise invalid(
                "stored responses are switched off on this server (AGENTSHIP_STATE_URL=none): send the "
                "whole conversation in 'input', without previous_response_id, item references or background"
            )
        return Prepared(agent_items(items), items)

    async def parse(self, body: dict[str, Any], info: RequestInfo) -> Call:
        parsed = parse_body(body)
        user = user_of(parsed, info)
        prepared = await self._prepare(parsed, user)
        request = _agent_request(agent_request(parsed, prepared.history, user or None))
        client_tools = frozenset(
            str(t.get("name")) for t in parsed.tools or [] if t.get("type") == "function"
        )
        encoder = ResponseEncoder(
            parsed.model or self.default_model, self.server_label, client_tools, echo=echo_fields(parsed)
        )
        recorder = None
        if self.stored is not None and parsed.store:
            recorder = self.stored.recorder(parsed, user, prepared, encoder.response_id)
        face_encoder = ResponsesEncoder(encoder, info.return_trace, recorder)
        return Call(request, parsed.stream, face_encoder, encoder.response_id, recorder, parsed.background)

    def frame(self, event: dict[str, Any]) -> dict[str, str]:
        return {"event": str(event["type"]), "data": json.dumps(event)}
