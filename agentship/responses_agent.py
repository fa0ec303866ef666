"""The shared :class:`mlflow.pyfunc.ResponsesAgent` base of the package's agents.

A concrete agent only says how to build its backend from the model config. The base class
then gives it, once per loaded model, an :class:`~agentship.bridge.AsyncBridge`, and:

* ``astream(request)``: the async core, an async iterator of Responses stream events;
* ``predict_stream(request)``: the same events, bridged to a sync generator as they arrive;
* ``predict(request)``: the stream drained and reduced (one code path for both).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Mapping
from typing import Any, Protocol

from mlflow.pyfunc import PythonModelContext, ResponsesAgent
from mlflow.types.responses import (
    ResponsesAgentRequest,
    ResponsesAgentResponse,
    ResponsesAgentStreamEvent,
    create_text_output_item,
)

from agentship.bridge import AsyncBridge
from agentship.errors import AgentError
from agentship.events import AgentEvent, Completed, ItemDone, reduce, to_mlflow
from agentship.inputs import parse_request
from agentship.log_time import in_offline_validation
from agentship.tracing import tag_conversation

_logger = logging.getLogger(__name__)


class AgentBackend(Protocol):
    """What each backend module implements: one async stream of Responses events."""

    async def start(self) -> None:
        """Connect, detect, create server-side resources: runs once, at load, on the loop."""
        ...

    def stream(self, request: ResponsesAgentRequest, *, deltas: bool = True) -> AsyncIterator[AgentEvent]:
        """The run's events. ``deltas=False``: nobody reads text as it comes (a non-streaming
        client), so a backend may make its model calls without streaming, which costs far less
        CPU; it still yields every item and the ``Completed`` event."""
        ...

    async def aclose(self) -> None: ...


class _OfflineValidationBackend:
    """Answers MLflow's log-time validation call without touching any backend."""

    def __init__(self, name: str) -> None:
        self._name = name

    async def stream(
        self, request: ResponsesAgentRequest, *, deltas: bool = True
    ) -> AsyncIterator[AgentEvent]:
        item = create_text_output_item(
            f"{self._name} was logged without calling its backend.", "msg_log_time"
        )
        yield ItemDone(item)
        yield Completed([item], None)

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


def _validated(method: Callable[..., Any]) -> Callable[..., Any]:
    """Check the request before MLflow's own wrapper sees it, so bad input is a clear 400."""

    @functools.wraps(method)
    def wrapper(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        return method(self, parse_request(request), *args, **kwargs)

    return wrapper


class AgentshipResponsesAgent(ResponsesAgent):
    """Base class: subclasses implement :meth:`build_backend`."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in ("predict", "predict_stream"):
            if name in cls.__dict__:
                setattr(cls, name, _validated(cls.__dict__[name]))

    def __init__(self) -> None:
        self._bridge: AsyncBridge | None = None
        self._backend: AgentBackend | None = None

    # -- to implement ------------------------------------------------------------------
    def build_backend(self, model_config: Mapping[str, Any]) -> AgentBackend:
        raise NotImplementedError

    # -- lifecycle ---------------------------------------------------------------------
    def load_context(self, context: PythonModelContext) -> None:
        config: Mapping[str, Any] = dict(context.model_config or {})
        if self._bridge is None:
            self._bridge = AsyncBridge(name=f"{type(self).__name__}-loop")
        if in_offline_validation():
            self._backend = _OfflineValidationBackend(str(config.get("name", type(self).__name__)))
            return
        backend = self.build_backend(config)
        self._bridge.call(backend.start)
        self._backend = backend

    def close(self) -> None:
        """Release the backend's connections and stop the loop."""
        if self._bridge is not None:
            if self._backend is not None:
                backend = self._backend
                self._bridge.call(lambda: backend.aclose())
            self._bridge.close()
            self._bridge = None

    # -- the async core ----------------------------------------------------------------
    async def astream(
        self, request: ResponsesAgentRequest | dict[str, Any], *, deltas: bool = True
    ) -> AsyncIterator[AgentEvent]:
        """The run's :data:`~agentship.events.AgentEvent` stream for ``request``, as it happens.

        ``deltas=False`` when nobody reads the text as it comes: the backend may then call its
        model without streaming (see :meth:`AgentBackend.stream`)."""
        if self._backend is None:
            raise AgentError(f"{type(self).__name__} is not loaded: call load_context() first")
        parsed = parse_request(request)
        if parsed.context is not None:  # the trace's session and user (MLflow's session view)
            tag_conversation(parsed.context.conversation_id, parsed.context.user_id)
        async for event in self._backend.stream(parsed, deltas=deltas):
            yield event

    def aevents(
        self, request: ResponsesAgentRequest | dict[str, Any], *, deltas: bool = True
    ) -> AsyncGenerator[AgentEvent, None]:
        """:meth:`astream`, usable from any event loop (an async server's, say).

        The work runs on the model's own loop, where its clients live; the caller's loop only
        awaits the events. Cancelling the caller cancels the work.
        """
        if self._bridge is None:
            raise AgentError(f"{type(self).__name__} is not loaded: call load_context() first")
        return self._bridge.aiterate(lambda: self.astream(request, deltas=deltas))

    def health(self) -> dict[str, Any]:
        """The backend's readiness detail (its MCP servers, say); {} when it has none."""
        health = getattr(self._backend, "health", None)
        return dict(health()) if callable(health) else {}

    def sessions_in_store(self) -> bool:
        """Whether the backend keeps its conversations as SDK sessions in the state store (the
        OpenAI Agents SDK's, with the store on): the Conversations API then serves them."""
        return bool(getattr(self._backend, "sessions_in_store", False))

    async def atask_names(self) -> list[str]:
        """The tasks running on the model's loop, by name (for leak checks)."""
        return [] if self._bridge is None else await self._bridge.atask_names()

    def _events(self, request: ResponsesAgentRequest, deltas: bool) -> Generator[AgentEvent, None, None]:
        if self._bridge is None:
            raise AgentError(f"{type(self).__name__} is not loaded: call load_context() first")
        yield from self._bridge.iterate(lambda: self.astream(request, deltas=deltas))

    # -- MLflow's sync interface -------------------------------------------------------
    def predict(self, request: ResponsesAgentRequest) -> ResponsesAgentResponse:  # type: ignore[override]
        return reduce(self._events(request, deltas=False))

    def predict_stream(  # type: ignore[override]
        self, request: ResponsesAgentRequest
    ) -> Generator[ResponsesAgentStreamEvent, None, None]:
        for event in self._events(request, deltas=True):
            for data in to_mlflow(event):
                yield ResponsesAgentStreamEvent(**data)


# MLflow's __init_subclass__ wrapped the base class's own methods; validate in front of them.
AgentshipResponsesAgent.predict = _validated(AgentshipResponsesAgent.predict)  # type: ignore[method-assign]
AgentshipResponsesAgent.predict_stream = _validated(AgentshipResponsesAgent.predict_stream)  # type: ignore[method-assign]
