"""What every protocol gives the endpoint: a :class:`Turn`, one agent request and its encoding.

The endpoint (:mod:`agentship.server.http.endpoint`) reads and admits a request, asks the route's
:class:`AgentProtocol` to open a turn from its body, runs the turn's agent request, and sends what
the turn makes of the run's events: a stream, or one body. Each protocol (MLflow's
``/invocations``, OpenAI's ``/responses``) is one implementation of these two small interfaces.
"""

from __future__ import annotations

from typing import Any, Protocol

from mlflow.types.responses import ResponsesAgentRequest
from starlette.requests import Request
from starlette.responses import Response

from agentship.events import AgentEvent
from agentship.server.core.errors import HttpError

type Event = dict[str, Any]
"""One event of a protocol's stream, JSON-ready."""


class Turn(Protocol):
    @property
    def request(self) -> ResponsesAgentRequest:
        """What the agent runs (its user and conversation already decided by the identity rule)."""
        ...

    @property
    def stream(self) -> bool:
        """Whether the client reads a stream (else one body)."""
        ...

    @property
    def response_id(self) -> str | None:
        """The response's id, which the run's trace carries as its client request id."""
        ...

    @property
    def end_marker(self) -> str | None:
        """What the stream ends with after its last event (MLflow's ``[DONE]``), if anything."""
        ...

    def opening(self) -> list[Event]:
        """The events sent before the run's first."""
        ...

    def feed(self, event: AgentEvent) -> list[Event]:
        """The events one of the agent's events makes."""
        ...

    async def finish(self, trace_id: str | None) -> list[Event]:
        """The run succeeded: store what must be kept, then the events that end the stream."""
        ...

    async def fail(self, error: HttpError) -> list[Event]:
        """The run failed: keep that if the protocol keeps responses, then the events that end the
        stream."""
        ...

    @property
    def answered(self) -> bool:
        """Whether :meth:`fail` made the failure a whole answer (a turn a newer message stopped,
        on ``/responses``: a response whose status says so), which :meth:`result` returns."""
        ...

    def result(self) -> dict[str, Any]:
        """The whole answer once :meth:`finish` returned; raises :class:`HttpError` if the answer
        could not be kept (the client must not continue from it)."""
        ...

    def frame(self, event: Event) -> dict[str, str]:
        """A stream event as a server-sent event (``event``/``data`` fields)."""
        ...


class AgentProtocol(Protocol):
    """Opens turns from request bodies, for one route."""

    def claimed_user(self, body: dict[str, Any]) -> str | None:
        """The user the body claims to act for (the identity rule's third step), if any."""
        ...

    async def open(self, body: dict[str, Any], request: Request) -> Turn | Response:
        """The turn to run, or the answer itself when the protocol answers at once (a background
        response is submitted to run on, not run for this request)."""
        ...
