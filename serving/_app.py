"""The ASGI app: ``create_app(settings)``. Starlette, uvicorn and sse-starlette.

Routes: ``POST /invocations`` (MLflow's request body; SSE when ``"stream": true``),
``POST /responses`` (the OpenAI Responses API), ``GET /health``, ``GET /ready``, ``GET /version``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractContextManager, asynccontextmanager, nullcontext
from typing import Any

import mlflow
from mlflow.entities import SpanType
from mlflow.types.responses import ResponsesAgentRequest
from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import agentship
from agentship.errors import InvalidRequestError
from agentship.requests import parse_request, reduce_events
from serving._errors import HttpError, classify
from serving._openai import StreamEncoder, agent_request, openai_item
from serving._runner import ModelRunner
from serving._settings import ServerSettings

_logger = logging.getLogger("serving")


class _State:
    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.runner: ModelRunner | None = None
        self.load_error: str | None = None
        self.in_flight = 0
        self.started = time.monotonic()


class _Slot:
    """One admitted request's place under the concurrency limit; released exactly once."""

    def __init__(self, state: _State) -> None:
        self._state = state
        self._held = True
        state.in_flight += 1

    def release(self) -> None:
        if self._held:
            self._held = False
            self._state.in_flight -= 1


def _error_response(error: HttpError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=headers)


