"""One request's run of the model: a producer task that feeds a bounded queue.

The producer owns everything that must not be held across a ``yield`` to the client: the
request's MLflow span, the timeout, and the model's event stream (closed with ``aclosing``).
So the timeout and a cancellation reach the backend even while a slow client reads, and a
client that goes away (the consumer is closed) cancels the producer and with it the backend
call. Tracing is best effort: it never fails or delays a request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from contextlib import aclosing, contextmanager, suppress
from typing import Any

import mlflow
from mlflow.entities import SpanType
from mlflow.tracing.constant import SpanAttributeKey
from mlflow.types.responses import ResponsesAgentRequest

from agentship.errors import BackendError
from agentship.events import AgentEvent, reduce
from agentship.server.core.errors import classify
from agentship.server.core.runner import ModelRunner
from agentship.server.http.quotas import METER, Meter
from agentship.server.observability import metrics as _metrics
from agentship.tracing import tag_conversation

_logger = logging.getLogger("agentship.server")

_ITEM, _ERROR, _DONE = "item", "error", "done"
METER_TIMEOUT_S = 5.0


def _safe(action: Callable[[], Any]) -> None:
    """Tracing never fails a request."""
    try:
        action()
    except Exception:
        _logger.debug("tracing failed", exc_info=True)


@contextmanager
def _request_span(
    request: ResponsesAgentRequest, response_id: str | None, tags: dict[str, str] | None = None
) -> Iterator[Any]:
    """The request's AGENT span, or None when tracing is off or fails to start."""
    try:
        manager = mlflow.start_span(name="predict_stream", span_type=SpanType.AGENT)
        span = manager.__enter__()
    except Exception:
        _logger.debug("could not start the request span", exc_info=True)
        yield None
        return
    _safe(lambda: span.set_inputs(request.model_dump(exclude_none=True)))
    _safe(lambda: span.set_attribute(SpanAttributeKey.MESSAGE_FORMAT, "openai"))
    if request.context is not None:  # any ResponsesAgent's traces get their session and user
        tag_conversation(request.context.conversation_id, request.context.user_id)
    if response_id:
        _safe(lambda: mlflow.update_current_trace(client_request_id=response_id))
    if tags:
        _safe(lambda: mlflow.update_current_trace(tags=tags))
    try:
        yield span
    except BaseException as exc:
        if not manager.__exit__(type(exc), exc, exc.__traceback__):
            raise
    else:
        _safe(lambda: manager.__exit__(None, None, None))


async def _metered(meter: Meter, request: ResponsesAgentRequest, seen: list[AgentEvent]) -> None:
    """Count what the run spent against its caller's budget: best effort, bounded, never failing
    the request (a budget undercounted by a store outage is the lesser harm)."""
    counting = asyncio.ensure_future(meter.spent(request, seen))
    try:  # shielded: a run cancelled now (its client gone) still spent what it spent
        await asyncio.wait_for(asyncio.shield(counting), METER_TIMEOUT_S)
    except Exception:
        _logger.warning("could not count a request's tokens against its caller's budget", exc_info=True)


class AgentRun:
    """Runs ``request`` on ``runner`` under ``timeout_s``; :meth:`events` yields its events.

    ``tags`` go on the request's trace (an A2A request's task and context ids, say); ``deltas``
    is False when the client does not stream (the model may then answer in one piece)."""

    def __init__(
        self,
        runner: ModelRunner,
        request: ResponsesAgentRequest,
        timeout_s: float,
        response_id: str | None = None,
        queue_size: int = 64,
        tags: dict[str, str] | None = None,
        deltas: bool = True,
    ) -> None:
        self._runner = runner
        self._deltas = deltas
        self._request = request
        self._timeout_s = timeout_s
        self._response_id = response_id
        self._tags = tags
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(queue_size)
        self.trace_id: str | None = None
        self._meter = METER.get()

    async def _produce(self) -> None:
        seen: list[AgentEvent] = []
        started = time.perf_counter()
        try:
            with _request_span(self._request, self._response_id, self._tags) as span:
                if span is not None:
                    self.trace_id = getattr(span, "trace_id", None)
                try:
                    async with asyncio.timeout(self._timeout_s):
                        async with aclosing(self._runner.events(self._request, self._deltas)) as stream:
                            async for event in stream:
                                if not seen:
                                    _metrics.observe_first_event(time.perf_counter() - started)
                                _metrics.observe_event(event)
                                seen.append(event)
                                await self._queue.put((_ITEM, event))
                finally:
                    if span is not None:
                        _safe(lambda: span.set_outputs(reduce(seen).model_dump(exclude_none=True)))
                    if self._meter is not None:
                        await _metered(self._meter, self._request, seen)
        except Exception as exc:  # noqa: BLE001 - handed to the consumer
            if isinstance(exc, BackendError):
                _metrics.observe_backend_error(classify(exc).code)
            await self._queue.put((_ERROR, exc))
        else:
            await self._queue.put((_DONE, None))

    async def events(self) -> AsyncGenerator[AgentEvent, None]:
        """The model's events as they come; the run's error is raised here."""
        producer = asyncio.create_task(self._produce(), name="agentship-run")
        try:
            while True:
                kind, value = await self._queue.get()
                if kind == _ITEM:
                    yield value
                elif kind == _ERROR:
                    raise value
                else:
                    return
        finally:
            if not producer.done():
                producer.cancel()
                with suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(asyncio.shield(producer), timeout=10)