async def _read_json(request: Request, limit: int) -> dict[str, Any]:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _TooLarge(limit)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _TooLarge(limit)
    if not body.strip():
        raise InvalidRequestError("the request body is empty; send a JSON object with an 'input' list")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequestError(f"the request body is not valid UTF-8 (byte {exc.start})") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidRequestError(
            f"the request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    if not isinstance(data, dict):
        raise InvalidRequestError("the request body must be a JSON object")
    return data


class _TooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is larger than the limit of {limit} bytes")


async def _until_disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


def create_app(settings: ServerSettings, runner: ModelRunner | None = None) -> Starlette:
    """The app for one model; it loads the model at startup unless a ``runner`` is given."""
    state = _State(settings)
    state.runner = runner

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        _resolve_experiment_once()
        if state.runner is None:
            try:
                state.runner = await asyncio.to_thread(ModelRunner, settings.model_uri)
                _logger.warning(
                    "serving %s (%s), ready after %.1fs",
                    settings.model_uri,
                    state.runner.kind,
                    time.monotonic() - state.started,
                )
            except Exception as exc:
                state.load_error = f"{type(exc).__name__}: {exc}"
                _logger.error("could not load %s: %s", settings.model_uri, state.load_error)
                raise
        try:
            yield
        finally:
            if state.runner is not None:
                await asyncio.to_thread(state.runner.close)
                _logger.warning(
                    "stopped: %d requests in flight, model closed, traces flushed", state.in_flight
                )

    async def traced_events(
        runner: ModelRunner, request: ResponsesAgentRequest
    ) -> AsyncIterator[dict[str, Any]]:
        """The model's events under one AGENT span; the stream is reassembled as its output."""
        seen: list[dict[str, Any]] = []
        with _request_span(runner) as span:
            if span is not None:
                _safe(lambda: span.set_inputs(request.model_dump(exclude_none=True)))
            try:
                async with asyncio.timeout(settings.request_timeout_s):
                    async for event in runner.events(request):
                        seen.append(event)
                        yield event
            finally:
                if span is not None:
                    _safe(lambda: span.set_outputs(reduce_events(seen).model_dump(exclude_none=True)))

    def admit() -> JSONResponse | _Slot:
        """Reserve a slot before the first await, so concurrent arrivals cannot all slip in."""
        if state.runner is None:
            return _error_response(
                HttpError(503, "not_ready", "the model is still loading"), {"Retry-After": "1"}
            )
        if state.in_flight >= settings.max_concurrency:
            message = (
                f"the server is at its limit of {settings.max_concurrency} requests in flight; retry later"
            )
            return _error_response(
                HttpError(429, "rate_limit_error", message), {"Retry-After": str(settings.retry_after_s)}
            )
        return _Slot(state)

    async def handle(
        request: Request,
        to_agent: Callable[[dict[str, Any]], dict[str, Any]],
        respond: Callable[[Request, ResponsesAgentRequest, _Slot | None], Awaitable[Response]],
    ) -> Response:
        slot = admit()
        if isinstance(slot, Response):
            return slot
        try:
            body = await _read_json(request, settings.max_body_bytes)
            agent_req = parse_request(to_agent(body))
        except (_TooLarge, InvalidRequestError) as exc:
            slot.release()
            if isinstance(exc, _TooLarge):
                return _error_response(HttpError(413, "invalid_request_error", str(exc)))
            return _error_response(classify(exc))
        if not body.get("stream"):
            try:
                return await respond(request, agent_req, None)
            finally:
                slot.release()
        response = await respond(request, agent_req, slot)  # the stream releases the slot
        response.background = BackgroundTask(slot.release)
        return response

    async def collect(
        request: Request, agent_req: ResponsesAgentRequest
    ) -> list[dict[str, Any]] | HttpError | None:
        """Run to completion; None if the client went away first (the work is cancelled)."""
        assert state.runner is not None
        runner = state.runner

        async def drain() -> list[dict[str, Any]]:
            return [event async for event in traced_events(runner, agent_req)]

        work = asyncio.ensure_future(drain())
        watcher = asyncio.ensure_future(_until_disconnect(request))
        try:
            await asyncio.wait({work, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if not work.done():
                work.cancel()
                _logger.info("client disconnected; request cancelled")
                return None
            try:
                return work.result()
            except Exception as exc:  # noqa: BLE001 - becomes an HTTP error
                return classify(exc)
        finally:
            watcher.cancel()

    async def complete(
        request: Request, agent_req: ResponsesAgentRequest, render: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> Response:
        """Run a non-streaming request; ``render`` shapes the reduced response."""
        result = await collect(request, agent_req)
        if result is None:
            return Response(status_code=499)  # the client went away
        if isinstance(result, HttpError):
            return _error_response(result)
        return JSONResponse(render(reduce_events(result).model_dump(exclude_none=True)))

    async def sse(events: AsyncIterator[dict[str, Any]], slot: _Slot) -> AsyncIterator[dict[str, str]]:
        try:
            async for event in events:
                yield {"data": json.dumps(event)}
        finally:
            slot.release()
        yield {"data": "[DONE]"}

    # -- /invocations ------------------------------------------------------------------
    async def invocations_stream(agent_req: ResponsesAgentRequest) -> AsyncIterator[dict[str, Any]]:
        assert state.runner is not None
        try:
            async for event in traced_events(state.runner, agent_req):
                yield event
        except Exception as exc:  # noqa: BLE001 - becomes an error event
            error = classify(exc)
            yield {"type": "error", "code": error.type, "message": error.message}

    async def respond_invocations(
        request: Request, agent_req: ResponsesAgentRequest, slot: _Slot | None
    ) -> Response:
        if slot is not None:
            return EventSourceResponse(sse(invocations_stream(agent_req), slot), sep="\n", ping=15)
        return await complete(request, agent_req, lambda reduced: reduced)

    # -- /responses (OpenAI) -----------------------------------------------------------
    model_name = settings.model_name or settings.model_uri

    async def responses_stream(agent_req: ResponsesAgentRequest) -> AsyncIterator[dict[str, Any]]:
        assert state.runner is not None
        encoder = StreamEncoder(model_name)
        for event in encoder.start():
            yield event
        usage = None
        try:
            async for event in traced_events(state.runner, agent_req):
                if event.get("type") == "response.completed":
                    usage = (event.get("response") or {}).get("usage")
                for out in encoder.feed(event):
                    yield out
        except Exception as exc:  # noqa: BLE001 - becomes an error event
            error = classify(exc)
            yield encoder.error(error.type, error.message)
            return
        yield encoder.completed(usage)

    async def respond_responses(
        request: Request, agent_req: ResponsesAgentRequest, slot: _Slot | None
    ) -> Response:
        if slot is not None:
            return EventSourceResponse(sse(responses_stream(agent_req), slot), sep="\n", ping=15)

        def as_openai(reduced: dict[str, Any]) -> dict[str, Any]:
            encoder = StreamEncoder(model_name)
            encoder.output = [openai_item(i) for i in reduced.get("output", [])]
            return encoder.response("completed", reduced.get("usage"))

        return await complete(request, agent_req, as_openai)

    async def invocations(request: Request) -> Response:
        return await handle(request, lambda body: body, respond_invocations)

    async def responses(request: Request) -> Response:
        return await handle(request, agent_request, respond_responses)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def ready(request: Request) -> Response:
        if state.runner is None:
            return JSONResponse({"status": "loading", "error": state.load_error}, status_code=503)
        return JSONResponse(
            {
                "status": "ready",
                "model_uri": settings.model_uri,
                "in_flight": state.in_flight,
                "threads": threading.active_count(),
                "tasks": len(asyncio.all_tasks()),
            }
        )

    async def version(request: Request) -> Response:
        return JSONResponse(
            {
                "agentship": agentship.__version__,
                "mlflow": mlflow.__version__,
                "model_uri": settings.model_uri,
                "runner": state.runner.kind if state.runner else None,
                "agent": state.runner.agent_summary() if state.runner else None,
            }
        )

    routes = [
        Route("/invocations", invocations, methods=["POST"]),
        Route("/responses", responses, methods=["POST"]),
        Route("/v1/responses", responses, methods=["POST"]),
        Route("/health", health),
        Route("/ready", ready),
        Route("/version", version),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def _resolve_experiment_once() -> None:
    """Resolve MLFLOW_EXPERIMENT_NAME once: left to MLflow, every trace looks it up again."""
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME")
    if name and not os.environ.get("MLFLOW_EXPERIMENT_ID"):
        try:
            mlflow.set_experiment(name)
        except Exception:
            _logger.warning(
                "could not resolve experiment %r; tracing continues with MLflow's default",
                name,
                exc_info=True,
            )


def _safe(action: Callable[[], Any]) -> None:
    """Tracing never fails a request."""
    try:
        action()
    except Exception:
        _logger.debug("tracing failed", exc_info=True)


def _request_span(runner: ModelRunner) -> AbstractContextManager[Any]:
    """The request's AGENT span for the package's agents (the span ends with the stream, and
    records its error); other models trace themselves through MLflow's ``predict_stream``."""
    if not runner.native:
        return nullcontext(None)
    return mlflow.start_span(name="predict_stream", span_type=SpanType.AGENT)


def app_from_env() -> Starlette:
    """The app factory uvicorn's workers call: settings come from ``SERVING_*`` variables."""
    return create_app(ServerSettings.from_env())
